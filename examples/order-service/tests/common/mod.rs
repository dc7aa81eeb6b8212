//! Runs the real order-service binary against real PostgreSQL and Redis, and asks it things
//! over real HTTP.

#![allow(dead_code, clippy::unwrap_used, missing_debug_implementations)]

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use vitals_testkit::{Postgres, Redis, free_port, until};

pub struct Service {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }
}

/// Real servers of our own, which the test may stop and start.
pub async fn servers() -> (Postgres, Redis) {
    let (pg, redis) = tokio::join!(Postgres::start(), Redis::start());
    (pg.expect("postgres starts"), redis.expect("redis starts"))
}

impl Service {
    /// Start the service and wait until its startup probe passes.
    pub async fn start(pg: &Postgres, redis: &Redis, extra: &[&str]) -> Service {
        Service::start_under(&[], pg, redis, extra).await
    }

    /// Start the service through `wrapper` (`["prlimit", "--nofile=1024", "--"]`), else as
    /// [`Service::start`].
    pub async fn start_under(
        wrapper: &[&str],
        pg: &Postgres,
        redis: &Redis,
        extra: &[&str],
    ) -> Service {
        let port = free_port().unwrap();
        let binary = env!("CARGO_BIN_EXE_order-service");
        let mut command = match wrapper {
            [] => Command::new(binary),
            [program, args @ ..] => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
        };
        let child = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &pg.url()])
            .args(["--redis-url", &redis.url()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the order-service binary runs");
        let service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        service
            .wait_for("/startup", 200, Duration::from_secs(30))
            .await;
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        Answer {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn try_get(&self, path: &str) -> Option<Answer> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        Some(Answer {
            status: response.status().as_u16(),
            body: response.text().await.ok()?,
        })
    }

    /// Poll `path` until it answers `status`, or panic after `within` with the last answer.
    /// Real servers take real time to die and come back; this waits for a state, bounded.
    pub async fn wait_for(&self, path: &str, status: u16, within: Duration) -> Answer {
        let what = format!("{path} to answer {status}");
        until(what, within, async || match self.try_get(path).await {
            Some(answer) if answer.status == status => Ok(answer),
            Some(answer) => Err(Some(format!("{} {}", answer.status, answer.body))),
            None => Err(None),
        })
        .await
    }
}
