//! The engine's storage services: mount points at create and start, copy-up,
//! the volume API, `cp` (`/containers/{id}/archive`), `export`, `diff` and
//! `system df` (STO-09..STO-16, docs/storage.md).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::archive::{self, ExtractError, ExtractOptions, PathStat, RootSource, ViewBind};
use crate::container::ContainerRecord;
use crate::error::{Error, IoContext, Result};
use crate::volumes::{self, MountPoint};
use crate::{blocking_err, Engine};

/// Chunks of a tar stream produced on a blocking thread.
pub type TarStream = mpsc::Receiver<io::Result<Vec<u8>>>;

/// A `Write` that sends 64 KiB chunks into a channel (blocking).
struct ChanWriter {
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        }
        Ok(())
    }
}

fn not_found_in(path: &str, key: &str) -> Error {
    Error::NotFound(format!("Could not find the file {path} in container {key}"))
}

fn is_not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Volume list filters.
const VOLUME_FILTERS: &[&str] = &["dangling", "name", "label", "driver", "label!"];

fn parse_bool_filter(k: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::InvalidArgument(format!(
            "Invalid filter '{k}=[{v}]'"
        ))),
    }
}

fn label_match(filter: &str, labels: &BTreeMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

impl Engine {
    fn scratch(&self) -> PathBuf {
        let dir = self.cfg.exec_root.join("tmp");
        // Views left by a daemon killed mid-copy are empty directories in
        // the host namespace (their mounts died with their thread): remove
        // them once, before this daemon makes views of its own.
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(|| {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with("view-") {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        });
        dir
    }

    /// Names of the containers using each volume.
    fn volume_users(&self) -> HashMap<String, Vec<String>> {
        let inner = self.inner.lock().unwrap();
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for e in inner.containers.values() {
            for m in &e.rec.mount_points {
                if m.kind == "volume" && !m.name.is_empty() {
                    out.entry(m.name.clone())
                        .or_default()
                        .push(e.rec.id.clone());
                }
            }
        }
        out
    }

    // ---------- create / start ----------

    /// Resolve and set up a new container's mounts: create named and
    /// anonymous volumes, host directories for `-v` binds, and copy image
    /// content into new volumes (STO-10, STO-11, STO-13, STO-15, STO-16).
    pub(crate) async fn create_mount_points(
        &self,
        id: &str,
        body: &berth_types::api::ContainerCreateBody,
        image_volumes: Vec<String>,
        rec: &mut ContainerRecord,
    ) -> Result<()> {
        // The image's VOLUMEs show in the container's Config.Volumes.
        if !image_volumes.is_empty() {
            let mut m = rec
                .config
                .volumes
                .as_ref()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            for v in &image_volumes {
                m.entry(v.clone()).or_insert_with(|| json!({}));
            }
            rec.config.volumes = Some(Value::Object(m));
        }
        let rootfs = rec.rootfs_mounts.clone();
        let mut from = Vec::new();
        for spec in body.host_config.volumes_from.iter().flatten() {
            let (name, rw) = volumes::parse_volumes_from(spec)?;
            // 400 like dockerd (a 404 would make clients try a pull).
            let other = self
                .record(&name)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            from.push((other.mount_points.clone(), rw));
        }
        let plan = volumes::plan(&body.host_config, &body.config, &image_volumes, &from)?;
        let mut points = plan.points;
        // dockerd: a bind from inside its data root, or of a parent of it,
        // defaults to rslave.
        let root = format!("{}/", self.cfg.data_root.display());
        for p in points.iter_mut() {
            let explicit =
                p.mode.split(',').any(|m| {
                    m.ends_with("private") || m.ends_with("shared") || m.ends_with("slave")
                }) || body.host_config.mounts.iter().flatten().any(|m| {
                    m["Target"].as_str().map(|t| t.trim_end_matches('/'))
                        == Some(p.destination.as_str())
                        && !m["BindOptions"]["Propagation"].is_null()
                });
            let related =
                p.source.starts_with(&root) || root.starts_with(&format!("{}/", p.source));
            if p.kind == "bind" && !explicit && related {
                p.propagation = "rslave".into();
            }
        }
        let store = self.volumes.clone();
        let mut created = Vec::new();
        let result = (|| -> Result<()> {
            for (i, p) in points.iter_mut().enumerate() {
                if let Some(w) = plan.wants.get(&i) {
                    let existed = w.name.as_deref().is_some_and(|n| store.get(n).is_ok());
                    let v = store.create(
                        w.name.as_deref(),
                        w.driver
                            .as_deref()
                            .unwrap_or(&body.host_config.volume_driver),
                        w.labels.clone(),
                        w.options.clone(),
                        w.name.is_none(),
                    )?;
                    if !existed {
                        created.push(v.name.clone());
                    }
                    p.name = v.name.clone();
                    p.source = store.data_path(&v.name).display().to_string();
                }
                if p.kind == "bind" && body_bind_source(body, p) {
                    // `-v /host:/ctr` creates a missing host directory.
                    if std::fs::symlink_metadata(&p.source).is_err() {
                        std::fs::create_dir_all(&p.source)
                            .ctx(|| format!("create bind source {}", p.source))?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for n in created {
                let _ = store.remove(&n);
            }
            return Err(e);
        }
        // Copy-up into new volumes, from the container's own rootfs view.
        let copies: Vec<(String, String)> = points
            .iter()
            .filter(|p| p.kind == "volume" && p.copy_data)
            .map(|p| (p.name.clone(), p.destination.clone()))
            .collect();
        if !copies.is_empty() {
            for (n, _) in &copies {
                store.ensure_mounted(n)?;
            }
            let scratch = self.scratch();
            let store2 = store.clone();
            let res = tokio::task::spawn_blocking(move || {
                archive::with_view(
                    &scratch,
                    RootSource::Overlay(rootfs),
                    vec![],
                    move |_, root| {
                        for (n, dest) in &copies {
                            store2
                                .copy_up(n, root, dest, &mut || Ok(()))
                                .map_err(|e| io::Error::other(e.to_string()))?;
                        }
                        Ok(())
                    },
                )
            })
            .await
            .map_err(blocking_err)?;
            if let Err(e) = res {
                for n in created {
                    let _ = store.remove(&n);
                }
                return Err(Error::Internal(format!("container {id}: {e}")));
            }
        }
        rec.mount_points = points;
        Ok(())
    }

    /// Before a start: volumes with mount options mounted, bind sources of
    /// `-v` present (recreated if removed meanwhile), volumes still there.
    pub(crate) fn prepare_mount_points(&self, rec: &ContainerRecord) -> Result<()> {
        for p in &rec.mount_points {
            match p.kind.as_str() {
                "volume" => {
                    self.volumes.get(&p.name)?;
                    self.volumes.ensure_mounted(&p.name)?;
                }
                "bind" => {
                    if std::fs::symlink_metadata(&p.source).is_err() {
                        let from_mount = rec.host_config.mounts.iter().flatten().any(|m| {
                            m["Target"].as_str().map(|t| t.trim_end_matches('/'))
                                == Some(p.destination.as_str())
                        });
                        if from_mount {
                            return Err(Error::InvalidArgument(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                p.source
                            )));
                        }
                        std::fs::create_dir_all(&p.source)
                            .ctx(|| format!("create bind source {}", p.source))?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// After `rm`: remove the container's anonymous volumes no one else
    /// uses (`rm -v`, `--rm`; STO-12).
    pub(crate) fn remove_anonymous_volumes(&self, rec: &ContainerRecord) {
        let users = self.volume_users();
        for p in &rec.mount_points {
            if p.kind == "volume" && p.anonymous && !users.contains_key(&p.name) {
                if let Err(e) = self.volumes.remove(&p.name) {
                    tracing::warn!(volume = %p.name, "remove anonymous volume: {e}");
                }
            }
        }
    }

    // ---------- volume API ----------

    /// `POST /volumes/create`.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<Value> {
        let v = self.volumes.create(name, driver, labels, options, false)?;
        Ok(self.volumes.to_api(&v, None))
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        let v = self.volumes.get(name)?;
        Ok(self.volumes.to_api(&v, None))
    }

    /// `GET /volumes`.
    pub fn volume_list(&self, filters: &HashMap<String, Vec<String>>) -> Result<Value> {
        for k in filters.keys() {
            if !VOLUME_FILTERS.contains(&k.as_str()) {
                return Err(Error::InvalidArgument(format!("Invalid filter '{k}'")));
            }
        }
        let mut dangling = None;
        for v in filters.get("dangling").into_iter().flatten() {
            dangling = Some(parse_bool_filter("dangling", v)?);
        }
        let users = self.volume_users();
        let list: Vec<Value> = self
            .volumes
            .list()
            .into_iter()
            .filter(|v| {
                dangling.is_none_or(|d| d != users.contains_key(&v.name))
                    && filters
                        .get("name")
                        .is_none_or(|ns| ns.iter().any(|n| v.name.contains(n.as_str())))
                    && filters
                        .get("driver")
                        .is_none_or(|ds| ds.iter().any(|d| v.driver == *d))
                    && filters
                        .get("label")
                        .is_none_or(|ls| ls.iter().all(|l| label_match(l, &v.labels)))
                    && filters
                        .get("label!")
                        .is_none_or(|ls| !ls.iter().any(|l| label_match(l, &v.labels)))
            })
            .map(|v| self.volumes.to_api(&v, None))
            .collect();
        Ok(json!({"Volumes": list, "Warnings": null}))
    }

    /// `DELETE /volumes/{name}`: a volume in use is never removed (even
    /// with force, as dockerd); force only ignores a missing volume.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        if let Err(e) = self.volumes.get(name) {
            return if force { Ok(()) } else { Err(e) };
        }
        if let Some(ids) = self.volume_users().get(name) {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                ids.join(", ")
            )));
        }
        self.volumes.remove(name)
    }

    /// `POST /volumes/prune`: unused volumes; only anonymous ones unless
    /// `all=true` (API 1.42+; older APIs prune all unused volumes).
    pub async fn volume_prune(
        &self,
        filters: &HashMap<String, Vec<String>>,
        anonymous_only_default: bool,
    ) -> Result<Value> {
        for k in filters.keys() {
            if !["label", "label!", "all"].contains(&k.as_str()) {
                return Err(Error::InvalidArgument(format!("Invalid filter '{k}'")));
            }
        }
        let mut all = !anonymous_only_default;
        for v in filters.get("all").into_iter().flatten() {
            all = parse_bool_filter("all", v)?;
        }
        let users = self.volume_users();
        let mut deleted = Vec::new();
        let mut space = 0u64;
        for v in self.volumes.list() {
            if users.contains_key(&v.name) || (!all && !v.anonymous) {
                continue;
            }
            if !filters
                .get("label")
                .is_none_or(|ls| ls.iter().all(|l| label_match(l, &v.labels)))
                || !filters
                    .get("label!")
                    .is_none_or(|ls| !ls.iter().any(|l| label_match(l, &v.labels)))
            {
                continue;
            }
            let data = self.volumes.data_path(&v.name);
            let size = tokio::task::spawn_blocking(move || archive::disk_usage(&data))
                .await
                .unwrap_or(0);
            match self.volumes.remove(&v.name) {
                Ok(()) => {
                    space += size;
                    deleted.push(v.name);
                }
                Err(e) => tracing::warn!(volume = %v.name, "prune: {e}"),
            }
        }
        Ok(
            json!({"VolumesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": space}),
        )
    }

    // ---------- archive / export / diff ----------

    /// The filesystem a `cp`/`export` sees: the mounted rootfs of a running
    /// container (or its overlay, mounted privately, when stopped), plus
    /// its volumes and binds unless `rootfs_only`.
    fn view_of(
        &self,
        rec: &ContainerRecord,
        rootfs_only: bool,
        writable: bool,
    ) -> (RootSource, Vec<ViewBind>) {
        let mounted = self.bundle_dir(&rec.id).join("rootfs");
        let running_root = rec.is_running()
            && berth_sys::mount::mounts_under(&mounted)
                .map(|m| m.iter().any(|p| Path::new(p) == mounted))
                .unwrap_or(false);
        let root = if running_root {
            RootSource::Bind(mounted)
        } else if writable {
            RootSource::Overlay(rec.rootfs_mounts.clone())
        } else {
            // Readers of a stopped container get a read-only overlay with
            // the upper dir as the top lower layer: no workdir, so a start
            // meanwhile never shares one with us.
            RootSource::Overlay(readonly_overlay(&rec.rootfs_mounts))
        };
        let binds = if rootfs_only {
            vec![]
        } else {
            rec.mount_points
                .iter()
                .filter(|p| p.kind != "tmpfs" && !p.source.is_empty())
                .map(|p| ViewBind {
                    source: PathBuf::from(&p.source),
                    destination: p.destination.clone(),
                    readonly: !p.rw,
                })
                .chain(
                    [
                        ("/etc/hostname", &rec.hostname_path),
                        ("/etc/hosts", &rec.hosts_path),
                        ("/etc/resolv.conf", &rec.resolv_conf_path),
                    ]
                    .into_iter()
                    .filter(|(d, s)| {
                        s.is_file() && !rec.mount_points.iter().any(|p| p.destination == *d)
                    })
                    .map(|(d, s)| ViewBind {
                        source: s.clone(),
                        destination: d.to_string(),
                        readonly: false,
                    }),
                )
                .collect()
        };
        (root, binds)
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let rec = self.record(key)?;
        let (root, binds) = self.view_of(&rec, false, false);
        let scratch = self.scratch();
        let p = path.to_string();
        let res = tokio::task::spawn_blocking(move || {
            archive::with_view(&scratch, root, binds, move |rp, fd| {
                archive::stat_path(rp, fd, &p)
            })
        })
        .await
        .map_err(blocking_err)?;
        res.map_err(|e| {
            if is_not_found(&e) {
                not_found_in(path, key)
            } else {
                Error::Internal(e.to_string())
            }
        })
    }

    /// `GET /containers/{id}/archive`: the stat, then the tar stream.
    pub async fn archive_get(&self, key: &str, path: &str) -> Result<(PathStat, TarStream)> {
        let rec = self.record(key)?;
        let (root, binds) = self.view_of(&rec, false, false);
        self.stream_view(root, binds, Some(path.to_string()))
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    not_found_in(path, key)
                } else {
                    Error::Internal(e.to_string())
                }
            })
            .map(|(s, rx)| (s.expect("stat for a path"), rx))
    }

    /// `GET /containers/{id}/export`: the merged rootfs as a tar (no
    /// volumes, as dockerd).
    pub async fn export(&self, key: &str) -> Result<TarStream> {
        let rec = self.record(key)?;
        let (root, binds) = self.view_of(&rec, true, false);
        self.stream_view(root, binds, None)
            .await
            .map(|(_, rx)| rx)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    async fn stream_view(
        &self,
        root: RootSource,
        binds: Vec<ViewBind>,
        path: Option<String>,
    ) -> io::Result<(Option<PathStat>, TarStream)> {
        let (stat_tx, stat_rx) = oneshot::channel::<io::Result<Option<PathStat>>>();
        let (tx, rx) = mpsc::channel(8);
        let scratch = self.scratch();
        let handle = tokio::task::spawn_blocking(move || {
            let err_tx = tx.clone();
            let r = archive::with_view(&scratch, root, binds, move |rp, fd| {
                let stat = match &path {
                    Some(p) => archive::stat_path(rp, fd, p).map(Some),
                    None => Ok(None),
                };
                let failed = stat.is_err();
                let _ = stat_tx.send(stat);
                if failed {
                    return Ok(());
                }
                let w = ChanWriter {
                    tx,
                    buf: Vec::new(),
                };
                let mut w = match &path {
                    Some(p) => archive::tar_path(fd, p, w)?,
                    None => archive::tar_all(fd, w)?,
                };
                w.flush()
            });
            if let Err(e) = &r {
                let _ = err_tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            r
        });
        match stat_rx.await {
            Ok(Ok(st)) => Ok((st, rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => match handle.await {
                Ok(Err(e)) => Err(e),
                _ => Err(io::Error::other("archive worker ended early")),
            },
        }
    }

    /// `PUT /containers/{id}/archive`: extract a tar into directory `path`.
    pub async fn archive_put(
        &self,
        key: &str,
        path: &str,
        body: Box<dyn io::Read + Send>,
        opts: ExtractOptions,
    ) -> Result<()> {
        let rec = self.record(key)?;
        // dockerd's checks (both 500 in 20.10): a read-only volume, or a
        // read-only rootfs when the destination is on no volume.
        let dest = archive::clean_container_path(path);
        let dest = dest.trim_end_matches("/.").trim_end_matches('/');
        let on = rec
            .mount_points
            .iter()
            .filter(|p| p.kind != "tmpfs")
            .filter(|p| dest == p.destination || dest.starts_with(&format!("{}/", p.destination)))
            .max_by_key(|p| p.destination.len());
        match on {
            Some(p) if !p.rw => {
                return Err(Error::Internal("mounted volume is marked read-only".into()))
            }
            None if rec.host_config.readonly_rootfs => {
                return Err(Error::Internal(
                    "container rootfs is marked read-only".into(),
                ))
            }
            _ => {}
        }
        // A stopped container's overlay is mounted read-write here: keep it
        // from starting (and mounting the same upper dir) meanwhile.
        let (claimed, rec) = self.with_entry(&rec.id, |e| {
            if e.rec.is_running() {
                Ok((false, e.rec.clone()))
            } else if e.busy {
                Err(Error::Conflict(format!("container {} is busy", e.rec.id)))
            } else {
                e.busy = true;
                Ok((true, e.rec.clone()))
            }
        })??;
        let (root, binds) = self.view_of(&rec, false, true);
        let scratch = self.scratch();
        let p = path.to_string();
        let res = tokio::task::spawn_blocking(move || {
            archive::with_view(&scratch, root, binds, move |_, fd| {
                Ok(archive::extract(fd, &p, body, opts))
            })
        })
        .await;
        if claimed {
            let _ = self.with_entry(&rec.id, |e| e.busy = false);
        }
        let res = res.map_err(blocking_err)?;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(ExtractError::NotADirectory)) => Err(Error::InvalidArgument(
                "extraction point is not a directory".into(),
            )),
            Ok(Err(ExtractError::Conflict(m))) => Err(Error::InvalidArgument(m)),
            Ok(Err(ExtractError::Io(e))) | Err(e) => {
                if is_not_found(&e) {
                    Err(not_found_in(path, key))
                } else {
                    Err(Error::Internal(e.to_string()))
                }
            }
        }
    }

    /// `GET /containers/{id}/changes`: `[{"Path","Kind"}]` from the upper
    /// layer. The mount points the runtime creates for /etc/hosts & co.
    /// (dockerd keeps them in an init layer) are not reported.
    pub async fn changes(&self, key: &str) -> Result<Value> {
        let rec = self.record(key)?;
        let opt = |k: &str| {
            rec.rootfs_mounts
                .iter()
                .flat_map(|m| m.options.iter())
                .find_map(|o| o.strip_prefix(k).map(str::to_string))
                .unwrap_or_default()
        };
        let upper = PathBuf::from(opt("upperdir="));
        let lowers: Vec<PathBuf> = opt("lowerdir=").split(':').map(PathBuf::from).collect();
        let list = tokio::task::spawn_blocking(move || archive::overlay_changes(&upper, &lowers))
            .await
            .map_err(blocking_err)?;
        const INIT: &[&str] = &[
            "/.dockerenv",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/etc/mtab",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/console",
            "/dev/mqueue",
            "/proc",
            "/sys",
            "/sys/fs/cgroup",
        ];
        let mut mountpoints: Vec<String> = INIT.iter().map(|s| s.to_string()).collect();
        mountpoints.extend(rec.mount_points.iter().map(|p| p.destination.clone()));
        let hidden = |p: &str| {
            mountpoints.iter().any(|m| m == p)
                || p.starts_with("/dev/")
                || p.starts_with("/proc/")
                || p.starts_with("/sys/")
        };
        let kept: Vec<(u8, String)> = list.iter().filter(|(_, p)| !hidden(p)).cloned().collect();
        // A changed directory that only holds hidden mount points is not a change.
        let out: Vec<Value> = kept
            .iter()
            .filter(|(k, p)| {
                let holds_hidden = list
                    .iter()
                    .any(|(_, q)| hidden(q) && q.starts_with(&format!("{p}/")));
                let holds_kept = kept.iter().any(|(_, q)| q.starts_with(&format!("{p}/")));
                !(*k == 0 && holds_hidden && !holds_kept)
            })
            .map(|(k, p)| json!({"Path": p, "Kind": k}))
            .collect();
        Ok(if out.is_empty() {
            Value::Null
        } else {
            json!(out)
        })
    }

    /// Inspect's `Mounts`.
    pub(crate) fn inspect_mounts(rec: &ContainerRecord) -> Value {
        let mut ps: Vec<&MountPoint> = rec.mount_points.iter().filter(|p| !p.hidden).collect();
        ps.sort_by(|a, b| a.destination.cmp(&b.destination));
        json!(ps.iter().map(|p| p.to_api()).collect::<Vec<_>>())
    }

    // ---------- system df ----------

    /// `GET /system/df`: images, containers, local volumes (with sizes and
    /// reference counts) and an empty build cache.
    pub async fn system_df(&self, types: &[String], legacy_virtual_size: bool) -> Result<Value> {
        let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        for t in types {
            if !["container", "image", "volume", "build-cache"].contains(&t.as_str()) {
                return Err(Error::InvalidArgument(format!("unknown object type: {t}")));
            }
        }
        let recs: Vec<ContainerRecord> = {
            let inner = self.inner.lock().unwrap();
            inner.containers.values().map(|e| e.rec.clone()).collect()
        };
        let mut out = serde_json::Map::new();
        if want("image") {
            let images = self.images.clone();
            let list = tokio::task::spawn_blocking(move || images.list())
                .await
                .map_err(blocking_err)??;
            let mut layers = 0i64;
            let mut rows = Vec::new();
            for r in list {
                layers += r.size;
                let containers = recs.iter().filter(|c| c.image_id == r.id).count();
                let mut v = json!({
                    "Containers": containers,
                    "Created": chrono::DateTime::parse_from_rfc3339(&r.created).map(|t| t.timestamp()).unwrap_or(0),
                    "Id": r.id,
                    "Labels": r.config.labels.clone().filter(|l| !l.is_empty()),
                    "ParentId": "",
                    "RepoDigests": if r.repo_digests.is_empty() { Value::Null } else { json!(r.repo_digests) },
                    "RepoTags": r.repo_tags,
                    "SharedSize": 0,
                    "Size": r.size,
                });
                if legacy_virtual_size {
                    v["VirtualSize"] = json!(r.size);
                }
                rows.push(v);
            }
            out.insert("LayersSize".into(), json!(layers));
            out.insert("Images".into(), json!(rows));
        }
        if want("container") {
            let mut rows = Vec::new();
            let now = chrono::Utc::now();
            let mut sorted = recs.clone();
            sorted.sort_by(|a, b| b.created.cmp(&a.created));
            for r in &sorted {
                let mut s =
                    serde_json::to_value(crate::lifecycle::summary(r, now)).unwrap_or(Value::Null);
                let upper = r
                    .rootfs_mounts
                    .iter()
                    .flat_map(|m| m.options.iter())
                    .find_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from));
                let images = self.images.clone();
                let image = r.image_id.clone();
                let (rw, img) = tokio::task::spawn_blocking(move || {
                    (
                        upper.map(|u| crate::lifecycle::dir_size(&u)).unwrap_or(0) as i64,
                        images.resolve(&image).map(|i| i.size).unwrap_or(0),
                    )
                })
                .await
                .unwrap_or((0, 0));
                if rw != 0 {
                    s["SizeRw"] = json!(rw); // omitempty in dockerd
                }
                s["SizeRootFs"] = json!(rw + img);
                s["Mounts"] = Self::inspect_mounts(r);
                rows.push(s);
            }
            out.insert("Containers".into(), json!(rows));
        }
        if want("volume") {
            let users = self.volume_users();
            let mut rows = Vec::new();
            for v in self.volumes.list() {
                let data = self.volumes.data_path(&v.name);
                let size = tokio::task::spawn_blocking(move || archive::disk_usage(&data))
                    .await
                    .unwrap_or(0) as i64;
                let refs = users.get(&v.name).map(|u| u.len()).unwrap_or(0) as i64;
                rows.push(self.volumes.to_api(&v, Some((size, refs))));
            }
            out.insert("Volumes".into(), json!(rows));
        }
        if want("build-cache") {
            out.insert("BuildCache".into(), json!([]));
        }
        Ok(Value::Object(out))
    }
}

/// `lowerdir=upper:lowers`, no upper or work dir: a read-only overlay of
/// a container's current filesystem.
fn readonly_overlay(mounts: &[berth_types::Mount]) -> Vec<berth_types::Mount> {
    mounts
        .iter()
        .map(|m| {
            let get = |k: &str| {
                m.options
                    .iter()
                    .find_map(|o| o.strip_prefix(k).map(str::to_string))
            };
            match (get("upperdir="), get("lowerdir=")) {
                (Some(upper), Some(lower)) if m.kind == "overlay" => berth_types::Mount {
                    kind: m.kind.clone(),
                    source: m.source.clone(),
                    options: vec![format!("lowerdir={upper}:{lower}")],
                },
                _ => m.clone(),
            }
        })
        .collect()
}

/// Whether a bind point came from `-v` (whose missing source is created)
/// rather than `--mount` (whose missing source was refused at parse).
fn body_bind_source(body: &berth_types::api::ContainerCreateBody, p: &MountPoint) -> bool {
    !body.host_config.mounts.iter().flatten().any(|m| {
        m["Type"] == "bind"
            && m["Target"].as_str().map(|t| t.trim_end_matches('/')) == Some(p.destination.as_str())
    })
}

/// Add the container's mounts to a generated OCI spec, replacing default
/// mounts at the same destination (a `-v` over /etc/hosts or /dev/shm wins).
pub(crate) fn apply_mounts(spec: &mut Value, points: &[MountPoint]) {
    if points.is_empty() {
        return;
    }
    let extra = volumes::oci_mounts(points);
    if let Some(list) = spec["mounts"].as_array_mut() {
        list.retain(|m| {
            !points
                .iter()
                .any(|p| m["destination"].as_str() == Some(p.destination.as_str()))
        });
        list.extend(extra);
        // Parents before children (a volume on /etc before /etc/hosts).
        list.sort_by_key(|m| {
            Path::new(m["destination"].as_str().unwrap_or("/"))
                .components()
                .count()
        });
    }
}
