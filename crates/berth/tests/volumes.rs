//! End-to-end: volumes, bind mounts, tmpfs, --volumes-from, rm -v, copy-up
//! (STO-09..STO-16), with real containers.

mod common;

use common::*;
use serde_json::Value;

/// A scratch host directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("berth-vol-{tag}-{}", rand_u32()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An image whose /data (a VOLUME) holds files with owners and modes.
fn import_data_image(d: &Daemon, name: &str) {
    let base = std::fs::read(images_dir().join("busybox-rootfs.tar")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(&base[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        if h.entry_type() == tar::EntryType::Symlink || h.entry_type() == tar::EntryType::Link {
            let l = e.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &path, &l).unwrap();
        } else {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            b.append_data(&mut h, &path, &data[..]).unwrap();
        }
    }
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o750);
    dir.set_uid(1000);
    dir.set_gid(1000);
    dir.set_size(0);
    b.append_data(&mut dir, "data/", std::io::empty()).unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_mode(0o640);
    f.set_uid(1000);
    f.set_gid(2000);
    f.set_size(6);
    f.set_mtime(1_700_000_000);
    b.append_data(&mut f, "data/secret", &b"s3cret"[..])
        .unwrap();
    let mut sub = tar::Header::new_gnu();
    sub.set_entry_type(tar::EntryType::Directory);
    sub.set_mode(0o1777);
    sub.set_size(0);
    b.append_data(&mut sub, "data/sub/", std::io::empty())
        .unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_mode(0o777);
    l.set_size(0);
    b.append_link(&mut l, "data/link", "secret").unwrap();
    let tarball = b.into_inner().unwrap();
    let path = d.dir.join("data-image.tar");
    std::fs::write(&path, tarball).unwrap();
    ok(&d.berth(&[
        "import",
        "-c",
        "VOLUME /data",
        "-c",
        "CMD [\"sh\"]",
        path.to_str().unwrap(),
        name,
    ]));
}

#[test]
fn named_volume_outlives_containers_and_ro_is_enforced() {
    require_root!();
    let d = Daemon::start("vol-named");
    // STO-10, STO-12: data written to a named volume survives rm.
    ok(&d.berth(&["volume", "create", "--label", "k=v", "keep"]));
    ok(&d.berth(&[
        "run",
        "--name",
        "writer",
        "-v",
        "keep:/data",
        IMAGE,
        "sh",
        "-c",
        "echo persisted > /data/f",
    ]));
    ok(&d.berth(&["rm", "writer"]));
    let out = ok(&d.berth(&["run", "--rm", "-v", "keep:/data", IMAGE, "cat", "/data/f"]));
    assert_eq!(out.trim(), "persisted");
    // :ro is enforced.
    let o = d.berth(&[
        "run",
        "--rm",
        "-v",
        "keep:/data:ro",
        IMAGE,
        "sh",
        "-c",
        "echo x > /data/g",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    // --mount readonly too.
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "source=keep,target=/data,readonly",
        IMAGE,
        "touch",
        "/data/g",
    ]);
    assert_ne!(o.status.code(), Some(0));
    // Inspect: Mountpoint, Scope, Labels; ls filters.
    let v: Value = serde_json::from_str(&ok(&d.berth(&["volume", "inspect", "keep"]))).unwrap();
    let mp = v[0]["Mountpoint"].as_str().unwrap();
    assert_eq!(
        mp,
        d.data_root().join("volumes/keep/_data").to_str().unwrap()
    );
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Labels"]["k"], "v");
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/f")).unwrap().trim(),
        "persisted"
    );
    assert!(d.data_root().join("volumes/keep/volume.json").is_file());
    ok(&d.berth(&["volume", "create", "other"]));
    let ls = ok(&d.berth(&["volume", "ls", "-q", "--filter", "label=k=v"]));
    assert_eq!(ls.trim(), "keep");
    let ls = ok(&d.berth(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}}",
        "--filter",
        "name=oth",
    ]));
    assert_eq!(ls.trim(), "other local");
    // A volume in use cannot be removed, even with -f (Docker's error).
    let id = ok(&d.berth(&["create", "-v", "keep:/data", IMAGE, "true"]))
        .trim()
        .to_string();
    let ls = ok(&d.berth(&["volume", "ls", "-q", "--filter", "dangling=true"]));
    assert_eq!(ls.trim(), "other");
    let o = d.berth(&["volume", "rm", "-f", "keep"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("Error response from daemon: remove keep: volume is in use - [{id}]")
    );
    ok(&d.berth(&["rm", &id]));
    ok(&d.berth(&["volume", "rm", "keep", "other"]));
    assert!(!d.data_root().join("volumes/keep").exists());
    // Bad input: unknown option, bad name, missing volume.
    let o = d.berth(&["volume", "create", "-o", "foo=bar", "v1"]);
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: create v1: invalid option: \"foo\""
    );
    let o = d.berth(&["volume", "rm", "nosuch"]);
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: get nosuch: no such volume"
    );
}

