//! Real gRPC health peers from PyPI: `grpcio` and `grpcio-health-checking` (gRPC's own C core
//! and its Python health servicer and stubs), driven by `python/grpc_peer.py`. Tests check
//! vitals' server against gRPC's client, and vitals' client against gRPC's server, so that
//! neither side is only ever judged by our own reading of the protocol.
//!
//! `scripts/test` installs both packages into a virtual environment and exports its Python as
//! `VITALS_TEST_PYTHON`. Without it, [`grpc_python`] tries `python3`; where neither has the
//! packages the test says so and is skipped, except under `CI=true`, where a missing peer is
//! a failure (a green CI must not hide an install step that broke).
//!
//! What it is not: a gRPC library for vitals (the code under test uses tonic).

use std::path::PathBuf;
use std::process::Command as StdCommand;

use tokio::process::Command;

use crate::Error;
use crate::running::{Ready, Running};

/// The script: `check`, `watch`, `list` and `serve` (see its docstring).
pub fn grpc_health_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/grpc_peer.py")
}

/// A Python that imports `grpc_health.v1`, or `None` (after saying why) when there is none.
/// Under `CI=true` there must be one: it panics instead.
pub fn grpc_python() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("VITALS_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("python3")])
        .collect();
    for python in &candidates {
        let imports = StdCommand::new(python)
            .args(["-c", "import grpc, grpc_health.v1.health"])
            .output()
            .is_ok_and(|output| output.status.success());
        if imports {
            return Some(python.clone());
        }
    }
    let message = format!(
        "no Python with grpcio-health-checking (tried {candidates:?}); scripts/test installs it \
         into a virtual environment and sets VITALS_TEST_PYTHON"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipped: {message}");
    None
}

/// `grpc_peer.py ARGS…` as a command.
pub fn grpc_health_command(python: &PathBuf, args: &[&str]) -> Command {
    let mut command = Command::new(python);
    command.arg(grpc_health_script()).args(args);
    command
}

/// Runs `grpc_peer.py ARGS…` to its end and returns its standard output, trimmed; its
/// standard error goes into the error when it fails.
pub async fn grpc_health_once(python: &PathBuf, args: &[&str]) -> Result<String, Error> {
    let output = grpc_health_command(python, args)
        .output()
        .await
        .map_err(|e| Error::io("could not run grpc_peer.py", e))?;
    if !output.status.success() {
        return Err(Error::io(
            format!(
                "grpc_peer.py {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            std::io::Error::other("non-zero exit"),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// gRPC's own health server (`grpc_health.v1.health.HealthServicer`) on a free loopback
/// port, with `statuses` such as `["=SERVING", "orders=NOT_SERVING"]` (`=` alone names the
/// server as a whole) and TLS from `tls` (certificate and key files, PEM). SIGUSR1 flips
/// every name between SERVING and NOT_SERVING. Returns it and its address.
pub async fn grpc_health_server(
    python: &PathBuf,
    statuses: &[&str],
    tls: Option<(&str, &str)>,
) -> Result<(Running, String), Error> {
    let mut args = vec!["serve", "127.0.0.1:0"];
    if let Some((cert, key)) = tls {
        args.extend(["--tls", cert, key]);
    }
    args.extend_from_slice(statuses);
    let running = Running::start(
        &mut grpc_health_command(python, &args),
        Ready::Line("listening on "),
    )
    .await?;
    let address = running.banner()["listening on ".len()..].to_string();
    Ok((running, address))
}

/// A test CA and a server certificate it signed, as PEM files in a directory of the caller's.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate, for `name` only (its one subjectAltName).
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a CA and a server certificate for DNS name `name` in `dir`, with the `openssl`
/// command (`scripts/test` installs it). P-256 keys, valid for two days.
pub fn test_certificates(dir: &std::path::Path, name: &str) -> Result<Certificates, Error> {
    let path = |file: &str| dir.join(file);
    let text = |p: PathBuf| p.to_string_lossy().into_owned();
    let extensions = path("server.ext");
    std::fs::write(
        &extensions,
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .map_err(|e| Error::io("could not write the certificate extensions", e))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: Vec<Vec<String>> = vec![
        [&["req", "-x509"][..], &ec[..]]
            .concat()
            .into_iter()
            .map(String::from)
            .chain([
                "-keyout".into(),
                text(path("ca.key")),
                "-out".into(),
                text(path("ca.pem")),
                "-days".into(),
                "2".into(),
                "-subj".into(),
                "/CN=vitals test CA".into(),
            ])
            .collect(),
        [&["req"][..], &ec[..]]
            .concat()
            .into_iter()
            .map(String::from)
            .chain([
                "-keyout".into(),
                text(path("server.key")),
                "-out".into(),
                text(path("server.csr")),
                "-subj".into(),
                format!("/CN={name}"),
            ])
            .collect(),
        [
            "x509",
            "-req",
            "-in",
            &text(path("server.csr")),
            "-CA",
            &text(path("ca.pem")),
            "-CAkey",
            &text(path("ca.key")),
            "-CAcreateserial",
            "-out",
            &text(path("server.pem")),
            "-days",
            "2",
            "-extfile",
            &text(extensions.clone()),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for args in steps {
        let output = StdCommand::new("openssl")
            .args(&args)
            .output()
            .map_err(|e| Error::io("could not run openssl (apt-get install openssl)", e))?;
        if !output.status.success() {
            return Err(Error::io(
                format!(
                    "openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ),
                std::io::Error::other("non-zero exit"),
            ));
        }
    }
    Ok(Certificates {
        ca: path("ca.pem"),
        cert: path("server.pem"),
        key: path("server.key"),
    })
}
