"""The default pipeline (pipelines/default.toml) written by hand for the peers
quadrant is measured against: DuckDB as one SQL query, and Python polars as a
lazy query. Also the floor: a plain scan of the usage columns.

Like quadrant's snapshot, each writes every account with its columns,
aggregates, features and the five labels to --out, so the engines do the same
work, and bench/run.py can check that every account gets the same labels.

    python3 bench/peers.py duckdb|polars|scan --accounts A --usage U --as-of 2026-09-30 --threads 2 --out labels.parquet
"""

import argparse
import datetime as dt
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pipelines", "default.toml"), "rb") as f:
    P = tomllib.load(f)["params"]

SEGMENTATIONS = ["wallet_share_matrix", "growth_risk", "size_contract", "touch_tier", "strategic_accounts"]


def duckdb_sql(accounts, usage, as_of, history):
    # DuckDB reads 0.4 as a DECIMAL; quadrant computes in doubles, as Python,
    # numpy or pandas would. Casting the literals keeps the arithmetic the same
    # down to the last bit, which decides labels that sit on a threshold.
    p = {k: f"CAST({v} AS DOUBLE)" if isinstance(v, float) else v for k, v in P.items()}
    d = f"DATE '{as_of}'"
    pit = f"""
    WHERE snapshot_date IS NULL OR snapshot_date <= {d}
    QUALIFY snapshot_date IS NOT DISTINCT FROM max(snapshot_date) OVER (PARTITION BY account_id)""" if history else ""
    return f"""
WITH acc_pit AS (
    SELECT * FROM read_parquet('{accounts}'){pit}
),
acc AS (
    SELECT * FROM acc_pit WHERE customer_since <= {d} AND (churned_on IS NULL OR churned_on > {d})
),
u AS (
    SELECT account_id,
        CAST(sum(events) FILTER (WHERE date > {d} - 90) AS DOUBLE) / 90 AS events_per_day_90d,
        CAST(sum(events) FILTER (WHERE date <= {d} - 90) AS DOUBLE) / 90 AS events_per_day_prior_90d,
        avg(active_users) FILTER (WHERE date > {d} - 30) AS active_users_30d
    FROM read_parquet('{usage}')
    WHERE date > {d} - 180 AND date <= {d}
    GROUP BY account_id
),
f AS (
    SELECT acc.*,
        CAST({d} - customer_since AS DOUBLE) / CAST(30.4375 AS DOUBLE) AS tenure_months,
        COALESCE(wallet, employees * {p['wallet_per_employee']}) AS wallet_estimate,
        arr / NULLIF(wallet_estimate, 0) AS wallet_share,
        CASE WHEN wallet_estimate IS NULL THEN 0 ELSE GREATEST(wallet_estimate - arr, 0) END AS whitespace,
        COALESCE(u.events_per_day_90d, 0) AS usage_recent,
        COALESCE(u.events_per_day_prior_90d, 0) AS usage_prior,
        (usage_recent - usage_prior) / NULLIF(usage_prior, 0) AS usage_growth,
        COALESCE(u.active_users_30d, 0) / NULLIF(seats, 0) AS seat_utilization,
        employees / NULLIF(employees_prior, 0) - 1 AS employee_growth,
        {p['weight_whitespace']} * (1 - LEAST(COALESCE(wallet_share, 1), 1))
          + {p['weight_headcount_growth']} * LEAST(GREATEST(COALESCE(employee_growth, 0), 0) / {p['headcount_growth_full']}, 1)
          + {p['weight_usage_growth']} * LEAST(GREATEST(COALESCE(usage_growth, 0), 0) / {p['usage_growth_full']}, 1)
          AS growth_potential,
        {p['weight_nps']} * CASE WHEN nps <= {p['detractor_nps']} THEN 1 WHEN nps <= {p['passive_nps']} THEN CAST(0.4 AS DOUBLE) ELSE 0 END
          + {p['weight_usage_decline']} * LEAST(GREATEST(-COALESCE(usage_growth, 0), 0) / {p['usage_decline_full']}, 1)
          + {p['weight_low_adoption']} * (1 - LEAST(seat_utilization, 1))
          + {p['weight_renewal_soon']} * CASE WHEN (renewal_date - {d}) BETWEEN 0 AND {p['renewal_window_days']} THEN 1 ELSE 0 END
          AS risk_score
    FROM acc LEFT JOIN u USING (account_id)
),
b AS (
    SELECT f.*,
        quantile_cont(arr, {p['protect_min_arr_quantile']}) OVER () AS arr_q_protect,
        quantile_cont(arr, {p['high_stakes_arr_quantile']}) OVER () AS arr_q_stakes,
        sum(arr) OVER (ORDER BY arr DESC, account_id ASC ROWS UNBOUNDED PRECEDING) / sum(arr) OVER () AS arr_pareto
    FROM f
)
SELECT * EXCLUDE (arr_q_protect, arr_q_stakes, arr_pareto),
    CASE
        WHEN nps <= {p['detractor_nps']} OR usage_growth <= -{p['usage_decline_alert']} THEN 'Re-evaluate'
        WHEN wallet_share >= {p['mature_share']} AND tenure_months >= {p['protect_min_tenure_months']} AND arr >= arr_q_protect THEN 'Protect'
        WHEN growth_potential >= {p['grow_min_potential']} AND whitespace >= {p['grow_min_whitespace']} THEN 'Grow'
        ELSE 'Manage' END AS wallet_share_matrix,
    CASE
        WHEN risk_score >= {p['high_risk']} AND growth_potential >= {p['high_potential']} THEN 'Invest'
        WHEN growth_potential >= {p['high_potential']} THEN 'Grow'
        WHEN risk_score >= {p['high_risk']} THEN 'Protect'
        ELSE 'Sustain' END AS growth_risk,
    CASE
        WHEN (employees >= {p['big_company_employees']} OR annual_revenue >= {p['big_company_revenue']}) AND arr >= {p['big_contract_arr']} THEN 'Enterprise'
        WHEN arr >= {p['big_contract_arr']} THEN 'Major'
        WHEN employees >= {p['big_company_employees']} OR annual_revenue >= {p['big_company_revenue']} THEN 'Large Opportunity'
        ELSE 'SMB' END AS size_contract,
    CASE
        WHEN risk_score >= {p['high_risk']} AND arr >= arr_q_stakes THEN 'High touch'
        WHEN wallet_share >= {p['mature_share']} AND seat_utilization >= {p['full_adoption']} THEN 'Low touch'
        WHEN growth_potential >= {p['high_potential']} THEN 'High touch'
        ELSE 'Low touch' END AS touch_tier,
    CASE
        WHEN arr_pareto <= {p['pareto_cut']} AND (employee_growth >= {p['strategic_employee_growth']}
            OR usage_growth >= {p['strategic_usage_growth']} OR seat_utilization >= {p['strategic_seat_utilization']}
            OR whitespace >= {p['strategic_min_whitespace']}) THEN 'Strategic'
        ELSE 'Standard' END AS strategic_accounts
FROM b
ORDER BY account_id
"""


