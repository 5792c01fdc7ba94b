//! Pull / push against a real registry (Debian's docker-registry on
//! 127.0.0.1, started per test): round trip, by digest, RepoDigests, basic
//! auth, tampered and truncated blobs, wrong credentials.
mod common;
#[path = "support/registry.rs"]
mod support;

use std::fs;

use berth_image::{Credentials, ImageStore, Progress, RegistryConfig};
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

/// A two-layer image loaded from a docker save archive, tagged for `host`.
fn seed(s: &ImageStore, host: &str, repo: &str) -> String {
    let base = layer(&[
        E::Dir("etc", 0o755),
        E::File("etc/hello", b"hello\n", 0o644),
    ]);
    let top = layer(&[E::File("etc/top", b"top layer\n", 0o600)]);
    let (tar, ids) = save_archive(&[img(&["seed:1"], vec![base, top])]);
    s.load(&mut &tar[..]).unwrap();
    s.tag("seed:1", &format!("{host}/{repo}")).unwrap();
    ids[0].clone()
}

fn collect() -> (Vec<Progress>, impl FnMut(Progress)) {
    (Vec::new(), |_p: Progress| {})
}

// IMG-09, IMG-10, REG-02, REG-03: push then pull into a fresh store, by tag and by digest.
#[test]
fn push_pull_round_trip() {
    require_root!();
    let reg = registry!(None);
    let host = reg.host();
    let cfg = RegistryConfig::default();
    let (_d1, s1) = store();
    let id = seed(&s1, &host, "berth/rt:1");
    let mut events = Vec::new();
    let digest = s1
        .push(&format!("{host}/berth/rt:1"), None, &cfg, &mut |p| {
            events.push(p)
        })
        .unwrap();
    assert!(digest.starts_with("sha256:"));
    let pushed = events
        .iter()
        .filter(|e| matches!(e, Progress::Status { status, .. } if status == "Pushed"))
        .count();
    assert_eq!(pushed, 2, "{events:?}");
    let rec = s1.resolve(&format!("{host}/berth/rt:1")).unwrap();
    assert_eq!(rec.repo_digests, vec![format!("{host}/berth/rt@{digest}")]);

    // Second push: everything exists.
    let mut again = Vec::new();
    s1.push(&format!("{host}/berth/rt:1"), None, &cfg, &mut |p| {
        again.push(p)
    })
    .unwrap();
    assert!(again
        .iter()
        .any(|e| matches!(e, Progress::Status { status, .. } if status == "Layer already exists")));

    let (d2, s2) = store();
    let mut ev = Vec::new();
    let res = s2
        .pull(&format!("{host}/berth/rt:1"), None, &cfg, &mut |p| {
            ev.push(p)
        })
        .unwrap();
    assert_eq!(res.id, id);
    assert_eq!(res.digest, digest);
    assert!(res.changed);
    let statuses: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            Progress::Status { status, .. } => Some(status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(statuses[0], "Pulling from berth/rt");
    assert!(statuses.contains(&"Pull complete".to_string()));
    assert_eq!(
        statuses.last().unwrap(),
        &format!("Status: Downloaded newer image for {host}/berth/rt:1")
    );
    let rec = s2.resolve(&format!("{host}/berth/rt:1")).unwrap();
    assert_eq!(rec.id, id);
    assert_eq!(rec.repo_digests, vec![format!("{host}/berth/rt@{digest}")]);
    let dirs = s2.layer_dirs(&id).unwrap();
    assert_eq!(fs::read(dirs[0].join("etc/hello")).unwrap(), b"hello\n");
    assert_eq!(fs::read(dirs[1].join("etc/top")).unwrap(), b"top layer\n");
    no_leftovers(d2.path());

    // Pull again: up to date.
    let mut ev = Vec::new();
    let res = s2
        .pull(&format!("{host}/berth/rt:1"), None, &cfg, &mut |p| {
            ev.push(p)
        })
        .unwrap();
    assert!(!res.changed);
    // Like dockerd: an image already stored prints no layer lines.
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Progress::Status { id: Some(i), .. } if i.len() == 12)));

    // By digest into a third store; resolvable as name@digest.
    let (d3, s3) = store();
    let by_digest = format!("{host}/berth/rt@{digest}");
    let res = s3.pull(&by_digest, None, &cfg, &mut |_| {}).unwrap();
    assert_eq!(res.id, id);
    assert_eq!(s3.resolve(&by_digest).unwrap().id, id);
    assert!(s3.resolve(&format!("{host}/berth/rt:1")).is_err());
    no_leftovers(d3.path());

    // A pulled image can be pushed elsewhere (blobs were kept).
    s2.tag(&id, &format!("{host}/other/copy:2")).unwrap();
    s2.push(&format!("{host}/other/copy:2"), None, &cfg, &mut |_| {})
        .unwrap();

    // Unknown tag / repo.
    let e = s3
        .pull(&format!("{host}/berth/rt:nope"), None, &cfg, &mut |_| {})
        .unwrap_err();
    assert_eq!(e.kind(), berth_types::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("manifest unknown"), "{e}");
    let _ = collect();
}

