//! End-to-end: commit, history, save (docker-archive + OCI layout) and its
//! interop with dockerd 20.10 both ways, image prune, images filters and
//! formats, import from a URL, search against a registry on 127.0.0.1, and
//! bad archives leaving nothing behind (IMG-01/02/06/08/13/14/15/17/18).

mod common;
#[path = "../../image/tests/support/registry.rs"]
mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn id_of(d: &Daemon, r: &str) -> String {
    ok(&d.berth(&["inspect", "-f", "{{.Id}}", r]))
        .trim()
        .to_string()
}

fn tar_names(p: &Path) -> Vec<String> {
    let f = std::fs::File::open(p).unwrap();
    let mut ar = tar::Archive::new(f);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn tar_file(p: &Path, name: &str) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap();
    let mut ar = tar::Archive::new(f);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().display().to_string() == name {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in {}", p.display());
}

/// Files directly in a directory (leftover check).
fn entries(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn commit_history_save_load_roundtrip() {
    require_root!();
    let d = Daemon::start("imgcommit");
    ok(&d.berth(&[
        "run",
        "--name",
        "c1",
        IMAGE,
        "sh",
        "-c",
        "echo hi > /hello; rm -f /etc/group; mkdir -p /newdir",
    ]));
    let out = ok(&d.berth(&[
        "commit", "-a", "me", "-m", "msg", "-c", "ENV X=1", "c1", "com:1",
    ]));
    let id = out.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let base = id_of(&d, IMAGE);
    // inspect: local parent, author, comment (from history), --change applied.
    let f = ok(&d.berth(&[
        "image",
        "inspect",
        "-f",
        "{{.Parent}}|{{.Author}}|{{.Comment}}|{{json .Config.Env}}|{{len .RootFS.Layers}}",
        "com:1",
    ]));
    assert_eq!(
        f.trim(),
        format!(
            "{base}|me|msg|[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"X=1\"]|2"
        )
    );
    // history: newest first, ids along the parent chain, sizes per layer.
    let (st, body) = d.http("GET", "/images/com:1/history", b"");
    assert_eq!(st, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2, "{body}");
    assert_eq!(h[0]["Id"], id.as_str());
    assert_eq!(h[0]["Tags"], serde_json::json!(["com:1"]));
    assert_eq!(h[0]["Size"], 3);
    assert_eq!(h[0]["Comment"], "msg");
    assert_eq!(
        h[0]["CreatedBy"],
        "sh -c echo hi > /hello; rm -f /etc/group; mkdir -p /newdir"
    );
    assert_eq!(h[1]["Id"], base.as_str());
    assert_eq!(
        h[1]["Tags"],
        serde_json::json!(["berth-test/busybox:latest"])
    );
    let t = ok(&d.berth(&[
        "history",
        "--format",
        "{{.ID}} {{.Size}} {{.Comment}}",
        "com:1",
    ]));
    assert_eq!(
        t,
        format!("{} 3B msg\n{} 1.99MB \n", &id[7..19], &base[7..19])
    );
    let q = ok(&d.berth(&["history", "-q", "--no-trunc", "com:1"]));
    assert_eq!(q, format!("{id}\n{base}\n"));
    let raw = ok(&d.berth(&["history", "--human=false", "--format", "{{.Size}}", "com:1"]));
    assert_eq!(raw.lines().next(), Some("3"));
    // docker's short form, -H=false (the daemon's -H goes before the command).
    let short = ok(&d.berth(&["history", "-H=false", "--format", "{{.Size}}", "com:1"]));
    assert_eq!(short, raw);
    // The docker CLI renders the same history.
    let dh = ok(&d.docker(&["history", "com:1"]));
    assert!(dh.starts_with("IMAGE          CREATED"), "{dh}");
    assert!(
        dh.contains("sh -c echo hi > /hello; rm -f /etc/group; mk…   3B        msg"),
        "{dh}"
    );

    // An image removed by id with a child: refused; by name: untag only.
    let (st, body) = d.http("DELETE", &format!("/images/{}", &base[7..19]), b"");
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("image has dependent child images"), "{body}");

    // save: docker-archive + OCI layout in one tar, both images.
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("both.tar");
    ok(&d.berth(&["save", "-o", arch.to_str().unwrap(), "com:1", IMAGE]));
    let names = tar_names(&arch);
    for want in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.contains(&want.to_string()), "{names:?}");
    }
    assert!(
        names.contains(&format!("blobs/sha256/{}", &id[7..])),
        "{names:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_file(&arch, "manifest.json")).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["com:1"]));
    assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 2);
    let index: serde_json::Value = serde_json::from_slice(&tar_file(&arch, "index.json")).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/com:1"
    );
    // Every layer blob hashes to its name (the original diff ids).
    for l in manifest[0]["Layers"].as_array().unwrap() {
        let l = l.as_str().unwrap();
        let data = tar_file(&arch, l);
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&data)), &l[13..]);
    }
    // The docker CLI's save to stdout gives the same bytes for one image.
    let out = Command::new("docker")
        .args(["-H", &d.host(), "save", "com:1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let one = dir.path().join("one.tar");
    std::fs::write(&one, &out.stdout).unwrap();
    assert!(tar_names(&one).contains(&format!("blobs/sha256/{}", &id[7..])));

    // rmi lists the image and its released layer; load brings it back.
    ok(&d.berth(&["rm", "c1"]));
    let r = ok(&d.berth(&["rmi", "com:1"]));
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines.len(), 3, "{r}");
    assert_eq!(lines[0], "Untagged: com:1");
    assert_eq!(lines[1], format!("Deleted: {id}"));
    assert!(lines[2].starts_with("Deleted: sha256:"), "{r}");
    let l = ok(&d.berth(&["load", "-i", arch.to_str().unwrap()]));
    assert!(l.contains("Loaded image: com:1"), "{l}");
    assert_eq!(id_of(&d, "com:1"), id);
    let run = ok(&d.berth(&[
        "run",
        "--rm",
        "com:1",
        "sh",
        "-c",
        "cat /hello; ls /etc; test -d /newdir && echo dir",
    ]));
    assert_eq!(run, "hi\nhostname\nhosts\npasswd\nresolv.conf\ndir\n");
}

