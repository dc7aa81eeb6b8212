//! Certificates from files: what loads, what is refused and how the error reads, and which
//! certificate answers an SNI name. Certificates are made by `openssl` (testkit).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use vitals_testkit::test_certificates;

use super::{Sni, TlsError, load, load_all};

/// A certificate for `name` and its key in one PEM file, as HAProxy's `crt` takes.
fn combined(dir: &Path, name: &str) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let made = test_certificates(&sub, name).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    let mut text = std::fs::read(&made.cert).unwrap();
    text.extend(std::fs::read(&made.key).unwrap());
    std::fs::write(&pem, text).unwrap();
    pem
}

fn error(path: &Path) -> TlsError {
    load("listener[0].tls_certificates[0]", path).unwrap_err()
}

#[test]
fn a_malformed_certificate_file_is_refused_naming_the_field_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    assert_eq!(
        error(&garbage).to_string(),
        format!(
            "listener[0].tls_certificates[0]: {}: holds no certificate (expected -----BEGIN CERTIFICATE----- blocks, the server's first)",
            garbage.display()
        )
    );

    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let why = error(&broken).why;
    assert!(why.starts_with("not a valid PEM file"), "{why}");

    let missing = dir.path().join("missing.pem");
    let why = error(&missing).why;
    assert!(why.starts_with("cannot read it:"), "{why}");
}

#[test]
fn a_certificate_without_its_key_is_refused_and_the_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let made = test_certificates(dir.path(), "a.test").unwrap();
    let alone = dir.path().join("alone.pem");
    std::fs::copy(&made.cert, &alone).unwrap();
    let refused = error(&alone);
    assert!(
        refused.why.starts_with(&format!(
            "holds no private key, and {}.key cannot be read",
            alone.display()
        )),
        "{refused}"
    );
    // HAProxy's rule: the key may sit beside it, in the same name plus `.key`.
    std::fs::copy(&made.key, dir.path().join("alone.pem.key")).unwrap();
    load("f", &alone).unwrap();
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let a = test_certificates(&a, "a.test").unwrap();
    let b = test_certificates(&b, "b.test").unwrap();
    let mixed = dir.path().join("mixed.pem");
    let mut text = std::fs::read(&a.cert).unwrap();
    text.extend(std::fs::read(&b.key).unwrap());
    std::fs::write(&mixed, text).unwrap();
    let why = error(&mixed).why;
    assert!(
        why.starts_with("the private key does not fit the certificate"),
        "{why}"
    );
}

#[test]
fn sni_picks_the_certificate_that_covers_the_name_and_the_first_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        combined(dir.path(), "a.test"),
        combined(dir.path(), "b.test"),
    ];
    let keys = load_all("listener[0].tls_certificates", &paths).unwrap();
    let picked = |name: Option<&str>| {
        let key = Sni::pick(&keys, name).unwrap();
        keys.iter()
            .position(|k| std::sync::Arc::ptr_eq(k, &key))
            .unwrap()
    };
    assert_eq!(picked(Some("b.test")), 1);
    assert_eq!(picked(Some("a.test")), 0);
    assert_eq!(
        picked(Some("c.test")),
        0,
        "a name none covers gets the default"
    );
    assert_eq!(picked(None), 0, "no SNI gets the default");
}

#[test]
fn every_file_is_named_by_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let good = combined(dir.path(), "a.test");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "").unwrap();
    let refused = load_all("listener[2].tls_certificates", &[good, bad.clone()]).unwrap_err();
    assert_eq!(refused.field, "listener[2].tls_certificates[1]");
    assert_eq!(refused.path, bad);
}

// Tokio's paused clock: the watcher's 2 s polls pass at once, and a sleep returns only once
// the watcher has looked at the files in between.
#[tokio::test(start_paused = true)]
async fn a_renewed_file_is_read_again_and_a_broken_one_leaves_the_running_certificate() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let first = combined(dir.path(), "a.test");
    let renewed = combined(dir.path(), "b.test");
    let live = dir.path().join("live.pem");
    std::fs::copy(&first, &live).unwrap();
    let tls = Arc::new(
        super::ServerTls::new("listener[0].tls_certificates", std::slice::from_ref(&live)).unwrap(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(Arc::clone(&tls).watch(stop.clone()));
    let serving = |tls: &super::ServerTls| tls.sni.keys.load()[0].cert[0].clone();
    let before = serving(&tls);

    // A broken renewal (half written): logged, the running certificate stays.
    std::fs::write(&live, "-----BEGIN CERTIFICATE-----\n").unwrap();
    tokio::time::sleep(super::WATCH_EVERY * 2).await;
    assert_eq!(serving(&tls), before);

    // A good one is picked up.
    std::fs::copy(&renewed, &live).unwrap();
    vitals_testkit::until(
        "the renewed certificate is served",
        std::time::Duration::from_secs(15),
        async || serving(&tls) != before,
    )
    .await;
    stop.cancel();
}
