//! End-to-end: `berth run` and the official docker CLI against berthd,
//! real containers (CTR-01.., ISO-01..). Run as root.

mod common;

use common::*;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn berth_run_echo_and_exit_codes() {
    require_root!();
    let d = Daemon::start("run");
    let o = d.berth(&["run", "--rm", IMAGE, "echo", "hello"]);
    assert_eq!(
        stdout(&o),
        "hello\n",
        "stderr: {}\nlog: {}",
        stderr(&o),
        d.log()
    );
    assert_eq!(code(&o), 0);

    let o = d.berth(&["run", "--rm", IMAGE, "sh", "-c", "exit 3"]);
    assert_eq!(code(&o), 3);

    // stdout and stderr are kept apart.
    let o = d.berth(&["run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");

    // -e, -w, -u, --entrypoint, --name
    let o = d.berth(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi there",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--name",
        "flags-1",
        IMAGE,
        "sh",
        "-c",
        "echo \"$GREETING\"; pwd; id -u; id -g",
    ]);
    assert_eq!(
        stdout(&o),
        "hi there\n/tmp\n65534\n65534\n",
        "{}",
        stderr(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        IMAGE,
        "via",
        "entrypoint",
    ]);
    assert_eq!(stdout(&o), "via entrypoint\n");

    // -d prints the full id; the container shows in ps with docker's columns.
    let o = d.berth(&["run", "-d", "--name", "sleeper", IMAGE, "sleep", "30"]);
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "{}", stderr(&o));
    let ps = stdout(&d.berth(&["ps"]));
    let mut lines = ps.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("CONTAINER ID   IMAGE                COMMAND      CREATED"));
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(
        row.contains("\"sleep 30\"") && row.contains("Up ") && row.ends_with("sleeper"),
        "{ps}"
    );
    assert_eq!(stdout(&d.berth(&["ps", "-q"])).trim(), &id[..12]);
    // A stopped container only shows with -a.
    let o = d.berth(&["kill", "sleeper"]);
    assert_eq!(stdout(&o).trim(), "sleeper");
    assert!(eventually(10, || stdout(&d.berth(&["ps", "-q"]))
        .trim()
        .is_empty()));
    let all = stdout(&d.berth(&["ps", "-a"]));
    assert!(all.contains("Exited (137)"), "{all}");
    let o = d.berth(&["rm", "sleeper"]);
    assert_eq!(code(&o), 0);
}

