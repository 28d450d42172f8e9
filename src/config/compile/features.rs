//! Aggregates over the usage and features over the accounts: windows,
//! expressions, and the order in which features can be computed.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::{Compiler, Origin};
use crate::config::raw::{self, RawPipeline};
use crate::config::*;
use crate::error::did_you_mean;
use crate::expr::{self, Names};

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

/// A feature parsed, before it is checked: its position in the file, its
/// raw form and the names it reads.
type Parsed<'r> = (usize, &'r raw::RawFeature, Vec<String>);

/// The order in which features can be computed (Kahn's algorithm over the
/// dependencies between them), as indexes into `parsed`, and the names
/// placed; a feature in a cycle of dependencies is left out.
fn dependency_order<'r>(parsed: &[Parsed<'r>]) -> (Vec<usize>, BTreeSet<&'r str>) {
    let feature_names: BTreeSet<&str> = parsed.iter().map(|(_, f, _)| f.name.get_ref().as_str()).collect();
    let mut order: Vec<usize> = Vec::new();
    let mut placed: BTreeSet<&'r str> = BTreeSet::new();
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
            return (order, placed);
        }
    }
}

impl Compiler<'_> {
    pub(super) fn aggregates(
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
    pub(super) fn expression(
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

    pub(super) fn features(
        &mut self,
        raw: &RawPipeline,
        params: &BTreeMap<String, Kind>,
        origins: &mut BTreeMap<String, Origin>,
        types: &mut BTreeMap<String, Type>,
    ) -> Vec<Feature> {
        // Parse every feature first: the names each one uses give the order
        // in which they can be checked and computed.
        let mut parsed: Vec<Parsed> = Vec::new();
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
        let (order, placed) = dependency_order(&parsed);
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
                    // Booleans are allowed too: flags such as `is_detractor`.
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
}
