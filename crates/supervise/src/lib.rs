//! `vitals supervise`: run one child and probe it with kubelet's semantics, outside
//! Kubernetes (issue 14). Startup, liveness and readiness probes (HTTP, TCP, exec, from the
//! probes vitals already has) with `initialDelaySeconds`, `periodSeconds`,
//! `timeoutSeconds`, `successThreshold` and `failureThreshold`; the startup probe gating the
//! others; a failed liveness or startup probe answered with SIGTERM, the grace period, then
//! SIGKILL of the child's whole process group; restart policies Always, OnFailure and Never
//! with CrashLoopBackOff. The child's readiness is served on the supervisor's own `/readyz`
//! and HAProxy agent check, and told to systemd under `Type=notify`. Signals are forwarded;
//! as PID 1 it reaps orphans. The semantics, row by row with their tests: docs/SUPERVISE.md.
//!
//! - [`machine`]: every decision, sans-IO ([`Supervisor`]: `handle_*(now, …)` in,
//!   `poll_action` / `poll_timeout` out), tested on simulated time.
//! - [`config`]: `svc.toml`, a pod spec's probe tables with Kubernetes' names and defaults.
//! - [`driver`]: the async loop that performs the actions: spawn, probe, signal, kill.
//! - `endpoints`, `notify`: what the supervisor says about the child (HTTP, agent check,
//!   systemd).
//! - [`reaper`]: PID 1's reaping, in a process of its own.
//!
//! What it is not: a process manager for many programs (one child per supervisor), a
//! container runtime (no isolation, no images), or a monitor (`vitals serve` watches many
//! services from outside).

pub mod config;
pub mod driver;
mod endpoints;
pub mod machine;
mod notify;
pub mod reaper;

pub use config::{ConfigError, Plan};
pub use driver::{Bound, Published, SuperviseError, run};
pub use machine::{
    Action, Exit, ProbeKind, ProbeTiming, RestartPolicy, Settings, Sig, Supervisor, View,
};
