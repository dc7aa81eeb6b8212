//! `svc.toml`, the supervisor's configuration: the probe tables of a Kubernetes container
//! spec, with the same names (`livenessProbe.httpGet.port`, `periodSeconds`, …), the same
//! defaults and the same validation, so a probe can be copied from a pod spec as it is.
//!
//! ```toml
//! command = ["./server", "--port", "8080"]     # or after `--` on the command line
//! restartPolicy = "OnFailure"                  # Always (default), OnFailure, Never
//! terminationGracePeriodSeconds = 30
//! listen = "127.0.0.1:9090"                    # the supervisor's /readyz, /livez, /status
//! agentCheck = "127.0.0.1:9091"                # HAProxy agent check
//!
//! [startupProbe]
//! httpGet = { path = "/startupz", port = 8080 }
//! failureThreshold = 30
//! periodSeconds = 1
//!
//! [livenessProbe]
//! tcpSocket = { port = 8080 }
//!
//! [readinessProbe]
//! exec = { command = ["./check-ready"] }
//! ```
//!
//! One difference: seconds may have fractions (`periodSeconds = 0.2`), where Kubernetes
//! takes whole seconds; tests use it, and so can impatient people. Every problem is reported
//! at once, each with file, line and column and the field's full name.
//!
//! What it is not: a pod spec. No images, volumes, environment or resources.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vitals_probes::{Exec, Grpc, Http, Probe, Tcp};

use crate::machine::{Backoff, ProbeKind, ProbeTiming, RestartPolicy, Settings};

/// A probe ready to run, and what it looks at in words.
#[derive(Clone)]
pub struct ProbePlan {
    pub what: String,
    pub probe: Arc<dyn Probe>,
}

impl std::fmt::Debug for ProbePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// Everything `vitals supervise` needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub command: Vec<String>,
    pub settings: Settings,
    /// Startup, liveness, readiness (in [`ProbeKind::ALL`]'s order).
    pub probes: [Option<ProbePlan>; 3],
    pub listen: Option<SocketAddr>,
    pub agent_check: Option<SocketAddr>,
    /// `reportExitTo`: a monitor's ping URL for the child; each exit is POSTed to it at once
    /// as `<url>/exited` (issue 15: an exit seen by `waitpid` confirms a death first-hand).
    pub report_exit_to: Option<reqwest::Url>,
}

