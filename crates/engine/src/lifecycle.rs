//! Lifecycle commands beyond create/start/stop/kill/rm, and listing:
//! pause/unpause (the OCI runtime's freezer), restart, rename, update (live
//! cgroup changes), top (host `ps`), prune, `ps` filters and sizes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_types::api::{ContainerSummary, RestartPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::container::{self, ContainerRecord, Status};
use crate::error::{Error, Result};
use crate::{blocking_err, names, Engine};

/// `GET /containers/json` options.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub all: bool,
    pub limit: Option<usize>,
    pub size: bool,
    /// Docker's filters, both wire forms decoded to key → values.
    pub filters: HashMap<String, Vec<String>>,
}

/// Body of `POST /containers/{id}/update` (the resources docker can change
/// live, plus the restart policy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateBody {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub restart_policy: Option<RestartPolicy>,
}

/// `GET /containers/{id}/top`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopResponse {
    pub processes: Vec<Vec<String>>,
    pub titles: Vec<String>,
}

/// `POST /containers/prune`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneResponse {
    pub containers_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

const PS_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "health",
    "id",
    "label",
    "name",
    "status",
    "since",
    "volume",
    "network",
    "publish",
    "expose",
    "is-task",
    "isolation",
];
const VALID_STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

fn invalid_filter(key: &str, value: Option<&str>) -> Error {
    match value {
        Some(v) => Error::InvalidArgument(format!("Invalid filter '{key}={v}'")),
        None => Error::InvalidArgument(format!("Invalid filter '{key}'")),
    }
}

/// Decode Docker's `filters` query value: `{"k":["v"]}` or the legacy
/// `{"k":{"v":true}}`.
pub fn parse_filters(raw: Option<&str>) -> Result<HashMap<String, Vec<String>>> {
    let mut out = HashMap::new();
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(out);
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| Error::InvalidArgument(format!("invalid filter: {e}")))?;
    let Value::Object(m) = v else {
        return Err(Error::InvalidArgument(
            "invalid filter: not an object".into(),
        ));
    };
    for (k, vals) in m {
        let list: Vec<String> = match vals {
            Value::Array(a) => a
                .into_iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o
                .into_iter()
                .filter(|(_, b)| b.as_bool().unwrap_or(false))
                .map(|(k, _)| k)
                .collect(),
            _ => return Err(Error::InvalidArgument("invalid filter value".into())),
        };
        out.insert(k, list);
    }
    Ok(out)
}

/// Go `regexp.MatchString` for the simple patterns people pass as filters:
/// `^`/`$` anchors, `.`, `.*`; anything else literal. Unanchored.
fn re_match(pattern: &str, s: &str) -> bool {
    fn here(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => true,
            Some('$') if p.len() == 1 => s.is_empty(),
            Some(c) if p.get(1) == Some(&'*') => {
                let mut i = 0;
                loop {
                    if here(&p[2..], &s[i..]) {
                        return true;
                    }
                    if i < s.len() && (*c == '.' || s[i] == *c) {
                        i += 1;
                    } else {
                        return false;
                    }
                }
            }
            Some('.') => !s.is_empty() && here(&p[1..], &s[1..]),
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && here(&p[2..], &s[1..]),
            Some(c) => s.first() == Some(c) && here(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    if p.first() == Some(&'^') {
        return here(&p[1..], &s);
    }
    (0..=s.len()).any(|i| here(&p, &s[i..]))
}

/// `label=k` or `label=k=v` against a label map.
fn label_matches(filter: &str, labels: &HashMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// Docker's `until`/`since` timestamps: unix seconds (fractional), RFC3339,
/// dates, or a Go duration before now ("10m", "1h30m").
pub fn parse_timestamp(s: &str, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
    if let Ok(f) = s.parse::<f64>() {
        return Some(f);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp() as f64);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp() as f64);
    }
    let d = go_duration(s)?;
    Some(now.timestamp() as f64 + now.timestamp_subsec_nanos() as f64 / 1e9 - d)
}

/// Go's `time.ParseDuration` (seconds).
fn go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(total)
}

fn created_secs(r: &ContainerRecord) -> f64 {
    chrono::DateTime::parse_from_rfc3339(&r.created)
        .map(|t| t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Apparent size of the regular files under `dir` (hard links once), like
/// dockerd's `directory.Size`.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
                continue;
            }
            if md.nlink() > 1 && !seen.insert(md.ino()) {
                continue;
            }
            total += md.len();
        }
    }
    total
}

