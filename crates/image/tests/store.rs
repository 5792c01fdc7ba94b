//! Image store behaviour: load, list/resolve/tag, import, snapshots.
mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use berth_image::{ImageStore, ImportOptions};
use berth_types::ErrorKind;
use common::*;

#[test]
fn store_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<ImageStore>();
}

// IMG-15 (load of a docker save tarball, plain and gzip), IMG-01, IMG-05, STO-07.
#[test]
fn load_mkimage_busybox() {
    require_root!();
    let (dir, s) = store();
    let out = dir.path().join("out");
    let want_id = mkimage(&out);
    let mut f = fs::File::open(out.join("busybox.tar")).unwrap();
    let loaded = s.load(&mut f).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, want_id);
    assert_eq!(loaded[0].repo_tags, vec!["berth-test/busybox:latest"]);

    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    let r = &list[0];
    assert_eq!(r.id, want_id);
    assert_eq!(r.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(
        r.config.env.as_ref().unwrap()[0],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(r.created, "2024-01-01T00:00:00Z");
    assert_eq!(r.os, "linux");
    assert_eq!(r.rootfs_layers.len(), 1);
    let bb = fs::metadata("/bin/busybox").unwrap().len() as i64;
    assert!(r.size >= bb, "size {} < busybox {}", r.size, bb);

    // Unpacked layer content.
    let dirs = s.layer_dirs(&r.id).unwrap();
    let root = &dirs[0];
    let m = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    assert!(fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .contains("nobody:x:65534:65534"));

    // Loading the gzip'd tarball again is idempotent: same id, one image.
    let gz = gzip(&fs::read(out.join("busybox.tar")).unwrap());
    let again = s.load(&mut &gz[..]).unwrap();
    assert_eq!(again[0].id, want_id);
    assert_eq!(s.list().unwrap().len(), 1);

    // Persisted across reopen.
    drop(s);
    let s = ImageStore::open(&dir.path().join("image")).unwrap();
    assert_eq!(s.resolve("berth-test/busybox").unwrap().id, want_id);
    assert_eq!(ls(&dir.path().join("image/layers")).len(), 1);
}

// IMG-05 / IMG-11 / IMG-12: lookup by name, name:tag, full id, id prefix.
#[test]
fn resolve_forms_and_tag() {
    require_root!();
    let (_d, s) = store();
    let l = layer(&[E::File("hello", b"hi", 0o644)]);
    let (tar, ids) = save_archive(&[img(&["docker.io/library/hello:1"], vec![l])]);
    let loaded = s.load(&mut &tar[..]).unwrap();
    assert_eq!(loaded[0].repo_tags, vec!["hello:1"]);
    let id = &ids[0];
    let hex = id.strip_prefix("sha256:").unwrap();
    for r in [
        "hello:1",
        "docker.io/library/hello:1",
        "library/hello:1",
        id.as_str(),
        hex,
        &hex[..12],
        &hex[..1],
        &format!("sha256:{}", &hex[..5]),
    ] {
        assert_eq!(&s.resolve(r).unwrap().id, id, "{r}");
    }
    let e = s.resolve("hello").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.to_string(), "No such image: hello:latest");
    let e = s.resolve("Hello").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.to_string(),
        "invalid reference format: repository name must be lowercase"
    );

    // IMG-11: tag by id prefix, then resolve the new name.
    s.tag(&hex[..12], "localhost:5000/x/y:2").unwrap();
    s.tag("hello:1", "hello").unwrap();
    let r = s.resolve("localhost:5000/x/y:2").unwrap();
    assert_eq!(&r.id, id);
    let mut tags = r.repo_tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        vec!["hello:1", "hello:latest", "localhost:5000/x/y:2"]
    );
    let e = s.tag("nope", "x:1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.to_string(), "No such image: nope:latest");
    let e = s
        .tag(id, &format!("x@sha256:{}", "a".repeat(64)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(s.tag(id, "UPPER:1").is_err());
}

// IMG-04(a) / IMG-11: a tag moves to the newer image; the old one dangles.
#[test]
fn retag_moves_name() {
    require_root!();
    let (_d, s) = store();
    let (t1, ids1) = save_archive(&[img(&["app:v1"], vec![layer(&[E::File("a", b"1", 0o644)])])]);
    let (t2, ids2) = save_archive(&[img(&["app:v1"], vec![layer(&[E::File("a", b"2", 0o644)])])]);
    s.load(&mut &t1[..]).unwrap();
    s.load(&mut &t2[..]).unwrap();
    assert_eq!(s.resolve("app:v1").unwrap().id, ids2[0]);
    let old = s.resolve(&ids1[0]).unwrap();
    assert!(old.repo_tags.is_empty());
    assert_eq!(s.list().unwrap().len(), 2);
}

// IMG-05: hex prefix resolution, ambiguity, and tag-before-id precedence.
#[test]
fn id_prefix_resolution() {
    require_root!();
    let (_d, s) = store();
    let mut ids: Vec<String> = Vec::new();
    // 17 images guarantee two ids share their first hex digit.
    for i in 0..17 {
        let l = layer(&[E::File("f", format!("{i}").as_bytes(), 0o644)]);
        ids.push(
            s.import(&mut &l[..], None, &ImportOptions::default())
                .unwrap(),
        );
    }
    let first = |id: &String| id.chars().nth(7).unwrap();
    let (a, b) = ids
        .iter()
        .enumerate()
        .flat_map(|(i, a)| ids[i + 1..].iter().map(move |b| (a, b)))
        .find(|(a, b)| first(a) == first(b))
        .unwrap();
    let e = s.resolve(&first(a).to_string()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("multiple IDs"), "{e}");
    // Shortest unique prefix works.
    let ha = &a[7..];
    let hb = &b[7..];
    let n = (1..64).find(|&n| ha[..n] != hb[..n]).unwrap();
    let unique = (n..=64)
        .find(|&k| ids.iter().filter(|x| x[7..].starts_with(&ha[..k])).count() == 1)
        .unwrap();
    assert_eq!(&s.resolve(&ha[..unique]).unwrap().id, a);
    // A tag named like b's prefix wins over the id prefix.
    let name = &hb[..6];
    if name.chars().next().unwrap().is_ascii_alphanumeric() {
        s.tag(a, name).unwrap();
        assert_eq!(&s.resolve(name).unwrap().id, a);
        assert_eq!(&s.resolve(&hb[..12]).unwrap().id, b);
    }
    assert_eq!(
        s.resolve("ffffffffffff0").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// IMG-17: import with -c changes and -m message; shares the layer with load.
#[test]
fn import_with_changes() {
    require_root!();
    let (dir, s) = store();
    let out = dir.path().join("out");
    mkimage(&out);
    s.load(&mut fs::File::open(out.join("busybox.tar")).unwrap())
        .unwrap();
    let opts = ImportOptions {
        message: Some("imported for test".into()),
        changes: vec![
            r#"CMD ["sh", "-c", "echo hi"]"#.into(),
            "ENV A=b".into(),
            "WORKDIR /x".into(),
            "ENTRYPOINT [\"/bin/busybox\"]".into(),
            "USER nobody".into(),
        ],
    };
    let gz = gzip(&fs::read(out.join("busybox-rootfs.tar")).unwrap());
    let id = s.import(&mut &gz[..], Some("myimg:1.0"), &opts).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71);
    let r = s.resolve("myimg:1.0").unwrap();
    assert_eq!(r.id, id);
    assert_eq!(r.repo_tags, vec!["myimg:1.0"]);
    assert_eq!(r.config.cmd.unwrap(), vec!["sh", "-c", "echo hi"]);
    assert_eq!(r.config.env.unwrap(), vec!["A=b"]);
    assert_eq!(r.config.working_dir.as_deref(), Some("/x"));
    assert_eq!(r.config.entrypoint.unwrap(), vec!["/bin/busybox"]);
    assert_eq!(r.config.user.as_deref(), Some("nobody"));
    assert!(chrono::DateTime::parse_from_rfc3339(&r.created).is_ok());
    let cfg: serde_json::Value = serde_json::from_slice(&s.config_blob(&id).unwrap()).unwrap();
    assert_eq!(cfg["comment"], "imported for test");
    assert_eq!(sha256_hex(&s.config_blob(&id).unwrap()), &id[7..]);
    // The rootfs tar is byte-identical to the loaded layer: stored once (STO-07).
    let loaded = s.resolve("berth-test/busybox").unwrap();
    assert_eq!(loaded.rootfs_layers, r.rootfs_layers);
    assert_eq!(ls(&dir.path().join("image/layers")).len(), 1);
    // Untagged import; bad change rejected before anything is stored.
    let plain = layer(&[E::File("x", b"x", 0o644)]);
    let id2 = s
        .import(&mut &plain[..], None, &ImportOptions::default())
        .unwrap();
    assert!(s.resolve(&id2).unwrap().repo_tags.is_empty());
    let bad = ImportOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    let e = s.import(&mut &plain[..], Some("z"), &bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = s
        .import(&mut &plain[..], Some("Bad:Ref"), &ImportOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(s.list().unwrap().len(), 3);
}

// STO-07: a layer shared by two images is unpacked once; chain ids key dirs.
#[test]
fn shared_layer_unpacked_once() {
    require_root!();
    let (dir, s) = store();
    let base = layer(&[E::Dir("etc", 0o755), E::File("etc/base", b"base", 0o644)]);
    let top = layer(&[E::File("etc/top", b"top", 0o644)]);
    let (t1, ids1) = save_archive(&[img(&["base:1"], vec![base.clone()])]);
    s.load(&mut &t1[..]).unwrap();
    let base_dir = s.layer_dirs("base:1").unwrap()[0].clone();
    let ino = fs::metadata(base_dir.join("etc/base")).unwrap().ino();
    let (t2, ids2) = save_archive(&[img(&["child:1"], vec![base, top])]);
    s.load(&mut &t2[..]).unwrap();
    let dirs = s.layer_dirs("child:1").unwrap();
    assert_eq!(dirs[0], base_dir);
    assert_eq!(fs::metadata(base_dir.join("etc/base")).unwrap().ino(), ino);
    assert_eq!(ls(&dir.path().join("image/layers")).len(), 2);
    assert!(dirs[1].join("etc/top").exists() && !dirs[1].join("etc/base").exists());
    let child = s.resolve(&ids2[0]).unwrap();
    let base = s.resolve(&ids1[0]).unwrap();
    assert_eq!(child.size, base.size + 3);
    // Layer dir names are OCI chain ids.
    let d0 = &child.rootfs_layers[0];
    let d1 = &child.rootfs_layers[1];
    let chain1 = sha256_hex(format!("{d0} {d1}").as_bytes());
    assert!(dirs[1].ends_with(format!("{chain1}/diff")));
}

// IMG-15: one archive with several images (docker save IMAGE1 IMAGE2).
#[test]
fn multi_image_archive() {
    require_root!();
    let (_d, s) = store();
    let a = layer(&[E::File("a", b"a", 0o644)]);
    let b = layer(&[E::File("b", b"b", 0o644)]);
    let (tar, ids) = save_archive(&[img(&["a:1", "a:2"], vec![a.clone()]), img(&[], vec![a, b])]);
    let loaded = s.load(&mut &tar[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].repo_tags, vec!["a:1", "a:2"]);
    assert!(loaded[1].repo_tags.is_empty());
    assert_eq!(loaded[1].id, ids[1]);
    assert_eq!(s.list().unwrap().len(), 2);
}

// STO-01/STO-03/STO-05: overlay snapshot, whiteouts and opaque dirs hide
// lower files, writes land in upper, lower unchanged.
#[test]
fn snapshot_overlay_whiteouts() {
    require_root!();
    let (dir, s) = store();
    let l1 = layer(&[
        E::Dir("a", 0o755),
        E::File("a/keep", b"keep", 0o644),
        E::File("a/gone", b"gone", 0o644),
        E::Dir("d", 0o755),
        E::File("d/old", b"old", 0o644),
        E::File("suid", b"x", 0o4755),
        E::Char("null", 1, 3),
        E::File("owned", b"o", 0o600),
    ]);
    let l2 = layer(&[
        E::Dir("a", 0o755),
        E::File("a/.wh.gone", b"", 0o644),
        E::Dir("d", 0o755),
        E::File("d/.wh..wh..opq", b"", 0o644),
        E::File("d/new", b"new", 0o644),
        E::Hard("d/newlink", "d/new"),
    ]);
    let (tar, _) = save_archive(&[img(&["wh:1"], vec![l1, l2])]);
    s.load(&mut &tar[..]).unwrap();
    let dirs = s.layer_dirs("wh:1").unwrap();
    // Converted whiteouts on disk.
    let wh = fs::symlink_metadata(dirs[1].join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        xattr::get(dirs[1].join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dirs[1].join("a/.wh.gone").exists());
    assert_eq!(
        fs::metadata(dirs[0].join("suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    let null = fs::symlink_metadata(dirs[0].join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(
        fs::metadata(dirs[1].join("d/new")).unwrap().ino(),
        fs::metadata(dirs[1].join("d/newlink")).unwrap().ino()
    );

    let mounts = s.prepare_snapshot("ctr1", "wh:1").unwrap();
    assert_eq!(mounts.len(), 1);
    let m = &mounts[0];
    assert_eq!(m.kind, "overlay");
    let snap = dir.path().join("image/snapshots/ctr1");
    assert!(m.options.contains(&format!(
        "lowerdir={}:{}",
        dirs[1].display(),
        dirs[0].display()
    )));
    assert!(m
        .options
        .contains(&format!("upperdir={}", snap.join("upper").display())));
    let target = dir.path().join("rootfs");
    {
        let _g = mount(m, &target);
        assert_eq!(fs::read_to_string(target.join("a/keep")).unwrap(), "keep");
        assert!(!target.join("a/gone").exists());
        assert!(!target.join("d/old").exists());
        assert_eq!(fs::read_to_string(target.join("d/new")).unwrap(), "new");
        // STO-02 copy-on-write.
        fs::write(target.join("a/keep"), "changed").unwrap();
        fs::write(target.join("created"), "c").unwrap();
        assert!(snap.join("upper/created").exists());
        assert_eq!(fs::read_to_string(dirs[0].join("a/keep")).unwrap(), "keep");
    }
    // Idempotent prepare, then remove; missing is Ok.
    s.prepare_snapshot("ctr1", "wh:1").unwrap();
    s.remove_snapshot("ctr1").unwrap();
    assert!(!snap.exists());
    s.remove_snapshot("ctr1").unwrap();
    assert_eq!(
        s.prepare_snapshot("../x", "wh:1").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        s.prepare_snapshot("k", "missing:1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// STO-03 on the real busybox image: the snapshot runs busybox.
#[test]
fn snapshot_busybox_runs() {
    require_root!();
    let (dir, s) = store();
    let out = dir.path().join("out");
    mkimage(&out);
    s.load(&mut fs::File::open(out.join("busybox.tar")).unwrap())
        .unwrap();
    let m = s.prepare_snapshot("bb", "berth-test/busybox").unwrap();
    let target = dir.path().join("rootfs");
    let _g = mount(&m[0], &target);
    let outp = std::process::Command::new("chroot")
        .arg(&target)
        .args([
            "/bin/sh",
            "-c",
            "echo hello from $(cat /etc/hostname 2>/dev/null || echo busybox)",
        ])
        .output()
        .unwrap();
    assert!(outp.status.success(), "{outp:?}");
    assert_eq!(
        String::from_utf8_lossy(&outp.stdout),
        "hello from busybox\n"
    );
}

// Crash safety: leftovers of an interrupted load are removed on open.
#[test]
fn open_recovers_from_interrupted_load() {
    require_root!();
    let (dir, s) = store();
    let root = dir.path().join("image");
    let (tar, _) = save_archive(&[img(&["ok:1"], vec![layer(&[E::File("f", b"f", 0o644)])])]);
    s.load(&mut &tar[..]).unwrap();
    drop(s);
    // Simulate kill -9 after a layer was renamed into place but before the
    // registering transaction, plus a half-extracted temp dir.
    fs::create_dir_all(root.join("layers").join("ab".repeat(32)).join("diff")).unwrap();
    fs::create_dir_all(root.join("layers/.tmp-1-2-3/diff")).unwrap();
    fs::create_dir_all(root.join("tmp/load-1-2-3")).unwrap();
    let s = ImageStore::open(&root).unwrap();
    assert_eq!(ls(&root.join("layers")).len(), 1);
    assert!(ls(&root.join("tmp")).is_empty());
    assert_eq!(s.list().unwrap().len(), 1);
    assert!(s.prepare_snapshot("c", "ok:1").is_ok());
}

// IMG-15: the OCI layout newer Docker writes (manifest.json pointing into
// blobs/sha256, gzip layer blob), and the legacy layout's symlinked
// duplicate layer.tar.
#[test]
fn load_oci_layout_and_symlinked_layers() {
    require_root!();
    let (_d, s) = store();
    let l1 = layer(&[E::File("one", b"1", 0o644)]);
    let l2 = layer(&[E::File("two", b"2", 0o644)]);
    let i = img(&["oci/img:v2"], vec![l1.clone(), l2.clone()]);
    let cfg = config_for(&i);
    let cfg_hex = sha256_hex(&cfg);
    let l2gz = gzip(&l2);
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, p: &str, d: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, p, d).unwrap();
    };
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add(&mut b, "index.json", b"{}");
    add(&mut b, &format!("blobs/sha256/{cfg_hex}"), &cfg);
    add(&mut b, &format!("blobs/sha256/{}", sha256_hex(&l1)), &l1);
    add(
        &mut b,
        &format!("blobs/sha256/{}", sha256_hex(&l2gz)),
        &l2gz,
    );
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{cfg_hex}"),
        "RepoTags": ["oci/img:v2"],
        "Layers": [format!("blobs/sha256/{}", sha256_hex(&l1)),
                   format!("blobs/sha256/{}", sha256_hex(&l2gz))],
    }]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let tar = b.into_inner().unwrap();
    let loaded = s.load(&mut &tar[..]).unwrap();
    assert_eq!(loaded[0].id, format!("sha256:{cfg_hex}"));
    let dirs = s.layer_dirs("oci/img:v2").unwrap();
    assert!(dirs[0].join("one").exists() && dirs[1].join("two").exists());

    // Legacy: second image's layer.tar is a symlink to the first's.
    let base = layer(&[E::File("base", b"b", 0o644)]);
    let i = img(&["dup:1"], vec![base.clone()]);
    let cfg = config_for(&i);
    let cfg_hex = sha256_hex(&cfg);
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, &format!("{cfg_hex}.json"), &cfg);
    add(&mut b, "real/layer.tar", &base);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "dup/layer.tar", "../real/layer.tar")
        .unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{cfg_hex}.json"), "RepoTags": ["dup:1"], "Layers": ["dup/layer.tar"],
    }]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let tar = b.into_inner().unwrap();
    s.load(&mut &tar[..]).unwrap();
    assert!(s.layer_dirs("dup:1").unwrap()[0].join("base").exists());
}

// IMG-12: untag then delete; shared layers survive, in-use images conflict.
#[test]
fn untag_and_delete() {
    require_root!();
    let (dir, s) = store();
    let base = layer(&[E::File("base", b"b", 0o644)]);
    let top = layer(&[E::File("top", b"t", 0o644)]);
    let (tar, ids) = save_archive(&[
        img(&["base:1", "base:2"], vec![base.clone()]),
        img(&["child:1"], vec![base, top]),
    ]);
    s.load(&mut &tar[..]).unwrap();
    assert_eq!(ls(&dir.path().join("image/layers")).len(), 2);
    assert_eq!(s.untag("base:2").unwrap(), ids[0]);
    assert_eq!(s.untag("base:2").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.resolve(&ids[0]).unwrap().repo_tags, vec!["base:1"]);

    s.prepare_snapshot("c1", "child:1").unwrap();
    let e = s.delete("child:1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    s.remove_snapshot("c1").unwrap();
    s.delete("child:1").unwrap();
    assert_eq!(
        s.resolve("child:1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // The base layer is still used by base:1.
    assert_eq!(ls(&dir.path().join("image/layers")).len(), 1);
    assert!(s.layer_dirs("base:1").unwrap()[0].join("base").exists());
    s.delete(&ids[0][7..19]).unwrap();
    assert!(ls(&dir.path().join("image/layers")).is_empty());
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.delete("base:1").unwrap_err().kind(), ErrorKind::NotFound);
}

/// Slow reader so a child process can be killed in the middle of a load.
struct Throttled<'a>(&'a [u8]);

impl std::io::Read for Throttled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(32 * 1024);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        std::thread::sleep(std::time::Duration::from_millis(1));
        Ok(n)
    }
}

fn big_archive() -> Vec<u8> {
    let layers: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let data = vec![i; 256 << 10];
            let names: Vec<String> = (0..4).map(|k| format!("f{i}-{k}")).collect();
            let entries: Vec<E> = names.iter().map(|n| E::File(n, &data, 0o644)).collect();
            layer(&entries)
        })
        .collect();
    save_archive(&[
        img(&["big:1"], layers[..2].to_vec()),
        img(&["big:2"], layers.clone()),
    ])
    .0
}

