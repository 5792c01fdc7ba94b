//! Commit's layer tar from an overlay upper dir (IMG-18, STO-01): overlay
//! whiteouts become `.wh.<name>`, opaque dirs get `.wh..wh..opq`, the
//! runtime's empty mount points and unchanged parent dirs are left out,
//! hardlinks stay links; and `commit` + `history` + `save` in the store.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_image::{commit_entries, CommitOptions, ImageStore, ImportOptions, EMPTY_LAYER};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn whiteout(p: &Path) {
    nix::sys::stat::mknod(
        p,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
}

fn rootfs_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in ["etc/", "data/", "dev/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, *d).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn upper_dir_to_layer_entries() {
    if !is_root() {
        eprintln!("skipping: needs root (whiteout devices, trusted xattrs)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    let upper = t.path().join("upper");
    for d in ["etc", "data/keep", "dev", "usr/lib"] {
        fs::create_dir_all(lower.join(d)).unwrap();
        fs::create_dir_all(upper.join(d)).unwrap();
    }
    for d in [&lower, &upper] {
        for sub in ["etc", "data", "data/keep", "dev", "usr", "usr/lib"] {
            fs::set_permissions(d.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    // Changes: a new file, a deleted file, an opaque dir, a hardlink pair.
    fs::write(upper.join("etc/new.conf"), b"x").unwrap();
    whiteout(&upper.join("etc/group"));
    xattr::set(upper.join("data"), "trusted.overlay.opaque", b"y").unwrap();
    fs::write(upper.join("a"), b"same").unwrap();
    fs::hard_link(upper.join("a"), upper.join("b")).unwrap();
    // Runtime mount points: left out when empty; unchanged parents too.
    fs::write(upper.join("etc/hosts"), b"").unwrap();
    fs::write(upper.join("etc/resolv.conf"), b"").unwrap();
    fs::create_dir(upper.join("dev/pts")).unwrap();
    // A mount point with content stays.
    fs::write(upper.join("etc/hostname"), b"changed\n").unwrap();
    let got = commit_entries(&upper, &[lower.clone()]).unwrap();
    assert_eq!(
        got,
        vec![
            "a",
            "b",
            "data/",
            "data/.wh..wh..opq",
            "etc/",
            "etc/.wh.group",
            "etc/hostname",
            "etc/new.conf",
        ],
        "usr/, usr/lib/, dev/, data/keep/, etc/hosts, etc/resolv.conf, dev/pts/ left out"
    );
}

#[test]
fn commit_in_store_history_and_save() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&t.path().join("image")).unwrap();
    let base = s
        .import(
            &mut &rootfs_tar(&[("etc/group", b"root:x:0:\n")])[..],
            Some("base:1"),
            &ImportOptions::default(),
        )
        .unwrap();
    // A container's snapshot with one change.
    s.prepare_snapshot("ctr1", &base).unwrap();
    let upper = s.root().join("snapshots/ctr1/upper");
    fs::create_dir(upper.join("etc")).unwrap();
    fs::set_permissions(upper.join("etc"), fs::Permissions::from_mode(0o755)).unwrap();
    whiteout(&upper.join("etc/group"));
    let opts = |reference: &str| CommitOptions {
        parent: base.clone(),
        upper: upper.clone(),
        config: serde_json::json!({"Cmd": ["sh"], "Env": ["A=1"]}),
        container_config: serde_json::json!({"Cmd": ["rm", "/etc/group"]}),
        container_id: "ctr1".into(),
        author: "me".into(),
        comment: "removed group".into(),
        reference: Some(reference.into()),
        docker_version: "test".into(),
    };
    let id = s.commit(&opts("child:1")).unwrap();
    let rec = s.resolve("child:1").unwrap();
    assert_eq!(rec.id, id);
    assert_eq!(rec.rootfs_layers.len(), 2);
    assert_eq!(s.parent_of(&id).unwrap().as_deref(), Some(base.as_str()));
    assert_eq!(s.children_of(&base).unwrap(), vec![id.clone()]);
    let h = s.history("child:1").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].id, id);
    assert_eq!(h[0].created_by, "rm /etc/group");
    assert_eq!(h[0].comment, "removed group");
    assert_eq!(h[1].id, base);
    assert_eq!(h[1].tags.as_deref(), Some(&["base:1".to_string()][..]));
    let cfg: serde_json::Value = serde_json::from_slice(&s.config_blob(&id).unwrap()).unwrap();
    assert_eq!(cfg["author"], "me");
    assert_eq!(cfg["container"], "ctr1");
    assert_eq!(cfg["history"][1]["comment"], "removed group");
    // The new layer holds the whiteout in overlay form.
    let dirs = s.layer_dirs(&id).unwrap();
    let wh = fs::symlink_metadata(dirs[1].join("etc/group")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    // save: the layer tar carries the AUFS form and hashes to the diff id.
    let mut out = Vec::new();
    s.save(&["child:1".to_string()], &mut out).unwrap();
    let mut ar = tar::Archive::new(&out[..]);
    let want = format!("blobs/sha256/{}", &rec.rootfs_layers[1][7..]);
    let mut found = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().display().to_string() == want {
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let names: Vec<String> = tar::Archive::new(&data[..])
                .entries()
                .unwrap()
                .map(|x| x.unwrap().path().unwrap().display().to_string())
                .collect();
            assert_eq!(names, vec!["etc/", "etc/.wh.group"]);
            found = true;
        }
    }
    assert!(found);
    // Nothing changed since: an empty layer, history only.
    let upper2 = s.root().join("snapshots/ctr2/upper");
    s.prepare_snapshot("ctr2", &base).unwrap();
    let mut o2 = opts("empty:1");
    o2.upper = upper2;
    let e = s.commit(&o2).unwrap();
    let er = s.resolve(&e).unwrap();
    assert_eq!(er.rootfs_layers.len(), 1);
    let cfg: serde_json::Value = serde_json::from_slice(&s.config_blob(&e).unwrap()).unwrap();
    assert_eq!(cfg["history"][1]["empty_layer"], true);
    assert_ne!(EMPTY_LAYER, er.rootfs_layers[0]);
    // No temp files left.
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}
