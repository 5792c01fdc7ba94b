//! Output formatting shared by CLI commands: Go tabwriter columns, human
//! sizes and durations as the Docker CLI prints them (SAMPLE-01, SAMPLE-02).

/// Columns like Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`: each cell
/// but the last is padded to max(10, widest + 3) characters.
pub fn table(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count() + 3).max(10);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `units.HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant
/// digits ("7.83MB", "192MB", "4.1kB").
pub fn human_size(size: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i + 1 < UNITS.len() {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g3(s), UNITS[i])
}

/// Go's `%.3g` for values in [0, 1000).
fn go_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (3 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `Ellipsis`: keep `max` characters, the last being `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the characters that occur in commands.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// "32 seconds ago" for a unix timestamp.
pub fn ago(unix: i64) -> String {
    let then = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    let d = chrono::Utc::now().signed_duration_since(then);
    format!("{} ago", berth_engine::container::human_duration(d))
}

/// `table` with a minimum column width (`docker top` uses 20).
pub fn table_min(rows: &[Vec<String>], min: usize) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count() + 3).max(min);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------- templates

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gotmpl::Value as TV;

thread_local! {
    /// Key order of the maps built from JSON objects (by the map's address),
    /// so `json` prints objects in the daemon's order like Go structs.
    static KEY_ORDER: RefCell<HashMap<usize, Vec<Arc<str>>>> = RefCell::new(HashMap::new());
}

/// serde_json → template value (JSON integers stay integers).
pub fn to_tv(v: &serde_json::Value) -> TV {
    use serde_json::Value as J;
    match v {
        J::Null => TV::Nil,
        J::Bool(b) => TV::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                TV::Int(i)
            } else if let Some(u) = n.as_u64() {
                TV::Uint(u)
            } else {
                TV::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        J::String(s) => TV::String(s.as_str().into()),
        J::Array(a) => TV::List(a.iter().map(to_tv).collect::<Vec<_>>().into()),
        J::Object(o) => {
            let order: Vec<Arc<str>> = o.keys().map(|k| Arc::from(k.as_str())).collect();
            let m: BTreeMap<Arc<str>, TV> =
                order.iter().cloned().zip(o.values().map(to_tv)).collect();
            let m = Arc::new(m);
            KEY_ORDER.with(|k| k.borrow_mut().insert(Arc::as_ptr(&m) as usize, order));
            TV::Map(m)
        }
    }
}

/// Template value → JSON (Go's `json.Marshal` without HTML escaping).
fn tv_json(v: &TV, out: &mut String) {
    match v {
        TV::Nil => out.push_str("null"),
        TV::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        TV::Int(i) => out.push_str(&i.to_string()),
        TV::Uint(u) => out.push_str(&u.to_string()),
        TV::Float(f) => out.push_str(
            &serde_json::Number::from_f64(*f)
                .map(|n| n.to_string())
                .unwrap_or("null".into()),
        ),
        TV::String(s) => out.push_str(&serde_json::to_string(&**s).unwrap_or_default()),
        TV::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                tv_json(x, out);
            }
            out.push(']');
        }
        TV::Map(m) => {
            let keys: Vec<Arc<str>> = KEY_ORDER
                .with(|k| k.borrow().get(&(Arc::as_ptr(m) as usize)).cloned())
                .filter(|o| o.len() == m.len() && o.iter().all(|k| m.contains_key(k)))
                .unwrap_or_else(|| m.keys().cloned().collect());
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(&**k).unwrap_or_default());
                out.push(':');
                tv_json(&m[k], out);
            }
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(&other.to_string()).unwrap_or_default()),
    }
}

fn tv_str(v: &TV) -> String {
    match v {
        TV::String(s) => s.to_string(),
        TV::Nil => String::new(),
        other => other.to_string(),
    }
}

