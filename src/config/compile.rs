//! Raw pipeline -> checked [`Pipeline`]: names, windows, expressions, feature
//! dependencies and rules are checked here, and every problem is collected
//! before anything is returned.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::DeTable;

use super::raw::{self, RawPipeline};
use super::*;
use crate::error::{Problem, did_you_mean};
use crate::expr::{self, Names};

pub fn compile(text: &str, path: &str) -> Result<Pipeline> {
    let mut c = Compiler {
        path,
        text,
        problems: Vec::new(),
        previous: BTreeMap::new(),
        param_defs: BTreeMap::new(),
        reported_params: BTreeSet::new(),
    };
    let doc = DeTable::parse(text).map_err(|e| c.toml_error(&e))?;
    // Unknown keys are reported with every other problem of the file.
    for u in raw::unknown_keys(doc.get_ref()) {
        let place = if u.path.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{}]", u.path)
        };
        let help = did_you_mean(&u.key, u.allowed.iter().copied())
            .unwrap_or_else(|| format!("the keys allowed here are: {}", u.allowed.join(", ")));
        c.problem(u.span.start, format!("unknown key `{}` {place}", u.key), Some(help));
    }
    let raw: RawPipeline = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let problem = c.toml_problem(&e);
            c.problems.push(problem);
            return Err(Error::Config(c.problems));
        }
    };
    let pipeline = c.pipeline(raw);
    if c.problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(Error::Config(c.problems))
    }
}

struct Compiler<'a> {
    path: &'a str,
    text: &'a str,
    problems: Vec<Problem>,
    /// The snapshot columns `prev(...)` may name, with their types.
    previous: BTreeMap<String, Type>,
    /// Where each param's value is defined, so that a param of the wrong
    /// type is reported there (once), not at each of its uses.
    param_defs: BTreeMap<String, usize>,
    reported_params: BTreeSet<String>,
}

/// The names an expression reads, except those inside `prev(...)`: the
/// previous cycle's values are no dependency of this cycle's.
fn names_read(ast: &expr::Ast) -> Vec<String> {
    fn visit(ast: &expr::Ast, out: &mut Vec<String>) {
        match &ast.kind {
            Kind::Name(n) => out.push(n.clone()),
            Kind::Call { name, .. } if name.eq_ignore_ascii_case("prev") => {}
            _ => ast.children().into_iter().for_each(|c| visit(c, out)),
        }
    }
    let mut out = Vec::new();
    visit(ast, &mut out);
    out
}

/// Where a name used in expressions comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    AccountColumn,
    Param,
    Aggregate,
    Feature,
    Segmentation,
}

impl Origin {
    fn noun(self) -> &'static str {
        match self {
            Origin::AccountColumn => "account column",
            Origin::Param => "param",
            Origin::Aggregate => "aggregate",
            Origin::Feature => "feature",
            Origin::Segmentation => "segmentation",
        }
    }

    fn with_article(self) -> String {
        match self {
            Origin::AccountColumn | Origin::Aggregate => format!("an {}", self.noun()),
            _ => format!("a {}", self.noun()),
        }
    }
}

impl<'a> Compiler<'a> {
    fn place(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{column}", self.path)
    }

    fn problem(&mut self, offset: usize, message: String, help: Option<String>) {
        let mut p = Problem::new(message).at(self.place(offset));
        p.help = help;
        self.problems.push(p);
    }

    fn toml_error(&self, e: &toml::de::Error) -> Error {
        Error::Config(vec![self.toml_problem(e)])
    }

    fn toml_problem(&self, e: &toml::de::Error) -> Problem {
        let message = e.message().trim().to_string();
        let place = e
            .span()
            .map(|s| self.place(s.start))
            .unwrap_or_else(|| self.path.to_string());
        Problem::new(message).at(place)
    }

