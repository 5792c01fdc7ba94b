//! Hostile and malformed archives: nothing is written outside the layer
//! dir, nothing is registered, temp dirs are removed (IMG-15, IMG-17, STO-05).
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_image::{ImageStore, ImportOptions};
use berth_types::ErrorKind;
use common::*;

struct Env {
    dir: tempfile::TempDir,
    store: ImageStore,
}

impl Env {
    /// Layout: <tmp>/canary/canary (outside), <tmp>/a/b/image (store root).
    /// The store root is 3 levels deep so "../../.." style escapes land in
    /// <tmp>, next to the canary.
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("canary")).unwrap();
        fs::write(dir.path().join("canary/canary"), "original").unwrap();
        fs::set_permissions(dir.path().join("canary"), fs::Permissions::from_mode(0o755)).unwrap();
        let store = ImageStore::open(&dir.path().join("a/b/image")).unwrap();
        Env { dir, store }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("a/b/image")
    }

    fn canary_dir(&self) -> String {
        self.dir.path().join("canary").display().to_string()
    }

    /// Canary untouched, nothing stray written next to it, store empty.
    fn assert_clean(&self) {
        let c = self.dir.path().join("canary");
        assert_eq!(fs::read_to_string(c.join("canary")).unwrap(), "original");
        assert_eq!(ls(&c), vec!["canary"]);
        assert_eq!(
            fs::metadata(&c).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert_eq!(ls(self.dir.path()), vec!["a", "canary"]);
        assert_eq!(ls(&self.dir.path().join("a")), vec!["b"]);
        assert_eq!(ls(&self.dir.path().join("a/b")), vec!["image"]);
        assert!(self.store.list().unwrap().is_empty());
        assert!(ls(&self.root().join("layers")).is_empty(), "layers left");
        assert!(ls(&self.root().join("tmp")).is_empty(), "tmp left");
    }

    fn load_layer_err(&self, l: Vec<u8>) -> berth_image::Error {
        let (tar, _) = save_archive(&[img(&["evil:1"], vec![l])]);
        let e = self.store.load(&mut &tar[..]).unwrap_err();
        self.assert_clean();
        e
    }
}

fn assert_invalid(e: &berth_image::Error, needle: &str) {
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains(needle), "{e:?} lacks {needle:?}");
}

// `..` entries that climb out of the layer (raw headers; the tar crate's
// builder refuses them).
#[test]
fn dotdot_entries_rejected() {
    require_root!();
    let env = Env::new();
    for name in [
        &b"../canary/canary"[..],
        b"../../../../canary/canary",
        b"x/../../../../../canary/pwn",
        b"./../../canary/pwn",
    ] {
        let l = layer(&[E::File("ok", b"ok", 0o644), E::RawFile(name, b"pwned")]);
        let e = env.load_layer_err(l);
        assert_invalid(&e, "escapes");
    }
    // Same for import (one-layer rootfs).
    let l = layer(&[E::RawFile(b"../../../canary/canary", b"pwned")]);
    let e = env
        .store
        .import(&mut &l[..], Some("evil"), &ImportOptions::default())
        .unwrap_err();
    assert_invalid(&e, "escapes");
    env.assert_clean();
}

// `evil -> /abs/outside` then `evil/canary`: writing through a symlink.
#[test]
fn write_through_symlink_rejected() {
    require_root!();
    let env = Env::new();
    let cd = env.canary_dir();
    for (link, target) in [
        ("evil", cd.as_str()),
        ("evil", "../../../../../../canary"),
        ("evil", "/"),
    ] {
        let inner = if target == "/" {
            format!("evil/{}/canary", &cd[1..])
        } else {
            "evil/canary".into()
        };
        let l = layer(&[E::Sym(link, target), E::File(&inner, b"pwned", 0o644)]);
        let e = env.load_layer_err(l);
        assert_invalid(&e, "symlink pointing outside");
        // Directory entry through the symlink too.
        let l = layer(&[E::Sym(link, target), E::Dir(&format!("{inner}-dir"), 0o777)]);
        env.load_layer_err(l);
    }
    // Chained symlinks: a -> b, b -> outside.
    let l = layer(&[
        E::Sym("b", cd.as_str()),
        E::Sym("a", "b"),
        E::File("a/canary", b"pwned", 0o644),
    ]);
    assert_invalid(&env.load_layer_err(l), "symlink");
}