#[test]
fn copy_up_keeps_owners_and_modes_and_rm_v_removes_anonymous() {
    require_root!();
    let d = Daemon::start("vol-copyup");
    import_data_image(&d, "berth-test/data:1");
    // STO-11: the image's VOLUME /data gets an anonymous volume filled from
    // the image with owners and modes kept.
    let out = ok(&d.berth(&[
        "run",
        "--name",
        "anon-a",
        "berth-test/data:1",
        "sh",
        "-c",
        "stat -c '%n %u %g %a' /data /data/secret /data/sub; readlink /data/link; cat /data/secret",
    ]));
    assert_eq!(
        out,
        "/data 1000 1000 750\n/data/secret 1000 2000 640\n/data/sub 0 0 1777\nsecret\ns3cret"
    );
    let insp: Value = serde_json::from_str(&ok(&d.berth(&["inspect", "anon-a"]))).unwrap();
    let m = &insp[0]["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["RW"], true);
    let anon = m["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64);
    // A named volume is filled too; nocopy leaves it empty.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "filled:/data",
        "berth-test/data:1",
        "ls",
        "/data",
    ]));
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["link", "secret", "sub"]
    );
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "empty:/data:nocopy",
        "berth-test/data:1",
        "ls",
        "-A",
        "/data",
    ]));
    assert_eq!(out.trim(), "");
    // A non-empty volume is not overwritten.
    ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "filled:/data",
        IMAGE,
        "sh",
        "-c",
        "echo mine > /data/secret",
    ]));
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "filled:/data",
        "berth-test/data:1",
        "cat",
        "/data/secret",
    ]));
    assert_eq!(out.trim(), "mine");
    // rm -v removes the anonymous volume, never the named ones.
    ok(&d.berth(&["rm", "-v", "anon-a"]));
    let ls = ok(&d.berth(&["volume", "ls", "-q"]));
    assert!(!ls.contains(&anon), "{ls}");
    assert!(ls.contains("filled") && ls.contains("empty"), "{ls}");
    // --rm removes anonymous volumes too.
    ok(&d.berth(&["run", "--rm", "-v", "/scratch", IMAGE, "true"]));
    let ls = ok(&d.berth(&["volume", "ls", "-q"]));
    assert_eq!(ls.lines().count(), 2, "{ls}");
    // prune: anonymous only by default (API 1.45), all with -a.
    ok(&d.berth(&["create", "-v", "/anon2", IMAGE, "true"]));
    let out = ok(&d.berth(&["volume", "prune", "-f", "-a"]));
    assert!(out.contains("filled") && out.contains("empty"), "{out}");
    assert_eq!(ok(&d.berth(&["volume", "ls", "-q"])).lines().count(), 1);
}

#[test]
fn interrupted_copy_up_is_not_ready() {
    require_root!();
    let mut d = Daemon::start("vol-interrupt");
    import_data_image(&d, "berth-test/data:2");
    ok(&d.berth(&["volume", "create", "half"]));
    // Simulate a daemon killed in the middle of a copy-up: metadata says
    // pending, the volume holds part of the content.
    let dir = d.data_root().join("volumes/half");
    let meta_path = dir.join("volume.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["CopyUp"] = "pending".into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    std::fs::write(dir.join("_data/secret"), b"s3").unwrap();
    d.kill9();
    d.spawn();
    // The half-filled content is gone and the next user gets a full copy.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "half:/data",
        "berth-test/data:2",
        "cat",
        "/data/secret",
    ]));
    assert_eq!(out.trim(), "s3cret");
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["CopyUp"], "done");
}

