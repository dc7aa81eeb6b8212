//! `Memory` and `Disk`: how full the machine is, against the seed's limits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sysinfo::{MemoryRefreshKind, System};
use vitals_core::Report;

use crate::{BoxFuture, Limits, Probe};

/// Memory used, in percent of total. Default limits are the seed's: warn above 80 %, fail
/// above 90 %.
#[derive(Debug, Clone)]
pub struct Memory {
    limits: Limits,
    /// Created on the first check (creating it can fail), then reused: sysinfo refreshes in
    /// place instead of re-reading everything.
    system: Arc<Mutex<Option<System>>>,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new(Limits::new(80.0, 90.0).expect("80 is below 90"))
    }
}

impl Memory {
    pub fn new(limits: Limits) -> Self {
        Memory {
            limits,
            system: Arc::new(Mutex::new(None)),
        }
    }
}

impl Probe for Memory {
    fn check(&self) -> BoxFuture<'_, Report> {
        let system = Arc::clone(&self.system);
        let limits = self.limits;
        Box::pin(async move {
            // Reading /proc is blocking I/O; keep it off the async workers.
            let measured = tokio::task::spawn_blocking(move || {
                let mut guard = system
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let system = match guard.as_mut() {
                    Some(system) => system,
                    None => guard.insert(System::new().map_err(|error| error.to_string())?),
                };
                system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
                let total = system.total_memory();
                if total == 0 {
                    return Err("total memory reads as zero".to_string());
                }
                Ok(system.used_memory() as f64 / total as f64 * 100.0)
            })
            .await;
            match measured {
                Ok(Ok(percent)) => limits.judge("memory used", percent, "%"),
                Ok(Err(error)) => Report::fail(format!("cannot read memory: {error}")),
                Err(error) => Report::fail(format!("memory measurement panicked: {error}")),
            }
        })
    }

    fn component_type(&self) -> &'static str {
        crate::component_type::SYSTEM
    }
}

/// Disk used on the file system holding a path, in percent. Default limits are the seed's:
/// warn above 90 %, fail above 95 %.
#[derive(Debug, Clone)]
pub struct Disk {
    path: PathBuf,
    limits: Limits,
}

impl Disk {
    /// Watch the file system that holds `path` (for instance the data directory).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Disk {
            path: path.into(),
            limits: Limits::new(90.0, 95.0).expect("90 is below 95"),
        }
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// Percent used of the file system that holds `path`, as `df` counts it: used blocks over
/// used plus available, so blocks reserved for root count as neither (comparing against
/// `total - available` reported 80 % where `df` said 46 %; people compare with `df`).
#[cfg(unix)]
fn used_percent(path: &Path) -> Result<f64, String> {
    let stat = rustix::fs::statvfs(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let used = stat.f_blocks.saturating_sub(stat.f_bfree);
    let usable = used.saturating_add(stat.f_bavail);
    if usable == 0 {
        return Err(format!(
            "file system at {} reports zero size",
            path.display()
        ));
    }
    Ok(used as f64 / usable as f64 * 100.0)
}

/// Percent used of the mounted file system that holds `path`: the mount point that is the
/// longest prefix of the canonical path. (Without `statvfs`, reserved blocks count as used.)
#[cfg(not(unix))]
fn used_percent(path: &Path) -> Result<f64, String> {
    let path = path
        .canonicalize()
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let disks = sysinfo::Disks::new_with_refreshed_list().map_err(|error| error.to_string())?;
    let disk = disks
        .iter()
        .filter(|disk| path.starts_with(disk.mount_point()))
        .max_by_key(|disk| disk.mount_point().as_os_str().len())
        .ok_or_else(|| format!("no mounted file system holds {}", path.display()))?;
    let total = disk.total_space();
    if total == 0 {
        return Err(format!(
            "file system at {} reports zero size",
            disk.mount_point().display()
        ));
    }
    let used = total.saturating_sub(disk.available_space());
    Ok(used as f64 / total as f64 * 100.0)
}

impl Probe for Disk {
    fn check(&self) -> BoxFuture<'_, Report> {
        let path = self.path.clone();
        let limits = self.limits;
        Box::pin(async move {
            let shown = path.display().to_string();
            match tokio::task::spawn_blocking(move || used_percent(&path)).await {
                Ok(Ok(percent)) => limits.judge(&format!("disk used at {shown}"), percent, "%"),
                Ok(Err(error)) => Report::fail(error),
                Err(error) => Report::fail(format!("disk measurement panicked: {error}")),
            }
        })
    }

    fn component_type(&self) -> &'static str {
        crate::component_type::SYSTEM
    }
}

#[cfg(test)]
mod tests {
    use vitals_core::Status;

    use super::*;

    #[tokio::test]
    async fn memory_reports_a_percentage() {
        let report = Memory::default().check().await;
        let observed = report.observed.expect("memory reports a value");
        assert!((0.0..=100.0).contains(&observed.value), "{observed:?}");
        assert_eq!(observed.unit, "%");
    }

    #[tokio::test]
    async fn memory_limits_are_applied_to_the_real_reading() {
        // Any real machine uses more than 0.001 % of its memory.
        let strict = Memory::new(Limits::new(0.0005, 0.001).unwrap());
        assert_eq!(strict.check().await.status, Status::Fail);
    }

    #[tokio::test]
    async fn disk_reports_the_file_system_of_a_path() {
        let report = Disk::new(std::env::temp_dir()).check().await;
        assert!(report.observed.is_some(), "{report:?}");
        let report = Disk::new("/no/such/path/anywhere").check().await;
        assert_eq!(report.status, Status::Fail);
        assert!(report.output.unwrap().contains("/no/such/path"));
    }

    /// Issue 17, item 12: the disk check said 71 % where `df` said 21 % (reserved blocks
    /// counted as used). It now agrees with `df` (which rounds up) to within a point.
    #[cfg(unix)]
    #[tokio::test]
    async fn disk_agrees_with_df() {
        let dir = std::env::temp_dir();
        let df = std::process::Command::new("df")
            .arg("--output=pcent")
            .arg(&dir)
            .output()
            .expect("df runs");
        let text = String::from_utf8_lossy(&df.stdout);
        let df_percent: f64 = text
            .lines()
            .nth(1)
            .and_then(|line| line.trim().trim_end_matches('%').parse().ok())
            .unwrap_or_else(|| panic!("df printed {text:?}"));
        let ours = Disk::new(&dir)
            .check()
            .await
            .observed
            .expect("a value")
            .value;
        assert!(
            ours <= df_percent && df_percent - ours <= 1.0,
            "vitals {ours:.2} %, df {df_percent} %"
        );
    }
}
