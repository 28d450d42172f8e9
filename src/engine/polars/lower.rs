//! Checked [`Ast`] -> polars [`Expr`], with SQL's null semantics: a
//! comparison with null is null, `AND`/`OR` are three-valued, division by
//! zero and logarithms of non-positive numbers are null, and a CASE branch
//! whose condition is null is not taken.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::expr::{Ast, BinOp, Func, Kind};

fn null() -> Expr {
    lit(NULL)
}

fn float(e: Expr) -> Expr {
    e.cast(DataType::Float64)
}

/// `l / r` as IEEE division of every pair of values. polars divides by a
/// scalar by multiplying with its reciprocal, which can land one unit in the
/// last place away from the quotient that SQL engines, numpy or a calculator
/// give; at a rule's threshold that unit changes a label.
pub fn exact_div(l: Expr, r: Expr) -> Expr {
    float(l).map_many(
        |columns: &mut [Column]| {
            let a = columns[0].as_materialized_series().f64()?.clone();
            let b = columns[1].as_materialized_series().f64()?.clone();
            let out: Float64Chunked = match (a.len(), b.len()) {
                // Equal lengths: polars divides pair by pair, exactly.
                (n, m) if n == m => &a / &b,
                (_, 1) => match b.get(0) {
                    Some(d) => a.apply_values(|x| x / d),
                    None => Float64Chunked::full_null(a.name().clone(), a.len()),
                },
                (1, _) => match a.get(0) {
                    Some(n) => b.apply_values(|y| n / y),
                    None => Float64Chunked::full_null(a.name().clone(), b.len()),
                },
                (n, m) => {
                    return Err(PolarsError::ShapeMismatch(
                        format!("cannot divide {n} values by {m}").into(),
                    ));
                }
            };
            Ok(out.with_name(columns[0].name().clone()).into_column())
        },
        &[float(r)],
        |_, fields| Ok(Field::new(fields[0].name().clone(), DataType::Float64)),
    )
}

