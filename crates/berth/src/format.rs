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
}
