//! A real, throwaway PostgreSQL server on loopback, owned by one test.
//!
//! [`Postgres::start`] makes a new cluster in a temporary directory (`initdb`), starts
//! `postgres` on a free port of 127.0.0.1 with `pg_stat_statements` loaded, and waits until it
//! accepts connections. The test can then stop it ([`Postgres::stop`], a fast shutdown by PID),
//! start it again on the same port and data ([`Postgres::start_again`]), pause it with
//! [`signal`](crate::signal)`(pg.pid(), Signal::SIGSTOP)`, and count the queries the code under
//! test sent ([`Postgres::count_queries`]). Dropping it kills the server and removes the
//! directory.
//!
//! What it is not: a fixture for tests that only need *a* database that stays up. Those should
//! use [`shared_postgres_url`](crate::shared_postgres_url), the one server `scripts/test` starts
//! for the whole run, and save the second or so that `initdb` takes.
//!
//! Binaries are found through `VITALS_PG_BIN` (a directory holding `postgres` and `initdb`),
//! else the highest version under `/usr/lib/postgresql/*/bin`, else `PATH`. As root, the server
//! runs as the `postgres` user through `setpriv`, which execs in place, so [`Postgres::pid`] is
//! the postmaster's own PID.
//!
//! Do not use it under tokio's paused clock: waiting for a real server is real time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

use crate::Error;
use crate::port::free_port;
use crate::process::{
    RunAs, ServerProcess, Signal, Spec, env_nonempty, find_in_path, is_executable,
};

/// How many times a start is retried on a new port when another process took the free one.
const PORT_ATTEMPTS: usize = 3;

/// A PostgreSQL server that this test started, stops, and cleans up.
#[derive(Debug)]
pub struct Postgres {
    // Field order matters: the server is killed (dropped) before its directory is removed.
    server: ServerProcess,
    port: u16,
    dir: TempDir,
}

/// Where the PostgreSQL binaries are.
#[derive(Debug)]
struct PgBin {
    postgres: PathBuf,
    initdb: PathBuf,
}

impl PgBin {
    const HINT: &'static str = "install PostgreSQL (`apt-get install postgresql`; scripts/test \
                                does it) or set VITALS_PG_BIN to the directory holding \
                                `postgres` and `initdb`";

    fn find() -> Result<Self, Error> {
        if let Some(dir) = env_nonempty("VITALS_PG_BIN") {
            let dir = PathBuf::from(dir);
            return Self::in_dir(&dir).ok_or_else(|| Error::BinaryNotFound {
                program: "postgres",
                looked: format!("VITALS_PG_BIN={}", dir.display()),
                hint: "point VITALS_PG_BIN at a directory holding both `postgres` and `initdb`, \
                       such as /usr/lib/postgresql/15/bin",
            });
        }
        if let Some(found) = Self::highest_in_usr_lib() {
            return Ok(found);
        }
        // The client package alone (psql) also makes /usr/lib/postgresql/N/bin, so a bin
        // directory only counts when `postgres` itself is in it.
        let postgres = find_in_path("postgres").ok_or(Error::BinaryNotFound {
            program: "postgres",
            looked: "VITALS_PG_BIN, /usr/lib/postgresql/*/bin, PATH".to_owned(),
            hint: Self::HINT,
        })?;
        let beside = postgres.parent().map(|dir| dir.join("initdb"));
        let initdb = beside
            .filter(|p| is_executable(p))
            .or_else(|| find_in_path("initdb"))
            .ok_or(Error::BinaryNotFound {
                program: "initdb",
                looked: "beside postgres, PATH".to_owned(),
                hint: Self::HINT,
            })?;
        Ok(Self { postgres, initdb })
    }

    fn in_dir(dir: &Path) -> Option<Self> {
        let postgres = dir.join("postgres");
        let initdb = dir.join("initdb");
        (is_executable(&postgres) && is_executable(&initdb)).then_some(Self { postgres, initdb })
    }

    fn highest_in_usr_lib() -> Option<Self> {
        let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let version = name
                    .split('.')
                    .map(str::parse)
                    .collect::<Result<Vec<u32>, _>>()
                    .ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort();
        versions
            .into_iter()
            .rev()
            .find_map(|(_, dir)| Self::in_dir(&dir))
    }
}

