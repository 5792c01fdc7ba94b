//! Volumes (the `local` driver) and a container's mount points: `-v`,
//! `--mount`, `--tmpfs`, `--volumes-from` and the image's `VOLUME`s
//! (STO-09..STO-16).
//!
//! On disk, like dockerd: `<data-root>/volumes/<name>/_data` holds the
//! content and `<name>/volume.json` the metadata (written atomically, and
//! only after `_data` exists, so a half-created volume has no metadata and
//! is ignored). Copy-up of image content into a new volume records
//! `"CopyUp": "pending"` before the first byte and `"done"` after a
//! `syncfs`; a volume found `pending` at start-up was interrupted: its
//! content is wiped and it counts as new again, so a half-filled volume is
//! never taken for a ready one.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_types::api::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::archive;
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyUp {
    /// Never filled from an image.
    #[default]
    None,
    /// A copy-up started and did not finish.
    Pending,
    /// Filled from an image (or found non-empty when one was due).
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Created for `-v /path`, `--mount type=volume` without a source or an
    /// image `VOLUME`: removed by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub copy_up: CopyUp,
}

/// `local` driver volumes under `<data-root>/volumes`.
pub struct VolumeStore {
    root: PathBuf,
    vols: Mutex<BTreeMap<String, VolumeRecord>>,
    /// Serializes copy-ups (rare, and two containers may share a volume).
    copy_lock: Mutex<()>,
}

const NAME_CHARS: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]";