#[test]
fn binds_tmpfs_and_bad_input() {
    require_root!();
    let d = Daemon::start("vol-bind");
    let host = TempDir::new("bind");
    std::fs::write(host.0.join("f"), "from host").unwrap();
    // -v bind, rw and ro, and inspect Mounts.
    let spec = format!("{}:/h:ro", host.path());
    let out = ok(&d.berth(&["run", "--name", "binder", "-v", &spec, IMAGE, "cat", "/h/f"]));
    assert_eq!(out, "from host");
    let insp: Value = serde_json::from_str(&ok(&d.berth(&["inspect", "binder"]))).unwrap();
    let m = &insp[0]["Mounts"][0];
    assert_eq!(m["Type"], "bind");
    assert_eq!(m["Source"], host.path());
    assert_eq!(m["Mode"], "ro");
    assert_eq!(m["RW"], false);
    assert_eq!(m["Propagation"], "rprivate");
    let spec = format!("{}:/h", host.path());
    ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        &spec,
        IMAGE,
        "sh",
        "-c",
        "echo back > /h/g",
    ]));
    assert_eq!(
        std::fs::read_to_string(host.0.join("g")).unwrap().trim(),
        "back"
    );
    // -v creates a missing host directory; --mount refuses it.
    let missing = host.0.join("new/dir");
    let spec = format!("{}:/n", missing.display());
    ok(&d.berth(&["run", "--rm", "-v", &spec, IMAGE, "true"]));
    assert!(missing.is_dir());
    let gone = host.0.join("gone");
    let m = format!("type=bind,source={},target=/x", gone.display());
    let o = d.berth(&["run", "--rm", "--mount", &m, IMAGE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            gone.display()
        )),
        "{}",
        stderr(&o)
    );
    // Relative bind path: taken as a volume name, Docker's error.
    let o = d.berth(&["run", "--rm", "-v", "rel/path:/x", IMAGE, "true"]);
    assert!(
        stderr(&o).contains(
            "create rel/path: \"rel/path\" includes invalid characters for a local volume name"
        ),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["run", "--rm", "-v", "/x:/y:zz", IMAGE, "true"]);
    assert!(stderr(&o).contains("invalid mode: zz"), "{}", stderr(&o));
    // --tmpfs with a size limit that is enforced (STO-16).
    let o = d.berth(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m",
        IMAGE,
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/x bs=1k count=2048 2>&1; df -k /t | tail -1",
    ]);
    let out = stdout(&o);
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains(" 1024 "), "{out}");
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t2,tmpfs-size=2m,tmpfs-mode=1770",
        IMAGE,
        "sh",
        "-c",
        "stat -c %a /t2; df -k /t2 | tail -1",
    ]));
    assert!(out.starts_with("1770\n") && out.contains(" 2048 "), "{out}");
    // --mount type=volume with volume-opt: a tmpfs-backed local volume.
    ok(&d.berth(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=3m",
        "tv",
    ]));
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "tv:/v",
        IMAGE,
        "sh",
        "-c",
        "df -k /v | tail -1",
    ]));
    assert!(out.contains(" 3072 "), "{out}");
    let v: Value = serde_json::from_str(&ok(&d.berth(&["volume", "inspect", "tv"]))).unwrap();
    assert_eq!(v[0]["Options"]["type"], "tmpfs");
    ok(&d.berth(&["rm", "binder"]));
    ok(&d.berth(&["volume", "rm", "tv"]));
    assert!(mounts_under(&d.data_root().join("volumes")).is_empty());
}

