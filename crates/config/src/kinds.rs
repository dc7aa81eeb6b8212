//! What each kind of target needs, beyond the keys every target shares: the HTTP request
//! and its conditions, a heartbeat's expectation and detector, the address or URL of the
//! others. Checks here compare keys of one target's kind (json_equals needs json_path, a
//! heartbeat has a period or a schedule, phi needs a period…).
//!
//! Not here: which keys a kind accepts (`keys`), or reading single values (`value`).

use std::time::Duration;

use humantime::format_duration;
use vitals_core::detector::PhiConfig;

use super::error::{Diag, Span};
use super::fields::Fields;
use super::keys::{Kind, target};
use super::model::{
    Cadence, DetectorKind, Expect, GrpcSpec, GrpcTlsSpec, HeartbeatSpec, HttpSpec, TargetKind,
    defaults,
};
use super::val::{At, PhiTuning, Reported};

/// A target's keys, read.
type Target = Fields<target::Table>;

/// The message for a required key that is missing.
/// Whether a heartbeat's ping id may be public: its pings are authenticated (a `udp_key` or
/// `ping_key`), or it says `public_ping_id = true`. Such a target without a `ping_id` is
/// pinged by its id; others get one nobody can guess.
pub(super) fn ping_id_may_be_public(f: &Target) -> bool {
    f.has(target::UDP_KEY)
        || f.has(target::PING_KEY)
        || matches!(f.get(target::PUBLIC_PING_ID), Ok(Some(at)) if at.value)
}

pub(super) fn missing(kind: Kind, key: &str) -> String {
    let example = match (kind, key) {
        (Kind::Http, _) => "url = \"http://127.0.0.1:8080/health\"",
        (Kind::Vitals, _) => "url = \"http://127.0.0.1:8000/health\"",
        (Kind::Postgres, _) => "url = \"postgres://monitor@127.0.0.1:5432/postgres\"",
        (Kind::Redis, _) => "url = \"redis://127.0.0.1:6379\"",
        (Kind::Tcp, _) => "address = \"127.0.0.1:5432\"",
        (Kind::Grpc, _) => "address = \"127.0.0.1:50051\"",
        (Kind::Exec, _) => "command = [\"/usr/lib/nagios/plugins/check_load\", \"-w\", \"5\"]",
        (Kind::Heartbeat, _) => "period = \"1m\"",
    };
    format!(
        "missing {key}; a {} target needs it, like {example}",
        kind.name()
    )
}

/// The kind-specific part of a target.
pub(super) fn spec(
    diag: &mut Diag<'_>,
    kind: Kind,
    f: &Target,
    path: &str,
    schedule: Option<&Cadence>,
    udp_listen: bool,
) -> Result<TargetKind, Reported> {
    let text = |at: Option<At<String>>| at.map(|at| at.value).ok_or(Reported);
    Ok(match kind {
        Kind::Http => TargetKind::Http(http(diag, f, path, schedule)?),
        Kind::Tcp => TargetKind::Tcp {
            address: text(f.get(target::ADDRESS)?)?,
        },
        Kind::Postgres => TargetKind::Postgres {
            url: text(f.get(target::POSTGRES_URL)?)?,
        },
        Kind::Redis => TargetKind::Redis {
            url: text(f.get(target::REDIS_URL)?)?,
        },
        Kind::Vitals => TargetKind::Vitals {
            url: text(f.get(target::URL)?)?,
        },
        Kind::Exec => TargetKind::Exec {
            command: f
                .get(target::COMMAND)?
                .ok_or(Reported)?
                .value
                .into_iter()
                .map(|at| at.value)
                .collect(),
        },
        Kind::Grpc => TargetKind::Grpc(grpc(diag, f, path)?),
        Kind::Heartbeat => TargetKind::Heartbeat(heartbeat(diag, f, path, udp_listen)?),
    })
}

/// The longest gRPC service name, as the library's server accepts it.
const MAX_SERVICE: usize = 256;