/// The local driver's name check, with dockerd's texts.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.len() < 2 {
        return Err(
            "volume name is too short, names should be at least two alphanumeric characters".into(),
        );
    }
    let b = name.as_bytes();
    let ok = b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if !ok {
        return Err(format!(
            "\"{name}\" includes invalid characters for a local volume name, only \"{NAME_CHARS}\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

/// The local driver's options: `type`, `device`, `o` (mount(8)), `size`.
pub fn validate_options(opts: &BTreeMap<String, String>) -> std::result::Result<(), String> {
    for k in opts.keys() {
        if !["type", "device", "o", "size"].contains(&k.as_str()) {
            return Err(format!("invalid option: \"{k}\""));
        }
    }
    if opts.contains_key("size") {
        return Err("quota size requested but no quota support".into());
    }
    if !opts.is_empty() {
        for k in ["device", "type"] {
            if opts.get(k).is_none_or(|v| v.is_empty()) {
                return Err(format!("missing required option: \"{k}\""));
            }
        }
    }
    Ok(())
}

fn now_seconds() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn random_name() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl VolumeStore {
    pub fn open(root: &Path) -> Result<VolumeStore> {
        std::fs::create_dir_all(root).ctx(|| format!("create {}", root.display()))?;
        let mut vols = BTreeMap::new();
        for ent in std::fs::read_dir(root).ctx(|| format!("read {}", root.display()))? {
            let Ok(ent) = ent else { continue };
            let meta = ent.path().join("volume.json");
            let Ok(data) = std::fs::read(&meta) else {
                continue; // creation was interrupted before the metadata
            };
            let mut rec: VolumeRecord = match serde_json::from_slice(&data) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("skipping volume {}: {e}", meta.display());
                    continue;
                }
            };
            if rec.copy_up == CopyUp::Pending {
                tracing::warn!(volume = %rec.name, "copy-up was interrupted; emptying the volume");
                let _ = wipe(&ent.path().join("_data"));
                rec.copy_up = CopyUp::None;
                let _ = write_meta(root, &rec);
            }
            vols.insert(rec.name.clone(), rec);
        }
        Ok(VolumeStore {
            root: root.to_path_buf(),
            vols: Mutex::new(vols),
            copy_lock: Mutex::new(()),
        })
    }

    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// `POST /volumes/create`: an existing volume of that name is returned
    /// as it is.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeRecord> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => random_name(),
        };
        let driver = if driver.is_empty() { "local" } else { driver };
        if driver != "local" {
            return Err(Error::NotFound(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        validate_name(&name).map_err(|e| Error::InvalidArgument(format!("create {name}: {e}")))?;
        if let Some(v) = self.vols.lock().unwrap().get(&name) {
            return Ok(v.clone());
        }
        validate_options(&options)
            .map_err(|e| Error::InvalidArgument(format!("create {name}: {e}")))?;
        let dir = self.root.join(&name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).ctx(|| format!("create {}", data.display()))?;
        let rec = VolumeRecord {
            name: name.clone(),
            driver: "local".into(),
            created_at: now_seconds(),
            labels,
            options,
            anonymous,
            copy_up: CopyUp::None,
        };
        write_meta(&self.root, &rec).ctx(|| format!("write metadata of volume {name}"))?;
        self.vols.lock().unwrap().insert(name, rec.clone());
        Ok(rec)
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord> {
        self.vols
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("get {name}: no such volume")))
    }

    pub fn list(&self) -> Vec<VolumeRecord> {
        self.vols.lock().unwrap().values().cloned().collect()
    }

    /// Remove a volume the caller checked is unused. The metadata goes
    /// first, so an interrupted removal leaves no half volume behind.
    pub fn remove(&self, name: &str) -> Result<()> {
        let rec = self.get(name)?;
        let dir = self.root.join(name);
        unmount_data(&self.data_path(name));
        let _ = rec;
        std::fs::remove_file(dir.join("volume.json")).ctx(|| format!("remove {name}: metadata"))?;
        self.vols.lock().unwrap().remove(name);
        std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
        Ok(())
    }

    fn set_copy_up(&self, name: &str, state: CopyUp) -> Result<()> {
        let rec = {
            let mut vols = self.vols.lock().unwrap();
            let Some(r) = vols.get_mut(name) else {
                return Ok(());
            };
            r.copy_up = state;
            r.clone()
        };
        write_meta(&self.root, &rec).ctx(|| format!("write metadata of volume {name}"))
    }

    /// Mount a volume created with `-o type=... -o device=...` on its
    /// `_data` (once; it stays until the volume is removed).
    pub fn ensure_mounted(&self, name: &str) -> Result<()> {
        let rec = self.get(name)?;
        let (Some(kind), Some(device)) = (rec.options.get("type"), rec.options.get("device"))
        else {
            return Ok(());
        };
        let data = self.data_path(name);
        if berth_sys::mount::mounts_under(&data)
            .map(|m| m.iter().any(|p| Path::new(p) == data))
            .unwrap_or(false)
        {
            return Ok(());
        }
        use nix::mount::{mount, MsFlags};
        let mut flags = MsFlags::empty();
        let mut data_opts = Vec::new();
        for o in rec
            .options
            .get("o")
            .map(|s| s.as_str())
            .unwrap_or("")
            .split(',')
        {
            match o {
                "" => {}
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "ro" => flags |= MsFlags::MS_RDONLY,
                "rw" => {}
                "nosuid" => flags |= MsFlags::MS_NOSUID,
                "nodev" => flags |= MsFlags::MS_NODEV,
                "noexec" => flags |= MsFlags::MS_NOEXEC,
                other => data_opts.push(other),
            }
        }
        let data_s = data_opts.join(",");
        let fstype = (kind != "none").then_some(kind.as_str());
        mount(
            Some(device.as_str()),
            &data,
            fstype,
            flags,
            (!data_s.is_empty()).then_some(data_s.as_str()),
        )
        .map_err(|e| {
            Error::Internal(format!(
                "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {:#x}: {}",
                data.display(),
                data.display(),
                flags.bits(),
                e.desc().to_lowercase()
            ))
        })?;
        Ok(())
    }

    /// Copy the image's content at `dest` (in the container rootfs `root`)
    /// into a new volume, keeping owners and modes, if the volume is empty
    /// and was never filled. Interruptions are detected at the next
    /// start-up (see the module docs).
    pub fn copy_up(
        &self,
        name: &str,
        root: std::os::fd::BorrowedFd<'_>,
        dest: &str,
        tick: &mut dyn FnMut() -> std::io::Result<()>,
    ) -> Result<()> {
        let _g = self.copy_lock.lock().unwrap();
        let rec = self.get(name)?;
        if rec.copy_up == CopyUp::Done {
            return Ok(());
        }
        let src = match berth_sys::at::open_in_root(
            root,
            Path::new(dest),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            true,
        ) {
            Ok(fd) => fd,
            Err(_) => return Ok(()), // nothing (or not a directory) in the image there
        };
        let data = self.data_path(name);
        if rec.copy_up == CopyUp::Pending {
            // A copy that failed earlier: start again from empty.
            wipe(&data).ctx(|| format!("empty {}", data.display()))?;
        }
        let dst = berth_sys::at::open_dir(&data).ctx(|| format!("open {}", data.display()))?;
        let dst = berth_sys::at::open_child(
            dst.as_fd(),
            Path::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .ctx(|| format!("open {}", data.display()))?;
        if !archive::list_dir(dst.as_fd())
            .ctx(|| format!("read {}", data.display()))?
            .is_empty()
        {
            return Ok(()); // Docker copies only into an empty volume
        }
        let entries = archive::list_dir(src.as_fd()).ctx(|| format!("read {dest}"))?;
        self.set_copy_up(name, CopyUp::Pending)?;
        let copied = (|| -> std::io::Result<()> {
            if !entries.is_empty() {
                archive::copy_contents(src.as_fd(), dst.as_fd(), tick)?;
            }
            // The volume root takes the owner and mode of the image dir.
            let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&src))?;
            archive::copy_meta(dst.as_fd(), &st)?;
            nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dst))?;
            Ok(())
        })();
        match copied {
            Ok(()) => self.set_copy_up(name, CopyUp::Done),
            Err(e) => {
                // Never leave a half-filled volume behind: empty it again.
                if wipe(&data).is_ok() {
                    let _ = self.set_copy_up(name, CopyUp::None);
                }
                Err(Error::Internal(format!(
                    "copy image content to volume {name} at {dest}: {e}"
                )))
            }
        }
    }

    /// The API's `Volume` object.
    pub fn to_api(&self, rec: &VolumeRecord, usage: Option<(i64, i64)>) -> Value {
        let map = |m: &BTreeMap<String, String>| {
            if m.is_empty() {
                Value::Null
            } else {
                json!(m)
            }
        };
        let mut v = json!({
            "CreatedAt": rec.created_at,
            "Driver": rec.driver,
            "Labels": map(&rec.labels),
            "Mountpoint": self.data_path(&rec.name),
            "Name": rec.name,
            "Options": map(&rec.options),
            "Scope": "local",
        });
        if let Some((size, refs)) = usage {
            v["UsageData"] = json!({"Size": size, "RefCount": refs});
        }
        v
    }
}

