//! End-to-end: `cp` both ways on running and stopped containers, through
//! volumes, `-a`, `-L`, `diff` and `export`; and the security tests: a
//! container that plants symlinks (absolute, `../..`, swapped while we
//! copy) cannot make `cp` read or write outside its root.

mod common;

use common::*;

/// A host directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("berth-cp-{tag}-{}", rand_u32()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, p: &str) -> std::path::PathBuf {
        self.0.join(p)
    }
    fn s(&self, p: &str) -> String {
        self.join(p).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cp_both_ways_running_stopped_and_volumes() {
    require_root!();
    let d = Daemon::start("cp-basic");
    let t = TempDir::new("basic");
    ok(&d.berth(&[
        "run", "-d", "--name", "box", "-v", "cpvol:/vol", IMAGE, "sh", "-c",
        "echo in-volume > /vol/a; mkdir -p /srv/dir; echo one > /srv/dir/one; chown 123:456 /srv/dir/one; ln -s /srv/dir/one /srv/link; sleep 600",
    ]));
    assert!(eventually(10, || d
        .berth(&["exec", "box", "test", "-e", "/srv/link"])
        .status
        .success()));
    // Out of a running container: a file, a directory, a volume.
    ok(&d.berth(&["cp", "box:/srv/dir/one", &t.s("one")]));
    assert_eq!(std::fs::read_to_string(t.join("one")).unwrap(), "one\n");
    ok(&d.berth(&["cp", "box:/srv/dir", &t.s("")]));
    assert!(t.join("dir/one").is_file());
    ok(&d.berth(&["cp", "box:/vol/a", &t.s("a")]));
    assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "in-volume\n");
    // The docker CLI against berthd: the archive API with the stat header.
    ok(&d.docker(&["cp", "box:/srv/dir/.", &t.s("copy-of-dir")]));
    assert!(t.join("copy-of-dir/one").is_file());
    // -L follows the symlink; without it the link itself is copied.
    ok(&d.berth(&["cp", "box:/srv/link", &t.s("link")]));
    assert!(std::fs::symlink_metadata(t.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    ok(&d.berth(&["cp", "-L", "box:/srv/link", &t.s("followed")]));
    assert_eq!(
        std::fs::read_to_string(t.join("followed")).unwrap(),
        "one\n"
    );
    // Into the container, into a volume; default owner root, -a keeps it.
    std::fs::write(t.join("up"), "uploaded").unwrap();
    std::os::unix::fs::chown(t.join("up"), Some(1234), Some(4321)).unwrap();
    ok(&d.berth(&["cp", &t.s("up"), "box:/vol/"]));
    assert_eq!(ok(&d.berth(&["exec", "box", "cat", "/vol/up"])), "uploaded");
    assert_eq!(
        ok(&d.berth(&["exec", "box", "stat", "-c", "%u:%g", "/vol/up"])).trim(),
        "0:0"
    );
    ok(&d.docker(&["cp", "-a", &t.s("up"), "box:/srv/up-a"]));
    assert_eq!(
        ok(&d.berth(&["exec", "box", "stat", "-c", "%u:%g", "/srv/up-a"])).trim(),
        "1234:4321"
    );
    // The volume on the host got the file.
    let vol = d.data_root().join("volumes/cpvol/_data/up");
    assert_eq!(std::fs::read_to_string(vol).unwrap(), "uploaded");
    // Stopped container: both ways, volumes included.
    ok(&d.berth(&["stop", "-t", "0", "box"]));
    ok(&d.berth(&["cp", "box:/srv/up-a", &t.s("from-stopped")]));
    assert_eq!(
        std::fs::read_to_string(t.join("from-stopped")).unwrap(),
        "uploaded"
    );
    ok(&d.berth(&["cp", "box:/vol/a", &t.s("vol-stopped")]));
    assert_eq!(
        std::fs::read_to_string(t.join("vol-stopped")).unwrap(),
        "in-volume\n"
    );
    std::fs::write(t.join("later"), "while stopped").unwrap();
    ok(&d.docker(&["cp", &t.s("later"), "box:/srv/"]));
    ok(&d.berth(&["cp", &t.s("later"), "box:/vol/later"]));
    ok(&d.berth(&["start", "box"]));
    assert_eq!(
        ok(&d.berth(&["exec", "box", "cat", "/srv/later", "/vol/later"])),
        "while stoppedwhile stopped"
    );
    // Errors as Docker words them.
    let o = d.berth(&["cp", "box:/nosuch", &t.s("x")]);
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: Could not find the file /nosuch in container box"
    );
    let o = d.docker(&["cp", &t.s("later"), "box:/nodir/x"]);
    assert!(
        stderr(&o).contains("Could not find the file /nodir in container box"),
        "{}",
        stderr(&o)
    );
    // No view mounts are left behind on the host.
    assert!(mounts_under(&d.exec_root().join("tmp")).is_empty());
    ok(&d.berth(&["rm", "-f", "box"]));
}

#[test]
fn diff_and_export() {
    require_root!();
    let d = Daemon::start("cp-diff");
    let t = TempDir::new("diff");
    ok(&d.berth(&[
        "run",
        "--name",
        "changed",
        IMAGE,
        "sh",
        "-c",
        "touch /tmp/new; rm /etc/group; mkdir /added; echo x > /added/f",
    ]));
    let out = ok(&d.berth(&["diff", "changed"]));
    assert_eq!(
        out,
        "A /added\nA /added/f\nC /etc\nD /etc/group\nC /tmp\nA /tmp/new\n"
    );
    let o = d.docker(&["diff", "changed"]);
    assert_eq!(stdout(&o), out);
    ok(&d.berth(&["export", "-o", &t.s("fs.tar"), "changed"]));
    let data = std::fs::read(t.join("fs.tar")).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&data[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"added/f".to_string()), "{names:?}");
    assert!(names.contains(&"bin/busybox".to_string()), "{names:?}");
    assert!(!names.contains(&"etc/group".to_string()), "{names:?}");
    let (status, body) = d.http("GET", "/v1.41/containers/changed/changes", b"");
    assert_eq!(status, 200);
    assert!(body.contains(r#"{"Path":"/etc/group","Kind":2}"#), "{body}");
}

/// The container plants links to host paths; none may be read or written.
#[test]
fn cp_cannot_escape_the_root() {
    require_root!();
    let d = Daemon::start("cp-escape");
    let host = TempDir::new("host");
    let t = TempDir::new("out");
    std::fs::write(host.join("secret"), "HOST SECRET").unwrap();
    let hs = host.s("secret");
    let hd = host.s("");
    let script = format!(
        "ln -s /etc/shadow /shadow; ln -s {hs} /abs; ln -s ../../../../../../../../..{hs} /rel; \
         ln -s ../../../../../../../../.. /up; ln -s {hd} /hostdir; ln -s ../../../../../../../../..{hd} /reldir; sleep 600"
    );
    ok(&d.berth(&["run", "-d", "--name", "evil", IMAGE, "sh", "-c", &script]));
    assert!(eventually(10, || d
        .berth(&["exec", "evil", "test", "-L", "/reldir"])
        .status
        .success()));
    // A copied symlink is fine (it is the container's link, not a read);
    // a regular file with host content is not.
    let host_secret = |p: &std::path::Path| {
        if !std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
            return false;
        }
        std::fs::read_to_string(p).is_ok_and(|s| s.contains("HOST SECRET"))
            || std::fs::read_to_string("/etc/shadow")
                .is_ok_and(|s| !s.is_empty() && std::fs::read_to_string(p).is_ok_and(|x| x == s))
    };
    // Out: following links (-L), through directories, via the raw API.
    for (i, src) in [
        "/shadow",
        "/abs",
        "/rel",
        &format!("/up{hs}"),
        "/hostdir/secret",
        "/reldir/secret",
        "/up/etc/shadow",
    ]
    .iter()
    .enumerate()
    {
        for follow in [false, true] {
            let dst = t.join(&format!("out{i}{follow}"));
            let mut args = vec!["cp"];
            if follow {
                args.push("-L");
            }
            let s = format!("evil:{src}");
            let dd = dst.display().to_string();
            args.extend([s.as_str(), dd.as_str()]);
            let _ = d.berth(&args);
            assert!(!host_secret(&dst), "cp {args:?} read a host file");
        }
        let (_, body) = d.http("GET", &format!("/containers/evil/archive?path={src}"), b"");
        assert!(!body.contains("HOST SECRET"), "GET {src} leaked");
    }
    // In: through each link, and as a file named like the link.
    std::fs::write(t.join("payload"), "PAYLOAD").unwrap();
    for dst in [
        "/abs",
        "/rel",
        "/hostdir/",
        "/reldir/",
        &format!("/up{hd}/"),
        "/shadow",
    ] {
        let _ = d.berth(&["cp", &t.s("payload"), &format!("evil:{dst}")]);
        let _ = d.docker(&["cp", &t.s("payload"), &format!("evil:{dst}")]);
    }
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "HOST SECRET"
    );
    let listing: Vec<_> = std::fs::read_dir(&host.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listing.len(), 1, "files written on the host: {listing:?}");
    assert!(!std::fs::read_to_string("/etc/shadow")
        .unwrap_or_default()
        .contains("PAYLOAD"));
    // A tar with ../ entries and a symlink-then-file pair stays inside too.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "esc", &hd).unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_mode(0o644);
    f.set_size(7);
    b.append_data(&mut f, "esc/planted", &b"PAYLOAD"[..])
        .unwrap();
    let mut f2 = tar::Header::new_gnu();
    f2.set_mode(0o644);
    f2.set_size(7);
    {
        // tar::Builder refuses ".." paths; write the name into the header.
        let name = b"../../../../../../../../../tmp/berth-cp-dotdot";
        f2.as_old_mut().name[..name.len()].copy_from_slice(name);
        f2.set_cksum();
    }
    b.append(&f2, &b"PAYLOAD"[..]).unwrap();
    let tarball = b.into_inner().unwrap();
    let (status, body) = d.http("PUT", "/containers/evil/archive?path=/tmp", &tarball);
    assert!(status == 200 || status >= 400, "{status} {body}");
    assert!(
        !host.join("planted").exists(),
        "tar entry followed a planted link"
    );
    assert!(!std::path::Path::new("/tmp/berth-cp-dotdot").exists());
    ok(&d.berth(&["rm", "-f", "evil"]));
}

