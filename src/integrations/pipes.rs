//! Dagster Pipes: when quadrant runs under Dagster's Pipes clients (the
//! `DAGSTER_PIPES_CONTEXT` and `DAGSTER_PIPES_MESSAGES` variables are set),
//! it reads the run's context (the partition key is the cycle), sends its
//! logs through Pipes, and reports an asset materialization for the cycle
//! with the run's metadata.
//!
//! The protocol: each variable is base64 of zlib-compressed JSON naming a
//! file (`{"path": ...}`) or carrying the value itself (`{"env": ...}` for
//! the context); messages are JSON lines appended to the messages file.

use std::io::{Read, Write};
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use serde_json::{Value, json};

const PROTOCOL: &str = "0.1";

pub struct Pipes {
    context: Value,
    messages: Mutex<std::fs::File>,
}

static PIPES: OnceLock<Option<Pipes>> = OnceLock::new();

fn decode(value: &str) -> Option<Value> {
    let compressed = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

fn open() -> Option<Pipes> {
    let context_param = decode(&std::env::var("DAGSTER_PIPES_CONTEXT").ok()?)?;
    let messages_param = decode(&std::env::var("DAGSTER_PIPES_MESSAGES").ok()?)?;
    let context = match (&context_param["path"], &context_param["env"]) {
        (Value::String(path), _) => serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?,
        (_, Value::Object(_)) => context_param["env"].clone(),
        _ => return None,
    };
    let path = messages_param["path"].as_str()?;
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
    let pipes = Pipes {
        context,
        messages: Mutex::new(file),
    };
    pipes.send("opened", json!({ "extras": {} }));
    Some(pipes)
}

/// The Pipes session, when quadrant runs under Dagster.
pub fn get() -> Option<&'static Pipes> {
    PIPES.get_or_init(open).as_ref()
}

impl Pipes {
    fn send(&self, method: &str, params: Value) {
        let line = json!({ "__dagster_pipes_version": PROTOCOL, "method": method, "params": params });
        if let Ok(mut file) = self.messages.lock() {
            // One write with its newline: Dagster tails the file line by
            // line, and a line seen before its newline (`writeln!` writes
            // the two apart) was taken as a message, the newline then as a
            // broken one, and the messages after it were lost.
            let line = format!("{}\n", crate::redact::text(&line.to_string()));
            let _ = file.write_all(line.as_bytes()).and_then(|()| file.flush());
        }
    }

    /// The partition key of the Dagster run: the cycle to compute.
    pub fn partition_key(&self) -> Option<&str> {
        self.context["partition_key"].as_str()
    }

    fn asset_key(&self) -> Option<&str> {
        self.context["asset_keys"].as_array()?.first()?.as_str()
    }

    pub fn log(&self, level: &str, message: &str) {
        self.send("log", json!({ "message": message, "level": level }));
    }

    /// Reports the materialization of the cycle's snapshot.
    pub fn materialized(&self, metadata: &[(&str, Value)]) {
        let metadata: serde_json::Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| {
                let kind = match v {
                    Value::Number(n) if n.is_i64() || n.is_u64() => "int",
                    Value::Number(_) => "float",
                    Value::String(_) => "text",
                    Value::Bool(_) => "bool",
                    _ => "json",
                };
                (k.to_string(), json!({ "raw_value": v, "type": kind }))
            })
            .collect();
        self.send(
            "report_asset_materialization",
            json!({ "asset_key": self.asset_key(), "metadata": metadata, "data_version": null }),
        );
    }

    pub fn close(&self, error: Option<&str>) {
        let exception = error.map(|message| {
            json!({ "name": "QuadrantError", "message": message, "stack": [], "cause": null, "context": null })
        });
        self.send("closed", json!({ "exception": exception }));
    }
}

/// A tracing layer that sends quadrant's log events to Dagster through Pipes.
pub struct PipesLayer;

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PipesLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let Some(pipes) = get() else { return };
        let level = *event.metadata().level();
        if level > tracing::Level::INFO || !event.metadata().target().starts_with("quadrant") {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match level {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            _ => "INFO",
        };
        pipes.log(level, &message.0);
    }
}
