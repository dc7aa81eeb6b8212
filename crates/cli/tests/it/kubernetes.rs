//! deploy/kubernetes (issue 14): every manifest validated against the Kubernetes schemas,
//! strict, by kubernetes-validate (`scripts/validate-kubernetes`, which also checks the
//! ServiceMonitor against its schema); a typo fails it; the probes point at the library's
//! endpoints; the stop is consistent with the drain delay; the monitor's ConfigMap holds a
//! configuration `vitals check-config` accepts and a file_sd file the monitor reads.
//!
//! `scripts/test` installs kubernetes-validate with pip and sets
//! `VITALS_REQUIRE_KUBERNETES_VALIDATE`, so there a missing validator fails the test; run
//! alone without it, the test says so and skips.

#![allow(clippy::unwrap_used)] // test

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether python3 with kubernetes-validate is here; panics when it must be.
fn validator() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import kubernetes_validate, jsonschema, yaml"])
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var_os("VITALS_REQUIRE_KUBERNETES_VALIDATE").is_none(),
            "kubernetes-validate is missing though scripts/test installs it: pip install kubernetes-validate==1.37.0"
        );
        eprintln!(
            "skipped: python3 with kubernetes-validate is not installed (scripts/test installs it)"
        );
    }
    found
}

fn validate(files: &[&Path]) -> (bool, String) {
    let output = Command::new("python3")
        .arg(root().join("scripts/validate-kubernetes"))
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The documents of a YAML file, as JSON (read by PyYAML, which the validator brings).
fn yaml(path: &Path) -> Vec<Value> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn every_manifest_passes_strict_validation_and_a_typo_does_not() {
    if !validator() {
        return;
    }
    let (ok, text) = validate(&[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("ServiceMonitor/vitals-monitor (custom resource"),
        "{text}"
    );
    assert!(
        text.contains("Deployment/order-service (kubernetes 1.30.0, strict)"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let deployment =
        std::fs::read_to_string(root().join("deploy/kubernetes/order-service/deployment.yaml"))
            .unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        deployment.replacen("failureThreshold: 3", "failureTreshold: 3", 1),
    )
    .unwrap();
    let (ok, text) = validate(&[&typo]);
    assert!(!ok, "{text}");
    assert!(text.contains("'failureTreshold' was unexpected"), "{text}");
    let monitor =
        std::fs::read_to_string(root().join("deploy/kubernetes/monitor/servicemonitor.yaml"))
            .unwrap();
    let typo = dir.path().join("sm.yaml");
    std::fs::write(&typo, monitor.replacen("scrapeTimeout", "scrapeTimout", 1)).unwrap();
    let (ok, text) = validate(&[&typo]);
    assert!(
        !ok && text.contains("'scrapeTimout' was unexpected"),
        "{text}"
    );
    let unknown = dir.path().join("widget.yaml");
    std::fs::write(
        &unknown,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    )
    .unwrap();
    let (ok, text) = validate(&[&unknown]);
    assert!(
        !ok && text.contains("no schema"),
        "a kind without a schema fails: {text}"
    );
}

/// Seconds of a Go-style duration flag value like `5s`.
fn seconds(flag: &str) -> u64 {
    flag.trim_end_matches('s').parse().unwrap()
}

#[test]
fn the_order_service_probes_the_library_and_stops_within_its_grace_period() {
    if !validator() {
        return;
    }
    let docs = yaml(&root().join("deploy/kubernetes/order-service/deployment.yaml"));
    let pod = &docs[0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/startupz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let drain = args
        .iter()
        .find_map(|a| a.strip_prefix("--drain-delay="))
        .map(seconds)
        .unwrap();
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    // preStop, then the drain delay, then at least as long again for requests in flight.
    assert!(
        grace >= 2 * (pre_stop + drain),
        "grace {grace} s for preStop {pre_stop} s + drain {drain} s"
    );
    // Liveness gives a stalled process longer than readiness before acting.
    let period = |probe: &str| container[probe]["periodSeconds"].as_u64().unwrap();
    let threshold = |probe: &str| container[probe]["failureThreshold"].as_u64().unwrap();
    assert!(
        period("livenessProbe") * threshold("livenessProbe")
            > period("readinessProbe") * threshold("readinessProbe")
    );
    let pdb = yaml(&root().join("deploy/kubernetes/order-service/pdb.yaml"));
    assert_eq!(pdb[0]["spec"]["selector"], docs[0]["spec"]["selector"]);
}

#[test]
fn the_monitors_configmap_is_a_configuration_the_monitor_accepts() {
    if !validator() {
        return;
    }
    let docs = yaml(&root().join("deploy/kubernetes/monitor/configmap.yaml"));
    let data = &docs[0]["data"];
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("vitals.toml");
    std::fs::write(&toml, data["vitals.toml"].as_str().unwrap()).unwrap();
    let checked = crate::support::vitals_blocking()
        .args(["check-config"])
        .arg(&toml)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let config = vitals_monitor::config::load(&toml).unwrap();
    assert_eq!(config.discovery.len(), 3);
    let found = vitals_monitor::discovery::file_sd::parse(
        Path::new("targets.json"),
        data["targets.json"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(found.len(), 2);
    let edge = config.discovery.iter().find(|d| d.name == "edge").unwrap();
    let target = edge.instantiate(&found[0]).unwrap();
    assert_eq!(target.id, "edge-10.0.0.10-443");
    assert_eq!(target.tags, ["zone=a"]);
}
