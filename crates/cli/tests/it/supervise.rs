//! `vitals supervise` against real children, real probes and real signals (issue 14): the
//! rows of docs/SUPERVISE.md that need a process (kill, restart, exit code, signal
//! forwarding, reaping); the timing rows are proved on simulated time in
//! `crates/supervise/src/machine/tests.rs`. Periods are fractions of a second here.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::vitals;
use vitals_testkit::{Ready, Running, Signal, children_of, group_alive, holds, proc_stat, until};

const BANNER: &str = "vitals supervise: running ";
const WITHIN: Duration = Duration::from_secs(20);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `vitals supervise --config CONFIG --listen 127.0.0.1:0 -- COMMAND…`, once it runs; and
/// its base URL from the banner.
async fn supervise(config: &Path, command: &[&str]) -> (Running, String) {
    start(
        vitals()
            .args(["supervise", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--")
            .args(command),
    )
    .await
}

/// Starts a `vitals supervise` command that listens; the base URL from its banner.
async fn start(command: &mut tokio::process::Command) -> (Running, String) {
    let running = Running::start(command, Ready::Line(BANNER)).await.unwrap();
    let base = running
        .banner()
        .split("readiness on ")
        .nth(1)
        .and_then(|rest| rest.split("/readyz").next())
        .unwrap()
        .to_owned();
    (running, base)
}

async fn status(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn readyz(base: &str) -> (u16, String) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}

/// Runs the supervisor to its end and returns its exit code.
async fn exit_code(args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::time::timeout(WITHIN, vitals().args(args).output())
        .await
        .expect("vitals supervise exits")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `vitals demo` on `listen` as the supervised child: checks every 100 ms, a 100 ms drain.
fn demo_child(listen: &str) -> [&str; 8] {
    [
        env!("CARGO_BIN_EXE_vitals"),
        "demo",
        "--listen",
        listen,
        "--interval",
        "100ms",
        "--drain-delay",
        "100ms",
    ]
}

#[tokio::test]
async fn the_childs_readiness_is_served_on_readyz_and_the_agent_check_and_sigterm_is_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = vitals_testkit::free_port().unwrap();
    let config = write(
        dir.path(),
        "svc.toml",
        &format!(
            "agentCheck = \"127.0.0.1:0\"\n[readinessProbe]\nhttpGet = {{ path = \"/readyz\", port = {port} }}\nperiodSeconds = 0.1\nfailureThreshold = 3\n"
        ),
    );
    let listen = format!("127.0.0.1:{port}");
    let (mut supervisor, base) = supervise(&config, &demo_child(&listen)).await;
    let agent: std::net::SocketAddr = supervisor
        .banner()
        .split("agent check on ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let agent_says = async || {
        use tokio::io::AsyncReadExt;
        let mut stream = tokio::net::TcpStream::connect(agent).await.unwrap();
        let mut line = String::new();
        stream.read_to_string(&mut line).await.unwrap();
        line
    };
    until("the supervisor's /readyz to pass", WITHIN, async || {
        holds(readyz(&base).await, |(code, _)| *code == 200)
    })
    .await;
    assert_eq!(agent_says().await, "up ready 100%\n");

    // The child turns unready: so does the supervisor, saying why.
    let client = reqwest::Client::new();
    client
        .post(format!("http://{listen}/demo/database/down"))
        .send()
        .await
        .unwrap();
    let (_, body) = until("the supervisor's /readyz to fail", WITHIN, async || {
        holds(readyz(&base).await, |(code, _)| *code == 503)
    })
    .await;
    assert!(body.contains("readiness probe fails: "), "{body}");
    assert!(body.contains("503"), "the child's answer is quoted: {body}");
    let line = agent_says().await;
    assert!(
        line.starts_with("down ready #readiness probe fails"),
        "{line}"
    );
    // Unready is not dead: nothing was restarted.
    assert_eq!(status(&base).await["restarts"], 0);

    // SIGTERM: passed on to the demo, which drains and exits 0; so does the supervisor.
    supervisor.signal(Signal::SIGTERM).unwrap();
    let exit = supervisor.wait(WITHIN).await.unwrap();
    assert_eq!(exit.code(), Some(0), "{}", supervisor.stderr());
    assert!(
        supervisor.stderr().contains("received SIGTERM"),
        "{}",
        supervisor.stderr()
    );
}

#[tokio::test]
async fn a_failed_liveness_probe_terms_the_child_then_kills_its_whole_group_and_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let config = write(
        dir.path(),
        "svc.toml",
        &format!(
            "terminationGracePeriodSeconds = 0.3\n[livenessProbe]\nexec = {{ command = [\"sh\", \"-c\", \"test ! -e {d}/sick\"] }}\nperiodSeconds = 0.1\nfailureThreshold = 3\n"
        ),
    );
    // A child that survives SIGTERM (it records it) and has a grandchild in its group. Each
    // start clears the `sick` mark, so only the first child fails its liveness probe.
    let script = format!(
        "rm -f {d}/sick; echo $$ >> {d}/starts; trap 'echo TERM >> {d}/signals' TERM; sleep 300 & while true; do wait; done"
    );
    let (mut supervisor, base) = supervise(&config, &["sh", "-c", &script]).await;
    let first: u32 = until("the child to start", WITHIN, async || {
        read(&dir.path().join("starts"))
            .lines()
            .next()?
            .parse()
            .ok()
    })
    .await;
    until("the child and its sleep in the group", WITHIN, async || {
        group_alive(first).len() == 2
    })
    .await;

    write(dir.path(), "sick", "");
    until("the child to be started again", WITHIN, async || {
        read(&dir.path().join("starts")).lines().count() >= 2
    })
    .await;
    // It got SIGTERM first, ignored it, and the whole group died by SIGKILL.
    assert!(read(&dir.path().join("signals")).contains("TERM"));
    until("the first child's group to be gone", WITHIN, async || {
        holds(group_alive(first), Vec::is_empty)
    })
    .await;
    let seen = status(&base).await;
    assert_eq!(seen["restarts"], 1, "{seen}");
    assert_eq!(seen["last_exit"], 137, "{seen}");
    assert_eq!(seen["phase"], "running", "{seen}");
    // The second child ignores SIGTERM too: killed at the end of the grace period.
    supervisor.signal(Signal::SIGTERM).unwrap();
    let exit = supervisor.wait(WITHIN).await.unwrap();
    assert_eq!(exit.code(), Some(137), "{}", supervisor.stderr());
}

#[tokio::test]
async fn a_probe_past_its_timeout_fails_and_restart_policy_never_exits_with_the_childs_code() {
    let dir = tempfile::tempdir().unwrap();
    // The liveness probe hangs past timeoutSeconds: one failure is enough here.
    let config = write(
        dir.path(),
        "svc.toml",
        "restartPolicy = \"Never\"\n[livenessProbe]\nexec = { command = [\"sleep\", \"5\"] }\ntimeoutSeconds = 0.2\nperiodSeconds = 0.5\nfailureThreshold = 1\n",
    );
    let config = config.display().to_string();
    let (code, stderr) = exit_code(&["supervise", "--config", &config, "--", "sleep", "300"]).await;
    // sleep dies of the SIGTERM: 128 + 15.
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("no answer within 200ms"), "{stderr}");
    assert!(stderr.contains("liveness probe failed 1 times"), "{stderr}");
}