fn upper_dir(r: &ContainerRecord) -> Option<PathBuf> {
    r.rootfs_mounts
        .iter()
        .flat_map(|m| m.options.iter())
        .find_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from))
}

impl Engine {
    /// `<runtime> --root <exec-root>/runtime <args...> <id>`.
    async fn runtime_cmd(&self, op: &str, id: &str) -> Result<()> {
        self.runtime_args(&[op, id]).await
    }

    async fn runtime_args(&self, args: &[&str]) -> Result<()> {
        let op = args.first().copied().unwrap_or("");
        let out = tokio::process::Command::new(&self.cfg.runtime)
            .arg("--root")
            .arg(self.cfg.exec_root.join("runtime"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Internal(format!("run {}: {e}", self.cfg.runtime.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::Internal(format!("runtime {op} failed: {msg}")))
    }

    /// The container's cgroup path relative to the hierarchy root, from the
    /// bundle's spec (`berth/<id>` when it cannot be read).
    fn cgroup_rel(&self, id: &str) -> String {
        std::fs::read(self.bundle_dir(id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_string))
            .filter(|p| !p.contains(':'))
            .unwrap_or_else(|| format!("berth/{id}"))
            .trim_start_matches('/')
            .to_string()
    }

    /// Before a new start: wait (up to 2 s) until the previous shim has
    /// deleted the runtime's state of the last run.
    pub(crate) async fn wait_runtime_state_gone(&self, id: &str) {
        let state = self.cfg.exec_root.join("runtime").join(id);
        for _ in 0..50 {
            if !state.exists() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // A stale state of an exited run (the shim's delete did not happen):
        // remove it, as `runc delete --force` would.
        warn!(container = %id, "removing stale runtime state");
        if let Err(e) = self.runtime_args(&["delete", "--force", id]).await {
            warn!(container = %id, "runtime delete: {e}");
        }
    }

    /// After SIGKILL to a paused container: thaw it so the signal lands.
    pub(crate) async fn thaw_if_paused(&self, id: &str) {
        let paused = self
            .with_entry(id, |e| e.rec.state.status == Status::Paused)
            .unwrap_or(false);
        if paused {
            if let Err(e) = self.runtime_cmd("resume", id).await {
                warn!(container = %id, "resume after kill: {e}");
            }
        }
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, key: &str) -> Result<()> {
        let id = self.resolve_id(key)?;
        let status = self.with_entry(&id, |e| e.rec.state.status)?;
        match status {
            Status::Paused => {
                return Err(Error::Conflict(format!("Container {id} is already paused")))
            }
            Status::Restarting => {
                return Err(Error::Conflict(format!(
                    "Container {id} is restarting, wait until the container is running"
                )))
            }
            Status::Running => {}
            _ => return Err(Error::Conflict(format!("Container {id} is not running"))),
        }
        self.runtime_cmd("pause", &id).await?;
        self.update(&id, |r| {
            if r.state.status == Status::Running {
                r.state.status = Status::Paused;
            }
        })?;
        info!(container = %id, "paused");
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, key: &str) -> Result<()> {
        let id = self.resolve_id(key)?;
        let status = self.with_entry(&id, |e| e.rec.state.status)?;
        if status != Status::Paused {
            // dockerd answers 500 here.
            return Err(Error::Internal(format!("Container {id} is not paused")));
        }
        self.runtime_cmd("resume", &id).await?;
        self.update(&id, |r| {
            if r.state.status == Status::Paused {
                r.state.status = Status::Running;
            }
        })?;
        info!(container = %id, "unpaused");
        Ok(())
    }

    /// `POST /containers/{id}/restart`: stop (if running), then start.
    pub async fn restart(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<()> {
        let id = self.resolve_id(key)?;
        let wrap = |e: Error| match e {
            Error::NoSuchContainer(_) | Error::NotFound(_) => e,
            e => Error::Internal(format!("Cannot restart container {key}: {e}")),
        };
        match self.stop(&id, timeout, signal).await {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(wrap(e)),
        }
        // The monitor may still be finishing the exit bookkeeping.
        for _ in 0..200 {
            let busy = self.with_entry(&id, |e| e.busy || e.rec.is_running())?;
            // The shim deletes the runtime's state of the old process.
            let state = self.cfg.exec_root.join("runtime").join(&id).exists();
            if !busy && !state {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The old shim may still be deleting the runtime's state.
        let mut tries = 0;
        loop {
            match self.start(&id).await {
                Err(e) if tries < 20 && e.to_string().contains("already exists") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                r => return r.map_err(wrap),
            }
        }
    }

    /// `POST /containers/{id}/rename?name=`.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if new_name.is_empty() || key.is_empty() {
            return Err(Error::InvalidArgument(
                "Neither old nor new names may be empty".into(),
            ));
        }
        if !names::valid_name(new_name) {
            return Err(Error::InvalidArgument(format!(
                "Error when allocating new name: Invalid container name (/{new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let id = self.resolve_id(key)?;
        let rec = {
            let mut inner = self.inner.lock().unwrap();
            let old = inner
                .containers
                .get(&id)
                .map(|e| e.rec.name.clone())
                .ok_or_else(|| Error::NoSuchContainer(key.to_string()))?;
            if old == new_name {
                return Err(Error::InvalidArgument(
                    "Renaming a container with the same name as its current name".into(),
                ));
            }
            if let Some(other) = inner.names.get(new_name) {
                return Err(Error::Conflict(format!(
                    "Error when allocating new name: Conflict. The container name \"/{new_name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            inner.names.remove(&old);
            inner.names.insert(new_name.to_string(), id.clone());
            let e = inner.containers.get_mut(&id).expect("checked above");
            e.rec.name = new_name.to_string();
            e.rec.clone()
        };
        self.persist(&rec)?;
        info!(container = %id, name = %new_name, "renamed");
        Ok(())
    }

    /// `POST /containers/{id}/update`: record the new values and, for a
    /// running container, write them to its cgroup. Returns warnings.
    pub async fn update_container(&self, key: &str, u: UpdateBody) -> Result<Vec<String>> {
        let id = self.resolve_id(key)?;
        let rec = self.with_entry(&id, |e| e.rec.clone())?;
        let mut h = rec.host_config.clone();
        if let Some(m) = u.memory.filter(|m| *m != 0) {
            if m > 0 && m < 6 << 20 {
                return Err(Error::InvalidArgument(
                    "Minimum memory limit allowed is 6MB".into(),
                ));
            }
            // moby: even an unlimited (0/-1) swap setting conflicts.
            if u.memory_swap.unwrap_or(0) == 0 && m > h.memory_swap {
                return Err(Error::Conflict(format!(
                    "Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                )));
            }
            h.memory = m;
        }
        if let Some(s) = u.memory_swap.filter(|s| *s != 0) {
            if s > 0 && h.memory > 0 && s < h.memory {
                return Err(Error::InvalidArgument(
                    "Minimum memoryswap limit should be larger than memory limit, see usage for details".into(),
                ));
            }
            h.memory_swap = s;
        }
        if let Some(r) = u.memory_reservation.filter(|r| *r != 0) {
            h.memory_reservation = r;
        }
        if let Some(n) = u.nano_cpus.filter(|n| *n != 0) {
            if h.cpu_quota > 0 || u.cpu_quota.is_some_and(|q| q > 0) {
                return Err(Error::InvalidArgument(
                    "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".into(),
                ));
            }
            h.nano_cpus = n;
        }
        if let Some(s) = u.cpu_shares.filter(|s| *s != 0) {
            h.cpu_shares = s;
        }
        if let Some(p) = u.cpu_period.filter(|p| *p != 0) {
            h.cpu_period = p;
        }
        if let Some(q) = u.cpu_quota.filter(|q| *q != 0) {
            if h.nano_cpus > 0 {
                return Err(Error::InvalidArgument(
                    "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set".into(),
                ));
            }
            h.cpu_quota = q;
        }
        if let Some(c) = u.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
            h.cpuset_cpus = c.clone();
        }
        if let Some(c) = u.cpuset_mems.as_ref().filter(|c| !c.is_empty()) {
            h.cpuset_mems = c.clone();
        }
        if let Some(w) = u.blkio_weight.filter(|w| *w != 0) {
            h.blkio_weight = w;
        }
        if let Some(p) = u.pids_limit {
            h.pids_limit = (p > 0).then_some(p);
        }
        if let Some(rp) = u.restart_policy.clone().filter(|p| !p.name.is_empty()) {
            if h.auto_remove && rp.name != "no" {
                return Err(Error::InvalidArgument(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                ));
            }
            h.restart_policy = rp;
        }
        if rec.is_running() {
            let rel = self.cgroup_rel(&id);
            apply_cgroup(&rel, &u, &h)
                .map_err(|e| Error::Internal(format!("Cannot update container {id}: {e}")))?;
        }
        self.update(&id, |r| r.host_config = h)?;
        info!(container = %id, "updated");
        Ok(vec![])
    }

    /// `GET /containers/{id}/top?ps_args=`: the host's `ps` output for the
    /// container's processes.
    pub async fn top(&self, key: &str, ps_args: Option<&str>) -> Result<TopResponse> {
        let id = self.resolve_id(key)?;
        let rec = self.with_entry(&id, |e| e.rec.clone())?;
        if !rec.is_running() {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        if rec.state.status == Status::Restarting {
            return Err(Error::Conflict(format!(
                "Container {id} is restarting, wait until the container is running"
            )));
        }
        let args: Vec<String> = ps_args
            .filter(|a| !a.trim().is_empty())
            .unwrap_or("-ef")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let rel = self.cgroup_rel(&id);
        let pids = berth_sys::cgroup::pids(&rel).unwrap_or_default();
        let pids = if pids.is_empty() && rec.state.pid > 0 {
            vec![rec.state.pid]
        } else {
            pids
        };
        let pid_list = pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut out = tokio::process::Command::new("ps")
            .args(&args)
            .arg("-q")
            .arg(&pid_list)
            .output()
            .await
            .map_err(|e| Error::Internal(format!("Error running ps: {e}")))?;
        if !out.status.success() {
            // Some ps options (such as f) cannot be combined with -q.
            out = tokio::process::Command::new("ps")
                .args(&args)
                .output()
                .await
                .map_err(|e| Error::Internal(format!("Error running ps: {e}")))?;
        }
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// `POST /containers/prune`: remove stopped containers matching `until`
    /// and `label`/`label!` filters.
    pub async fn prune(
        self: &Arc<Self>,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<PruneResponse> {
        for k in filters.keys() {
            if !["until", "label", "label!"].contains(&k.as_str()) {
                return Err(invalid_filter(k, None));
            }
        }
        let now = chrono::Utc::now();
        let mut until = None;
        for v in filters.get("until").into_iter().flatten() {
            until = Some(parse_timestamp(v, now).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "failed to parse value as time or duration: \"{v}\""
                ))
            })?);
        }
        let candidates: Vec<ContainerRecord> = {
            let inner = self.inner.lock().unwrap();
            inner
                .containers
                .values()
                .filter(|e| !e.busy)
                .map(|e| e.rec.clone())
                .collect()
        };
        let mut deleted = Vec::new();
        let mut space = 0u64;
        for r in candidates {
            if r.is_running() || r.state.status == Status::Removing {
                continue;
            }
            if until.is_some_and(|u| created_secs(&r) >= u) {
                continue;
            }
            let labels = r.config.labels.clone().unwrap_or_default();
            if let Some(ls) = filters.get("label") {
                if !ls.iter().all(|l| label_matches(l, &labels)) {
                    continue;
                }
            }
            if let Some(ls) = filters.get("label!") {
                if ls.iter().any(|l| label_matches(l, &labels)) {
                    continue;
                }
            }
            let size = upper_dir(&r)
                .map(|d| tokio::task::spawn_blocking(move || dir_size(&d)))
                .map(|h| async { h.await.unwrap_or(0) });
            let size = match size {
                Some(f) => f.await,
                None => 0,
            };
            match self.remove(&r.id, false).await {
                Ok(()) => {
                    space += size;
                    deleted.push(r.id.clone());
                }
                Err(e) => warn!(container = %r.id, "prune: {e}"),
            }
        }
        Ok(PruneResponse {
            containers_deleted: (!deleted.is_empty()).then_some(deleted),
            space_reclaimed: space,
        })
    }

    /// `GET /containers/json` with filters and sizes.
    pub async fn list_containers(&self, q: ListQuery) -> Result<Vec<ContainerSummary>> {
        for (k, vals) in &q.filters {
            if !PS_FILTERS.contains(&k.as_str()) {
                return Err(invalid_filter(k, None));
            }
            for v in vals {
                match k.as_str() {
                    "status" if !VALID_STATES.contains(&v.as_str()) => {
                        return Err(invalid_filter(k, Some(v)))
                    }
                    "exited" if v.parse::<i32>().is_err() => {
                        return Err(invalid_filter(k, Some(v)))
                    }
                    _ => {}
                }
            }
        }
        let f = &q.filters;
        let all = q.all || f.contains_key("status");
        let now = chrono::Utc::now();
        let mut recs: Vec<ContainerRecord> = {
            let inner = self.inner.lock().unwrap();
            inner.containers.values().map(|e| e.rec.clone()).collect()
        };
        recs.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        let reference = |key: &str| -> Result<Option<f64>> {
            let Some(v) = f.get(key).and_then(|v| v.first()) else {
                return Ok(None);
            };
            let r = self
                .record(v)
                .map_err(|_| Error::NotFound(format!("no such container {v}")))?;
            Ok(Some(created_secs(&r)))
        };
        let before = reference("before")?;
        let since = reference("since")?;
        // ancestor: an image reference or id → image ids
        let mut ancestors: Vec<(String, Option<String>)> = Vec::new();
        for a in f.get("ancestor").into_iter().flatten() {
            let images = self.images.clone();
            let name = a.clone();
            let id = tokio::task::spawn_blocking(move || images.resolve(&name).map(|r| r.id))
                .await
                .map_err(blocking_err)?
                .ok();
            ancestors.push((a.clone(), id));
        }
        let mut out = Vec::new();
        for r in recs {
            if let Some(b) = before {
                if created_secs(&r) >= b {
                    continue;
                }
            }
            if let Some(s) = since {
                if created_secs(&r) <= s {
                    continue;
                }
            }
            if !all && !r.is_running() && q.limit.is_none() && before.is_none() && since.is_none() {
                continue;
            }
            if let Some(st) = f.get("status") {
                if !st.iter().any(|s| s == r.state.status.as_str()) {
                    continue;
                }
            }
            if let Some(ids) = f.get("id") {
                if !ids.iter().any(|p| re_match(p, &r.id)) {
                    continue;
                }
            }
            if let Some(ns) = f.get("name") {
                let name = format!("/{}", r.name);
                if !ns.iter().any(|p| re_match(p, &name)) {
                    continue;
                }
            }
            let labels = r.config.labels.clone().unwrap_or_default();
            if let Some(ls) = f.get("label") {
                if !ls.iter().all(|l| label_matches(l, &labels)) {
                    continue;
                }
            }
            if let Some(codes) = f.get("exited") {
                let started = r.state.started_at != container::ZERO_TIME;
                if r.is_running()
                    || !started
                    || !codes
                        .iter()
                        .any(|c| c.parse::<i32>().ok() == Some(r.state.exit_code))
                {
                    continue;
                }
            }
            if !ancestors.is_empty()
                && !ancestors.iter().any(|(name, id)| {
                    id.as_deref() == Some(r.image_id.as_str())
                        || *name == r.config.image
                        || r.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(name.as_str())
                })
            {
                continue;
            }
            if f.get("is-task")
                .is_some_and(|v| v.iter().any(|x| x == "true"))
            {
                continue;
            }
            if let Some(vs) = f.get("volume") {
                // A volume name or a mount's source or destination.
                let hit = vs.iter().any(|v| {
                    r.mount_points
                        .iter()
                        .any(|m| m.name == *v || m.source == *v || m.destination == *v)
                });
                if !hit {
                    continue;
                }
            }
            if !self.network_filters_match(&r, f) {
                continue;
            }
            out.push(r);
        }
        let limit = q.limit.unwrap_or(usize::MAX);
        let mut list = Vec::new();
        for r in out.into_iter().take(limit) {
            let mut s = summary(&r, now);
            (s.ports, s.network_settings) = self.summary_ports(&r);
            if q.size {
                let (rw, root) = self.sizes(&r).await;
                // omitempty in dockerd
                s.size_rw = (rw != 0).then_some(rw);
                s.size_root_fs = (root != 0).then_some(root);
            }
            list.push(s);
        }
        Ok(list)
    }

    /// (SizeRw, SizeRootFs) of a container.
    async fn sizes(&self, r: &ContainerRecord) -> (i64, i64) {
        let images = self.images.clone();
        let image = r.image_id.clone();
        let upper = upper_dir(r);
        tokio::task::spawn_blocking(move || {
            let rw = upper.map(|d| dir_size(&d)).unwrap_or(0) as i64;
            let img = images.resolve(&image).map(|i| i.size).unwrap_or(0);
            (rw, rw + img)
        })
        .await
        .unwrap_or((0, 0))
    }

    /// `GET /containers/{id}/json?size=`.
    pub async fn inspect_container(&self, key: &str, size: bool) -> Result<Value> {
        let mut v = self.inspect(key)?;
        if size {
            let r = self.record(key)?;
            let (rw, root) = self.sizes(&r).await;
            if let Value::Object(m) = &mut v {
                // dockerd's order: GraphDriver, SizeRw, SizeRootFs, Mounts.
                let mut out = serde_json::Map::new();
                for (k, val) in std::mem::take(m) {
                    let after_graph = k == "GraphDriver";
                    out.insert(k, val);
                    if after_graph {
                        out.insert("SizeRw".into(), json!(rw));
                        out.insert("SizeRootFs".into(), json!(root));
                    }
                }
                *m = out;
            }
        }
        Ok(v)
    }
}

/// A `ps` row of a container record.
pub(crate) fn summary(r: &ContainerRecord, now: chrono::DateTime<chrono::Utc>) -> ContainerSummary {
    ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image: r.config.image.clone(),
        image_id: r.image_id.clone(),
        command: r.command_line(),
        created: chrono::DateTime::parse_from_rfc3339(&r.created)
            .map(|t| t.timestamp())
            .unwrap_or(0),
        ports: vec![],
        labels: r.config.labels.clone().unwrap_or_default(),
        state: r.state.status.as_str().into(),
        status: container::status_text(r, now),
        host_config: json!({"NetworkMode": r.host_config.network_mode}),
        network_settings: json!({"Networks": {}}),
        mounts: Engine::inspect_mounts(r)
            .as_array()
            .cloned()
            .unwrap_or_default(),
        size_rw: None,
        size_root_fs: None,
    }
}

/// moby's `parsePSOutput`: keep the rows whose PID column is one of `pids`;
/// the last column takes the rest of the line.
fn parse_ps(output: &str, pids: &[u32]) -> Result<TopResponse> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::Internal("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else {
            return Err(Error::Internal(format!(
                "Unexpected pid '{}': invalid",
                fields.get(pid_col).unwrap_or(&"")
            )));
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len();
        let mut row: Vec<String> = fields
            .iter()
            .take(n.saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        if fields.len() >= n {
            row.push(fields[n - 1..].join(" "));
        }
        processes.push(row);
    }
    Ok(TopResponse { titles, processes })
}

/// Write updated resources to the container's cgroup (v1 or v2).
fn apply_cgroup(
    rel: &str,
    u: &UpdateBody,
    h: &berth_types::api::HostConfig,
) -> std::io::Result<()> {
    use berth_sys::cgroup::{dir, is_unified, read, write};
    let missing = |c: &str| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{c} cgroup of {rel} not found"),
        )
    };
    let v2 = is_unified();
    let mem_changed = u.memory.is_some_and(|m| m != 0) || u.memory_swap.is_some_and(|m| m != 0);
    if mem_changed {
        let d = dir(rel, "memory").ok_or_else(|| missing("memory"))?;
        let limit = |v: i64| {
            if v > 0 {
                v.to_string()
            } else if v2 {
                "max".into()
            } else {
                "-1".into()
            }
        };
        if v2 {
            write(&d, "memory.max", &limit(h.memory))?;
            if h.memory > 0 && d.join("memory.swap.max").exists() {
                let swap = if h.memory_swap < 0 {
                    "max".to_string()
                } else {
                    (h.memory_swap - h.memory).max(0).to_string()
                };
                write(&d, "memory.swap.max", &swap)?;
            }
        } else {
            let memsw = d.join("memory.memsw.limit_in_bytes").exists();
            let cur_mem: i64 = read(&d, "memory.limit_in_bytes")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MAX);
            let want_sw = if h.memory_swap != 0 {
                h.memory_swap
            } else {
                -1
            };
            // memsw must stay >= memory: raise memsw first when growing.
            if memsw && (want_sw < 0 || want_sw > cur_mem) {
                write(&d, "memory.memsw.limit_in_bytes", &limit(want_sw))?;
                write(&d, "memory.limit_in_bytes", &limit(h.memory))?;
            } else {
                write(&d, "memory.limit_in_bytes", &limit(h.memory))?;
                if memsw {
                    write(&d, "memory.memsw.limit_in_bytes", &limit(want_sw))?;
                }
            }
        }
    }
    if u.memory_reservation.is_some_and(|r| r != 0) {
        let d = dir(rel, "memory").ok_or_else(|| missing("memory"))?;
        if v2 {
            write(&d, "memory.low", &h.memory_reservation.to_string())?;
        } else {
            write(
                &d,
                "memory.soft_limit_in_bytes",
                &h.memory_reservation.to_string(),
            )?;
        }
    }
    if u.cpu_shares.is_some_and(|s| s != 0) {
        let d = dir(rel, "cpu").ok_or_else(|| missing("cpu"))?;
        if v2 {
            let w = 1 + ((h.cpu_shares.max(2) - 2) * 9999) / 262142;
            write(&d, "cpu.weight", &w.to_string())?;
        } else {
            write(&d, "cpu.shares", &h.cpu_shares.to_string())?;
        }
    }
    let cpu_changed = u.nano_cpus.is_some_and(|n| n != 0)
        || u.cpu_quota.is_some_and(|n| n != 0)
        || u.cpu_period.is_some_and(|n| n != 0);
    if cpu_changed {
        let d = dir(rel, "cpu").ok_or_else(|| missing("cpu"))?;
        let (period, quota) = if h.nano_cpus > 0 {
            (100_000, h.nano_cpus * 100_000 / 1_000_000_000)
        } else {
            (
                if h.cpu_period > 0 {
                    h.cpu_period
                } else {
                    100_000
                },
                h.cpu_quota,
            )
        };
        if v2 {
            let q = if quota > 0 {
                quota.to_string()
            } else {
                "max".into()
            };
            write(&d, "cpu.max", &format!("{q} {period}"))?;
        } else {
            write(&d, "cpu.cfs_period_us", &period.to_string())?;
            write(
                &d,
                "cpu.cfs_quota_us",
                &(if quota > 0 { quota } else { -1 }).to_string(),
            )?;
        }
    }
    if let Some(c) = u.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        let d = dir(rel, "cpuset").ok_or_else(|| missing("cpuset"))?;
        write(&d, if v2 { "cpuset.cpus" } else { "cpuset.cpus" }, c)?;
    }
    if let Some(c) = u.cpuset_mems.as_ref().filter(|c| !c.is_empty()) {
        let d = dir(rel, "cpuset").ok_or_else(|| missing("cpuset"))?;
        write(&d, "cpuset.mems", c)?;
    }
    if u.pids_limit.is_some() {
        let d = dir(rel, "pids").ok_or_else(|| missing("pids"))?;
        let v = h
            .pids_limit
            .map(|p| p.to_string())
            .unwrap_or_else(|| "max".into());
        write(&d, "pids.max", &v)?;
    }
    if u.blkio_weight.is_some_and(|w| w != 0) {
        if let Some(d) = dir(rel, "blkio") {
            let _ = write(&d, "blkio.weight", &h.blkio_weight.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_filters() {
        assert!(re_match("foo", "/foobar"));
        assert!(re_match("^/foo$", "/foo"));
        assert!(!re_match("^/foo$", "/foobar"));
        assert!(re_match("f.o", "/fxo"));
        assert!(re_match("^/a.*z$", "/abcz"));
        assert!(!re_match("bar", "/foo"));
    }

    #[test]
    fn filters_both_forms() {
        let f = parse_filters(Some(r#"{"status":{"running":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(f["status"], vec!["running"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(Some("nope")).is_err());
    }

    #[test]
    fn timestamps() {
        let now = chrono::DateTime::from_timestamp(1000, 0).unwrap();
        assert_eq!(parse_timestamp("10m", now), Some(400.0));
        assert_eq!(parse_timestamp("1h1s", now), Some(1000.0 - 3601.0));
        assert_eq!(parse_timestamp("12.5", now), Some(12.5));
        assert_eq!(parse_timestamp("1970-01-01T00:01:00Z", now), Some(60.0));
        assert!(parse_timestamp("xx", now).is_none());
    }

    #[test]
    fn ps_output() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 12:00 ? 00:00:00 sleep 30\nroot 11 1 0 12:00 ? 00:00:00 other thing\n";
        let t = parse_ps(out, &[10]).unwrap();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(
            t.processes,
            vec![vec![
                "root", "10", "1", "0", "12:00", "?", "00:00:00", "sleep 30"
            ]]
        );
    }
}