fn grpc(diag: &mut Diag<'_>, f: &Target, path: &str) -> Result<GrpcSpec, Reported> {
    use target::{ADDRESS, SERVICE, TLS, TLS_CA_CERT, TLS_INSECURE_SKIP_VERIFY, TLS_SERVER_NAME};
    // Every key is read before any `?`, so that one bad value does not hide the others.
    let address = f.get(ADDRESS);
    let service = f.get(SERVICE);
    let tls = f.get(TLS);
    let ca_cert = f.get(TLS_CA_CERT);
    let server_name = f.get(TLS_SERVER_NAME);
    let skip_verify = f.get(TLS_INSECURE_SKIP_VERIFY);
    let mut failed = false;
    if let Ok(Some(at)) = &service
        && (at.value.len() > MAX_SERVICE || at.value.chars().any(char::is_control))
    {
        diag.error(
            &at.span,
            SERVICE.field(path),
            format!("must be at most {MAX_SERVICE} bytes without control characters, like \"orders.v1.Orders\""),
        );
        failed = true;
    }
    let tls_on = matches!(&tls, Ok(Some(at)) if at.value);
    if !tls_on {
        for key in [
            TLS_CA_CERT.untyped(),
            TLS_SERVER_NAME.untyped(),
            TLS_INSECURE_SKIP_VERIFY.untyped(),
        ] {
            if let Some(span) = f.key_span(key) {
                diag.error(
                    &span,
                    key.field(path),
                    format!(
                        "{} applies to TLS: add tls = true, or remove it",
                        key.name()
                    ),
                );
                failed = true;
            }
        }
    }
    if tls_on
        && matches!(&skip_verify, Ok(Some(at)) if at.value)
        && f.has(TLS_CA_CERT)
        && let Some(span) = f.key_span(TLS_INSECURE_SKIP_VERIFY)
    {
        diag.error(
            &span,
            TLS_INSECURE_SKIP_VERIFY.field(path),
            "contradicts tls_ca_cert, which is for verifying the server: remove one",
        );
        failed = true;
    }
    let (address, service, tls) = (address?, service?, tls?);
    let (ca_cert, server_name, skip_verify) = (ca_cert?, server_name?, skip_verify?);
    if failed {
        return Err(Reported);
    }
    let tls = tls.is_some_and(|at| at.value).then(|| GrpcTlsSpec {
        ca_cert: ca_cert.map(|at| at.value.into()),
        server_name: server_name.map(|at| at.value),
        insecure_skip_verify: skip_verify.is_some_and(|at| at.value),
    });
    Ok(GrpcSpec {
        address: address.ok_or(Reported)?.value,
        service: service.map_or_else(String::new, |at| at.value),
        tls,
    })
}

fn http(
    diag: &mut Diag<'_>,
    f: &Target,
    path: &str,
    schedule: Option<&Cadence>,
) -> Result<HttpSpec, Reported> {
    // Every key is read before any `?`, so that one bad value does not hide the others.
    let method = f.get(target::METHOD);
    let body_contains = f.get(target::BODY_CONTAINS);
    let json_path = f.get(target::JSON_PATH);
    let json_equals = f.get(target::JSON_EQUALS);
    let warn_over = f.get(target::WARN_OVER);
    let headers = f.get(target::HEADERS);
    let expect_status = f.get(target::EXPECT_STATUS);
    let url = f.get(target::URL);

    let mut failed = false;
    let json_path_at = json_path.as_ref().ok().and_then(Option::as_ref);
    if let Some(at) = json_path_at
        && !at.value.starts_with('$')
    {
        let p = &at.value;
        diag.error(
            &at.span,
            target::JSON_PATH.field(path),
            format!(
                "{p:?} is not a JSONPath; paths start at the root, like \"$.{}\"",
                p.trim_start_matches('.')
            ),
        );
        failed = true;
    }
    if let Some(at) = json_equals.as_ref().ok().and_then(Option::as_ref)
        && !f.has(target::JSON_PATH)
    {
        diag.error(
            &at.span,
            target::JSON_EQUALS.field(path),
            "json_equals needs json_path to say where to look: add json_path = \"$.status\"",
        );
        failed = true;
    }
    if let Ok(Some(at)) = &method
        && at.value == "HEAD"
        && (f.has(target::BODY_CONTAINS) || f.has(target::JSON_PATH))
    {
        diag.error(
            &at.span,
            target::METHOD.field(path),
            "a HEAD answer has no body for body_contains or json_path to look at: use GET",
        );
        failed = true;
    }
    if let Ok(Some(at)) = &warn_over {
        if at.value.is_zero() {
            diag.error(
                &at.span,
                target::WARN_OVER.field(path),
                "is zero; every answer would warn: set it like \"500ms\"",
            );
            failed = true;
        } else if let Some(schedule) = schedule
            && at.value >= schedule.timeout
        {
            diag.error(&at.span, target::WARN_OVER.field(path), format!(
                "{} is not shorter than timeout {}; the check is cut at its timeout, so it could never warn",
                format_duration(at.value), format_duration(schedule.timeout)
            ));
            failed = true;
        }
    }
    let spec = HttpSpec {
        url: url?.ok_or(Reported)?.value,
        method: method?.map_or_else(|| "GET".to_owned(), |at| at.value),
        headers: headers?.map_or_else(Vec::new, |at| at.value),
        expect_status: expect_status?.map_or(200..=299, |at| at.value),
        body_contains: body_contains?.map(|at| at.value),
        json_path: json_path?.map(|at| at.value),
        json_equals: json_equals?.map(|at| at.value),
        warn_over: warn_over?.map(|at| at.value),
    };
    if failed { Err(Reported) } else { Ok(spec) }
}