#[test]
fn volumes_from_backup_and_restore() {
    require_root!();
    let d = Daemon::start("vol-from");
    let backup = TempDir::new("backup");
    // The seeds' example (STO-15, OPS-19): a data container, a backup with
    // --volumes-from into a bind mount, and a restore into a new container.
    ok(&d.berth(&[
        "run",
        "--name",
        "gitlab",
        "-v",
        "/etc/gitlab",
        IMAGE,
        "sh",
        "-c",
        "echo config > /etc/gitlab/gitlab.rb; mkdir /etc/gitlab/ssl; echo key > /etc/gitlab/ssl/k",
    ]));
    let bind = format!("{}:/backup2", backup.path());
    ok(&d.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "gitlab",
        "-v",
        &bind,
        IMAGE,
        "tar",
        "cvf",
        "/backup2/gitlab-etc.tar",
        "/etc/gitlab",
    ]));
    assert!(backup.0.join("gitlab-etc.tar").is_file());
    ok(&d.berth(&[
        "create",
        "--name",
        "restored",
        "-v",
        "/etc/gitlab",
        IMAGE,
        "true",
    ]));
    ok(&d.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "restored",
        "-v",
        &bind,
        IMAGE,
        "sh",
        "-c",
        "cd / && tar xvf /backup2/gitlab-etc.tar",
    ]));
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "restored:ro",
        IMAGE,
        "sh",
        "-c",
        "cat /etc/gitlab/gitlab.rb /etc/gitlab/ssl/k; touch /etc/gitlab/x 2>&1; true",
    ]));
    assert!(out.starts_with("config\nkey\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let o = d.berth(&["run", "--rm", "--volumes-from", "nosuch", IMAGE, "true"]);
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn system_df_counts_volume_sizes() {
    require_root!();
    let d = Daemon::start("vol-df");
    ok(&d.berth(&[
        "run",
        "--name",
        "big",
        "-v",
        "dfv:/d",
        IMAGE,
        "sh",
        "-c",
        "dd if=/dev/zero of=/d/f bs=1000 count=300",
    ]));
    let (status, body) = d.http("GET", "/v1.45/system/df", b"");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let vol = v["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["Name"] == "dfv")
        .unwrap()
        .clone();
    assert_eq!(vol["UsageData"]["Size"], 300_000);
    assert_eq!(vol["UsageData"]["RefCount"], 1);
    assert_eq!(v["Containers"][0]["Mounts"][0]["Name"], "dfv");
    assert_eq!(v["BuildCache"], Value::Array(vec![]));
    let out = ok(&d.berth(&["system", "df", "-v"]));
    assert!(out.contains("Local Volumes space usage:"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("dfv") && l.trim_end().ends_with("300kB")),
        "{out}"
    );
    let out = ok(&d.docker(&["system", "df"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("Local Volumes") && l.contains("300kB")),
        "{out}"
    );
}

/// A real crash: berthd is SIGKILLed while it copies many image files into
/// a new volume. After the restart the volume is empty and not marked
/// filled, and the next container gets every file.
#[test]
fn copy_up_killed_midway_is_redone() {
    require_root!();
    let mut d = Daemon::start("vol-kill");
    const N: usize = 4_000;
    let base = std::fs::read(images_dir().join("busybox-rootfs.tar")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(&base[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        if matches!(
            h.entry_type(),
            tar::EntryType::Symlink | tar::EntryType::Link
        ) {
            let l = e.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &path, &l).unwrap();
        } else {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            b.append_data(&mut h, &path, &data[..]).unwrap();
        }
    }
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, "many/", std::io::empty()).unwrap();
    for i in 0..N {
        let mut f = tar::Header::new_gnu();
        f.set_mode(0o644);
        f.set_size(8);
        b.append_data(
            &mut f,
            format!("many/f{i:05}"),
            &format!("{i:08}").as_bytes()[..],
        )
        .unwrap();
    }
    let path = d.dir.join("many.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    ok(&d.berth(&[
        "import",
        "-c",
        "VOLUME /many",
        path.to_str().unwrap(),
        "berth-test/many:1",
    ]));
    ok(&d.berth(&["volume", "create", "big"]));
    let meta = d.data_root().join("volumes/big/volume.json");
    let mut cli = std::process::Command::new(bin("berth"))
        .args([
            "-H",
            &d.host(),
            "create",
            "-v",
            "big:/many",
            "berth-test/many:1",
            "true",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let data = d.data_root().join("volumes/big/_data");
    let pending = eventually(30, || {
        std::fs::read_to_string(&meta).is_ok_and(|m| m.contains("\"pending\""))
            && std::fs::read_dir(&data).is_ok_and(|r| r.count() > 50)
    });
    assert!(pending, "copy-up never observed in progress");
    d.kill9();
    let _ = cli.kill();
    let _ = cli.wait();
    let copied = std::fs::read_dir(d.data_root().join("volumes/big/_data"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert!(
        copied < N,
        "the copy finished before the kill ({copied} files)"
    );
    d.spawn();
    let v: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(v["CopyUp"], "none", "{v}");
    assert_eq!(
        std::fs::read_dir(d.data_root().join("volumes/big/_data"))
            .unwrap()
            .count(),
        0,
        "half-filled volume kept"
    );
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "big:/many",
        "berth-test/many:1",
        "sh",
        "-c",
        "ls /many | wc -l; cat /many/f03999",
    ]));
    assert_eq!(out, format!("{N}\n00003999"));
    eprintln!("killed after {copied} of {N} files; refilled completely after restart");
}