#[tokio::test]
async fn a_failed_startup_probe_stops_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let config = write(
        dir.path(),
        "svc.toml",
        &format!(
            "restartPolicy = \"Never\"\n[startupProbe]\nexec = {{ command = [\"test\", \"-e\", \"{d}/started\"] }}\nperiodSeconds = 0.1\nfailureThreshold = 3\n"
        ),
    );
    let config = config.display().to_string();
    let (code, stderr) = exit_code(&["supervise", "--config", &config, "--", "sleep", "300"]).await;
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("startup probe failed 3 times"), "{stderr}");
}

#[tokio::test]
async fn restart_policies_decide_between_restarting_and_exiting_with_the_childs_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let never = write(dir.path(), "never.toml", "restartPolicy = \"Never\"\n")
        .display()
        .to_string();
    let (code, stderr) =
        exit_code(&["supervise", "--config", &never, "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(code, Some(3), "{stderr}");

    // OnFailure: the first run fails and is restarted at once; the second succeeds: exit 0.
    let on_failure = write(
        dir.path(),
        "on-failure.toml",
        "restartPolicy = \"OnFailure\"\n",
    )
    .display()
    .to_string();
    let script =
        format!("echo run >> {d}/runs; test -e {d}/once && exit 0; touch {d}/once; exit 1");
    let (code, stderr) = exit_code(&[
        "supervise",
        "--config",
        &on_failure,
        "--",
        "sh",
        "-c",
        &script,
    ])
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(read(&dir.path().join("runs")).lines().count(), 2);

    // Always: even a success is restarted; the third run waits out the back-off (10 s).
    let always = write(dir.path(), "always.toml", "restartPolicy = \"Always\"\n");
    let script = format!("echo run >> {d}/always");
    let (mut supervisor, base) = supervise(&always, &["sh", "-c", &script]).await;
    let seen = until("two runs and a back-off", WITHIN, async || {
        holds(status(&base).await, |s| s["phase"] == "waiting")
    })
    .await;
    assert_eq!(seen["restarts"], 2, "{seen}");
    assert_eq!(read(&dir.path().join("always")).lines().count(), 2);
    assert!(
        seen["reason"].as_str().unwrap().contains("back-off"),
        "{seen}"
    );
    // SIGTERM while waiting to restart: exit at once.
    supervisor.signal(Signal::SIGTERM).unwrap();
    assert_eq!(supervisor.wait(WITHIN).await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn signals_are_forwarded_to_the_child_and_its_exit_code_is_the_supervisors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let config = write(
        dir.path(),
        "svc.toml",
        "terminationGracePeriodSeconds = 10\n",
    );
    let mut traps = String::new();
    for name in ["HUP", "QUIT", "USR1", "USR2"] {
        traps.push_str(&format!("trap 'echo {name} >> {d}/got' {name}; "));
    }
    let script =
        format!("{traps} trap 'exit 42' TERM; touch {d}/up; while true; do sleep 0.05; done");
    let (mut supervisor, _base) = supervise(&config, &["sh", "-c", &script]).await;
    until("the child to set its traps", WITHIN, async || {
        dir.path().join("up").exists()
    })
    .await;
    for (signal, name) in [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
    ] {
        supervisor.signal(signal).unwrap();
        until(format!("the child to get SIG{name}"), WITHIN, async || {
            read(&dir.path().join("got")).contains(name)
        })
        .await;
    }
    supervisor.signal(Signal::SIGTERM).unwrap();
    let exit = supervisor.wait(WITHIN).await.unwrap();
    assert_eq!(exit.code(), Some(42), "{}", supervisor.stderr());
}

#[tokio::test]
async fn a_command_that_cannot_start_is_127_and_a_bad_config_125_with_every_error() {
    let (code, stderr) = exit_code(&["supervise", "--", "/nonexistent/server"]).await;
    assert_eq!(code, Some(127), "{stderr}");
    assert!(stderr.contains("/nonexistent/server"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "svc.toml",
        "restartPolicy = \"always\"\n[livenessProbe]\ntcpSocket = { port = 0 }\n",
    )
    .display()
    .to_string();
    let (code, stderr) = exit_code(&["supervise", "--config", &config, "--", "true"]).await;
    assert_eq!(code, Some(125), "{stderr}");
    assert!(stderr.contains("svc.toml:1:17: restartPolicy"), "{stderr}");
    assert!(
        stderr.contains("livenessProbe.tcpSocket.port: 0 is not a port"),
        "{stderr}"
    );
}

#[tokio::test]
async fn orphans_of_the_child_are_reaped_by_the_subreaper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // The inner shell leaves `sleep 1` behind and exits: the sleep is orphaned.
    let script = format!("sh -c 'sleep 1 & echo $! > {d}/orphan'; exec sleep 300");
    let reaper = Running::start(
        vitals().args(["supervise", "--subreaper", "--", "sh", "-c", &script]),
        Ready::Line(BANNER),
    )
    .await
    .unwrap();
    let orphan: u32 = until("the orphan's pid", WITHIN, async || {
        read(&dir.path().join("orphan")).trim().parse().ok()
    })
    .await;
    // Handed to the reaper (the supervisor itself is not a subreaper)…
    let seen = until("the orphan to be reparented", WITHIN, async || {
        holds(proc_stat(orphan), |seen| {
            seen.as_ref().is_some_and(|p| p.parent == reaper.pid())
        })
    })
    .await
    .unwrap();
    assert_eq!(seen.parent, reaper.pid());
    // …and reaped when it exits: no zombie stays behind.
    until("the orphan to be reaped", WITHIN, async || {
        holds(proc_stat(orphan), Option::is_none)
    })
    .await;
    // SIGTERM reaches the service through the reaper and the supervisor.
    let mut reaper = reaper;
    reaper.signal(Signal::SIGTERM).unwrap();
    let exit = reaper.wait(WITHIN).await.unwrap();
    assert_eq!(exit.code(), Some(143), "{}", reaper.stderr());
}

#[tokio::test]
async fn as_pid_1_in_a_pid_namespace_it_reaps_orphans() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"));
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|path| Path::new(path).exists());
    let Some(unshare) = unshare.filter(|_| root) else {
        eprintln!(
            "skipped: needs root and unshare(1) to run vitals supervise as PID 1 in a new pid namespace"
        );
        return;
    };
    let script = "sh -c 'sleep 1 &'; exec sleep 300";
    let outer = Running::start(
        tokio::process::Command::new(unshare)
            .args(["--pid", "--fork", "--kill-child", "--"])
            .arg(env!("CARGO_BIN_EXE_vitals"))
            .args(["supervise", "--", "sh", "-c", script]),
        Ready::Line(BANNER),
    )
    .await
    .unwrap();
    // unshare's child is PID 1 of the namespace: the reaper.
    let pid1 = until("PID 1 of the namespace", WITHIN, async || {
        children_of(outer.pid()).first().map(|p| p.pid)
    })
    .await;
    let sleeps = |pid1| {
        children_of(pid1)
            .into_iter()
            .filter(|p| p.name == "sleep")
            .collect::<Vec<_>>()
    };
    until(
        "the orphaned sleep to be handed to PID 1",
        WITHIN,
        async || !sleeps(pid1).is_empty(),
    )
    .await;
    until(
        "the orphan to be reaped, not left a zombie",
        WITHIN,
        async || {
            holds(children_of(pid1), |children| {
                children.iter().all(|p| p.name != "sleep" && p.state != "Z")
            })
        },
    )
    .await;
}