#[test]
fn commit_pauses_running_container_and_empty_commit() {
    require_root!();
    let d = Daemon::start("imgcommitrun");
    ok(&d.berth(&["run", "-d", "--name", "rc", IMAGE, "sleep", "300"]));
    // Nothing changed: an empty layer (history entry only).
    let id = ok(&d.berth(&["commit", "rc", "empty:1"]))
        .trim()
        .to_string();
    let layers = ok(&d.berth(&["inspect", "-f", "{{len .RootFS.Layers}}", &id]));
    assert_eq!(layers.trim(), "1");
    let (_, body) = d.http("GET", "/images/empty:1/history", b"");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h[0]["Size"], 0);
    assert_eq!(h[0]["CreatedBy"], "sleep 300");
    // The container keeps running (paused and resumed around the commit).
    let st = ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "rc"]));
    assert_eq!(st.trim(), "running");
    ok(&d.berth(&["exec", "rc", "sh", "-c", "echo x > /x"]));
    ok(&d.berth(&["commit", "--pause=false", "rc", "withx"]));
    let out = ok(&d.berth(&["run", "--rm", "withx", "cat", "/x"]));
    assert_eq!(out, "x\n");
    // Errors: unknown container, bad reference.
    let o = d.berth(&["commit", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["commit", "rc", "Bad:1"]);
    assert!(
        stderr(&o).contains("invalid reference format: repository name must be lowercase"),
        "{}",
        stderr(&o)
    );
    ok(&d.berth(&["rm", "-f", "rc"]));
}