// Hardlinks whose target escapes (by `..`, or through an outside symlink).
#[test]
fn escaping_hardlinks_rejected() {
    require_root!();
    let env = Env::new();
    let cd = env.canary_dir();
    for l in [
        layer(&[E::Hard("h", "../../../../../../canary/canary")]),
        layer(&[E::Hard("h", "../canary")]),
        layer(&[E::Sym("evil", cd.as_str()), E::Hard("h", "evil/canary")]),
    ] {
        let e = env.load_layer_err(l);
        assert_invalid(&e, "hardlink target escapes");
    }
    // A hardlink to a missing file is a bad archive, not a crash.
    let e = env.load_layer_err(layer(&[E::Hard("h", "nothere")]));
    assert_invalid(&e, "not found");
}

// Things that look dangerous but stay inside: absolute names are re-rooted,
// an entry replacing a symlink replaces the link (never follows it).
#[test]
fn reroot_and_replace_stay_inside() {
    require_root!();
    let env = Env::new();
    let cd = env.canary_dir();
    let abs = format!("{cd}/canary");
    let l = layer(&[
        E::File(&abs, b"inside", 0o644),
        E::Sym("link", abs.as_str()),
        E::File("link", b"replaced", 0o600),
        E::Sym("dirlink", cd.as_str()),
        E::Dir("dirlink", 0o777),
        E::File("dirlink/x", b"x", 0o644),
        E::Sym("dotdot", "../../../../canary/canary"),
    ]);
    let (tar, _) = save_archive(&[img(&["tricky:1"], vec![l])]);
    env.store.load(&mut &tar[..]).unwrap();
    let c = env.dir.path().join("canary");
    assert_eq!(fs::read_to_string(c.join("canary")).unwrap(), "original");
    assert_eq!(ls(&c), vec!["canary"]);
    assert_eq!(
        fs::metadata(&c).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let d = &env.store.layer_dirs("tricky:1").unwrap()[0];
    assert_eq!(
        fs::read_to_string(d.join(&abs[1..])).unwrap(),
        "inside",
        "absolute path re-rooted"
    );
    assert_eq!(fs::read_to_string(d.join("link")).unwrap(), "replaced");
    assert!(fs::symlink_metadata(d.join("dirlink")).unwrap().is_dir());
    // Dangling symlinks are stored as-is (only followed inside containers).
    assert!(fs::symlink_metadata(d.join("dotdot"))
        .unwrap()
        .file_type()
        .is_symlink());
}

// A failure in the second layer removes the first layer it unpacked.
#[test]
fn failed_load_leaves_no_layers() {
    require_root!();
    let env = Env::new();
    let good = layer(&[E::File("fine", b"fine", 0o644)]);
    let bad = layer(&[E::RawFile(b"../../../canary/x", b"x")]);
    let (tar, _) = save_archive(&[img(&["two:1"], vec![good, bad])]);
    let e = env.store.load(&mut &tar[..]).unwrap_err();
    assert_invalid(&e, "escapes");
    env.assert_clean();
}

fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, p, *d).unwrap();
    }
    b.into_inner().unwrap()
}

