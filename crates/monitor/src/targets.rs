//! From configuration to running targets: a probe for each active target, an expectation for
//! each heartbeat target. The only place that knows both the config model and the engine's.

use std::sync::Arc;

use vitals_probes::{Exec, Grpc, GrpcTls, Http, Postgres, Probe, Redis, Tcp, VitalsHealth};

use crate::config::{DetectorKind, Expect, Target, TargetKind};
use crate::engine::{Expectation, Mode, TargetSpec};

/// A target whose probe could not be built (the config checks most of this up front).
#[derive(Debug, thiserror::Error)]
#[error("target {target:?}: {message}")]
pub struct TargetError {
    pub target: String,
    pub message: String,
}

/// `http` is the one HTTP client all HTTP and vitals targets share: one connection pool and
/// one TLS configuration for thousands of targets, rather than one each.
pub fn spec(target: &Target, http: &reqwest::Client) -> Result<TargetSpec, TargetError> {
    let client = http;
    let fail = |message: String| TargetError {
        target: target.id.clone(),
        message,
    };
    let cadence = target.schedule.clone();
    let confirm = target.confirm.as_deref().map(|confirm| {
        Arc::new(match confirm.strip_prefix("tcp://") {
            Some(address) => vitals_probes::Confirm::tcp(address),
            None => vitals_probes::Confirm::http(confirm),
        })
    });
    let active = |probe: Arc<dyn Probe>| Mode::Active {
        probe,
        cadence: cadence.clone(),
        confirm: confirm.clone(),
    };
    let mode = match &target.kind {
        TargetKind::Http(http) => {
            let method = http
                .method
                .parse()
                .map_err(|_| fail(format!("invalid method {:?}", http.method)))?;
            let mut probe = Http::with_client(client.clone(), http.url.clone())
                .method(method)
                .expect_status(http.expect_status.clone());
            for (name, value) in &http.headers {
                probe = probe
                    .header(name, value)
                    .map_err(|error| fail(error.to_string()))?;
            }
            if let Some(text) = &http.body_contains {
                probe = probe.body_contains(text.clone());
            }
            if let Some(path) = &http.json_path {
                probe = probe
                    .json_path(path.clone(), http.json_equals.clone())
                    .map_err(|error| fail(error.to_string()))?;
            }
            if let Some(limit) = http.warn_over {
                probe = probe.warn_over(limit);
            }
            active(Arc::new(probe))
        }
        TargetKind::Tcp { address } => active(Arc::new(Tcp::new(address.clone()))),
        TargetKind::Postgres { url } => active(Arc::new(
            Postgres::connect(url).map_err(|error| fail(error.to_string()))?,
        )),
        TargetKind::Redis { url } => active(Arc::new(
            Redis::connect(url).map_err(|error| fail(error.to_string()))?,
        )),
        TargetKind::Exec { command } => {
            let (program, args) = command
                .split_first()
                .ok_or_else(|| fail("command is empty".to_string()))?;
            active(Arc::new(
                Exec::new(program.clone()).args(args.iter().cloned()),
            ))
        }
        TargetKind::Grpc(grpc) => {
            let tls = grpc.tls.as_ref().map(|tls| GrpcTls {
                ca_file: tls.ca_cert.clone(),
                server_name: tls.server_name.clone(),
                insecure_skip_verify: tls.insecure_skip_verify,
            });
            active(Arc::new(
                Grpc::new(grpc.address.clone(), grpc.service.clone(), tls)
                    .map_err(|error| fail(error.to_string()))?,
            ))
        }
        TargetKind::Vitals { url } => Mode::Service {
            service: Arc::new(VitalsHealth::with_client(client.clone(), url.clone())),
            cadence: cadence.clone(),
        },
        TargetKind::Heartbeat(heartbeat) => Mode::Passive {
            confirm: confirm.clone(),
            // Filled in by `ping_ids::resolve` before targets are built.
            ping_id: heartbeat.ping_id.clone().ok_or_else(|| {
                fail("has no ping id; crate::ping_ids::resolve generates one".to_string())
            })?,
            // The ping API checks the key; without one, a ping's failure is not evidence
            // enough to run the recovery action unless the operator says it is.
            trusted_pings: heartbeat.ping_key.is_some()
                || target
                    .recover
                    .as_ref()
                    .is_some_and(|recover| recover.trust_unauthenticated_pings),
            expectation: match (&heartbeat.expect, &heartbeat.detector) {
                (Expect::Period { .. }, DetectorKind::Phi(config)) => {
                    Expectation::Phi(config.clone())
                }
                (Expect::Period { period, grace }, DetectorKind::Deadline) => Expectation::Period {
                    period: *period,
                    grace: *grace,
                },
                (
                    Expect::Cron {
                        schedule,
                        timezone,
                        grace,
                        ..
                    },
                    _,
                ) => Expectation::Cron {
                    schedule: Box::new(schedule.clone()),
                    timezone: *timezone,
                    grace: *grace,
                },
            },
        },
    };
    Ok(TargetSpec {
        id: target.id.clone(),
        name: target.name.clone(),
        thresholds: target.thresholds.clone(),
        mode,
    })
}
