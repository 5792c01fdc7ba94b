//! Docker's JSON progress messages (pull, push, load) rendered like the docker
//! CLI: on a terminal one line per layer id, updated in place with a bar;
//! on a pipe plain `id: status` lines without the byte counts (IMG-09, REG-02).

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// Renders a stream of progress messages.
pub struct Progress {
    tty: bool,
    width: usize,
    /// Line number of each id's line (0 = first printed line).
    ids: Vec<(String, usize)>,
    lines: usize,
}

impl Progress {
    pub fn stdout() -> Progress {
        let tty = std::io::stdout().is_terminal();
        Progress {
            tty,
            width: terminal_width().unwrap_or(200),
            ids: Vec::new(),
            lines: 0,
        }
    }

    /// Show one message (errors are the caller's).
    pub fn show(&mut self, v: &Value) {
        let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("");
        let id = v.get("id").and_then(|i| i.as_str()).unwrap_or("");
        let detail = v.get("progressDetail");
        let current = detail
            .and_then(|d| d.get("current"))
            .and_then(|n| n.as_i64())
            .unwrap_or(0);
        let total = detail
            .and_then(|d| d.get("total"))
            .and_then(|n| n.as_i64())
            .unwrap_or(0);
        let has_progress = current > 0 || total > 0;
        if status.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if !self.tty {
            // A pipe gets the status changes only, as docker prints them.
            if has_progress {
                return;
            }
            let _ = if id.is_empty() {
                writeln!(out, "{status}")
            } else {
                writeln!(out, "{id}: {status}")
            };
            return;
        }
        let mut text = if id.is_empty() {
            status.to_string()
        } else {
            format!("{id}: {status}")
        };
        if has_progress {
            text.push(' ');
            text.push_str(&bar(current, total, self.width));
        }
        if text.len() > self.width.saturating_sub(1) && self.width > 10 {
            text.truncate(self.width - 1);
        }
        match self.ids.iter().find(|(i, _)| i == id).map(|(_, l)| *l) {
            Some(line) if !id.is_empty() => {
                let up = self.lines - line;
                let _ = write!(out, "\x1b[{up}A\x1b[2K\r{text}\x1b[{up}B\r");
            }
            _ => {
                if !id.is_empty() {
                    self.ids.push((id.to_string(), self.lines));
                }
                let _ = writeln!(out, "\x1b[2K\r{text}");
                self.lines += 1;
            }
        }
        let _ = out.flush();
    }
}

fn terminal_width() -> Option<usize> {
    super::tty::size().map(|(_, w)| w as usize)
}

/// docker's `[=====>     ]  1.23MB/4.56MB` (decimal units, like go-units).
pub fn bar(current: i64, total: i64, width: usize) -> String {
    if total <= 0 {
        return format!("{:>8}", human(current));
    }
    let pct = (current as f64 / total as f64).clamp(0.0, 1.0);
    let numbers = format!("{:>8}/{}", human(current), human(total));
    if width < 110 {
        // docker drops the bar on narrow terminals.
        return numbers;
    }
    let filled = (pct * 50.0) as usize;
    let arrow = if filled < 50 { ">" } else { "" };
    let filled_str = "=".repeat(filled.min(50));
    let pad = " ".repeat(50usize.saturating_sub(filled).saturating_sub(arrow.len()));
    format!("[{filled_str}{arrow}{pad}] {numbers}")
}

/// go-units HumanSize: 4 significant digits, 1000-based.
pub fn human(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    // %.4g: four significant digits, trailing zeros dropped.
    let digits_before = format!("{}", v.trunc() as i64).len();
    let prec = 4usize.saturating_sub(digits_before);
    let s = if prec == 0 {
        format!("{}", v.round() as i64)
    } else {
        let t = format!("{v:.prec$}");
        let t = t.trim_end_matches('0').trim_end_matches('.').to_string();
        if t.is_empty() {
            s
        } else {
            t
        }
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_like_go_units() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1234), "1.234kB");
        assert_eq!(human(1_500_000), "1.5MB");
        assert_eq!(human(52_428_800), "52.43MB");
        assert_eq!(human(2_000_000_000), "2GB");
    }

    #[test]
    fn bars() {
        assert_eq!(bar(500, 1000, 80), "    500B/1kB");
        let b = bar(500, 1000, 120);
        assert!(b.starts_with("[=========================>"), "{b}");
        assert!(b.ends_with("]     500B/1kB"), "{b}");
        assert_eq!(b.len(), 53 + 12);
        assert_eq!(bar(1000, 1000, 120).matches('=').count(), 50);
        assert_eq!(bar(4096, 0, 120), " 4.096kB");
    }
}
