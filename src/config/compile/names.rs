//! The shared namespace: account columns, params, aggregates, features and
//! segmentations each need a name of their own.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::{Compiler, Origin};
use crate::config::raw::RawPipeline;
use crate::config::*;
use crate::error::Problem;

/// Columns with their types, in the order they are first read.
type Columns = Vec<(String, Type)>;

impl Compiler<'_> {
    /// The accounts' columns, built in and mapped, and the passthrough
    /// columns the snapshot keeps: returns the passthrough list.
    pub(super) fn account_columns(
        &mut self,
        raw: &RawPipeline,
        accounts: &Input,
        origins: &mut BTreeMap<String, Origin>,
        types: &mut BTreeMap<String, Type>,
    ) -> Vec<String> {
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
        passthrough
    }

    /// What `prev(...)` may read: every column of the snapshot. Features
    /// are typed once they are checked.
    pub(super) fn previous_scope(&mut self, raw: &RawPipeline, types: &BTreeMap<String, Type>) {
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
    }

    /// The account columns that expressions and axis hints read (an
    /// account column read through `prev(...)` is kept in the snapshot too,
    /// so that the next cycle finds it), and the previous snapshot's
    /// columns that `prev(...)` reads, with their types.
    pub(super) fn columns_read(
        &self,
        features: &[Feature],
        segmentations: &[Segmentation],
        origins: &BTreeMap<String, Origin>,
        types: &BTreeMap<String, Type>,
    ) -> (Columns, Columns) {
        let mut account_columns: Vec<(String, Type)> = Vec::new();
        let mut note = |name: &str| {
            if origins.get(name) == Some(&Origin::AccountColumn) && !account_columns.iter().any(|(n, _)| n == name) {
                account_columns.push((name.to_string(), types[name]));
            }
        };
        for f in features {
            f.expr.columns().iter().for_each(|c| note(c));
            f.expr.previous().iter().for_each(|c| note(c));
        }
        for s in segmentations {
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
        (account_columns, previous)
    }

    /// `prev(x)` is kept in the snapshot as column `prev_x`: a name the
    /// pipeline defines may not be one of those.
    pub(super) fn reserve_prev_columns(
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

    /// Records a name in the shared namespace, or reports the clash.
    pub(super) fn define(
        &mut self,
        origins: &mut BTreeMap<String, Origin>,
        name: &Spanned<String>,
        origin: Origin,
    ) -> bool {
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

    pub(super) fn params(
        &mut self,
        raw: &RawPipeline,
        origins: &mut BTreeMap<String, Origin>,
    ) -> BTreeMap<String, Kind> {
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
}