fn tv_int(v: Option<&TV>) -> i64 {
    match v {
        Some(TV::Int(i)) => *i,
        Some(TV::Uint(u)) => *u as i64,
        Some(TV::Float(f)) => *f as i64,
        Some(TV::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// A parsed `--format`: Docker's funcs, `\t`/`\n` escapes, the `table`
/// directive, and `.Label "k"` (a method in Go) rewritten to a func call.
pub struct Format {
    pub table: bool,
    tmpl: gotmpl::Template,
}

fn rewrite_label_calls(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find(".Label ") {
        let before = &rest[..i];
        // `.Labels`, `$x.Label` stay as they are.
        let prev = before.chars().last();
        if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.') {
            out.push_str(&rest[..i + 7]);
            rest = &rest[i + 7..];
            continue;
        }
        out.push_str(before);
        out.push_str("__label $ ");
        rest = &rest[i + 7..];
    }
    out.push_str(rest);
    out
}

impl Format {
    pub fn parse(format: &str) -> Result<Format, String> {
        let mut f = format.replace("\\t", "\t").replace("\\n", "\n");
        let table = f.starts_with("table");
        if table {
            f = f["table".len()..].trim_start().to_string();
        }
        let f = rewrite_label_calls(&f);
        let tmpl = gotmpl::Template::new("")
            .func("json", |a| {
                let mut s = String::new();
                tv_json(a.first().unwrap_or(&TV::Nil), &mut s);
                Ok(TV::String(s.into()))
            })
            .func("join", |a| {
                let sep = a.get(1).map(tv_str).unwrap_or_default();
                let items: Vec<String> = match a.first() {
                    Some(TV::List(l)) => l.iter().map(tv_str).collect(),
                    Some(TV::Nil) | None => vec![],
                    Some(other) => vec![tv_str(other)],
                };
                Ok(TV::String(items.join(&sep).into()))
            })
            .func("split", |a| {
                let s = a.first().map(tv_str).unwrap_or_default();
                let sep = a.get(1).map(tv_str).unwrap_or_default();
                Ok(TV::List(
                    s.split(sep.as_str())
                        .map(|p| TV::String(p.into()))
                        .collect::<Vec<_>>()
                        .into(),
                ))
            })
            .func("upper", |a| {
                Ok(TV::String(
                    a.first()
                        .map(tv_str)
                        .unwrap_or_default()
                        .to_uppercase()
                        .into(),
                ))
            })
            .func("lower", |a| {
                Ok(TV::String(
                    a.first()
                        .map(tv_str)
                        .unwrap_or_default()
                        .to_lowercase()
                        .into(),
                ))
            })
            .func("title", |a| {
                let s = a.first().map(tv_str).unwrap_or_default();
                let mut out = String::new();
                let mut start = true;
                for c in s.chars() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                    start = c.is_whitespace();
                }
                Ok(TV::String(out.into()))
            })
            .func("truncate", |a| {
                let s = a.first().map(tv_str).unwrap_or_default();
                let n = tv_int(a.get(1)).max(0) as usize;
                Ok(TV::String(s.chars().take(n).collect::<String>().into()))
            })
            .func("pad", |a| {
                let s = a.first().map(tv_str).unwrap_or_default();
                if s.is_empty() {
                    return Ok(TV::String("".into()));
                }
                let (p, q) = (
                    tv_int(a.get(1)).max(0) as usize,
                    tv_int(a.get(2)).max(0) as usize,
                );
                Ok(TV::String(
                    format!("{}{s}{}", " ".repeat(p), " ".repeat(q)).into(),
                ))
            })
            .func("__label", |a| {
                let key = a.get(1).map(tv_str).unwrap_or_default();
                let labels = match a.first() {
                    Some(TV::Map(m)) => m.get("__labels").cloned(),
                    _ => None,
                };
                Ok(match labels {
                    Some(TV::Map(l)) => l
                        .get(key.as_str())
                        .cloned()
                        .unwrap_or(TV::String("".into())),
                    // the header row: the key's last dotted segment
                    _ => TV::String(
                        key.rsplit('.')
                            .next()
                            .unwrap_or("")
                            .replace(['-', '_'], " ")
                            .into(),
                    ),
                })
            })
            .parse(&f)
            .map_err(|e| format!("template parsing error: {e}"))?;
        Ok(Format { table, tmpl })
    }

    pub fn render(&self, data: &TV) -> Result<String, String> {
        self.tmpl
            .execute_to_string(data)
            .map_err(|e| format!("template: {e}"))
    }

    /// Render each row (and the header for `table`), tabwriter-aligned
    /// when the format is a table.
    pub fn render_all(&self, header: Option<&TV>, rows: &[TV]) -> Result<String, String> {
        let mut lines = Vec::new();
        if self.table {
            if let Some(h) = header {
                lines.push(self.render(h)?);
            }
        }
        for r in rows {
            lines.push(self.render(r)?);
        }
        if !self.table {
            return Ok(lines.iter().map(|l| format!("{l}\n")).collect());
        }
        let cells: Vec<Vec<String>> = lines
            .iter()
            .flat_map(|l| l.split('\n').map(str::to_string).collect::<Vec<_>>())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        Ok(table(&cells))
    }
}

/// A map value from string pairs (ps rows, headers).
pub fn tv_map(pairs: Vec<(&str, TV)>) -> TV {
    TV::Map(Arc::new(
        pairs.into_iter().map(|(k, v)| (Arc::from(k), v)).collect(),
    ))
}

pub fn tv_s(s: impl Into<String>) -> TV {
    TV::String(s.into().into())
}

/// Go's `time.Time.String()` for a unix time, local zone as UTC
/// ("2025-02-02 12:01:25 +0000 UTC").
pub fn go_time(unix: i64) -> String {
    let t = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_docker_ps_layout() {
        let rows = vec![
            vec![
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ],
            vec![
                "55909b0901dd",
                "centos7.4_64",
                "\"/bin/bash\"",
                "32 seconds ago",
                "Up 31 seconds",
                "",
                "1_centos7_amd64",
            ],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect())
        .collect::<Vec<Vec<String>>>();
        let t = table(&rows);
        // SAMPLE-01
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE          COMMAND       CREATED          STATUS          PORTS     NAMES\n\
             55909b0901dd   centos7.4_64   \"/bin/bash\"   32 seconds ago   Up 31 seconds             1_centos7_amd64\n"
        );
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(7_830_000.0), "7.83MB");
        assert_eq!(human_size(192_000_000.0), "192MB");
        assert_eq!(human_size(701_400_000.0), "701MB");
        assert_eq!(human_size(4100.0), "4.1kB");
        assert_eq!(human_size(12.0), "12B");
        assert_eq!(human_size(1_000_000.0), "1MB");
    }

    #[test]
    fn command_column() {
        assert_eq!(
            go_quote(&ellipsis(
                "/docker-entrypoint.sh nginx -g 'daemon off;'",
                20
            )),
            "\"/docker-entrypoint.…\""
        );
        assert_eq!(go_quote(&ellipsis("echo hello", 20)), "\"echo hello\"");
    }

    #[test]
    fn templates() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"Z":1,"A":{"y":"1","b":null},"L":["a","b"]}"#).unwrap();
        let tv = to_tv(&v);
        let f =
            Format::parse("{{json .}} {{join .L \",\"}} {{upper \"x\"}} {{truncate \"abcdef\" 3}}")
                .unwrap();
        assert_eq!(
            f.render(&tv).unwrap(),
            r#"{"Z":1,"A":{"y":"1","b":null},"L":["a","b"]} a,b X abc"#
        );
        let f = Format::parse("table {{.A}}\\t{{.B}}").unwrap();
        assert!(f.table);
        let h = tv_map(vec![("A", tv_s("COL A")), ("B", tv_s("B"))]);
        let r = tv_map(vec![("A", tv_s("x")), ("B", tv_s("y"))]);
        assert_eq!(
            f.render_all(Some(&h), &[r]).unwrap(),
            "COL A     B\nx         y\n"
        );
        assert_eq!(
            rewrite_label_calls("{{.Label \"a.b\"}} {{.Labels}}"),
            "{{__label $ \"a.b\"}} {{.Labels}}"
        );
    }
}
