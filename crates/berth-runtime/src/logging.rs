//! Logging: stderr by default, or `--log FILE` in text or runc-style JSON.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub fn init(log: Option<&Path>, format: &str, debug: bool) {
    let level = if debug {
        "debug"
    } else {
        "warn,libcgroups=error"
    };
    let filter = EnvFilter::try_from_env("BERTH_RUNTIME_LOG").unwrap_or_else(|_| level.into());
    let file = log.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    match (file, format) {
        (Some(f), "json") => {
            let _ = tracing_subscriber::registry()
                .with(JsonLayer(Mutex::new(f)).with_filter(filter))
                .try_init();
        }
        (Some(f), _) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(Mutex::new(f))
                .try_init();
        }
        (None, _) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
}

/// One `{"level":..,"msg":..,"time":..}` object per line, like runc's
/// logrus JSON (what containerd reads back on errors).
struct JsonLayer(Mutex<File>);

#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        let k = if f.name() == "message" {
            "msg"
        } else {
            f.name()
        };
        self.0.insert(k.into(), v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.record_str(f, &format!("{v:?}"));
    }
}

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            _ => "debug",
        };
        fields.0.insert("level".into(), level.into());
        let now = berth_runtime::rfc3339_nano(chrono::Utc::now());
        fields.0.insert("time".into(), now.into());
        let mut line = serde_json::Value::Object(fields.0).to_string();
        line.push('\n');
        if let Ok(mut f) = self.0.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
