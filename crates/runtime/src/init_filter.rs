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
use crate::late_mounts::{DevMount, FileBind, LateMounts};

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
    /// Mounts taken out of the spec, for `late_mounts::apply` after create.
    pub late: LateMounts,
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
        let late = LateMounts {
            cgroup_v1: take_cgroup_v1_mount(&mut spec),
            file_binds: take_file_binds(&mut spec),
            dev_mounts: take_dev_mounts(&mut spec),
        };
        let stripped = serde_json::to_vec(&spec).ok()?;
        berth_sys::fs::write_volatile(&config, &stripped, 0o600).ok()?;
        Some(Prepared {
            executor: FilteredExecutor {
                filter,
                caps,
                cap_last: enter::cap_last(),
                no_new_privs,
            },
            late,
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
/// of what libcontainer sees (`late_mounts::apply` builds it after
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

/// Binds of single host files (Docker's `/etc/hostname`, `/etc/hosts`,
/// `/etc/resolv.conf`) that `late_mounts::apply` can make after create:
/// a regular file (not a symlink) as source, an absolute destination of
/// plain components, not executable, only `bind`/`rbind`/`private`/`rprivate`/`ro`/`rw`
/// options, no other mount on the destination or an ancestor of it (a
/// volume on `/etc` must come first), and a writable rootfs (the target
/// may have to be created). Taken out of the spec.
fn take_file_binds(spec: &mut Value) -> Vec<FileBind> {
    if spec["root"]["readonly"].as_bool() == Some(true) {
        return Vec::new();
    }
    let Some(mounts) = spec.get_mut("mounts").and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let dests: Vec<PathBuf> = mounts
        .iter()
        .map(|m| PathBuf::from(m["destination"].as_str().unwrap_or("")))
        .collect();
    let mut taken = Vec::new();
    let mut keep = Vec::with_capacity(mounts.len());
    for (i, m) in mounts.drain(..).enumerate() {
        match file_bind(&m, i, &dests) {
            Some(b) => taken.push(b),
            None => keep.push(m),
        }
    }
    *mounts = keep;
    taken
}

fn file_bind(m: &Value, i: usize, dests: &[PathBuf]) -> Option<FileBind> {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Component;
    let opts: Vec<&str> = m["options"]
        .as_array()
        .map(|o| o.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let is_bind = m["type"] == "bind" || opts.iter().any(|o| *o == "bind" || *o == "rbind");
    if !is_bind
        || !opts
            .iter()
            .all(|o| matches!(*o, "bind" | "rbind" | "private" | "rprivate" | "ro" | "rw"))
    {
        return None;
    }
    let source = PathBuf::from(m["source"].as_str()?);
    let destination = dests[i].clone();
    let plain = |p: &Path| {
        p.is_absolute()
            && p.components().count() > 1
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    if !plain(&source) || !plain(&destination) {
        return None;
    }
    // Not a program: libcontainer looks up `process.args[0]` at create
    // (`--init`'s docker-init is such a bind).
    let meta = std::fs::symlink_metadata(&source).ok()?;
    if !meta.file_type().is_file() || meta.permissions().mode() & 0o111 != 0 {
        return None;
    }
    let covered = dests
        .iter()
        .enumerate()
        .any(|(j, d)| j != i && destination.starts_with(d));
    if covered {
        return None;
    }
    Some(FileBind {
        source,
        destination,
        readonly: opts.contains(&"ro"),
        private: opts.iter().any(|o| *o == "private" || *o == "rprivate"),
    })
}

/// Docker's `/dev/shm` (tmpfs), `/dev/mqueue` and, without a terminal
/// (init sets one up at create), `/dev/pts`, when the spec mounts a tmpfs
/// on `/dev` (so they land in the container's own), nothing else below
/// them, and only options we map to flags or pass as data. Taken out.
fn take_dev_mounts(spec: &mut Value) -> Vec<DevMount> {
    let terminal = spec["process"]["terminal"].as_bool().unwrap_or(false);
    let Some(mounts) = spec.get_mut("mounts").and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let dev_tmpfs = mounts
        .iter()
        .any(|m| m["destination"] == "/dev" && m["type"] == "tmpfs");
    if !dev_tmpfs {
        return Vec::new();
    }
    let dests: Vec<String> = mounts
        .iter()
        .map(|m| m["destination"].as_str().unwrap_or("").to_string())
        .collect();
    let mut taken = Vec::new();
    let mut keep = Vec::with_capacity(mounts.len());
    for m in mounts.drain(..) {
        match dev_mount(&m, terminal, &dests) {
            Some(d) => taken.push(d),
            None => keep.push(m),
        }
    }
    *mounts = keep;
    taken
}

fn dev_mount(m: &Value, terminal: bool, dests: &[String]) -> Option<DevMount> {
    use nix::mount::MsFlags;
    let dest = m["destination"].as_str()?;
    let fstype = m["type"].as_str()?;
    let ok = matches!(
        (dest, fstype),
        ("/dev/shm", "tmpfs") | ("/dev/mqueue", "mqueue")
    ) || (dest == "/dev/pts" && fstype == "devpts" && !terminal);
    let below = format!("{dest}/");
    if !ok
        || dests.iter().any(|d| d.starts_with(&below))
        || dests.iter().filter(|d| *d == dest).count() > 1
    {
        return None;
    }
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in m["options"].as_array().into_iter().flatten() {
        let o = o.as_str()?;
        match o {
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "newinstance" => data.push(o),
            _ if o.starts_with("mode=")
                || o.starts_with("size=")
                || o.starts_with("ptmxmode=")
                || o.starts_with("gid=") =>
            {
                data.push(o)
            }
            _ => return None,
        }
    }
    Some(DevMount {
        destination: PathBuf::from(dest),
        fstype: fstype.to_string(),
        source: m["source"].as_str().unwrap_or(fstype).to_string(),
        flags,
        data: data.join(","),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn takes_dev_mounts_under_a_dev_tmpfs() {
        let mut spec = json!({
            "process": {"terminal": false},
            "mounts": [
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}
            ]
        });
        let taken = super::take_dev_mounts(&mut spec);
        assert_eq!(taken.len(), 3);
        assert_eq!(taken[0].data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert_eq!(taken[2].source, "shm");
        assert_eq!(taken[2].data, "mode=1777,size=67108864");
        assert_eq!(spec["mounts"].as_array().unwrap().len(), 1);
        // A terminal keeps /dev/pts with libcontainer; an unknown option or
        // no /dev tmpfs keeps everything.
        let mut tty = json!({"process": {"terminal": true}, "mounts": [
            {"destination": "/dev", "type": "tmpfs"},
            {"destination": "/dev/pts", "type": "devpts", "options": []},
            {"destination": "/dev/shm", "type": "tmpfs", "options": ["exec"]}
        ]});
        assert!(super::take_dev_mounts(&mut tty).is_empty());
        let mut no_dev =
            json!({"mounts": [{"destination": "/dev/shm", "type": "tmpfs", "options": []}]});
        assert!(super::take_dev_mounts(&mut no_dev).is_empty());
    }

    #[test]
    fn takes_file_binds_with_plain_options_and_no_covering_mount() {
        let dir = std::env::temp_dir().join(format!("berth-fb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        std::fs::write(&file, "x").unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let exe = dir.join("init");
        std::fs::write(&exe, "x").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let f = file.to_str().unwrap();
        let mut spec = json!({
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": f, "options": ["rbind", "rprivate"]},
                {"destination": "/etc/hostname", "type": "bind", "source": f, "options": ["rbind", "ro"]},
                {"destination": "/data/x", "type": "bind", "source": f, "options": ["rbind"]},
                {"destination": "/data", "type": "bind", "source": dir.to_str().unwrap(), "options": ["rbind"]},
                {"destination": "/etc/a", "type": "bind", "source": link.to_str().unwrap(), "options": ["rbind"]},
                {"destination": "/etc/b", "type": "bind", "source": f, "options": ["rbind", "nosuid"]},
                {"destination": "/etc/../c", "type": "bind", "source": f, "options": ["rbind"]},
                {"destination": "/sbin/docker-init", "type": "bind", "source": exe.to_str().unwrap(), "options": ["rbind", "ro"]}
            ]
        });
        let taken = super::take_file_binds(&mut spec);
        let dests: Vec<_> = taken
            .iter()
            .map(|b| b.destination.to_str().unwrap())
            .collect();
        assert_eq!(dests, ["/etc/hosts", "/etc/hostname"]);
        assert!(taken[0].private && !taken[0].readonly);
        assert!(!taken[1].private && taken[1].readonly);
        assert_eq!(
            spec["mounts"].as_array().unwrap().len(),
            7,
            "the others stay"
        );
        let mut ro_root = json!({"root": {"readonly": true}, "mounts": [
            {"destination": "/etc/hosts", "type": "bind", "source": f, "options": ["rbind"]}
        ]});
        assert!(super::take_file_binds(&mut ro_root).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
