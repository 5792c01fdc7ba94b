//! Registry features against a real Debian `docker-registry` on loopback
//! (or a dummy interface of this host for TLS): multi-arch index with
//! `--platform`, zstd layers, a manifest that lies about sizes, mirrors for
//! docker.io names with fallback, concurrent pulls downloading each blob
//! once, HTTPS with a test CA (certs.d) and insecure registries, and token
//! auth (Bearer challenge) with a token server of the test.
mod common;
#[path = "support/registry.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use berth_image::{Credentials, ImageStore, RegistryConfig};
use common::*;
use support::{Opts, Registry};

const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

macro_rules! registry {
    ($opts:expr) => {
        match Registry::start_opts($opts) {
            Some(r) => r,
            None => {
                eprintln!("skipping: docker-registry not installed");
                return;
            }
        }
    };
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Monolithic blob upload straight to the registry; returns the digest.
fn put_blob(host: &str, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let a = agent();
    let r = a
        .post(format!("http://{host}/v2/{repo}/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let loc = r.headers().get("location").unwrap().to_str().unwrap();
    let loc = if loc.starts_with("http") {
        loc.to_string()
    } else {
        format!("http://{host}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = a
        .put(format!("{loc}{sep}digest={}", digest.replace(':', "%3A")))
        .header("Content-Type", "application/octet-stream")
        .send(data)
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "blob upload");
    digest
}

fn put_manifest(host: &str, repo: &str, reference: &str, mt: &str, body: &[u8]) -> String {
    let r = agent()
        .put(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", mt)
        .send(body)
        .unwrap();
    let st = r.status().as_u16();
    let mut r = r;
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(st, 201, "manifest upload {repo}/{reference}: {text}");
    format!("sha256:{}", sha256_hex(body))
}

/// Uploads a one-layer image (`/arch` holds `content`) with the layer blob
/// as given; returns (manifest digest, manifest size, config digest).
fn upload_image(
    host: &str,
    repo: &str,
    arch: &str,
    content: &str,
    compress: fn(&[u8]) -> Vec<u8>,
    layer_mt: &str,
    size_delta: i64,
) -> (String, usize, String) {
    let tar = layer(&[E::File("arch", content.as_bytes(), 0o644)]);
    let blob = compress(&tar);
    let ldig = put_blob(host, repo, &blob);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
        "history": [{"created_by": format!("test {arch}")}],
    }))
    .unwrap();
    let cdig = put_blob(host, repo, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": cdig, "size": config.len()},
        "layers": [{"mediaType": layer_mt, "digest": ldig, "size": blob.len() as i64 + size_delta}],
    }))
    .unwrap();
    let mdig = put_manifest(
        host,
        repo,
        &format!("{arch}-{content}"),
        MT_OCI_MANIFEST,
        &manifest,
    );
    (mdig, manifest.len(), cdig)
}

fn zstd_compress(b: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(b, 3).unwrap()
}

