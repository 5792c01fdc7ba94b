//! Reading Docker json-file logs (LOG-01, SAMPLE-11): one JSON object per
//! line, `{"log":"...","stream":"stdout|stderr","time":"RFC3339Nano"}`.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// Keep only the last N entries (`--tail`); `None` = all.
    pub tail: Option<usize>,
    /// Unix seconds; entries before/after are dropped.
    pub since: Option<f64>,
    pub until: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// 1 = stdout, 2 = stderr (the stdcopy stream ids).
    pub stream: u8,
    pub time: String,
    pub line: Vec<u8>,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// Entries from byte `offset` on, and the offset after the last complete
/// line. A missing file is an empty log.
pub fn read(path: &Path, offset: u64, opts: &LogOptions) -> Result<(Vec<LogEntry>, u64)> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], offset)),
        Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
    };
    let mut r = BufReader::new(file);
    r.seek(SeekFrom::Start(offset)).ctx(|| "seek log".into())?;
    let mut pos = offset;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).ctx(|| "read log".into())?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break; // EOF or a line still being written
        }
        pos += n as u64;
        let Ok(l) = serde_json::from_slice::<Line>(&buf) else {
            continue;
        };
        let stream = if l.stream == "stderr" { 2 } else { 1 };
        if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
            continue;
        }
        if opts.since.is_some() || opts.until.is_some() {
            let t = chrono::DateTime::parse_from_rfc3339(&l.time)
                .map(|t| t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9)
                .unwrap_or(0.0);
            if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
                continue;
            }
        }
        out.push(LogEntry {
            stream,
            time: l.time,
            line: l.log.into_bytes(),
        });
    }
    if let Some(n) = opts.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok((out, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_filters_and_tails() {
        let p = std::env::temp_dir().join(format!("berth-logs-{}.log", std::process::id()));
        std::fs::write(
            &p,
            concat!(
                r#"{"log":"a\n","stream":"stdout","time":"2026-01-01T00:00:00.000000001Z"}"#,
                "\n",
                r#"{"log":"b\n","stream":"stderr","time":"2026-01-01T00:00:01Z"}"#,
                "\n",
                r#"{"log":"c\n","stream":"stdout","time":"2026-01-01T00:00:02Z"}"#,
                "\n",
                r#"{"log":"partial"#,
            ),
        )
        .unwrap();
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let (e, off) = read(&p, 0, &all).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].stream, 2);
        assert_eq!(e[2].line, b"c\n");
        let (e2, _) = read(&p, off, &all).unwrap();
        assert!(e2.is_empty(), "partial line is not returned");
        let out_only = LogOptions {
            stdout: true,
            tail: Some(1),
            ..Default::default()
        };
        let (e, _) = read(&p, 0, &out_only).unwrap();
        assert_eq!(
            e.iter().map(|x| x.line.clone()).collect::<Vec<_>>(),
            vec![b"c\n".to_vec()]
        );
        std::fs::remove_file(&p).unwrap();
    }
}