// Malformed inputs: InvalidArgument with a clear message, store unchanged.
#[test]
fn malformed_inputs() {
    require_root!();
    let env = Env::new();
    let l = layer(&[E::File("f", b"f", 0o644)]);
    let i = img(&["m:1"], vec![l.clone()]);
    let cfg = config_for(&i);
    let cfg_name = format!("{}.json", sha256_hex(&cfg));
    let lp = format!("{}/layer.tar", sha256_hex(&l));
    let manifest = |layers: &str| {
        format!(r#"[{{"Config":"{cfg_name}","RepoTags":["m:1"],"Layers":[{layers}]}}]"#)
    };
    let good_manifest = manifest(&format!("\"{lp}\""));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // dockerd's wording for an unreadable outer archive.
        (
            b"this is not a tar file at all".repeat(40),
            "Error processing tar file(exit status 1): unexpected EOF",
        ),
        (
            vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "invalid",
        ),
        (gzip(&archive(&[("hello", b"x")]))[..20].to_vec(), "invalid"),
        (archive(&[("hello", b"x")]), "manifest.json not found"),
        (
            archive(&[("manifest.json", b"{not json")]),
            "invalid manifest.json",
        ),
        (archive(&[("manifest.json", b"[]")]), "no images"),
        (
            archive(&[("manifest.json", good_manifest.as_bytes())]),
            "not found in tarball",
        ),
        (
            archive(&[
                (&cfg_name, &cfg),
                ("manifest.json", good_manifest.as_bytes()),
            ]),
            "not found in tarball",
        ),
        (
            archive(&[
                (&cfg_name, &cfg),
                (&lp, b"garbage layer"),
                ("manifest.json", good_manifest.as_bytes()),
            ]),
            "invalid",
        ),
        (
            archive(&[
                (&cfg_name, &cfg),
                (&lp, &layer(&[E::File("other", b"o", 0o644)])),
                ("manifest.json", good_manifest.as_bytes()),
            ]),
            "config expects",
        ),
        (
            archive(&[
                (&cfg_name, b"{\"rootfs\": 5}"),
                (&lp, &l),
                ("manifest.json", good_manifest.as_bytes()),
            ]),
            "invalid image config",
        ),
        (
            archive(&[
                (&cfg_name, &cfg),
                (&lp, &l),
                ("manifest.json", manifest("").as_bytes()),
            ]),
            "diff ids",
        ),
        (
            archive(&[
                (&cfg_name, &cfg),
                (&lp, &l),
                (
                    "manifest.json",
                    manifest("\"../../../canary/canary\"").as_bytes(),
                ),
            ]),
            "escapes",
        ),
        (
            archive(&[
                (&cfg_name, &cfg),
                (&lp, &l),
                (
                    "manifest.json",
                    good_manifest.replace("m:1", "BAD:tag").as_bytes(),
                ),
            ]),
            "invalid reference format",
        ),
    ];
    for (n, (tar, needle)) in cases.into_iter().enumerate() {
        let e = env.store.load(&mut &tar[..]).unwrap_err();
        eprintln!("case {n}: {e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "case {n}: {e}");
        assert!(
            e.to_string().contains(needle),
            "case {n}: {e:?} lacks {needle:?}"
        );
        env.assert_clean();
    }
    // Outer archive symlink pointing outside, used as a layer file.
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, p: &str, d: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, p, d).unwrap();
    };
    add(&mut b, &cfg_name, &cfg);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    let target = format!("{}/canary", env.canary_dir());
    b.append_link(&mut h, &lp, Path::new(&target)).unwrap();
    add(&mut b, "manifest.json", good_manifest.as_bytes());
    let tar = b.into_inner().unwrap();
    let e = env.store.load(&mut &tar[..]).unwrap_err();
    assert_invalid(&e, "pointing outside the archive");
    env.assert_clean();

    // import: not a tar / bad gzip.
    for bad in [
        b"nope nope nope".repeat(50),
        vec![0x1f, 0x8b, 8, 0, 9, 9, 9, 9],
    ] {
        let e = env
            .store
            .import(&mut &bad[..], Some("x"), &ImportOptions::default())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        env.assert_clean();
    }
}
