//! Name resolution and type checking: turns a parsed [`Ast`] into one whose
//! names are resolved (params inlined as literals, `as_of`, columns) and
//! whose types agree, or into every problem found in it.

use std::collections::BTreeMap;
use std::fmt;

use super::{Ast, BinOp, Func, Kind, Span};
use crate::error::did_you_mean;

/// The type of an expression, as far as the pipeline file tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Num,
    Str,
    Bool,
    Date,
    /// The literal NULL: fits anywhere.
    Null,
    /// A column whose type only the data will tell (passthrough columns).
    Any,
}

impl Type {
    fn fits(self, other: Type) -> bool {
        self == other || matches!(self, Type::Null | Type::Any) || matches!(other, Type::Null | Type::Any)
    }

    /// The type of a value that may be either (CASE branches, COALESCE).
    fn unify(self, other: Type) -> Option<Type> {
        match (self, other) {
            (a, b) if a == b => Some(a),
            (Type::Null, t) | (t, Type::Null) => Some(t),
            (Type::Any, _) | (_, Type::Any) => Some(Type::Any),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Num => "number",
            Type::Str => "string",
            Type::Bool => "boolean",
            Type::Date => "date",
            Type::Null => "null",
            Type::Any => "any",
        })
    }
}

/// What names an expression may use.
pub struct Names<'a> {
    /// Params, as the literal each stands for.
    pub params: &'a BTreeMap<String, Kind>,
    /// Account columns, aggregates and features with their types.
    pub columns: &'a BTreeMap<String, Type>,
    /// The snapshot columns `prev(...)` may name, with their types; `None`
    /// where `prev` cannot be used.
    pub previous: Option<&'a BTreeMap<String, Type>>,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub ast: Ast,
    pub ty: Type,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckError {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

pub fn check(ast: &Ast, names: &Names) -> Result<Resolved, Vec<CheckError>> {
    let mut checker = Checker {
        names,
        errors: Vec::new(),
    };
    let (ast, ty) = checker.resolve(ast);
    if checker.errors.is_empty() {
        Ok(Resolved { ast, ty })
    } else {
        Err(checker.errors)
    }
}

struct Checker<'a> {
    names: &'a Names<'a>,
    errors: Vec<CheckError>,
}