#[tokio::test]
async fn probes_can_be_given_as_flags() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let readiness = format!("tcp://{addr}");
    let (mut supervisor, base) = start(vitals().args([
        "supervise",
        "--listen",
        "127.0.0.1:0",
        "--readiness",
        &readiness,
        "--",
        "sleep",
        "300",
    ]))
    .await;
    // The first run is at the child's start (initialDelaySeconds 0).
    until("ready through the flag's TCP probe", WITHIN, async || {
        holds(readyz(&base).await, |(code, _)| *code == 200)
    })
    .await;
    supervisor.signal(Signal::SIGTERM).unwrap();
    assert_eq!(supervisor.wait(WITHIN).await.unwrap().code(), Some(143));

    let (code, stderr) = exit_code(&["supervise", "--liveness", "ftp://x", "--", "true"]).await;
    assert_eq!(code, Some(125), "{stderr}");
    assert!(stderr.contains("--liveness \"ftp://x\""), "{stderr}");
}

/// A `grpc` probe as in a pod spec: the child's `grpc.health.v1` service decides readiness
/// (here `vitals demo`, whose `readiness` service follows its readiness group).
#[tokio::test]
async fn a_grpc_readiness_probe_follows_the_childs_health_service() {
    let dir = tempfile::tempdir().unwrap();
    let port = vitals_testkit::free_port().unwrap();
    let config = write(
        dir.path(),
        "svc.toml",
        &format!(
            "[readinessProbe]\ngrpc = {{ port = {port}, service = \"readiness\" }}\nperiodSeconds = 0.1\nfailureThreshold = 3\n"
        ),
    );
    let listen = format!("127.0.0.1:{port}");
    let (mut supervisor, base) = supervise(&config, &demo_child(&listen)).await;
    until("the supervisor's /readyz to pass", WITHIN, async || {
        holds(readyz(&base).await, |(code, _)| *code == 200)
    })
    .await;
    reqwest::Client::new()
        .post(format!("http://{listen}/demo/database/down"))
        .send()
        .await
        .unwrap();
    let (_, body) = until("the supervisor's /readyz to fail", WITHIN, async || {
        holds(readyz(&base).await, |(code, _)| *code == 503)
    })
    .await;
    assert!(
        body.contains("NOT_SERVING"),
        "the child's answer is quoted: {body}"
    );
    // Stopped as a service manager would, so the child goes with it (a SIGKILLed supervisor
    // leaves its child's group behind: docs/SUPERVISE.md).
    supervisor.signal(Signal::SIGTERM).unwrap();
    supervisor.wait(WITHIN).await.unwrap();
}