    /// The offset in the file of byte `offset` inside a string value.
    fn inside(&self, value: &Spanned<String>, offset: usize) -> usize {
        // Inside inline tables the span can start at the space before the quote.
        let mut start = value.span().start.min(self.text.len());
        start += self.text[start..].len() - self.text[start..].trim_start().len();
        let rest = &self.text[start..];
        let quote = if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            // A newline right after the opening quotes is not part of the value.
            3 + usize::from(rest[3..].starts_with('\n'))
        } else {
            1
        };
        start + quote + offset
    }

    fn identifier(&mut self, name: &Spanned<String>, what: &str) -> bool {
        let n = name.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            self.problem(
                name.span().start,
                format!("{what} `{n}` is not a valid name"),
                Some("use letters, digits and `_`, starting with a letter (at most 64 characters)".into()),
            );
        }
        ok
    }

    fn pipeline(&mut self, raw: RawPipeline) -> Pipeline {
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() || name.len() > 100 || name.contains(['/', '\\', '\n']) {
            self.problem(
                raw.name.span().start,
                "the pipeline `name` must be a short name without slashes".into(),
                None,
            );
        }
        let cadence = match &raw.cadence {
            None => Cadence::Quarter,
            Some(c) => match c.get_ref().as_str() {
                "quarter" => Cadence::Quarter,
                "half" => Cadence::Half,
                "month" => Cadence::Month,
                "year" => Cadence::Year,
                other => {
                    self.problem(
                        c.span().start,
                        format!("unknown cadence `{other}`"),
                        Some("use one of: quarter, half, month, year".into()),
                    );
                    Cadence::Quarter
                }
            },
        };
        let fiscal_year_start_month = match &raw.fiscal_year_start_month {
            None => 1,
            Some(m) => match u32::try_from(*m.get_ref()) {
                Ok(month @ 1..=12) => month,
                _ => {
                    self.problem(
                        m.span().start,
                        format!("fiscal_year_start_month = {} is not a month", m.get_ref()),
                        Some("use 1 (January: the calendar year, the default) to 12; 2 makes a February-to-January fiscal year".into()),
                    );
                    1
                }
            },
        };
        let accounts = self.input(&raw.inputs.accounts, "inputs.accounts");
        let usage = self.input(&raw.inputs.usage, "inputs.usage");
        if raw.output.uri.get_ref().trim().is_empty() {
            self.problem(raw.output.uri.span().start, "[output] `uri` is empty".into(), None);
        }
        self.uri_credentials(&raw.output.uri, "output");
        let output_format = match &raw.output.format {
            None => crate::config::Format::default(),
            Some(f) => f.get_ref().parse().unwrap_or_else(|message: String| {
                let suggestion = crate::config::Format::NAMES
                    .iter()
                    .map(|n| (strsim::levenshtein(n, f.get_ref()), *n))
                    .min()
                    .filter(|(d, _)| *d <= 2)
                    .map(|(_, n)| format!("did you mean \"{n}\"?"));
                self.problem(f.span().start, format!("[output] {message}"), suggestion);
                crate::config::Format::default()
            }),
        };

        // Every name an expression can use, and where it comes from.
        let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
        let mut types: BTreeMap<String, Type> = BTreeMap::new();
        for (column, ty, _) in ACCOUNT_COLUMNS {
            origins.insert(column.to_string(), Origin::AccountColumn);
            types.insert(column.to_string(), *ty);
        }
        for column in accounts.columns.keys() {
            origins.insert(column.clone(), Origin::AccountColumn);
            types.entry(column.clone()).or_insert(Type::Any);
        }
        let mut passthrough = Vec::new();
        for p in &raw.output.passthrough {
            if !self.identifier(p, "passthrough column") {
                continue;
            }
            let n = p.get_ref();
            if passthrough.contains(n) {
                self.problem(
                    p.span().start,
                    format!("passthrough column `{n}` is listed twice"),
                    None,
                );
            } else if RESERVED.contains(&n.as_str()) {
                self.problem(
                    p.span().start,
                    format!("`{n}` is always in the snapshot: leave it out of `passthrough`"),
                    None,
                );
            } else {
                passthrough.push(n.clone());
                origins.insert(n.clone(), Origin::AccountColumn);
                types.entry(n.clone()).or_insert(Type::Any);
            }
        }

        let params = self.params(&raw, &mut origins);
        let quality = self.quality(&raw);
        let storage = self.storage(&raw);
        let aggregates = self.aggregates(&raw, &mut origins, &mut types);
        // What prev(...) may read: every column of the snapshot. Features are
        // typed once they are checked.
        self.previous = types.clone();
        self.previous.insert("arr".into(), Type::Num);
        for f in &raw.features {
            self.previous.insert(f.name.get_ref().clone(), Type::Any);
        }
        for s in &raw.segmentations {
            let name = s.name.get_ref();
            for column in [name.clone(), format!("{name}_rule"), format!("{name}_since")] {
                self.previous.insert(column, Type::Str);
            }
        }
        let features = self.features(&raw, &params, &mut origins, &mut types);
        for f in &features {
            self.previous
                .insert(f.name.clone(), types.get(&f.name).copied().unwrap_or(Type::Any));
        }
        let segmentations = self.segmentations(&raw, &params, &mut origins, &types);
        self.reserve_prev_columns(&features, &segmentations, &origins);

        // The account columns that expressions and axis hints read.
        let mut account_columns: Vec<(String, Type)> = Vec::new();
        let mut note = |name: &str| {
            if origins.get(name) == Some(&Origin::AccountColumn) && !account_columns.iter().any(|(n, _)| n == name) {
                account_columns.push((name.to_string(), types[name]));
            }
        };
        // An account column read through prev(...) is kept in the snapshot
        // too, so that the next cycle finds it.
        for f in &features {
            f.expr.columns().iter().for_each(|c| note(c));
            f.expr.previous().iter().for_each(|c| note(c));
        }
        for s in &segmentations {
            for r in &s.rules {
                r.when.columns().iter().for_each(|c| note(c));
                r.when.previous().iter().for_each(|c| note(c));
            }
            s.x.iter().chain(s.y.iter()).for_each(|c| note(c));
        }

        let mut previous: Vec<(String, Type)> = Vec::new();
        let read = features
            .iter()
            .map(|f| &f.expr)
            .chain(segmentations.iter().flat_map(|s| s.rules.iter().map(|r| &r.when)));
        for name in read.flat_map(|e| e.previous()) {
            if !previous.iter().any(|(n, _)| *n == name) {
                let ty = self.previous.get(&name).copied().unwrap_or(Type::Any);
                previous.push((name, ty));
            }
        }

        Pipeline {
            name,
            description: raw.description.clone(),
            cadence,
            fiscal_year_start_month,
            path: self.path.to_string(),
            source: self.text.to_string(),
            hash: content_hash(self.text),
            accounts,
            usage,
            output_uri: raw.output.uri.get_ref().trim().to_string(),
            output_format,
            passthrough,
            params,
            aggregates,
            features,
            segmentations,
            quality,
            storage,
            account_columns,
            previous,
        }
    }

    /// `[storage]`: endpoint, region and allow_http, and other object_store
    /// options by name. Credentials are refused: they belong in the
    /// environment, not in a file that every snapshot records.
    fn storage(&mut self, raw: &RawPipeline) -> crate::storage::StorageOptions {
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
    fn uri_credentials(&mut self, uri: &Spanned<String>, section: &str) {
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

    fn input(&mut self, raw: &raw::RawInput, section: &str) -> Input {
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
    fn freshness(&mut self, raw: &Spanned<raw::RawFreshness>, section: &str) -> crate::config::Freshness {
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

    /// Records a name in the shared namespace, or reports the clash.
    /// `prev(x)` is kept in the snapshot as column `prev_x`: a name the
    /// pipeline defines may not be one of those.
    fn reserve_prev_columns(
        &mut self,
        features: &[Feature],
        segmentations: &[Segmentation],
        origins: &BTreeMap<String, Origin>,
    ) {
        let read = features
            .iter()
            .map(|f| &f.expr)
            .chain(segmentations.iter().flat_map(|s| s.rules.iter().map(|r| &r.when)))
            .flat_map(|e| e.previous());
        let mut seen = BTreeSet::new();
        for name in read {
            let column = crate::config::prev_column(&name);
            if let Some(origin) = origins.get(&column)
                && seen.insert(column.clone())
            {
                let mut p = Problem::new(format!(
                    "{} `{column}` has the name of the snapshot column that keeps prev({name})",
                    origin.noun()
                ));
                p.help = Some(format!("rename `{column}`"));
                self.problems.push(p);
            }
        }
    }

    fn define(&mut self, origins: &mut BTreeMap<String, Origin>, name: &Spanned<String>, origin: Origin) -> bool {
        let n = name.get_ref();
        if RESERVED.contains(&n.as_str()) || n.eq_ignore_ascii_case("as_of") {
            self.problem(
                name.span().start,
                format!("`{n}` is a reserved column name"),
                Some(format!("reserved names: {}", RESERVED.join(", "))),
            );
            return false;
        }
        if let Some(existing) = origins.get(n) {
            let message = if *existing == origin {
                format!("{} `{n}` is defined twice", origin.noun())
            } else {
                format!("{} `{n}` has the name of {}", origin.noun(), existing.with_article())
            };
            self.problem(
                name.span().start,
                message,
                Some(
                    "every param, aggregate, feature and segmentation (and its `_rule` column) needs a name of its own"
                        .into(),
                ),
            );
            return false;
        }
        origins.insert(n.clone(), origin);
        true
    }

    fn params(&mut self, raw: &RawPipeline, origins: &mut BTreeMap<String, Origin>) -> BTreeMap<String, Kind> {
        let mut params = BTreeMap::new();
        for (name, value) in &raw.params {
            if !self.identifier(name, "param") || !self.define(origins, name, Origin::Param) {
                continue;
            }
            let kind = match value.get_ref() {
                toml::Value::Integer(v) => Kind::Int(*v),
                toml::Value::Float(v) if v.is_finite() => Kind::Num(*v),
                toml::Value::String(s) => Kind::Str(s.clone()),
                toml::Value::Boolean(b) => Kind::Bool(*b),
                _ => {
                    self.problem(
                        value.span().start,
                        format!("param `{}` must be a number, a string or a boolean", name.get_ref()),
                        None,
                    );
                    // Still defined, so that its uses are not reported too.
                    Kind::Null
                }
            };
            self.param_defs.insert(name.get_ref().clone(), value.span().start);
            params.insert(name.get_ref().clone(), kind);
        }
        params
    }

    fn quality(&mut self, raw: &RawPipeline) -> Quality {
        let mut quality = Quality {
            policies: BTreeMap::new(),
            max_reject_ratio: None,
        };
        for (key, value) in &raw.quality {
            let k = key.get_ref().as_str();
            if k == "max_reject_ratio" {
                match value.get_ref() {
                    toml::Value::Float(v) if (0.0..=1.0).contains(v) => quality.max_reject_ratio = Some(*v),
                    toml::Value::Integer(v) if (0..=1).contains(v) => quality.max_reject_ratio = Some(*v as f64),
                    _ => self.problem(
                        value.span().start,
                        "`max_reject_ratio` must be a number from 0 to 1".into(),
                        None,
                    ),
                }
                continue;
            }
            let Some(check) = Check::ALL.into_iter().find(|c| c.name() == k) else {
                let names = Check::ALL.iter().map(|c| c.name()).chain(["max_reject_ratio"]);
                let help = did_you_mean(k, names.clone())
                    .unwrap_or_else(|| format!("the checks are: {}", names.collect::<Vec<_>>().join(", ")));
                self.problem(
                    key.span().start,
                    format!("unknown data check `{k}` in [quality]"),
                    Some(help),
                );
                continue;
            };
            let policy = match value.get_ref().as_str() {
                Some("error") => Policy::Error,
                Some("warn") if check.allows_warn() => Policy::Warn,
                Some("warn") => {
                    self.problem(
                        value.span().start,
                        format!("`{k}` cannot be `warn`: a row without a usable key cannot be kept"),
                        Some("use `error` or `drop`".into()),
                    );
                    continue;
                }
                Some("drop") => Policy::Drop,
                _ => {
                    self.problem(
                        value.span().start,
                        format!("the policy of `{k}` must be \"error\", \"warn\" or \"drop\""),
                        None,
                    );
                    continue;
                }
            };
            quality.policies.insert(check, policy);
        }
        quality
    }

    fn aggregates(
        &mut self,
        raw: &RawPipeline,
        origins: &mut BTreeMap<String, Origin>,
        types: &mut BTreeMap<String, Type>,
    ) -> Vec<Aggregate> {
        let mut out = Vec::new();
        for a in &raw.aggregates {
            let named = self.identifier(&a.name, "aggregate") && self.define(origins, &a.name, Origin::Aggregate);
            let column_ok = self.identifier(&a.column, "usage column");
            if matches!(a.column.get_ref().as_str(), "account_id" | "date") {
                self.problem(
                    a.column.span().start,
                    format!(
                        "aggregate `{}` cannot aggregate the key column `{}`",
                        a.name.get_ref(),
                        a.column.get_ref()
                    ),
                    None,
                );
            }
            let agg = Agg::ALL.iter().find(|(n, _)| n == a.agg.get_ref()).map(|(_, g)| *g);
            if agg.is_none() {
                let names = Agg::ALL.iter().map(|(n, _)| *n);
                let help = did_you_mean(a.agg.get_ref(), names.clone())
                    .unwrap_or_else(|| format!("use one of: {}", names.collect::<Vec<_>>().join(", ")));
                self.problem(
                    a.agg.span().start,
                    format!("unknown agg `{}`", a.agg.get_ref()),
                    Some(help),
                );
            }
            let window = *a.window_days.get_ref();
            if !(1..=3660).contains(&window) {
                self.problem(
                    a.window_days.span().start,
                    format!(
                        "window_days of `{}` must be from 1 to 3660, found {window}",
                        a.name.get_ref()
                    ),
                    None,
                );
            }
            let offset = a.offset_days.as_ref().map_or(0, |o| *o.get_ref());
            if !(0..=3660).contains(&offset) {
                let at = a.offset_days.as_ref().map_or(a.name.span().start, |o| o.span().start);
                self.problem(
                    at,
                    format!(
                        "offset_days of `{}` must be from 0 to 3660, found {offset}",
                        a.name.get_ref()
                    ),
                    None,
                );
            }
            if named {
                // Defined even when broken, so its uses are not reported too.
                types.insert(a.name.get_ref().clone(), Type::Num);
            }
            if let (true, true, Some(agg)) = (named, column_ok, agg) {
                out.push(Aggregate {
                    name: a.name.get_ref().clone(),
                    column: a.column.get_ref().clone(),
                    agg,
                    window_days: window.clamp(1, 3660) as u32,
                    offset_days: offset.clamp(0, 3660) as u32,
                    description: a.description.clone(),
                });
            }
        }
        out
    }

    /// Parses an expression and checks it, reporting problems at their place
    /// in the file.
    fn expression(
        &mut self,
        text: &Spanned<String>,
        params: &BTreeMap<String, Kind>,
        types: &BTreeMap<String, Type>,
        context: &str,
    ) -> Option<expr::Resolved> {
        let ast = match expr::parse(text.get_ref()) {
            Ok(ast) => ast,
            Err(e) => {
                let at = self.inside(text, e.span.start);
                self.problem(at, format!("{context}: {}", e.message), None);
                return None;
            }
        };
        let names = Names {
            params,
            columns: types,
            previous: Some(&self.previous),
        };
        match expr::check(&ast, &names) {
            Ok(resolved) => Some(resolved),
            Err(errors) => {
                for e in errors {
                    // A param of the wrong type is reported at its definition.
                    let operand = text.get_ref().get(e.span.start..e.span.end).unwrap_or_default().trim();
                    if let (Some(&def), true) = (self.param_defs.get(operand), e.message.starts_with("cannot compare"))
                    {
                        if self.reported_params.insert(operand.to_string()) {
                            self.problem(
                                def,
                                format!("param `{operand}` has the wrong type for its use in {context}: {}", e.message),
                                Some(format!("give `{operand}` a value of the type it is compared with (a number is written without quotes: {operand} = 0.8)")),
                            );
                        }
                        continue;
                    }
                    let at = self.inside(text, e.span.start);
                    self.problem(at, format!("{context}: {}", e.message), e.help);
                }
                None
            }
        }
    }

    fn features(
        &mut self,
        raw: &RawPipeline,
        params: &BTreeMap<String, Kind>,
        origins: &mut BTreeMap<String, Origin>,
        types: &mut BTreeMap<String, Type>,
    ) -> Vec<Feature> {
        // Parse every feature first: the names each one uses give the order
        // in which they can be checked and computed.
        let mut parsed: Vec<(usize, &raw::RawFeature, Vec<String>)> = Vec::new();
        for (position, f) in raw.features.iter().enumerate() {
            if !self.identifier(&f.name, "feature") || !self.define(origins, &f.name, Origin::Feature) {
                continue;
            }
            let uses = match expr::parse(f.expr.get_ref()) {
                Ok(ast) => names_read(&ast),
                Err(_) => Vec::new(), // reported when the feature is checked
            };
            parsed.push((position, f, uses));
        }
        let feature_names: BTreeSet<&str> = parsed.iter().map(|(_, f, _)| f.name.get_ref().as_str()).collect();

        // Kahn's algorithm over the dependencies between features.
        let mut order: Vec<usize> = Vec::new();
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        loop {
            let before = order.len();
            for (i, (_, f, uses)) in parsed.iter().enumerate() {
                let name = f.name.get_ref().as_str();
                if placed.contains(name) {
                    continue;
                }
                let ready = uses
                    .iter()
                    .filter(|u| feature_names.contains(u.as_str()) && u.as_str() != name)
                    .all(|u| placed.contains(u.as_str()));
                let self_reference = uses.iter().any(|u| u == name);
                if ready && !self_reference {
                    order.push(i);
                    placed.insert(name);
                }
            }
            if order.len() == before {
                break;
            }
        }
        if order.len() < parsed.len() {
            let stuck: Vec<&str> = parsed
                .iter()
                .map(|(_, f, _)| f.name.get_ref().as_str())
                .filter(|n| !placed.contains(n))
                .collect();
            let first = parsed
                .iter()
                .find(|(_, f, _)| !placed.contains(f.name.get_ref().as_str()))
                .expect("one is stuck");
            self.problem(
                first.1.name.span().start,
                format!("features depend on each other in a cycle: {}", stuck.join(", ")),
                Some("a feature can only use features that do not use it in turn".into()),
            );
            // Still defined, so that their uses are not reported as unknown.
            for name in stuck {
                types.insert(name.to_string(), Type::Any);
            }
        }

        let mut features = Vec::new();
        for i in order {
            let (position, f, _) = &parsed[i];
            let context = format!("feature `{}`", f.name.get_ref());
            match self.expression(&f.expr, params, types, &context) {
                Some(resolved) => {
                    if resolved.ty == Type::Bool || resolved.ty == Type::Null {
                        // Booleans are allowed: flags such as `is_detractor`.
                    }
                    types.insert(f.name.get_ref().clone(), resolved.ty);
                    features.push(Feature {
                        name: f.name.get_ref().clone(),
                        position: *position,
                        expr: resolved.ast,
                        text: f.expr.get_ref().clone(),
                        description: f.description.clone(),
                    });
                }
                None => {
                    // Keep checking features that use this one.
                    types.insert(f.name.get_ref().clone(), Type::Any);
                }
            }
        }
        features
    }

    /// A label compared with a string it can never equal (`prev(tier) =
    /// 'Protcet'`) is a typo that silently never matches: refused with the
    /// nearest label.
    fn labels_compared(
        &mut self,
        ast: &expr::Ast,
        labels: &BTreeMap<String, BTreeSet<String>>,
        text: &Spanned<String>,
        context: &str,
    ) {
        let segmentation = |a: &expr::Ast| match &a.kind {
            Kind::Column(n) | Kind::Prev(n) => labels.get_key_value(n),
            _ => None,
        };
        let mut check = |seg: Option<(&String, &BTreeSet<String>)>, value: &expr::Ast| {
            if let (Some((name, known)), Kind::Str(v)) = (seg, &value.kind)
                && !known.contains(v)
            {
                let help = did_you_mean(v, known.iter().map(String::as_str)).or_else(|| {
                    Some(format!(
                        "its labels are {}",
                        known.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
                    ))
                });
                self.problem(
                    self.inside(text, value.span.start),
                    format!("{context}: `{v}` is not a label of segmentation `{name}`, so this comparison never holds"),
                    help,
                );
            }
        };
        match &ast.kind {
            Kind::Binary(expr::BinOp::Eq | expr::BinOp::NotEq, l, r) => {
                check(segmentation(l), r);
                check(segmentation(r), l);
            }
            Kind::InList { expr, list, .. } => {
                let seg = segmentation(expr);
                list.iter().for_each(|v| check(seg, v));
            }
            _ => {}
        }
        for child in ast.children() {
            self.labels_compared(child, labels, text, context);
        }
    }

    fn segmentations(
        &mut self,
        raw: &RawPipeline,
        params: &BTreeMap<String, Kind>,
        origins: &mut BTreeMap<String, Origin>,
        types: &BTreeMap<String, Type>,
    ) -> Vec<Segmentation> {
        let mut out = Vec::new();
        // The labels each segmentation can give, for comparisons with them.
        let labels: BTreeMap<String, BTreeSet<String>> = raw
            .segmentations
            .iter()
            .map(|s| {
                let rules = s.rules.iter().map(|r| r.label.get_ref().clone());
                let default = s.default.iter().map(|d| d.get_ref().clone());
                (s.name.get_ref().clone(), rules.chain(default).collect())
            })
            .collect();
        // A segmentation's rules may read the label, rule and `_since` of
        // the segmentations before it.
        let mut types = types.clone();
        // Segmentation, `<name>_rule` and `<name>_since` columns share the
        // namespace too.
        for s in &raw.segmentations {
            let named = self.identifier(&s.name, "segmentation") && self.define(origins, &s.name, Origin::Segmentation);
            if named {
                for suffix in ["_rule", "_since"] {
                    let column = Spanned::new(s.name.span(), format!("{}{suffix}", s.name.get_ref()));
                    self.define(origins, &column, Origin::Segmentation);
                }
            }
            let types = &mut types;
            let default = match &s.default {
                Some(d) if !d.get_ref().trim().is_empty() => d.get_ref().clone(),
                Some(d) => {
                    self.problem(d.span().start, "the `default` label is empty".into(), None);
                    String::new()
                }
                None => {
                    self.problem(
                        s.name.span().start,
                        format!("segmentation `{}` has no `default` label", s.name.get_ref()),
                        Some("every account gets a label: add `default = \"...\"` for accounts no rule matches".into()),
                    );
                    String::new()
                }
            };
            let mut rules = Vec::new();
            let mut rule_names = BTreeSet::new();
            for r in &s.rules {
                let context = format!("rule `{}` of segmentation `{}`", r.name.get_ref(), s.name.get_ref());
                if self.identifier(&r.name, "rule") {
                    if r.name.get_ref() == "default" {
                        self.problem(
                            r.name.span().start,
                            "`default` names the default label, not a rule: rename the rule".into(),
                            None,
                        );
                    } else if !rule_names.insert(r.name.get_ref().clone()) {
                        self.problem(
                            r.name.span().start,
                            format!(
                                "rule `{}` appears twice in segmentation `{}`",
                                r.name.get_ref(),
                                s.name.get_ref()
                            ),
                            None,
                        );
                    }
                }
                if r.label.get_ref().trim().is_empty() {
                    self.problem(r.label.span().start, format!("{context}: the label is empty"), None);
                }
                if let Some(resolved) = self.expression(&r.when, params, types, &context) {
                    self.labels_compared(&resolved.ast, &labels, &r.when, &context);
                    if !matches!(resolved.ty, Type::Bool | Type::Null | Type::Any) {
                        self.problem(
                            self.inside(&r.when, 0),
                            format!("{context}: `when` must be a condition, but it is a {}", resolved.ty),
                            Some("compare it, for example `wallet_share >= 0.8`".into()),
                        );
                    } else {
                        rules.push(Rule {
                            name: r.name.get_ref().clone(),
                            label: r.label.get_ref().clone(),
                            when: resolved.ast,
                            text: r.when.get_ref().clone(),
                            description: r.description.clone(),
                        });
                    }
                }
            }
            let mut axis = |hint: &Option<Spanned<String>>, which: &str| -> Option<String> {
                let h = hint.as_ref()?;
                match types.get(h.get_ref()) {
                    Some(Type::Num | Type::Any) => Some(h.get_ref().clone()),
                    Some(t) => {
                        self.problem(
                            h.span().start,
                            format!("axis `{which}` must be numeric, `{}` is a {t}", h.get_ref()),
                            None,
                        );
                        None
                    }
                    None => {
                        let help = did_you_mean(h.get_ref(), types.keys().map(String::as_str));
                        self.problem(
                            h.span().start,
                            format!("axis `{which}` names unknown column `{}`", h.get_ref()),
                            help,
                        );
                        None
                    }
                }
            };
            let x = axis(&s.x, "x");
            let y = axis(&s.y, "y");
            if named {
                let name = s.name.get_ref();
                for column in [name.clone(), format!("{name}_rule"), format!("{name}_since")] {
                    types.insert(column, Type::Str);
                }
            }
            out.push(Segmentation {
                name: s.name.get_ref().clone(),
                description: s.description.clone(),
                default,
                rules,
                x,
                y,
            });
        }
        out
    }
}

/// A hash of what the file says, not how: comments and layout do not count.
fn content_hash(text: &str) -> String {
    let canonical = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| toml::to_string(&t).ok())
        .unwrap_or_else(|| text.to_string());
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
[inputs.accounts]
uri = "a.parquet"
[inputs.usage]
uri = "u/"
[output]
uri = "out/"
"#;

    fn problems(extra: &str) -> Vec<String> {
        match compile(&format!("{BASE}{extra}"), "p.toml") {
            Ok(_) => Vec::new(),
            Err(Error::Config(problems)) => problems.iter().map(|p| p.to_string()).collect(),
            Err(other) => vec![format!("unexpected error: {other}")],
        }
    }

    #[test]
    fn a_param_of_the_wrong_type_is_reported_once_at_its_definition() {
        let got = problems(
            "[params]\nfull = \"0.8\"\n[[segmentations]]\nname = \"s\"\ndefault = \"D\"\nrules = [{ name = \"a\", label = \"A\", when = \"arr >= full\" }, { name = \"b\", label = \"B\", when = \"arr < full\" }]\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("p.toml:"), "{got:?}");
        let line: usize = got[0].split(':').nth(1).unwrap().parse().unwrap();
        let text = format!("{BASE}[params]\n");
        assert_eq!(line, text.lines().count() + 1, "at `full = ...`: {got:?}");
        assert!(
            got[0].contains("param `full`") && got[0].contains("cannot compare"),
            "{got:?}"
        );
    }

    #[test]
    fn a_label_compared_with_a_string_it_never_is_is_refused_with_the_nearest() {
        let got = problems(
            "[[segmentations]]\nname = \"tier\"\ndefault = \"Other\"\nrules = [{ name = \"keep\", label = \"Protect\", when = \"prev(tier) = 'Protcet'\" }]\n[[segmentations]]\nname = \"watch\"\ndefault = \"-\"\nrules = [{ name = \"w\", label = \"W\", when = \"tier IN ('Protect', 'Othr')\" }]\n",
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].contains("`Protcet` is not a label of segmentation `tier`") && got[0].contains("`Protect`"),
            "{got:?}"
        );
        assert!(
            got[1].contains("`Othr` is not a label of segmentation `tier`") && got[1].contains("`Other`"),
            "{got:?}"
        );
        // The labels it gives compare fine.
        assert!(problems("[[segmentations]]\nname = \"tier\"\ndefault = \"Other\"\nrules = [{ name = \"keep\", label = \"Protect\", when = \"prev(tier) = 'Protect' OR prev(tier) <> 'Other'\" }]\n").is_empty());
    }

    #[test]
    fn a_minimal_pipeline_compiles() {
        let p = compile(BASE, "p.toml").unwrap();
        assert_eq!(p.name, "t");
        assert_eq!(p.cadence, Cadence::Quarter);
        assert!(p.segmentations.is_empty());
    }

    #[test]
    fn the_default_pipeline_compiles() {
        let p = Pipeline::load(None).unwrap();
        let names: Vec<&str> = p.segmentations.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "wallet_share_matrix",
                "growth_risk",
                "size_contract",
                "touch_tier",
                "strategic_accounts",
                "re_evaluate_escalation"
            ]
        );
        for f in [
            "tenure_months",
            "wallet_estimate",
            "wallet_share",
            "whitespace",
            "growth_potential",
            "usage_recent",
            "usage_prior",
            "usage_growth",
            "seat_utilization",
            "employee_growth",
            "risk_score",
        ] {
            assert!(p.features.iter().any(|x| x.name == f), "missing feature {f}");
        }
    }

    #[test]
    fn unknown_keys_are_all_reported_with_their_lines() {
        let got = problems("colour = 1\n[[features]]\nname = \"a\"\nexpresion = \"1\"\n");
        assert_eq!(
            got,
            [
                "p.toml:9:1: unknown key `colour` in [output]\n  help: the keys allowed here are: uri, format, passthrough",
                "p.toml:12:1: unknown key `expresion` in [features]\n  help: did you mean `expr`?",
                "p.toml:10:1: missing field `expr`",
            ]
        );
    }

    /// An unknown key does not hide the other problems of the file.
    #[test]
    fn unknown_keys_are_reported_with_every_other_problem() {
        let got =
            problems("colour = 1\n[[features]]\nname = \"a\"\nexpr = \"no_such_column + 1\"\nexpresion = \"1\"\n");
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains("unknown key `colour`"), "{got:?}");
        assert!(got[1].contains("unknown key `expresion`"), "{got:?}");
        assert!(got[2].contains("no_such_column"), "{got:?}");
    }

    #[test]
    fn every_semantic_problem_at_once() {
        let got = problems(
            r#"
[params]
cut = 0.8
[[aggregates]]
name = "ev"
column = "events"
agg = "summ"
window_days = 0
[[features]]
name = "share"
expr = "arr / walet"
[[features]]
name = "cut"
expr = "1"
[[segmentations]]
name = "m"
rules = [{ name = "big", label = "Big", when = "share >= cut AND" }]
"#,
        );
        assert_eq!(
            got,
            [
                "p.toml:15:7: unknown agg `summ`\n  help: did you mean `sum`?",
                "p.toml:16:15: window_days of `ev` must be from 1 to 3660, found 0",
                "p.toml:21:8: feature `cut` has the name of a param\n  help: every param, aggregate, feature and segmentation (and its `_rule` column) needs a name of its own",
                "p.toml:19:15: feature `share`: unknown name `walet`\n  help: did you mean `wallet`?",
                "p.toml:24:8: segmentation `m` has no `default` label\n  help: every account gets a label: add `default = \"...\"` for accounts no rule matches",
                "p.toml:25:65: rule `big` of segmentation `m`: expected a value, a name or `(`, found the end of the expression",
            ]
        );
    }

    #[test]
    fn feature_cycles_are_named() {
        let got = problems(
            "[[features]]\nname = \"a\"\nexpr = \"b + 1\"\n[[features]]\nname = \"b\"\nexpr = \"a * 2\"\n[[features]]\nname = \"c\"\nexpr = \"c\"\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("features depend on each other in a cycle: a, b, c"),
            "{got:?}"
        );
        // A rule that reads a feature of the cycle adds no "unknown name".
        let got = problems(
            "[[features]]\nname = \"a\"\nexpr = \"b + 1\"\n[[features]]\nname = \"b\"\nexpr = \"a * 2\"\n[[segmentations]]\nname = \"s\"\ndefault = \"D\"\nrules = [{ name = \"r\", label = \"X\", when = \"a > 1\" }]\n",
        );
        assert_eq!(got.len(), 1, "one error, naming the cycle: {got:?}");
    }

    #[test]
    fn names_cannot_carry_paths_or_clash() {
        let got = problems(
            "[[features]]\nname = \"../x\"\nexpr = \"1\"\n[[features]]\nname = \"arr\"\nexpr = \"1\"\n[[segmentations]]\nname = \"s\"\ndefault = \"D\"\nrules = [{ name = \"default\", label = \"X\", when = \"TRUE\" }, { name = \"r\", label = \"\", when = \"1\" }]\n",
        );
        assert!(got[0].contains("feature `../x` is not a valid name"), "{got:?}");
        assert!(got[1].contains("`arr` is a reserved column name"), "{got:?}");
        assert!(got[2].contains("`default` names the default label"), "{got:?}");
        assert!(got[3].contains("the label is empty"), "{got:?}");
        assert!(
            got[4].contains("`when` must be a condition, but it is a number"),
            "{got:?}"
        );
    }

    #[test]
    fn quality_policies() {
        let got = problems(
            "[quality]\nnegative_arr = \"drop\"\nnull_account_id = \"warn\"\nnps_range = \"error\"\nmax_reject_ratio = 2\n",
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter()
                .any(|g| g.contains("`max_reject_ratio` must be a number from 0 to 1"))
        );
        assert!(got.iter().any(|g| g.contains("`null_account_id` cannot be `warn`")));
        assert!(
            got.iter()
                .any(|g| g.contains("unknown data check `nps_range`") && g.contains("nps_out_of_range"))
        );
        let ok = compile(&format!("{BASE}[quality]\nnegative_arr = \"drop\"\n"), "p.toml").unwrap();
        assert_eq!(ok.quality.policy(Check::NegativeArr), Policy::Drop);
        assert_eq!(ok.quality.policy(Check::UnknownAccountUsage), Policy::Warn);
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let got = problems("[params\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0], "p.toml:9:8: unclosed table, expected `]`");
    }

    #[test]
    fn the_hash_ignores_comments_and_layout() {
        let a = compile(BASE, "p.toml").unwrap().hash;
        let b = compile(
            &format!("# a comment\n{}", BASE.replace("uri = \"u/\"", "uri   =   \"u/\"")),
            "p.toml",
        )
        .unwrap()
        .hash;
        let c = compile(&BASE.replace("u/", "v/"), "p.toml").unwrap().hash;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
