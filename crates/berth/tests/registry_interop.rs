//! Interoperability with a registry client we did not write: Debian's
//! `skopeo` copies images into a throwaway docker-registry on 127.0.0.1
//! (Docker schema2 with gzip, OCI with zstd) that berthd pulls and runs, and
//! copies berth's pushes back out (registry → OCI layout, dir, docker-archive
//! that berth loads again). REG-02, REG-03, IMG-09, IMG-13.

mod common;
#[path = "../../image/tests/support/registry.rs"]
mod support;

use std::process::{Command, Output};

use common::*;
use support::Registry;

fn skopeo(args: &[&str]) -> Option<Output> {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .ok()
}

macro_rules! prerequisites {
    () => {{
        require_root!();
        if skopeo(&["--version"]).is_none() {
            eprintln!("skipping: skopeo not installed");
            return;
        }
        match Registry::start(None) {
            Some(r) => r,
            None => {
                eprintln!("skipping: docker-registry not installed");
                return;
            }
        }
    }};
}

#[test]
fn skopeo_pushes_berth_pulls_and_runs() {
    let reg = prerequisites!();
    let host = reg.host();
    let archive = images_dir().join("busybox.tar");
    let src = format!("docker-archive:{}", archive.display());
    let gz = format!("{host}/skopeo/busybox:gz");
    let zst = format!("{host}/skopeo/busybox-zstd:1");
    ok(&skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        "--dest-compress",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("docker://{zst}"),
    ])
    .unwrap());
    ok(&skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{gz}"),
    ])
    .unwrap());
    // The zstd copy really has zstd layers.
    let raw = ok(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{zst}"),
    ])
    .unwrap());
    assert!(raw.contains("tar+zstd"), "{raw}");

    let d = Daemon::start("interop-in");
    for r in [&gz, &zst] {
        ok(&d.berth(&["pull", r]));
        let out = ok(&d.berth(&["run", "--rm", r, "echo", "from skopeo"]));
        assert_eq!(out.trim(), "from skopeo");
    }
    // The same content: both copies have the diff ids of the original image.
    let id_gz = ok(&d.berth(&["inspect", "-f", "{{.RootFS.Layers}}", &gz]));
    let id_zst = ok(&d.berth(&["inspect", "-f", "{{.RootFS.Layers}}", &zst]));
    assert_eq!(id_gz, id_zst);
    // RepoDigests name what skopeo pushed.
    let digest = ok(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{gz}"),
    ])
    .unwrap());
    let repo_digests = ok(&d.berth(&["inspect", "-f", "{{json .RepoDigests}}", &gz]));
    assert!(
        repo_digests.contains(&format!("{host}/skopeo/busybox@{}", digest.trim())),
        "{repo_digests} vs {digest}"
    );
    // The official docker CLI against berthd pulls the OCI/zstd copy as well.
    ok(&d.docker(&["rmi", &zst]));
    ok(&d.docker(&["pull", &zst]));
}

#[test]
fn berth_pushes_skopeo_copies_out() {
    let reg = prerequisites!();
    let host = reg.host();
    let d = Daemon::start("interop-out");
    let r = format!("{host}/berth/busybox:1");
    ok(&d.berth(&["tag", IMAGE, &r]));
    let pushed = ok(&d.berth(&["push", &r]));
    let digest = pushed
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .expect("push prints the digest")
        .to_string();
    let inspected = ok(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{r}"),
    ])
    .unwrap());
    assert_eq!(inspected.trim(), digest);

    // skopeo verifies every digest while copying.
    let out = tempfile::tempdir().unwrap();
    let oci = out.path().join("oci");
    let dir = out.path().join("dir");
    ok(&skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{r}"),
        &format!("oci:{}:v1", oci.display()),
    ])
    .unwrap());
    assert!(oci.join("index.json").exists());
    ok(&skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{r}"),
        &format!("dir:{}", dir.display()),
    ])
    .unwrap());
    assert_eq!(
        std::fs::read(dir.join("manifest.json")).unwrap(),
        http_get(&format!(
            "http://{host}/v2/berth/busybox/manifests/{digest}"
        )),
        "skopeo's copy holds the manifest berth pushed, byte for byte"
    );

    // Back in: a docker-archive written by skopeo loads into berth and runs.
    let tar = out.path().join("copy.tar");
    ok(&skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{r}"),
        &format!("docker-archive:{}:skopeo/copied:1", tar.display()),
    ])
    .unwrap());
    ok(&d.berth(&["load", "-i", tar.to_str().unwrap()]));
    let run = ok(&d.berth(&["run", "--rm", "skopeo/copied:1", "echo", "round trip"]));
    assert_eq!(run.trim(), "round trip");
    let orig = ok(&d.berth(&["inspect", "-f", "{{.Id}}", IMAGE]));
    let copied = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "skopeo/copied:1"]));
    assert_eq!(orig, copied, "same config, same image id");
}

fn http_get(url: &str) -> Vec<u8> {
    let o = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            url,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "curl {url}");
    o.stdout
}
