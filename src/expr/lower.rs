//! Checked [`Ast`] -> polars [`Expr`], with SQL's null semantics: a
//! comparison with null is null, `AND`/`OR` are three-valued, division by
//! zero and logarithms of non-positive numbers are null, and a CASE branch
//! whose condition is null is not taken.

use chrono::NaiveDate;
use polars::prelude::*;

use super::{Ast, BinOp, Func, Kind};

/// The key column; `pareto_share` breaks ties with it.
pub const KEY: &str = "account_id";

fn null() -> Expr {
    lit(NULL)
}

fn float(e: Expr) -> Expr {
    e.cast(DataType::Float64)
}

/// A date as a polars literal.
pub fn date_lit(date: NaiveDate) -> Expr {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    lit((date - epoch).num_days() as i32).cast(DataType::Date)
}

/// Lowers a tree that [`super::check`] has accepted.
pub fn lower(ast: &Ast, as_of: NaiveDate) -> Expr {
    let lo = |a: &Ast| lower(a, as_of);
    match &ast.kind {
        Kind::Int(v) => lit(*v),
        Kind::Num(v) => lit(*v),
        Kind::Str(s) => lit(s.as_str()),
        Kind::Bool(b) => lit(*b),
        Kind::Null | Kind::Name(_) | Kind::Call { .. } => null(),
        Kind::Column(name) => col(name.as_str()),
        Kind::AsOf => date_lit(as_of),
        Kind::Neg(e) => lit(0) - lo(e),
        Kind::Not(e) => lo(e).not(),
        Kind::Binary(op, l, r) => {
            let (l, r) = (lo(l), lo(r));
            match op {
                BinOp::Add => l + r,
                BinOp::Sub => l - r,
                BinOp::Mul => l * r,
                BinOp::Div => when(r.clone().eq(lit(0)))
                    .then(null())
                    .otherwise(float(l) / float(r)),
                BinOp::Eq => l.eq(r),
                BinOp::NotEq => l.neq(r),
                BinOp::Lt => l.lt(r),
                BinOp::LtEq => l.lt_eq(r),
                BinOp::Gt => l.gt(r),
                BinOp::GtEq => l.gt_eq(r),
                BinOp::And => l.and(r),
                BinOp::Or => l.or(r),
            }
        }
        Kind::IsNull { expr, negated } => {
            if *negated {
                lo(expr).is_not_null()
            } else {
                lo(expr).is_null()
            }
        }
        Kind::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let e = lo(expr);
            let inside = e.clone().gt_eq(lo(low)).and(e.lt_eq(lo(high)));
            if *negated { inside.not() } else { inside }
        }
        Kind::InList {
            expr,
            list,
            negated,
        } => {
            // An OR of equalities keeps SQL's answer for nulls:
            // `2 IN (1, NULL)` is null, not false.
            let e = lo(expr);
            let any = list
                .iter()
                .map(|item| e.clone().eq(lo(item)))
                .reduce(|a, b| a.or(b))
                .expect("the parser requires one item");
            if *negated { any.not() } else { any }
        }
        Kind::Case {
            operand,
            whens,
            otherwise,
        } => {
            let condition = |c: &Ast| -> Expr {
                let c = match operand {
                    Some(o) => lo(o).eq(lo(c)),
                    None => lo(c),
                };
                c.fill_null(lit(false))
            };
            // Nested from the last branch outwards: the first true condition wins.
            let otherwise = otherwise.as_ref().map_or_else(null, |o| lo(o));
            whens.iter().rev().fold(otherwise, |rest, (c, r)| {
                when(condition(c)).then(lo(r)).otherwise(rest)
            })
        }
        Kind::Func(func, args) => lower_call(*func, args, as_of),
    }
}

fn lower_call(func: Func, args: &[Ast], as_of: NaiveDate) -> Expr {
    let lo = |a: &Ast| lower(a, as_of);
    let all: Vec<Expr> = args.iter().map(lo).collect();
    let x = || all[0].clone();
    match func {
        Func::Coalesce => coalesce(&all),
        Func::NullIf => when(x().eq(all[1].clone()).fill_null(lit(false)))
            .then(null())
            .otherwise(x()),
        // Like PostgreSQL: nulls are ignored, null only when all are null.
        Func::Greatest => polars::lazy::dsl::max_horizontal(&all).expect("at least one argument"),
        Func::Least => polars::lazy::dsl::min_horizontal(&all).expect("at least one argument"),
        Func::Abs => x().abs(),
        Func::Ln => positive_only(x(), |v| v.log(lit(std::f64::consts::E))),
        Func::Log10 => positive_only(x(), |v| v.log(lit(10.0))),
        Func::Sqrt => when(x().lt(lit(0)))
            .then(null())
            .otherwise(float(x()).sqrt()),
        Func::Power => float(x()).pow(float(all[1].clone())),
        Func::Round => {
            let digits = match args.get(1).map(|a| &a.kind) {
                Some(Kind::Int(d)) => *d as u32,
                _ => 0,
            };
            float(x()).round(digits, RoundMode::HalfAwayFromZero)
        }
        Func::Floor => float(x()).floor(),
        Func::Ceil => float(x()).ceil(),
        Func::Lower => x().str().to_lowercase(),
        Func::Upper => x().str().to_uppercase(),
        Func::DaysBetween => {
            all[1].clone().cast(DataType::Int64) - all[0].clone().cast(DataType::Int64)
        }
        Func::Quantile => {
            let q = match args[1].kind {
                Kind::Int(v) => v as f64,
                Kind::Num(v) => v,
                _ => 0.5,
            };
            float(x()).quantile(lit(q), QuantileMethod::Linear)
        }
        Func::Median => float(x()).median(),
        Func::Mean => float(x()).mean(),
        // SQL's SUM over no values is null; polars' is 0.
        Func::Sum => when(x().count().eq(lit(0)))
            .then(null())
            .otherwise(float(x()).sum()),
        Func::PercentRank => {
            let n = float(x().count());
            let rank = float(x().rank(
                RankOptions {
                    method: RankMethod::Min,
                    descending: false,
                },
                None,
            ));
            when(x().is_null().or(n.clone().lt(lit(2.0))))
                .then(null())
                .otherwise((rank - lit(1.0)) / (n - lit(1.0)))
        }
        Func::ParetoShare => {
            // In the order x descending, ties by account id, the running sum
            // up to an account is the sum of all larger values plus x times
            // the account's place among the accounts with the same x.
            let xf = float(x());
            let larger = (xf.clone().rank(
                RankOptions {
                    method: RankMethod::Min,
                    descending: true,
                },
                None,
            ) - lit(1))
            .cast(IDX_DTYPE);
            let sorted = xf.clone().sort(
                SortOptions::default()
                    .with_order_descending(true)
                    .with_nulls_last(true),
            );
            let sum_larger = sorted.clone().cum_sum(false).gather(larger.clone(), false)
                - sorted.gather(larger, false);
            let place_in_tie = col(KEY)
                .rank(
                    RankOptions {
                        method: RankMethod::Ordinal,
                        descending: false,
                    },
                    None,
                )
                .over([xf.clone()])
                .expect("a partition is given");
            let running = sum_larger + xf.clone() * float(place_in_tie);
            let total = xf.clone().sum();
            when(xf.is_null().or(total.clone().eq(lit(0.0))))
                .then(null())
                .otherwise(running / total)
        }
    }
}

fn positive_only(x: Expr, f: impl FnOnce(Expr) -> Expr) -> Expr {
    when(x.clone().gt(lit(0)))
        .then(f(float(x)))
        .otherwise(null())
}