fn heartbeat(
    diag: &mut Diag<'_>,
    f: &Target,
    path: &str,
    udp_listen: bool,
) -> Result<HeartbeatSpec, Reported> {
    use target::{DETECTOR, GRACE, PERIOD, SCHEDULE, TIMEZONE, UDP_KEY};
    let mut failed = false;
    let period = f.get(PERIOD);
    let cron = f.get(SCHEDULE);
    let timezone = f.get(TIMEZONE);
    let grace = f.get(GRACE);
    if f.has(PERIOD) && f.has(SCHEDULE) {
        if let Some(span) = f.key_span(SCHEDULE) {
            diag.error(&span, SCHEDULE.field(path),
                "a heartbeat has period or schedule, not both: period for a sender that pings at a steady rhythm, schedule for a cron job");
        }
        failed = true;
    } else if !f.has(PERIOD) && !f.has(SCHEDULE) {
        diag.error(&f.span, PERIOD.field(path),
            "missing period or schedule; write period = \"1m\" for a sender that pings every minute, or schedule = \"0 3 * * *\" for a cron job");
        failed = true;
    }
    if f.has(TIMEZONE) && !f.has(SCHEDULE) {
        if let Some(span) = f.key_span(TIMEZONE) {
            diag.error(
                &span,
                TIMEZONE.field(path),
                "timezone applies to schedule (cron); a period needs none: remove it",
            );
        }
        failed = true;
    }
    if f.has(target::CONFIRM) && f.has(SCHEDULE) {
        if let Some(span) = f.key_span(target::CONFIRM) {
            diag.error(&span, target::CONFIRM.field(path),
                "confirm needs a period: a cron job is not running between its runs, so nothing would answer; remove confirm, or use period for a long-running sender");
        }
        failed = true;
    }
    if let Ok(Some(at)) = &period
        && at.value.is_zero()
    {
        diag.error(
            &at.span,
            PERIOD.field(path),
            "is zero; write how often the sender pings, like \"1m\"",
        );
        failed = true;
    }
    let detector = f.get(DETECTOR);
    if let Ok(Some(At {
        value: (Some(_), _),
        ..
    })) = &detector
        && f.has(SCHEDULE)
        && !f.has(PERIOD)
    {
        if let Some(span) = f.span(DETECTOR) {
            diag.error(&span, DETECTOR.field(path),
                "phi accrual learns a steady rhythm and needs a period; a cron schedule is judged by its deadline: use detector = \"deadline\" (the default)");
        }
        failed = true;
    }
    if !udp_listen && let Some(span) = f.key_span(UDP_KEY) {
        diag.error(&span, UDP_KEY.field(path),
            "udp heartbeats need a udp listener: set server.udp_listen (like \"127.0.0.1:7071\"), or remove udp_key");
        failed = true;
    }
    let udp_key = f.get(UDP_KEY);
    let ping_key = f.get(target::PING_KEY);
    let ping_id = match f.get(target::PING_ID) {
        Ok(None) if ping_id_may_be_public(f) => f.get(target::ID),
        other => other,
    };
    let (period, cron, timezone, grace) = (period?, cron?, timezone?, grace?);
    let (detector, detector_spans) = detector?.map_or((None, Vec::new()), |at| at.value);
    let (udp_key, ping_key) = (udp_key?.map(|at| at.value), ping_key?.map(|at| at.value));
    let ping_id = ping_id?.map(|at| at.value);
    if failed {
        return Err(Reported);
    }
    let expect = match (period, cron) {
        (Some(period), None) => Expect::Period {
            period: period.value,
            grace: grace.as_ref().map_or(
                defaults::heartbeat_grace(period.value, f.has(target::CONFIRM)),
                |at| at.value,
            ),
        },
        (None, Some(cron)) => {
            let timezone = timezone.map_or(chrono_tz::UTC, |at| at.value);
            never_fires(diag, &SCHEDULE.field(path), &cron, timezone)?;
            Expect::Cron {
                schedule: cron.value.0,
                expression: cron.value.1,
                timezone,
                grace: grace.as_ref().map_or(defaults::CRON_GRACE, |at| at.value),
            }
        }
        _ => return Err(Reported),
    };
    let detector = match (detector, &expect) {
        (None, _) => DetectorKind::Deadline,
        (Some(tuning), Expect::Period { period, grace }) => DetectorKind::Phi(phi(
            diag,
            f,
            &DETECTOR.field(path),
            tuning,
            &detector_spans,
            *period,
            *grace,
        )?),
        (Some(_), Expect::Cron { .. }) => return Err(Reported),
    };
    Ok(HeartbeatSpec {
        ping_id,
        ping_key,
        expect,
        detector,
        udp_key,
    })
}