/// Remove everything inside `dir` (never following symlinks).
fn wipe(dir: &Path) -> std::io::Result<()> {
    let fd = berth_sys::at::open_dir(dir)?;
    for n in archive::list_dir(fd.as_fd())? {
        let is_dir = std::fs::symlink_metadata(dir.join(&n))
            .map(|m| m.is_dir())
            .unwrap_or(false);
        archive::remove_at(fd.as_fd(), &n, is_dir)?;
    }
    Ok(())
}

fn write_meta(root: &Path, rec: &VolumeRecord) -> std::io::Result<()> {
    let data = serde_json::to_vec_pretty(rec).expect("volume record serializes");
    berth_sys::fs::write_atomic(&root.join(&rec.name).join("volume.json"), &data, 0o600)
}

fn unmount_data(data: &Path) {
    let _ = berth_sys::mount::unmount_all(data);
}

// ---------- mount points ----------

/// One entry of a container's mounts, as recorded at create time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// "volume", "bind" or "tmpfs".
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    /// Host path (bind source or the volume's `_data`).
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub driver: String,
    /// The mode string as given (`ro,z`), inspect's `Mode`.
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    #[serde(default)]
    pub propagation: String,
    /// Fill a new volume from the image (not `nocopy`).
    #[serde(default)]
    pub copy_data: bool,
    /// Created for this container (removed by `rm -v`).
    #[serde(default)]
    pub anonymous: bool,
    /// tmpfs mount options (`size=..`, `mode=..`).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
    /// Only in `HostConfig.Tmpfs` (not listed in inspect's `Mounts`).
    #[serde(default)]
    pub hidden: bool,
}