// IMG-09, REG-02: a tampered or truncated blob fails verification; nothing is registered.
#[test]
fn pull_rejects_bad_blobs() {
    require_root!();
    let reg = registry!(None);
    let host = reg.host();
    let cfg = RegistryConfig::default();
    let (_d1, s1) = store();
    seed(&s1, &host, "bad/img:1");
    s1.push(&format!("{host}/bad/img:1"), None, &cfg, &mut |_| {})
        .unwrap();
    let rec = s1.resolve("seed:1").unwrap();
    // The top layer's compressed blob in the registry storage.
    let mut datas: Vec<_> = walk(&reg.dir.path().join("storage/docker/registry/v2/blobs"))
        .into_iter()
        .filter(|p| p.ends_with("data"))
        .collect();
    datas.sort();
    let cfg_data = reg.blob_data(&rec.id);
    assert!(cfg_data.exists());
    // Layer blobs are the gzip ones (the others are the config and manifest).
    let layer_data: Vec<_> = datas
        .into_iter()
        .filter(|p| fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
        .collect();
    assert_eq!(layer_data.len(), 2);

    // Flip a byte in the middle.
    let target = &layer_data[0];
    let orig = fs::read(target).unwrap();
    let mut bad = orig.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    fs::write(target, &bad).unwrap();
    let (d2, s2) = store();
    let e = s2
        .pull(&format!("{host}/bad/img:1"), None, &cfg, &mut |_| {})
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("verification failed") || msg.contains("gzip") || msg.contains("layer"),
        "{msg}"
    );
    assert!(s2.list().unwrap().is_empty());
    assert!(s2.layer_dirs(&rec.id).is_err());
    no_leftovers(d2.path());
    assert!(ls(&d2.path().join("image/layers")).is_empty());

    // Truncated.
    fs::write(target, &orig[..orig.len() / 2]).unwrap();
    let e = s2
        .pull(&format!("{host}/bad/img:1"), None, &cfg, &mut |_| {})
        .unwrap_err();
    eprintln!("truncated: {e}");
    assert!(s2.list().unwrap().is_empty());
    no_leftovers(d2.path());
    assert!(ls(&d2.path().join("image/layers")).is_empty());

    // Restored: pull works.
    fs::write(target, &orig).unwrap();
    s2.pull(&format!("{host}/bad/img:1"), None, &cfg, &mut |_| {})
        .unwrap();
    no_leftovers(d2.path());
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

// REG-05:  htpasswd basic auth; wrong or missing credentials fail clearly.
#[test]
fn basic_auth() {
    require_root!();
    let reg = registry!(Some(("alice", "s3cret")));
    let host = reg.host();
    let cfg = RegistryConfig::default();
    let good = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
        ..Default::default()
    };
    let wrong = Credentials {
        username: "alice".into(),
        password: "nope".into(),
        ..Default::default()
    };
    berth_image::registry::login(&cfg, &host, &good).unwrap();
    let e = berth_image::registry::login(&cfg, &host, &wrong).unwrap_err();
    assert!(matches!(e, berth_image::Error::Unauthorized(_)), "{e}");

    let (_d1, s1) = store();
    seed(&s1, &host, "priv/img:1");
    let e = s1
        .push(&format!("{host}/priv/img:1"), None, &cfg, &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("no basic auth credentials"), "{e}");
    let e = s1
        .push(
            &format!("{host}/priv/img:1"),
            Some(&wrong),
            &cfg,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("unauthorized"), "{e}");
    s1.push(
        &format!("{host}/priv/img:1"),
        Some(&good),
        &cfg,
        &mut |_| {},
    )
    .unwrap();

    let (d2, s2) = store();
    let e = s2
        .pull(
            &format!("{host}/priv/img:1"),
            Some(&wrong),
            &cfg,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(e.to_string().contains("unauthorized"), "{e}");
    assert!(s2.list().unwrap().is_empty());
    s2.pull(
        &format!("{host}/priv/img:1"),
        Some(&good),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    no_leftovers(d2.path());
}
