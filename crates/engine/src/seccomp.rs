//! Seccomp (ISO: Docker's default syscall filter). berth's own default
//! policy lives in `resources/seccomp/default.json` (berth's format, see its
//! `about`); `--security-opt seccomp=<json>` takes a profile in Docker's
//! format. Both become the same rule list and are translated into the OCI
//! `linux.seccomp` for the container's capabilities, the native
//! architecture and the running kernel, like dockerd's `setupSeccomp`.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};

const DEFAULT_POLICY: &str = include_str!("../../../resources/seccomp/default.json");

/// The native architecture in Docker's (Go's) and libseccomp's naming.
#[cfg(target_arch = "x86_64")]
const NATIVE: (&str, &str) = ("amd64", "x86_64");
#[cfg(target_arch = "aarch64")]
const NATIVE: (&str, &str) = ("arm64", "aarch64");
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE: (&str, &str) = ("unknown", "unknown");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    pub value_two: u64,
    /// OCI operator name, e.g. `SCMP_CMP_MASKED_EQ`.
    pub op: String,
}

#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub names: Vec<String>,
    /// OCI action name, e.g. `SCMP_ACT_ALLOW`.
    pub action: String,
    pub errno: Option<u32>,
    pub args: Vec<Arg>,
    pub with_caps: Vec<String>,
    pub without_caps: Vec<String>,
    /// Architectures (either naming) the rule is limited to / excluded on.
    pub only_arch: Vec<String>,
    pub not_arch: Vec<String>,
    pub min_kernel: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub default_action: String,
    pub default_errno: Option<u32>,
    /// OCI architecture names (`SCMP_ARCH_X86_64`...).
    pub architectures: Vec<String>,
    pub flags: Vec<String>,
    pub rules: Vec<Rule>,
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

fn errno_number(name: &str) -> Option<u32> {
    Some(match name {
        "EPERM" => 1,
        "ENOENT" => 2,
        "EACCES" => 13,
        "EINVAL" => 22,
        "ENOSYS" => 38,
        n => return n.parse().ok(),
    })
}

