//! Raw pipeline -> checked [`Pipeline`]: names, windows, expressions, feature
//! dependencies and rules are checked here, and every problem is collected
//! before anything is returned.

mod features;
mod names;
mod quality;
mod segmentations;
mod sources;

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::DeTable;

use super::raw::{self, RawPipeline};
use super::*;
use crate::error::{Problem, did_you_mean};

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

    /// The passes, in the order their problems are reported: the header,
    /// where the data is, the namespace (account columns, params), the
    /// data checks, then aggregates, features and segmentations (each may
    /// read what the passes before it defined), and last what the rules
    /// read from the accounts and the previous snapshot.
    fn pipeline(&mut self, raw: RawPipeline) -> Pipeline {
        let (name, cadence, fiscal_year_start_month) = self.header(&raw);
        let accounts = self.input(&raw.inputs.accounts, "inputs.accounts");
        let usage = self.input(&raw.inputs.usage, "inputs.usage");
        let output_format = self.output(&raw.output);

        // Every name an expression can use, where it comes from, its type.
        let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
        let mut types: BTreeMap<String, Type> = BTreeMap::new();
        let passthrough = self.account_columns(&raw, &accounts, &mut origins, &mut types);
        let params = self.params(&raw, &mut origins);
        let quality = self.quality(&raw);
        let storage = self.storage(&raw);
        let aggregates = self.aggregates(&raw, &mut origins, &mut types);
        self.previous_scope(&raw, &types);
        let features = self.features(&raw, &params, &mut origins, &mut types);
        for f in &features {
            self.previous
                .insert(f.name.clone(), types.get(&f.name).copied().unwrap_or(Type::Any));
        }
        let segmentations = self.segmentations(&raw, &params, &mut origins, &types);
        self.reserve_prev_columns(&features, &segmentations, &origins);
        let (account_columns, previous) = self.columns_read(&features, &segmentations, &origins, &types);

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

    /// The pipeline's name, cadence and fiscal calendar.
    fn header(&mut self, raw: &RawPipeline) -> (String, Cadence, u32) {
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
        (name, cadence, fiscal_year_start_month)
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
mod tests;
