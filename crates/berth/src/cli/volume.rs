//! `volume create|ls|inspect|rm|prune` (STO-14), `system df`, and the
//! storage flags of `run`/`create`: `-v`, `--mount`, `--tmpfs`,
//! `--volumes-from` (STO-10, STO-13, STO-15, STO-16).

use std::collections::BTreeMap;

use berth_api::client::{empty, Client};
use berth_types::api::ContainerCreateBody;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::{q, CliResult, Failure};
use crate::format::{human_size, to_tv, tv_map, tv_s, Format};
use gotmpl::Value as TV;

// ---------- run/create flags ----------

/// (value, flag, message) of a bad flag value, for `flag_error`.
pub type FlagError = (String, &'static str, String);

/// Fill `Binds`, `Config.Volumes`, `Mounts`, `Tmpfs` and `VolumesFrom` the
/// way the docker CLI does.
pub fn apply_run_flags(
    volume: &[String],
    mount: &[String],
    tmpfs: &[String],
    volumes_from: &[String],
    body: &mut ContainerCreateBody,
) -> Result<(), FlagError> {
    let mut binds = Vec::new();
    let mut anon = serde_json::Map::new();
    for v in volume {
        if v.is_empty() {
            return Err((
                v.clone(),
                "-v, --volume",
                "invalid empty volume spec".into(),
            ));
        }
        match v.split_once(':') {
            None => {
                anon.insert(v.clone(), json!({}));
            }
            Some((src, rest)) => {
                // `./dir` and `../dir` become absolute, as in the docker CLI.
                let src = if src.starts_with('.') {
                    std::path::absolute(src)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| src.to_string())
                } else {
                    src.to_string()
                };
                let spec = format!("{src}:{rest}");
                if !binds.contains(&spec) {
                    binds.push(spec);
                }
            }
        }
    }
    if !binds.is_empty() {
        body.host_config.binds = Some(binds);
    }
    if !anon.is_empty() {
        body.config.volumes = Some(Value::Object(anon));
    }
    let mut mounts = Vec::new();
    for m in mount {
        mounts.push(parse_mount_flag(m).map_err(|e| (m.clone(), "--mount", e))?);
    }
    if !mounts.is_empty() {
        body.host_config.mounts = Some(mounts);
    }
    let mut t = std::collections::HashMap::new();
    for s in tmpfs {
        let (path, opts) = s.split_once(':').unwrap_or((s.as_str(), ""));
        t.insert(path.to_string(), opts.to_string());
    }
    if !t.is_empty() {
        body.host_config.tmpfs = Some(t);
    }
    if !volumes_from.is_empty() {
        body.host_config.volumes_from = Some(volumes_from.to_vec());
    }
    Ok(())
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v.map(|s| s.to_ascii_lowercase()) {
        None => Ok(true),
        Some(s) if ["1", "t", "true"].contains(&s.as_str()) => Ok(true),
        Some(s) if ["0", "f", "false"].contains(&s.as_str()) => Ok(false),
        Some(s) => Err(format!("invalid value for {key}: {s}")),
    }
}

/// Sizes as `units.RAMInBytes`: "64m", "1g", "100" (bytes).
fn ram_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<f64>().ok().map(|n| (n * mult as f64) as i64)
}

