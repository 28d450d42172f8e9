//! The inputs, the output and `[storage]`: where the data is, and that no
//! credential is written in the file.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::Compiler;
use crate::config::raw::{self, RawPipeline};
use crate::config::*;
use crate::error::nearest;

impl Compiler<'_> {
    /// `[output]`: a root, free of credentials, and a table format.
    pub(super) fn output(&mut self, raw: &raw::RawOutput) -> Format {
        if raw.uri.get_ref().trim().is_empty() {
            self.problem(raw.uri.span().start, "[output] `uri` is empty".into(), None);
        }
        self.uri_credentials(&raw.uri, "output");
        match &raw.format {
            None => Format::default(),
            Some(f) => f.get_ref().parse().unwrap_or_else(|message: String| {
                // A TOML string value: suggested as it is written.
                let suggestion = nearest(f.get_ref(), Format::NAMES.iter().copied())
                    .first()
                    .map(|n| format!("did you mean \"{n}\"?"));
                self.problem(f.span().start, format!("[output] {message}"), suggestion);
                Format::default()
            }),
        }
    }

    /// `[storage]`: endpoint, region and allow_http, and other object_store
    /// options by name. Credentials are refused: they belong in the
    /// environment, not in a file that every snapshot records.
    pub(super) fn storage(&mut self, raw: &RawPipeline) -> crate::storage::StorageOptions {
        let mut out = crate::storage::StorageOptions::default();
        let Some(s) = &raw.storage else {
            return out;
        };
        out.endpoint = s.endpoint.as_ref().map(|e| e.get_ref().clone());
        out.region = s.region.as_ref().map(|r| r.get_ref().clone());
        out.allow_http = s.allow_http;
        let credentials_help = "credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*), never from the pipeline file, which every snapshot records";
        for (name, value) in [("endpoint", &s.endpoint), ("region", &s.region)] {
            if let Some(value) = value
                && crate::storage::carries_credentials(value.get_ref())
            {
                self.problem(
                    value.span().start,
                    format!("[storage] `{name}` carries credentials"),
                    Some(credentials_help.into()),
                );
            }
        }
        for (key, value) in &s.options {
            let k = key.get_ref().to_ascii_lowercase();
            let refused = match crate::storage::option_kind(&k) {
                crate::storage::OptionKind::Allowed => None,
                crate::storage::OptionKind::Credential => Some((
                    "carries a credential, names an identity or says where one is kept: not allowed in a pipeline file",
                    credentials_help.to_string(),
                )),
                crate::storage::OptionKind::FromUri => Some((
                    "names the bucket or container, which the URI gives: not allowed in a pipeline file",
                    "put it in the URI (`s3://bucket/...`, `az://container/...`)".to_string(),
                )),
                crate::storage::OptionKind::Unknown => Some((
                    "is not an option quadrant accepts",
                    crate::error::did_you_mean(&k, crate::storage::allowed_option_names().iter().map(String::as_str))
                        .unwrap_or_else(|| "the options quadrant accepts are listed in the README (Storage)".into()),
                )),
            };
            if let Some((why, help)) = refused {
                self.problem(
                    key.span().start,
                    format!("[storage] option `{}` {why}", key.get_ref()),
                    Some(help),
                );
                continue;
            }
            if let toml::Value::String(v) = value.get_ref()
                && crate::storage::carries_credentials(v)
            {
                self.problem(
                    value.span().start,
                    format!("[storage] option `{}` carries credentials in its value", key.get_ref()),
                    Some(credentials_help.into()),
                );
                continue;
            }
            let text = match value.get_ref() {
                toml::Value::String(v) => v.clone(),
                toml::Value::Boolean(v) => v.to_string(),
                toml::Value::Integer(v) => v.to_string(),
                _ => {
                    self.problem(
                        value.span().start,
                        format!(
                            "[storage] option `{}` must be a string, boolean or integer",
                            key.get_ref()
                        ),
                        None,
                    );
                    continue;
                }
            };
            out.extra.push((k, text));
        }
        out
    }

    /// A URI with a user name and password, or a SAS token, in it is
    /// refused: shown masked, never as written.
    pub(super) fn uri_credentials(&mut self, uri: &Spanned<String>, section: &str) {
        if crate::storage::carries_credentials(uri.get_ref()) {
            self.problem(
                uri.span().start,
                format!(
                    "[{section}] `uri` carries credentials (`{}`): not accepted in a pipeline file",
                    crate::redact::text(&crate::redact::uri(uri.get_ref()))
                ),
                Some("credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*), never from the pipeline file, which every snapshot records".into()),
            );
        }
    }

    pub(super) fn input(&mut self, raw: &raw::RawInput, section: &str) -> Input {
        if raw.uri.get_ref().trim().is_empty() {
            self.problem(raw.uri.span().start, format!("[{section}] `uri` is empty"), None);
        }
        self.uri_credentials(&raw.uri, section);
        let mut columns = BTreeMap::new();
        let mut sources = BTreeSet::new();
        for (ours, theirs) in &raw.columns {
            self.identifier(ours, "mapped column");
            if theirs.get_ref().is_empty() {
                self.problem(
                    theirs.span().start,
                    format!("the column mapped to `{}` is empty", ours.get_ref()),
                    None,
                );
            }
            if !sources.insert(theirs.get_ref().clone()) {
                self.problem(
                    theirs.span().start,
                    format!("column `{}` of the data is mapped twice", theirs.get_ref()),
                    None,
                );
            }
            columns.insert(ours.get_ref().clone(), theirs.get_ref().clone());
        }
        let freshness = raw.freshness.as_ref().map(|f| self.freshness(f, section));
        Input {
            uri: raw.uri.get_ref().trim().to_string(),
            columns,
            freshness,
        }
    }

    /// `[inputs.accounts.freshness]`: whole days, warn before error.
    pub(super) fn freshness(&mut self, raw: &Spanned<raw::RawFreshness>, section: &str) -> crate::config::Freshness {
        if section != "inputs.accounts" {
            self.problem(
                raw.span().start,
                format!("[{section}.freshness]: freshness applies to the accounts' snapshot_date history"),
                Some("move it to [inputs.accounts.freshness]; the usage's dates are checked against every window a cycle reads".into()),
            );
        }
        let mut days = |value: &Option<Spanned<i64>>, key: &str| {
            let v = value.as_ref()?;
            match u32::try_from(*v.get_ref()) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.problem(
                        v.span().start,
                        format!("[{section}.freshness] `{key}` must be a whole number of days, 0 or more"),
                        None,
                    );
                    None
                }
            }
        };
        let f = raw.get_ref();
        let out = crate::config::Freshness {
            warn_after_days: days(&f.warn_after_days, "warn_after_days"),
            error_after_days: days(&f.error_after_days, "error_after_days"),
        };
        if let (Some(w), Some(e)) = (out.warn_after_days, out.error_after_days)
            && w > e
        {
            self.problem(
                raw.span().start,
                format!("[{section}.freshness]: warn_after_days ({w}) is after error_after_days ({e})"),
                Some("a warning comes before the error: make warn_after_days the smaller".into()),
            );
        }
        out
    }
}