#[test]
fn prune_images_and_list_filters() {
    require_root!();
    let d = Daemon::start("imgprune");
    let rootfs = images_dir().join("busybox-rootfs.tar");
    let rootfs = rootfs.to_str().unwrap();
    // Two untagged imports (dangling) and a labelled tagged one.
    let a = ok(&d.berth(&["import", "-m", "a", rootfs]))
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let b = ok(&d.berth(&["import", "-c", "LABEL keep=yes", rootfs]))
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let c = ok(&d.berth(&["import", "-c", "LABEL team=x", rootfs, "lab:1"]))
        .trim()
        .to_string();
    // Filters and formats of `images`.
    let dangling = ok(&d.berth(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]));
    assert_eq!(dangling, format!("{b}\n{a}\n"));
    let lab = ok(&d.berth(&[
        "images",
        "--filter",
        "label=team=x",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]));
    assert_eq!(lab, "lab:1\n");
    let since = ok(&d.berth(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("since={a}"),
    ]));
    assert_eq!(since, format!("{c}\n{b}\n"));
    let before = ok(&d.berth(&["images", "-q", "--no-trunc", "--filter", "before=lab:1"]));
    assert!(
        before.contains(&a) && before.contains(&b) && !before.contains(&c),
        "{before}"
    );
    let dig = ok(&d.berth(&["images", "--digests", "lab"]));
    // The CREATED column is as wide as its widest cell, which depends on the
    // clock ("Less than a second ago" vs "2 seconds ago").
    if dig.contains("Less than a second ago") {
        assert_eq!(
            dig.lines().next().unwrap(),
            "REPOSITORY   TAG       DIGEST    IMAGE ID       CREATED                  SIZE"
        );
    } else {
        assert_eq!(
            dig.lines()
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            [
                "REPOSITORY",
                "TAG",
                "DIGEST",
                "IMAGE",
                "ID",
                "CREATED",
                "SIZE"
            ],
            "{dig}"
        );
    }
    let tbl = ok(&d.berth(&[
        "images",
        "--format",
        "table {{.Repository}}\t{{.ID}}",
        "lab",
    ]));
    assert_eq!(
        tbl,
        format!("REPOSITORY   IMAGE ID\nlab          {}\n", &c[7..19])
    );
    // API 1.41 reports untagged images with <none> placeholders.
    let (_, body) = d.http(
        "GET",
        "/v1.41/images/json?filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D",
        b"",
    );
    assert!(body.contains("\"<none>:<none>\""), "{body}");

    // A container keeps its (dangling) image from being pruned.
    ok(&d.berth(&["create", "--name", "user", &a, "true"]));
    let out = ok(&d.berth(&["image", "prune", "-f", "--filter", "label!=keep=yes"]));
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = ok(&d.berth(&["image", "prune", "-f"]));
    assert_eq!(
        out,
        format!("Deleted Images:\ndeleted: {b}\n\nTotal reclaimed space: 0B\n")
    );
    // -a with until: nothing is older than 1h ago (busybox is 2024, but in use? no)
    let out = ok(&d.berth(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "until=1h",
        "--filter",
        "label=team=x",
    ]));
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let (st, body) = d.http(
        "POST",
        "/images/prune?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        b"",
    );
    assert_eq!(st, 400);
    assert!(body.contains("Invalid filter 'bogus'"), "{body}");
    // -a: every unused image; the base busybox layer is shared, so freeing
    // lab:1 releases nothing until the last user goes.
    let out = ok(&d.berth(&["image", "prune", "-a", "-f"]));
    assert!(
        out.starts_with("Deleted Images:\nuntagged: lab:1\n"),
        "{out}"
    );
    assert!(
        out.contains("untagged: berth-test/busybox:latest\n"),
        "{out}"
    );
    assert!(out.contains("\ndeleted: sha256:"), "{out}");
    assert!(!out.contains(&a), "in-use image pruned: {out}");
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    ok(&d.berth(&["rm", "user"]));
    let out = ok(&d.berth(&["image", "prune", "-a", "-f"]));
    assert!(out.contains(&format!("deleted: {a}")), "{out}");
    assert!(out.ends_with("Total reclaimed space: 1.99MB\n"), "{out}");
    // Unreferenced layers are gone from disk.
    let layers = d.data_root().join("image/layers");
    assert_eq!(entries(&layers), Vec::<String>::new());
    assert_eq!(ok(&d.berth(&["images", "-q"])), "");
}