/// The number of cycles from cycle id `c` (`2026`, `2026-H1`, `2026-Q3`,
/// `2026-11`, and the fiscal `FY2027`, `FY2027-H1`, `FY2027-Q1`,
/// `FY2027-M01`) to the cycle of the same cadence that holds `as_of`: 0 in
/// the same cycle, 1 in the next. Null for null or what is not a cycle id.
///
/// Computed in Rust per value: as polars expressions, every branch sliced
/// and parsed every row.
fn cycles_since(c: Expr, as_of: NaiveDate) -> Expr {
    use chrono::Datelike;
    let fiscal = crate::cycle::fiscal_month(as_of);
    let calendar = (as_of.year(), as_of.month());
    c.apply(
        move |column: Column| {
            let ids = column.as_materialized_series().str()?;
            // A column of cycle ids holds a few distinct ones: each is
            // parsed once.
            let mut parsed: PlHashMap<&str, Option<i64>> = PlHashMap::new();
            let out: Int64Chunked = ids
                .iter()
                .map(|id| {
                    let id = id?;
                    *parsed.entry(id).or_insert_with(|| match id.strip_prefix("FY") {
                        Some(rest) => cycles_between(&rest.chars().take(8).collect::<String>(), fiscal),
                        None => cycles_between(id, calendar),
                    })
                })
                .collect();
            Ok(out.with_name(ids.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Int64)),
    )
}

/// Cycles from cycle id `id` (without `FY`) to the cycle of the same
/// cadence holding year `y`, month `m`; `None` for what is not a cycle id.
fn cycles_between(id: &str, (y, m): (i32, u32)) -> Option<i64> {
    let (y, m) = (y as i64, m as i64);
    let chars: Vec<char> = id.chars().collect();
    let int = |from: usize, length: usize| -> Option<i64> {
        let part: String = chars.iter().skip(from).take(length).collect();
        part.parse().ok()
    };
    let kind = chars.get(5).copied();
    let year = int(0, 4);
    match (chars.len(), kind) {
        (4, _) => Some(y - year?),
        (7, Some('Q')) => Some(y * 4 + (m - 1) / 3 - (year? * 4 + int(6, 1)? - 1)),
        (7, Some('H')) => Some(y * 2 + (m - 1) / 6 - (year? * 2 + int(6, 1)? - 1)),
        (8, Some('M')) => Some(y * 12 + m - 1 - (year? * 12 + int(6, 2)? - 1)),
        (7, _) => Some(y * 12 + m - 1 - (year? * 12 + int(5, 2)? - 1)),
        _ => None,
    }
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
        Kind::Date(d) => lit(*d).cast(DataType::Date),
        Kind::Null | Kind::Name(_) | Kind::Call { .. } => null(),
        Kind::Column(name) => col(name.as_str()),
        Kind::AsOf => date_lit(as_of),
        Kind::Prev(name) => col(crate::plan::prev_column(name)),
        Kind::Neg(e) => lit(0) - lo(e),
        Kind::Not(e) => lo(e).not(),
        Kind::Binary(op, l, r) => {
            let (l, r) = (lo(l), lo(r));
            match op {
                BinOp::Add => l + r,
                BinOp::Sub => l - r,
                BinOp::Mul => l * r,
                BinOp::Div => when(r.clone().eq(lit(0))).then(null()).otherwise(exact_div(l, r)),
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
        Kind::InList { expr, list, negated } => {
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
            whens
                .iter()
                .rev()
                .fold(otherwise, |rest, (c, r)| when(condition(c)).then(lo(r)).otherwise(rest))
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
        Func::Sqrt => when(x().lt(lit(0))).then(null()).otherwise(float(x()).sqrt()),
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
        Func::DaysBetween => all[1].clone().cast(DataType::Int64) - all[0].clone().cast(DataType::Int64),
        Func::CyclesSince => cycles_since(x(), as_of),
        Func::Quantile => {
            let q = match args[1].kind {
                Kind::Int(v) => v as f64,
                Kind::Num(v) => v,
                _ => 0.5,
            };
            quantile_linear(x(), q)
        }
        Func::Median => quantile_linear(x(), 0.5),
        Func::Mean => float(x()).mean(),
        // SQL's SUM over no values is null; polars' is 0.
        Func::Sum => when(x().count().eq(lit(0))).then(null()).otherwise(float(x()).sum()),
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
                .otherwise(exact_div(rank - lit(1.0), n - lit(1.0)))
        }
        Func::ParetoShare => {
            let xf = float(x());
            let total = xf.clone().sum();
            when(xf.clone().is_null().or(total.clone().eq(lit(0.0))))
                .then(null())
                .otherwise(exact_div(pareto_running_sum(xf), total))
        }
    }
}

/// Each row's running sum of `x` in the order x descending, ties in row
/// order, which is account id order (features are computed over accounts
/// sorted by id); null where x is null. NaN sorts first, as the largest
/// value does in polars.
///
/// One stable sort of the row positions and one pass, where the same in
/// polars expressions takes two sorts and an inverse permutation.
fn pareto_running_sum(x: Expr) -> Expr {
    x.apply(
        |column: Column| {
            let x = column.as_materialized_series().f64()?.clone();
            // (value, row) of the non-null rows; the row breaks ties, so an
            // unstable sort gives the stable order.
            let mut order: Vec<(f64, usize)> = x.iter().enumerate().filter_map(|(i, v)| Some((v?, i))).collect();
            polars_core::runtime::THREAD_POOL.install(|| {
                use rayon::slice::ParallelSliceMut;
                order.par_sort_unstable_by(|&(p, i), &(q, j)| descending(p, q).then(i.cmp(&j)))
            });
            let mut running = vec![None; x.len()];
            let mut sum = 0.0;
            for (v, i) in order {
                sum += v;
                running[i] = Some(sum);
            }
            Ok(Float64Chunked::from_iter_options(x.name().clone(), running.into_iter()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Float64)),
    )
}

/// numpy's `quantile(x, q, method="linear")` of the non-null values, to
/// the last bit: with the values sorted, `h = (n - 1) * q`, `a` and `b` the
/// values at `floor(h)` and the next index (the last value past the end),
/// `g = h - floor(h)`, and `a + (b - a) * g`, or `b - (b - a) * (1 - g)`
/// when `g >= 0.5`, in that order of operations. Null when there are no
/// values. (polars' own quantile counts nulls into the index and always
/// interpolates from below, so it can be one unit in the last place off.)
///
/// The two values found by selection in Rust (no sort: the one at
/// `floor(h)` in order, then the least of those after it), the value
/// broadcast to every row: in polars expressions the sorted column is one
/// expression per use (the count, both neighbours), and each was sorted
/// again.
fn quantile_linear(x: Expr, q: f64) -> Expr {
    float(x).apply(
        move |column: Column| {
            let x = column.as_materialized_series().f64()?;
            let mut values: Vec<f64> = x.iter().flatten().collect();
            // Ascending, NaN last as polars sorts it.
            let ascending = |p: &f64, q: &f64| descending(*q, *p);
            let value = (!values.is_empty()).then(|| {
                let h = (values.len() as f64 - 1.0) * q;
                let low = h.floor();
                let g = h - low;
                let (_, a, above) = values.select_nth_unstable_by(low as usize, ascending);
                let a = *a;
                let b = above.iter().copied().min_by(ascending).unwrap_or(a);
                let diff = b - a;
                if g >= 0.5 { b - diff * (1.0 - g) } else { a + diff * g }
            });
            let value = value.map_or(AnyValue::Null, AnyValue::Float64);
            Ok(Column::new_scalar(
                x.name().clone(),
                Scalar::new(DataType::Float64, value),
                x.len(),
            ))
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Float64)),
    )
}

/// Larger first; NaN before every number.
fn descending(p: f64, q: f64) -> std::cmp::Ordering {
    match (p.is_nan(), q.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => q.partial_cmp(&p).expect("neither is NaN"),
    }
}

fn positive_only(x: Expr, f: impl FnOnce(Expr) -> Expr) -> Expr {
    when(x.clone().gt(lit(0))).then(f(float(x))).otherwise(null())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::expr::{Names, Type, check, parse};

    /// Evaluates `src` over a small frame and returns the values as text.
    /// `src` parsed and checked against a numeric column `x`.
    fn checked(src: &str) -> Ast {
        let params = BTreeMap::new();
        let columns = BTreeMap::from([("account_id".to_string(), Type::Str), ("x".to_string(), Type::Num)]);
        let names = Names {
            params: &params,
            columns: &columns,
            previous: None,
        };
        check(&parse(src).unwrap(), &names).unwrap().ast
    }

    fn eval(src: &str) -> Vec<String> {
        let frame = df! {
            "account_id" => ["a", "b", "c", "d", "e"],
            "x" => [Some(1.0), Some(4.0), None, Some(4.0), Some(1.0)],
            "n" => [Some(0i64), Some(2), Some(3), None, Some(0)],
            "s" => [Some("Pro"), Some("pro"), None, Some("Starter"), Some("Pro")],
            "d" => [Some(0i32), Some(31), None, Some(365), Some(-1)],
        }
        .unwrap()
        .lazy()
        .with_column(col("d").cast(DataType::Date))
        .collect()
        .unwrap();
        let params = BTreeMap::from([("cut".to_string(), Kind::Num(0.5))]);
        let columns = BTreeMap::from([
            ("account_id".to_string(), Type::Str),
            ("x".to_string(), Type::Num),
            ("n".to_string(), Type::Num),
            ("s".to_string(), Type::Str),
            ("d".to_string(), Type::Date),
        ]);
        let names = Names {
            params: &params,
            columns: &columns,
            previous: None,
        };
        let ast = check(&parse(src).unwrap(), &names).unwrap().ast;
        let as_of = NaiveDate::from_ymd_opt(1971, 1, 1).unwrap();
        let out = frame
            .lazy()
            .with_column(lower(&ast, as_of).alias("v"))
            .collect()
            .unwrap();
        let v = out.column("v").unwrap();
        (0..v.len())
            .map(|i| match v.get(i).unwrap() {
                AnyValue::Null => "null".to_string(),
                AnyValue::String(s) => s.to_string(),
                AnyValue::Float64(f) => format!("{}", (f * 1e6).round() / 1e6),
                other => other.to_string(),
            })
            .collect()
    }

    /// `cycles_since` counts cycles of the argument's own cadence up to the
    /// one that holds as_of, for every form of cycle id.
    #[test]
    fn cycles_since_counts_in_the_cadence_of_its_argument() {
        let ids = [
            Some("2026-Q3"),
            Some("2026-Q1"),
            Some("2025-Q4"),
            Some("2026-H2"),
            Some("2025-H2"),
            Some("2026-09"),
            Some("2025-12"),
            Some("2026"),
            Some("2020"),
            None,
            Some("soon"),
        ];
        let frame = df! { "c" => ids }.unwrap();
        let params = BTreeMap::new();
        let columns = BTreeMap::from([("c".to_string(), Type::Str)]);
        let names = Names {
            params: &params,
            columns: &columns,
            previous: None,
        };
        let ast = check(&parse("cycles_since(c)").unwrap(), &names).unwrap().ast;
        // as_of inside 2026-Q3, 2026-H2, 2026-09 and 2026.
        let as_of = NaiveDate::from_ymd_opt(2026, 9, 30).unwrap();
        let out = frame.lazy().select([lower(&ast, as_of).alias("n")]).collect().unwrap();
        let got: Vec<Option<i64>> = out
            .column("n")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            got,
            [
                Some(0),
                Some(2),
                Some(3),
                Some(0),
                Some(2),
                Some(0),
                Some(9),
                Some(0),
                Some(6),
                None,
                None
            ]
        );
    }

    #[test]
    fn division_is_correctly_rounded_even_by_a_scalar() {
        // polars' own `column / scalar` multiplies by the reciprocal:
        // 1750.0 * (1/90) is 19.444444444444446, the quotient 19.444444444444443.
        let frame = df! { "x" => [1750.0, 436.0, 1.0] }.unwrap();
        let out = frame
            .lazy()
            .with_columns([
                exact_div(col("x"), lit(90.0)).alias("by_scalar"),
                exact_div(lit(1750.0), col("x")).alias("scalar_by"),
            ])
            .collect()
            .unwrap();
        let by: Vec<f64> = out
            .column("by_scalar")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(by, [1750.0 / 90.0, 436.0 / 90.0, 1.0 / 90.0]);
        assert_eq!(by[0].to_bits(), 19.444444444444443f64.to_bits());
        let scalar_by: Vec<f64> = out
            .column("scalar_by")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(scalar_by, [1.0, 1750.0 / 436.0, 1750.0]);
    }

    #[test]
    fn division_by_zero_is_null() {
        assert_eq!(eval("x / n"), ["null", "2", "null", "null", "null"]);
        assert_eq!(eval("n / 2"), ["0", "1", "1.5", "null", "0"]);
    }

    #[test]
    fn comparisons_and_logic_are_three_valued() {
        assert_eq!(eval("x > 2"), ["false", "true", "null", "true", "false"]);
        assert_eq!(eval("x > 2 OR n = 3"), ["false", "true", "true", "true", "false"]);
        assert_eq!(eval("x > 2 AND n = 3"), ["false", "false", "null", "null", "false"]);
        assert_eq!(eval("NOT x > 2"), ["true", "false", "null", "false", "true"]);
        assert_eq!(eval("x IS NULL"), ["false", "false", "true", "false", "false"]);
        assert_eq!(eval("x BETWEEN 1 AND 3"), ["true", "false", "null", "false", "true"]);
        assert_eq!(eval("n IN (2, 3)"), ["false", "true", "true", "null", "false"]);
        // SQL: 0 IN (2, NULL) is null, not false.
        assert_eq!(eval("n IN (2, NULL)"), ["null", "true", "null", "null", "null"]);
        assert_eq!(eval("n NOT IN (2, 3)"), ["true", "false", "false", "null", "true"]);
    }

    #[test]
    fn case_skips_null_conditions() {
        assert_eq!(
            eval("CASE WHEN x > 2 THEN 'big' WHEN n = 3 THEN 'three' ELSE 'other' END"),
            ["other", "big", "three", "big", "other"]
        );
        assert_eq!(eval("CASE s WHEN 'Pro' THEN 1 ELSE 0 END"), ["1", "0", "0", "0", "1"]);
        assert_eq!(eval("CASE WHEN x > 2 THEN 1 END"), ["null", "1", "null", "1", "null"]);
    }

    #[test]
    fn scalar_functions() {
        assert_eq!(eval("COALESCE(x, n, -1)"), ["1", "4", "3", "4", "1"]);
        assert_eq!(eval("NULLIF(n, 0)"), ["null", "2", "3", "null", "null"]);
        assert_eq!(eval("GREATEST(x, n)"), ["1", "4", "3", "4", "1"]);
        assert_eq!(eval("LEAST(x, n)"), ["0", "2", "3", "4", "0"]);
        assert_eq!(eval("LN(n)"), ["null", "0.693147", "1.098612", "null", "null"]);
        assert_eq!(eval("SQRT(x - 2)"), ["null", "1.414214", "null", "1.414214", "null"]);
        assert_eq!(eval("ROUND(x / 3, 2)"), ["0.33", "1.33", "null", "1.33", "0.33"]);
        assert_eq!(eval("ROUND(2.5)"), ["3", "3", "3", "3", "3"]);
        assert_eq!(eval("POWER(n, 2)"), ["0", "4", "9", "null", "0"]);
        assert_eq!(eval("FLOOR(-x / 3)"), ["-1", "-2", "null", "-2", "-1"]);
        assert_eq!(eval("LOWER(s)"), ["pro", "pro", "null", "starter", "pro"]);
        assert_eq!(eval("days_between(d, as_of)"), ["365", "334", "null", "0", "366"]);
        assert_eq!(eval("d >= '1970-02-01'"), ["false", "true", "null", "true", "false"]);
        assert_eq!(eval("-cut"), ["-0.5", "-0.5", "-0.5", "-0.5", "-0.5"]);
    }

    #[test]
    fn base_wide_functions_ignore_nulls() {
        // x = 1, 4, null, 4, 1
        assert_eq!(eval("mean(x)"), ["2.5"; 5]);
        assert_eq!(eval("median(x)"), ["2.5"; 5]);
        assert_eq!(eval("sum(x)"), ["10"; 5]);
        assert_eq!(eval("quantile(x, 0.25)"), ["1"; 5]);
        assert_eq!(eval("quantile(x, 0.5)"), ["2.5"; 5]);
        assert_eq!(eval("quantile(x, 0.9)"), ["4"; 5]);
        assert_eq!(eval("sum(CASE WHEN x > 10 THEN x END)"), ["null"; 5]);
        // (min rank of ties - 1) / (n - 1), n = 4 non-null values.
        assert_eq!(eval("percent_rank(x)"), ["0", "0.666667", "null", "0.666667", "0"]);
    }

    /// numpy's linear quantile of the non-null values, written out as numpy
    /// computes it (`_quantile`, `_get_indexes`, `_lerp`).
    fn numpy_quantile(values: &[Option<f64>], q: f64) -> Option<f64> {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let h = (n - 1) as f64 * q;
        let (low, next) = if h >= (n - 1) as f64 {
            (n - 1, n - 1)
        } else {
            (h.floor() as usize, h.floor() as usize + 1)
        };
        let gamma = h - if h >= (n - 1) as f64 { -1.0 } else { low as f64 };
        let (a, b) = (v[low], v[next]);
        let diff = b - a;
        Some(if gamma >= 0.5 {
            b - diff * (1.0 - gamma)
        } else {
            a + diff * gamma
        })
    }

    fn base_wide(values: &[Option<f64>], src: &str) -> Option<f64> {
        let ids: Vec<String> = (0..values.len()).map(|i| format!("a{i:03}")).collect();
        let frame = df! { "account_id" => ids, "x" => values.to_vec() }.unwrap();
        let out = frame
            .lazy()
            .with_columns([lower(&checked(src), NaiveDate::MIN).alias("q")])
            .collect()
            .unwrap();
        let q = out.column("q").unwrap().f64().unwrap();
        let first = q.get(0);
        assert!(
            q.iter().all(|v| v.map(f64::to_bits) == first.map(f64::to_bits)),
            "broadcast to every account"
        );
        first
    }

    /// Regression: polars counts nulls into the index, giving
    /// 0.10000000000000009 here.
    #[test]
    fn quantile_ignores_nulls_to_the_last_bit() {
        let values = [Some(0.0), Some(1.0), None];
        assert_eq!(base_wide(&values, "quantile(x, 0.1)"), Some(0.1));
        assert_eq!(base_wide(&values, "median(x)"), Some(0.5));
        assert_eq!(base_wide(&[None, None], "quantile(x, 0.5)"), None);
        assert_eq!(base_wide(&[None, Some(7.0)], "quantile(x, 1)"), Some(7.0));
        assert_eq!(base_wide(&[Some(3.0), None], "quantile(x, 0)"), Some(3.0));
    }

    proptest::proptest! {
        /// quantile and median equal numpy's linear method on the non-null
        /// values, bit for bit: nulls, ties, negatives, one value, none.
        #[test]
        fn quantile_matches_numpy_linear(
            xs in proptest::collection::vec(proptest::option::of(-1e6f64..1e6), 1..40),
            ties in proptest::collection::vec(proptest::option::of(0i32..4), 0..20),
            q in proptest::prop_oneof![
                proptest::strategy::Just(0.0), proptest::strategy::Just(1.0), proptest::strategy::Just(0.1),
                proptest::strategy::Just(0.5), proptest::strategy::Just(0.9), 0.0f64..=1.0
            ],
        ) {
            let mut values = xs;
            values.extend(ties.iter().map(|t| t.map(f64::from)));
            let got = base_wide(&values, &format!("quantile(x, {q:?})"));
            let want = numpy_quantile(&values, q);
            proptest::prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{:?} vs {:?}", got, want);
            let median = base_wide(&values, "median(x)");
            proptest::prop_assert_eq!(median.map(f64::to_bits), numpy_quantile(&values, 0.5).map(f64::to_bits));
        }
    }

    #[test]
    fn pareto_share_breaks_ties_by_account_id() {
        // Order: b (4), d (4), a (1), e (1); total 10.
        assert_eq!(eval("pareto_share(x)"), ["0.9", "0.4", "null", "0.8", "1"]);
    }

    proptest::proptest! {
        /// The definition, row by row: the sum of x over the accounts that
        /// come before or at this one (x larger, or equal with a smaller
        /// account id), over the total. Small integers: many ties, exact sums.
        #[test]
        fn pareto_share_matches_its_definition(xs in proptest::collection::vec(proptest::option::of(0i32..6), 1..60)) {
            let ids: Vec<String> = (0..xs.len()).map(|i| format!("a{i:03}")).collect();
            let values: Vec<Option<f64>> = xs.iter().map(|x| x.map(f64::from)).collect();
            let frame = df! { "account_id" => ids, "x" => values.clone() }.unwrap();
            let out = frame
                .lazy()
                .select([lower(&checked("pareto_share(x)"), NaiveDate::MIN).alias("p")])
                .collect()
                .unwrap();
            let got: Vec<Option<f64>> = out.column("p").unwrap().f64().unwrap().iter().collect();
            let total: f64 = values.iter().flatten().sum();
            let want: Vec<Option<f64>> = values
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let x = (*x)?;
                    if total == 0.0 {
                        return None;
                    }
                    let before: f64 = values
                        .iter()
                        .enumerate()
                        .filter_map(|(j, y)| y.filter(|y| *y > x || (*y == x && j <= i)))
                        .sum();
                    Some(before / total)
                })
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