fn layer_file(s: &ImageStore, reference: &str, name: &str) -> String {
    let dirs = s.layer_dirs(reference).unwrap();
    fs::read_to_string(dirs.last().unwrap().join(name)).unwrap()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

// IMG-09, REG-03: a multi-arch OCI index; the host's platform by default,
// `--platform` picks another entry, an absent platform is Docker's error.
#[test]
fn multi_arch_index_and_platform() {
    require_root!();
    let reg = registry!(Opts::default());
    let host = reg.host();
    let repo = "multi/img";
    let mut entries = Vec::new();
    let mut configs = std::collections::HashMap::new();
    for arch in ["amd64", "arm64"] {
        let (mdig, msize, cdig) = upload_image(&host, repo, arch, arch, gzip, MT_OCI_GZIP, 0);
        configs.insert(arch, cdig);
        entries.push(serde_json::json!({
            "mediaType": MT_OCI_MANIFEST, "digest": mdig, "size": msize,
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries,
    }))
    .unwrap();
    let idig = put_manifest(&host, repo, "multi", MT_OCI_INDEX, &index);
    let cfg = RegistryConfig::default();
    let r = format!("{host}/{repo}:multi");

    let (d1, s1) = store();
    let res = s1.pull(&r, None, &cfg, &mut |_| {}).unwrap();
    let native = host_arch();
    if let Some(c) = configs.get(native) {
        assert_eq!(&res.id, c);
        assert_eq!(layer_file(&s1, &r, "arch"), native);
    }
    assert_eq!(res.digest, idig, "RepoDigests name the index");
    let rec = s1.resolve(&r).unwrap();
    assert!(rec.repo_digests.contains(&format!("{host}/{repo}@{idig}")));

    let (_d2, s2) = store();
    let res = s2
        .pull_platform(&r, Some("linux/arm64"), None, &cfg, &mut |_| {})
        .unwrap();
    assert_eq!(res.id, configs["arm64"]);
    assert_eq!(layer_file(&s2, &r, "arch"), "arm64");
    // An architecture alias.
    let (_d3, s3) = store();
    let res = s3
        .pull_platform(&r, Some("aarch64"), None, &cfg, &mut |_| {})
        .unwrap();
    assert_eq!(res.id, configs["arm64"]);

    let e = s1
        .pull_platform(&r, Some("linux/s390x"), None, &cfg, &mut |_| {})
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
    no_leftovers(d1.path());
}

// IMG-09: zstd-compressed OCI layers are pulled and unpacked.
#[test]
fn zstd_layer() {
    require_root!();
    let reg = registry!(Opts::default());
    let host = reg.host();
    let (mdig, _, cdig) = upload_image(
        &host,
        "zst/img",
        "amd64",
        "zstd",
        zstd_compress,
        MT_OCI_ZSTD,
        0,
    );
    let (d, s) = store();
    let r = format!("{host}/zst/img@{mdig}");
    let res = s
        .pull(&r, None, &RegistryConfig::default(), &mut |_| {})
        .unwrap();
    assert_eq!(res.id, cdig);
    assert_eq!(layer_file(&s, &cdig, "arch"), "zstd");
    no_leftovers(d.path());
}

// Bad input: a manifest whose layer size is smaller or larger than the
// blob fails verification; nothing is registered and no temp file remains.
#[test]
fn manifest_lying_about_size() {
    require_root!();
    let reg = registry!(Opts::default());
    let host = reg.host();
    for (delta, tag) in [(-1i64, "short"), (7, "long")] {
        let (mdig, _, _) = upload_image(&host, "lie/img", "amd64", tag, gzip, MT_OCI_GZIP, delta);
        let (d, s) = store();
        let e = s
            .pull(
                &format!("{host}/lie/img@{mdig}"),
                None,
                &RegistryConfig::default(),
                &mut |_| {},
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("verification failed"),
            "size delta {delta}: {e}"
        );
        assert!(s.list().unwrap().is_empty());
        no_leftovers(d.path());
        assert!(ls(&d.path().join("image/layers")).is_empty());
    }
}

fn seed(s: &ImageStore, target: &str, n_layers: usize) -> String {
    let names: Vec<String> = (0..n_layers).map(|i| format!("l{i}")).collect();
    let datas: Vec<Vec<u8>> = (0..n_layers)
        .map(|i| {
            (0..200_000u32)
                .map(|x| (x.wrapping_mul(2654435761) >> (i % 7)) as u8)
                .collect()
        })
        .collect();
    let layers: Vec<Vec<u8>> = (0..n_layers)
        .map(|i| layer(&[E::File(&names[i], &datas[i], 0o644)]))
        .collect();
    let (tar, ids) = save_archive(&[img(&["seed:1"], layers)]);
    s.load(&mut &tar[..]).unwrap();
    s.tag("seed:1", target).unwrap();
    ids[0].clone()
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// CFG registry-mirrors: docker.io names come from the first mirror that
// works; a dead mirror is skipped. (The official registry is never reached:
// the second mirror answers.)
#[test]
fn mirror_serves_docker_io_names() {
    require_root!();
    let reg = registry!(Opts::default());
    let host = reg.host();
    let (_d1, s1) = store();
    let id = seed(&s1, &format!("{host}/library/mirrored:1"), 1);
    s1.push(
        &format!("{host}/library/mirrored:1"),
        None,
        &RegistryConfig::default(),
        &mut |_| {},
    )
    .unwrap();
    let cfg = RegistryConfig {
        mirrors: vec![
            format!("http://127.0.0.1:{}", dead_port()),
            format!("http://{host}"),
        ],
        ..RegistryConfig::default()
    };
    let (d2, s2) = store();
    let res = s2.pull("mirrored:1", None, &cfg, &mut |_| {}).unwrap();
    assert_eq!(res.id, id);
    let rec = s2.resolve("docker.io/library/mirrored:1").unwrap();
    assert_eq!(rec.repo_tags, vec!["mirrored:1".to_string()]);
    assert!(
        rec.repo_digests[0].starts_with("mirrored@sha256:"),
        "{:?}",
        rec.repo_digests
    );
    no_leftovers(d2.path());
    // Mirrors are validated like dockerd's.
    assert!(berth_image::registry::validate_mirror("ftp://x").is_err());
    assert!(berth_image::registry::validate_mirror("http://x/path").is_err());
    assert_eq!(
        berth_image::registry::validate_mirror("https://m.example:5000/").unwrap(),
        "https://m.example:5000/"
    );
}

// REG, CFG max-concurrent-downloads: two clients pulling the same image at
// once into one store download every blob exactly once (registry access log).
#[test]
fn concurrent_pulls_download_each_blob_once() {
    require_root!();
    let reg = registry!(Opts {
        access_log: true,
        ..Opts::default()
    });
    let host = reg.host();
    let (_d1, s1) = store();
    let r = format!("{host}/conc/img:1");
    seed(&s1, &r, 4);
    let digest = s1
        .push(&r, None, &RegistryConfig::default(), &mut |_| {})
        .unwrap();
    let layer_digests: Vec<String> = {
        let m = agent()
            .get(format!("http://{host}/v2/conc/img/manifests/{digest}"))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
        let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(layer_digests.len(), 4);
    let before = reg.access_log();
    let (d2, s2) = store();
    let s2 = Arc::new(s2);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (s2, barrier, r) = (s2.clone(), barrier.clone(), r.clone());
            std::thread::spawn(move || {
                let cfg = RegistryConfig {
                    max_concurrent_downloads: 2,
                    ..RegistryConfig::default()
                };
                barrier.wait();
                s2.pull(&r, None, &cfg, &mut |_| {}).map(|p| p.id)
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = reg.access_log();
    let log = &log[before.len().min(log.len())..];
    for d in &layer_digests {
        let gets = log
            .lines()
            .filter(|l| l.contains(&format!("\"GET /v2/conc/img/blobs/{d} ")))
            .count();
        assert_eq!(gets, 1, "blob {d} fetched {gets} times:\n{log}");
    }
    no_leftovers(d2.path());
}

/// A veth pair with one private address of this host on one end, so that a
/// registry can be reached without being a loopback (insecure) address.
/// Traffic to it is local delivery; nothing leaves the host.
struct HostAddr {
    link: String,
    ip: String,
}

impl HostAddr {
    fn new() -> HostAddr {
        let n: u32 = std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos());
        let link = format!("btls{:x}", n & 0xffffff);
        let ip = format!("10.251.{}.{}", (n >> 8) & 0xff, 1 + (n & 0x7f));
        let sh = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        sh(&[
            "link",
            "add",
            &link,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{link}p"),
        ]);
        let d = HostAddr { link, ip };
        sh(&["addr", "add", &format!("{}/32", d.ip), "dev", &d.link]);
        sh(&["link", "set", &d.link, "up"]);
        d
    }
}

impl Drop for HostAddr {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A test CA and a server certificate for `ip`: (ca.crt, server.crt, server.key).
fn test_ca(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    fs::write(
        dir.join("srv.ext"),
        format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:{ip}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            &format!("/CN={ip}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.crt",
            "-days",
            "2",
            "-extfile",
            "srv.ext",
        ],
    );
    (dir.join("ca.crt"), dir.join("srv.crt"), dir.join("srv.key"))
}

// REG: HTTPS registry with a test CA: refused without the CA, works with
// `certs.d/<host:port>/ca.crt`, and as an insecure registry (by host and by
// CIDR) without verification.
#[test]
fn tls_registry_with_test_ca() {
    require_root!();
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping: openssl missing");
        return;
    }
    let addr = HostAddr::new();
    let pki = tempfile::tempdir().unwrap();
    let (ca, crt, key) = test_ca(pki.path(), &addr.ip);
    let reg = registry!(Opts {
        ip: Some(addr.ip.clone()),
        tls: Some((crt, key)),
        ..Opts::default()
    });
    let host = reg.host();
    let r = format!("{host}/tls/img:1");
    let (_d1, s1) = store();
    let id = seed(&s1, &r, 1);

    let e = s1
        .push(&r, None, &RegistryConfig::default(), &mut |_| {})
        .unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("certificate")
            || e.to_string().contains("UnknownIssuer"),
        "untrusted CA must fail: {e}"
    );

    let certs = tempfile::tempdir().unwrap();
    fs::create_dir_all(certs.path().join(&host)).unwrap();
    fs::copy(&ca, certs.path().join(&host).join("ca.crt")).unwrap();
    let with_ca = RegistryConfig {
        certs_dirs: vec![certs.path().to_path_buf()],
        ..RegistryConfig::default()
    };
    s1.push(&r, None, &with_ca, &mut |_| {}).unwrap();
    let (_d2, s2) = store();
    assert_eq!(s2.pull(&r, None, &with_ca, &mut |_| {}).unwrap().id, id);

    for insecure in [host.clone(), "10.251.0.0/16".to_string()] {
        let cfg = RegistryConfig {
            insecure_registries: vec![insecure.clone()],
            ..RegistryConfig::default()
        };
        let (_d3, s3) = store();
        let res = s3.pull(&r, None, &cfg, &mut |_| {});
        assert_eq!(res.unwrap().id, id, "insecure {insecure}");
    }
}

const TOKEN_SERVER: &str = r#"
import base64, json, subprocess, sys, time, os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse, parse_qs
key, cert_der, issuer, user, password, portfile, logfile = sys.argv[1:8]
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        auth = self.headers.get('Authorization')
        granted = False
        if auth:
            want = 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
            if auth != want:
                body = json.dumps({'details': 'incorrect username or password'}).encode()
                self.send_response(401)
                self.send_header('Content-Type', 'application/json')
                self.end_headers()
                self.wfile.write(body)
                return
            granted = True
        with open(logfile, 'a') as f:
            f.write('%s granted=%s scope=%s\n' % (self.path, granted, q.get('scope')))
        access = []
        for sc in q.get('scope', []):
            typ, name, actions = sc.split(':')
            access.append({'type': typ, 'name': name, 'actions': actions.split(',') if granted else []})
        now = int(time.time())
        header = {'typ': 'JWT', 'alg': 'RS256', 'x5c': [cert_der]}
        claims = {'iss': issuer, 'sub': user if granted else '', 'aud': q.get('service', [''])[0],
                  'exp': now + 300, 'nbf': now - 10, 'iat': now, 'jti': os.urandom(8).hex(), 'access': access}
        signing = b64u(json.dumps(header).encode()) + '.' + b64u(json.dumps(claims).encode())
        sig = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', key], input=signing.encode(),
                             capture_output=True, check=True).stdout
        tok = signing + '.' + b64u(sig)
        body = json.dumps({'token': tok, 'access_token': tok, 'expires_in': 300}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(body)
srv = HTTPServer(('127.0.0.1', 0), H)
with open(portfile + '.tmp', 'w') as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + '.tmp', portfile)
srv.serve_forever()
"#;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// REG-04, REG-05: Docker Hub's flow: 401 with `WWW-Authenticate: Bearer
// realm,service`, a token per repository scope from the realm (basic auth
// on the token request), push and pull with it; anonymous and wrong
// credentials are refused.
#[test]
fn token_auth_bearer_flow() {
    require_root!();
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping: openssl missing");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    openssl(
        t.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tok.key",
            "-out",
            "tok.crt",
            "-days",
            "2",
            "-subj",
            "/CN=berth token issuer",
        ],
    );
    openssl(
        t.path(),
        &[
            "x509", "-in", "tok.crt", "-outform", "DER", "-out", "tok.der",
        ],
    );
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .encode(fs::read(t.path().join("tok.der")).unwrap());
    fs::write(t.path().join("token.py"), TOKEN_SERVER).unwrap();
    let portfile = t.path().join("port");
    let log = t.path().join("token.log");
    let child = Command::new("python3")
        .arg(t.path().join("token.py"))
        .args([
            t.path().join("tok.key").to_str().unwrap(),
            &der,
            "berth-issuer",
            "alice",
            "s3cret",
        ])
        .arg(&portfile)
        .arg(&log)
        .spawn()
        .unwrap();
    let _kill = Kill(child);
    let mut port = String::new();
    for _ in 0..100 {
        if let Ok(p) = fs::read_to_string(&portfile) {
            port = p;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!port.is_empty(), "token server did not start");
    let reg = registry!(Opts {
        token: Some((
            format!("http://127.0.0.1:{port}/token"),
            "berth-registry".into(),
            "berth-issuer".into(),
            t.path().join("tok.crt"),
        )),
        ..Opts::default()
    });
    let host = reg.host();
    let r = format!("{host}/tok/img:1");
    let cfg = RegistryConfig::default();
    let (_d1, s1) = store();
    let id = seed(&s1, &r, 1);
    let alice = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
        ..Credentials::default()
    };
    let anon = s1.push(&r, None, &cfg, &mut |_| {}).unwrap_err();
    assert!(
        anon.to_string().contains("denied") || anon.to_string().contains("unauthorized"),
        "anonymous push: {anon}"
    );
    let wrong = Credentials {
        password: "nope".into(),
        ..alice.clone()
    };
    let e = s1.push(&r, Some(&wrong), &cfg, &mut |_| {}).unwrap_err();
    assert!(
        e.to_string().contains("incorrect username or password"),
        "{e}"
    );
    s1.push(&r, Some(&alice), &cfg, &mut |_| {}).unwrap();
    let (_d2, s2) = store();
    assert_eq!(s2.pull(&r, Some(&alice), &cfg, &mut |_| {}).unwrap().id, id);
    let e = store().1.pull(&r, None, &cfg, &mut |_| {}).unwrap_err();
    assert!(
        e.to_string().contains("denied") || e.to_string().contains("unauthorized"),
        "anonymous pull: {e}"
    );
    let tlog = fs::read_to_string(&log).unwrap();
    assert!(
        tlog.contains("scope=['repository:tok/img:pull,push']"),
        "token requests carry the repository scope:\n{tlog}"
    );
    berth_image::registry::login(&cfg, &host, &alice).unwrap();
    assert!(berth_image::registry::login(&cfg, &host, &wrong).is_err());
}

// REG-02: pushing layers a registry already has in another repository
// mounts them (cross-repository blob mount) instead of uploading again.
#[test]
fn push_mounts_blobs_across_repositories() {
    require_root!();
    let reg = registry!(Opts {
        access_log: true,
        ..Opts::default()
    });
    let host = reg.host();
    let (_d, s) = store();
    let cfg = RegistryConfig {
        max_concurrent_uploads: 2,
        ..RegistryConfig::default()
    };
    let a = format!("{host}/team/a:1");
    seed(&s, &a, 3);
    s.push(&a, None, &cfg, &mut |_| {}).unwrap();
    let b = format!("{host}/team/b:1");
    s.tag(&a, &b).unwrap();
    let mut events = Vec::new();
    s.push(&b, None, &cfg, &mut |p| events.push(p)).unwrap();
    let mounted = events
        .iter()
        .filter(|p| {
            matches!(p, berth_image::Progress::Status { status, .. } if status == "Mounted from team/a")
        })
        .count();
    assert_eq!(mounted, 3, "{events:?}");
    let log = reg.access_log();
    let puts_b = log
        .lines()
        .filter(|l| l.contains("\"PUT /v2/team/b/blobs/uploads/"))
        .count();
    assert_eq!(puts_b, 1, "only the config is uploaded to team/b:\n{log}");
    // The pushed image pulls back.
    let (_d2, s2) = store();
    s2.pull(&b, None, &cfg, &mut |_| {}).unwrap();
}
