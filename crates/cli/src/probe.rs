//! `vitals probe URL`: one check, one line, one exit code, for Docker `HEALTHCHECK` and
//! Kubernetes exec probes. `grpc://host:port[/service]` is a `grpc.health.v1` check with
//! grpc_health_probe's exit codes, so it can stand in for it.
//!
//! This module only turns arguments into a probe from `vitals-probes` and the probe's answer
//! into an exit code. It does not retry, remember or judge anything itself: a probe that
//! should tolerate one failure belongs to the orchestrator's own thresholds (`--retries` in
//! Docker, `failureThreshold` in Kubernetes).
//!
//! Every flag value is taken as text and validated here rather than by clap, so that a bad
//! value exits 1 as documented instead of clap's own 2, which would read as "could not
//! connect".

use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::time::Duration;

use axum::http::{Method, Uri};
use vitals_probes::{Grpc, GrpcFailure, GrpcTls, Http, HttpAnswer, HttpFailure, Probe, Tcp};

/// The exit codes, shown under `vitals probe --help`.
const EXIT_CODES: &str = "\
Exit codes (for grpc:// the same as grpc_health_probe's):
  0  healthy: the answer was as expected (a service reporting \"warn\" still serves;
     for gRPC, the service is SERVING)
  1  usage error: a bad URL or flag value
  2  could not connect: refused, DNS, TLS, or no response within --timeout
     (gRPC: no connection within --timeout)
  3  unexpected response: a status outside --expect-status, or --body-contains not found
     (gRPC: the call failed: NOT_FOUND for an unknown service, UNIMPLEMENTED for a server
     without grpc.health.v1, DEADLINE_EXCEEDED when --timeout ran out after connecting)
  4  reported unhealthy: the service says so itself, in an application/health+json body
     with status \"fail\" or a kube-style ?verbose body ending in \"check failed\"
     (gRPC: the answer is NOT_SERVING or UNKNOWN)

Examples:
  vitals probe http://127.0.0.1:8080/readyz
  vitals probe --expect-status 200-399 --header 'Authorization: Bearer s3cret' http://127.0.0.1/
  vitals probe tcp://127.0.0.1:5432
  vitals probe grpc://127.0.0.1:50051                  (the server as a whole, service \"\")
  vitals probe grpc://127.0.0.1:50051/orders.v1.Orders
  vitals probe --tls --tls-ca-cert ca.pem grpc://orders.internal:443/liveness";

/// Arguments of `vitals probe`, kept as text until [`Settings::parse`] validates them.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct ProbeArgs {
    /// http://host[:port]/path, https://…, tcp://host:port, or grpc://host:port[/service]
    /// (grpcs://… for gRPC over TLS).
    pub url: String,
    /// Give up after this long: 500ms, 5s, 1m.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: String,
    /// Status codes that count as healthy: one code (204) or one range (200-399).
    /// [default: 200-299; HTTP only]
    #[arg(long, value_name = "CODE|FROM-TO")]
    pub expect_status: Option<String>,
    /// The request method. [default: GET; HTTP only]
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// A request header, 'Name: value'; repeat for more. [HTTP only]
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Require the response body to contain this text (case-sensitive). [HTTP only]
    #[arg(long, value_name = "TEXT")]
    pub body_contains: Option<String>,
    /// Speak TLS (with ALPN h2), verifying the server against the system's roots.
    /// [gRPC only]
    #[arg(long)]
    pub tls: bool,
    /// Verify the server against the CA certificates in this PEM file instead. [gRPC, --tls]
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert: Option<String>,
    /// The name to send (SNI) and to verify the certificate against, when it is not the
    /// host in the URL. [gRPC, --tls]
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Accept any certificate: for self-signed test servers only, as anyone on the path
    /// can then pose as the server. [gRPC, --tls]
    #[arg(long, alias = "tls-no-verify")]
    pub tls_insecure_skip_verify: bool,
    /// Print nothing; the exit code says it all.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Validated settings: what to check and how long to wait.