#[test]
fn bad_input_gets_docker_errors() {
    require_root!();
    let d = Daemon::start("bad");
    // Unknown image: docker's message and 125. The pull goes to a closed
    // port on loopback (tests never reach outside the machine).
    let o = d.berth(&["run", "--rm", "127.0.0.1:9/no-such-image", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("Unable to find image '127.0.0.1:9/no-such-image:latest' locally"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["run", "--rm", "--pull", "never", "no-such-image", "true"]);
    assert_eq!(code(&o), 125);
    assert_eq!(
        stderr(&o).lines().next(),
        Some("berth: Error response from daemon: No such image: no-such-image:latest")
    );
    // Bad flag: 125 like docker.
    let o = d.berth(&["run", "--no-such-flag", IMAGE, "true"]);
    assert_ne!(code(&o), 0);
    // A command that does not exist: 127.
    let o = d.berth(&["run", "--rm", IMAGE, "/no/such/binary"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    // Unknown container.
    let o = d.berth(&["rm", "ghost"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: No such container: ghost"
    );

    // Raw API: malformed JSON, bad reference, unknown image, versions.
    let (s, b) = d.http("POST", "/v1.45/containers/create", b"{not json");
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("message"));
    let (s, b) = d.http(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"UPPER/Case"}"#,
    );
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("invalid reference format"), "{b}");
    let (s, b) = d.http(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"nothere:1"}"#,
    );
    assert_eq!(s, 404);
    assert!(b.contains("No such image: nothere:1"), "{b}");
    let (s, b) = d.http("GET", "/v1.99/version", b"");
    assert_eq!(s, 400);
    assert!(b.contains("client version 1.99 is too new"), "{b}");
    let (s, _) = d.http("GET", "/v1.12/version", b"");
    assert_eq!(s, 400);
    let (s, _) = d.http("GET", "/v1.24/version", b"");
    assert_eq!(s, 200);
    let (s, _) = d.http("GET", "/v1.45/containers/ghost/json", b"");
    assert_eq!(s, 404);
    // Nothing was left behind by the failures.
    assert!(d.state_dirs().is_empty(), "{:?}", d.state_dirs());
}

#[test]
fn hostile_tarball_is_rejected_and_writes_nothing_outside() {
    require_root!();
    let d = Daemon::start("hostile");
    let canary_dir = d.dir.join("outside");
    std::fs::create_dir_all(&canary_dir).unwrap();
    // A docker-save tarball whose layer contains `../../../../outside/pwned`.
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_old();
    let evil = format!("../../../../../../../..{}/pwned", canary_dir.display());
    h.as_old_mut().name[..evil.len()].copy_from_slice(evil.as_bytes());
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    layer.append(&h, &b"evil"[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let diff_id = sha256_hex(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}}}}"#
    );
    let config_hex = sha256_hex(config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["evil:latest"],"Layers":["l/layer.tar"]}}]"#
    );
    let mut outer = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json".to_string(), manifest.into_bytes()),
        (format!("{config_hex}.json"), config.into_bytes()),
        ("l/layer.tar".to_string(), layer),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        outer.append_data(&mut h, name, &data[..]).unwrap();
    }
    let tarball = outer.into_inner().unwrap();
    // Like dockerd, load reports the failure inside its JSON stream.
    let (s, b) = d.http("POST", "/v1.45/images/load", &tarball);
    assert_eq!(s, 200, "{b}");
    assert!(
        b.contains("\"errorDetail\"") && b.contains("unsafe tar entry"),
        "{b}"
    );
    assert!(!canary_dir.join("pwned").exists());
    let images = stdout(&d.berth(&["images"]));
    assert!(!images.contains("evil"), "{images}");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn official_docker_cli_works_unchanged() {
    require_root!();
    let d = Daemon::start("docker");
    let o = d.docker(&["run", "--rm", IMAGE, "echo", "hello"]);
    assert_eq!(stdout(&o), "hello\n", "{}\n{}", stderr(&o), d.log());
    assert_eq!(code(&o), 0);
    let o = d.docker(&["run", "--rm", IMAGE, "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7);

    let o = d.docker(&[
        "run",
        "--name",
        "logged",
        IMAGE,
        "sh",
        "-c",
        "echo one; echo two >&2",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = d.docker(&["logs", "logged"]);
    assert_eq!(stdout(&o), "one\n");
    assert_eq!(stderr(&o), "two\n");
    // stdout and stderr are separate pipes, so their order in the log is not
    // fixed (as with dockerd); check timestamps per stream instead.
    let o = d.docker(&["logs", "-t", "logged"]);
    for (out, line) in [(stdout(&o), " one\n"), (stderr(&o), " two\n")] {
        assert!(out.ends_with(line) && out.starts_with("20"), "{out:?}");
    }
    let o = d.docker(&["logs", "--tail", "1", "logged"]);
    assert_eq!(
        stdout(&o).len() + stderr(&o).len(),
        4,
        "tail 1 keeps one line"
    );

    let ps = stdout(&d.docker(&["ps", "-a"]));
    assert!(ps.starts_with("CONTAINER ID   IMAGE"), "{ps}");
    assert!(ps.contains("Exited (0)") && ps.contains("logged"), "{ps}");
    let images = stdout(&d.docker(&["images"]));
    assert!(
        images.starts_with("REPOSITORY           TAG       IMAGE ID       CREATED"),
        "{images}"
    );
    assert!(images.contains("berth-test/busybox   latest"), "{images}");
    let o = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}} {{.Name}}",
        "logged",
    ]);
    assert_eq!(stdout(&o).trim(), "exited 0 /logged", "{}", stderr(&o));

    let o = d.docker(&["rm", "logged"]);
    assert_eq!(stdout(&o).trim(), "logged");
    assert!(!stdout(&d.docker(&["ps", "-a"])).contains("logged"));
    let o = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(stdout(&o).trim(), "1.45", "{}", stderr(&o));
    let o = d.docker(&["info", "--format", "{{.Images}} {{.Driver}}"]);
    assert_eq!(stdout(&o).trim(), "1 overlay2", "{}", stderr(&o));
}