impl MountPoint {
    /// An entry of inspect's `Mounts` (and of `ps`'s).
    pub fn to_api(&self) -> Value {
        let mut v = json!({"Type": self.kind});
        if self.kind == "volume" {
            v["Name"] = json!(self.name);
        }
        v["Source"] = json!(self.source);
        v["Destination"] = json!(self.destination);
        if self.kind == "volume" {
            v["Driver"] = json!(self.driver);
        }
        v["Mode"] = json!(self.mode);
        v["RW"] = json!(self.rw);
        v["Propagation"] = json!(self.propagation);
        v
    }
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// Split a `-v` mode (`ro,z,nocopy,rshared`): (rw, propagation, copy).
fn parse_mode(mode: &str) -> Option<(bool, String, bool)> {
    let (mut rw, mut prop, mut copy) = (None, None, None);
    let mut label = false;
    let mut consistency = false;
    for m in mode.split(',') {
        match m {
            "ro" | "rw" if rw.is_none() => rw = Some(m == "rw"),
            "z" | "Z" if !label => label = true,
            "nocopy" if copy.is_none() => copy = Some(false),
            "consistent" | "cached" | "delegated" if !consistency => consistency = true,
            p if PROPAGATIONS.contains(&p) && prop.is_none() => prop = Some(p.to_string()),
            _ => return None,
        }
    }
    Some((
        rw.unwrap_or(true),
        prop.unwrap_or_default(),
        copy.unwrap_or(true),
    ))
}

fn check_target(kind: &str, target: &str) -> Result<()> {
    if target.is_empty() {
        return Err(bad(format!(
            "invalid mount config for type \"{kind}\": field Target must not be empty"
        )));
    }
    if !target.starts_with('/') {
        return Err(bad(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    Ok(())
}

fn clean(p: &str) -> String {
    let c = archive::clean_container_path(p);
    let c = c.trim_end_matches("/.").trim_end_matches('/');
    if c.is_empty() {
        "/".to_string()
    } else {
        c.to_string()
    }
}

/// A volume to create (or reuse) for a mount point.
#[derive(Debug, Clone)]
pub struct VolumeWant {
    pub name: Option<String>,
    /// `--mount volume-driver=` (else the container's VolumeDriver).
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// Parse one `-v`/`Binds` entry into a mount point (volumes not created
/// yet: `name` empty for an anonymous one).
pub fn parse_bind(spec: &str) -> Result<(MountPoint, Option<VolumeWant>)> {
    let invalid = || bad(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid()),
    };
    if dst.is_empty() {
        return Err(invalid());
    }
    let (rw, prop, copy) = if mode.is_empty() {
        (true, String::new(), true)
    } else {
        parse_mode(mode).ok_or_else(|| bad(format!("invalid mode: {mode}")))?
    };
    let kind = if src.starts_with('/') {
        "bind"
    } else {
        "volume"
    };
    if !dst.starts_with('/') {
        return Err(bad(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{kind}\": invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let dst = clean(dst);
    if dst == "/" {
        return Err(bad(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'"
        )));
    }
    if kind == "bind" {
        return Ok((
            MountPoint {
                kind: "bind".into(),
                name: String::new(),
                source: clean(src),
                destination: dst,
                driver: String::new(),
                mode: mode.to_string(),
                rw,
                propagation: if prop.is_empty() {
                    "rprivate".into()
                } else {
                    prop
                },
                copy_data: false,
                anonymous: false,
                tmpfs_options: vec![],
                hidden: false,
            },
            None,
        ));
    }
    Ok((
        MountPoint {
            kind: "volume".into(),
            name: src.to_string(),
            source: String::new(),
            destination: dst,
            driver: "local".into(),
            // dockerd's default relabel mode for a named volume.
            mode: if mode.is_empty() && !src.is_empty() {
                "z".to_string()
            } else {
                mode.to_string()
            },
            rw,
            propagation: String::new(),
            copy_data: copy,
            anonymous: src.is_empty(),
            tmpfs_options: vec![],
            hidden: false,
        },
        Some(VolumeWant {
            name: (!src.is_empty()).then(|| src.to_string()),
            driver: None,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        }),
    ))
}

fn tmpfs_size(v: i64) -> String {
    format!("size={}k", (v + 1023) / 1024)
}

/// Parse one `HostConfig.Mounts` entry (`--mount`).
pub fn parse_api_mount(m: &Value) -> Result<(MountPoint, Option<VolumeWant>)> {
    let kind = m["Type"].as_str().unwrap_or("").to_string();
    let source = m["Source"].as_str().unwrap_or("").to_string();
    let target = m["Target"].as_str().unwrap_or("").to_string();
    let ro = m["ReadOnly"].as_bool().unwrap_or(false);
    let has = |k: &str| !m[k].is_null();
    let cfg = |msg: String| bad(format!("invalid mount config for type \"{kind}\": {msg}"));
    match kind.as_str() {
        "bind" | "volume" | "tmpfs" => {}
        "" => return Err(bad("invalid mount config: mount type unknown".into())),
        other => return Err(bad(format!("mount type unknown: \"{other}\""))),
    }
    check_target(&kind, &target)?;
    let target = clean(&target);
    match kind.as_str() {
        "bind" => {
            if source.is_empty() {
                return Err(cfg("field Source must not be empty".into()));
            }
            if has("VolumeOptions") {
                return Err(cfg("field VolumeOptions must not be specified".into()));
            }
            if has("TmpfsOptions") {
                return Err(cfg("field TmpfsOptions must not be specified".into()));
            }
            if !source.starts_with('/') {
                return Err(cfg(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if std::fs::metadata(&source).is_err() {
                return Err(cfg(format!("bind source path does not exist: {source}")));
            }
            let prop = m["BindOptions"]["Propagation"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("rprivate")
                .to_string();
            if !PROPAGATIONS.contains(&prop.as_str()) {
                return Err(cfg(format!("invalid propagation mode: {prop}")));
            }
            Ok((
                MountPoint {
                    kind,
                    name: String::new(),
                    source: clean(&source),
                    destination: target,
                    driver: String::new(),
                    mode: String::new(),
                    rw: !ro,
                    propagation: prop,
                    copy_data: false,
                    anonymous: false,
                    tmpfs_options: vec![],
                    hidden: false,
                },
                None,
            ))
        }
        "volume" => {
            if has("BindOptions") {
                return Err(cfg("field BindOptions must not be specified".into()));
            }
            if has("TmpfsOptions") {
                return Err(cfg("field TmpfsOptions must not be specified".into()));
            }
            let vo = &m["VolumeOptions"];
            let labels: BTreeMap<String, String> =
                serde_json::from_value(vo["Labels"].clone()).unwrap_or_default();
            let options: BTreeMap<String, String> =
                serde_json::from_value(vo["DriverConfig"]["Options"].clone()).unwrap_or_default();
            let nocopy = vo["NoCopy"].as_bool().unwrap_or(false);
            Ok((
                MountPoint {
                    kind,
                    name: source.clone(),
                    source: String::new(),
                    destination: target,
                    driver: "local".into(),
                    mode: "z".into(),
                    rw: !ro,
                    propagation: String::new(),
                    copy_data: !nocopy,
                    anonymous: source.is_empty(),
                    tmpfs_options: vec![],
                    hidden: false,
                },
                Some(VolumeWant {
                    name: (!source.is_empty()).then_some(source),
                    driver: vo["DriverConfig"]["Name"]
                        .as_str()
                        .filter(|d| !d.is_empty())
                        .map(str::to_string),
                    labels,
                    options,
                }),
            ))
        }
        _ => {
            if !source.is_empty() {
                return Err(cfg("field Source must not be specified".into()));
            }
            if has("BindOptions") {
                return Err(cfg("field BindOptions must not be specified".into()));
            }
            if has("VolumeOptions") {
                return Err(cfg("field VolumeOptions must not be specified".into()));
            }
            let t = &m["TmpfsOptions"];
            let mut opts = Vec::new();
            if let Some(s) = t["SizeBytes"].as_i64().filter(|s| *s > 0) {
                opts.push(tmpfs_size(s));
            }
            if let Some(mode) = t["Mode"].as_u64().filter(|m| *m > 0) {
                opts.push(format!("mode={:o}", mode & 0o7777));
            }
            Ok((
                MountPoint {
                    kind,
                    name: String::new(),
                    source: String::new(),
                    destination: target,
                    driver: String::new(),
                    mode: String::new(),
                    rw: !ro,
                    propagation: String::new(),
                    copy_data: false,
                    anonymous: false,
                    tmpfs_options: opts,
                    hidden: false,
                },
                None,
            ))
        }
    }
}

/// `--tmpfs /path:opts`: options checked like dockerd (mount(8) words and
/// `size=`/`mode=`/`uid=`/`gid=`/`nr_inodes=`/`nr_blocks=`).
pub fn parse_tmpfs(dest: &str, opts: &str) -> Result<MountPoint> {
    if !dest.starts_with('/') {
        return Err(bad(format!(
            "invalid mount config for type \"tmpfs\": invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    let mut out = Vec::new();
    let mut rw = true;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match k {
            "ro" => rw = false,
            "rw" => rw = true,
            "size" => {
                let bytes =
                    parse_size(v).ok_or_else(|| bad(format!("invalid tmpfs option [\"{o}\"]")))?;
                out.push(tmpfs_size(bytes));
            }
            "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks" | "mpol" => out.push(o.to_string()),
            "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev" | "sync" | "async"
            | "atime" | "noatime" | "diratime" | "nodiratime" | "relatime" | "norelatime"
            | "strictatime" | "nostrictatime" | "mand" | "nomand" | "dirsync" | "private"
            | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "bind" | "rbind"
            | "remount" | "defaults" | "tmpcopyup" => out.push(o.to_string()),
            _ => return Err(bad(format!("invalid tmpfs option [\"{o}\"]"))),
        }
    }
    Ok(MountPoint {
        kind: "tmpfs".into(),
        name: String::new(),
        source: String::new(),
        destination: clean(dest),
        driver: String::new(),
        mode: String::new(),
        rw,
        propagation: String::new(),
        copy_data: false,
        anonymous: false,
        tmpfs_options: out,
        hidden: true,
    })
}

/// "64m", "1g", "100k", "4096" (bytes) as the tmpfs size option takes it.
fn parse_size(v: &str) -> Option<i64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1i64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        '%' => return None,
        _ => (v, 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

/// Everything a container mounts, in the order dockerd resolves it:
/// `--volumes-from`, then `Binds`, then `Mounts`, then `--tmpfs`, then the
/// container's and the image's `Volumes` for paths not yet mounted.
/// Volumes are not created here (see [`MountPlan`]).
pub struct MountPlan {
    pub points: Vec<MountPoint>,
    /// Per point index, the volume to create or reuse.
    pub wants: HashMap<usize, VolumeWant>,
}

pub fn plan(
    host: &HostConfig,
    config: &ContainerConfig,
    image_volumes: &[String],
    volumes_from: &[(Vec<MountPoint>, Option<bool>)],
) -> Result<MountPlan> {
    let mut points: Vec<MountPoint> = Vec::new();
    let mut wants = HashMap::new();
    let push = |points: &mut Vec<MountPoint>,
                wants: &mut HashMap<usize, VolumeWant>,
                mp: MountPoint,
                want: Option<VolumeWant>,
                replace: bool|
     -> Result<()> {
        if let Some(i) = points.iter().position(|p| p.destination == mp.destination) {
            if !replace {
                return Err(bad(format!("Duplicate mount point: {}", mp.destination)));
            }
            points.remove(i);
            // Re-index wants after the removed slot.
            let old: Vec<(usize, VolumeWant)> = wants.drain().collect();
            for (k, w) in old {
                if k < i {
                    wants.insert(k, w);
                } else if k > i {
                    wants.insert(k - 1, w);
                }
            }
        }
        if let Some(w) = want {
            wants.insert(points.len(), w);
        }
        points.push(mp);
        Ok(())
    };
    for (mps, rw) in volumes_from {
        for mp in mps.iter().filter(|m| m.kind != "tmpfs") {
            let mut mp = mp.clone();
            if let Some(rw) = rw {
                mp.rw = *rw;
            }
            mp.anonymous = false; // owned by the other container
            mp.copy_data = false;
            push(&mut points, &mut wants, mp, None, true)?;
        }
    }
    let mut binds: Vec<(MountPoint, Option<VolumeWant>)> = Vec::new();
    for b in host.binds.iter().flatten() {
        binds.push(parse_bind(b)?);
    }
    let dup = |d: &str| bad(format!("Duplicate mount point: {d}"));
    let mut bind_dests = std::collections::HashSet::new();
    for (mp, _) in &binds {
        if !bind_dests.insert(mp.destination.clone()) {
            return Err(dup(&mp.destination));
        }
    }
    for (mp, w) in binds {
        // A bind of the same path wins over --volumes-from.
        push(&mut points, &mut wants, mp, w, true)?;
    }
    let mounts: Vec<Value> = host.mounts.clone().unwrap_or_default();
    let mut mount_dests = std::collections::HashSet::new();
    for m in &mounts {
        let (mp, w) = parse_api_mount(m)?;
        if bind_dests.contains(&mp.destination) || !mount_dests.insert(mp.destination.clone()) {
            return Err(dup(&mp.destination));
        }
        push(&mut points, &mut wants, mp, w, true)?;
    }
    for (dest, opts) in host.tmpfs.iter().flatten() {
        let mp = parse_tmpfs(dest, opts)?;
        // dockerd refuses a tmpfs on a -v path, not on a --mount one.
        if bind_dests.contains(&mp.destination) {
            return Err(dup(&mp.destination));
        }
        push(&mut points, &mut wants, mp, None, true)?;
    }
    let mut anon: Vec<String> = config
        .volumes
        .as_ref()
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    anon.extend(image_volumes.iter().cloned());
    for dest in anon {
        if !dest.starts_with('/') {
            return Err(bad(format!(
                "invalid volume specification: '{dest}': invalid mount config for type \"volume\": invalid mount path: '{dest}' mount path must be absolute"
            )));
        }
        let d = clean(&dest);
        if points.iter().any(|p| p.destination == d) {
            continue;
        }
        let mp = MountPoint {
            kind: "volume".into(),
            name: String::new(),
            source: String::new(),
            destination: d,
            driver: "local".into(),
            mode: String::new(),
            rw: true,
            propagation: String::new(),
            copy_data: true,
            anonymous: true,
            tmpfs_options: vec![],
            hidden: false,
        };
        let want = VolumeWant {
            name: None,
            driver: None,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        };
        push(&mut points, &mut wants, mp, Some(want), false)?;
    }
    Ok(MountPlan { points, wants })
}

/// `--volumes-from NAME[:ro|:rw]`: (container, rw override).
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>)> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((c, "ro")) => Ok((c.to_string(), Some(false))),
        Some((c, "rw")) => Ok((c.to_string(), Some(true))),
        Some((_, m)) => Err(bad(format!("invalid mode: {m}"))),
    }
}

/// OCI mounts for a container's mount points, parents before children.
pub fn oci_mounts(points: &[MountPoint]) -> Vec<Value> {
    let mut ps: Vec<&MountPoint> = points.iter().collect();
    ps.sort_by_key(|p| Path::new(&p.destination).components().count());
    ps.into_iter()
        .map(|p| {
            if p.kind == "tmpfs" {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                if p.hidden {
                    opts.push("noexec".into());
                }
                opts.extend(p.tmpfs_options.iter().cloned());
                if !p.rw {
                    opts.push("ro".into());
                }
                json!({"destination": p.destination, "type": "tmpfs", "source": "tmpfs", "options": opts})
            } else {
                let prop = if p.propagation.is_empty() {
                    "rprivate"
                } else {
                    p.propagation.as_str()
                };
                json!({"destination": p.destination, "type": "bind", "source": p.source,
                    "options": ["rbind", if p.rw { "rw" } else { "ro" }, prop]})
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("ab").is_ok());
        assert!(validate_name("a").unwrap_err().contains("too short"));
        assert!(validate_name("rel/path")
            .unwrap_err()
            .contains("includes invalid characters"));
    }

    #[test]
    fn options() {
        let o = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            validate_options(&o(&[("foo", "bar")])).unwrap_err(),
            "invalid option: \"foo\""
        );
        assert!(validate_options(&o(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ]))
        .is_ok());
        assert!(validate_options(&o(&[("type", "tmpfs")]))
            .unwrap_err()
            .contains("device"));
    }

    #[test]
    fn binds() {
        let (m, w) = parse_bind("vol1:/data:ro").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.rw, m.mode.as_str()),
            ("volume", false, "ro")
        );
        assert_eq!(w.unwrap().name.as_deref(), Some("vol1"));
        let (m, _) = parse_bind("/h:/b:rshared").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.propagation.as_str()),
            ("bind", "rshared")
        );
        let (m, w) = parse_bind("/anon").unwrap();
        assert!(m.anonymous && w.unwrap().name.is_none());
        assert_eq!(
            parse_bind("a:/x:zz").unwrap_err().to_string(),
            "invalid mode: zz"
        );
        assert_eq!(
            parse_bind("a:b:c:d").unwrap_err().to_string(),
            "invalid volume specification: 'a:b:c:d'"
        );
        assert!(parse_bind("a1:rel")
            .unwrap_err()
            .to_string()
            .contains("mount path must be absolute"));
        assert!(parse_bind("/:/")
            .unwrap_err()
            .to_string()
            .contains("destination can't be '/'"));
        let (m, _) = parse_bind("v:/x:nocopy,ro").unwrap();
        assert!(!m.copy_data && !m.rw);
    }

    #[test]
    fn failed_copy_up_is_retried_from_empty() {
        if !nix::unistd::geteuid().is_root() {
            return; // copy-up keeps owners: needs root
        }
        let base = std::env::temp_dir().join(format!("berth-vol-unit-{}", random_name()));
        let src = base.join("root/src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        for i in 0..5 {
            std::fs::write(src.join(format!("f{i}")), format!("{i}")).unwrap();
        }
        let store = VolumeStore::open(&base.join("volumes")).unwrap();
        store
            .create(Some("vv"), "local", BTreeMap::new(), BTreeMap::new(), false)
            .unwrap();
        let root = berth_sys::at::open_dir(&base.join("root")).unwrap();
        let mut n = 0;
        let mut fail_third = || {
            n += 1;
            if n == 3 {
                Err(std::io::Error::other("injected"))
            } else {
                Ok(())
            }
        };
        assert!(store
            .copy_up("vv", root.as_fd(), "/src", &mut fail_third)
            .is_err());
        let data = store.data_path("vv");
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            0,
            "half copy left"
        );
        assert_eq!(store.get("vv").unwrap().copy_up, CopyUp::None);
        // A crash between the two states: pending on disk is emptied at open.
        store.set_copy_up("vv", CopyUp::Pending).unwrap();
        std::fs::write(data.join("f0"), "partial").unwrap();
        drop(store);
        let store = VolumeStore::open(&base.join("volumes")).unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        store
            .copy_up("vv", root.as_fd(), "/src", &mut || Ok(()))
            .unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 6);
        assert_eq!(store.get("vv").unwrap().copy_up, CopyUp::Done);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn duplicates() {
        let host = |binds: &[&str], tmpfs: &[&str]| HostConfig {
            binds: Some(binds.iter().map(|s| s.to_string()).collect()),
            tmpfs: Some(
                tmpfs
                    .iter()
                    .map(|t| (t.to_string(), String::new()))
                    .collect(),
            ),
            ..Default::default()
        };
        let c = ContainerConfig::default();
        let err = |h: HostConfig| plan(&h, &c, &[], &[]).err().map(|e| e.to_string());
        assert_eq!(
            err(host(&["/a:/x", "/b:/x"], &[])).as_deref(),
            Some("Duplicate mount point: /x")
        );
        assert_eq!(
            err(host(&["/a:/x"], &["/x"])).as_deref(),
            Some("Duplicate mount point: /x")
        );
        // An image VOLUME under a bind is covered by the bind.
        let p = plan(&host(&["/a:/data"], &[]), &c, &["/data".into()], &[]).unwrap();
        assert_eq!(p.points.len(), 1);
        assert_eq!(p.points[0].kind, "bind");
    }

    #[test]
    fn tmpfs_options() {
        let m = parse_tmpfs("/t", "rw,noexec,nosuid,size=65536k").unwrap();
        assert!(m.tmpfs_options.contains(&"size=65536k".to_string()));
        assert!(parse_tmpfs("/t", "bogus").is_err());
    }
}