impl Postgres {
    /// Makes a new cluster and starts it on a free loopback port.
    ///
    /// Takes a second or two (mostly `initdb`). Fails with a message naming what to install
    /// when the binaries are missing, and with the server's log tail when it does not come up.
    pub async fn start() -> Result<Self, Error> {
        let bin = PgBin::find()?;
        let run_as = RunAs::when_root("postgres")?;
        let dir = tempfile::Builder::new()
            .prefix("vitals-pg-")
            .tempdir()
            .map_err(|e| Error::io("could not create a temporary directory for postgresql", e))?;
        if let Some(user) = &run_as {
            user.chown(dir.path())?;
        }
        let data = dir.path().join("data");
        initdb(&bin, run_as.as_ref(), dir.path(), &data).await?;

        let spec = Spec {
            name: String::new(),
            program: bin.postgres,
            args: Vec::new(),
            run_as,
            cwd: dir.path().to_path_buf(),
            log: dir.path().join("postgres.log"),
            // SIGINT is PostgreSQL's "fast" shutdown: it ends sessions and exits cleanly.
            stop_signal: Signal::SIGINT,
            // SIGQUIT is the "immediate" shutdown: no checkpoint, but the postmaster still takes
            // its children and its shared memory down with it, which SIGKILL would leave behind.
            drop_signal: Signal::SIGQUIT,
        };
        let mut pg = Self {
            server: ServerProcess::new(spec),
            port: 0,
            dir,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            pg.port = free_port()?;
            let (name, args) = pg.server_args();
            pg.server.set_port(name, args);
            pg.server.spawn()?;
            match pg.wait_ready().await {
                Ok(()) => break,
                Err(Error::Exited { .. }) if attempt < PORT_ATTEMPTS && pg.lost_port_race() => {}
                Err(e) => return Err(e),
            }
        }
        pg.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the superuser, no password (trust auth).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's PID (stays the same until [`Self::start_again`]).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file (standard output and error, across restarts).
    pub fn log_path(&self) -> &Path {
        self.server.log()
    }

    /// Fast shutdown (`SIGINT` by PID), then waits until the process is gone. Connections to
    /// [`Self::url`] are refused afterwards.
    pub async fn stop(&mut self) -> Result<(), Error> {
        self.server.stop().await
    }

    /// Starts the server again on the same data directory and port, and waits until it
    /// accepts connections. The PID changes.
    pub async fn start_again(&mut self) -> Result<(), Error> {
        self.server.spawn()?;
        self.wait_ready().await
    }

    /// A new connection as the superuser. Its connection task runs on the current runtime and
    /// ends when the client is dropped.
    pub async fn connect(&self) -> Result<Client, Error> {
        connect(self.port).await.map_err(|source| Error::Postgres {
            what: format!("could not connect to postgresql at {}", self.url()),
            source,
        })
    }

    /// Runs `sql` (one or more statements, simple query protocol) on a new connection.
    pub async fn execute(&self, sql: &str) -> Result<(), Error> {
        let client = self.connect().await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|source| Error::Postgres {
                what: format!("could not run `{sql}`"),
                source,
            })
    }

    /// How many times statements whose text matches `pattern` (SQL `ILIKE`) were executed since
    /// the last [`Self::reset_query_counts`], summed over `pg_stat_statements.calls`.
    ///
    /// `pg_stat_statements` stores statements normalized: constants become parameters, so
    /// `SELECT 1` is counted as `SELECT $1` (whether it was sent as text or prepared). Count
    /// health-check pings with `count_queries("SELECT $1").await`. Statements that mention
    /// `pg_stat_statements` (this method's own queries) are left out of every count.
    ///
    /// The counters survive [`Self::stop`] and [`Self::start_again`] (a clean shutdown saves
    /// them); reset them when a test wants to count from zero.
    pub async fn count_queries(&self, pattern: &str) -> Result<i64, Error> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(SUM(calls), 0)::bigint FROM pg_stat_statements \
                 WHERE query ILIKE $1 AND query NOT ILIKE '%pg_stat_statements%'",
                &[&pattern],
            )
            .await
            .map_err(|source| Error::Postgres {
                what: format!("could not count queries matching {pattern:?}"),
                source,
            })?;
        row.try_get(0).map_err(|source| Error::Postgres {
            what: "could not read the query count".to_owned(),
            source,
        })
    }

    /// Forgets every statement counted so far (`pg_stat_statements_reset()`).
    pub async fn reset_query_counts(&self) -> Result<(), Error> {
        self.execute("SELECT pg_stat_statements_reset()").await
    }

    fn server_args(&self) -> (String, Vec<OsString>) {
        let name = format!("postgresql on 127.0.0.1:{}", self.port);
        let mut args: Vec<OsString> = vec!["-D".into(), self.data_dir().into_os_string()];
        let settings = [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={}", self.port),
            format!("unix_socket_directories={}", self.dir.path().display()),
            "fsync=off".to_owned(),
            "shared_preload_libraries=pg_stat_statements".to_owned(),
        ];
        for setting in settings {
            args.push("-c".into());
            args.push(setting.into());
        }
        (name, args)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let port = self.port;
        self.server
            .wait_ready(|| async move { connect(port).await.map(drop).map_err(|e| e.to_string()) })
            .await
    }

    /// Whether the last start failed because the port was taken after we picked it.
    fn lost_port_race(&self) -> bool {
        std::fs::read_to_string(self.server.log())
            .map(|log| log.contains("could not bind") || log.contains("already in use"))
            .unwrap_or(false)
    }
}

async fn initdb(bin: &PgBin, run_as: Option<&RunAs>, cwd: &Path, data: &Path) -> Result<(), Error> {
    let mut cmd = crate::process::command(run_as, &bin.initdb);
    cmd.arg("-D")
        .arg(data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync"])
        .args(["--encoding=UTF8", "--locale=C"])
        .current_dir(cwd)
        .stdin(std::process::Stdio::null());
    let output = cmd
        .output()
        .await
        .map_err(|e| Error::io(format!("could not run {}", bin.initdb.display()), e))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Error::CommandFailed {
        what: format!("{} -D {}", bin.initdb.display(), data.display()),
        status: output.status,
        output: text.trim().to_owned(),
    })
}

async fn connect(port: u16) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(NoTls).await?;
    // Errors on the connection surface on the client's next call, so the task's result
    // carries nothing the caller would not see anyway.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A new, empty schema in the server at `base_url` (usually
/// [`shared_postgres_url`](crate::shared_postgres_url)), and a URL whose connections use it
/// (`options=-csearch_path=…`): tests of a program that creates its own tables share one
/// server without seeing each other's rows. The schema is named after the process and a
/// counter, and left behind (the server is a throwaway).
pub async fn fresh_schema_url(base_url: &str) -> Result<String, Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let failed = |what: String| move |source| Error::Postgres { what, source };
    let (client, connection) = tokio_postgres::connect(base_url, NoTls)
        .await
        .map_err(failed(format!("could not connect to {base_url}")))?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .map_err(failed(format!("could not create schema {schema}")))?;
    drop(client);
    let _ = task.await;
    let join = if base_url.contains('?') { '&' } else { '?' };
    Ok(format!("{base_url}{join}options=-csearch_path%3D{schema}"))
}
