//! Registry credentials in the docker CLI's config.json (REG-04/05):
//! `auths` entries, and credential helpers (`credsStore`, per-registry
//! `credHelpers`) run as `docker-credential-<name> get|store|erase` with the
//! docker-credential-helpers protocol, so files the docker CLI writes work
//! with berth and the other way round.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// Username and secret (an identity token when the username is `<token>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub username: String,
    pub secret: String,
}

/// The helper for `key` (a config.json server key): `credHelpers` by host
/// first, then `credsStore`.
pub fn helper_for(cfg: &Value, key: &str) -> Option<String> {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(key);
    let by_host = cfg.get("credHelpers").and_then(|h| {
        h.get(key)
            .or_else(|| h.get(host))
            .and_then(|v| v.as_str())
            .map(String::from)
    });
    by_host
        .or_else(|| {
            cfg.get("credsStore")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .filter(|h| !h.is_empty())
}

fn run_helper(helper: &str, action: &str, input: &str) -> Result<Vec<u8>, String> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("error getting credentials - err: exec: \"{prog}\": {e}"))?;
    if let Some(mut sin) = child.stdin.take() {
        let _ = sin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let msg = if msg.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            msg
        };
        Err(msg)
    }
}

/// `get`: None when the helper has nothing for `key`.
pub fn helper_get(helper: &str, key: &str) -> Result<Option<Stored>, String> {
    match run_helper(helper, "get", key) {
        Ok(out) => {
            let v: Value = serde_json::from_slice(&out)
                .map_err(|e| format!("error getting credentials - err: {e}"))?;
            let username = v["Username"].as_str().unwrap_or("").to_string();
            let secret = v["Secret"].as_str().unwrap_or("").to_string();
            if username.is_empty() && secret.is_empty() {
                return Ok(None);
            }
            Ok(Some(Stored { username, secret }))
        }
        Err(m) if m.contains("credentials not found") => Ok(None),
        Err(m) => Err(format!("error getting credentials - err: {m}")),
    }
}

pub fn helper_store(helper: &str, key: &str, c: &Stored) -> Result<(), String> {
    let input = json!({"ServerURL": key, "Username": c.username, "Secret": c.secret}).to_string();
    run_helper(helper, "store", &input)
        .map(|_| ())
        .map_err(|m| format!("error storing credentials - err: {m}"))
}

pub fn helper_erase(helper: &str, key: &str) -> Result<(), String> {
    match run_helper(helper, "erase", key) {
        Ok(_) => Ok(()),
        Err(m) if m.contains("credentials not found") => Ok(()),
        Err(m) => Err(format!("error erasing credentials - err: {m}")),
    }
}

/// Credentials for `key` from `cfg`: the helper's, else the `auths` entry
/// (`auth` = base64 of `user:password`, or `identitytoken`).
pub fn lookup(cfg: &Value, key: &str) -> Result<Option<Stored>, String> {
    if let Some(h) = helper_for(cfg, key) {
        return helper_get(&h, key);
    }
    use base64::Engine as _;
    let auths = cfg.get("auths");
    let entry = auths.and_then(|a| {
        a.get(key)
            .or_else(|| a.get(format!("https://{key}").as_str()))
            .or_else(|| a.get(format!("http://{key}").as_str()))
    });
    let Some(entry) = entry else {
        return Ok(None);
    };
    if let Some(tok) = entry
        .get("identitytoken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Stored {
            username: "<token>".into(),
            secret: tok.to_string(),
        }));
    }
    let decoded = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
        .and_then(|d| String::from_utf8(d).ok());
    Ok(decoded.and_then(|d| {
        d.split_once(':').map(|(u, p)| Stored {
            username: u.to_string(),
            secret: p.to_string(),
        })
    }))
}

/// The `X-Registry-Auth` JSON for stored credentials.
pub fn registry_auth_json(c: &Stored, key: &str) -> Value {
    if c.username == "<token>" {
        json!({"identitytoken": c.secret, "serveraddress": key})
    } else {
        json!({"username": c.username, "password": c.secret, "serveraddress": key})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_choice() {
        let cfg = json!({"credsStore": "desktop", "credHelpers": {"reg.example:5000": "pass"}});
        assert_eq!(
            helper_for(&cfg, "reg.example:5000").as_deref(),
            Some("pass")
        );
        assert_eq!(
            helper_for(&cfg, "https://index.docker.io/v1/").as_deref(),
            Some("desktop")
        );
        assert_eq!(helper_for(&json!({}), "x"), None);
        assert_eq!(helper_for(&json!({"credsStore": ""}), "x"), None);
    }

    #[test]
    fn auths_entries() {
        let cfg = json!({"auths": {
            "a.example": {"auth": "dXNlcjpwYTpzcw=="},
            "https://b.example": {"identitytoken": "tok"},
        }});
        assert_eq!(
            lookup(&cfg, "a.example").unwrap(),
            Some(Stored {
                username: "user".into(),
                secret: "pa:ss".into()
            })
        );
        let b = lookup(&cfg, "b.example").unwrap().unwrap();
        assert_eq!(b.username, "<token>");
        assert_eq!(registry_auth_json(&b, "b.example")["identitytoken"], "tok");
        assert_eq!(lookup(&cfg, "c.example").unwrap(), None);
    }
}
