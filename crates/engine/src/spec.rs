//! OCI runtime spec generation: image config + container config +
//! HostConfig → `config.json` (ISO-01..ISO-08: namespaces, cgroups,
//! capabilities; Docker's defaults).

use std::path::Path;

use berth_types::api::{ContainerConfig, HostConfig};
use serde_json::{json, Value};

use crate::error::{Error, Result};

use crate::seccomp;
pub use berth_types::defaults::{DEFAULT_CAPS, MASKED_PATHS, READONLY_PATHS};

/// Namespaces joined instead of created: (OCI type, /proc/<pid>/ns/<x>).
pub type JoinedNamespaces = Vec<(&'static str, String)>;

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
    /// `--pid container:`, `--ipc container:` targets.
    pub joined: &'a [(&'static str, String)],
    /// Source of /dev/shm when another container's IPC is shared.
    pub shm_source: Option<&'a str>,
    /// Host path of the init bind-mounted at /sbin/docker-init (`--init`).
    pub init: Option<&'a Path>,
}

/// Where `--init` puts the init inside the container (as Docker).
pub const INIT_PATH: &str = "/sbin/docker-init";

pub fn generate(input: &SpecInput<'_>) -> Result<Value> {
    let host = input.host;
    let (caps, _) = capabilities(host)?;
    let ipc = host.ipc_mode.as_str();
    let mut mounts = vec![
        json!({"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]}),
        json!({"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}),
        json!({"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]}),
        json!({"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev", if host.privileged {"rw"} else {"ro"}]}),
        json!({"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":[if host.privileged {"rw"} else {"ro"},"nosuid","noexec","nodev"]}),
        json!({"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]}),
    ];
    if ipc == "host" {
        mounts.push(json!({"destination":"/dev/shm","type":"bind","source":"/dev/shm","options":["rbind","rprivate"]}));
    } else if let Some(src) = input.shm_source {
        mounts.push(json!({"destination":"/dev/shm","type":"bind","source":src,"options":["rbind","rprivate"]}));
    } else if ipc != "none" {
        mounts.push(json!({"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777",
            format!("size={}", if host.shm_size > 0 { host.shm_size } else { 64 << 20 })]}));
    }
    for (dest, src) in input.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src,
            "options": ["rbind", "rprivate"]}));
    }
    let mut args = input.args.to_vec();
    if let Some(init) = input.init {
        mounts.push(
            json!({"destination": INIT_PATH, "type": "bind", "source": init,
            "options": ["bind", "ro"]}),
        );
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }

    let (devices, device_rules) = devices(host)?;
    let mut resources = json!({ "devices": device_rules });
    let mut memory = serde_json::Map::new();
    if host.memory > 0 {
        memory.insert("limit".into(), json!(host.memory));
        if host.memory_swap != 0 && swap_accounting() {
            memory.insert("swap".into(), json!(host.memory_swap));
        }
    }
    if host.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(host.memory_reservation));
    }
    if let Some(s) = host.memory_swappiness.filter(|s| (0..=100).contains(s)) {
        memory.insert("swappiness".into(), json!(s));
    }
    if host.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        resources["memory"] = Value::Object(memory);
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
    } else {
        if host.cpu_quota != 0 {
            cpu.insert("quota".into(), json!(host.cpu_quota));
        }
        if host.cpu_period > 0 {
            cpu.insert("period".into(), json!(host.cpu_period));
        }
    }
    if host.cpu_realtime_period > 0 {
        cpu.insert("realtimePeriod".into(), json!(host.cpu_realtime_period));
    }
    if host.cpu_realtime_runtime != 0 {
        cpu.insert("realtimeRuntime".into(), json!(host.cpu_realtime_runtime));
    }
    if !host.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(host.cpuset_cpus));
    }
    if !host.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(host.cpuset_mems));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    let blkio = block_io(host)?;
    if !blkio.as_object().is_some_and(|m| m.is_empty()) {
        resources["blockIO"] = blkio;
    }

    let mut rlimits = vec![
        json!({"type": "RLIMIT_NOFILE", "hard": input.nofile_limit, "soft": input.nofile_limit}),
    ];
    for u in host.ulimits.iter().flatten() {
        if !berth_types::defaults::ULIMIT_TYPES.contains(&u.name.to_lowercase().as_str()) {
            return Err(Error::InvalidArgument(format!(
                "invalid ulimit type: {}",
                u.name
            )));
        }
        let name = format!("RLIMIT_{}", u.name.to_uppercase());
        rlimits.retain(|r| r["type"] != name.as_str());
        rlimits.push(json!({"type": name, "hard": u.hard, "soft": u.soft}));
    }

    let sec = parse_security_opts(host)?;

    let mut namespaces = Vec::new();
    for (kind, mode) in [
        ("pid", host.pid_mode.as_str()),
        (
            "network",
            if host.network_mode == "host" {
                "host"
            } else {
                ""
            },
        ),
        ("ipc", ipc),
        ("uts", host.uts_mode.as_str()),
        ("mount", ""),
        (
            "cgroup",
            if host.cgroupns_mode == "host" {
                "host"
            } else {
                ""
            },
        ),
    ] {
        if let Some((_, path)) = input.joined.iter().find(|(k, _)| *k == kind) {
            namespaces.push(json!({"type": kind, "path": path}));
        } else if mode != "host" {
            namespaces.push(json!({"type": kind}));
        }
    }
    let process = json!({
        "terminal": input.config.tty,
        "user": {"uid": input.uid, "gid": input.gid, "additionalGids": input.additional_gids},
        "args": args,
        "env": input.env,
        "cwd": input.cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "rlimits": rlimits,
        "oomScoreAdj": host.oom_score_adj,
    });
    // Only when set: libcontainer loads the seccomp filter before dropping
    // capabilities only when the key is absent (Some(false) would make the
    // load fail without CAP_SYS_ADMIN).
    let mut process = process;
    if sec.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": host.readonly_rootfs},
        "mounts": mounts,
        "linux": {
            "resources": resources,
            "cgroupsPath": format!("/berth/{}", input.id),
            "namespaces": namespaces,
            "devices": devices,
            "maskedPaths": host.masked_paths.clone().unwrap_or_else(|| {
                if host.privileged { vec![] } else { MASKED_PATHS.iter().map(|s| s.to_string()).collect() }
            }),
            "readonlyPaths": host.readonly_paths.clone().unwrap_or_else(|| {
                if host.privileged { vec![] } else { READONLY_PATHS.iter().map(|s| s.to_string()).collect() }
            }),
        },
    });
    if host.uts_mode != "host" {
        spec["hostname"] = json!(input.hostname);
        if !input.config.domainname.is_empty() {
            spec["domainname"] = json!(input.config.domainname);
        }
    }
    if let Some(sysctls) = host.sysctls.as_ref().filter(|s| !s.is_empty()) {
        for k in sysctls.keys() {
            validate_sysctl(k, host)?;
        }
        spec["linux"]["sysctl"] = json!(sysctls);
    }
    // The typed model catches shape mistakes before a runtime sees them
    // (the seccomp part on its own: the default one is cached, checked once).
    let invalid =
        |e: serde_json::Error| Error::Internal(format!("generated an invalid OCI spec: {e}"));
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()).map_err(invalid)?;
    if !host.privileged {
        let seccomp = match &sec.seccomp {
            seccomp::Choice::Unconfined => None,
            seccomp::Choice::Default => {
                Some(seccomp::default_oci(&caps, seccomp::kernel_version())?)
            }
            seccomp::Choice::Custom(body) => {
                let p = seccomp::parse_docker(body)?;
                let v = seccomp::to_oci(&p, &caps, seccomp::kernel_version());
                serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone())
                    .map_err(invalid)?;
                Some(v)
            }
        };
        if let Some(v) = seccomp {
            spec["linux"]["seccomp"] = v;
        }
    }
    Ok(spec)
}

