//! Segmentations -> `when/then` chains: for each segmentation a label
//! column `<name>` and a rule column `<name>_rule`. The first rule whose
//! condition is true wins; a condition that is null does not match; an
//! account that matches no rule gets the default label and the rule name
//! `default`.

use chrono::NaiveDate;
use polars::prelude::*;

use super::lower::lower;
use crate::config::Segmentation;
use crate::cycle::Cycle;
use crate::plan::prev_column;

/// The rule name recorded for accounts that no rule matched.
pub const DEFAULT_RULE: &str = "default";

/// The condition of each rule, null counted as false.
fn conditions(segmentation: &Segmentation, as_of: NaiveDate) -> Vec<Expr> {
    segmentation
        .rules
        .iter()
        .map(|r| lower(&r.when, as_of).fill_null(lit(false)))
        .collect()
}

/// The position of the first rule whose condition is true, or the number
/// of rules on a row where none is: nested from the last rule outwards, so
/// the first true condition wins. Integers, not strings, go through the
/// chain.
fn first_match(conditions: &[Expr]) -> Expr {
    // On every row even when no condition reads a column.
    let none = repeat(lit(conditions.len() as IdxSize), len());
    conditions.iter().enumerate().rev().fold(none, |rest, (i, c)| {
        when(c.clone()).then(lit(i as IdxSize)).otherwise(rest)
    })
}

/// Each row's value of `values` at its first match (`fallback` after the
/// last rule), gathered from the few distinct strings.
fn pick(first: Expr, values: impl Iterator<Item = String>, fallback: &str) -> Expr {
    let values: Vec<String> = values.chain(std::iter::once(fallback.to_string())).collect();
    lit(Series::new(PlSmallStr::EMPTY, values)).gather(first, false)
}

/// The `<name>` and `<name>_rule` columns of one segmentation, from one
/// evaluation of its conditions.
pub fn segment(segmentation: &Segmentation, as_of: NaiveDate) -> [Expr; 2] {
    let first = first_match(&conditions(segmentation, as_of));
    let label = pick(
        first.clone(),
        segmentation.rules.iter().map(|r| r.label.clone()),
        &segmentation.default,
    )
    .alias(segmentation.name.as_str());
    let rule =
        pick(first, segmentation.rules.iter().map(|r| r.name.clone()), DEFAULT_RULE).alias(segmentation.rule_column());
    [label, rule]
}

/// The `<name>_since` column of a segmentation: the previous cycle's
/// `_since` when the account keeps the label it had then (its stay goes on),
/// else this cycle (the label changed, or the account is new).
pub fn since(segmentation: &Segmentation, cycle: Cycle) -> Expr {
    let name = segmentation.name.as_str();
    let stayed = col(prev_column(name)).eq(col(name)).fill_null(lit(false));
    // A snapshot made before `_since` existed says only that the stay began
    // by the previous cycle.
    let began = coalesce(&[
        col(prev_column(&segmentation.since_column())),
        lit(cycle.previous().to_string()),
    ]);
    when(stayed)
        .then(began)
        .otherwise(lit(cycle.to_string()))
        .alias(segmentation.since_column())
}

/// Every segmentation's label, rule and `_since`, in order: a
/// segmentation's rules may read the columns of those before it.
pub fn segment_all(frame: LazyFrame, segmentations: &[Segmentation], as_of: NaiveDate, cycle: Cycle) -> LazyFrame {
    segmentations.iter().fold(frame, |lf, s| {
        lf.with_columns(segment(s, as_of)).with_column(since(s, cycle))
    })
}

/// Hidden columns of an explanation start with this.
pub const EXPLAIN_PREFIX: &str = "__r";

/// The column holding rule `r` of segmentation `s` in an explanation.
pub fn verdict_column(s: usize, r: usize) -> String {
    format!("{EXPLAIN_PREFIX}{s}_{r}")
}

