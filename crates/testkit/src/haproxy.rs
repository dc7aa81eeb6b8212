//! A real HAProxy (the distribution's package) for agent-check tests: a generated config
//! with one backend on loopback, run as a child process, and its server states read from the
//! admin socket's `show stat` CSV.
//!
//! Shared by the library's, the monitor's and the example's agent-check tests. It is not a
//! general HAProxy wrapper: one backend, checks only, no traffic. Test support: it panics
//! with what it saw rather than returning errors.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// A running HAProxy with one backend, `be`, killed when dropped.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Haproxy {
    /// How long HAProxy gets to reflect a new verdict. With `agent-inter 100ms` it takes a few
    /// hundred milliseconds; the bound only keeps a broken test from hanging.
    pub const SETTLE: Duration = Duration::from_secs(15);

    /// The HAProxy binary, or None when it is missing and the test may be skipped (outside CI).
    /// In CI (env `CI` set) a missing HAProxy is a failure: `scripts/test` installs it.
    pub fn binary() -> Option<PathBuf> {
        let found = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin")])
                .map(|dir| dir.join("haproxy"))
                .find(|candidate| candidate.is_file())
        });
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "haproxy is not installed, and CI is set: scripts/test must install the haproxy package"
            );
            eprintln!(
                "skipping: haproxy is not installed (apt-get install -y haproxy); CI runs this test"
            );
        }
        found
    }

    /// Start HAProxy with one backend `be` holding `servers`, full server lines such as
    /// `server app 127.0.0.1:8000 weight 100 check inter 100ms agent-check agent-port 8001 agent-inter 100ms`.
    pub async fn start(binary: &std::path::Path, servers: &[String]) -> Haproxy {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vitals-haproxy-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("creating haproxy's directory");
        let socket = dir.join("admin.sock");
        let config = format!(
            "global\n    stats socket {} level admin\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n\
             backend be\n{}\n",
            socket.display(),
            servers
                .iter()
                .map(|line| format!("    {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config).expect("writing haproxy.cfg");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("creating haproxy.log");
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().expect("sharing haproxy.log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("starting haproxy");
        let mut haproxy = Haproxy { child, dir, socket };
        let started = tokio::time::Instant::now();
        while UnixStream::connect(&haproxy.socket).await.is_err() {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!("haproxy exited with {status}: {}", haproxy.log());
            }
            assert!(
                started.elapsed() < Self::SETTLE,
                "haproxy's admin socket did not open: {}",
                haproxy.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        haproxy
    }

    /// `show stat` through the admin socket, as CSV.
    async fn show_stat(&self) -> String {
        let mut admin = UnixStream::connect(&self.socket)
            .await
            .expect("connecting to haproxy's admin socket");
        admin
            .write_all(b"show stat\n")
            .await
            .expect("asking haproxy for its stats");
        let mut csv = String::new();
        admin
            .read_to_string(&mut csv)
            .await
            .expect("reading haproxy's stats");
        csv
    }

    /// What HAProxy wrote on stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// (status, weight, last agent reply) of server `name` in backend `be`, as HAProxy's
    /// stats show them: status is `UP`, `DOWN (agent)`, `DRAIN (agent)`, `MAINT`, …; the last
    /// agent reply reads `via agent : down (not ready: database failing)`.
    pub async fn server(&self, name: &str) -> (String, u32, String) {
        let csv = self.show_stat().await;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |field: &str| {
            header
                .iter()
                .position(|h| *h == field)
                .unwrap_or_else(|| panic!("no column {field:?} in haproxy's stats:\n{csv}"))
        };
        let (px, sv, status, weight, desc) = (
            column("pxname"),
            column("svname"),
            column("status"),
            column("weight"),
            column("last_agt"),
        );
        for line in lines {
            let row = split_csv(line);
            if row.len() > desc && row[px] == "be" && row[sv] == name {
                return (
                    row[status].to_string(),
                    row[weight].parse().unwrap_or(0),
                    row[desc].to_string(),
                );
            }
        }
        panic!("no server {name:?} in haproxy's stats:\n{csv}");
    }

    /// One field of server `name`'s row in `show stat` (`status`, `chkfail`, `chkdown`,
    /// `check_status`, …).
    pub async fn stat(&self, name: &str, field: &str) -> String {
        let csv = self.show_stat().await;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |field: &str| {
            header
                .iter()
                .position(|h| *h == field)
                .unwrap_or_else(|| panic!("no column {field:?} in haproxy's stats:\n{csv}"))
        };
        let (px, sv, wanted) = (column("pxname"), column("svname"), column(field));
        for line in lines {
            let row = split_csv(line);
            if row.len() > wanted && row[px] == "be" && row[sv] == name {
                return row[wanted].clone();
            }
        }
        panic!("no server {name:?} in haproxy's stats:\n{csv}");
    }

    /// Poll until server `name`'s status starts with `status` (and, if given, its weight is
    /// `weight`); panic with what HAProxy last showed after [`Self::SETTLE`].
    pub async fn wait_for(&self, name: &str, status: &str, weight: Option<u32>) {
        let started = tokio::time::Instant::now();
        loop {
            let seen = self.server(name).await;
            if seen.0.starts_with(status) && weight.is_none_or(|weight| weight == seen.1) {
                return;
            }
            assert!(
                started.elapsed() < Self::SETTLE,
                "haproxy shows server {name} as {seen:?}, expected {status} (weight {weight:?}); log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One CSV line split into fields, honouring double quotes: HAProxy quotes a field that
/// holds a comma, as an agent's description may.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(field) = fields.last_mut() {
                    field.push('"');
                }
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}
