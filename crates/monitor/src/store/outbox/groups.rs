//! The open alert groups, saved as JSON by the notifier so that a restart carries on with
//! their members, sequence numbers and ticks (`crate::notify::GroupState`).
//!
//! What this is not: the groups' rules (`crate::notify`), or their notifications, which are
//! alerts and outbox rows like any other.

use rusqlite::params;

use super::super::{Store, StoreError};

impl Store {
    /// Saves an open group (opaque JSON), replacing what was saved under its key.
    pub fn save_notify_group(&self, key: &str, state: &str) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "INSERT INTO notify_groups (key, state) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET state = excluded.state",
                params![key, state],
            )
            .map_err(StoreError::sqlite("could not save an alert group"))?;
            Ok(())
        })
    }

    /// Forgets a group that closed.
    pub fn drop_notify_group(&self, key: &str) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute("DELETE FROM notify_groups WHERE key = ?1", params![key])
                .map_err(StoreError::sqlite("could not forget an alert group"))?;
            Ok(())
        })
    }

    /// Every open group, as (key, JSON), by key.
    pub fn load_notify_groups(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.lock()
            .conn
            .prepare("SELECT key, state FROM notify_groups ORDER BY key")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sqlite("could not read alert groups"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_saved_replaced_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .save_notify_group("rule0/group=shop/1", "{\"a\":1}")
            .unwrap();
        store
            .save_notify_group("rule0/group=shop/1", "{\"a\":2}")
            .unwrap();
        store.save_notify_group("rule0/group=web/2", "{}").unwrap();
        assert_eq!(
            store.load_notify_groups().unwrap(),
            [
                ("rule0/group=shop/1".to_owned(), "{\"a\":2}".to_owned()),
                ("rule0/group=web/2".to_owned(), "{}".to_owned())
            ]
        );
        store.drop_notify_group("rule0/group=shop/1").unwrap();
        assert_eq!(store.load_notify_groups().unwrap().len(), 1);
    }
}
