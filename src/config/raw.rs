//! The pipeline file as written: serde types that mirror the TOML, with
//! spans kept for messages, and a pass over the parsed document that finds
//! every unknown key, with the keys each table allows read from those types
//! (serde's `deny_unknown_fields` would stop at the first, and before any
//! other problem is found).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Debug, Deserialize)]
pub struct RawPipeline {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub cadence: Option<Spanned<String>>,
    /// The first month of the fiscal year; 1 (the default) is the calendar.
    #[serde(default)]
    pub fiscal_year_start_month: Option<Spanned<i64>>,
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
pub struct RawStorage {
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub allow_http: Option<bool>,
    #[serde(default)]
    pub options: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
pub struct RawInputs {
    pub accounts: RawInput,
    pub usage: RawInput,
}

#[derive(Debug, Deserialize)]
pub struct RawInput {
    pub uri: Spanned<String>,
    #[serde(default)]
    pub columns: BTreeMap<Spanned<String>, Spanned<String>>,
    /// How old the newest account snapshot at as_of may be (accounts with
    /// a `snapshot_date` history only).
    #[serde(default)]
    pub freshness: Option<Spanned<RawFreshness>>,
}

#[derive(Debug, Deserialize)]
pub struct RawFreshness {
    pub warn_after_days: Option<Spanned<i64>>,
    pub error_after_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
pub struct RawOutput {
    pub uri: Spanned<String>,
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    #[serde(default)]
    pub passthrough: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
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
pub struct RawFeature {
    pub name: Spanned<String>,
    pub expr: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
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
pub struct RawRule {
    pub name: Spanned<String>,
    pub label: Spanned<String>,
    pub when: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

/// The keys a table may hold: the fields of its serde type, or any key
/// (params, column mappings, quality policies, storage options).
enum Keys {
    Fields(&'static [&'static str]),
    Free,
}

/// Each table of the file, by its dotted path, and the type it is read
/// into: the allowed keys come from the types themselves, so they cannot
/// drift from what is read.
fn schema(path: &str) -> Option<Keys> {
    Some(match path {
        "" => Keys::Fields(fields::<RawPipeline>()),
        "inputs" => Keys::Fields(fields::<RawInputs>()),
        "inputs.accounts" | "inputs.usage" => Keys::Fields(fields::<RawInput>()),
        "inputs.accounts.freshness" | "inputs.usage.freshness" => Keys::Fields(fields::<RawFreshness>()),
        "output" => Keys::Fields(fields::<RawOutput>()),
        "storage" => Keys::Fields(fields::<RawStorage>()),
        "aggregates" => Keys::Fields(fields::<RawAggregate>()),
        "features" => Keys::Fields(fields::<RawFeature>()),
        "segmentations" => Keys::Fields(fields::<RawSegmentation>()),
        "segmentations.rules" => Keys::Fields(fields::<RawRule>()),
        "params" | "quality" | "storage.options" | "inputs.accounts.columns" | "inputs.usage.columns" => Keys::Free,
        _ => return None,
    })
}

/// The field names of a struct's derived `Deserialize`, asked of the
/// derive itself: it names its fields when asked to read a struct.
fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only structs are probed"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut out: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut out));
    out
}

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
    let Some(Keys::Fields(allowed)) = schema(path) else {
        return;
    };
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