#[derive(Debug)]
struct Settings {
    target: Target,
    timeout: Duration,
    quiet: bool,
}

#[derive(Debug)]
enum Target {
    Http(Box<Http>),
    Tcp(Tcp),
    Grpc(Box<Grpc>),
}

impl Settings {
    /// Every flag checked; the first problem is the message.
    fn parse(args: ProbeArgs) -> Result<Settings, String> {
        let timeout = humantime::parse_duration(&args.timeout).map_err(|error| {
            format!(
                "bad --timeout {:?}: {error}; write a duration like 500ms, 5s or 1m",
                args.timeout
            )
        })?;
        if timeout.is_zero() {
            return Err("bad --timeout 0: it must be longer than zero".to_string());
        }
        let uri: Uri = args.url.parse().map_err(|error| {
            format!(
                "bad URL {:?}: {error}; write http://host:port/path, https://…, tcp://host:port or grpc://host:port[/service]",
                args.url
            )
        })?;
        let scheme = uri.scheme_str();
        if !matches!(scheme, Some("grpc" | "grpcs")) {
            let tls_flags = [
                ("--tls", args.tls),
                ("--tls-ca-cert", args.tls_ca_cert.is_some()),
                ("--tls-server-name", args.tls_server_name.is_some()),
                ("--tls-insecure-skip-verify", args.tls_insecure_skip_verify),
            ];
            if let Some((flag, _)) = tls_flags.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} applies to grpc:// URLs only, not to {:?} (https:// brings its own TLS)",
                    args.url
                ));
            }
        }
        let target = match scheme {
            Some("http" | "https") if uri.host().is_some_and(|host| !host.is_empty()) => {
                Target::Http(Box::new(http(&args)?))
            }
            Some("grpc" | "grpcs") => {
                let http_only = [
                    ("--expect-status", args.expect_status.is_some()),
                    ("--method", args.method.is_some()),
                    ("--header", !args.headers.is_empty()),
                    ("--body-contains", args.body_contains.is_some()),
                ];
                if let Some((flag, _)) = http_only.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "{flag} applies to http(s) URLs only, not to {:?}",
                        args.url
                    ));
                }
                Target::Grpc(Box::new(grpc(&uri, &args)?))
            }
            Some("tcp") => {
                let http_only = [
                    ("--expect-status", args.expect_status.is_some()),
                    ("--method", args.method.is_some()),
                    ("--header", !args.headers.is_empty()),
                    ("--body-contains", args.body_contains.is_some()),
                ];
                if let Some((flag, _)) = http_only.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "{flag} applies to http(s) URLs only, not to {:?}",
                        args.url
                    ));
                }
                Target::Tcp(Tcp::new(tcp_address(&uri, &args.url)?))
            }
            _ => {
                return Err(format!(
                    "bad URL {:?}: write http://host:port/path, https://…, tcp://host:port or grpc://host:port[/service]",
                    args.url
                ));
            }
        };
        Ok(Settings {
            target,
            timeout,
            quiet: args.quiet,
        })
    }
}

fn http(args: &ProbeArgs) -> Result<Http, String> {
    let mut probe = Http::new(&args.url);
    if let Some(text) = &args.expect_status {
        probe = probe.expect_status(status_range(text)?);
    }
    if let Some(text) = &args.method {
        let method = Method::from_bytes(text.to_ascii_uppercase().as_bytes()).map_err(|_| {
            format!("bad --method {text:?}: write a method such as GET, HEAD or POST")
        })?;
        probe = probe.method(method);
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(format!(
                "bad --header {header:?}: write it as 'Name: value', with a colon"
            ));
        };
        probe = probe
            .header(name.trim(), value.trim())
            .map_err(|error| format!("bad --header {header:?}: {error}"))?;
    }
    if let Some(text) = &args.body_contains {
        probe = probe.body_contains(text.clone());
    }
    Ok(probe)
}