struct SecurityOpts {
    no_new_privileges: bool,
    seccomp: seccomp::Choice,
}

/// dockerd's `parseSecurityOpt`, with its error texts.
fn parse_security_opts(host: &HostConfig) -> Result<SecurityOpts> {
    let mut out = SecurityOpts {
        no_new_privileges: false,
        seccomp: seccomp::Choice::Default,
    };
    let opts = host.security_opt.clone().unwrap_or_default();
    for opt in &opts {
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        if opt == "disable" {
            continue;
        }
        let kv = if opt.contains('=') {
            opt.split_once('=')
        } else {
            opt.split_once(':')
        };
        let Some((k, v)) = kv else {
            return Err(Error::InvalidArgument(format!(
                "invalid --security-opt 1: {opt:?}"
            )));
        };
        match k {
            "label" | "apparmor" => {}
            "seccomp" => {}
            "no-new-privileges" => {
                out.no_new_privileges = match v {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "invalid --security-opt 2: {opt:?}"
                        )))
                    }
                }
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid --security-opt 2: {opt:?}"
                )))
            }
        }
    }
    out.seccomp = seccomp::choice(&opts);
    Ok(out)
}

/// Docker's sysctl rules: IPC sysctls need a private IPC namespace, net.*
/// a private network namespace; nothing else is namespaced.
fn validate_sysctl(k: &str, host: &HostConfig) -> Result<()> {
    if berth_types::defaults::IPC_SYSCTLS.contains(&k) || k.starts_with("fs.mqueue.") {
        if host.ipc_mode == "host" {
            return Err(Error::InvalidArgument(format!(
                "sysctl {k:?} not allowed in host IPC namespace"
            )));
        }
        return Ok(());
    }
    if k.starts_with("net.") {
        if host.network_mode == "host" {
            return Err(Error::InvalidArgument(format!(
                "sysctl {k:?} not allowed in host network namespace"
            )));
        }
        return Ok(());
    }
    if host.uts_mode != "host" && (k == "kernel.domainname" || k == "kernel.hostname") {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "sysctl {k:?} is not allowed"
    )))
}

