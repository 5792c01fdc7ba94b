//! The daemon core: container and image services over the image store and
//! the per-container shims. Async (tokio); never forks containers itself.
#![forbid(unsafe_code)]

pub mod archive;
pub mod container;
mod error;
pub mod exec;
pub mod image_cmds;
pub mod images;
pub mod lifecycle;
mod logs;
mod names;
pub mod networks;
pub mod seccomp;
pub mod shim;
pub mod spec;
mod storage;
pub mod user;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_image::ImageStore;
use berth_types::api::{
    ContainerCreateBody, ContainerCreateResponse, ContainerSummary, ImageSummary, WaitError,
    WaitResponse,
};
use berth_types::shim::{ExitStatus, Request, Response, ShimConfig};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

pub use berth_network::{Config as NetworkConfig, Pool as AddressPool};
pub use container::{ContainerRecord, Status};
pub use error::{Error, Result};
pub use logs::{LogEntry, LogOptions};
pub use storage::TarStream;

use container::StateRecord;
use error::IoContext;
use shim::{Frame, ShimConn};

/// Daemon configuration (dockerd's flags and daemon.json keys).
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The `berth-runtime` binary, run as `berth-runtime shim`.
    pub shim_binary: PathBuf,
    /// OCI runtime the shim drives (berth-runtime, runc, crun).
    pub runtime: PathBuf,
    pub bip: Option<String>,
    /// Networking (bridge, bip, icc, iptables, pools...), NET-xx/CFG-13..17.
    pub network: berth_network::Config,
    /// Name of the default runtime, as `HostConfig.Runtime` shows it.
    pub runtime_name: String,
    /// Registry settings: insecure registries, mirrors, concurrency, certs (CFG-xx).
    pub registry: berth_image::RegistryConfig,
}

/// Output of a container, as delivered to attach clients.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// What waiters watch for.
#[derive(Debug, Clone, Default)]
pub struct Events {
    pub exits: u64,
    pub exit_code: i32,
    pub removed: bool,
}

struct Entry {
    rec: ContainerRecord,
    subs: Vec<mpsc::UnboundedSender<Output>>,
    events: watch::Sender<Events>,
    busy: bool,
}

#[derive(Default)]
struct Inner {
    containers: HashMap<String, Entry>,
    names: HashMap<String, String>,
}

pub struct Engine {
    cfg: Config,
    images: Arc<ImageStore>,
    inner: Mutex<Inner>,
    execs: exec::Execs,
    net: Arc<berth_network::NetworkManager>,
    volumes: Arc<volumes::VolumeStore>,
    /// Mount points holding every container's rootfs and netns pins: shims
    /// create containers in a mount namespace without the others' mounts.
    prune_mount_dirs: Vec<PathBuf>,
    shims: shim::Launcher,
}

/// Wait conditions of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::InvalidArgument(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn blocking_err(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("worker task failed: {e}"))
}

impl Engine {
    /// Open the stores under `data_root`, load containers and reconnect to
    /// the shims of running ones (live restore).
    pub async fn new(mut cfg: Config) -> Result<Arc<Engine>> {
        for d in [
            cfg.data_root.join("containers"),
            cfg.exec_root.join("containers"),
            cfg.exec_root.join("shim"),
            cfg.exec_root.join("runtime"),
        ] {
            std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
            // One directory per container below each: spread them over the
            // filesystem's block groups (ext4).
            let _ = berth_sys::fs::spread_subdirs(&d);
        }
        let mut prune_mount_dirs = Vec::new();
        for d in [
            cfg.exec_root.join("containers"),
            cfg.network.netns_dir.clone(),
        ] {
            std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
            match berth_sys::mount::ensure_mount_point(&d) {
                Ok(true) => prune_mount_dirs.push(d),
                Ok(false) => warn!(
                    "{} holds mounts but is no mount point; container creates will see all of them",
                    d.display()
                ),
                Err(e) => warn!("cannot make {} a mount point: {e}", d.display()),
            }
        }
        // Run shims and our runtime from a read-only bind mount of the
        // binary: a container cannot rewrite it via /proc/<pid>/exe, and
        // berth-runtime need not copy itself into a sealed memfd per create.
        let ro_binary = cfg.exec_root.join("bin").join("berth-runtime");
        match berth_sys::mount::bind_file_readonly(&cfg.shim_binary, &ro_binary) {
            Ok(()) => {
                if cfg.runtime == cfg.shim_binary {
                    cfg.runtime = ro_binary.clone();
                }
                cfg.shim_binary = ro_binary;
            }
            Err(e) => warn!(
                "cannot bind {} read-only ({e}); the runtime will seal itself",
                cfg.shim_binary.display()
            ),
        }
        let image_root = cfg.data_root.join("image");
        let images = tokio::task::spawn_blocking(move || ImageStore::open(&image_root))
            .await
            .map_err(blocking_err)??;
        let volume_store = Arc::new(volumes::VolumeStore::open(&cfg.data_root.join("volumes"))?);
        let net = berth_network::NetworkManager::open(cfg.network.clone()).await?;
        let engine = Arc::new(Engine {
            shims: shim::Launcher::new(&cfg.shim_binary, &cfg.exec_root),
            prune_mount_dirs,
            net,
            volumes: volume_store,
            cfg,
            images: Arc::new(images),
            inner: Mutex::new(Inner::default()),
            execs: exec::Execs::default(),
        });
        engine.restore().await?;
        engine.reconcile_networks().await;
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_root.join("containers").join(id)
    }

    fn bundle_dir(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("containers").join(id)
    }

    fn shim_socket(&self, id: &str) -> PathBuf {
        self.cfg
            .exec_root
            .join("shim")
            .join(format!("{}.sock", &id[..12]))
    }

    fn exit_file(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("exit.json")
    }