impl Checker<'_> {
    fn error(&mut self, span: Span, message: String, help: Option<String>) {
        self.errors.push(CheckError { span, message, help });
    }

    fn expect(&mut self, ast: &Ast, ty: Type, want: Type, role: &str) {
        if !ty.fits(want) {
            self.error(
                ast.span,
                format!("{role} must be a {want}, but `{ast}` is a {ty}"),
                None,
            );
        }
    }

    fn resolve(&mut self, ast: &Ast) -> (Ast, Type) {
        let span = ast.span;
        let (kind, ty) = match &ast.kind {
            Kind::Int(v) => (Kind::Int(*v), Type::Num),
            Kind::Num(v) => (Kind::Num(*v), Type::Num),
            Kind::Str(s) => (Kind::Str(s.clone()), Type::Str),
            Kind::Bool(b) => (Kind::Bool(*b), Type::Bool),
            Kind::Date(d) => (Kind::Date(*d), Type::Date),
            Kind::Null => (Kind::Null, Type::Null),
            Kind::Name(name) => self.name(name, span),
            Kind::Column(_) | Kind::AsOf | Kind::Func(..) | Kind::Prev(_) => {
                let ty = match &ast.kind {
                    Kind::AsOf => Type::Date,
                    _ => Type::Any,
                };
                (ast.kind.clone(), ty)
            }
            Kind::Neg(e) => {
                let (e, ty) = self.resolve(e);
                self.expect(&e, ty, Type::Num, "the operand of `-`");
                // `-param` is a literal once the param is inlined.
                match e.kind {
                    Kind::Int(v) => (Kind::Int(-v), Type::Num),
                    Kind::Num(v) => (Kind::Num(-v), Type::Num),
                    _ => (Kind::Neg(Box::new(e)), Type::Num),
                }
            }
            Kind::Not(e) => {
                let (e, ty) = self.resolve(e);
                self.expect(&e, ty, Type::Bool, "the operand of NOT");
                (Kind::Not(Box::new(e)), Type::Bool)
            }
            Kind::Binary(op, l, r) => {
                let (l, lt) = self.resolve(l);
                let (r, rt) = self.resolve(r);
                let ty = match op {
                    BinOp::Sub if lt == Type::Date || rt == Type::Date => {
                        self.error(
                            span,
                            format!("cannot subtract dates in `{l} - {r}`"),
                            Some("use days_between(a, b) for the days from a to b".into()),
                        );
                        Type::Num
                    }
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                        let role = format!("each side of `{}`", op.symbol());
                        self.expect(&l, lt, Type::Num, &role);
                        self.expect(&r, rt, Type::Num, &role);
                        Type::Num
                    }
                    BinOp::And | BinOp::Or => {
                        let role = format!("each side of {}", op.symbol());
                        self.expect(&l, lt, Type::Bool, &role);
                        self.expect(&r, rt, Type::Bool, &role);
                        Type::Bool
                    }
                    _ => {
                        let (l, lt) = date_literal(l, lt, rt);
                        let (r, rt) = date_literal(r, rt, lt);
                        self.comparable(&l, lt, &r, rt, op.symbol());
                        return (Ast::new(Kind::Binary(*op, Box::new(l), Box::new(r)), span), Type::Bool);
                    }
                };
                (Kind::Binary(*op, Box::new(l), Box::new(r)), ty)
            }
            Kind::IsNull { expr, negated } => {
                let (e, _) = self.resolve(expr);
                (
                    Kind::IsNull {
                        expr: Box::new(e),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            Kind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let (e, et) = self.resolve(expr);
                let (lo, lot) = self.resolve(low);
                let (hi, hit) = self.resolve(high);
                let (lo, lot) = date_literal(lo, lot, et);
                let (hi, hit) = date_literal(hi, hit, et);
                self.comparable(&e, et, &lo, lot, "BETWEEN");
                self.comparable(&e, et, &hi, hit, "BETWEEN");
                (
                    Kind::Between {
                        expr: Box::new(e),
                        low: Box::new(lo),
                        high: Box::new(hi),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            Kind::InList { expr, list, negated } => {
                let (e, et) = self.resolve(expr);
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let (i, it) = self.resolve(item);
                    let (i, it) = date_literal(i, it, et);
                    self.comparable(&e, et, &i, it, "IN");
                    items.push(i);
                }
                (
                    Kind::InList {
                        expr: Box::new(e),
                        list: items,
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => self.case(operand.as_deref(), whens, otherwise.as_deref()),
            Kind::Call { name, name_span, args } => self.call(name, *name_span, args, span),
        };
        (Ast::new(kind, span), ty)
    }

    fn name(&mut self, name: &str, span: Span) -> (Kind, Type) {
        if name.eq_ignore_ascii_case("as_of") {
            return (Kind::AsOf, Type::Date);
        }
        if let Some(value) = self.names.params.get(name) {
            let ty = match value {
                Kind::Str(_) => Type::Str,
                Kind::Bool(_) => Type::Bool,
                _ => Type::Num,
            };
            return (value.clone(), ty);
        }
        if let Some(ty) = self.names.columns.get(name) {
            return (Kind::Column(name.to_string()), *ty);
        }
        let known = self
            .names
            .params
            .keys()
            .chain(self.names.columns.keys())
            .map(String::as_str)
            .chain(["as_of"]);
        let help = did_you_mean(name, known).or_else(|| {
            Some(
                "names are account columns (mapped or passthrough), aggregates, features, \
                 params and `as_of`"
                    .into(),
            )
        });
        let message = if Func::from_name(name).is_some() {
            format!("`{name}` is a function: call it as `{name}(...)`")
        } else {
            format!("unknown name `{name}`")
        };
        self.error(span, message, help);
        (Kind::Null, Type::Any)
    }

    fn comparable(&mut self, l: &Ast, lt: Type, r: &Ast, rt: Type, what: &str) {
        if !lt.fits(rt) {
            self.error(
                r.span,
                format!("cannot compare `{l}` ({lt}) with `{r}` ({rt}) in {what}"),
                None,
            );
        }
    }

    fn case(&mut self, operand: Option<&Ast>, whens: &[(Ast, Ast)], otherwise: Option<&Ast>) -> (Kind, Type) {
        let operand = operand.map(|o| self.resolve(o));
        let mut ty = Type::Null;
        let mut out = Vec::with_capacity(whens.len());
        for (cond, result) in whens {
            let (c, ct) = self.resolve(cond);
            match &operand {
                Some((o, ot)) => self.comparable(o, *ot, &c, ct, "CASE"),
                None => self.expect(&c, ct, Type::Bool, "a WHEN condition"),
            }
            let (r, rt) = self.resolve(result);
            ty = self.unify_branch(ty, &r, rt);
            out.push((c, r));
        }
        let otherwise = otherwise.map(|o| {
            let (e, et) = self.resolve(o);
            ty = self.unify_branch(ty, &e, et);
            Box::new(e)
        });
        (
            Kind::Case {
                operand: operand.map(|(o, _)| Box::new(o)),
                whens: out,
                otherwise,
            },
            ty,
        )
    }

    fn unify_branch(&mut self, ty: Type, branch: &Ast, bt: Type) -> Type {
        match ty.unify(bt) {
            Some(t) => t,
            None => {
                self.error(
                    branch.span,
                    format!("every branch must have one type: `{branch}` is a {bt}, an earlier one a {ty}"),
                    None,
                );
                ty
            }
        }
    }

    /// `prev(x)`: the argument is a bare snapshot column name.
    fn prev(&mut self, args: &[Ast], span: Span) -> (Kind, Type) {
        let Some(previous) = self.names.previous else {
            self.error(span, "prev(...) cannot be used here".into(), None);
            return (Kind::Null, Type::Any);
        };
        let [arg] = args else {
            self.error(
                span,
                format!("prev takes (column), got {} argument(s)", args.len()),
                None,
            );
            return (Kind::Null, Type::Any);
        };
        let Kind::Name(name) = &arg.kind else {
            self.error(
                arg.span,
                format!("prev takes the name of a snapshot column, not `{arg}`"),
                Some("for example prev(wallet_share_matrix) or prev(wallet_share)".into()),
            );
            return (Kind::Null, Type::Any);
        };
        match previous.get(name) {
            Some(ty) => (Kind::Prev(name.clone()), *ty),
            None => {
                let help = did_you_mean(name, previous.keys().map(String::as_str)).or_else(|| {
                    Some(
                        "prev names a column of the snapshot: an account column, aggregate, feature, \
                         segmentation label, `<segmentation>_rule` or `<segmentation>_since`"
                            .into(),
                    )
                });
                self.error(
                    arg.span,
                    format!("prev({name}): `{name}` is not a snapshot column"),
                    help,
                );
                (Kind::Null, Type::Any)
            }
        }
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Ast], span: Span) -> (Kind, Type) {
        if name.eq_ignore_ascii_case("prev") {
            return self.prev(args, span);
        }
        let Some(func) = Func::from_name(name) else {
            let all = || Func::ALL.iter().map(|f| f.name()).chain(["prev"]);
            let help = did_you_mean(name, all()).unwrap_or_else(|| {
                let all: Vec<&str> = all().collect();
                format!("the functions are: {}", all.join(", "))
            });
            self.error(name_span, format!("unknown function `{name}`"), Some(help));
            return (Kind::Null, Type::Any);
        };
        let resolved: Vec<(Ast, Type)> = args.iter().map(|a| self.resolve(a)).collect();
        let arity = |min: usize, max: usize| (min..=max).contains(&resolved.len());
        let (ok_arity, usage) = match func {
            Func::Coalesce | Func::Greatest | Func::Least => (arity(1, usize::MAX), "(a, b, ...)"),
            Func::NullIf | Func::Power | Func::DaysBetween | Func::Quantile => (arity(2, 2), "(a, b)"),
            Func::Round => (arity(1, 2), "(x) or (x, digits)"),
            _ => (arity(1, 1), "(x)"),
        };
        if !ok_arity {
            self.error(
                span,
                format!("{} takes {usage}, got {} argument(s)", func.name(), resolved.len()),
                None,
            );
            return (Kind::Null, Type::Any);
        }
        let fname = func.name();
        let ty = match func {
            Func::Coalesce | Func::Greatest | Func::Least | Func::NullIf => {
                let mut ty = Type::Null;
                for (a, t) in &resolved {
                    ty = match ty.unify(*t) {
                        Some(u) => u,
                        None => {
                            self.error(
                                a.span,
                                format!(
                                    "the arguments of {fname} must have one type: `{a}` is a {t}, an earlier one a {ty}"
                                ),
                                None,
                            );
                            ty
                        }
                    };
                }
                ty
            }
            Func::Lower | Func::Upper => {
                self.expect(
                    &resolved[0].0,
                    resolved[0].1,
                    Type::Str,
                    &format!("the argument of {fname}"),
                );
                Type::Str
            }
            Func::DaysBetween => {
                for (a, t) in &resolved {
                    self.expect(a, *t, Type::Date, "each argument of days_between");
                }
                Type::Num
            }
            Func::CyclesSince => {
                self.expect(
                    &resolved[0].0,
                    resolved[0].1,
                    Type::Str,
                    "the argument of cycles_since (a cycle id such as `2026-Q1`)",
                );
                Type::Num
            }
            _ => {
                for (a, t) in &resolved {
                    self.expect(a, *t, Type::Num, &format!("each argument of {fname}"));
                }
                Type::Num
            }
        };
        match func {
            Func::Quantile => {
                let q = &resolved[1].0;
                let value = match q.kind {
                    Kind::Int(v) => Some(v as f64),
                    Kind::Num(v) => Some(v),
                    _ => None,
                };
                if !value.is_some_and(|v| (0.0..=1.0).contains(&v)) {
                    self.error(
                        q.span,
                        format!("the quantile must be a number from 0 to 1 (a literal or a param), found `{q}`"),
                        None,
                    );
                }
            }
            Func::Round if resolved.len() == 2 => {
                let d = &resolved[1].0;
                if !matches!(d.kind, Kind::Int(v) if (0..=15).contains(&v)) {
                    self.error(
                        d.span,
                        format!("round's digits must be a whole number from 0 to 15, found `{d}`"),
                        None,
                    );
                }
            }
            _ => {}
        }
        let args = resolved.into_iter().map(|(a, _)| a).collect();
        (Kind::Func(func, args), ty)
    }
}

/// A `'YYYY-MM-DD'` string compared with a date is a date.
fn date_literal(ast: Ast, ty: Type, other: Type) -> (Ast, Type) {
    if let (Kind::Str(s), Type::Date) = (&ast.kind, other)
        && let Some(days) = super::parse_date(s)
    {
        return (Ast::new(Kind::Date(days), ast.span), Type::Date);
    }
    (ast, ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;

    fn names() -> (BTreeMap<String, Kind>, BTreeMap<String, Type>) {
        let params = BTreeMap::from([
            ("mature_share".to_string(), Kind::Num(0.8)),
            ("segment".to_string(), Kind::Str("smb".into())),
        ]);
        let columns = BTreeMap::from([
            ("arr".to_string(), Type::Num),
            ("wallet_share".to_string(), Type::Num),
            ("customer_since".to_string(), Type::Date),
            ("industry".to_string(), Type::Str),
            ("region".to_string(), Type::Any),
        ]);
        (params, columns)
    }

    fn run(src: &str) -> Result<String, Vec<String>> {
        let (params, columns) = names();
        let previous = columns.clone();
        let names = Names {
            params: &params,
            columns: &columns,
            previous: Some(&previous),
        };
        let ast = parse(src).map_err(|e| vec![e.message])?;
        check(&ast, &names)
            .map(|r| format!("{} : {}", r.ast, r.ty))
            .map_err(|errs| {
                errs.into_iter()
                    .map(|e| match e.help {
                        Some(h) => format!("{} @{} ({h})", e.message, e.span.start),
                        None => format!("{} @{}", e.message, e.span.start),
                    })
                    .collect()
            })
    }

    #[test]
    fn prev_takes_a_snapshot_column_and_has_its_type() {
        assert_eq!(
            run("prev(wallet_share) >= 0.7"),
            Ok("(prev(wallet_share) >= 0.7) : boolean".into())
        );
        assert_eq!(
            run("prev(industry) = 'Retail'"),
            Ok("(prev(industry) = 'Retail') : boolean".into())
        );
        let errs = run("prev(wallet_shar) > 1").unwrap_err();
        assert!(
            errs[0].contains("`wallet_shar` is not a snapshot column") && errs[0].contains("wallet_share"),
            "{errs:?}"
        );
        let errs = run("prev(arr * 2)").unwrap_err();
        assert!(errs[0].contains("prev takes the name of a snapshot column"), "{errs:?}");
        let errs = run("prev(arr, arr)").unwrap_err();
        assert!(errs[0].contains("prev takes (column), got 2"), "{errs:?}");
        let errs = run("cycles_since(arr)").unwrap_err();
        assert!(errs[0].contains("cycles_since"), "{errs:?}");
        assert_eq!(
            run("cycles_since(industry) >= 2"),
            Ok("(cycles_since(industry) >= 2) : boolean".into())
        );
    }

    #[test]
    fn resolves_params_columns_and_as_of() {
        assert_eq!(
            run("wallet_share >= mature_share").unwrap(),
            "(wallet_share >= 0.8) : boolean"
        );
        assert_eq!(
            run("days_between(customer_since, as_of) / 30").unwrap(),
            "(days_between(customer_since, as_of) / 30) : number"
        );
        assert_eq!(run("region = 'EMEA'").unwrap(), "(region = 'EMEA') : boolean");
        assert_eq!(
            run("COALESCE(arr, NULL, 0)").unwrap(),
            "coalesce(arr, NULL, 0) : number"
        );
        assert_eq!(
            run("CASE WHEN arr > 1 THEN 'big' END").unwrap(),
            "CASE WHEN (arr > 1) THEN 'big' END : string"
        );
        assert_eq!(
            run("customer_since >= '2024-01-31'").unwrap(),
            "(customer_since >= DATE '2024-01-31') : boolean"
        );
        assert_eq!(
            run("DATE '2024-02-29' < customer_since").unwrap(),
            "(DATE '2024-02-29' < customer_since) : boolean"
        );
        assert_eq!(
            run("customer_since BETWEEN '2024-01-01' AND as_of").unwrap(),
            "(customer_since BETWEEN DATE '2024-01-01' AND as_of) : boolean"
        );
        assert!(run("customer_since > '2024-13-01'").is_err());
        assert!(run("DATE 'soon'").unwrap_err()[0].contains("is not a date"));
    }

    #[test]
    fn unknown_names_suggest_the_nearest() {
        assert_eq!(
            run("walet_share > 0.5").unwrap_err(),
            vec!["unknown name `walet_share` @0 (did you mean `wallet_share`?)"]
        );
        assert_eq!(
            run("quantil(arr, 0.5)").unwrap_err(),
            vec!["unknown function `quantil` @0 (did you mean `quantile`?)"]
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errs = run("foo + industry > bar").unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[1].starts_with("each side of `+` must be a number, but `industry` is a string"));
    }

    #[test]
    fn type_errors() {
        assert!(run("arr AND TRUE").unwrap_err()[0].contains("each side of AND must be a boolean"));
        assert!(run("industry > 5").unwrap_err()[0].contains("cannot compare `industry` (string) with `5` (number)"));
        assert!(run("as_of - customer_since").unwrap_err()[0].contains("days_between"));
        assert!(run("quantile(arr, 1.5)").unwrap_err()[0].contains("from 0 to 1"));
        assert!(run("quantile(arr, wallet_share)").unwrap_err()[0].contains("from 0 to 1"));
        assert!(run("round(arr, 1.5)").unwrap_err()[0].contains("whole number"));
        assert!(run("abs(arr, 1)").unwrap_err()[0].contains("abs takes (x), got 2"));
        assert!(run("CASE WHEN arr > 1 THEN 'a' ELSE 2 END").unwrap_err()[0].contains("one type"));
        assert!(run("lower(arr)").unwrap_err()[0].contains("must be a string"));
    }
}
