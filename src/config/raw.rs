//! The pipeline file as written: serde types that mirror the TOML, with
//! spans kept for messages, and a pass over the parsed document that finds
//! every unknown key (serde alone would stop at the first).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub cadence: Option<Spanned<String>>,
    pub inputs: RawInputs,
    pub output: RawOutput,
    #[serde(default)]
    pub params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    pub aggregates: Vec<RawAggregate>,
    #[serde(default)]
    pub features: Vec<RawFeature>,
    #[serde(default)]
    pub segmentations: Vec<RawSegmentation>,
    #[serde(default)]
    pub quality: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    pub storage: Option<RawStorage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub allow_http: Option<bool>,
    #[serde(default)]
    pub options: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInputs {
    pub accounts: RawInput,
    pub usage: RawInput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub uri: Spanned<String>,
    #[serde(default)]
    pub columns: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub uri: Spanned<String>,
    #[serde(default)]
    pub passthrough: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregate {
    pub name: Spanned<String>,
    pub column: Spanned<String>,
    pub agg: Spanned<String>,
    pub window_days: Spanned<i64>,
    #[serde(default)]
    pub offset_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeature {
    pub name: Spanned<String>,
    pub expr: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSegmentation {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub x: Option<Spanned<String>>,
    #[serde(default)]
    pub y: Option<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    pub label: Spanned<String>,
    pub when: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

/// The keys each table may hold. `*` marks a table whose keys are free
/// (params, column mappings, quality policies).
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "name",
            "description",
            "cadence",
            "inputs",
            "output",
            "params",
            "aggregates",
            "features",
            "segmentations",
            "quality",
            "storage",
        ],
    ),
    ("inputs", &["accounts", "usage"]),
    ("inputs.accounts", &["uri", "columns"]),
    ("inputs.usage", &["uri", "columns"]),
    ("inputs.accounts.columns", &["*"]),
    ("inputs.usage.columns", &["*"]),
    ("output", &["uri", "passthrough"]),
    ("params", &["*"]),
    ("quality", &["*"]),
    ("storage", &["endpoint", "region", "allow_http", "options"]),
    ("storage.options", &["*"]),
    (
        "aggregates",
        &["name", "column", "agg", "window_days", "offset_days", "description"],
    ),
    ("features", &["name", "expr", "description"]),
    ("segmentations", &["name", "description", "default", "x", "y", "rules"]),
    ("segmentations.rules", &["name", "label", "when", "description"]),
];

/// An unknown key: its place in the text, its dotted path, and the keys
/// that are allowed there.
pub struct UnknownKey {
    pub span: std::ops::Range<usize>,
    pub path: String,
    pub key: String,
    pub allowed: &'static [&'static str],
}

/// Every key that the schema does not allow, in file order.
pub fn unknown_keys(doc: &DeTable) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out.sort_by_key(|u| u.span.start);
    out
}

fn walk(table: &DeTable, path: &str, out: &mut Vec<UnknownKey>) {
    let Some((_, allowed)) = SCHEMA.iter().find(|(p, _)| *p == path) else {
        return;
    };
    if allowed == &["*"] {
        return;
    }
    for (key, value) in table {
        let name: &str = key.get_ref();
        if !allowed.contains(&name) {
            out.push(UnknownKey {
                span: key.span(),
                path: path.to_string(),
                key: name.to_string(),
                allowed,
            });
            continue;
        }
        let child = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        match value.get_ref() {
            DeValue::Table(t) => walk(t, &child, out),
            DeValue::Array(items) => {
                for item in items {
                    if let DeValue::Table(t) = item.get_ref() {
                        walk(t, &child, out);
                    }
                }
            }
            _ => {}
        }
    }
}