#[test]
fn bad_archives_leave_nothing_behind() {
    require_root!();
    let d = Daemon::start("imgbad");
    let dir = tempfile::tempdir().unwrap();
    // A one-file layer that is not in the store yet.
    let rootfs = dir.path().join("small.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&rootfs).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(5000);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "data.bin", &vec![7u8; 5000][..])
            .unwrap();
        b.finish().unwrap();
    }
    ok(&d.berth(&[
        "import",
        "-c",
        "LABEL x=1",
        rootfs.to_str().unwrap(),
        "extra:1",
    ]));
    let good = dir.path().join("good.tar");
    ok(&d.berth(&["save", "-o", good.to_str().unwrap(), "extra:1"]));
    ok(&d.berth(&["rmi", "extra:1"]));
    let layers_before = entries(&d.data_root().join("image/layers"));
    let list_before = ok(&d.berth(&["images", "-q", "--no-trunc"]));
    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_file(&good, "manifest.json")).unwrap();
    let layer = manifest[0]["Layers"][0].as_str().unwrap().to_string();

    // Rebuild the archive with one entry changed or dropped.
    let rewrite = |name: &str, f: &dyn Fn(&str, Vec<u8>) -> Option<Vec<u8>>| -> PathBuf {
        let out = dir.path().join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
        let mut ar = tar::Archive::new(std::fs::File::open(&good).unwrap());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let mut h = e.header().clone();
            if let Some(d2) = f(&p, data) {
                h.set_size(d2.len() as u64);
                h.set_cksum();
                b.append_data(&mut h, &p, &d2[..]).unwrap();
            }
        }
        b.finish().unwrap();
        out
    };
    // The layer is a different, differently-sized layer of another base
    // (the test image's layer must not be in the store: remove it first).
    let missing = rewrite("missing.tar", &|p, d| (p != layer).then_some(d));
    let corrupt = rewrite("corrupt.tar", &|p, mut d| {
        if p == layer {
            let n = d.len() / 2;
            d[n] ^= 0xff;
            d[n + 1] ^= 0xff;
        }
        Some(d)
    });
    let truncated = dir.path().join("truncated.tar");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.tar");
    std::fs::write(&garbage, b"this is not a tar archive at all").unwrap();

    for (f, want) in [
        (&missing, "not found in tarball"),
        (&corrupt, ""),
        (&truncated, ""),
        (&garbage, ""),
    ] {
        let o = d.berth(&["load", "-i", f.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{} loaded: {}",
            f.display(),
            stdout(&o)
        );
        assert!(stderr(&o).contains(want), "{}: {}", f.display(), stderr(&o));
        // Nothing registered, no layer dir, no temp files.
        assert_eq!(ok(&d.berth(&["images", "-q", "--no-trunc"])), list_before);
        assert_eq!(entries(&d.data_root().join("image/layers")), layers_before);
        assert_eq!(
            entries(&d.data_root().join("image/tmp")),
            Vec::<String>::new()
        );
    }
    // The intact archive still loads.
    let o = ok(&d.berth(&["load", "-i", good.to_str().unwrap()]));
    assert_eq!(o, "Loaded image: extra:1\n");
}

