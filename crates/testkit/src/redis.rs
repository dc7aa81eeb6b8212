//! A real, throwaway Redis server on loopback, owned by one test.
//!
//! [`Redis::start`] runs `redis-server --bind 127.0.0.1 --port PORT --save '' --appendonly no`
//! in a temporary directory and waits until it answers `PING`. The test can stop it
//! ([`Redis::stop`], `SIGTERM` by PID), start it again on the same port
//! ([`Redis::start_again`]; the data is gone, as nothing is persisted), or pause it with
//! [`signal`](crate::signal)`(redis.pid(), Signal::SIGSTOP)`. Dropping it kills the server.
//!
//! What it is not: a Redis client. Readiness is checked by speaking RESP over a plain
//! `TcpStream` (`PING\r\n` → `+PONG`), so this crate needs no redis dependency; tests use
//! whatever client the code under test uses. Tests that only need a Redis that stays up should
//! use [`shared_redis_url`](crate::shared_redis_url) instead.
//!
//! The binary is found through `VITALS_REDIS_BIN` (the `redis-server` binary, or a directory
//! holding it), else `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;
use crate::port::free_port;
use crate::process::{ServerProcess, Signal, Spec, env_nonempty, find_in_path};

/// How many times a start is retried on a new port when another process took the free one.
const PORT_ATTEMPTS: usize = 3;

/// A Redis server that this test started, stops, and cleans up.
#[derive(Debug)]
pub struct Redis {
    // Field order matters: the server is killed (dropped) before its directory is removed.
    server: ServerProcess,
    port: u16,
    dir: TempDir,
}

impl Redis {
    /// Starts a new server on a free loopback port and waits until it answers `PING`.
    pub async fn start() -> Result<Self, Error> {
        let program = find_redis_server()?;
        let dir = tempfile::Builder::new()
            .prefix("vitals-redis-")
            .tempdir()
            .map_err(|e| Error::io("could not create a temporary directory for redis", e))?;
        let spec = Spec {
            name: String::new(),
            program,
            args: Vec::new(),
            run_as: None,
            cwd: dir.path().to_path_buf(),
            log: dir.path().join("redis.log"),
            // SIGTERM is Redis' clean shutdown (with --save '' it writes nothing).
            stop_signal: Signal::SIGTERM,
            drop_signal: Signal::SIGKILL,
        };
        let mut redis = Self {
            server: ServerProcess::new(spec),
            port: 0,
            dir,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            redis.port = free_port()?;
            let (name, args) = redis.server_args();
            redis.server.set_port(name, args);
            redis.server.spawn()?;
            match redis.wait_ready().await {
                Ok(()) => break,
                Err(Error::Exited { .. }) if attempt < PORT_ATTEMPTS && redis.lost_port_race() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID (stays the same until [`Self::start_again`]).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The server's log file (standard output and error, across restarts).
    pub fn log_path(&self) -> &Path {
        self.server.log()
    }

    /// `SIGTERM` by PID, then waits until the process is gone. Connections to the port are
    /// refused afterwards.
    pub async fn stop(&mut self) -> Result<(), Error> {
        self.server.stop().await
    }

    /// Starts the server again on the same port (empty: nothing was persisted) and waits
    /// until it answers `PING`. The PID changes.
    pub async fn start_again(&mut self) -> Result<(), Error> {
        self.server.spawn()?;
        self.wait_ready().await
    }

    /// Sends one `PING` on a new connection and expects `+PONG`.
    pub async fn ping(&self) -> Result<(), Error> {
        ping(self.port).await
    }

    fn server_args(&self) -> (String, Vec<OsString>) {
        let name = format!("redis on 127.0.0.1:{}", self.port);
        let args = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string().into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.path().as_os_str().to_owned(),
        ];
        (name, args)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let port = self.port;
        self.server
            .wait_ready(|| async move { ping(port).await.map_err(|e| e.to_string()) })
            .await
    }

    fn lost_port_race(&self) -> bool {
        std::fs::read_to_string(self.server.log())
            .map(|log| log.contains("Address already in use"))
            .unwrap_or(false)
    }
}

fn find_redis_server() -> Result<PathBuf, Error> {
    if let Some(value) = env_nonempty("VITALS_REDIS_BIN") {
        let mut path = PathBuf::from(value);
        if path.is_dir() {
            path.push("redis-server");
        }
        return if crate::process::is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::BinaryNotFound {
                program: "redis-server",
                looked: format!("VITALS_REDIS_BIN={}", path.display()),
                hint: "point VITALS_REDIS_BIN at the redis-server binary (or unset it to use PATH)",
            })
        };
    }
    find_in_path("redis-server").ok_or(Error::BinaryNotFound {
        program: "redis-server",
        looked: "VITALS_REDIS_BIN, PATH".to_owned(),
        hint: "install Redis (`apt-get install redis-server`; scripts/test does it) or set \
               VITALS_REDIS_BIN to the redis-server binary",
    })
}

/// One RESP inline `PING` on a fresh connection.
async fn ping(port: u16) -> Result<(), Error> {
    let addr = format!("127.0.0.1:{port}");
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| Error::io(format!("could not connect to redis on {addr}"), e))?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|e| Error::io(format!("could not send PING to redis on {addr}"), e))?;
    // The answer is one short line; read until its CRLF (or the server closes).
    let mut answer = Vec::with_capacity(16);
    let mut buf = [0u8; 64];
    while !answer.ends_with(b"\r\n") && answer.len() < 1024 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| Error::io(format!("could not read redis' answer on {addr}"), e))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    if answer.starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(Error::UnexpectedReply {
            addr,
            answer: String::from_utf8_lossy(&answer).trim_end().to_owned(),
        })
    }
}
