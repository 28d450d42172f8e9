//! Bounded fuzzing of the two parsers that read user text: the expression
//! language and the pipeline loader. Run with the unit tests; raise
//! `QUADRANT_FUZZ_CASES` (default 1000) for a longer session. Whatever the
//! input, the result is a value or an error: never a panic or a hang.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use polars::prelude::*;
    use proptest::prelude::*;

    use crate::config::{DEFAULT_PIPELINE, Pipeline};
    use crate::engine::polars::lower::lower;
    use crate::expr::{Kind, Names, Type, check, parse};

    fn cases() -> u32 {
        std::env::var("QUADRANT_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    }

    /// Words and symbols of the language, and some that are not in it.
    const VOCABULARY: &[&str] = &[
        "arr",
        "wallet",
        "nps",
        "segment",
        "customer_since",
        "as_of",
        "cut",
        "x",
        "(",
        ")",
        ",",
        "+",
        "-",
        "*",
        "/",
        "=",
        "<>",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "AND",
        "OR",
        "NOT",
        "IS",
        "NULL",
        "BETWEEN",
        "IN",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "TRUE",
        "FALSE",
        "0",
        "1",
        "-1",
        "0.5",
        "1e308",
        "9999999999999999999",
        "'a'",
        "''",
        "'2024-02-29'",
        "DATE",
        "coalesce",
        "nullif",
        "greatest",
        "least",
        "abs",
        "ln",
        "log10",
        "sqrt",
        "power",
        "round",
        "floor",
        "ceil",
        "lower",
        "upper",
        "days_between",
        "quantile",
        "median",
        "mean",
        "sum",
        "percent_rank",
        "pareto_share",
        "params",
        ".",
        ";",
        "--",
        "\"",
        "'",
        "SELECT",
        "DISTINCT",
        "é",
        "\n",
    ];

    fn token_soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(VOCABULARY), 1..40).prop_map(|t| t.join(" "))
    }

    fn names() -> (BTreeMap<String, Kind>, BTreeMap<String, Type>) {
        let params = BTreeMap::from([
            ("cut".to_string(), Kind::Num(0.5)),
            ("segment".to_string(), Kind::Str("smb".into())),
        ]);
        let columns = BTreeMap::from([
            ("account_id".to_string(), Type::Str),
            ("arr".to_string(), Type::Num),
            ("wallet".to_string(), Type::Num),
            ("nps".to_string(), Type::Num),
            ("x".to_string(), Type::Any),
            ("customer_since".to_string(), Type::Date),
        ]);
        (params, columns)
    }

    fn frame() -> DataFrame {
        df! {
            "account_id" => ["a", "b", "c"],
            "arr" => [Some(1.0), None, Some(-3.0)],
            "wallet" => [Some(0.0), Some(2.0), None],
            "nps" => [Some(7i64), None, Some(11)],
            "x" => [Some(1.0), Some(2.0), None],
            "customer_since" => [Some(0i32), None, Some(20_000)],
        }
        .unwrap()
        .lazy()
        .with_column(col("customer_since").cast(DataType::Date))
        .collect()
        .unwrap()
    }

    /// Parse, check, lower and evaluate: every step may refuse, none may panic.
    fn exercise(src: &str) {
        let Ok(ast) = parse(src) else { return };
        let (params, columns) = names();
        let names = Names {
            params: &params,
            columns: &columns,
            previous: None,
        };
        let Ok(resolved) = check(&ast, &names) else { return };
        let as_of = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        // polars may return an error (an overflow, say); it must not panic.
        let _ = frame()
            .lazy()
            .with_column(lower(&resolved.ast, as_of).alias("v"))
            .collect();
        for c in resolved.ast.conditions() {
            let _ = c.to_string();
        }
    }

    fn pipeline_with(mutation: &str, at: usize) -> String {
        let at = DEFAULT_PIPELINE
            .char_indices()
            .map(|(i, _)| i)
            .nth(at % DEFAULT_PIPELINE.chars().count())
            .unwrap_or(0);
        format!("{}{mutation}{}", &DEFAULT_PIPELINE[..at], &DEFAULT_PIPELINE[at..])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn expressions_from_arbitrary_text(src in "\\PC{0,80}") {
            exercise(&src);
        }

        #[test]
        fn expressions_from_the_language_s_own_words(src in token_soup()) {
            exercise(&src);
        }

        #[test]
        fn pipelines_from_arbitrary_text(src in "\\PC{0,200}") {
            let _ = Pipeline::from_text(&src, "fuzz.toml");
        }

        #[test]
        fn pipelines_with_text_inserted(mutation in "\\PC{0,30}|\\[\\[features\\]\\]\\nname = \"[a-z]{1,3}\"\\nexpr = \"[a-z+*() ]{0,20}\"\\n", at in 0usize..20_000) {
            let _ = Pipeline::from_text(&pipeline_with(&mutation, at), "fuzz.toml");
        }

        #[test]
        fn pipelines_with_text_cut_out(start in 0usize..20_000, len in 0usize..400) {
            let chars: Vec<char> = DEFAULT_PIPELINE.chars().collect();
            let start = start % chars.len();
            let end = (start + len).min(chars.len());
            let text: String = chars[..start].iter().chain(&chars[end..]).collect();
            let _ = Pipeline::from_text(&text, "fuzz.toml");
        }
    }
}
