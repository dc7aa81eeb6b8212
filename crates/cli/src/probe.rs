//! `vitals probe URL`: one check, one line, one exit code, for Docker `HEALTHCHECK` and
//! Kubernetes exec probes.
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
use vitals_probes::{Http, HttpAnswer, HttpFailure, Probe, Tcp};

/// The exit codes, shown under `vitals probe --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  healthy: the answer was as expected (a service reporting \"warn\" still serves)
  1  usage error: a bad URL or flag value
  2  could not connect: refused, DNS, TLS, or no response within --timeout
  3  unexpected response: a status outside --expect-status, or --body-contains not found
  4  reported unhealthy: the service says so itself, in an application/health+json body
     with status \"fail\" or a kube-style ?verbose body ending in \"check failed\"

Examples:
  vitals probe http://127.0.0.1:8080/readyz
  vitals probe --expect-status 200-399 --header 'Authorization: Bearer s3cret' http://127.0.0.1/
  vitals probe tcp://127.0.0.1:5432";

/// Arguments of `vitals probe`, kept as text until [`Settings::parse`] validates them.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct ProbeArgs {
    /// http://host[:port]/path, https://…, or tcp://host:port.
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
                "bad URL {:?}: {error}; write http://host:port/path, https://… or tcp://host:port",
                args.url
            )
        })?;
        let target = match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some_and(|host| !host.is_empty()) => {
                Target::Http(Box::new(http(&args)?))
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
                    "bad URL {:?}: write http://host:port/path, https://… or tcp://host:port",
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