/// Whether the kernel accounts swap per cgroup (v1 `memsw` files, v2
/// `memory.swap.max`); Docker drops the swap limit otherwise.
pub fn swap_accounting() -> bool {
    let p = std::path::Path::new;
    p("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || p("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Capabilities in the daemon's bounding set (a container cannot get more).
pub fn host_bounding_caps() -> Vec<String> {
    // The daemon's bounding set never grows, and it is read per container
    // start: once.
    static MASK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let mask = *MASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(u64::MAX)
    });
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

fn norm_cap(c: &str) -> String {
    let c = c.to_uppercase();
    if c == "ALL" || c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// Docker's `NormalizeLegacyCapabilities` check, with its error texts.
pub fn validate_capabilities(host: &HostConfig) -> Result<()> {
    for (what, list) in [("CapAdd", &host.cap_add), ("CapDrop", &host.cap_drop)] {
        for c in list.iter().flatten() {
            let n = norm_cap(c);
            if n != "ALL" && !ALL_CAPS.contains(&n.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "invalid {what}: unknown capability: \"{n}\""
                )));
            }
        }
    }
    Ok(())
}

/// Docker's default set, adjusted by `--cap-add` / `--cap-drop` (`ALL` works
/// in both), limited to the host's bounding set; the second list holds the
/// capabilities asked for that the host cannot grant.
pub fn capabilities(host: &HostConfig) -> Result<(Vec<String>, Vec<String>)> {
    validate_capabilities(host)?;
    let all = || ALL_CAPS.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let add: Vec<String> = host.cap_add.iter().flatten().map(|c| norm_cap(c)).collect();
    let drop: Vec<String> = host
        .cap_drop
        .iter()
        .flatten()
        .map(|c| norm_cap(c))
        .collect();
    // dockerd's TweakCapabilities: privileged gets everything; `--cap-add
    // ALL` everything but the drops; `--cap-drop ALL` only the adds;
    // otherwise the defaults minus the drops plus the adds.
    let mut caps: Vec<String> = if host.privileged {
        all()
    } else if add.iter().any(|c| c == "ALL") {
        all().into_iter().filter(|c| !drop.contains(c)).collect()
    } else if drop.iter().any(|c| c == "ALL") {
        add.clone()
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect();
        v.extend(add.iter().cloned());
        v
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    let bounding = host_bounding_caps();
    let missing: Vec<String> = caps
        .iter()
        .filter(|c| !bounding.contains(c))
        .cloned()
        .collect();
    caps.retain(|c| bounding.contains(c));
    Ok((caps, missing))
}

/// Warnings for `Warnings` of the create response (and values dockerd
/// discards), plus dockerd's resource checks with its error texts.
pub fn verify_host_config(host: &mut HostConfig) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
    if host.memory > 0 && host.memory < 6 << 20 {
        return bad("Minimum memory limit allowed is 6MB");
    }
    if host.memory == 0 && host.memory_swap > 0 {
        return bad(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        );
    }
    if host.memory > 0 && host.memory_swap > 0 && host.memory_swap < host.memory {
        return bad("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    if host.memory_reservation > 0 && host.memory_reservation < 6 << 20 {
        return bad("Minimum memory reservation allowed is 6MB");
    }
    if host.memory > 0 && host.memory_reservation > 0 && host.memory < host.memory_reservation {
        return bad(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        );
    }
    if host.memory > 0 && host.memory_swap != 0 && !swap_accounting() {
        warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        host.memory_swap = -1;
    }
    if host
        .memory_swappiness
        .is_some_and(|s| !(-1..=100).contains(&s))
    {
        return Err(Error::InvalidArgument(format!(
            "Invalid value: {}, valid memory swappiness range is 0-100",
            host.memory_swappiness.unwrap_or(0)
        )));
    }
    if host.kernel_memory != 0 {
        warnings.push("Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        host.kernel_memory = 0;
    }
    if host.kernel_memory_tcp != 0 {
        warnings.push("Your kernel does not support kernel memory TCP limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        host.kernel_memory_tcp = 0;
    }
    if host.oom_kill_disable && host.memory == 0 {
        warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
    }
    if !(-1000..=1000).contains(&host.oom_score_adj) {
        return Err(Error::InvalidArgument(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            host.oom_score_adj
        )));
    }
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as i64;
    if host.nano_cpus > 0 && host.cpu_period > 0 {
        return bad("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if host.nano_cpus > 0 && host.cpu_quota > 0 {
        return bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    if host.nano_cpus < 0 || host.nano_cpus > ncpu * 1_000_000_000 {
        return Err(Error::InvalidArgument(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if host.cpu_period != 0 && !(1000..=1_000_000).contains(&host.cpu_period) {
        return bad(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        );
    }
    if host.cpu_quota > 0 && host.cpu_quota < 1000 {
        return bad("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    for (what, set) in [("cpus", &host.cpuset_cpus), ("mems", &host.cpuset_mems)] {
        if set.is_empty() {
            continue;
        }
        let Some(list) = parse_cpuset(set) else {
            return Err(Error::InvalidArgument(format!(
                "Invalid value {set} for cpuset {what}"
            )));
        };
        let file = if what == "cpus" { "cpus" } else { "mems" };
        let avail = std::fs::read_to_string(format!("/sys/fs/cgroup/cpuset/cpuset.{file}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/cpuset.{file}.effective")))
            .unwrap_or_default();
        if let Some(have) = parse_cpuset(avail.trim()).filter(|h| !h.is_empty()) {
            if list.iter().any(|c| !have.contains(c)) {
                return Err(Error::InvalidArgument(format!(
                    "Requested {} are not available - requested {set}, available: {}",
                    if what == "cpus" {
                        "CPUs"
                    } else {
                        "memory nodes"
                    },
                    avail.trim()
                )));
            }
        }
    }
    // Like dockerd: what the kernel cannot do is discarded with a warning.
    let blkio_v1 = |f: &str| Path::new("/sys/fs/cgroup/blkio").join(f).exists();
    let v2_io = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"));
    if host.blkio_weight > 0 && !(v2_io || blkio_v1("blkio.weight") || blkio_v1("blkio.bfq.weight"))
    {
        warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        host.blkio_weight = 0;
    }
    if host
        .blkio_weight_device
        .as_ref()
        .is_some_and(|v| !v.is_empty())
        && !(v2_io || blkio_v1("blkio.weight_device") || blkio_v1("blkio.bfq.weight_device"))
    {
        warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
        host.blkio_weight_device = Some(vec![]);
    }
    if host.blkio_weight > 0 && !(10..=1000).contains(&host.blkio_weight) {
        return bad("Range of blkio weight is from 10 to 1000");
    }
    match host.ipc_mode.as_str() {
        "" | "private" | "shareable" | "host" | "none" => {}
        m if m.starts_with("container:") && m.len() > 10 => {}
        m => return Err(Error::InvalidArgument(format!("Invalid IPC mode: {m}"))),
    }
    match host.pid_mode.as_str() {
        "" | "host" => {}
        m if m.starts_with("container:") && m.len() > 10 => {}
        m => return Err(Error::InvalidArgument(format!("invalid PID mode: {m}"))),
    }
    match host.uts_mode.as_str() {
        "" | "host" => {}
        m => return Err(Error::InvalidArgument(format!("invalid UTS mode: {m}"))),
    }
    for r in host.device_cgroup_rules.iter().flatten() {
        parse_cgroup_rule(r)?;
    }
    let (_, missing) = capabilities(host)?;
    if !missing.is_empty() {
        warnings.push(format!(
            "The host's capability bounding set lacks {}: the container does not get {}.",
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok(warnings)
}

fn parse_cpuset(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// `c 1:3 rwm`, `a *:* m` (Docker's device cgroup rule syntax).
fn parse_cgroup_rule(r: &str) -> Result<Value> {
    let bad = || Error::InvalidArgument(format!("invalid device cgroup format '{r}'"));
    let w: Vec<&str> = r.split_whitespace().collect();
    let [typ, mm, access] = w.as_slice() else {
        return Err(bad());
    };
    let (maj, min) = mm.split_once(':').ok_or_else(bad)?;
    let num = |v: &str| -> Result<Option<i64>> {
        if v == "*" {
            Ok(None)
        } else {
            v.parse().map(Some).map_err(|_| bad())
        }
    };
    if !["a", "b", "c"].contains(typ)
        || access.is_empty()
        || access.len() > 3
        || !access.chars().all(|c| "rwm".contains(c))
    {
        return Err(bad());
    }
    let mut v = json!({"allow": true, "type": typ, "access": access});
    if let Some(m) = num(maj)? {
        v["major"] = json!(m);
    }
    if let Some(m) = num(min)? {
        v["minor"] = json!(m);
    }
    Ok(v)
}

/// One host device node as an OCI device: (type, major, minor, mode, uid, gid).
fn device_node(path: &Path) -> std::io::Result<Option<(&'static str, i64, i64, u32, u32, u32)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path)?;
    let ft = m.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let dev = m.rdev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Ok(Some((
        typ,
        major as i64,
        minor as i64,
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
    )))
}

/// Every device under `dir`, as Docker's `HostDevices` walks /dev.
fn host_devices(
    dir: &Path,
    out: &mut Vec<(std::path::PathBuf, (&'static str, i64, i64, u32, u32, u32))>,
) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if !["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]
                .contains(&name.as_str())
            {
                host_devices(&p, out);
            }
        } else if ft.is_symlink() || name == "console" {
            continue;
        } else if let Ok(Some(d)) = device_node(&p) {
            out.push((p, d));
        }
    }
}

/// `linux.devices` and the device cgroup rules: Docker's defaults,
/// `--device`, `--device-cgroup-rule`, or everything for `--privileged`.
fn devices(host: &HostConfig) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut devs = Vec::new();
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    let dev = |p: &Path, d: (&str, i64, i64, u32, u32, u32)| json!({"path": p, "type": d.0, "major": d.1, "minor": d.2, "fileMode": d.3, "uid": d.4, "gid": d.5});
    if host.privileged {
        let mut all = Vec::new();
        host_devices(Path::new("/dev"), &mut all);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, d) in all {
            devs.push(dev(&p, d));
        }
        rules = vec![json!({"allow": true, "access": "rwm"})];
    } else {
        for (t, maj, min, acc) in [
            ("c", None, None, "m"),
            ("b", None, None, "m"),
            ("c", Some(1), Some(3), "rwm"),
            ("c", Some(1), Some(8), "rwm"),
            ("c", Some(1), Some(7), "rwm"),
            ("c", Some(5), Some(0), "rwm"),
            ("c", Some(1), Some(5), "rwm"),
            ("c", Some(1), Some(9), "rwm"),
            ("c", Some(5), Some(1), "rwm"),
            ("c", Some(136), None, "rwm"),
            ("c", Some(5), Some(2), "rwm"),
            ("c", Some(10), Some(200), "rwm"),
        ] {
            let mut r = json!({"allow": true, "type": t, "access": acc});
            if let Some(m) = maj {
                r["major"] = json!(m);
            }
            if let Some(m) = min {
                r["minor"] = json!(m);
            }
            rules.push(r);
        }
    }
    for d in host.devices.iter().flatten() {
        let src = d["PathOnHost"].as_str().unwrap_or_default();
        let dst = d["PathInContainer"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(src);
        let perms = d["CgroupPermissions"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("rwm");
        let gather = |e: String| {
            Error::InvalidArgument(format!(
                "error gathering device information while adding custom device \"{src}\": {e}"
            ))
        };
        if !perms.chars().all(|c| "rwm".contains(c)) {
            return Err(gather("invalid cgroup permissions".into()));
        }
        let resolved = std::fs::canonicalize(src).unwrap_or_else(|_| src.into());
        let mut found = Vec::new();
        match device_node(&resolved) {
            Ok(Some(n)) => found.push((std::path::PathBuf::from(dst), n)),
            Ok(None) if resolved.is_dir() => {
                let mut sub = Vec::new();
                host_devices(&resolved, &mut sub);
                for (p, n) in sub {
                    let rel = p.strip_prefix(&resolved).unwrap_or(&p).to_path_buf();
                    found.push((Path::new(dst).join(rel), n));
                }
            }
            Ok(None) => return Err(gather("not a device node".into())),
            Err(e) => return Err(gather(io_text(&e))),
        }
        for (p, n) in found {
            devs.retain(|x: &Value| x["path"] != json!(p));
            devs.push(dev(&p, n));
            rules.push(
                json!({"allow": true, "type": n.0, "major": n.1, "minor": n.2, "access": perms}),
            );
        }
    }
    for r in host.device_cgroup_rules.iter().flatten() {
        rules.push(parse_cgroup_rule(r)?);
    }
    Ok((devs, rules))
}

/// Go's text for an errno ("no such file or directory").
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s.to_string(),
    }
}

/// `linux.resources.blockIO` from the Blkio* fields ({"Path","Rate"} /
/// {"Path","Weight"}).
fn block_io(host: &HostConfig) -> Result<Value> {
    let mut b = serde_json::Map::new();
    if host.blkio_weight > 0 {
        b.insert("weight".into(), json!(host.blkio_weight));
    }
    let major_minor = |path: &str| -> Result<(i64, i64)> {
        let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
        match device_node(&resolved) {
            Ok(Some((_, maj, min, ..))) => Ok((maj, min)),
            Ok(None) => Err(Error::InvalidArgument(format!("{path} is not a device"))),
            Err(e) => Err(Error::InvalidArgument(format!("{path}: {}", io_text(&e)))),
        }
    };
    let mut wd = Vec::new();
    for d in host.blkio_weight_device.iter().flatten() {
        let (major, minor) = major_minor(d["Path"].as_str().unwrap_or_default())?;
        wd.push(
            json!({"major": major, "minor": minor, "weight": d["Weight"].as_u64().unwrap_or(0)}),
        );
    }
    if !wd.is_empty() {
        b.insert("weightDevice".into(), json!(wd));
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &host.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &host.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &host.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &host.blkio_device_write_iops),
    ] {
        let mut v = Vec::new();
        for d in list.iter().flatten() {
            let (major, minor) = major_minor(d["Path"].as_str().unwrap_or_default())?;
            v.push(
                json!({"major": major, "minor": minor, "rate": d["Rate"].as_u64().unwrap_or(0)}),
            );
        }
        if !v.is_empty() {
            b.insert(key.into(), json!(v));
        }
    }
    Ok(Value::Object(b))
}

pub const ALL_CAPS: &[&str] = &[
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
            joined: &[],
            shm_source: None,
            init: None,
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
        assert!(s["process"].get("noNewPrivileges").is_none());
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
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
