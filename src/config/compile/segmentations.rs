//! Segmentations: rules in order, the default label, axis hints, and
//! comparisons with labels that never match.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::{Compiler, Origin};
use crate::config::raw::{self, RawPipeline};
use crate::config::*;
use crate::error::did_you_mean;
use crate::expr;

impl Compiler<'_> {
    /// A label compared with a string it can never equal (`prev(tier) =
    /// 'Protcet'`) is a typo that silently never matches: refused with the
    /// nearest label.
    pub(super) fn labels_compared(
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

    /// Every segmentation in order: a segmentation's rules may read the
    /// label, rule and `_since` of the segmentations before it.
    pub(super) fn segmentations(
        &mut self,
        raw: &RawPipeline,
        params: &BTreeMap<String, Kind>,
        origins: &mut BTreeMap<String, Origin>,
        types: &BTreeMap<String, Type>,
    ) -> Vec<Segmentation> {
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
        let mut types = types.clone();
        let mut out = Vec::new();
        for s in &raw.segmentations {
            // Segmentation, `<name>_rule` and `<name>_since` columns share
            // the namespace too.
            let named = self.identifier(&s.name, "segmentation") && self.define(origins, &s.name, Origin::Segmentation);
            if named {
                for suffix in ["_rule", "_since"] {
                    let column = Spanned::new(s.name.span(), format!("{}{suffix}", s.name.get_ref()));
                    self.define(origins, &column, Origin::Segmentation);
                }
            }
            let default = self.default_label(s);
            let rules = self.rules(s, params, &types, &labels);
            let x = self.axis(&s.x, "x", &types);
            let y = self.axis(&s.y, "y", &types);
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

    fn default_label(&mut self, s: &raw::RawSegmentation) -> String {
        match &s.default {
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
        }
    }

    /// A segmentation's rules, in order: names unique, labels given, and
    /// `when` a condition.
    fn rules(
        &mut self,
        s: &raw::RawSegmentation,
        params: &BTreeMap<String, Kind>,
        types: &BTreeMap<String, Type>,
        labels: &BTreeMap<String, BTreeSet<String>>,
    ) -> Vec<Rule> {
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
                self.labels_compared(&resolved.ast, labels, &r.when, &context);
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
        rules
    }

    /// An axis hint for the report: a numeric column.
    fn axis(&mut self, hint: &Option<Spanned<String>>, which: &str, types: &BTreeMap<String, Type>) -> Option<String> {
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
    }
}