fn parse_kernel(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn arch_to_oci(a: &str) -> String {
    let a = a.strip_prefix("SCMP_ARCH_").unwrap_or(a);
    let a = match a.to_ascii_lowercase().as_str() {
        "amd64" | "x86_64" => "X86_64".to_string(),
        "386" | "x86" => "X86".to_string(),
        "arm64" | "aarch64" => "AARCH64".to_string(),
        _ => a.to_ascii_uppercase(),
    };
    format!("SCMP_ARCH_{a}")
}

// ---------- berth's own format ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnPolicy {
    #[allow(dead_code)]
    about: String,
    default_errno: String,
    architectures: Vec<String>,
    rules: Vec<OwnRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnRule {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    errno: Option<String>,
    #[serde(default)]
    with_cap: Vec<String>,
    #[serde(default)]
    without_cap: Vec<String>,
    #[serde(default)]
    only_arch: Vec<String>,
    min_kernel: Option<String>,
    /// Argument conditions: `argN OP VALUE` or `argN & MASK == VALUE`.
    #[serde(default)]
    when: Vec<String>,
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_condition(c: &str) -> Option<Arg> {
    let w: Vec<&str> = c.split_whitespace().collect();
    let index = w.first()?.strip_prefix("arg")?.parse().ok()?;
    match w.as_slice() {
        [_, "&", mask, "==", v] => Some(Arg {
            index,
            value: parse_number(mask)?,
            value_two: parse_number(v)?,
            op: "SCMP_CMP_MASKED_EQ".into(),
        }),
        [_, op, v] => Some(Arg {
            index,
            value: parse_number(v)?,
            value_two: 0,
            op: match *op {
                "<" => "SCMP_CMP_LT",
                "<=" => "SCMP_CMP_LE",
                "==" => "SCMP_CMP_EQ",
                "!=" => "SCMP_CMP_NE",
                ">=" => "SCMP_CMP_GE",
                ">" => "SCMP_CMP_GT",
                _ => return None,
            }
            .into(),
        }),
        _ => None,
    }
}

/// berth's built-in default policy.
pub fn default_profile() -> Profile {
    let p: OwnPolicy =
        serde_json::from_str(DEFAULT_POLICY).expect("resources/seccomp/default.json");
    let rules = p
        .rules
        .into_iter()
        .map(|r| {
            let (names, action, errno) = if r.allow.is_empty() {
                let e = r.errno.as_deref().unwrap_or(&p.default_errno);
                (r.deny, "SCMP_ACT_ERRNO", errno_number(e))
            } else {
                (r.allow, "SCMP_ACT_ALLOW", None)
            };
            Rule {
                names,
                action: action.into(),
                errno,
                args: r
                    .when
                    .iter()
                    .map(|c| parse_condition(c).unwrap_or_else(|| panic!("bad condition {c}")))
                    .collect(),
                with_caps: r.with_cap,
                without_caps: r.without_cap,
                only_arch: r.only_arch,
                not_arch: vec![],
                min_kernel: r.min_kernel.as_deref().and_then(parse_kernel),
            }
        })
        .collect();
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno: errno_number(&p.default_errno),
        architectures: p.architectures.iter().map(|a| arch_to_oci(a)).collect(),
        flags: vec![],
        rules,
    }
}

// ---------- Docker's format (`--security-opt seccomp=<json>`) ----------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DockerProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    architectures: Vec<String>,
    arch_map: Vec<DockerArchMap>,
    syscalls: Vec<DockerSyscall>,
    flags: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DockerArchMap {
    architecture: String,
    sub_architectures: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DockerSyscall {
    name: String,
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    args: Vec<DockerArg>,
    includes: DockerFilter,
    excludes: DockerFilter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DockerArg {
    index: u32,
    value: u64,
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DockerFilter {
    caps: Vec<String>,
    arches: Vec<String>,
    min_kernel: String,
}

fn decode_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("Decoding seccomp profile failed: {e}"))
}

/// Parse a profile in Docker's JSON format, with dockerd's checks.
pub fn parse_docker(body: &str) -> Result<Profile> {
    // Go decodes `null` as an empty value; drop nulls so serde does too.
    fn strip_nulls(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(strip_nulls);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    let mut raw: Value = serde_json::from_str(body).map_err(decode_error)?;
    strip_nulls(&mut raw);
    let d: DockerProfile = serde_json::from_value(raw).map_err(decode_error)?;
    if !d.architectures.is_empty() && !d.arch_map.is_empty() {
        return Err(Error::InvalidArgument("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into()));
    }
    let check_action = |a: &str| {
        if ACTIONS.contains(&a) {
            Ok(a.to_string())
        } else {
            Err(decode_error(format!("unknown seccomp action {a:?}")))
        }
    };
    let mut architectures: Vec<String> = d.architectures.iter().map(|a| arch_to_oci(a)).collect();
    let native = arch_to_oci(NATIVE.1);
    for m in &d.arch_map {
        if arch_to_oci(&m.architecture) == native {
            architectures.push(native.clone());
            architectures.extend(m.sub_architectures.iter().map(|a| arch_to_oci(a)));
        }
    }
    let mut rules = Vec::new();
    for s in d.syscalls {
        if !s.name.is_empty() && !s.names.is_empty() {
            return Err(Error::InvalidArgument("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into()));
        }
        let mut names = s.names;
        if !s.name.is_empty() {
            names.push(s.name);
        }
        let mut args = Vec::new();
        for a in s.args {
            if !OPS.contains(&a.op.as_str()) {
                return Err(decode_error(format!("unknown seccomp operator {:?}", a.op)));
            }
            args.push(Arg {
                index: a.index,
                value: a.value,
                value_two: a.value_two,
                op: a.op,
            });
        }
        rules.push(Rule {
            names,
            action: check_action(&s.action)?,
            errno: s.errno_ret,
            args,
            with_caps: s.includes.caps,
            without_caps: s.excludes.caps,
            only_arch: s.includes.arches,
            not_arch: s.excludes.arches,
            min_kernel: if s.includes.min_kernel.is_empty() {
                None
            } else {
                Some(parse_kernel(&s.includes.min_kernel).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "invalid kernel version: {}",
                        s.includes.min_kernel
                    ))
                })?)
            },
        });
    }
    Ok(Profile {
        default_action: check_action(&d.default_action)?,
        default_errno: d.default_errno_ret,
        architectures,
        flags: d.flags,
        rules,
    })
}

// ---------- translation ----------

/// The running kernel's (major, minor).
pub fn kernel_version() -> (u32, u32) {
    static VERSION: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|v| parse_kernel(v.trim()))
            .unwrap_or((0, 0))
    })
}

