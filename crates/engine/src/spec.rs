//! OCI runtime spec generation: image config + container config +
//! HostConfig → `config.json` (ISO-01..ISO-08: namespaces, cgroups,
//! capabilities; Docker's defaults).

use std::path::Path;

use berth_types::api::{ContainerConfig, HostConfig};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Docker's default capability set (CapEff 00000000a80425fb).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything the spec needs, resolved.
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub args: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: &'a [u32],
    pub config: &'a ContainerConfig,
    pub host: &'a HostConfig,
    /// Files bind-mounted at /etc/{hostname,hosts,resolv.conf}.
    pub etc_files: &'a [(&'a str, &'a Path)],
    pub nofile_limit: u64,
}

pub fn generate(input: &SpecInput<'_>) -> Result<Value> {
    let host = input.host;
    let caps = capabilities(host)?;
    let mut mounts = vec![
        json!({"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]}),
        json!({"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}),
        json!({"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]}),
        json!({"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}),
        json!({"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro","nosuid","noexec","nodev"]}),
        json!({"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]}),
        json!({"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777",
            format!("size={}", if host.shm_size > 0 { host.shm_size } else { 64 << 20 })]}),
    ];
    for (dest, src) in input.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src,
            "options": ["rbind", "rprivate"]}));
    }

    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
    });
    if host.memory > 0 {
        resources["memory"] = json!({"limit": host.memory});
        if host.memory_swap > 0 && swap_accounting() {
            resources["memory"]["swap"] = json!(host.memory_swap);
        }
    }
    if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
        resources["pids"] = json!({"limit": p});
    }
    let mut cpu = serde_json::Map::new();
    if host.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(host.cpu_shares));
    }
    if host.nano_cpus > 0 {
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(host.nano_cpus / 10_000));
    } else if host.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(host.cpu_quota));
        if host.cpu_period > 0 {
            cpu.insert("period".into(), json!(host.cpu_period));
        }
    }
    if !host.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(host.cpuset_cpus));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }

    let mut rlimits = vec![
        json!({"type": "RLIMIT_NOFILE", "hard": input.nofile_limit, "soft": input.nofile_limit}),
    ];
    for u in host.ulimits.iter().flatten() {
        let name = format!("RLIMIT_{}", u.name.to_uppercase());
        rlimits.retain(|r| r["type"] != name.as_str());
        rlimits.push(json!({"type": name, "hard": u.hard, "soft": u.soft}));
    }

    let no_new_privs = host.security_opt.iter().flatten().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    });

    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": input.config.tty,
            "user": {"uid": input.uid, "gid": input.gid, "additionalGids": input.additional_gids},
            "args": input.args,
            "env": input.env,
            "cwd": input.cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "rlimits": rlimits,
            "noNewPrivileges": no_new_privs,
            "oomScoreAdj": host.oom_score_adj,
        },
        "root": {"path": "rootfs", "readonly": host.readonly_rootfs},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": {
            "resources": resources,
            "cgroupsPath": format!("/berth/{}", input.id),
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"},
            ],
            "maskedPaths": host.masked_paths.clone().unwrap_or_else(|| {
                if host.privileged { vec![] } else { MASKED_PATHS.iter().map(|s| s.to_string()).collect() }
            }),
            "readonlyPaths": host.readonly_paths.clone().unwrap_or_else(|| {
                if host.privileged { vec![] } else { READONLY_PATHS.iter().map(|s| s.to_string()).collect() }
            }),
        },
    });
    // The typed model catches shape mistakes before a runtime sees them.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .map_err(|e| Error::Internal(format!("generated an invalid OCI spec: {e}")))?;
    Ok(spec)
}

/// Whether the kernel accounts swap per cgroup (v1 `memsw` files, v2
/// `memory.swap.max`); Docker drops the swap limit otherwise.
fn swap_accounting() -> bool {
    let p = std::path::Path::new;
    p("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || p("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Docker's default set, adjusted by `--cap-add` / `--cap-drop` (`ALL` works
/// in both).
fn capabilities(host: &HostConfig) -> Result<Vec<String>> {
    let norm = |c: &str| -> String {
        let c = c.to_uppercase();
        if c == "ALL" || c.starts_with("CAP_") {
            c
        } else {
            format!("CAP_{c}")
        }
    };
    let mut caps: Vec<String> = if host.privileged {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    for c in host.cap_add.iter().flatten().map(|c| norm(c)) {
        if c == "ALL" {
            caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
        } else if !ALL_CAPS.contains(&c.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "unknown capability: \"{c}\""
            )));
        } else if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in host.cap_drop.iter().flatten().map(|c| norm(c)) {
        if c == "ALL" {
            caps.clear();
        } else {
            caps.retain(|x| *x != c);
        }
    }
    Ok(caps)
}

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        host: &'a HostConfig,
        config: &'a ContainerConfig,
        args: &'a [String],
    ) -> SpecInput<'a> {
        SpecInput {
            id: "abc",
            hostname: "abc",
            args,
            env: &[],
            cwd: "/",
            uid: 0,
            gid: 0,
            additional_gids: &[],
            config,
            host,
            etc_files: &[],
            nofile_limit: 1024,
        }
    }

    #[test]
    fn limits_and_defaults() {
        let host = HostConfig {
            memory: 32 << 20,
            pids_limit: Some(10),
            ..Default::default()
        };
        let config = ContainerConfig::default();
        let args = vec!["true".to_string()];
        let s = generate(&input(&host, &config, &args)).unwrap();
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 32 << 20);
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(
            s["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(s["linux"]["cgroupsPath"], "/berth/abc");
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/kcore")));
        assert_eq!(s["process"]["noNewPrivileges"], false);
    }

    #[test]
    fn cap_add_drop_and_no_new_privs() {
        let host = HostConfig {
            cap_add: Some(vec!["net_admin".into()]),
            cap_drop: Some(vec!["CHOWN".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let config = ContainerConfig::default();
        let args = vec!["true".to_string()];
        let s = generate(&input(&host, &config, &args)).unwrap();
        let eff = s["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert!(eff.contains(&json!("CAP_NET_ADMIN")));
        assert!(!eff.contains(&json!("CAP_CHOWN")));
        assert_eq!(s["process"]["noNewPrivileges"], true);
        let bad = HostConfig {
            cap_add: Some(vec!["BOGUS".into()]),
            ..Default::default()
        };
        assert!(generate(&input(&bad, &config, &args)).is_err());
    }
}