    async fn restore(self: &Arc<Self>) -> Result<()> {
        let dir = self.cfg.data_root.join("containers");
        let mut records = Vec::new();
        for ent in std::fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let ent = ent.ctx(|| format!("read {}", dir.display()))?;
            match ContainerRecord::load(&ent.path()) {
                Ok(r) => records.push(r),
                Err(e) => warn!("skipping container {}: {e}", ent.path().display()),
            }
        }
        let mut reattach = Vec::new();
        let mut finish_remove = Vec::new();
        {
            let mut inner = self.inner.lock().unwrap();
            for rec in records {
                let id = rec.id.clone();
                if rec.is_running() {
                    reattach.push(id.clone());
                }
                if rec.state.status == Status::Removing {
                    finish_remove.push(id.clone());
                }
                inner.names.insert(rec.name.clone(), id.clone());
                inner.containers.insert(
                    id,
                    Entry {
                        rec,
                        subs: vec![],
                        events: watch::channel(Events::default()).0,
                        busy: false,
                    },
                );
            }
        }
        for id in reattach {
            let socket = self.shim_socket(&id);
            let attached = async {
                let mut conn = ShimConn::connect(&socket).await?;
                conn.send(&Request::Attach {
                    stdout: true,
                    stderr: true,
                    stdin: false,
                })
                .await?;
                Ok::<_, std::io::Error>(conn)
            }
            .await;
            match attached {
                Ok(conn) => {
                    info!(container = %id, "reconnected to shim");
                    let engine = self.clone();
                    tokio::spawn(async move { engine.monitor(id, conn, None).await });
                }
                Err(_) => self.finish_without_shim(&id).await,
            }
        }
        for id in finish_remove {
            let _ = self.remove(&id, true).await;
        }
        Ok(())
    }

    // ---------- lookup ----------

    /// Full id for a full id, a name (with or without `/`) or a unique prefix.
    pub fn resolve_id(&self, key: &str) -> Result<String> {
        let inner = self.inner.lock().unwrap();
        let name = key.strip_prefix('/').unwrap_or(key);
        if inner.containers.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(id) = inner.names.get(name) {
            return Ok(id.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let found: Vec<&String> = inner
                .containers
                .keys()
                .filter(|id| id.starts_with(key))
                .collect();
            match found.len() {
                1 => return Ok(found[0].clone()),
                n if n > 1 => {
                    return Err(Error::InvalidArgument(format!(
                        "multiple IDs found with provided prefix: {key}"
                    )))
                }
                _ => {}
            }
        }
        Err(Error::NoSuchContainer(key.to_string()))
    }

    fn with_entry<T>(&self, id: &str, f: impl FnOnce(&mut Entry) -> T) -> Result<T> {
        let mut inner = self.inner.lock().unwrap();
        let e = inner
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
        Ok(f(e))
    }

    pub fn record(&self, key: &str) -> Result<ContainerRecord> {
        let id = self.resolve_id(key)?;
        self.with_entry(&id, |e| e.rec.clone())
    }

    fn persist(&self, rec: &ContainerRecord) -> Result<()> {
        rec.save(&self.container_dir(&rec.id))
    }

    /// Apply `f` to the record, persist it, return a copy.
    fn update(&self, id: &str, f: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord> {
        let rec = self.with_entry(id, |e| {
            f(&mut e.rec);
            e.rec.clone()
        })?;
        self.persist(&rec)?;
        Ok(rec)
    }

    // ---------- images ----------

    /// `POST /images/load`: a `docker save` tarball. Returns loaded tags
    /// (or ids for untagged images).
    pub async fn load_images(&self, mut tar: Box<dyn std::io::Read + Send>) -> Result<Vec<String>> {
        let images = self.images.clone();
        let loaded = tokio::task::spawn_blocking(move || images.load(&mut tar))
            .await
            .map_err(blocking_err)??;
        Ok(loaded
            .into_iter()
            .flat_map(|l| {
                if l.repo_tags.is_empty() {
                    vec![format!("Loaded image ID: {}", l.id)]
                } else {
                    // Per tag, dockerd's note when it moves from another image.
                    let mut lines = Vec::new();
                    for t in l.repo_tags {
                        if let Some((_, old)) = l.replaced.iter().find(|(r, _)| *r == t) {
                            lines.push(format!(
                                "The image {t} already exists, renaming the old one with ID {old} to empty string"
                            ));
                        }
                        lines.push(format!("Loaded image: {t}"));
                    }
                    lines
                }
            })
            .collect())
    }

    /// `POST /images/create?fromSrc=-`: a rootfs tarball as a new image.
    pub async fn import_image(
        &self,
        mut tar: Box<dyn std::io::Read + Send>,
        reference: Option<String>,
        message: Option<String>,
        changes: Vec<String>,
    ) -> Result<String> {
        let images = self.images.clone();
        let opts = berth_image::ImportOptions { message, changes };
        tokio::task::spawn_blocking(move || images.import(&mut tar, reference.as_deref(), &opts))
            .await
            .map_err(blocking_err)?
            .map_err(Error::from)
    }

    /// `GET /images/json`. `reference` patterns (Docker's `reference`
    /// filter, glob on the familiar name) keep matching images and only
    /// their matching tags; `dangling` keeps untagged (true) or tagged
    /// (false) images.
    pub async fn list_images(&self, query: ImageListQuery) -> Result<Vec<ImageSummary>> {
        let images = self.images.clone();
        let list = tokio::task::spawn_blocking(move || images.list())
            .await
            .map_err(blocking_err)??;
        // Newest first, by the full-precision creation time (two imports in
        // the same second keep their order).
        let mut list = list;
        let precise = |c: &str| {
            chrono::DateTime::parse_from_rfc3339(c)
                .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
                .unwrap_or(0)
        };
        list.sort_by(|a, b| {
            precise(&b.created)
                .cmp(&precise(&a.created))
                .then(a.id.cmp(&b.id))
        });
        let mut out = Vec::new();
        for r in list {
            let mut tags = r.repo_tags;
            if !query.references.is_empty() {
                tags.retain(|t| query.references.iter().any(|p| reference_matches(p, t)));
                if tags.is_empty() {
                    continue;
                }
            }
            if let Some(d) = query.dangling {
                if d != tags.is_empty() {
                    continue;
                }
            }
            let labels = r.config.labels.filter(|l| !l.is_empty());
            out.push(ImageSummary {
                created: chrono::DateTime::parse_from_rfc3339(&r.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                id: r.id,
                parent_id: String::new(),
                repo_tags: tags,
                repo_digests: if query.null_empty_collections && r.repo_digests.is_empty() {
                    None
                } else {
                    Some(r.repo_digests)
                },
                size: r.size,
                shared_size: -1,
                virtual_size: query.legacy_virtual_size.then_some(r.size),
                labels: if query.null_empty_collections {
                    labels
                } else {
                    Some(labels.unwrap_or_default())
                },
                containers: -1,
            });
        }
        self.refine_image_list(&query, &mut out).await?;
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub async fn inspect_image(&self, name: &str, legacy_virtual_size: bool) -> Result<Value> {
        let images = self.images.clone();
        let name = name.to_string();
        let (rec, blob, layers) = tokio::task::spawn_blocking(move || {
            let rec = images.resolve(&name)?;
            let blob = images.config_blob(&rec.id)?;
            let layers = images.layer_dirs(&rec.id)?;
            Ok::<_, berth_image::Error>((rec, blob, layers))
        })
        .await
        .map_err(blocking_err)??;
        let cfg: Value = serde_json::from_slice(&blob).unwrap_or(Value::Null);
        let mut dirs: Vec<String> = layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        let upper = dirs.first().cloned().unwrap_or_default();
        let lower = if dirs.len() > 1 {
            dirs.split_off(1).join(":")
        } else {
            String::new()
        };
        let mut graph = serde_json::Map::new();
        if !lower.is_empty() {
            graph.insert("LowerDir".into(), json!(lower));
        }
        graph.insert("MergedDir".into(), json!(upper.replace("/diff", "/merged")));
        graph.insert("UpperDir".into(), json!(upper));
        graph.insert("WorkDir".into(), json!(upper.replace("/diff", "/work")));
        let mut v = json!({
            "Id": rec.id,
            "RepoTags": rec.repo_tags,
            "RepoDigests": rec.repo_digests,
            "Parent": match self.image_parent(&rec.id).await {
                Some(p) => json!(p),
                None => cfg.get("parent").cloned().unwrap_or(json!("")),
            },
            "Comment": image_cmds::inspect_comment(&cfg),
            "Created": cfg.get("created").cloned().unwrap_or(json!(rec.created)),
            "Container": cfg.get("container").cloned().unwrap_or(json!("")),
            "ContainerConfig": full_config(cfg.get("container_config")),
            "DockerVersion": cfg.get("docker_version").cloned().unwrap_or(json!("")),
            "Author": cfg.get("author").cloned().unwrap_or(json!("")),
            "Config": full_config(cfg.get("config")),
            "Architecture": rec.architecture,
            "Os": rec.os,
            "Size": rec.size,
            "GraphDriver": {"Data": graph, "Name": "overlay2"},
            "RootFS": {"Type": "layers", "Layers": rec.rootfs_layers},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        });
        if let Some(variant) = cfg.get("variant") {
            v["Variant"] = variant.clone();
        }
        if legacy_virtual_size {
            v["VirtualSize"] = json!(rec.size);
        }
        Ok(v)
    }

    pub fn image_count(&self) -> usize {
        self.images.list().map(|l| l.len()).unwrap_or(0)
    }

    // ---------- containers ----------

    pub async fn create(
        self: &Arc<Self>,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let mut body = body;
        if body.config.image.is_empty() {
            return Err(Error::InvalidArgument("No image specified".into()));
        }
        let images = self.images.clone();
        let image_ref = body.config.image.clone();
        let image = tokio::task::spawn_blocking(move || images.resolve(&image_ref))
            .await
            .map_err(blocking_err)??;

        // Entrypoint and Cmd: an Entrypoint given at create time drops the
        // image's Cmd (Docker semantics).
        let entrypoint = match body.config.entrypoint.clone() {
            Some(e) => e
                .into_vec()
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
            None => image.config.entrypoint.clone().unwrap_or_default(),
        };
        let cmd = match body.config.cmd.clone() {
            Some(c) => c.into_vec(),
            None if body.config.entrypoint.is_some() => vec![],
            None => image.config.cmd.clone().unwrap_or_default(),
        };
        let argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(Error::InvalidArgument("No command specified".into()));
        }
        let warnings = spec::verify_host_config(&mut body.host_config)?;
        networks::merge_exposed(&mut body, image.config.exposed_ports.as_ref());
        let attachments = self.plan_networks(&mut body)?;
        for mode in [&body.host_config.pid_mode, &body.host_config.ipc_mode] {
            if let Some(other) = mode.strip_prefix("container:") {
                // 400 like dockerd (a 404 would make clients try a pull).
                self.resolve_id(other)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            }
        }
        if body.host_config.uts_mode == "host" && !body.config.hostname.is_empty() {
            return Err(Error::InvalidArgument(
                "Conflicting options: hostname and the UTS mode".into(),
            ));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                if !names::valid_name(&n) {
                    return Err(Error::InvalidArgument(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n
            }
            None => loop {
                let n = names::random_name();
                if !self.inner.lock().unwrap().names.contains_key(&n) {
                    break n;
                }
            },
        };
        let id = loop {
            let bytes: [u8; 32] = rand::random();
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            // Docker never hands out all-numeric short ids.
            if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
                break id;
            }
        };
        {
            let mut inner = self.inner.lock().unwrap();
            if let Some(other) = inner.names.get(&name) {
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            inner.names.insert(name.clone(), id.clone());
        }
        let created = self.create_inner(&id, &name, &mut body, image, argv).await;
        if created.is_err() {
            self.inner.lock().unwrap().names.remove(&name);
            let _ = std::fs::remove_dir_all(self.container_dir(&id));
            let images = self.images.clone();
            let key = id.clone();
            let _ = tokio::task::spawn_blocking(move || images.remove_snapshot(&key)).await;
        }
        created?;
        self.save_attachments(&id, &attachments)?;
        info!(container = %id, %name, "created");
        Ok(ContainerCreateResponse { id, warnings })
    }

    async fn create_inner(
        &self,
        id: &str,
        name: &str,
        body: &mut ContainerCreateBody,
        image: berth_image::ImageRecord,
        argv: Vec<String>,
    ) -> Result<()> {
        let dir = self.container_dir(id);
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let images = self.images.clone();
        let (key, image_id) = (id.to_string(), image.id.clone());
        let mounts = tokio::task::spawn_blocking(move || images.prepare_snapshot(&key, &image_id))
            .await
            .map_err(blocking_err)??;

        // Image defaults merged into the container config, as inspect shows it.
        let cfg = &mut body.config;
        // dockerd's order: the container's own values first, then the
        // image's values for the keys it does not set.
        let mut env = cfg.env.take().unwrap_or_default();
        let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
        let own: std::collections::HashSet<String> = env.iter().map(|e| key(e)).collect();
        for e in image.config.env.clone().unwrap_or_default() {
            if !own.contains(&key(&e)) {
                env.push(e);
            }
        }
        cfg.env = Some(env);
        if cfg.working_dir.is_empty() {
            cfg.working_dir = image.config.working_dir.clone().unwrap_or_default();
        }
        if cfg.user.is_empty() {
            cfg.user = image.config.user.clone().unwrap_or_default();
        }
        if cfg.hostname.is_empty() {
            cfg.hostname = id[..12].to_string();
        }
        if cfg.stop_signal.is_none() {
            cfg.stop_signal = image.config.stop_signal.clone();
        }
        if cfg.labels.is_none() {
            cfg.labels = image.config.labels.clone().or_else(|| Some(HashMap::new()));
        }
        if cfg.cmd.is_none() && cfg.entrypoint.is_none() {
            cfg.cmd = image
                .config
                .cmd
                .clone()
                .map(berth_types::api::StrOrVec::Many);
        }
        if cfg.entrypoint.is_none() {
            cfg.entrypoint = image
                .config
                .entrypoint
                .clone()
                .map(berth_types::api::StrOrVec::Many);
        }
        // Docker: without --memory-swap, swap may add as much as memory.
        if body.host_config.memory > 0 && body.host_config.memory_swap == 0 {
            body.host_config.memory_swap = 2 * body.host_config.memory;
        }
        if body.host_config.network_mode.is_empty() {
            body.host_config.network_mode = "default".into();
        }
        self.fill_host_defaults(&mut body.host_config);
        if body
            .config
            .volumes
            .as_ref()
            .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()))
        {
            body.config.volumes = None;
        }

        let rec = ContainerRecord {
            id: id.to_string(),
            name: name.to_string(),
            created: now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config: body.config.clone(),
            host_config: body.host_config.clone(),
            image_id: image.id.clone(),
            state: StateRecord::default(),
            rootfs_mounts: mounts,
            restart_count: 0,
            log_path: dir.join(format!("{id}-json.log")),
            hostname_path: dir.join("hostname"),
            hosts_path: dir.join("hosts"),
            resolv_conf_path: dir.join("resolv.conf"),
            mount_points: vec![],
        };
        // Validate user and spec now so `create` reports bad input, not `start`.
        self.build_spec_for(&rec, false)?;
        let mut rec = rec;
        let image_volumes = image
            .config
            .volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        self.create_mount_points(id, body, image_volumes, &mut rec)
            .await?;
        self.persist(&rec)?;
        self.inner.lock().unwrap().containers.insert(
            id.to_string(),
            Entry {
                rec,
                subs: vec![],
                events: watch::channel(Events::default()).0,
                busy: false,
            },
        );
        Ok(())
    }

    /// The values dockerd fills in at create time, as inspect shows them.
    fn fill_host_defaults(&self, h: &mut berth_types::api::HostConfig) {
        if h.log_config.kind.is_empty() {
            h.log_config.kind = "json-file".into();
        }
        if h.ipc_mode.is_empty() {
            h.ipc_mode = "private".into();
        }
        if h.cgroupns_mode.is_empty() {
            // dockerd's default: a private cgroup namespace on cgroup v2,
            // the host's on v1 (the container sees /sys/fs/cgroup/<ctl> as
            // binds of its own cgroups, as runc sets it up there).
            h.cgroupns_mode = if berth_sys::cgroup::is_unified() {
                "private"
            } else {
                "host"
            }
            .into();
        }
        if h.shm_size == 0 {
            h.shm_size = 64 << 20;
        }
        // 0 and -1 both mean "no limit"; dockerd reports null.
        if h.pids_limit.is_some_and(|p| p <= 0) {
            h.pids_limit = None;
        }
        h.console_size.get_or_insert([0, 0]);
        // -1 means "unset" (the docker CLI sends it); dockerd reports null.
        if h.memory_swappiness == Some(-1) {
            h.memory_swappiness = None;
        }
        if h.masked_paths.is_none() {
            h.masked_paths = Some(if h.privileged {
                vec![]
            } else {
                spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect()
            });
        }
        if h.readonly_paths.is_none() {
            h.readonly_paths = Some(if h.privileged {
                vec![]
            } else {
                spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect()
            });
        }
    }

    fn build_spec(&self, rec: &ContainerRecord) -> Result<Value> {
        self.build_spec_for(rec, true)
    }

    /// Namespaces of `--pid`/`--ipc container:<id>` (only checked for
    /// existence at create; joined at start) and the /dev/shm to share.
    fn joined_namespaces(
        &self,
        rec: &ContainerRecord,
        starting: bool,
    ) -> Result<(spec::JoinedNamespaces, Option<String>)> {
        let mut joined = Vec::new();
        let mut shm = None;
        for (kind, mode) in [
            ("pid", &rec.host_config.pid_mode),
            ("ipc", &rec.host_config.ipc_mode),
        ] {
            let Some(other) = mode.strip_prefix("container:") else {
                continue;
            };
            let other = self.record(other)?;
            if kind == "ipc"
                && other.host_config.ipc_mode != "shareable"
                && other.host_config.ipc_mode != "host"
            {
                return Err(Error::Conflict(
                    "non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                        .into(),
                ));
            }
            if !starting {
                continue;
            }
            if !other.is_running() || other.state.pid <= 0 {
                return Err(Error::Conflict(format!(
                    "cannot join {} of a non running container: {}",
                    kind.to_uppercase(),
                    other.id
                )));
            }
            joined.push((kind, format!("/proc/{}/ns/{kind}", other.state.pid)));
            if kind == "ipc" {
                shm = Some(format!("/proc/{}/root/dev/shm", other.state.pid));
            }
        }
        if let Some(p) = self.network_namespace(rec, starting)? {
            joined.push(("network", p));
        }
        Ok((joined, shm))
    }

    fn build_spec_for(&self, rec: &ContainerRecord, starting: bool) -> Result<Value> {
        let (joined, shm_source) = self.joined_namespaces(rec, starting)?;
        let init = if rec.host_config.init == Some(true) {
            Some(find_init().ok_or_else(|| {
                Error::InvalidArgument(
                    "exec: \"docker-init\": executable file not found in $PATH".into(),
                )
            })?)
        } else {
            None
        };
        let layers: Vec<PathBuf> = rec
            .rootfs_mounts
            .iter()
            .flat_map(|m| m.options.iter())
            .filter_map(|o| o.strip_prefix("lowerdir="))
            .flat_map(|l| l.split(':').map(PathBuf::from).collect::<Vec<_>>())
            .collect();
        let passwd = user::read_image_file(&layers, "etc/passwd");
        let group = user::read_image_file(&layers, "etc/group");
        let u = user::resolve(&rec.config.user, passwd.as_deref(), group.as_deref())?;
        let mut additional_gids = u.additional_gids.clone();
        for g in rec.host_config.group_add.iter().flatten() {
            let gid = user::resolve_group(g, group.as_deref())?;
            if !additional_gids.contains(&gid) {
                additional_gids.push(gid);
            }
        }
        let mut env = rec.config.env.clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            );
        }
        env.insert(
            1.min(env.len()),
            format!("HOSTNAME={}", rec.config.hostname),
        );
        env.extend(self.link_env(rec));
        if rec.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!(
                "HOME={}",
                if u.home.is_empty() { "/" } else { &u.home }
            ));
        }
        let args: Vec<String> = std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect();
        let cwd = if rec.config.working_dir.is_empty() {
            "/"
        } else {
            rec.config.working_dir.as_str()
        };
        if !cwd.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "the working directory '{cwd}' is invalid, it needs to be an absolute path"
            )));
        }
        let etc_files = [
            ("/etc/hostname", rec.hostname_path.as_path()),
            ("/etc/hosts", rec.hosts_path.as_path()),
            ("/etc/resolv.conf", rec.resolv_conf_path.as_path()),
        ];
        let mut spec = spec::generate(&spec::SpecInput {
            id: &rec.id,
            hostname: &rec.config.hostname,
            args: &args,
            env: &env,
            cwd,
            uid: u.uid,
            gid: u.gid,
            additional_gids: &additional_gids,
            config: &rec.config,
            host: &rec.host_config,
            etc_files: &etc_files,
            nofile_limit: nofile_hard_limit(),
            joined: &joined,
            shm_source: shm_source.as_deref(),
            init: init.as_deref(),
        })?;
        storage::apply_mounts(&mut spec, &rec.mount_points);
        Ok(spec)
    }

    fn write_etc_files(&self, rec: &ContainerRecord) -> Result<()> {
        let [hostname, hosts, resolv] = self.network_etc_files(rec)?;
        for (path, data) in [
            (&rec.hostname_path, hostname),
            (&rec.hosts_path, hosts),
            (&rec.resolv_conf_path, resolv),
        ] {
            berth_sys::fs::write_volatile(path, data.as_bytes(), 0o644)
                .ctx(|| format!("write {}", path.display()))?;
        }
        Ok(())
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let id = self.resolve_id(key)?;
        let rec = self.with_entry(&id, |e| {
            if e.rec.is_running() {
                return Err(Error::NotModified(format!(
                    "container {} already started",
                    e.rec.id
                )));
            }
            if e.busy || e.rec.state.status == Status::Removing {
                return Err(Error::Conflict(format!("container {} is busy", e.rec.id)));
            }
            e.busy = true;
            Ok(e.rec.clone())
        })??;
        let result = self.start_inner(&rec).await;
        if result.is_err() {
            self.network_teardown(&id).await;
        }
        let _ = self.with_entry(&id, |e| e.busy = false);
        if result.is_err() && rec.host_config.auto_remove {
            let _ = self.remove_with(&id, true, true).await;
            return result;
        }
        if let Err(e) = &result {
            let msg = e.to_string();
            let code = if msg.contains("executable file not found")
                || msg.contains("no such file or directory")
            {
                127
            } else {
                126
            };
            let _ = self.update(&id, |r| {
                r.state.status = if r.state.started_at == container::ZERO_TIME {
                    Status::Created
                } else {
                    Status::Exited
                };
                r.state.exit_code = code;
                r.state.error = msg.clone();
            });
        }
        result
    }

    async fn start_inner(self: &Arc<Self>, rec: &ContainerRecord) -> Result<()> {
        let id = rec.id.as_str();
        self.wait_runtime_state_gone(id).await;
        self.network_setup(rec).await?;
        self.prepare_mount_points(rec)?;
        let spec = self.build_spec(rec)?;
        self.write_etc_files(rec)?;
        let bundle = self.bundle_dir(id);
        std::fs::create_dir_all(&bundle).ctx(|| format!("create {}", bundle.display()))?;
        berth_sys::fs::write_volatile(
            &bundle.join("config.json"),
            &serde_json::to_vec(&spec).expect("spec serializes"),
            0o600,
        )
        .ctx(|| "write config.json".into())?;
        let _ = std::fs::remove_file(self.exit_file(id));
        let shim_cfg = ShimConfig {
            id: id.to_string(),
            bundle: bundle.clone(),
            rootfs_mounts: rec.rootfs_mounts.clone(),
            runtime: self.cfg.runtime.clone(),
            runtime_root: self.cfg.exec_root.join("runtime"),
            log_path: rec.log_path.clone(),
            exit_file: self.exit_file(id),
            socket: self.shim_socket(id),
            open_stdin: rec.config.open_stdin,
            prune_mounts: self.prune_mount_dirs.clone(),
        };
        let cfg_path = bundle.join("shim.json");
        shim::write_config(&cfg_path, &shim_cfg)?;
        let ready = match self.shims.spawn(&cfg_path).await {
            Ok(r) => r,
            Err(e) => {
                let _ = berth_sys::mount::unmount_all(&bundle.join("rootfs"));
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(match e {
                    Error::Internal(m) => runtime_create_error(&m, &rec.path),
                    other => other,
                });
            }
        };
        // In memory only: `Started` below saves the record (restore looks
        // at running containers only, so nothing reads these from disk
        // before that).
        self.with_entry(id, |e| {
            e.rec.state.shim_pid = ready.shim_pid;
            e.rec.state.pid = ready.pid;
            e.rec.state.error.clear();
        })?;
        let mut conn = ShimConn::connect(&shim_cfg.socket)
            .await
            .map_err(|e| Error::Internal(format!("connect to shim: {e}")))?;
        conn.send(&Request::Attach {
            stdout: true,
            stderr: true,
            stdin: false,
        })
        .await
        .and(conn.send(&Request::Start).await)
        .map_err(|e| Error::Internal(format!("start container: {e}")))?;
        let (tx, rx) = oneshot::channel();
        let engine = self.clone();
        let owned = id.to_string();
        tokio::spawn(async move { engine.monitor(owned, conn, Some(tx)).await });
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(Error::Internal(msg)),
            Err(_) => Err(Error::Internal("shim went away during start".into())),
        }
    }

    /// Reads one shim connection until the container exits.
    async fn monitor(
        self: Arc<Self>,
        id: String,
        mut conn: ShimConn,
        mut started: Option<oneshot::Sender<std::result::Result<(), String>>>,
    ) {
        let mut exit = None;
        loop {
            match conn.recv().await {
                Ok(Some(Frame::Stdout(b))) => self.publish(&id, Output::Stdout(b)),
                Ok(Some(Frame::Stderr(b))) => self.publish(&id, Output::Stderr(b)),
                Ok(Some(Frame::Control(Response::Started { pid }))) => {
                    let _ = self.update(&id, |r| {
                        r.state.status = Status::Running;
                        r.state.pid = pid;
                        r.state.started_at = now_rfc3339();
                        r.state.finished_at = container::ZERO_TIME.into();
                        r.state.exit_code = 0;
                        r.state.oom_killed = false;
                    });
                    if let Some(tx) = started.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Ok(Some(Frame::Control(Response::Error { message }))) => {
                    if let Some(tx) = started.take() {
                        let _ = tx.send(Err(message));
                        return;
                    }
                    warn!(container = %id, "shim error: {message}");
                }
                Ok(Some(Frame::Control(Response::Exited(st)))) => {
                    exit = Some(st);
                    break;
                }
                Ok(Some(Frame::Control(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    warn!(container = %id, "shim connection: {e}");
                    break;
                }
            }
        }
        let exit = exit.or_else(|| self.read_exit_file(&id));
        if let Some(tx) = started.take() {
            // Exited before the Started reply arrived: it did start.
            let _ = self.update(&id, |r| {
                r.state.started_at = now_rfc3339();
            });
            let _ = tx.send(Ok(()));
        }
        self.on_exit(&id, exit).await;
    }

    fn publish(&self, id: &str, out: Output) {
        let _ = self.with_entry(id, |e| e.subs.retain(|s| s.send(out.clone()).is_ok()));
    }

    fn read_exit_file(&self, id: &str) -> Option<ExitStatus> {
        let data = std::fs::read(self.exit_file(id)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// A running container whose shim is gone: take the exit file, or
    /// record that the outcome is unknown.
    async fn finish_without_shim(self: &Arc<Self>, id: &str) {
        let exit = self.read_exit_file(id);
        let _ = berth_sys::mount::unmount_all(&self.bundle_dir(id).join("rootfs"));
        self.on_exit(id, exit).await;
    }

    async fn on_exit(self: &Arc<Self>, id: &str, exit: Option<ExitStatus>) {
        self.network_teardown(id).await;
        let (code, finished, oom, err) = match exit {
            Some(st) => (st.exit_code, st.finished_at, st.oom_killed, String::new()),
            None => (
                255,
                now_rfc3339(),
                false,
                "container shim exited unexpectedly".to_string(),
            ),
        };
        let _ = std::fs::remove_dir_all(self.bundle_dir(id));
        let rec = self.update(id, |r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.shim_pid = 0;
            r.state.exit_code = code;
            r.state.finished_at = finished;
            r.state.oom_killed = oom;
            r.state.error = err;
        });
        let _ = self.with_entry(id, |e| {
            e.subs.clear();
            e.events.send_modify(|ev| {
                ev.exits += 1;
                ev.exit_code = code;
            });
        });
        info!(container = %id, exit_code = code, "exited");
        if let Ok(rec) = rec {
            if rec.host_config.auto_remove {
                if let Err(e) = self.remove_with(id, false, true).await {
                    warn!(container = %id, "auto-remove: {e}");
                }
            }
        }
    }

    /// Subscribe to a container's output (attach). For a created container
    /// the stream begins at start; it ends when the container exits.
    pub fn attach(&self, key: &str) -> Result<(mpsc::UnboundedReceiver<Output>, bool)> {
        let id = self.resolve_id(key)?;
        self.with_entry(&id, |e| {
            // Like dockerd: attaching to a created or stopped container waits
            // for its next start (`docker start -a`).
            if e.rec.state.status == Status::Removing {
                return Err(Error::Conflict(format!(
                    "container {} is marked for removal",
                    e.rec.id
                )));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            e.subs.push(tx);
            Ok((rx, e.rec.config.tty))
        })?
    }

    /// `POST /containers/{id}/wait`: registers the waiter now (so an exit
    /// right after this call is not missed) and returns a future that
    /// resolves when the condition is met.
    pub fn waiter(
        &self,
        key: &str,
        cond: WaitCondition,
    ) -> Result<impl std::future::Future<Output = WaitResponse> + Send + 'static> {
        let id = self.resolve_id(key)?;
        let (mut rx, status, exit_code) = self.with_entry(&id, |e| {
            (
                e.events.subscribe(),
                e.rec.state.status,
                e.rec.state.exit_code,
            )
        })?;
        let start_exits = rx.borrow().exits;
        let already = cond == WaitCondition::NotRunning
            && !matches!(
                status,
                Status::Running | Status::Paused | Status::Restarting
            );
        Ok(async move {
            if already {
                return WaitResponse {
                    status_code: exit_code as i64,
                    error: None,
                };
            }
            loop {
                let done = {
                    let ev = rx.borrow_and_update();
                    match cond {
                        WaitCondition::Removed => ev.removed,
                        _ => ev.exits > start_exits,
                    }
                };
                if done {
                    let ev = rx.borrow().clone();
                    return WaitResponse {
                        status_code: ev.exit_code as i64,
                        error: None,
                    };
                }
                if rx.changed().await.is_err() {
                    let ev = rx.borrow().clone();
                    return WaitResponse {
                        status_code: ev.exit_code as i64,
                        error: (!ev.removed && cond != WaitCondition::Removed).then(|| WaitError {
                            message: "container removed".into(),
                        }),
                    };
                }
            }
        })
    }

    /// `POST /containers/{id}/kill`.
    /// Errors carry dockerd's `Cannot kill container: KEY: ` prefix.
    pub async fn kill(&self, key: &str, signal: &str) -> Result<()> {
        let wrap = |e: Error| match e {
            Error::NoSuchContainer(_) => {
                Error::NotFound(format!("Cannot kill container: {key}: {e}"))
            }
            Error::Conflict(m) => Error::Conflict(format!("Cannot kill container: {key}: {m}")),
            e => e,
        };
        let id = self.resolve_id(key).map_err(wrap)?;
        let sig = parse_signal(signal)?;
        let running = self.with_entry(&id, |e| e.rec.is_running())?;
        if !running {
            return Err(wrap(Error::Conflict(format!(
                "Container {id} is not running"
            ))));
        }
        self.signal(&id, sig).await?;
        // dockerd: SIGKILL is a regular Kill (signal + wait for the exit).
        if sig == 9 {
            self.wait_exit(&id, Some(Duration::from_secs(10))).await;
        }
        Ok(())
    }

    async fn signal(&self, id: &str, sig: i32) -> Result<()> {
        match shim::call(&self.shim_socket(id), &Request::Kill { signal: sig }).await {
            Ok(Response::Error { message }) => Err(Error::Internal(message)),
            Ok(_) => {
                if sig == 9 {
                    self.thaw_if_paused(id).await;
                }
                Ok(())
            }
            // The shim is already gone: the container has exited.
            Err(_) => Ok(()),
        }
    }

    async fn wait_exit(&self, id: &str, timeout: Option<Duration>) -> bool {
        let Ok(mut rx) = self.with_entry(id, |e| e.events.subscribe()) else {
            return true;
        };
        let fut = async {
            loop {
                let running = self.with_entry(id, |e| e.rec.is_running()).unwrap_or(false);
                if !running {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => {
                fut.await;
                true
            }
        }
    }

    /// `POST /containers/{id}/stop`: stop signal, then SIGKILL after the
    /// timeout (default 10 s, or the container's StopTimeout).
    pub async fn stop(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<()> {
        let id = self.resolve_id(key)?;
        let rec = self.with_entry(&id, |e| e.rec.clone())?;
        if !rec.is_running() {
            return Err(Error::NotModified(format!(
                "container {id} is already stopped"
            )));
        }
        let sig = parse_signal(
            signal
                .as_deref()
                .or(rec.config.stop_signal.as_deref())
                .unwrap_or("SIGTERM"),
        )?;
        let t = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        self.signal(&id, sig).await?;
        let graceful = if t < 0 {
            self.wait_exit(&id, None).await
        } else {
            self.wait_exit(&id, Some(Duration::from_secs(t as u64)))
                .await
        };
        if !graceful {
            self.signal(&id, 9).await?;
            if !self.wait_exit(&id, Some(Duration::from_secs(30))).await {
                return Err(Error::Internal(format!(
                    "container {id} did not exit after SIGKILL"
                )));
            }
        }
        // Let the monitor finish bookkeeping (auto-remove may follow).
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, key: &str, force: bool) -> Result<()> {
        self.remove_with(key, force, false).await
    }

    /// `DELETE /containers/{id}?v=`: with `volumes`, also the container's
    /// anonymous volumes (STO-12).
    pub async fn remove_with(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let id = self.resolve_id(key)?;
        let rec = self.with_entry(&id, |e| e.rec.clone())?;
        if rec.is_running() {
            if !force {
                return Err(Error::Conflict(format!(
                    "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
                )));
            }
            self.signal(&id, 9).await?;
            if !self.wait_exit(&id, Some(Duration::from_secs(30))).await {
                return Err(Error::Internal(format!(
                    "could not kill running container {id}, cannot remove"
                )));
            }
        }
        let claimed = self.with_entry(&id, |e| {
            if e.rec.state.status == Status::Removing && e.busy {
                false
            } else {
                e.busy = true;
                e.rec.state.status = Status::Removing;
                true
            }
        })?;
        if !claimed {
            return Err(Error::Conflict(format!(
                "removal of container {id} is already in progress"
            )));
        }
        let rec = self.with_entry(&id, |e| e.rec.clone())?;
        let _ = self.persist(&rec);
        let bundle = self.bundle_dir(&id);
        self.network_teardown(&id).await;
        berth_sys::mount::unmount_all(&bundle.join("rootfs"))
            .ctx(|| format!("unmount rootfs of {id}"))?;
        let images = self.images.clone();
        let key = id.clone();
        tokio::task::spawn_blocking(move || images.remove_snapshot(&key))
            .await
            .map_err(blocking_err)??;
        for d in [bundle, self.container_dir(&id)] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("remove {}", d.display()),
                        source: e,
                    })
                }
            }
        }
        let _ = std::fs::remove_file(self.shim_socket(&id));
        let mut inner = self.inner.lock().unwrap();
        if let Some(e) = inner.containers.remove(&id) {
            inner.names.remove(&e.rec.name);
            e.events.send_modify(|ev| ev.removed = true);
        }
        self.execs.remove_container(&id);
        if volumes {
            drop(inner);
            self.remove_anonymous_volumes(&rec);
        }
        info!(container = %id, "removed");
        Ok(())
    }

    /// `GET /containers/json`.
    pub fn list(&self, all: bool, limit: Option<usize>) -> Vec<ContainerSummary> {
        let now = chrono::Utc::now();
        let mut recs: Vec<ContainerRecord> = {
            let inner = self.inner.lock().unwrap();
            inner.containers.values().map(|e| e.rec.clone()).collect()
        };
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        recs.into_iter()
            .filter(|r| all || r.is_running())
            .take(limit.unwrap_or(usize::MAX))
            .map(|r| {
                let mut s = lifecycle::summary(&r, now);
                (s.ports, s.network_settings) = self.summary_ports(&r);
                s
            })
            .collect()
    }

    /// Counts for `GET /info`: (total, running, paused, stopped).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let inner = self.inner.lock().unwrap();
        let total = inner.containers.len();
        let running = inner
            .containers
            .values()
            .filter(|e| e.rec.state.status == Status::Running)
            .count();
        let paused = inner
            .containers
            .values()
            .filter(|e| e.rec.state.status == Status::Paused)
            .count();
        (total, running, paused, total - running - paused)
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, key: &str) -> Result<Value> {
        let r = self.record(key)?;
        let lower: Vec<&str> = r
            .rootfs_mounts
            .iter()
            .flat_map(|m| m.options.iter())
            .filter_map(|o| o.strip_prefix("lowerdir="))
            .collect();
        let opt = |k: &str| {
            r.rootfs_mounts
                .iter()
                .flat_map(|m| m.options.iter())
                .find_map(|o| o.strip_prefix(k).map(str::to_string))
                .unwrap_or_default()
        };
        let upper = opt("upperdir=");
        // dockerd fills these paths in when the container first starts.
        let never_started = r.state.started_at == container::ZERO_TIME;
        let path = |p: &std::path::Path| {
            if never_started {
                String::new()
            } else {
                p.display().to_string()
            }
        };
        let exec_ids = Some(self.execs.ids_of(&r.id)).filter(|ids| !ids.is_empty());
        Ok(json!({
            "Id": r.id,
            "Created": r.created,
            "Path": r.path,
            "Args": r.args,
            "State": r.api_state(),
            "Image": r.image_id,
            "ResolvConfPath": path(&r.resolv_conf_path),
            "HostnamePath": path(&r.hostname_path),
            "HostsPath": path(&r.hosts_path),
            "LogPath": path(&r.log_path),
            "Name": format!("/{}", r.name),
            "RestartCount": r.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": exec_ids,
            "HostConfig": r.host_config,
            "GraphDriver": {
                "Data": {
                    "LowerDir": lower.join(":"),
                    "MergedDir": self.bundle_dir(&r.id).join("rootfs"),
                    "UpperDir": upper,
                    "WorkDir": opt("workdir="),
                },
                "Name": "overlay2",
            },
            "Mounts": Self::inspect_mounts(&r),
            "Config": r.config,
            "NetworkSettings": self.network_settings(&r),
        }))
    }

    /// Log entries of a container's json-file log.
    pub fn read_logs(&self, key: &str, opts: &LogOptions) -> Result<(Vec<LogEntry>, u64, bool)> {
        let r = self.record(key)?;
        let (entries, offset) = logs::read(&r.log_path, 0, opts)?;
        Ok((entries, offset, r.config.tty))
    }

    /// New log entries after byte `offset`, and whether the container still
    /// runs (for `logs --follow`).
    pub fn read_logs_from(
        &self,
        key: &str,
        offset: u64,
        opts: &LogOptions,
    ) -> Result<(Vec<LogEntry>, u64, bool)> {
        let r = self.record(key)?;
        let (entries, offset) = logs::read(&r.log_path, offset, opts)?;
        Ok((entries, offset, r.is_running()))
    }
}