/// A container swaps a directory for a symlink to a host directory in a
/// tight loop while we copy in and out.
#[test]
fn cp_racing_symlink_swap_stays_inside() {
    require_root!();
    let d = Daemon::start("cp-race");
    let host = TempDir::new("racehost");
    let t = TempDir::new("raceout");
    std::fs::write(host.join("secret"), "HOST SECRET").unwrap();
    let hd = host.s("");
    let script = format!(
        "mkdir -p /race {hd}; echo decoy > {hd}/secret; \
         while true; do rm -rf /race/x; mkdir /race/x; echo inside > /race/x/secret; \
         rm -rf /race/x; ln -s {hd} /race/x; done"
    );
    ok(&d.berth(&["run", "-d", "--name", "racer", IMAGE, "sh", "-c", &script]));
    std::fs::write(t.join("payload"), "PAYLOAD").unwrap();
    let mut copied_out = 0;
    let mut copied_in = 0;
    for i in 0..50 {
        let dst = t.join(&format!("o{i}"));
        let o = d.berth(&["cp", "racer:/race/x/secret", dst.to_str().unwrap()]);
        if o.status.success() {
            copied_out += 1;
            // The container may be half way through writing it.
            let got = std::fs::read_to_string(&dst).unwrap();
            // A link resolves to the container's own twin of the host
            // directory ("decoy"), never to the host's.
            assert!(
                got == "inside\n" || got == "decoy\n" || got.is_empty(),
                "copied out {got:?}"
            );
        }
        let o = d.berth(&["cp", &t.s("payload"), "racer:/race/x/"]);
        if o.status.success() {
            copied_in += 1;
        }
        let names: Vec<_> = std::fs::read_dir(&host.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "iteration {i}: host dir written: {names:?}");
    }
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "HOST SECRET"
    );
    eprintln!("race: {copied_out}/50 copies out, {copied_in}/50 copies in succeeded");
    assert!(
        copied_out > 0 && copied_in > 0,
        "the race never let a copy through"
    );
    let twin = format!("{hd}/payload");
    let o = d.berth(&["exec", "racer", "cat", &twin]);
    eprintln!(
        "race: payload in the container's twin: {}",
        o.status.success()
    );
    ok(&d.berth(&["rm", "-f", "racer"]));
}

