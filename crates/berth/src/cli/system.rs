//! `version` and `info` (SYS-xx, SAMPLE-07).

use berth_api::client::Client;
use serde_json::Value;

use super::CliResult;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn version(client: &Client) -> CliResult {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        o => o,
    };
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       {}", berth_types::api::API_VERSION);
    println!(" Go version:        rust");
    println!(
        " Git commit:        {}",
        option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown")
    );
    println!(" OS/Arch:           linux/{arch}");
    println!(" Context:           default");
    println!();
    let v: Value = client.get_json("/version").await?;
    println!("Server: {}", s(&v["Platform"]["Name"]));
    println!(" Engine:");
    println!("  Version:          {}", s(&v["Version"]));
    println!(
        "  API version:      {} (minimum version {})",
        s(&v["ApiVersion"]),
        s(&v["MinAPIVersion"])
    );
    println!("  Go version:       {}", s(&v["GoVersion"]));
    println!("  Git commit:       {}", s(&v["GitCommit"]));
    println!("  OS/Arch:          {}/{}", s(&v["Os"]), s(&v["Arch"]));
    println!("  Experimental:     false");
    Ok(0)
}

pub async fn info(client: &Client) -> CliResult {
    let i: Value = client.get_json("/info").await?;
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!(" Debug Mode: false");
    println!();
    println!("Server:");
    println!(" Containers: {}", s(&i["Containers"]));
    println!("  Running: {}", s(&i["ContainersRunning"]));
    println!("  Paused: {}", s(&i["ContainersPaused"]));
    println!("  Stopped: {}", s(&i["ContainersStopped"]));
    println!(" Images: {}", s(&i["Images"]));
    println!(" Server Version: {}", s(&i["ServerVersion"]));
    println!(" Storage Driver: {}", s(&i["Driver"]));
    for kv in i["DriverStatus"].as_array().into_iter().flatten() {
        println!("  {}: {}", s(&kv[0]), s(&kv[1]));
    }
    println!(" Logging Driver: {}", s(&i["LoggingDriver"]));
    println!(" Cgroup Driver: {}", s(&i["CgroupDriver"]));
    println!(" Cgroup Version: {}", s(&i["CgroupVersion"]));
    let runtimes: Vec<String> = i["Runtimes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    println!(" Runtimes: {}", runtimes.join(" "));
    println!(" Default Runtime: {}", s(&i["DefaultRuntime"]));
    println!(" Kernel Version: {}", s(&i["KernelVersion"]));
    println!(" Operating System: {}", s(&i["OperatingSystem"]));
    println!(" OSType: {}", s(&i["OSType"]));
    println!(" Architecture: {}", s(&i["Architecture"]));
    println!(" CPUs: {}", s(&i["NCPU"]));
    let mem = i["MemTotal"].as_f64().unwrap_or(0.0);
    println!(" Total Memory: {:.2}GiB", mem / (1u64 << 30) as f64);
    println!(" Name: {}", s(&i["Name"]));
    println!(" Docker Root Dir: {}", s(&i["DockerRootDir"]));
    println!(" Debug Mode: false");
    println!(" Experimental: false");
    // CFG insecure-registries / registry-mirrors, as docker prints them.
    let rc = &i["RegistryConfig"];
    let mut insecure: Vec<String> = rc["IndexConfigs"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|c| c["Secure"] == Value::Bool(false))
        .map(|c| s(&c["Name"]))
        .collect();
    insecure.sort();
    insecure.extend(
        rc["InsecureRegistryCIDRs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s),
    );
    if !insecure.is_empty() {
        println!(" Insecure Registries:");
        for r in insecure {
            println!("  {r}");
        }
    }
    let mirrors: Vec<String> = rc["Mirrors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    if !mirrors.is_empty() {
        println!(" Registry Mirrors:");
        for m in mirrors {
            println!("  {m}");
        }
    }
    println!(" Live Restore Enabled: {}", s(&i["LiveRestoreEnabled"]));
    Ok(0)
}

/// `system <sub>`.
#[derive(clap::Subcommand, Debug)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(super::volume::DfArgs),
}

pub async fn system(client: &Client, cmd: SystemCmd) -> CliResult {
    match cmd {
        SystemCmd::Df(a) => super::volume::df(client, a).await,
    }
}