/// A one-file HTTP server on 127.0.0.1 (for `import URL`); serves `body`
/// for every request until dropped.
struct FileServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(body: Vec<u8>) -> FileServer {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let mut buf = [0u8; 4096];
                        let n = c.read(&mut buf).unwrap_or(0);
                        let req = String::from_utf8_lossy(&buf[..n]).to_string();
                        if req.starts_with("GET /missing") {
                            let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            continue;
                        }
                        let _ = c.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        );
                        let _ = c.write_all(&body);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FileServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn import_from_url_and_stdin() {
    require_root!();
    let d = Daemon::start("imgimporturl");
    let rootfs = std::fs::read(images_dir().join("busybox-rootfs.tar")).unwrap();
    let srv = FileServer::start(rootfs.clone());
    let url = format!("http://127.0.0.1:{}/rootfs.tar", srv.port);
    let id = ok(&d.berth(&[
        "import",
        "-m",
        "from url",
        "-c",
        "CMD [\"echo\",\"u\"]",
        &url,
        "fromurl:1",
    ]))
    .trim()
    .to_string();
    assert!(id.starts_with("sha256:"));
    assert_eq!(ok(&d.berth(&["run", "--rm", "fromurl:1"])), "u\n");
    let out = ok(&d.berth(&["history", "--format", "{{.Comment}}", "fromurl:1"]));
    assert_eq!(out, "from url\n");
    // Without -m the history names the source.
    ok(&d.docker(&["import", &url, "fromurl:2"]));
    let out = ok(&d.berth(&["history", "--format", "{{.Comment}}", "fromurl:2"]));
    assert_eq!(out, format!("Imported from {url}\n"));
    let o = d.berth(&["import", &format!("http://127.0.0.1:{}/missing", srv.port)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("404"), "{}", stderr(&o));
    // stdin
    let mut c = Command::new(bin("berth"))
        .args(["-H", &d.host(), "import", "-", "fromstdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&rootfs).unwrap();
    let o = c.wait_with_output().unwrap();
    ok(&o);
    let out = ok(&d.berth(&["history", "--format", "{{.Comment}}", "fromstdin"]));
    assert_eq!(out, "Imported from -\n");
}

#[test]
fn search_local_registry() {
    require_root!();
    let Some(reg) = support::Registry::start(None) else {
        eprintln!("skipping: docker-registry not installed");
        return;
    };
    let d = Daemon::start("imgsearch");
    let host = format!("127.0.0.1:{}", reg.port);
    for name in ["team/alpha", "team/beta", "other"] {
        ok(&d.berth(&["tag", IMAGE, &format!("{host}/{name}:1")]));
        ok(&d.berth(&["push", &format!("{host}/{name}:1")]));
    }
    let out = ok(&d.berth(&["search", &format!("{host}/team")]));
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        vec![
            "NAME DESCRIPTION STARS OFFICIAL".to_string(),
            format!("{host}/team/alpha 0"),
            format!("{host}/team/beta 0"),
        ]
    );
    // The docker CLI prints the same table (modulo trailing blanks).
    let dout = ok(&d.docker(&["search", &format!("{host}/team")]));
    let trim = |s: &str| {
        s.lines()
            .map(|l| l.trim_end().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(trim(&out), trim(&dout));
    let out = ok(&d.berth(&[
        "search",
        "--limit",
        "1",
        "--format",
        "{{.Name}}",
        &format!("{host}/team"),
    ]));
    assert_eq!(out, format!("{host}/team/alpha\n"));
    let out = ok(&d.berth(&["search", "--filter", "stars=1", &format!("{host}/team")]));
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = ok(&d.docker(&[
        "search",
        "--format",
        "{{.Name}} {{.StarCount}}",
        &format!("{host}/e"),
    ]));
    assert_eq!(
        out,
        format!("{host}/other 0\n{host}/team/alpha 0\n{host}/team/beta 0\n")
    );
    let o = d.docker(&["search", "--limit", "101", &format!("{host}/x")]);
    assert!(
        stderr(&o).contains("Limit 101 is outside the range of [1, 100]"),
        "{}",
        stderr(&o)
    );
}

// ------------------------------------------------ interop with dockerd 20.10

/// A private dockerd (own roots, socket, bridge, cgroup parent); stopped and
/// cleaned up on drop. None when /usr/sbin/dockerd is missing or fails.
struct Dockerd {
    dir: PathBuf,
    bridge: String,
    cgroup: String,
    child: Option<Child>,
    /// dockerd 20.10 writes /etc/docker/key.json whatever its flags say.
    had_etc_docker: bool,
    had_key: bool,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        if !Path::new("/usr/sbin/dockerd").exists() {
            return None;
        }
        let n = rand_u32() % 100_000;
        let dir = std::env::temp_dir().join(format!("bdk-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("d.json"), "{}").unwrap();
        let bridge = format!("bdk{n}");
        let ip = format!("10.213.{}.1/24", 100 + n % 100);
        let mut d = Dockerd {
            dir: dir.clone(),
            bridge: bridge.clone(),
            cgroup: format!("berth-test-dockerd-{n}"),
            child: None,
            had_etc_docker: Path::new("/etc/docker").exists(),
            had_key: Path::new("/etc/docker/key.json").exists(),
        };
        let st = Command::new("ip")
            .args(["link", "add", &bridge, "type", "bridge"])
            .status()
            .ok()?;
        if !st.success() {
            return None;
        }
        let _ = Command::new("ip")
            .args(["addr", "add", &ip, "dev", &bridge])
            .status();
        let _ = Command::new("ip")
            .args(["link", "set", &bridge, "up"])
            .status();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("d.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .arg("--config-file")
            .arg(dir.join("d.json"))
            .args([
                "--bridge",
                &bridge,
                "--iptables=false",
                "--ip-forward=false",
            ])
            .args([
                "--ip-masq=false",
                "--userland-proxy=false",
                "--storage-driver",
                "overlay2",
            ])
            .arg("--cgroup-parent")
            .arg(format!("/{}", d.cgroup))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .ok()?;
        d.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if d.docker(&["version"]).status.success() {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "dockerd did not start: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        None
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("d.sock").display()))
            .args(args)
            .env("DOCKER_API_VERSION", "1.41")
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in mounts_under(&self.dir).into_iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        // v2: /sys/fs/cgroup/<parent>; v1: one per hierarchy.
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{}", self.cgroup));
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.cgroup));
            }
        }
        if !self.had_key {
            let _ = std::fs::remove_file("/etc/docker/key.json");
        }
        if !self.had_etc_docker {
            let _ = std::fs::remove_dir("/etc/docker");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn save_load_interop_with_dockerd() {
    require_root!();
    let Some(dk) = Dockerd::start() else {
        eprintln!("skipping: dockerd 20.10 not available");
        return;
    };
    let d = Daemon::start("imginterop");
    let dir = tempfile::tempdir().unwrap();
    // berth → dockerd: a committed image with a whiteout and a new dir.
    ok(&d.berth(&[
        "run",
        "--name",
        "cb",
        IMAGE,
        "sh",
        "-c",
        "echo b > /b; rm /etc/group; mkdir /nd",
    ]));
    let bid = ok(&d.berth(&["commit", "-m", "from berth", "cb", "frombenth:1"]))
        .trim()
        .to_string();
    let barch = dir.path().join("berth.tar");
    ok(&d.berth(&["save", "-o", barch.to_str().unwrap(), "frombenth:1"]));
    let out = ok(&dk.docker(&["load", "-i", barch.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: frombenth:1\n");
    let did = ok(&dk.docker(&["inspect", "-f", "{{.Id}}", "frombenth:1"]));
    assert_eq!(did.trim(), bid, "same config bytes, same id");
    let run = ok(&dk.docker(&[
        "run",
        "--rm",
        "--net",
        "none",
        "frombenth:1",
        "sh",
        "-c",
        "cat /b; ls /etc; test -d /nd && echo nd",
    ]));
    assert_eq!(run, "b\nhostname\nhosts\nmtab\npasswd\nresolv.conf\nnd\n");

    // dockerd → berth: docker's own (legacy layout) save of a commit.
    ok(&dk.docker(&[
        "run",
        "--name",
        "dc",
        "--net",
        "none",
        "frombenth:1",
        "sh",
        "-c",
        "echo d > /d; rm /b",
    ]));
    let did2 = ok(&dk.docker(&["commit", "dc", "fromdocker:1"]))
        .trim()
        .to_string();
    let darch = dir.path().join("docker.tar");
    ok(&dk.docker(&[
        "save",
        "-o",
        darch.to_str().unwrap(),
        "fromdocker:1",
        "frombenth:1",
    ]));
    ok(&d.berth(&["rm", "cb"]));
    ok(&d.berth(&["rmi", "frombenth:1"]));
    let out = ok(&d.berth(&["load", "-i", darch.to_str().unwrap()]));
    assert!(out.contains("Loaded image: fromdocker:1"), "{out}");
    assert!(out.contains("Loaded image: frombenth:1"), "{out}");
    assert_eq!(id_of(&d, "fromdocker:1"), did2);
    assert_eq!(id_of(&d, "frombenth:1"), bid);
    let run = ok(&d.berth(&[
        "run",
        "--rm",
        "fromdocker:1",
        "sh",
        "-c",
        "cat /d; ls /b 2>&1; test -d /nd && echo nd",
    ]));
    assert_eq!(run, "d\nls: /b: No such file or directory\nnd\n");
    // And back again: berth's save of docker's image loads into dockerd.
    let back = dir.path().join("back.tar");
    ok(&d.berth(&["save", "-o", back.to_str().unwrap(), "fromdocker:1"]));
    ok(&dk.docker(&["rm", "dc"]));
    ok(&dk.docker(&["rmi", "fromdocker:1"]));
    let out = ok(&dk.docker(&["load", "-i", back.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: fromdocker:1\n");
    let hist = ok(&dk.docker(&["history", "-q", "fromdocker:1"]));
    assert_eq!(hist.lines().count(), 3, "{hist}");
}

#[test]
fn load_oci_layout_without_manifest_json() {
    require_root!();
    let d = Daemon::start("imgocilayout");
    let dir = tempfile::tempdir().unwrap();
    let rootfs = images_dir().join("busybox-rootfs.tar");
    let id = ok(&d.berth(&[
        "import",
        "-c",
        "CMD [\"echo\",\"oci\"]",
        rootfs.to_str().unwrap(),
        "oci:1",
    ]))
    .trim()
    .to_string();
    let full = dir.path().join("full.tar");
    ok(&d.berth(&["save", "-o", full.to_str().unwrap(), "oci:1"]));
    ok(&d.berth(&["rmi", "oci:1"]));
    // Only the OCI image layout: no manifest.json, no repositories.
    let oci = dir.path().join("oci.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&oci).unwrap());
        let mut ar = tar::Archive::new(std::fs::File::open(&full).unwrap());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            if p == "manifest.json" || p == "repositories" {
                continue;
            }
            let mut h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            b.append_data(&mut h, &p, &data[..]).unwrap();
        }
        b.finish().unwrap();
    }
    let out = ok(&d.berth(&["load", "-i", oci.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: oci:1\n");
    assert_eq!(id_of(&d, "oci:1"), id);
    assert_eq!(ok(&d.berth(&["run", "--rm", "oci:1"])), "oci\n");
    // skopeo's oci-archive (gzip layers, its own manifest) loads too.
    if Path::new("/usr/bin/skopeo").exists() {
        let sk = dir.path().join("skopeo-oci.tar");
        let st = Command::new("skopeo")
            .args([
                "copy",
                "-q",
                &format!("docker-archive:{}", full.display()),
                &format!("oci-archive:{}:docker.io/library/viaskopeo:2", sk.display()),
            ])
            .status()
            .unwrap();
        assert!(st.success());
        let out = ok(&d.berth(&["load", "-i", sk.to_str().unwrap()]));
        assert_eq!(out, "Loaded image: viaskopeo:2\n");
        assert_eq!(ok(&d.berth(&["run", "--rm", "viaskopeo:2"])), "oci\n");
    }
}

/// A registry stand-in on 127.0.0.1 that answers `/v2/` and Docker's v1
/// search endpoint (what Docker Hub serves).
fn v1_search_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            c.set_nonblocking(false).unwrap();
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = if req.starts_with("GET /v1/search?q=tool") {
                r#"{"num_results":3,"query":"tool","results":[
                {"name":"acme/tool","description":"A very useful tool that does many things well, really","star_count":12,"is_official":false,"is_automated":false},
                {"name":"tool","description":"Official tool","star_count":300,"is_official":true,"is_automated":false},
                {"name":"x/tool-lite","description":"","star_count":0,"is_official":false,"is_automated":true}]}"#
            } else {
                "{}"
            };
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, stop)
}

#[test]
fn search_v1_endpoint_filters_and_format() {
    require_root!();
    let (port, stop) = v1_search_server();
    let d = Daemon::start("imgsearchv1");
    let term = format!("127.0.0.1:{port}/tool");
    let out = ok(&d.berth(&["search", &term]));
    let dout = ok(&d.docker(&["search", &term]));
    let trim = |s: &str| {
        s.lines()
            .map(|l| l.trim_end().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(trim(&out), trim(&dout), "berth vs docker CLI");
    assert_eq!(
        trim(&out),
        vec![
            "NAME          DESCRIPTION                                     STARS     OFFICIAL",
            "acme/tool     A very useful tool that does many things wel…   12",
            "tool          Official tool                                   300       [OK]",
            "x/tool-lite                                                   0",
        ]
    );
    let out = ok(&d.berth(&[
        "search",
        "--filter",
        "is-official=true",
        "--format",
        "{{.Name}}:{{.StarCount}}:{{.IsOfficial}}",
        &term,
    ]));
    assert_eq!(out, "tool:300:[OK]\n");
    let out = ok(&d.berth(&[
        "search",
        "--filter",
        "stars=10",
        "--limit",
        "2",
        "--format",
        "{{.Name}}",
        &term,
    ]));
    assert_eq!(out, "acme/tool\ntool\n");
    let out = ok(&d.berth(&[
        "search",
        "--no-trunc",
        "--format",
        "{{.Description}}",
        "--limit",
        "1",
        &term,
    ]));
    assert_eq!(
        out,
        "A very useful tool that does many things well, really\n"
    );
    let o = d.berth(&["search", "--filter", "stars=many", &term]);
    assert!(
        stderr(&o).contains("Invalid filter 'stars=many'"),
        "{}",
        stderr(&o)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