/// Reports a cron expression that parses but matches no date ("0 0 30 2 *"): a heartbeat
/// that is never expected would never be judged. It looks from a fixed date, not the clock.
fn never_fires(
    diag: &mut Diag<'_>,
    field: &str,
    cron: &At<(croner::Cron, String)>,
    timezone: chrono_tz::Tz,
) -> Result<(), Reported> {
    let Some(start) = chrono::DateTime::from_timestamp(946_684_800, 0) else {
        return Ok(());
    };
    if cron
        .value
        .0
        .find_next_occurrence(&start.with_timezone(&timezone), false)
        .is_ok()
    {
        return Ok(());
    }
    diag.error(
        &cron.span,
        field,
        format!(
            "{:?} matches no date, so the heartbeat would never be expected; check the day and month fields",
            cron.value.1
        ),
    );
    Err(Reported)
}

/// The phi detector's configuration: what was written, then the core's defaults, with the
/// period as the first estimate and the grace as the acceptable pause.
fn phi(
    diag: &mut Diag<'_>,
    f: &Target,
    field: &str,
    tuning: PhiTuning,
    spans: &[(&'static str, Span)],
    period: Duration,
    grace: Duration,
) -> Result<PhiConfig, Reported> {
    let base = PhiConfig::for_period(period);
    let config = PhiConfig {
        threshold: tuning.threshold.unwrap_or(base.threshold),
        max_samples: tuning.max_samples.map_or(base.max_samples, |n| n as usize),
        min_std_dev: tuning.min_std_dev.unwrap_or(base.min_std_dev),
        acceptable_pause: tuning.acceptable_pause.unwrap_or(grace),
        first_heartbeat_estimate: period,
    };
    if let Err(error) = config.validate() {
        let inner = spans
            .iter()
            .find(|(name, _)| *name == error.field)
            .map(|(_, span)| span.clone());
        let span = inner
            .or_else(|| f.span(target::DETECTOR))
            .unwrap_or(f.span.clone());
        diag.error(&span, format!("{field}.{}", error.field), error.message);
        return Err(Reported);
    }
    Ok(config)
}