/// Docker's wording for a failed `create`, so clients map it to exit codes
/// (127: command not found, 126: cannot be run).
fn runtime_create_error(message: &str, command: &str) -> Error {
    let not_found = message.contains("not found in $PATH")
        || message.contains("executable file not found")
        || message.contains("no such file or directory");
    if not_found {
        let what = if command.contains('/') {
            format!("stat {command}: no such file or directory")
        } else {
            "executable file not found in $PATH".to_string()
        };
        return Error::InvalidArgument(format!(
            "failed to create task for container: OCI runtime create failed: unable to start container process: exec: \"{command}\": {what}: unknown"
        ));
    }
    if message.contains("permission denied") {
        return Error::InvalidArgument(format!(
            "failed to create task for container: OCI runtime create failed: unable to start container process: exec: \"{command}\": permission denied: unknown"
        ));
    }
    Error::Internal(message.to_string())
}

/// An image's (container) config with every key Docker's `Config` struct
/// always emits.
fn full_config(v: Option<&Value>) -> Value {
    // Stored configs may carry nulls for string fields; drop them first.
    let mut v = v.cloned().unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    let c: berth_types::api::ContainerConfig = serde_json::from_value(v).unwrap_or_default();
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// Options of `GET /images/json`.
#[derive(Debug, Clone, Default)]
pub struct ImageListQuery {
    /// API < 1.44 still reports `VirtualSize`.
    pub legacy_virtual_size: bool,
    /// API < 1.42 (dockerd 20.10) sends null for empty label maps.
    pub null_empty_collections: bool,
    pub references: Vec<String>,
    pub dangling: Option<bool>,
    /// `all=1`: also untagged images that have children.
    pub all: bool,
    pub labels: Vec<image_cmds::LabelFilter>,
    pub before: Option<String>,
    pub since: Option<String>,
    /// API < 1.43: untagged images report `<none>:<none>` / `<none>@<none>`.
    pub none_placeholders: bool,
}

/// Docker's `reference` filter: a glob (`*`, `?`) against the familiar
/// `repo:tag`, or against the repository alone when it has no tag.
pub fn reference_matches(pattern: &str, tag: &str) -> bool {
    let repo = tag
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(r, _)| r)
        .unwrap_or(tag);
    glob(pattern.as_bytes(), tag.as_bytes()) || glob(pattern.as_bytes(), repo.as_bytes())
}