/// `grpc://host:port[/service]` (or `grpcs://`, TLS) and the TLS flags → the probe.
fn grpc(uri: &Uri, args: &ProbeArgs) -> Result<Grpc, String> {
    let url = &args.url;
    let Some(authority) = uri.authority() else {
        return Err(format!("bad URL {url:?}: write grpc://host:port[/service]"));
    };
    if authority.port_u16().is_none() || authority.host().is_empty() {
        return Err(format!(
            "bad URL {url:?}: a grpc:// URL needs a host and a port, as in grpc://127.0.0.1:50051"
        ));
    }
    if uri.query().is_some() {
        return Err(format!(
            "bad URL {url:?}: a grpc:// URL has no query; write grpc://host:port[/service]"
        ));
    }
    let service = uri.path().strip_prefix('/').unwrap_or(uri.path());
    if service.contains('/') {
        return Err(format!(
            "bad URL {url:?}: the path is one service name (like orders.v1.Orders), without '/'"
        ));
    }
    let tls = args.tls || uri.scheme_str() == Some("grpcs");
    let sub_flags = [
        ("--tls-ca-cert", args.tls_ca_cert.is_some()),
        ("--tls-server-name", args.tls_server_name.is_some()),
        ("--tls-insecure-skip-verify", args.tls_insecure_skip_verify),
    ];
    if !tls && let Some((flag, _)) = sub_flags.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} needs --tls (or a grpcs:// URL): without TLS there is no certificate to check"
        ));
    }
    if args.tls_insecure_skip_verify && args.tls_ca_cert.is_some() {
        return Err(
            "--tls-insecure-skip-verify and --tls-ca-cert contradict each other: the CA file \
             is for verifying; drop one"
                .to_string(),
        );
    }
    let tls = tls.then(|| GrpcTls {
        ca_file: args.tls_ca_cert.as_ref().map(Into::into),
        server_name: args.tls_server_name.clone(),
        insecure_skip_verify: args.tls_insecure_skip_verify,
    });
    Grpc::new(authority.as_str(), service, tls).map_err(|error| error.to_string())
}

/// The exit code and the line to print for a gRPC check, from a connection (or its error)
/// and the time left for the call.
async fn judge_grpc(probe: &Grpc, timeout: Duration) -> (u8, String) {
    let start = tokio::time::Instant::now();
    let waited = humantime::format_duration(timeout);
    let channel = match tokio::time::timeout(timeout, probe.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(why)) => return (2, why),
        Err(_) => {
            return (
                2,
                format!(
                    "could not connect: no connection to {} within {waited}",
                    probe.address()
                ),
            );
        }
    };
    let left = timeout.saturating_sub(start.elapsed());
    match tokio::time::timeout(left, probe.observe_on(channel)).await {
        Err(_) => (
            3,
            format!(
                "health check of {:?} at {} failed: no answer within {waited} (DEADLINE_EXCEEDED)",
                probe.service(),
                probe.address()
            ),
        ),
        Ok(answer) => {
            let output = answer.report.output.unwrap_or_default();
            let took = start.elapsed().as_millis();
            match answer.failure {
                None => (0, format!("healthy: {output} in {took} ms")),
                Some(GrpcFailure::NoConnection) => (2, output),
                Some(GrpcFailure::NotServing) => (4, format!("unhealthy: {output}")),
                Some(_) => (3, output),
            }
        }
    }
}

/// `200`, or `200-299`: one code or one range, each a code from 100 to 599.
fn status_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || {
        format!(
            "bad --expect-status {text:?}: write one code (204) or one range (200-399), codes from 100 to 599"
        )
    };
    let code = |part: &str| {
        part.trim()
            .parse::<u16>()
            .ok()
            .filter(|code| (100..=599).contains(code))
            .ok_or_else(bad)
    };
    let (start, end) = match text.split_once('-') {
        Some((start, end)) => (code(start)?, code(end)?),
        None => (code(text)?, code(text)?),
    };
    if start > end {
        return Err(format!(
            "bad --expect-status {text:?}: the range runs backwards; write {end}-{start}"
        ));
    }
    Ok(start..=end)
}