/// One `--mount` value (CSV of key=value) as Docker's `mount.Mount` JSON.
pub fn parse_mount_flag(spec: &str) -> Result<Value, String> {
    let mut kind = "volume".to_string();
    let mut m = serde_json::Map::new();
    let mut bind = serde_json::Map::new();
    let mut vol = serde_json::Map::new();
    let mut labels = serde_json::Map::new();
    let mut vopts = serde_json::Map::new();
    let mut driver = None;
    let mut tmpfs = serde_json::Map::new();
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || v.ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"));
        match k.as_str() {
            "readonly" | "ro" => {
                if parse_bool(&k, v)? {
                    m.insert("ReadOnly".into(), json!(true));
                }
            }
            "volume-nocopy" => {
                vol.insert("NoCopy".into(), json!(parse_bool(&k, v)?));
            }
            "type" => kind = need()?.to_ascii_lowercase(),
            "source" | "src" => {
                m.insert("Source".into(), json!(need()?));
            }
            "target" | "dst" | "destination" => {
                m.insert("Target".into(), json!(need()?));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(need()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(need()?.to_ascii_lowercase()));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(parse_bool(&k, v)?));
            }
            "volume-driver" => driver = Some(need()?.to_string()),
            "volume-label" => {
                let (a, b) = need()?.split_once('=').unwrap_or((need()?, ""));
                labels.insert(a.into(), json!(b));
            }
            "volume-opt" => {
                let (a, b) = need()?.split_once('=').unwrap_or((need()?, ""));
                vopts.insert(a.into(), json!(b));
            }
            "tmpfs-size" => {
                let n = ram_bytes(need()?)
                    .ok_or_else(|| format!("invalid value for {k}: {}", need().unwrap_or("")))?;
                tmpfs.insert("SizeBytes".into(), json!(n));
            }
            "tmpfs-mode" => {
                let n = u32::from_str_radix(need()?, 8)
                    .map_err(|_| format!("invalid value for {k}: {}", need().unwrap_or("")))?;
                tmpfs.insert("Mode".into(), json!(n));
            }
            _ => return Err(format!("unexpected key '{k}' in '{field}'")),
        }
    }
    if !m.contains_key("Target") {
        return Err("target is required".into());
    }
    let has_vol = !vol.is_empty() || !labels.is_empty() || !vopts.is_empty() || driver.is_some();
    if has_vol && kind != "volume" {
        return Err(format!(
            "cannot mix 'volume-*' options with mount type '{kind}'"
        ));
    }
    if !bind.is_empty() && kind != "bind" {
        return Err(format!(
            "cannot mix 'bind-*' options with mount type '{kind}'"
        ));
    }
    if !tmpfs.is_empty() && kind != "tmpfs" {
        return Err(format!(
            "cannot mix 'tmpfs-*' options with mount type '{kind}'"
        ));
    }
    let mut out = serde_json::Map::new();
    out.insert("Type".into(), json!(kind));
    for k in ["Source", "Target", "ReadOnly", "Consistency"] {
        if let Some(v) = m.remove(k) {
            out.insert(k.into(), v);
        }
    }
    if !bind.is_empty() {
        out.insert("BindOptions".into(), Value::Object(bind));
    }
    if has_vol {
        if !labels.is_empty() {
            vol.insert("Labels".into(), Value::Object(labels));
        }
        let mut dc = serde_json::Map::new();
        if let Some(d) = driver {
            dc.insert("Name".into(), json!(d));
        }
        if !vopts.is_empty() {
            dc.insert("Options".into(), Value::Object(vopts));
        }
        vol.insert("DriverConfig".into(), Value::Object(dc));
        out.insert("VolumeOptions".into(), Value::Object(vol));
    }
    if !tmpfs.is_empty() {
        out.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    Ok(Value::Object(out))
}

// ---------- volume ----------

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long, hide = true)]
    name: Option<String>,
    name_arg: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long)]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long)]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

