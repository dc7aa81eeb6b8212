//! Ping ids nobody can guess: a heartbeat target without a `ping_id` (and without a key that
//! would authenticate its pings) gets a random UUID on the monitor's first start, kept in
//! `<data_dir>/ping_ids` so that it survives restarts and upgrades. Its ping URL is then
//! `/ping/<uuid>`, which nothing public names (the status page, badges and `/metrics` show
//! target ids and names), as healthchecks.io issues them.
//!
//! The file is plain text, one `target-id ping-id` pair a line, private to the monitor's user
//! (0600, in a 0700 directory): operators read their ping URLs from it (they are also logged
//! at start and shown by `GET /api/v1/targets/<id>` to the API token). It is written whole to
//! a temporary file and renamed into place, so a crash leaves the old file or the new one.
//!
//! What this is not: a secret store for keys (`ping_key` and `udp_key` live in the config), or
//! the check that configured ping ids are unique and not public (`vitals-config` does that).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, TargetKind};

/// The file's name inside the data directory.
pub const FILE: &str = "ping_ids";

const HEADER: &str = "\
# Ping ids the monitor generated for heartbeat targets without a ping_id: /ping/<ping-id>.
# Keep this file private: whoever has a target's ping id can send its pings.
# Delete a line to have a new id generated for that target at the next start.
# target-id ping-id
";

/// Why the generated ping ids could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum PingIdError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a ping id: the system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// Fills in the ping id of every heartbeat target of `config` that has none, from the file in
/// `data_dir`, generating (and keeping) one for each target the file does not know yet.
/// Returns the targets that got a new one, with it.
pub fn resolve(data_dir: &Path, config: &mut Config) -> Result<Vec<(String, String)>, PingIdError> {
    let path = data_dir.join(FILE);
    let mut kept = read(&path)?;
    // A kept id that a configured ping id took since is not reused.
    let configured: std::collections::HashSet<String> = config
        .targets
        .iter()
        .filter_map(|target| match &target.kind {
            TargetKind::Heartbeat(heartbeat) => heartbeat.ping_id.clone(),
            _ => None,
        })
        .collect();
    let mut generated = Vec::new();
    for target in &mut config.targets {
        let TargetKind::Heartbeat(heartbeat) = &mut target.kind else {
            continue;
        };
        if heartbeat.ping_id.is_some() {
            continue;
        }
        let id = match kept.get(&target.id) {
            Some(id) if !configured.contains(id) => id.clone(),
            _ => {
                let id = uuid_v4().map_err(PingIdError::Random)?;
                kept.insert(target.id.clone(), id.clone());
                generated.push((target.id.clone(), id.clone()));
                id
            }
        };
        heartbeat.ping_id = Some(id);
    }
    if !generated.is_empty() {
        write(&path, &kept)?;
    }
    Ok(generated)
}

/// The pairs in the file; none when it does not exist yet.
fn read(path: &Path) -> Result<HashMap<String, String>, PingIdError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(PingIdError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut pairs = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parse = |message: String| PingIdError::Parse {
            path: path.to_owned(),
            line: index + 1,
            message,
        };
        let mut words = line.split_whitespace();
        let (Some(target), Some(ping_id), None) = (words.next(), words.next(), words.next()) else {
            return Err(parse(format!(
                "expected `target-id ping-id`, found {line:?}; fix or delete the line (a new id is generated for a target without one)"
            )));
        };
        if !ping_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(parse(format!(
                "ping id {ping_id:?} is not a UUID; fix or delete the line"
            )));
        }
        if pairs
            .insert(target.to_owned(), ping_id.to_owned())
            .is_some()
        {
            return Err(parse(format!(
                "target {target:?} is listed twice; delete one line"
            )));
        }
    }
    Ok(pairs)
}

/// Writes every pair, sorted, to a temporary file made private, then renames it into place.
fn write(path: &Path, pairs: &HashMap<String, String>) -> Result<(), PingIdError> {
    let error = |source| PingIdError::Write {
        path: path.to_owned(),
        source,
    };
    let mut sorted: Vec<_> = pairs.iter().collect();
    sorted.sort();
    let mut text = String::from(HEADER);
    for (target, ping_id) in sorted {
        text.push_str(&format!("{target} {ping_id}\n"));
    }
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

/// A random (version 4) UUID, as healthchecks.io issues ping ids: 122 random bits.
fn uuid_v4() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn ping_id(config: &Config, index: usize) -> Option<String> {
        match &config.targets[index].kind {
            TargetKind::Heartbeat(heartbeat) => heartbeat.ping_id.clone(),
            _ => None,
        }
    }

    const TWO: &str = "[[target]]\nid = \"backup\"\nkind = \"heartbeat\"\nperiod = \"1d\"\n\
        [[target]]\nid = \"named\"\nkind = \"heartbeat\"\nperiod = \"1d\"\nping_id = \"5a1c3e2c-8a7d-4c1e-9f7a-2b2f0c7d9e11\"\n";

    #[test]
    fn a_generated_id_is_a_uuid_kept_across_starts_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = config(TWO);
        let generated = resolve(dir.path(), &mut first).unwrap();
        let id = ping_id(&first, 0).unwrap();
        assert_eq!(generated, [("backup".to_string(), id.clone())]);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert_ne!(id, "backup");
        assert_eq!(
            ping_id(&first, 1).as_deref(),
            Some("5a1c3e2c-8a7d-4c1e-9f7a-2b2f0c7d9e11")
        );

        let mut again = config(TWO);
        assert_eq!(resolve(dir.path(), &mut again).unwrap(), []);
        assert_eq!(ping_id(&again, 0), Some(id.clone()));

        // Another monitor's data directory: another id.
        let other = tempfile::tempdir().unwrap();
        let mut elsewhere = config(TWO);
        resolve(other.path(), &mut elsewhere).unwrap();
        assert_ne!(ping_id(&elsewhere, 0), Some(id));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_damaged_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "# ok\nbackup\n").unwrap();
        let error = resolve(dir.path(), &mut config(TWO))
            .unwrap_err()
            .to_string();
        assert!(error.ends_with(&format!(
            "{FILE}:2: expected `target-id ping-id`, found \"backup\"; fix or delete the line (a new id is generated for a target without one)"
        )), "{error}");
    }
}
