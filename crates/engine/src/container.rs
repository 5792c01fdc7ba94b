//! Container records: what the daemon persists per container in
//! `<data-root>/containers/<id>/container.json` (written atomically).

use std::path::{Path, PathBuf};

use berth_types::api::{ContainerConfig, ContainerState, HostConfig};
use berth_types::Mount;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRecord {
    pub status: Status,
    pub pid: u32,
    pub shim_pid: u32,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Default for StateRecord {
    fn default() -> Self {
        StateRecord {
            status: Status::Created,
            pid: 0,
            shim_pid: 0,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// "sha256:<hex>".
    pub image_id: String,
    pub state: StateRecord,
    pub rootfs_mounts: Vec<Mount>,
    pub restart_count: i64,
    pub log_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub resolv_conf_path: PathBuf,
    /// Volumes, binds and tmpfs mounts, resolved at create (STO-09).
    #[serde(default)]
    pub mount_points: Vec<crate::volumes::MountPoint>,
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.state.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).expect("container record serializes");
        berth_sys::fs::write_atomic(&dir.join("container.json"), &data, 0o600)
            .ctx(|| format!("write state of container {}", self.id))
    }

    pub fn load(dir: &Path) -> Result<ContainerRecord> {
        let path = dir.join("container.json");
        let data = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&data).map_err(|e| {
            crate::Error::Internal(format!("corrupt container state {}: {e}", path.display()))
        })
    }

    /// `State` of inspect.
    pub fn api_state(&self) -> ContainerState {
        let s = &self.state;
        ContainerState {
            status: s.status.as_str().into(),
            running: self.is_running(),
            paused: s.status == Status::Paused,
            restarting: s.status == Status::Restarting,
            oom_killed: s.oom_killed,
            dead: s.status == Status::Dead,
            pid: s.pid as i64,
            exit_code: s.exit_code as i64,
            error: s.error.clone(),
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
        }
    }

    /// `Command` column of `ps`: path and args joined; like dockerd, args
    /// that contain a space are wrapped in single quotes.
    pub fn command_line(&self) -> String {
        std::iter::once(self.path.clone())
            .chain(self.args.iter().map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            }))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Docker's `Status` text for `ps`: "Up 5 seconds", "Exited (0) 3 minutes
/// ago", "Created" (SAMPLE-01).
pub fn status_text(rec: &ContainerRecord, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| now.signed_duration_since(t.with_timezone(&chrono::Utc)))
            .unwrap_or_default()
    };
    match rec.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", human_duration(since(&rec.state.started_at))),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(since(&rec.state.started_at))
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            human_duration(since(&rec.state.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            rec.state.exit_code,
            human_duration(since(&rec.state.finished_at))
        ),
        Status::Dead => "Dead".into(),
    }
}

/// Go's `units.HumanDuration`, as the Docker CLI and daemon print it.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let mins = d.num_minutes();
    if mins == 1 {
        return "About a minute".into();
    }
    if mins < 60 {
        return format!("{mins} minutes");
    }
    let hours = (secs as f64 / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_go_units() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_duration(s(0)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(32)), "32 seconds");
        assert_eq!(human_duration(s(65)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(7200)), "2 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
    }
}