/// `tcp://host:port` → `host:port`; a path, a query or a missing port is a mistake.
fn tcp_address(uri: &Uri, url: &str) -> Result<String, String> {
    let Some(authority) = uri.authority() else {
        return Err(format!("bad URL {url:?}: write tcp://host:port"));
    };
    if authority.port_u16().is_none() || authority.host().is_empty() {
        return Err(format!(
            "bad URL {url:?}: a tcp:// URL needs a host and a port, as in tcp://127.0.0.1:5432"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "bad URL {url:?}: a tcp:// URL has no path or query; write tcp://host:port"
        ));
    }
    Ok(authority.as_str().to_string())
}

/// The exit code and the line to print for an HTTP answer.
fn judge_http(answer: &HttpAnswer) -> (u8, String) {
    let output = answer.report.output.as_deref().unwrap_or_default();
    let took = answer.elapsed.as_millis();
    match answer.failure {
        None => match answer.code {
            Some(code) => (0, format!("healthy: HTTP {code} in {took} ms")),
            None => (0, format!("healthy: {output}")),
        },
        Some(HttpFailure::NoResponse) => (2, format!("could not connect: {output}")),
        Some(HttpFailure::Unhealthy) => (4, format!("unhealthy: {output}")),
        // Unexpected, and any kind added later: a response that is not what was asked for.
        Some(_) => (3, format!("unexpected response: {output}")),
    }
}

pub async fn run(args: ProbeArgs) -> ExitCode {
    let url = args.url.clone();
    let settings = match Settings::parse(args) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("vitals probe: {message}");
            return ExitCode::from(1);
        }
    };
    let waited = humantime::format_duration(settings.timeout);
    let no_answer = || {
        (
            2,
            format!("could not connect: no response from {url} within {waited}"),
        )
    };
    let (code, line) = match &settings.target {
        Target::Http(probe) => {
            match tokio::time::timeout(settings.timeout, probe.observe()).await {
                Ok(answer) => judge_http(&answer),
                Err(_) => no_answer(),
            }
        }
        Target::Grpc(probe) => judge_grpc(probe, settings.timeout).await,
        Target::Tcp(probe) => {
            let start = tokio::time::Instant::now();
            match tokio::time::timeout(settings.timeout, probe.check()).await {
                Ok(report) if report.status.is_serving() => {
                    let took = start.elapsed().as_millis();
                    let output = report.output.unwrap_or_default();
                    (0, format!("healthy: {output} in {took} ms"))
                }
                Ok(report) => (
                    2,
                    format!("could not connect: {}", report.output.unwrap_or_default()),
                ),
                Err(_) => no_answer(),
            }
        }
    };
    if !settings.quiet {
        println!("{line}");
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_are_one_code_or_one_range() {
        assert_eq!(status_range("200-299"), Ok(200..=299));
        assert_eq!(status_range("204"), Ok(204..=204));
        assert_eq!(status_range(" 301 - 302 "), Ok(301..=302));
        for bad in ["2xx", "", "200-", "99", "600", "204,301-302"] {
            let error = status_range(bad).unwrap_err();
            assert!(error.starts_with("bad --expect-status"), "{bad}: {error}");
        }
        assert!(
            status_range("299-200")
                .unwrap_err()
                .contains("write 200-299")
        );
    }

    #[test]
    fn tcp_urls_need_a_host_and_a_port_and_nothing_else() {
        let address = |url: &str| tcp_address(&url.parse().unwrap(), url);
        assert_eq!(
            address("tcp://127.0.0.1:5432").as_deref(),
            Ok("127.0.0.1:5432")
        );
        assert_eq!(address("tcp://[::1]:6379").as_deref(), Ok("[::1]:6379"));
        assert!(
            address("tcp://db")
                .unwrap_err()
                .contains("needs a host and a port")
        );
        assert!(address("tcp://db:5432/x").unwrap_err().contains("no path"));
    }
}
