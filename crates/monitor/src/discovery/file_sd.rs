//! Prometheus' `file_sd` format, JSON or YAML by the file's extension:
//!
//! ```json
//! [{"targets": ["10.0.0.1:8000", "web-2.example.com:8000"], "labels": {"zone": "a"}}]
//! ```
//!
//! Each group's targets are `host:port` (an IPv6 host in brackets); its labels go to every
//! target of the group (as `key=value` tags). A file that does not read is refused whole,
//! saying which group and target and why, so the targets found before stay.
//!
//! What it is not: watching the file (`super::Source` looks at its modification time).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::Found;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The addresses in `text`, read as JSON unless `path` ends in `.yaml` or `.yml`; sorted, each
/// once (the first group that names an address gives it its labels).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Found>, String> {
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let groups: Vec<Group> = if yaml {
        serde_yaml::from_str(text)
            .map_err(|e| format!("{}: not file_sd YAML: {e}", path.display()))?
    } else {
        serde_json::from_str(text)
            .map_err(|e| format!("{}: not file_sd JSON: {e}", path.display()))?
    };
    let mut found: BTreeMap<(String, u16), Found> = BTreeMap::new();
    for (index, group) in groups.into_iter().enumerate() {
        for key in group.labels.keys() {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "{}: group {index}: label {key:?} is not a label name (letters, digits and _)",
                    path.display()
                ));
            }
        }
        for target in &group.targets {
            let mut one = Found::parse(target)
                .map_err(|why| format!("{}: group {index}: {why}", path.display()))?;
            one.labels = group
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            found.entry((one.host.clone(), one.port)).or_insert(one);
        }
    }
    Ok(found.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(found: &[Found]) -> Vec<String> {
        found.iter().map(Found::address).collect()
    }

    #[test]
    fn json_and_yaml_read_alike_with_labels_and_ipv6() {
        let json = r#"[{"targets": ["10.0.0.2:8000", "[fd00::1]:9000"], "labels": {"zone": "a"}},
                       {"targets": ["web-1.example.com:80"]}]"#;
        let yaml = "- targets: ['10.0.0.2:8000', '[fd00::1]:9000']\n  labels: {zone: a}\n- targets: ['web-1.example.com:80']\n";
        let from_json = parse(Path::new("sd.json"), json).unwrap();
        let from_yaml = parse(Path::new("sd.yml"), yaml).unwrap();
        assert_eq!(from_json, from_yaml);
        assert_eq!(
            hosts(&from_json),
            ["10.0.0.2:8000", "[fd00::1]:9000", "web-1.example.com:80"]
        );
        assert_eq!(from_json[0].labels, [("zone".to_owned(), "a".to_owned())]);
        assert!(from_json[2].labels.is_empty());
    }

    #[test]
    fn a_bad_file_is_refused_saying_where_and_why() {
        let check = |name: &str, text: &str, expected: &str| {
            let error = parse(Path::new(name), text).unwrap_err();
            assert!(error.contains(expected), "{name}: {error}");
        };
        check(
            "sd.json",
            "[{\"targets\": [\"10.0.0.1\"]}]",
            "group 0: \"10.0.0.1\" is not host:port: no port",
        );
        check(
            "sd.json",
            "[{\"targets\": [\"a:99999\"]}]",
            "not a number from 1 to 65535",
        );
        check(
            "sd.json",
            "[{\"targets\": [\"a b:80\"]}]",
            "is not a host name or an IP address",
        );
        check(
            "sd.json",
            "[{\"targets\": [\"a:80\"], \"lables\": {}}]",
            "unknown field `lables`",
        );
        check("sd.json", "{\"targets\": []}", "not file_sd JSON");
        check("sd.yaml", "- targets: [a:0]\n", "port 0");
        check(
            "sd.yaml",
            "- targets: ['a:1']\n  labels: {'a-b': x}\n",
            "label \"a-b\"",
        );
        check(
            "sd.json",
            "[{\"targets\": [\"x\\\"y:80\"]}]",
            "not a host name",
        );
    }
}
