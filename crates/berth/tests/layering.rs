//! The crate dependency graph stays as docs/architecture.md draws it:
//! subsystem crates never depend on each other, `engine` never links the
//! runtime, `api` never touches `sys`/`image`/`network`, and nothing async
//! sits under `berth-runtime`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("berth-types", &[][..]),
        ("berth-sys", &["berth-types"][..]),
        ("berth-runtime", &["berth-types", "berth-sys"][..]),
        ("berth-image", &["berth-types", "berth-sys"][..]),
        ("berth-network", &["berth-types", "berth-sys"][..]),
        ("berth-build", &["berth-types"][..]),
        (
            "berth-engine",
            &[
                "berth-types",
                "berth-sys",
                "berth-image",
                "berth-network",
                "berth-build",
            ][..],
        ),
        ("berth-api", &["berth-types", "berth-engine"][..]),
        (
            "berth",
            &["berth-types", "berth-sys", "berth-api", "berth-engine"][..],
        ),
        (
            "berth-runtime-bin",
            &["berth-types", "berth-sys", "berth-runtime"][..],
        ),
    ])
}

#[test]
fn workspace_dependencies_follow_the_layering() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let allowed = allowed();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    for name in &members {
        assert!(
            allowed.contains_key(name.as_str()),
            "new crate {name}: add it to the layering table"
        );
    }
    let mut violations = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let ok = allowed[name];
        for dep in p["dependencies"].as_array().unwrap() {
            let dname = dep["name"].as_str().unwrap();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if members.contains(dname) && !is_dev && !ok.contains(&dname) {
                violations.push(format!("{name} -> {dname}"));
            }
            if (name == "berth-runtime" || name == "berth-runtime-bin") && dname == "tokio" {
                violations.push(format!(
                    "{name} -> tokio (the runtime must stay synchronous)"
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden dependencies: {violations:?}"
    );
}
