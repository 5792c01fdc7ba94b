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
        let stripped = serde_json::to_vec(&spec).ok()?;
        berth_sys::fs::write_volatile(&config, &stripped, 0o600).ok()?;
        Some(Prepared {
            executor: FilteredExecutor {
                filter,
                caps,
                cap_last: enter::cap_last(),
                no_new_privs,
            },
            config,
            original,
        })
    }

    /// Put the bundle's own `config.json` back.
    pub(crate) fn restore(&self) -> std::io::Result<()> {
        berth_sys::fs::write_volatile(&self.config, &self.original, 0o600)
    }
}