def run_duckdb(a):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    history = "snapshot_date" in [c[0] for c in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{a.accounts}')").fetchall()]
    sql = duckdb_sql(a.accounts, a.usage, a.as_of, history)
    con.execute(f"COPY ({sql}) TO '{a.out}' (FORMAT parquet)")


def run_polars(a):
    import polars as pl

    p = P
    as_of = dt.date.fromisoformat(a.as_of)
    day = lambda n: as_of - dt.timedelta(days=n)  # noqa: E731
    acc = pl.scan_parquet(a.accounts)
    if "snapshot_date" in acc.collect_schema():
        acc = acc.filter(pl.col("snapshot_date").is_null() | (pl.col("snapshot_date") <= as_of))
        acc = acc.filter(pl.col("snapshot_date").eq_missing(pl.col("snapshot_date").max().over("account_id")))
    acc = acc.filter((pl.col("customer_since") <= as_of) & (pl.col("churned_on").is_null() | (pl.col("churned_on") > as_of)))
    d = pl.col("date")
    u = (
        pl.scan_parquet(a.usage)
        .filter((d > day(180)) & (d <= as_of))
        .group_by("account_id")
        .agg(
            pl.col("events").filter(d > day(90)).sum().alias("events_sum_90d"),
            pl.col("events").filter(d <= day(90)).sum().alias("events_sum_prior_90d"),
            pl.col("active_users").filter(d > day(30)).mean().alias("active_users_30d"),
        )
    )

    def exact(x, y):
        # polars divides by a scalar through its reciprocal, a unit in the last
        # place off the quotient (also for a column it knows to be constant);
        # Arrow's divide kernel divides exactly, as quadrant does.
        import pyarrow.compute as pc

        if not isinstance(y, pl.Expr):
            return x.cast(pl.Float64).map_batches(
                lambda s: pl.from_arrow(pc.divide(s.to_arrow(), float(y))), return_dtype=pl.Float64
            )
        return pl.struct(x.cast(pl.Float64).alias("a"), y.cast(pl.Float64).alias("b")).map_batches(
            lambda s: pl.from_arrow(pc.divide(s.struct.field("a").to_arrow(), s.struct.field("b").to_arrow())),
            return_dtype=pl.Float64,
        )

    def div(x, y):
        return pl.when(y == 0).then(None).otherwise(exact(x, y))

    c = pl.col
    f = acc.join(u, on="account_id", how="left").with_columns(
        exact(c("events_sum_90d").cast(pl.Float64), 90.0).alias("events_per_day_90d"),
        exact(c("events_sum_prior_90d").cast(pl.Float64), 90.0).alias("events_per_day_prior_90d"),
    ).drop("events_sum_90d", "events_sum_prior_90d").with_columns(
        exact((pl.lit(as_of) - c("customer_since")).dt.total_days().cast(pl.Float64), 30.4375).alias("tenure_months"),
        pl.coalesce(c("wallet"), c("employees") * p["wallet_per_employee"]).alias("wallet_estimate"),
        c("events_per_day_90d").fill_null(0).alias("usage_recent"),
        c("events_per_day_prior_90d").fill_null(0).alias("usage_prior"),
    )
    f = f.with_columns(
        (div(c("employees"), c("employees_prior")) - 1).alias("employee_growth"),
        div(c("arr"), c("wallet_estimate")).alias("wallet_share"),
        pl.max_horizontal(c("wallet_estimate") - c("arr"), pl.lit(0)).alias("whitespace"),
        div(c("usage_recent") - c("usage_prior"), c("usage_prior")).alias("usage_growth"),
        div(c("active_users_30d").fill_null(0), c("seats")).alias("seat_utilization"),
    )
    f = f.with_columns(
        (
            p["weight_whitespace"] * (1 - pl.min_horizontal(c("wallet_share").fill_null(1), pl.lit(1)))
            + p["weight_headcount_growth"] * pl.min_horizontal(exact(pl.max_horizontal(c("employee_growth").fill_null(0), pl.lit(0)), p["headcount_growth_full"]), pl.lit(1))
            + p["weight_usage_growth"] * pl.min_horizontal(exact(pl.max_horizontal(c("usage_growth").fill_null(0), pl.lit(0)), p["usage_growth_full"]), pl.lit(1))
        ).alias("growth_potential"),
        (
            p["weight_nps"] * pl.when(c("nps") <= p["detractor_nps"]).then(1.0).when(c("nps") <= p["passive_nps"]).then(0.4).otherwise(0.0)
            + p["weight_usage_decline"] * pl.min_horizontal(exact(pl.max_horizontal(-c("usage_growth").fill_null(0), pl.lit(0)), p["usage_decline_full"]), pl.lit(1))
            + p["weight_low_adoption"] * (1 - pl.min_horizontal(c("seat_utilization"), pl.lit(1)))
            + p["weight_renewal_soon"] * pl.when((c("renewal_date") - pl.lit(as_of)).dt.total_days().is_between(0, p["renewal_window_days"])).then(1.0).otherwise(0.0)
        ).alias("risk_score"),
        c("arr").quantile(p["protect_min_arr_quantile"], "linear").alias("arr_q_protect"),
        c("arr").quantile(p["high_stakes_arr_quantile"], "linear").alias("arr_q_stakes"),
    )
    f = f.sort(["arr", "account_id"], descending=[True, False]).with_columns(
        exact(c("arr").cum_sum(), pl.repeat(c("arr").sum(), pl.len())).alias("arr_pareto")
    )

    def first(*pairs, default):
        expr = pl.lit(default)
        for cond, label in reversed(pairs):
            expr = pl.when(cond.fill_null(False)).then(pl.lit(label)).otherwise(expr)
        return expr

    big_co = (c("employees") >= p["big_company_employees"]) | (c("annual_revenue") >= p["big_company_revenue"])
    big_ct = c("arr") >= p["big_contract_arr"]
    hi_pot = c("growth_potential") >= p["high_potential"]
    hi_risk = c("risk_score") >= p["high_risk"]
    out = f.select(
        pl.all().exclude("arr_q_protect", "arr_q_stakes", "arr_pareto"),
        first(
            ((c("nps") <= p["detractor_nps"]) | (c("usage_growth") <= -p["usage_decline_alert"]), "Re-evaluate"),
            ((c("wallet_share") >= p["mature_share"]) & (c("tenure_months") >= p["protect_min_tenure_months"]) & (c("arr") >= c("arr_q_protect")), "Protect"),
            ((c("growth_potential") >= p["grow_min_potential"]) & (c("whitespace") >= p["grow_min_whitespace"]), "Grow"),
            default="Manage",
        ).alias("wallet_share_matrix"),
        first((hi_risk & hi_pot, "Invest"), (hi_pot, "Grow"), (hi_risk, "Protect"), default="Sustain").alias("growth_risk"),
        first((big_co & big_ct, "Enterprise"), (big_ct, "Major"), (big_co, "Large Opportunity"), default="SMB").alias("size_contract"),
        first(
            (hi_risk & (c("arr") >= c("arr_q_stakes")), "High touch"),
            ((c("wallet_share") >= p["mature_share"]) & (c("seat_utilization") >= p["full_adoption"]), "Low touch"),
            (hi_pot, "High touch"),
            default="Low touch",
        ).alias("touch_tier"),
        first(
            (
                (c("arr_pareto") <= p["pareto_cut"])
                & (
                    (c("employee_growth") >= p["strategic_employee_growth"])
                    | (c("usage_growth") >= p["strategic_usage_growth"])
                    | (c("seat_utilization") >= p["strategic_seat_utilization"])
                    | (c("whitespace") >= p["strategic_min_whitespace"])
                ),
                "Strategic",
            ),
            default="Standard",
        ).alias("strategic_accounts"),
    ).sort("account_id")
    out.collect(engine="streaming").write_parquet(a.out)


def run_scan(a):
    """The floor: read and decode the usage columns the pipeline uses, nothing else."""
    import polars as pl

    pl.scan_parquet(a.usage).select(
        pl.col("account_id").n_unique(), pl.col("date").max(), pl.col("events").sum(), pl.col("active_users").sum()
    ).collect(engine="streaming")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["duckdb", "polars", "scan"])
    ap.add_argument("--accounts", required=True)
    ap.add_argument("--usage", required=True)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    {"duckdb": run_duckdb, "polars": run_polars, "scan": run_scan}[a.engine](a)


if __name__ == "__main__":
    sys.exit(main())
