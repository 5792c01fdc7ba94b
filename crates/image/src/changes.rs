//! Dockerfile-like `--change` instructions for `import` (IMG-17, IMG-20).
//! Supported: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME,
//! STOPSIGNAL.

use crate::error::{Error, Result};
use crate::ImageConfig;

fn err(msg: String) -> Error {
    Error::InvalidChange(msg)
}

/// Apply each change in order to `cfg`.
pub(crate) fn apply_changes(cfg: &mut ImageConfig, changes: &[String]) -> Result<()> {
    for c in changes {
        apply_one(cfg, c.trim())?;
    }
    Ok(())
}

fn apply_one(cfg: &mut ImageConfig, change: &str) -> Result<()> {
    if change.is_empty() {
        return Ok(());
    }
    let (instr, rest) = match change.split_once(char::is_whitespace) {
        Some((i, r)) => (i, r.trim()),
        None => (change, ""),
    };
    let upper = instr.to_ascii_uppercase();
    let known = [
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "WORKDIR",
        "USER",
        "LABEL",
        "EXPOSE",
        "VOLUME",
        "STOPSIGNAL",
    ];
    if !known.contains(&upper.as_str()) {
        return Err(err(format!(
            "{} is not a valid change command",
            instr.to_ascii_lowercase()
        )));
    }
    if rest.is_empty() {
        return Err(err(format!("{upper} requires at least one argument")));
    }
    match upper.as_str() {
        "CMD" => cfg.cmd = Some(command_form(rest)),
        "ENTRYPOINT" => cfg.entrypoint = Some(command_form(rest)),
        "ENV" => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest, "ENV")? {
                let prefix = format!("{k}=");
                env.retain(|e| !e.starts_with(&prefix) && e != &k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = cfg.labels.get_or_insert_with(Default::default);
            for (k, v) in key_values(rest, "LABEL")? {
                labels.insert(k, v);
            }
        }
        "WORKDIR" => {
            let dir = unquote(rest);
            cfg.working_dir = Some(if dir.starts_with('/') {
                dir
            } else {
                let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
                format!("{}/{}", base.trim_end_matches('/'), dir)
            });
        }
        "USER" => cfg.user = Some(unquote(rest)),
        "STOPSIGNAL" => cfg.stop_signal = Some(unquote(rest)),
        "EXPOSE" => {
            let ports = cfg.exposed_ports.get_or_insert_with(Default::default);
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let valid_num = !num.is_empty()
                    && num.split('-').all(|n| n.parse::<u16>().is_ok())
                    && num.split('-').count() <= 2;
                if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(err(format!("invalid port spec: {p}")));
                }
                ports.insert(format!("{num}/{proto}"), serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols = cfg.volumes.get_or_insert_with(Default::default);
            let list = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) if rest.starts_with('[') => v,
                _ => words(rest)?,
            };
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        _ => unreachable!(),
    }
    Ok(())
}

/// JSON exec form, or shell form wrapped in `/bin/sh -c`.
fn command_form(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.into()]
}

fn unquote(s: &str) -> String {
    words(s)
        .ok()
        .filter(|w| w.len() == 1)
        .and_then(|mut w| w.pop())
        .unwrap_or_else(|| s.to_string())
}

/// `K=V K2="v 2"` pairs, or the legacy `K value with spaces` form.
fn key_values(rest: &str, instr: &str) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| err(format!("{instr} must have two arguments")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    for w in words(rest)? {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| err(format!("{instr} names can not be blank: {w}")))?;
        if k.is_empty() {
            return Err(err(format!("{instr} names can not be blank")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Shell-like word splitting with single/double quotes and backslashes.
fn words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(err(format!("unmatched quote in {s:?}"))),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err(err(format!("unmatched quote in {s:?}"))),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(err(format!("unmatched quote in {s:?}"))),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<ImageConfig> {
        let mut c = ImageConfig::default();
        apply_changes(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    // IMG-17 / IMG-20: -c/--change instructions.
    #[test]
    fn changes_apply() {
        let c = apply(&[
            r#"CMD ["sh"]"#,
            "ENV A=b",
            r#"ENV C="x y" D=1"#,
            "ENV A=c",
            "ENV LEGACY some value",
            "WORKDIR /x",
            "WORKDIR y",
            "ENTRYPOINT /bin/httpd -f",
            "USER nobody",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
            "STOPSIGNAL SIGQUIT",
            r#"VOLUME ["/data"]"#,
        ])
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["sh"]);
        assert_eq!(
            c.env.unwrap(),
            vec!["C=x y", "D=1", "A=c", "LEGACY=some value"]
        );
        assert_eq!(c.working_dir.unwrap(), "/x/y");
        assert_eq!(
            c.entrypoint.unwrap(),
            vec!["/bin/sh", "-c", "/bin/httpd -f"]
        );
        assert_eq!(c.user.unwrap(), "nobody");
        let ports = c.exposed_ports.unwrap();
        assert!(ports.contains_key("80/tcp") && ports.contains_key("53/udp"));
        assert_eq!(c.labels.unwrap()["k"], "v");
        assert_eq!(c.stop_signal.unwrap(), "SIGQUIT");
        assert!(c.volumes.unwrap().contains_key("/data"));
    }

    #[test]
    fn bad_changes() {
        for bad in ["RUN echo", "CMD", "ENV =x", "EXPOSE abc", "ENV A=\"x"] {
            let e = apply(&[bad]).unwrap_err();
            assert_eq!(e.kind(), berth_types::ErrorKind::InvalidArgument, "{bad}");
        }
        assert_eq!(
            apply(&["RUN echo"]).unwrap_err().to_string(),
            "run is not a valid change command"
        );
    }
}