/// PUT of a tar with every entry kind: modes, owners (copyUIDGID), hard
/// links, symlinks, fifos; and GET gives them back.
#[test]
fn archive_entry_kinds_round_trip() {
    require_root!();
    let d = Daemon::start("cp-kinds");
    ok(&d.berth(&["run", "-d", "--name", "kinds", IMAGE, "sleep", "600"]));
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o750);
    dir.set_uid(7);
    dir.set_gid(8);
    dir.set_size(0);
    b.append_data(&mut dir, "k/", std::io::empty()).unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_mode(0o4755);
    f.set_uid(7);
    f.set_gid(8);
    f.set_size(5);
    f.set_mtime(1_600_000_000);
    b.append_data(&mut f, "k/file", &b"hello"[..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Link);
    l.set_mode(0o4755);
    l.set_size(0);
    b.append_link(&mut l, "k/hard", "k/file").unwrap();
    let mut s = tar::Header::new_gnu();
    s.set_entry_type(tar::EntryType::Symlink);
    s.set_mode(0o777);
    s.set_size(0);
    b.append_link(&mut s, "k/sym", "file").unwrap();
    let mut p = tar::Header::new_gnu();
    p.set_entry_type(tar::EntryType::Fifo);
    p.set_mode(0o600);
    p.set_size(0);
    b.append_data(&mut p, "k/fifo", std::io::empty()).unwrap();
    let tarball = b.into_inner().unwrap();
    let (status, body) = d.http(
        "PUT",
        "/v1.45/containers/kinds/archive?path=/tmp&copyUIDGID=1",
        &tarball,
    );
    assert_eq!(status, 200, "{body}");
    let out = ok(&d.berth(&[
        "exec", "kinds", "sh", "-c",
        "cd /tmp/k; stat -c '%n %F %a %u:%g %h' . file hard fifo; readlink sym; cat hard; stat -c %Y file",
    ]));
    assert_eq!(
        out,
        ". directory 750 7:8 2\nfile regular file 4755 7:8 2\nhard regular file 4755 7:8 2\nfifo fifo 600 0:0 1\nfile\nhello1600000000\n"
    );
    // Back out: the same kinds, names under the path's base name.
    let (status, _) = d.http("GET", "/v1.45/containers/kinds/archive?path=/tmp/k", b"");
    assert_eq!(status, 200);
    let t = TempDir::new("kinds");
    ok(&d.berth(&["cp", "-a", "kinds:/tmp/k", &t.s("")]));
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(t.join("k/file")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.nlink()),
        (0o4755, 7, 8, 2)
    );
    assert!(std::fs::symlink_metadata(t.join("k/sym"))
        .unwrap()
        .file_type()
        .is_symlink());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(t.join("k/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    ok(&d.berth(&["rm", "-f", "kinds"]));
}