fn is_native(a: &str) -> bool {
    a == NATIVE.0 || a == NATIVE.1 || arch_to_oci(a) == arch_to_oci(NATIVE.1)
}

/// [`to_oci`] of the default profile, built once per capability set (and
/// kernel) and checked against the OCI model then: every container start
/// needs it, and building it (parse, filter, typed check) was ~0.5 ms.
pub fn default_oci(caps: &[String], kernel: (u32, u32)) -> Result<Value> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<(Vec<String>, (u32, u32)), Value>>> = OnceLock::new();
    let mut key: Vec<String> = caps.iter().map(|c| c.to_ascii_uppercase()).collect();
    key.sort();
    key.dedup();
    let key = (key, kernel);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return Ok(v.clone());
    }
    let v = to_oci(&default_profile(), caps, kernel);
    serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone())
        .map_err(|e| Error::Internal(format!("generated an invalid OCI spec: {e}")))?;
    let mut cache = cache.lock().unwrap();
    if cache.len() > 64 {
        cache.clear();
    }
    cache.insert(key, v.clone());
    Ok(v)
}

/// The OCI `linux.seccomp` of `profile` for a container with `caps`.
pub fn to_oci(profile: &Profile, caps: &[String], kernel: (u32, u32)) -> Value {
    let has = |c: &String| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
    let mut syscalls = Vec::new();
    for r in &profile.rules {
        if !r.only_arch.is_empty() && !r.only_arch.iter().any(|a| is_native(a)) {
            continue;
        }
        if r.not_arch.iter().any(|a| is_native(a)) {
            continue;
        }
        if !r.with_caps.iter().all(has) || r.without_caps.iter().any(has) {
            continue;
        }
        if r.min_kernel.is_some_and(|m| kernel < m) {
            continue;
        }
        let mut s = json!({"names": r.names, "action": r.action});
        if let Some(e) = r.errno {
            s["errnoRet"] = json!(e);
        }
        if !r.args.is_empty() {
            s["args"] = r
                .args
                .iter()
                .map(|a| {
                    json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op})
                })
                .collect();
        }
        syscalls.push(s);
    }
    let mut v = json!({
        "defaultAction": profile.default_action,
        "architectures": profile.architectures,
        "syscalls": syscalls,
    });
    if let Some(e) = profile.default_errno {
        v["defaultErrnoRet"] = json!(e);
    }
    if !profile.flags.is_empty() {
        v["flags"] = json!(profile.flags);
    }
    v
}

/// The seccomp setting of `--security-opt` values: `None` for unconfined.
pub enum Choice {
    Default,
    Unconfined,
    Custom(String),
}

pub fn choice(security_opt: &[String]) -> Choice {
    let mut c = Choice::Default;
    for o in security_opt {
        if let Some(v) = o
            .strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
        {
            c = match v {
                "unconfined" => Choice::Unconfined,
                "" | "builtin" => Choice::Default,
                json => Choice::Custom(json.to_string()),
            };
        }
    }
    c
}