fn kv_map(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

fn filters_json(flags: &[String], extra: &[(&str, &str)]) -> Result<String, Failure> {
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(Failure {
                code: 125,
                message: format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"),
            });
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.trim().to_string(), true);
    }
    for (k, v) in extra {
        m.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(serde_json::to_string(&m).unwrap_or_default())
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = v.serialize(&mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

pub async fn volume(client: &Client, cmd: VolumeCmd) -> CliResult {
    match cmd {
        VolumeCmd::Create(a) => {
            let name = a.name_arg.or(a.name).unwrap_or_default();
            let body = json!({
                "Name": name,
                "Driver": a.driver,
                "DriverOpts": kv_map(&a.opt),
                "Labels": kv_map(&a.label),
            });
            let v: Value = client.post_json("/volumes/create", &body).await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeCmd::Ls(a) => {
            let mut path = "/volumes".to_string();
            if !a.filter.is_empty() {
                path.push_str(&format!("?filters={}", q(&filters_json(&a.filter, &[])?)));
            }
            let v: Value = client.get_json(&path).await?;
            let mut vols: Vec<Value> = v["Volumes"].as_array().cloned().unwrap_or_default();
            vols.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            let fmt = match a.format.as_deref().filter(|f| !f.is_empty()) {
                Some(f) if a.quiet && f == "table" => "{{.Name}}".to_string(),
                Some(f) => f.to_string(),
                None if a.quiet => "{{.Name}}".to_string(),
                None => "table {{.Driver}}\t{{.Name}}".to_string(),
            };
            let f = Format::parse(&fmt).map_err(fail)?;
            let rows: Vec<TV> = vols.iter().map(volume_row).collect();
            let header = tv_map(vec![
                ("Driver", tv_s("DRIVER")),
                ("Name", tv_s("VOLUME NAME")),
                ("Scope", tv_s("SCOPE")),
                ("Mountpoint", tv_s("MOUNTPOINT")),
                ("Labels", tv_s("LABELS")),
                ("Links", tv_s("LINKS")),
                ("Size", tv_s("SIZE")),
            ]);
            print!("{}", f.render_all(Some(&header), &rows).map_err(fail)?);
            Ok(0)
        }
        VolumeCmd::Inspect(a) => {
            let fmt = match a.format.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => Some(Format::parse(f).map_err(fail)?),
                None => None,
            };
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for n in &a.names {
                match client
                    .get_json::<Value>(&format!("/volumes/{}", q(n)))
                    .await
                {
                    Ok(v) => found.push(v),
                    Err(e) => errors.push(Failure::from(e).message),
                }
            }
            match fmt {
                Some(f) => {
                    for v in &found {
                        println!("{}", f.render(&to_tv(v)).map_err(fail)?);
                    }
                }
                None => println!("{}", pretty(&found)),
            }
            for e in &errors {
                eprintln!("{e}");
            }
            Ok(if errors.is_empty() { 0 } else { 1 })
        }
        VolumeCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                let path = format!("/volumes/{}?force={}", q(n), a.force as u8);
                match client.call(Method::DELETE, &path, empty(), None).await {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        failed = true;
                        eprintln!("{}", Failure::from(e).message);
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        VolumeCmd::Prune(a) => {
            if !a.force {
                use std::io::{BufRead, Write};
                let what = if a.all {
                    "all local volumes not used by at least one container"
                } else {
                    "anonymous local volumes not used by at least one container"
                };
                print!(
                    "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
                );
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if !matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    return Ok(0);
                }
            }
            let extra: Vec<(&str, &str)> = if a.all { vec![("all", "true")] } else { vec![] };
            let filters = filters_json(&a.filter, &extra)?;
            let path = format!("/volumes/prune?filters={}", q(&filters));
            let (_, b) = client.call(Method::POST, &path, empty(), None).await?;
            let v: Value = serde_json::from_slice(&b).unwrap_or_default();
            let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in &deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
            );
            Ok(0)
        }
    }
}

fn volume_row(v: &Value) -> TV {
    let labels = v["Labels"]
        .as_object()
        .map(|m| {
            let mut l: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                .collect();
            l.sort();
            l.join(",")
        })
        .unwrap_or_default();
    let size = v["UsageData"]["Size"]
        .as_f64()
        .filter(|s| *s >= 0.0)
        .map(human_size)
        .unwrap_or_else(|| "N/A".into());
    let links = v["UsageData"]["RefCount"]
        .as_i64()
        .filter(|s| *s >= 0)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "N/A".into());
    let s = |k: &str| tv_s(v[k].as_str().unwrap_or(""));
    tv_map(vec![
        ("Driver", s("Driver")),
        ("Name", s("Name")),
        ("Scope", s("Scope")),
        ("Mountpoint", s("Mountpoint")),
        ("Labels", tv_s(labels)),
        ("Links", tv_s(links)),
        ("Size", tv_s(size)),
    ])
}