impl Plan {
    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbePlan> {
        self.probes[ProbeKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()]
        .as_ref()
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Every problem found, one per line, each `file:line:column: field: why`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileSpec {
    command: Option<Spanned<Vec<String>>>,
    restart_policy: Option<Spanned<String>>,
    termination_grace_period_seconds: Option<Spanned<f64>>,
    listen: Option<Spanned<String>>,
    agent_check: Option<Spanned<String>>,
    report_exit_to: Option<Spanned<String>>,
    startup_probe: Option<Spanned<ProbeSpec>>,
    liveness_probe: Option<Spanned<ProbeSpec>>,
    readiness_probe: Option<Spanned<ProbeSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProbeSpec {
    http_get: Option<HttpGet>,
    tcp_socket: Option<TcpSocket>,
    exec: Option<ExecAction>,
    grpc: Option<Spanned<GrpcAction>>,
    initial_delay_seconds: Option<Spanned<f64>>,
    period_seconds: Option<Spanned<f64>>,
    timeout_seconds: Option<Spanned<f64>>,
    success_threshold: Option<Spanned<i64>>,
    failure_threshold: Option<Spanned<i64>>,
    termination_grace_period_seconds: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpGet {
    path: Option<String>,
    port: Spanned<i64>,
    host: Option<String>,
    scheme: Option<Spanned<String>>,
    http_headers: Option<Vec<HttpHeader>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpHeader {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpSocket {
    port: Spanned<i64>,
    host: Option<String>,
}

/// Kubernetes' `GRPCAction`: `grpc.health.v1` `Check` of `service` (`""`, the server as a
/// whole, unless set) on the child's `port`, in cleartext as kubelet does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcAction {
    port: Spanned<i64>,
    service: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecAction {
    command: Spanned<Vec<String>>,
}

/// Where a span is, as `file:line:column`.
struct Source<'a> {
    path: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, span: Range<usize>) -> String {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{column}", self.path)
    }
}

/// Read and validate `path`; `command` (from after `--`) is used when not empty.
pub fn load(path: &Path, command: Vec<String>) -> Result<Plan, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text, command)
}

/// The plan for a command with no configuration file: no probes, restart policy Always.
pub fn bare(command: Vec<String>) -> Result<Plan, ConfigError> {
    if command.is_empty() {
        return Err(ConfigError::Invalid(vec![
            "no command: give one after `--` (vitals supervise -- ./server --port 8080) or as `command = [...]` in --config".to_string(),
        ]));
    }
    Ok(Plan {
        command,
        settings: Settings::default(),
        probes: [None, None, None],
        listen: None,
        agent_check: None,
        report_exit_to: None,
    })
}

/// Validate the text of a configuration named `path`.
pub fn parse(path: &str, text: &str, command: Vec<String>) -> Result<Plan, ConfigError> {
    let spec: FileSpec = toml::from_str(text).map_err(|error| ConfigError::Parse {
        path: path.to_string(),
        message: error.to_string(),
    })?;
    let source = Source { path, text };
    let mut problems = Vec::new();
    let mut problem = |span: Range<usize>, field: &str, why: String| {
        problems.push(format!("{}: {field}: {why}", source.at(span)));
    };

    let command = match (&spec.command, command.is_empty()) {
        (Some(file), true) if file.get_ref().is_empty() => {
            problem(
                file.span(),
                "command",
                "is empty; name the program to run".into(),
            );
            Vec::new()
        }
        (Some(file), true) => file.get_ref().clone(),
        (Some(file), false) => {
            problem(
                file.span(),
                "command",
                "is also given after `--`; give it in one place".into(),
            );
            Vec::new()
        }
        (None, false) => command,
        (None, true) => {
            problem(
                0..0,
                "command",
                "missing: give it as `command = [\"./server\"]` or after `--`".into(),
            );
            Vec::new()
        }
    };

    let mut settings = Settings {
        backoff: Backoff::default(),
        ..Settings::default()
    };
    if let Some(policy) = &spec.restart_policy {
        match policy.get_ref().as_str() {
            "Always" => settings.restart = RestartPolicy::Always,
            "OnFailure" => settings.restart = RestartPolicy::OnFailure,
            "Never" => settings.restart = RestartPolicy::Never,
            other => problem(
                policy.span(),
                "restartPolicy",
                format!("{other:?} is not a policy; write \"Always\", \"OnFailure\" or \"Never\""),
            ),
        }
    }
    if let Some(grace) = &spec.termination_grace_period_seconds {
        match seconds(*grace.get_ref(), false) {
            Ok(grace) => settings.grace = grace,
            Err(why) => problem(grace.span(), "terminationGracePeriodSeconds", why),
        }
    }
    let mut address = |field: &str, value: &Option<Spanned<String>>| {
        let value = value.as_ref()?;
        match value.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problem(
                    value.span(),
                    field,
                    format!(
                        "{:?} is not an address; write host:port with an IP, like \"127.0.0.1:9090\" or \"[::1]:9090\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    };
    let listen = address("listen", &spec.listen);
    let agent_check = address("agentCheck", &spec.agent_check);
    let report_exit_to =
        spec.report_exit_to
            .as_ref()
            .and_then(|url| match exit_url(url.get_ref()) {
                Ok(exit) => Some(exit),
                Err(why) => {
                    problem(url.span(), "reportExitTo", why);
                    None
                }
            });

    let mut probes: [Option<ProbePlan>; 3] = [None, None, None];
    let tables = [
        (ProbeKind::Startup, "startupProbe", &spec.startup_probe),
        (ProbeKind::Liveness, "livenessProbe", &spec.liveness_probe),
        (
            ProbeKind::Readiness,
            "readinessProbe",
            &spec.readiness_probe,
        ),
    ];
    for (index, (kind, name, table)) in tables.into_iter().enumerate() {
        let Some(table) = table else { continue };
        let mut problem = |span: Range<usize>, field: &str, why: String| {
            let field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{field}")
            };
            problems.push(format!("{}: {field}: {why}", source.at(span)));
        };
        let (timing, plan) = probe(kind, table, &mut problem);
        match kind {
            ProbeKind::Startup => settings.startup = Some(timing),
            ProbeKind::Liveness => settings.liveness = Some(timing),
            ProbeKind::Readiness => settings.readiness = Some(timing),
        }
        probes[index] = plan;
    }

    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Plan {
        command,
        settings,
        probes,
        listen,
        agent_check,
        report_exit_to,
    })
}

/// The URL an exit is POSTed to: the ping URL given, with `/exited` after its path (its
/// query, a ping key for instance, kept).
fn exit_url(given: &str) -> Result<reqwest::Url, String> {
    let hint =
        "write the monitor's ping URL of this target, like \"http://127.0.0.1:7070/ping/<id>\"";
    let mut url = reqwest::Url::parse(given).map_err(|error| {
        format!(
            "{:?} is not a URL ({error}); {hint}",
            vitals_probes::redact_url(given)
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{:?} is not an http(s) URL with a host; {hint}",
            vitals_probes::redact_url(given)
        ));
    }
    url.path_segments_mut()
        .map_err(|()| {
            format!(
                "{:?} cannot take a path; {hint}",
                vitals_probes::redact_url(given)
            )
        })?
        .pop_if_empty()
        .push("exited");
    Ok(url)
}

/// A non-negative (or, with `positive`, more than zero) number of seconds, at most a year.
fn seconds(value: f64, positive: bool) -> Result<Duration, String> {
    const YEAR: f64 = 365.0 * 86_400.0;
    if !value.is_finite() || value < 0.0 || (positive && value == 0.0) || value > YEAR {
        let least = if positive { "more than 0" } else { "0 or more" };
        return Err(format!(
            "{value} is out of range; give {least} seconds, at most a year"
        ));
    }
    Duration::try_from_secs_f64(value).map_err(|error| format!("{value}: {error}"))
}

fn probe(
    kind: ProbeKind,
    table: &Spanned<ProbeSpec>,
    problem: &mut impl FnMut(Range<usize>, &str, String),
) -> (ProbeTiming, Option<ProbePlan>) {
    let spec = table.get_ref();
    let mut timing = ProbeTiming::default();
    let mut set =
        |field: &str, value: &Option<Spanned<f64>>, positive: bool, into: &mut Duration| {
            if let Some(value) = value {
                match seconds(*value.get_ref(), positive) {
                    Ok(duration) => *into = duration,
                    Err(why) => problem(value.span(), field, why),
                }
            }
        };
    set(
        "initialDelaySeconds",
        &spec.initial_delay_seconds,
        false,
        &mut timing.initial_delay,
    );
    set(
        "periodSeconds",
        &spec.period_seconds,
        true,
        &mut timing.period,
    );
    set(
        "timeoutSeconds",
        &spec.timeout_seconds,
        true,
        &mut timing.timeout,
    );
    let mut count = |field: &str, value: &Option<Spanned<i64>>, into: &mut u32| {
        if let Some(value) = value {
            match u32::try_from(*value.get_ref()) {
                Ok(n) if n >= 1 => *into = n,
                _ => problem(
                    value.span(),
                    field,
                    format!("{} is out of range; give 1 or more", value.get_ref()),
                ),
            }
        }
    };
    count(
        "successThreshold",
        &spec.success_threshold,
        &mut timing.success_threshold,
    );
    count(
        "failureThreshold",
        &spec.failure_threshold,
        &mut timing.failure_threshold,
    );
    if let Some(grace) = &spec.termination_grace_period_seconds {
        if kind == ProbeKind::Readiness {
            problem(
                grace.span(),
                "terminationGracePeriodSeconds",
                "is for liveness and startup probes only (as in Kubernetes): a failed readiness probe stops nothing".into(),
            );
        } else {
            match seconds(*grace.get_ref(), false) {
                Ok(grace) => timing.grace = Some(grace),
                Err(why) => problem(grace.span(), "terminationGracePeriodSeconds", why),
            }
        }
    }
    if kind != ProbeKind::Readiness
        && timing.success_threshold != 1
        && let Some(value) = &spec.success_threshold
    {
        problem(
            value.span(),
            "successThreshold",
            format!(
                "must be 1 for a {} probe (as in Kubernetes): one success is enough to call a process alive or started",
                kind.as_str()
            ),
        );
    }

    let handlers = usize::from(spec.http_get.is_some())
        + usize::from(spec.tcp_socket.is_some())
        + usize::from(spec.exec.is_some())
        + usize::from(spec.grpc.is_some());
    if handlers != 1 {
        problem(
            table.span(),
            "",
            format!("has {handlers} handlers; give exactly one of httpGet, tcpSocket, exec, grpc"),
        );
        return (timing, None);
    }
    let plan = if let Some(http) = &spec.http_get {
        http_probe(http, problem)
    } else if let Some(tcp) = &spec.tcp_socket {
        port(&tcp.port, "tcpSocket.port", problem).map(|port| {
            let addr = host_port(tcp.host.as_deref(), port);
            ProbePlan {
                what: format!("tcp {addr}"),
                probe: Arc::new(Tcp::new(addr)),
            }
        })
    } else if let Some(exec) = &spec.exec {
        match exec.command.get_ref().split_first() {
            Some((program, args)) if !program.is_empty() => Some(ProbePlan {
                what: format!("exec {}", exec.command.get_ref().join(" ")),
                probe: Arc::new(Exec::new(program.clone()).args(args.iter().cloned())),
            }),
            _ => {
                problem(
                    exec.command.span(),
                    "exec.command",
                    "is empty; name the program to run (no shell: write [\"sh\", \"-c\", \"…\"] for one)".into(),
                );
                None
            }
        }
    } else if let Some(grpc) = &spec.grpc {
        let action = grpc.get_ref();
        port(&action.port, "grpc.port", problem).and_then(|port| {
            let addr = host_port(None, port);
            let service = action.service.clone().unwrap_or_default();
            match Grpc::new(addr.clone(), service.clone(), None) {
                Ok(probe) => Some(ProbePlan {
                    what: format!("grpc {addr} {service:?}"),
                    probe: Arc::new(probe),
                }),
                Err(error) => {
                    problem(grpc.span(), "grpc", error.to_string());
                    None
                }
            }
        })
    } else {
        None
    };
    (timing, plan)
}

fn port(
    value: &Spanned<i64>,
    field: &str,
    problem: &mut impl FnMut(Range<usize>, &str, String),
) -> Option<u16> {
    match u16::try_from(*value.get_ref()) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            problem(
                value.span(),
                field,
                format!("{} is not a port; give 1 to 65535", value.get_ref()),
            );
            None
        }
    }
}

/// `host:port`, the host 127.0.0.1 by default (Kubernetes' is the pod's IP; the child is on
/// this machine), IPv6 in brackets.
fn host_port(host: Option<&str>, port: u16) -> String {
    match host.unwrap_or("127.0.0.1") {
        host if host.contains(':') && !host.starts_with('[') => format!("[{host}]:{port}"),
        host => format!("{host}:{port}"),
    }
}

fn http_probe(
    http: &HttpGet,
    problem: &mut impl FnMut(Range<usize>, &str, String),
) -> Option<ProbePlan> {
    let port = port(&http.port, "httpGet.port", problem);
    let scheme = match http.scheme.as_ref() {
        None => Some("http"),
        Some(scheme) => match scheme.get_ref().as_str() {
            "HTTP" => Some("http"),
            "HTTPS" => Some("https"),
            other => {
                problem(
                    scheme.span(),
                    "httpGet.scheme",
                    format!("{other:?} is not a scheme; write \"HTTP\" or \"HTTPS\""),
                );
                None
            }
        },
    };
    let (port, scheme) = (port?, scheme?);
    let path = http.path.as_deref().unwrap_or("/");
    let slash = if path.starts_with('/') { "" } else { "/" };
    let url = format!(
        "{scheme}://{}{slash}{path}",
        host_port(http.host.as_deref(), port)
    );
    let mut probe = match kubelet_http(&url) {
        Ok(probe) => probe,
        Err(why) => {
            problem(0..0, "httpGet", why);
            return None;
        }
    };
    for header in http.http_headers.iter().flatten() {
        probe = match probe.header(&header.name, &header.value) {
            Ok(probe) => probe,
            Err(error) => {
                problem(0..0, "httpGet.httpHeaders", error.to_string());
                return None;
            }
        };
    }
    Some(ProbePlan {
        what: format!("GET {url}"),
        probe: Arc::new(probe),
    })
}

/// An HTTP probe judged as kubelet judges one: any status from 200 to 399 passes, and HTTPS
/// certificates are not verified (a probe asks "does it answer", not "who is it").
fn kubelet_http(url: &str) -> Result<Http, String> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("vitals-supervise/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|error| format!("cannot make an HTTP client: {error}"))?;
    Ok(Http::with_client(client, url.to_string()).expect_status(200..=399))
}

impl Plan {
    /// Set the `kind` probe from a command-line flag: `http://host:port/path`,
    /// `https://…` or `tcp://host:port`. The probe's timing stays the file's, or Kubernetes'
    /// defaults when the file has no such probe.
    pub fn set_probe_from_flag(&mut self, kind: ProbeKind, spec: &str) -> Result<(), ConfigError> {
        let refused = |why: String| {
            ConfigError::Invalid(vec![format!("--{} {spec:?}: {why}", kind.as_str())])
        };
        let plan = if spec.starts_with("http://") || spec.starts_with("https://") {
            ProbePlan {
                what: format!("GET {spec}"),
                probe: Arc::new(kubelet_http(spec).map_err(refused)?),
            }
        } else if let Some(addr) = spec.strip_prefix("tcp://") {
            let port = addr.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(port)) if port > 0) {
                return Err(refused(
                    "a TCP probe is tcp://host:port, like tcp://127.0.0.1:5432".to_string(),
                ));
            }
            ProbePlan {
                what: format!("tcp {addr}"),
                probe: Arc::new(Tcp::new(addr)),
            }
        } else {
            return Err(refused(
                "give http://…, https://… or tcp://host:port (exec probes go in --config)"
                    .to_string(),
            ));
        };
        let timing = match kind {
            ProbeKind::Startup => &mut self.settings.startup,
            ProbeKind::Liveness => &mut self.settings.liveness,
            ProbeKind::Readiness => &mut self.settings.readiness,
        };
        timing.get_or_insert_with(ProbeTiming::default);
        let index = ProbeKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        self.probes[index] = Some(plan);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse("svc.toml", text, vec![]) {
            Err(ConfigError::Invalid(problems)) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_pod_spec_probe_reads_as_it_is_with_kubernetes_defaults() {
        let plan = parse(
            "svc.toml",
            r#"
command = ["./server"]
restartPolicy = "OnFailure"
terminationGracePeriodSeconds = 5
listen = "127.0.0.1:9090"

[startupProbe]
httpGet = { path = "/startupz", port = 8080 }
failureThreshold = 30
periodSeconds = 1

[livenessProbe]
tcpSocket = { port = 8080 }

[readinessProbe]
exec = { command = ["true"] }
periodSeconds = 0.25
successThreshold = 2
"#,
            vec![],
        )
        .unwrap();
        assert_eq!(plan.command, ["./server"]);
        assert_eq!(plan.settings.restart, RestartPolicy::OnFailure);
        assert_eq!(plan.settings.grace, Duration::from_secs(5));
        let startup = plan.settings.startup.unwrap();
        assert_eq!(startup.failure_threshold, 30);
        assert_eq!(startup.period, Duration::from_secs(1));
        assert_eq!(startup.timeout, Duration::from_secs(1));
        assert_eq!(plan.settings.liveness.unwrap(), ProbeTiming::default());
        let readiness = plan.settings.readiness.unwrap();
        assert_eq!(readiness.period, Duration::from_millis(250));
        assert_eq!(readiness.success_threshold, 2);
        assert_eq!(
            plan.probe(ProbeKind::Startup).unwrap().what,
            "GET http://127.0.0.1:8080/startupz"
        );
        assert_eq!(
            plan.probe(ProbeKind::Liveness).unwrap().what,
            "tcp 127.0.0.1:8080"
        );
        assert_eq!(plan.listen, Some("127.0.0.1:9090".parse().unwrap()));
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_field() {
        let problems = problems(
            r#"command = ["x"]
restartPolicy = "always"
terminationGracePeriodSeconds = -1

[livenessProbe]
httpGet = { port = 70000 }
periodSeconds = 0
successThreshold = 2

[readinessProbe]
tcpSocket = { port = 80 }
exec = { command = ["true"] }
terminationGracePeriodSeconds = 5
"#,
        );
        let expected = [
            "svc.toml:2:17: restartPolicy: \"always\" is not a policy",
            "svc.toml:3:33: terminationGracePeriodSeconds: -1 is out of range",
            "svc.toml:6:20: livenessProbe.httpGet.port: 70000 is not a port",
            "svc.toml:7:17: livenessProbe.periodSeconds: 0 is out of range",
            "svc.toml:8:20: livenessProbe.successThreshold: must be 1 for a liveness probe",
            "readinessProbe: has 2 handlers",
            "svc.toml:13:33: readinessProbe.terminationGracePeriodSeconds: is for liveness and startup probes only",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "missing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn misspelt_fields_are_refused_by_name() {
        let error = parse(
            "svc.toml",
            "command = [\"x\"]\n[livenessProbe]\nperiodSecond = 1\n",
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("periodSecond"), "{error}");
        assert!(
            error.contains("periodSeconds"),
            "the right name is offered: {error}"
        );
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn the_command_comes_from_one_place() {
        let both = parse("svc.toml", "command = [\"a\"]\n", vec!["b".into()]).unwrap_err();
        assert!(both.to_string().contains("give it in one place"), "{both}");
        let none = parse("svc.toml", "", vec![]).unwrap_err();
        assert!(none.to_string().contains("command: missing"), "{none}");
        let cli = parse("svc.toml", "", vec!["b".into()]).unwrap();
        assert_eq!(cli.command, ["b"]);
        assert!(bare(vec![]).is_err());
    }

    #[test]
    fn flags_set_probes_with_kubernetes_defaults() {
        let mut plan = bare(vec!["./server".into()]).unwrap();
        plan.set_probe_from_flag(ProbeKind::Readiness, "http://127.0.0.1:8000/readyz")
            .unwrap();
        plan.set_probe_from_flag(ProbeKind::Liveness, "tcp://127.0.0.1:8000")
            .unwrap();
        assert_eq!(plan.settings.readiness, Some(ProbeTiming::default()));
        assert_eq!(
            plan.probe(ProbeKind::Liveness).unwrap().what,
            "tcp 127.0.0.1:8000"
        );
        let error = plan
            .set_probe_from_flag(ProbeKind::Startup, "tcp://nowhere")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--startup \"tcp://nowhere\""), "{error}");
        assert!(
            plan.set_probe_from_flag(ProbeKind::Startup, "ftp://x")
                .is_err()
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../examples/supervise.toml");
        let plan = parse("examples/supervise.toml", text, vec!["true".into()]).unwrap();
        assert!(plan.probes.iter().all(Option::is_some));
        assert_eq!(plan.settings.grace, Duration::from_secs(10));
    }

    // A runtime, as in `vitals supervise`: tonic's channel is made (lazily) in one.
    #[tokio::test]
    async fn grpc_probes_take_a_port_and_an_optional_service() {
        let text = "[livenessProbe]\ngrpc = { port = 9000, service = \"liveness\" }\n";
        let plan = parse("svc.toml", text, vec!["x".into()]).unwrap();
        assert!(plan.probes.iter().any(Option::is_some));
        let zero = problems("command = [\"x\"]\n[livenessProbe]\ngrpc = { port = 0 }\n");
        assert!(zero[0].contains("livenessProbe.grpc.port"), "{zero:?}");
        // Kubernetes' GRPCAction has no host: the pod's own address (here 127.0.0.1).
        let text = "command = [\"x\"]\n[livenessProbe]\ngrpc = { port = 9000, host = \"a\" }\n";
        let error = parse("svc.toml", text, vec![]).unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains("unknown field `host`"),
            "{error}"
        );
    }
}
