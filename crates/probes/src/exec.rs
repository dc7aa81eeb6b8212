//! `Exec`: run a command and judge it by its exit code, the Nagios plugin way.
//!
//! Exit 0 passes, 1 warns, 2 fails; 3 (UNKNOWN) and anything else fail too, as does death by
//! a signal. The output is the first line of stdout up to `|` (where Nagios perfdata begins),
//! or the first line of stderr when stdout says nothing. So every `check_*` plugin works
//! unchanged.
//!
//! It is not a shell: the program and its arguments are passed as they are, with no
//! expansion, quoting or pipes (write `sh -c '…'` when a shell is wanted). Perfdata is not
//! parsed.
//!
//! Cancellation: the runner drops the check's future at its deadline. The command runs in a
//! process group of its own ([`crate::spawn_in_group`]), and dropping the future sends SIGKILL
//! to the whole group, so that what the plugin started dies with it (`sh -c 'sleep 3600'`
//! leaves no orphan); tokio reaps the leader in the background. A check that finishes in time
//! has its leftovers killed too: a check observes, it starts nothing that should outlive it.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;
use vitals_core::Report;

use crate::group::spawn_in_group;
use crate::tcp::millis;
use crate::{BoxFuture, Probe};

/// The most bytes kept of stdout and of stderr each. Nagios itself keeps a few KiB of plugin
/// output; only the first line is used. Beyond it, output is read and thrown away, so that a
/// chatty command does not block on a full pipe.
pub const OUTPUT_LIMIT: usize = 8 * 1024;

/// How long to keep reading after the command has exited. Its pipes normally close with it;
/// they stay open when it left a background process holding them, and then the exit code is
/// all that is needed.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// Runs `program` with `args` (no shell) and maps its exit code to a status: 0 pass, 1 warn,
/// 2 fail, 3 (UNKNOWN) and anything else fail. Reports the run time in milliseconds.
///
/// ```
/// use vitals_probes::Exec;
/// let probe = Exec::new("/usr/lib/nagios/plugins/check_disk").args(["-w", "20%", "-c", "10%", "-p", "/"]);
/// ```
#[derive(Debug, Clone)]
pub struct Exec {
    program: String,
    args: Vec<String>,
}

impl Exec {
    /// A probe running `program`, looked up on `PATH` unless it is a path.
    pub fn new(program: impl Into<String>) -> Self {
        Exec {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    async fn run(&self) -> Report {
        let start = Instant::now();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Dropping the future (the runner's timeout) kills the group; see the module doc.
        let mut group = match spawn_in_group(&mut command) {
            Ok(child) => child,
            Err(error) => {
                return Report::fail(format!(
                    "cannot run {:?}: {error}; give the program's full path, or check that it exists and is executable",
                    self.program
                ));
            }
        };
        let ChildOutput {
            status,
            stdout: out,
            stderr: err,
        } = wait_with_output(group.child()).await;
        let status = match status {
            Ok(status) => status,
            Err(error) => return Report::fail(format!("waiting for {:?}: {error}", self.program)),
        };
        judge(&self.program, status, &out, &err).with_observed(millis(start), "ms")
    }
}

/// Read `reader` into `into` up to [`OUTPUT_LIMIT`], then drain the rest. Read errors end the
/// reading quietly: the exit code still decides.
/// What a finished command left: its exit status and the first [`OUTPUT_LIMIT`] bytes of its
/// stdout and of its stderr.
#[derive(Debug)]
pub struct ChildOutput {
    pub status: std::io::Result<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Waits for `child` (spawned with piped stdout and stderr) while reading both, each up to
/// [`OUTPUT_LIMIT`] (the rest is read and thrown away, so a chatty command never blocks on a
/// full pipe). When the command exits but something it started keeps the pipes open, reading
/// stops a moment later: the exit status is what matters. Drop the future to give up; a child
/// spawned with `kill_on_drop` is then killed.
pub async fn wait_with_output(child: &mut tokio::process::Child) -> ChildOutput {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = {
        let reading = async {
            tokio::join!(read_capped(stdout, &mut out), read_capped(stderr, &mut err));
        };
        tokio::pin!(reading);
        let mut read_all = false;
        let status = tokio::select! {
            status = child.wait() => status,
            () = &mut reading => {
                read_all = true;
                child.wait().await
            }
        };
        if !read_all {
            let _ = tokio::time::timeout(PIPE_GRACE, &mut reading).await;
        }
        status
    };
    ChildOutput {
        status,
        stdout: out,
        stderr: err,
    }
}

async fn read_capped(reader: Option<impl AsyncRead + Unpin>, into: &mut Vec<u8>) {
    let Some(mut reader) = reader else { return };
    let mut limited = (&mut reader).take(OUTPUT_LIMIT as u64);
    if limited.read_to_end(into).await.is_err() {
        return;
    }
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
}

/// The Nagios mapping of an exit status and output to a report.
fn judge(program: &str, status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Report {
    let line = output_line(stdout, stderr);
    let said = |fallback: String| line.clone().unwrap_or(fallback);
    match status.code() {
        Some(0) => Report::pass().with_output(said("exit 0, no output".to_string())),
        Some(1) => Report::warn(said("exit 1 (warning), no output".to_string())),
        Some(2) => Report::fail(said("exit 2 (critical), no output".to_string())),
        Some(3) => Report::fail(match &line {
            Some(line) => format!("unknown (exit 3): {line}"),
            None => "exit 3 (unknown), no output".to_string(),
        }),
        Some(code) => Report::fail(match &line {
            Some(line) => format!("exit {code}, outside the plugin codes 0-3: {line}"),
            None => format!("exit {code}, outside the plugin codes 0-3, no output"),
        }),
        // No code: killed by a signal. ExitStatus says which ("signal: 9 (SIGKILL)").
        None => Report::fail(match &line {
            Some(line) => format!("{program:?} ended by {status}: {line}"),
            None => format!("{program:?} ended by {status}"),
        }),
    }
}

/// The first line of stdout up to the perfdata separator, else the first line of stderr.
fn output_line(stdout: &[u8], stderr: &[u8]) -> Option<String> {
    let first = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.lines().next().map(str::to_string).unwrap_or_default()
    };
    let out = first(stdout);
    let out = out.split('|').next().unwrap_or_default().trim();
    if !out.is_empty() {
        return Some(out.to_string());
    }
    let err = first(stderr);
    let err = err.trim();
    (!err.is_empty()).then(|| err.to_string())
}

impl Probe for Exec {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(self.run())
    }

    fn is_external(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_the_first_line_before_perfdata_else_stderr() {
        assert_eq!(
            output_line(b"DISK OK - free 40% | /=60%;80;90\nmore\n", b"").as_deref(),
            Some("DISK OK - free 40%")
        );
        assert_eq!(
            output_line(b"", b"check_x: cannot open /dev/foo\n").as_deref(),
            Some("check_x: cannot open /dev/foo")
        );
        assert_eq!(output_line(b"|only=perf\n", b"").as_deref(), None);
        assert_eq!(output_line(b"\n", b"  \n"), None);
    }
}