// ---------- system df ----------

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

/// `units.HumanSize`: like [`human_size`] with 4 significant digits.
fn human4(size: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = size;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if v == 0.0 {
        return format!("0{}", UNITS[i]);
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits).max(0) as usize;
    let mut t = format!("{v:.decimals$}");
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{t}{}", UNITS[i])
}

fn size_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0).max(0.0)
}

fn reclaim(r: f64, total: f64) -> String {
    if total > 0.0 {
        format!("{} ({}%)", human4(r), (r * 100.0 / total) as i64)
    } else {
        human4(r)
    }
}

/// `system df [-v]` (SYS-xx): Docker's table and `--format` rows.
pub async fn df(client: &Client, a: DfArgs) -> CliResult {
    let v: Value = client.get_json("/system/df").await?;
    let images = v["Images"].as_array().cloned().unwrap_or_default();
    let containers = v["Containers"].as_array().cloned().unwrap_or_default();
    let volumes = v["Volumes"].as_array().cloned().unwrap_or_default();
    let cache = v["BuildCache"].as_array().cloned().unwrap_or_default();
    if a.verbose {
        return df_verbose(&images, &containers, &volumes);
    }
    let img_total: f64 = size_of(&v["LayersSize"]);
    let img_active = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    let img_reclaim: f64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) == 0)
        .map(|i| size_of(&i["Size"]) - size_of(&i["SharedSize"]))
        .sum();
    let ctr_total: f64 = containers.iter().map(|c| size_of(&c["SizeRw"])).sum();
    let running = |c: &Value| {
        matches!(
            c["State"].as_str(),
            Some("running") | Some("paused") | Some("restarting")
        )
    };
    let ctr_active = containers.iter().filter(|c| running(c)).count();
    let ctr_reclaim: f64 = containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| size_of(&c["SizeRw"]))
        .sum();
    let vol_total: f64 = volumes
        .iter()
        .map(|x| size_of(&x["UsageData"]["Size"]))
        .sum();
    let vol_active = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let vol_reclaim: f64 = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(|x| size_of(&x["UsageData"]["Size"]))
        .sum();
    let cache_total: f64 = cache.iter().map(|c| size_of(&c["Size"])).sum();
    let row = |t: &str, total: usize, active: usize, size: f64, r: f64| {
        tv_map(vec![
            ("Type", tv_s(t)),
            ("TotalCount", tv_s(total.to_string())),
            ("Active", tv_s(active.to_string())),
            ("Size", tv_s(human4(size))),
            ("Reclaimable", tv_s(reclaim(r, size))),
        ])
    };
    let rows = vec![
        row("Images", images.len(), img_active, img_total, img_reclaim),
        row(
            "Containers",
            containers.len(),
            ctr_active,
            ctr_total,
            ctr_reclaim,
        ),
        row(
            "Local Volumes",
            volumes.len(),
            vol_active,
            vol_total,
            vol_reclaim,
        ),
        row("Build Cache", cache.len(), 0, cache_total, cache_total),
    ];
    let fmt = a
        .format
        .clone()
        .filter(|f| !f.is_empty() && f != "table")
        .unwrap_or_else(|| {
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into()
        });
    let f = Format::parse(&fmt).map_err(fail)?;
    let header = tv_map(vec![
        ("Type", tv_s("TYPE")),
        ("TotalCount", tv_s("TOTAL")),
        ("Active", tv_s("ACTIVE")),
        ("Size", tv_s("SIZE")),
        ("Reclaimable", tv_s("RECLAIMABLE")),
    ]);
    print!("{}", f.render_all(Some(&header), &rows).map_err(fail)?);
    Ok(0)
}