/// Child half of `kill9_during_load` (no-op unless re-executed by it).
#[test]
fn kill9_child() {
    let Ok(root) = std::env::var("BERTH_IMAGE_KILL9_ROOT") else {
        return;
    };
    let s = ImageStore::open(std::path::Path::new(&root)).unwrap();
    let tar = big_archive();
    s.load(&mut Throttled(&tar)).unwrap();
}

// IMG-15 crash safety: kill -9 at several points of a load; after reopen
// every listed image has all its layers and nothing is half-registered.
#[test]
fn kill9_during_load() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    let exe = std::env::current_exe().unwrap();
    // The last round (None) runs to completion.
    for delay_ms in [
        Some(30u64),
        Some(150),
        Some(400),
        Some(800),
        Some(1500),
        None,
    ] {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "kill9_child", "--test-threads=1"])
            .env("BERTH_IMAGE_KILL9_ROOT", &root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if let Some(ms) = delay_ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = child.kill(); // SIGKILL
        }
        let status = child.wait().unwrap();
        let s = ImageStore::open(&root).unwrap();
        let images = s.list().unwrap();
        let mut used = std::collections::HashSet::new();
        for im in &images {
            for d in s.layer_dirs(&im.id).unwrap() {
                assert!(d.is_dir(), "image {} lacks {}", im.id, d.display());
                used.insert(d.parent().unwrap().to_path_buf());
            }
        }
        let on_disk = ls(&root.join("layers"));
        assert_eq!(
            on_disk.len(),
            used.len(),
            "stray layer dirs (kill after {delay_ms:?} ms)"
        );
        assert!(ls(&root.join("tmp")).is_empty());
        eprintln!("kill after {delay_ms:?} ms: {} images", images.len());
        if delay_ms.is_none() {
            assert!(status.success());
            assert_eq!(images.len(), 2);
        }
        drop(s);
        fs::remove_dir_all(&root).unwrap();
    }
}