/// Issue 15: an exit `vitals supervise` sees (`waitpid`) is pushed to the monitor at once as
/// `/ping/<id>/exited`, and the monitor takes the heartbeat target down then — first-hand
/// evidence — rather than after its period and thresholds (an hour here).
#[tokio::test(flavor = "multi_thread")]
async fn an_exit_the_supervisor_sees_takes_the_monitors_target_down_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let monitor_config = dir.path().join("vitals.toml");
    std::fs::write(
        &monitor_config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[target]]\nid = \"worker\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_id = \"worker-7f3a\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let (_monitor, base) = crate::support::serve(&monitor_config).await;
    let client = reqwest::Client::new();
    crate::support::ping(&client, &base, "worker-7f3a").await;
    let state = async || {
        crate::support::get(&client, format!("{base}/api/v1/targets/worker")).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    until("the worker healthy", Duration::from_secs(10), async || {
        state().await == "healthy"
    })
    .await;

    // The child runs a moment, then exits 3; the supervisor does not restart it.
    let config = write(
        dir.path(),
        "supervise.toml",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 0.5; exit 3\"]\nrestartPolicy = \"Never\"\nreportExitTo = \"{base}/ping/worker-7f3a\"\n"
        ),
    );
    let mut supervisor = vitals()
        .args(["supervise", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    until("the worker down", Duration::from_secs(10), async || {
        state().await == "down"
    })
    .await;
    let target = crate::support::get(&client, format!("{base}/api/v1/targets/worker")).await;
    let text = target.to_string();
    assert!(
        text.contains("confirmed dead: the process exited: exit 3 (seen by vitals supervise)"),
        "{text}"
    );
    let exited = tokio::time::timeout(Duration::from_secs(10), supervisor.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        exited.code(),
        Some(3),
        "the supervisor exits as its child did"
    );
}

/// A `reportExitTo` that is not an http(s) URL is refused at start, naming the key.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_report_exit_to_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "supervise.toml",
        "command = [\"true\"]\nreportExitTo = \"ftp://monitor/ping/x\"\n",
    );
    let output = vitals()
        .args(["supervise", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("reportExitTo"), "{stderr}");
    assert!(stderr.contains("is not an http(s) URL"), "{stderr}");
}
