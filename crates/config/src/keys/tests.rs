//! The declarations agree with what the typed keys assume of them.

use super::*;

/// `defaults::X.within::<target::Table>()` reads the target's `X`: every key of `[defaults]`
/// must be a target key too, of the same type (for the kinds it belongs to).
#[test]
fn targets_declare_every_key_of_defaults_with_its_type() {
    for key in DEFAULTS {
        let found = TARGET.iter().find(|k| k.name == key.name);
        assert!(found.is_some(), "target does not declare `{}`", key.name);
        assert_eq!(found.map(|k| k.ty), Some(key.ty), "`{}`", key.name);
    }
    assert_eq!(<pool::Table as Section>::INCLUDES.len(), DEFAULTS.len());
}

/// A name appears twice in a table only for different kinds (`url`), so that the walker
/// finds one type for it whatever the kind.
#[test]
fn a_name_appears_once_per_kind() {
    let lists: [&[Key]; 6] = [SERVER, DEFAULTS, TARGET, RECOVER, CHANNEL, MAINTENANCE];
    for list in lists {
        for (i, key) in list.iter().enumerate() {
            for other in list[..i].iter().filter(|k| k.name == key.name) {
                let both: Vec<&str> = Kind::ALL
                    .into_iter()
                    .filter(|&kind| key.kinds.contains(kind) && other.kinds.contains(kind))
                    .map(Kind::name)
                    .collect();
                assert!(both.is_empty(), "`{}` twice for {both:?}", key.name);
            }
        }
    }
}

/// Only the tables that nest tables with keys of their own need `compound`'s reader; the
/// rest are read by `value::table`, which refuses (at compile time) any other. Checked when
/// the tests compile.
const _: () = {
    assert!(!<defaults::Table as Section>::PLAIN);
    assert!(!<target::Table as Section>::PLAIN);
    assert!(!<pool::Table as Section>::PLAIN);
    assert!(<server::Table as Section>::PLAIN);
    assert!(<recover::Table as Section>::PLAIN);
    assert!(<channel::Table as Section>::PLAIN);
};

#[test]
fn typed_keys_carry_their_declared_name() {
    assert_eq!(target::TIMEOUT.name(), "timeout");
    assert_eq!(target::POSTGRES_URL.name(), "url");
    assert_eq!(
        target::TIMEOUT.field("target[0] (\"api\")"),
        "target[0] (\"api\").timeout"
    );
    assert_eq!(defaults::FLAP.within::<target::Table>().name(), "flap");
    assert_eq!(
        target::Table::named("timeout").map(TypedKey::name),
        Some("timeout")
    );
    assert_eq!(target::Table::named("timout"), None);
}
