//! Container init with a precompiled seccomp filter.
//!
//! libcontainer compiles the spec's seccomp profile with libseccomp in
//! every container's init (~10 ms of CPU for Docker's profile: the largest
//! single cost of a container start). When the shim asks for it
//! (`CreateOptions::seccomp_cache`) and the container runs as root without
//! a user namespace, `create` takes the filter from `enter`'s cache instead
//! (compiled once per profile) and hands libcontainer a config without
//! `linux.seccomp` and `process.capabilities`; this executor then does
//! what libcontainer would have done with them, in the same order, right
//! before the exec: the filter (before dropping capabilities unless
//! `noNewPrivileges`, as runc), the bounding set, the capability sets.
//! The bundle's `config.json` is swapped only for the duration of
//! libcontainer's read of it.

use std::path::{Path, PathBuf};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;
use serde_json::Value;

use crate::enter;

#[derive(Clone)]
pub(crate) struct FilteredExecutor {
    filter: enter::Filter,
    caps: enter::Caps,
    cap_last: u32,
    no_new_privs: bool,
}

impl Executor for FilteredExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let fail = |what: &str, e: i32| {
            ExecutorError::Other(format!("{what}: {}", std::io::Error::from_raw_os_error(e)))
        };
        if !self.no_new_privs {
            enter::load_filter(&self.filter).map_err(|e| fail("load seccomp filter", e))?;
        }
        enter::drop_bounding(self.caps.bounding, self.cap_last)
            .map_err(|e| fail("drop bounding capabilities", e))?;
        enter::set_caps(&self.caps).map_err(|e| fail("set capabilities", e))?;
        if self.no_new_privs {
            enter::load_filter(&self.filter).map_err(|e| fail("load seccomp filter", e))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// The bundle's config prepared for the filtered executor: the executor,
/// and the original `config.json` to put back once libcontainer has read
/// the stripped one. None when this container does not qualify.
pub(crate) struct Prepared {
    pub executor: FilteredExecutor,
    /// The spec's v1 `/sys/fs/cgroup` mount was taken out for
    /// `cgroup_mount::mount_v1` after create; `Some(readonly)`.
    pub cgroup_v1_mount: Option<bool>,
    config: PathBuf,
    original: Vec<u8>,
}

impl Prepared {
    pub(crate) fn new(bundle: &Path, cache: &Path) -> Option<Prepared> {
        let config = bundle.join("config.json");
        let original = std::fs::read(&config).ok()?;
        let mut spec: Value = serde_json::from_slice(&original).ok()?;
        let seccomp = spec["linux"].get("seccomp").filter(|s| !s.is_null())?;
        let process = &spec["process"];
        let root_user = process["user"]["uid"].as_u64().unwrap_or(0) == 0;
        let userns = spec["linux"]["namespaces"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n["type"] == "user"));
        let caps = process.get("capabilities").filter(|c| !c.is_null())?;
        if !root_user || userns {
            return None;
        }
        let filter = enter::cached_seccomp(seccomp, Some(cache)).ok()?;
        let caps = enter::Caps::from_value(caps).ok()?;
        let no_new_privs = process["noNewPrivileges"].as_bool().unwrap_or(false);
        if let Some(l) = spec["linux"].as_object_mut() {
            l.remove("seccomp");
        }
        if let Some(p) = spec["process"].as_object_mut() {
            p.remove("capabilities");
        }
        let cgroup_v1_mount = take_cgroup_v1_mount(&mut spec);
        let stripped = serde_json::to_vec(&spec).ok()?;
        berth_sys::fs::write_volatile(&config, &stripped, 0o600).ok()?;
        Some(Prepared {
            executor: FilteredExecutor {
                filter,
                caps,
                cap_last: enter::cap_last(),
                no_new_privs,
            },
            cgroup_v1_mount,
            config,
            original,
        })
    }

    /// Put the bundle's own `config.json` back.
    pub(crate) fn restore(&self) -> std::io::Result<()> {
        berth_sys::fs::write_volatile(&self.config, &self.original, 0o600)
    }
}

/// On a cgroup v1 host, a container without a cgroup namespace gets the
/// "emulated" `/sys/fs/cgroup`: take the spec's `cgroup` mount there out
/// of what libcontainer sees (`cgroup_mount::mount_v1` builds it after
/// create, with far fewer system calls). Returns `Some(readonly)` when
/// taken.
fn take_cgroup_v1_mount(spec: &mut Value) -> Option<bool> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return None;
    }
    let cgroupns = spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n["type"] == "cgroup"));
    if cgroupns {
        return None;
    }
    let mounts = spec.get_mut("mounts")?.as_array_mut()?;
    let i = mounts.iter().position(|m| {
        m["type"] == "cgroup"
            && m["destination"].as_str().is_some_and(|d| {
                crate::cgroup_mount::is_cgroup_root(Path::new(d.trim_end_matches('/')))
            })
    })?;
    let m = mounts.remove(i);
    let readonly = m["options"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o == "ro"));
    Some(readonly)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn takes_the_cgroup_mount_on_v1_only_without_cgroupns() {
        if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return; // v2 host: nothing is taken
        }
        let mut spec = json!({
            "mounts": [
                {"destination": "/proc", "type": "proc"},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["ro", "nosuid"]}
            ],
            "linux": {"namespaces": [{"type": "pid"}]}
        });
        assert_eq!(super::take_cgroup_v1_mount(&mut spec), Some(true));
        assert_eq!(spec["mounts"].as_array().unwrap().len(), 1);
        let mut with_ns = json!({
            "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "options": []}],
            "linux": {"namespaces": [{"type": "cgroup"}]}
        });
        assert_eq!(super::take_cgroup_v1_mount(&mut with_ns), None);
        assert_eq!(with_ns["mounts"].as_array().unwrap().len(), 1);
    }
}
