//! A throwaway Debian `docker-registry` (distribution 2.8) on 127.0.0.1:<free
//! port> with its own config and storage dir; killed and removed on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    pub port: u16,
    pub ip: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// What a test registry serves besides plain HTTP without auth.
#[derive(Default)]
pub struct Opts<'a> {
    pub htpasswd: Option<(&'a str, &'a str)>,
    /// Listen address (default 127.0.0.1).
    pub ip: Option<String>,
    /// PEM certificate and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Token auth: (realm URL, service, issuer, root cert bundle).
    pub token: Option<(String, String, String, PathBuf)>,
    /// Write the access log to `access.log` in the registry dir.
    pub access_log: bool,
}

impl Registry {
    /// None when docker-registry is not installed (the test is skipped).
    pub fn start(htpasswd: Option<(&str, &str)>) -> Option<Registry> {
        Registry::start_opts(Opts {
            htpasswd,
            ..Opts::default()
        })
    }

    pub fn start_opts(o: Opts) -> Option<Registry> {
        let bin = ["/usr/bin/docker-registry", "/usr/bin/registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let mut auth = match o.htpasswd {
            None => String::new(),
            Some((u, p)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(out.status.success());
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    f.display()
                )
            }
        };
        if let Some((realm, service, issuer, bundle)) = &o.token {
            auth = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                bundle.display()
            );
        }
        let tls = match &o.tls {
            None => String::new(),
            Some((c, k)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ),
        };
        let ip = o.ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        let log = if o.access_log {
            "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
        } else {
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        };
        let log_file = dir.path().join("access.log");
        for _ in 0..5 {
            let port = TcpListener::bind((ip.as_str(), 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let cfg = dir.path().join("config.yml");
            std::fs::write(
                &cfg,
                format!(
                    "version: 0.1\n{log}storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n{tls}{auth}",
                    storage.display()
                ),
            )
            .unwrap();
            let out = if o.access_log {
                Stdio::from(std::fs::File::create(&log_file).unwrap())
            } else {
                Stdio::null()
            };
            let mut child = Command::new(bin)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if std::net::TcpStream::connect((ip.as_str(), port)).is_ok() {
                    return Some(Registry {
                        port,
                        ip: ip.clone(),
                        dir,
                        child,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Path of a blob's data file in the registry storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