/// The column holding condition `c` of rule `r` of segmentation `s`.
pub fn condition_column(s: usize, r: usize, c: usize) -> String {
    format!("{EXPLAIN_PREFIX}{s}_{r}_{c}")
}

/// The column holding base-wide call `k` of condition `c` of rule `r` of
/// segmentation `s` in an explanation.
pub fn function_column(s: usize, r: usize, c: usize, k: usize) -> String {
    format!("{EXPLAIN_PREFIX}{s}_{r}_{c}_f{k}")
}

/// One account's row of a cycle, with the value of every rule, of each
/// condition it is built from and of each base-wide function in those
/// ([`verdict_column`], [`condition_column`], [`function_column`]),
/// evaluated over the whole cycle as base-wide functions need. No rows when
/// the account is not in the cycle.
pub fn explain_account(
    frame: DataFrame,
    segmentations: &[Segmentation],
    account: &str,
    as_of: NaiveDate,
) -> crate::error::Result<DataFrame> {
    use crate::error::Context;
    let mut exprs = Vec::new();
    for (si, s) in segmentations.iter().enumerate() {
        for (ri, r) in s.rules.iter().enumerate() {
            exprs.push(lower(&r.when, as_of).alias(verdict_column(si, ri)));
            for (ci, c) in r.when.conditions().iter().enumerate() {
                exprs.push(lower(c, as_of).alias(condition_column(si, ri, ci)));
                for (k, call) in c.base_wide_calls().iter().enumerate() {
                    exprs.push(lower(call, as_of).alias(function_column(si, ri, ci, k)));
                }
            }
        }
    }
    frame
        .lazy()
        .with_columns(exprs)
        .filter(col("account_id").eq(lit(account)))
        .collect()
        .ctx(|| format!("cannot explain account `{account}`"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::config::Rule;
    use crate::expr::{Names, Type, check, parse};

    /// A condition as the test generates it, with its own evaluator.
    #[derive(Debug, Clone)]
    enum Cond {
        Cmp(usize, &'static str, i64),
        IsNull(usize, bool),
        Not(Box<Cond>),
        And(Box<Cond>, Box<Cond>),
        Or(Box<Cond>, Box<Cond>),
    }

    const COLS: [&str; 3] = ["a", "b", "c"];

    impl Cond {
        fn text(&self) -> String {
            match self {
                Cond::Cmp(c, op, v) => format!("{} {op} {v}", COLS[*c]),
                Cond::IsNull(c, negated) => {
                    format!("{} IS {}NULL", COLS[*c], if *negated { "NOT " } else { "" })
                }
                Cond::Not(e) => format!("NOT ({})", e.text()),
                Cond::And(l, r) => format!("({}) AND ({})", l.text(), r.text()),
                Cond::Or(l, r) => format!("({}) OR ({})", l.text(), r.text()),
            }
        }

        /// SQL's three-valued logic, row by row.
        fn eval(&self, row: &[Option<f64>; 3]) -> Option<bool> {
            match self {
                Cond::Cmp(c, op, v) => row[*c].map(|x| {
                    let v = *v as f64;
                    match *op {
                        "=" => x == v,
                        "<>" => x != v,
                        "<" => x < v,
                        "<=" => x <= v,
                        ">" => x > v,
                        _ => x >= v,
                    }
                }),
                Cond::IsNull(c, negated) => Some(row[*c].is_none() != *negated),
                Cond::Not(e) => e.eval(row).map(|b| !b),
                Cond::And(l, r) => match (l.eval(row), r.eval(row)) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                Cond::Or(l, r) => match (l.eval(row), r.eval(row)) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            }
        }
    }

    fn cond() -> impl Strategy<Value = Cond> {
        let leaf = prop_oneof![
            (
                0..3usize,
                prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]),
                -3..4i64
            )
                .prop_map(|(c, op, v)| Cond::Cmp(c, op, v)),
            (0..3usize, any::<bool>()).prop_map(|(c, n)| Cond::IsNull(c, n)),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Cond::Not(Box::new(e))),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Cond::And(Box::new(l), Box::new(r))),
                (inner.clone(), inner).prop_map(|(l, r)| Cond::Or(Box::new(l), Box::new(r))),
            ]
        })
    }

    /// Segmentation `s` of `rules`, default label `D`.
    fn segmentation_s(rules: Vec<Rule>) -> Segmentation {
        Segmentation {
            name: "s".into(),
            description: String::new(),
            default: "D".into(),
            rules,
            x: None,
            y: None,
        }
    }

    #[test]
    fn rules_that_read_no_column_and_no_rules_label_every_row() {
        let params = BTreeMap::new();
        let columns: BTreeMap<String, Type> = [("a".to_string(), Type::Num)].into();
        let names = Names {
            params: &params,
            columns: &columns,
            previous: None,
        };
        let rule = |name: &str, when: &str| Rule {
            name: name.into(),
            label: name.to_uppercase(),
            when: check(&parse(when).unwrap(), &names).unwrap().ast,
            text: when.into(),
            description: String::new(),
        };
        for (rules, want) in [
            (
                vec![rule("never", "1 = 2"), rule("always", "1 = 1")],
                ("ALWAYS", "always"),
            ),
            (vec![rule("never", "1 = 2")], ("D", DEFAULT_RULE)),
            (vec![], ("D", DEFAULT_RULE)),
        ] {
            let segmentation = segmentation_s(rules);
            let frame = df! { "a" => [1.0, 2.0, 3.0] }.unwrap();
            let as_of = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
            let out = frame
                .lazy()
                .with_columns(segment(&segmentation, as_of))
                .collect()
                .unwrap();
            let column = |c: &str| -> Vec<Option<String>> {
                out.column(c)
                    .unwrap()
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect()
            };
            assert_eq!(column("s"), vec![Some(want.0.to_string()); 3]);
            assert_eq!(column("s_rule"), vec![Some(want.1.to_string()); 3]);
        }
    }

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![1 => Just(None), 4 => (-3..4i64).prop_map(|v| Some(v as f64))]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn vectorized_rules_equal_a_row_by_row_evaluation(
            conds in prop::collection::vec(cond(), 0..5),
            rows in prop::collection::vec([value(), value(), value()], 1..30),
        ) {
            let params = BTreeMap::new();
            let columns: BTreeMap<String, Type> = COLS.iter().map(|c| (c.to_string(), Type::Num)).collect();
            let names = Names { params: &params, columns: &columns, previous: None };
            let rules: Vec<Rule> = conds.iter().enumerate().map(|(i, c)| Rule {
                name: format!("r{i}"),
                // Two rules share a label, as in the touch tier.
                label: format!("L{}", i % 3),
                when: check(&parse(&c.text()).unwrap(), &names).unwrap().ast,
                text: c.text(),
                description: String::new(),
            }).collect();
            let segmentation = segmentation_s(rules);
            let column = |i: usize| Column::new(COLS[i].into(), rows.iter().map(|r| r[i]).collect::<Vec<_>>());
            let frame = DataFrame::new_infer_height(vec![column(0), column(1), column(2)]).unwrap();
            let as_of = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
            let out = frame.lazy().with_columns(segment(&segmentation, as_of)).collect().unwrap();
            let labels = out.column("s").unwrap().str().unwrap().clone();
            let fired = out.column("s_rule").unwrap().str().unwrap().clone();
            for (i, row) in rows.iter().enumerate() {
                let first = conds.iter().position(|c| c.eval(row) == Some(true));
                let (label, rule) = match first {
                    Some(k) => (format!("L{}", k % 3), format!("r{k}")),
                    None => ("D".to_string(), DEFAULT_RULE.to_string()),
                };
                prop_assert_eq!(labels.get(i), Some(label.as_str()), "row {} {:?}", i, row);
                prop_assert_eq!(fired.get(i), Some(rule.as_str()), "row {} {:?}", i, row);
            }
        }
    }
}