/// Syscall names allowed without argument conditions (for tests and docs).
pub fn allowed_names(oci: &Value) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for s in oci["syscalls"].as_array().into_iter().flatten() {
        if s["action"] == "SCMP_ACT_ALLOW" {
            for n in s["names"].as_array().into_iter().flatten() {
                set.insert(n.as_str().unwrap_or_default().to_string());
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ALL_CAPS, DEFAULT_CAPS};

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Every (name, action, errno, args) entry, order-independent.
    fn entries(oci: &Value) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        for s in oci["syscalls"].as_array().unwrap() {
            for n in s["names"].as_array().unwrap() {
                set.insert(format!(
                    "{} {} {} {}",
                    n, s["action"], s["errnoRet"], s["args"]
                ));
            }
        }
        set
    }

    #[test]
    fn default_oci_is_cached_per_capability_set() {
        let k = (6, 1);
        let base = caps(DEFAULT_CAPS);
        let mut admin = base.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let p = default_profile();
        assert_eq!(default_oci(&base, k).unwrap(), to_oci(&p, &base, k));
        // Second call (cached), caps in another order: the same policy.
        let mut rev = base.clone();
        rev.reverse();
        assert_eq!(default_oci(&rev, k).unwrap(), to_oci(&p, &base, k));
        let with_admin = default_oci(&admin, k).unwrap();
        assert_eq!(with_admin, to_oci(&p, &admin, k));
        assert!(allowed_names(&with_admin).contains("mount"));
        assert!(!allowed_names(&default_oci(&base, k).unwrap()).contains("mount"));
    }

    #[test]
    fn default_policy_parses_and_blocks_the_usual_suspects() {
        let p = default_profile();
        let oci = to_oci(&p, &caps(DEFAULT_CAPS), kernel_version());
        let allowed = allowed_names(&oci);
        for blocked in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "pivot_root",
            "init_module",
            "reboot",
            "swapon",
            "bpf",
            "clock_settime",
        ] {
            assert!(!allowed.contains(blocked), "{blocked} must be blocked");
        }
        for ok in [
            "read",
            "write",
            "execve",
            "clone",
            "socket",
            "arch_prctl",
            "chroot",
        ] {
            assert!(allowed.contains(ok), "{ok} must be allowed");
        }
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(oci["defaultErrnoRet"], 1);
        // CAP_SYS_ADMIN lifts the clone flag restriction and allows mount.
        let oci = to_oci(&p, &caps(&["CAP_SYS_ADMIN"]), (6, 1));
        assert!(allowed_names(&oci).contains("mount"));
        // The result is a valid OCI seccomp section.
        serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(oci).unwrap();
    }

    /// Same rules as Docker's reference profile, translated by dockerd's
    /// logic (`parse_docker`), for the default set, all caps and none.
    #[test]
    fn equivalent_to_dockers_reference_profile() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/spec/seccomp-default.json");
        let Ok(reference) = std::fs::read_to_string(&path) else {
            eprintln!("skipping: {} not found", path.display());
            return;
        };
        let theirs = parse_docker(&reference).unwrap();
        let ours = default_profile();
        for kernel in [(4, 4), (6, 1)] {
            for set in [caps(DEFAULT_CAPS), caps(ALL_CAPS), vec![]] {
                let a = to_oci(&ours, &set, kernel);
                let b = to_oci(&theirs, &set, kernel);
                assert_eq!(allowed_names(&a), allowed_names(&b), "caps {set:?}");
                assert_eq!(entries(&a), entries(&b), "caps {set:?}");
                assert_eq!(a["defaultAction"], b["defaultAction"]);
                assert_eq!(a["defaultErrnoRet"], b["defaultErrnoRet"]);
                let (mut x, mut y) = (a["architectures"].clone(), b["architectures"].clone());
                x.as_array_mut().unwrap().sort_by_key(|v| v.to_string());
                y.as_array_mut().unwrap().sort_by_key(|v| v.to_string());
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn docker_format_errors() {
        assert!(parse_docker("{")
            .unwrap_err()
            .to_string()
            .contains("Decoding seccomp profile failed"));
        assert!(parse_docker(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).is_err());
        assert!(parse_docker(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#
        )
        .is_err());
        let p = parse_docker(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let oci = to_oci(&p, &[], (6, 1));
        assert_eq!(oci["syscalls"][0]["names"][0], "mkdir");
    }
}