/// Go `path.Match` for `*` and `?` (`*` does not cross `/`).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob(p, &s[1..])),
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// The init for `--init`: `docker-init` (tini, as dockerd uses) or
/// `tini-static` from $PATH.
fn find_init() -> Option<PathBuf> {
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    ["docker-init", "tini-static"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
    })
}

fn nofile_hard_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard.min(1 << 20))
        .unwrap_or(1024)
}

/// "SIGKILL", "KILL", "kill" or "9" to a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = s.to_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::InvalidArgument(format!("Invalid signal: {s}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_filter() {
        use super::reference_matches as m;
        assert!(m("busybox", "busybox:latest"));
        assert!(m("busybox:latest", "busybox:latest"));
        assert!(!m("busybox:1", "busybox:latest"));
        assert!(m("berth-test/*", "berth-test/busybox:latest"));
        assert!(!m("busy", "busybox:latest"));
        assert!(m("localhost:5000/x", "localhost:5000/x:1"));
    }

    #[test]
    fn signals() {
        assert_eq!(super::parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(super::parse_signal("term").unwrap(), 15);
        assert_eq!(super::parse_signal("2").unwrap(), 2);
        assert!(super::parse_signal("NOPE").is_err());
        assert!(super::parse_signal("0").is_err());
    }
}
