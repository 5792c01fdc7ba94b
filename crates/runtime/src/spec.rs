//! Default OCI spec (like `runc spec`) and Docker's default security lists.

use oci_spec::runtime::{LinuxDeviceCgroupBuilder, Spec};

pub use berth_types::defaults::{
    DEFAULT_CAPS as DOCKER_CAPABILITIES, MASKED_PATHS as DOCKER_MASKED_PATHS,
    READONLY_PATHS as DOCKER_READONLY_PATHS,
};

/// The spec `berth-runtime spec` writes: oci-spec's default (the same shape
/// as `runc spec`) with runc's hostname/terminal and a deny-all device rule.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("runc".into()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    if let Some(res) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("static device rule");
        res.set_devices(Some(vec![deny_all]));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_shape() {
        let s = default_spec();
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["root"]["path"], "rootfs");
        assert_eq!(j["process"]["args"][0], "sh");
        assert_eq!(j["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(j["process"]["rlimits"][0]["hard"], 1024);
        let ns: Vec<_> = j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        for want in ["pid", "network", "ipc", "uts", "mount"] {
            assert!(ns.iter().any(|n| n == want), "{want} in {ns:?}");
        }
        assert_eq!(j["linux"]["resources"]["devices"][0]["allow"], false);
    }
}