fn df_verbose(images: &[Value], containers: &[Value], volumes: &[Value]) -> CliResult {
    use crate::format::{ago, ellipsis, table};
    println!("Images space usage:\n");
    let mut rows = vec![vec![
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
        "SHARED SIZE".into(),
        "UNIQUE SIZE".into(),
        "CONTAINERS".into(),
    ]];
    for i in images {
        let id = i["Id"].as_str().unwrap_or("").trim_start_matches("sha256:");
        let size = size_of(&i["Size"]);
        let shared = size_of(&i["SharedSize"]);
        let created = ago(i["Created"].as_i64().unwrap_or(0));
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for t in tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((&t, "<none>"));
            rows.push(vec![
                repo.to_string(),
                tag.to_string(),
                id.chars().take(12).collect(),
                created.clone(),
                human_size(size),
                human4(shared),
                human4(size - shared),
                i["Containers"].as_i64().unwrap_or(0).to_string(),
            ]);
        }
    }
    print!("{}", table(&rows));
    println!("\nContainers space usage:\n");
    let mut rows = vec![vec![
        "CONTAINER ID".to_string(),
        "IMAGE".into(),
        "COMMAND".into(),
        "LOCAL VOLUMES".into(),
        "SIZE".into(),
        "CREATED".into(),
        "STATUS".into(),
        "NAMES".into(),
    ]];
    for c in containers {
        let vols = c["Mounts"]
            .as_array()
            .map(|m| m.iter().filter(|x| x["Type"] == "volume").count())
            .unwrap_or(0);
        let name = c["Names"][0].as_str().unwrap_or("").trim_start_matches('/');
        rows.push(vec![
            c["Id"].as_str().unwrap_or("").chars().take(12).collect(),
            c["Image"].as_str().unwrap_or("").to_string(),
            format!("\"{}\"", ellipsis(c["Command"].as_str().unwrap_or(""), 20)),
            vols.to_string(),
            human4(size_of(&c["SizeRw"])),
            ago(c["Created"].as_i64().unwrap_or(0)),
            c["Status"].as_str().unwrap_or("").to_string(),
            name.to_string(),
        ]);
    }
    print!("{}", table(&rows));
    println!("\nLocal Volumes space usage:\n");
    let mut rows = vec![vec![
        "VOLUME NAME".to_string(),
        "LINKS".into(),
        "SIZE".into(),
    ]];
    for x in volumes {
        rows.push(vec![
            x["Name"].as_str().unwrap_or("").to_string(),
            x["UsageData"]["RefCount"].as_i64().unwrap_or(0).to_string(),
            human4(size_of(&x["UsageData"]["Size"])),
        ]);
    }
    print!("{}", table(&rows));
    println!("\nBuild cache usage: 0B\n");
    print!(
        "{}",
        table(&[vec![
            "CACHE ID".to_string(),
            "CACHE TYPE".into(),
            "SIZE".into(),
            "CREATED".into(),
            "LAST USED".into(),
            "USAGE".into(),
            "SHARED".into(),
        ]])
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_size_4_digits() {
        assert_eq!(human4(1985581.0), "1.986MB");
        assert_eq!(human4(0.0), "0B");
        assert_eq!(human4(300000.0), "300kB");
        assert_eq!(human4(1234.0), "1.234kB");
    }

    #[test]
    fn mount_flags() {
        let m = parse_mount_flag("type=bind,source=/a,target=/b,readonly,bind-propagation=rshared")
            .unwrap();
        assert_eq!(m["Type"], "bind");
        assert_eq!(m["ReadOnly"], true);
        assert_eq!(m["BindOptions"]["Propagation"], "rshared");
        let m = parse_mount_flag("type=volume,target=/anon2,volume-nocopy").unwrap();
        assert_eq!(m["VolumeOptions"]["NoCopy"], true);
        let m = parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1770").unwrap();
        assert_eq!(m["TmpfsOptions"]["SizeBytes"], 2 << 20);
        assert_eq!(m["TmpfsOptions"]["Mode"], 0o1770);
        assert_eq!(
            parse_mount_flag("type=bind,source=/x").unwrap_err(),
            "target is required"
        );
        assert!(parse_mount_flag("foo=bar,target=/x")
            .unwrap_err()
            .contains("unexpected key 'foo'"));
    }
}
