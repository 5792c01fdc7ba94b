//! End-to-end: pull / push / tag / rmi / login against a throwaway
//! docker-registry on 127.0.0.1, with berth's CLI and the official docker CLI.

mod common;
#[path = "../../image/tests/support/registry.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use support::Registry;

macro_rules! registry {
    ($auth:expr) => {
        match Registry::start($auth) {
            Some(r) => r,
            None => {
                eprintln!("skipping: docker-registry not installed");
                return;
            }
        }
    };
}

fn berth_env(d: &Daemon, cfg: &std::path::Path, args: &[&str], input: Option<&str>) -> Output {
    let mut c = Command::new(bin("berth"))
        .arg("-H")
        .arg(d.host())
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut sin = c.stdin.take().unwrap();
        if let Some(i) = input {
            sin.write_all(i.as_bytes()).unwrap();
        }
    }
    c.wait_with_output().unwrap()
}

fn image_id(d: &Daemon, r: &str) -> String {
    ok(&d.berth(&["inspect", "-f", "{{.Id}}", r]))
        .trim()
        .to_string()
}

// IMG-09/10/11/12, REG-02/03: push from one daemon, pull into another, run it.
#[test]
fn push_pull_run_rmi() {
    require_root!();
    let reg = registry!(None);
    let host = reg.host();
    let d1 = Daemon::start("img-push");
    let name = format!("{host}/e2e/busybox:1");
    ok(&d1.berth(&["tag", IMAGE, &name]));
    let out = ok(&d1.berth(&["push", &name]));
    assert!(
        out.contains(&format!(
            "The push refers to repository [{host}/e2e/busybox]"
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    assert!(out.contains("1: digest: sha256:"), "{out}");
    let id = image_id(&d1, &name);

    let d2 = Daemon::start("img-pull");
    // Remove the preloaded image so every layer is downloaded.
    let o = ok(&d2.berth(&["rmi", IMAGE]));
    assert!(o.contains(&format!("Untagged: {IMAGE}:latest")), "{o}");
    assert!(o.contains("Deleted: sha256:"), "{o}");
    let out = ok(&d2.berth(&["pull", &name]));
    assert!(out.starts_with("1: Pulling from e2e/busybox\n"), "{out}");
    assert!(out.contains(": Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&name), "{out}");
    assert_eq!(image_id(&d2, &name), id);
    let digests = ok(&d2.berth(&["inspect", "-f", "{{json .RepoDigests}}", &name]));
    assert!(
        digests.contains(&format!("{host}/e2e/busybox@sha256:")),
        "{digests}"
    );
    let o = ok(&d2.berth(&["run", "--rm", &name, "echo", "pulled"]));
    assert_eq!(o.trim(), "pulled");
    let again = ok(&d2.berth(&["pull", &name]));
    assert!(again.contains("Status: Image is up to date"), "{again}");

    // Unknown tag: 404 before the stream.
    let o = d2.berth(&["pull", &format!("{host}/e2e/busybox:nope")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("manifest unknown"), "{}", stderr(&o));

    // tag / rmi semantics.
    ok(&d2.berth(&["tag", &name, "local/copy:2"]));
    let o = d2.berth(&["rmi", &id[7..19]]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("image is referenced in multiple repositories"),
        "{}",
        stderr(&o)
    );
    let o = ok(&d2.berth(&["rmi", "local/copy:2"]));
    assert_eq!(o.trim(), "Untagged: local/copy:2");
    let cid = ok(&d2.berth(&["create", &name, "true"])).trim().to_string();
    let o = d2.berth(&["rmi", &name]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("conflict: unable to remove repository reference"),
        "{}",
        stderr(&o)
    );
    ok(&d2.berth(&["rm", &cid]));
    let o = ok(&d2.berth(&["rmi", &name]));
    assert!(o.contains(&format!("Untagged: {name}")), "{o}");
    assert!(o.contains(&format!("Deleted: {id}")), "{o}");
    let o = d2.berth(&["rmi", &name]);
    assert!(stderr(&o).contains("No such image"), "{}", stderr(&o));

    // Pull by digest.
    let dg = digests
        .trim()
        .trim_matches(|c| c == '[' || c == ']' || c == '"')
        .to_string();
    let out = ok(&d2.berth(&["pull", &dg]));
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(image_id(&d2, &dg), id);

    // `run` of an image that is not there pulls it first (IMG-01), with the
    // progress on stderr and only the container's output on stdout.
    ok(&d2.berth(&["rmi", &dg]));
    let o = d2.berth(&["run", "--rm", &name, "echo", "auto-pulled"]);
    assert_eq!(stdout(&o), "auto-pulled\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("Unable to find image '{name}' locally")),
        "{}",
        stderr(&o)
    );
    let o = d2.berth(&["run", "--rm", &format!("{host}/e2e/nothere:1"), "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("manifest unknown"), "{}", stderr(&o));
}

// The official docker CLI against berthd: pull and push.
#[test]
fn docker_cli_pull_push() {
    require_root!();
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("skipping: no docker CLI");
        return;
    }
    let reg = registry!(None);
    let host = reg.host();
    let d = Daemon::start("img-docker");
    let name = format!("{host}/dk/busybox:1");
    ok(&d.docker(&["tag", IMAGE, &name]));
    let out = ok(&d.docker(&["push", &name]));
    assert!(out.contains("1: digest: sha256:"), "{out}");
    ok(&d.docker(&["rmi", &name, IMAGE]));
    let out = ok(&d.docker(&["pull", &name]));
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    let o = d.docker(&["pull", &format!("{host}/dk/none:1")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("manifest unknown"), "{}", stderr(&o));
    // `docker run` of a missing image pulls it (CLI: create → 404 → pull → create).
    ok(&d.docker(&["rmi", &name]));
    let o = d.docker(&["run", "--rm", &name, "echo", "hi"]);
    assert_eq!(ok(&o).trim(), "hi");
    assert!(
        stderr(&o).contains("Unable to find image"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("Pull complete"), "{}", stderr(&o));
}

// Login against an htpasswd registry; credentials in config.json are sent
// as X-Registry-Auth; wrong ones fail clearly.
#[test]
fn login_push_pull_with_auth() {
    require_root!();
    let reg = registry!(Some(("alice", "s3cret")));
    let host = reg.host();
    let cfgdir = tempfile::tempdir().unwrap();
    let d = Daemon::start("img-auth");
    let name = format!("{host}/auth/busybox:1");
    ok(&d.berth(&["tag", IMAGE, &name]));

    let o = berth_env(&d, cfgdir.path(), &["push", &name], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no basic auth credentials"),
        "{}",
        stderr(&o)
    );

    let o = berth_env(
        &d,
        cfgdir.path(),
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("wrong\n"),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    assert!(!cfgdir.path().join("config.json").exists());

    let o = berth_env(
        &d,
        cfgdir.path(),
        &["login", "-u", "alice", "--password-stdin", &host],
        Some("s3cret\n"),
    );
    assert_eq!(ok(&o).trim(), "Login Succeeded");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfgdir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][&host]["auth"], "YWxpY2U6czNjcmV0");

    ok(&berth_env(&d, cfgdir.path(), &["push", &name], None));
    ok(&d.berth(&["rmi", &name]));
    ok(&berth_env(&d, cfgdir.path(), &["pull", &name], None));

    let o = ok(&berth_env(&d, cfgdir.path(), &["logout", &host], None));
    assert_eq!(o.trim(), format!("Removing login credentials for {host}"));
    let o = berth_env(&d, cfgdir.path(), &["pull", &name], None);
    assert!(!o.status.success());
}
