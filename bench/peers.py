"""The default pipeline (pipelines/default.toml) written by hand for the peers
quadrant is measured against: DuckDB as one SQL query, and Python polars as a
lazy query. Also the floor: a plain scan of the usage columns.

Like quadrant's snapshot, each writes every account with its columns,
aggregates, features and labels to --out (DuckDB: all six, with rules, `_since`
and, given --previous, hysteresis; polars: the five frameworks), so the engines do the same
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
# With the segmentation that reads the others' labels and `_since`.
ALL_SEGMENTATIONS = SEGMENTATIONS + ["re_evaluate_escalation"]


def quarter_of(as_of):
    d = dt.date.fromisoformat(as_of)
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def previous_quarter(cycle):
    y, q = int(cycle[:4]), int(cycle[6])
    return f"{y - 1}-Q4" if q == 1 else f"{y}-Q{q - 1}"


def duckdb_sql(accounts, usage, as_of, history, previous=None):
    """The whole default pipeline as one query. `previous` is this peer's
    own output for the quarter before (None: not committed), which the
    hysteresis of Protect, every `<segmentation>_since` and the escalation
    read, as quadrant reads its previous snapshot."""
    cycle = quarter_of(as_of)
    before = previous_quarter(cycle)
    # DuckDB reads 0.4 as a DECIMAL; quadrant computes in doubles, as Python,
    # numpy or pandas would. Casting the literals keeps the arithmetic the same
    # down to the last bit, which decides labels that sit on a threshold.
    p = {k: f"CAST({v} AS DOUBLE)" if isinstance(v, float) else v for k, v in P.items()}
    d = f"DATE '{as_of}'"
    pit = f"""
    WHERE snapshot_date IS NULL OR snapshot_date <= {d}
    QUALIFY snapshot_date IS NOT DISTINCT FROM max(snapshot_date) OVER (PARTITION BY account_id)""" if history else ""
    def quarter_index(expr):
        return f"(CAST(substr({expr}, 1, 4) AS INTEGER) * 4 + CAST(substr({expr}, 7, 1) AS INTEGER))"

    shown = ", ".join(
        f"{kind} AS prev_{s}{suffix}"
        for s in ALL_SEGMENTATIONS
        for kind, suffix in [(s, ""), (f"{s}_since", "_since")]
    )
    if previous:
        prev_rows = f"SELECT account_id, {shown} FROM read_parquet('{previous}')"
    else:
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS prev_{s}{x}" for s in ALL_SEGMENTATIONS for x in ["", "_since"])
        prev_rows = f"SELECT CAST(NULL AS VARCHAR) AS account_id, {nulls} WHERE false"
    since_columns = ",\n        ".join(
        f"CASE WHEN prev_{s} = {s} THEN COALESCE(prev_{s}_since, '{before}') ELSE '{cycle}' END AS {s}_since"
        for s in SEGMENTATIONS
    )
    conditions = ["c_poor_health", "c_mature", "c_kept", "c_untapped", "c_invest", "c_high_potential", "c_high_risk",
                  "c_big_company", "c_big_contract", "c_stakes", "c_maxed_out", "c_strategic"]
    # Only prev(wallet_share_matrix) is in the snapshot (the pipeline's
    # expressions read it); the other previous labels only decide `_since`.
    hidden_prev = [f"prev_{s}{x}" for s in ALL_SEGMENTATIONS for x in ["", "_since"] if f"prev_{s}{x}" != "prev_wallet_share_matrix"]
    helper_columns = ", ".join(conditions + hidden_prev)
    cycle_index = quarter_index(f"'{cycle}'")
    since_index = quarter_index("wallet_share_matrix_since")
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
),
prev AS (
    {prev_rows}
),
conditions AS (
    SELECT b.*, prev.* EXCLUDE (account_id),
        nps <= {p['detractor_nps']} OR usage_growth <= -{p['usage_decline_alert']} AS c_poor_health,
        wallet_share >= {p['mature_share']} AND tenure_months >= {p['protect_min_tenure_months']} AND arr >= arr_q_protect AS c_mature,
        prev_wallet_share_matrix = 'Protect' AND wallet_share >= {p['protect_keep_share']} AND tenure_months >= {p['protect_min_tenure_months']} AND arr >= arr_q_protect AS c_kept,
        growth_potential >= {p['grow_min_potential']} AND whitespace >= {p['grow_min_whitespace']} AS c_untapped,
        risk_score >= {p['high_risk']} AND growth_potential >= {p['high_potential']} AS c_invest,
        growth_potential >= {p['high_potential']} AS c_high_potential,
        risk_score >= {p['high_risk']} AS c_high_risk,
        (employees >= {p['big_company_employees']} OR annual_revenue >= {p['big_company_revenue']}) AS c_big_company,
        arr >= {p['big_contract_arr']} AS c_big_contract,
        risk_score >= {p['high_risk']} AND arr >= arr_q_stakes AS c_stakes,
        wallet_share >= {p['mature_share']} AND seat_utilization >= {p['full_adoption']} AS c_maxed_out,
        arr_pareto <= {p['pareto_cut']} AND (employee_growth >= {p['strategic_employee_growth']}
            OR usage_growth >= {p['strategic_usage_growth']} OR seat_utilization >= {p['strategic_seat_utilization']}
            OR whitespace >= {p['strategic_min_whitespace']}) AS c_strategic
    FROM b LEFT JOIN prev USING (account_id)
),
-- A condition that is null does not match: each CASE tests `IS TRUE`.
labels AS (
    SELECT *,
        CASE WHEN c_poor_health IS TRUE THEN 'poor_health' WHEN c_mature IS TRUE THEN 'mature_key_account'
            WHEN c_kept IS TRUE THEN 'kept_key_account' WHEN c_untapped IS TRUE THEN 'untapped_potential'
            ELSE 'default' END AS wallet_share_matrix_rule,
        CASE WHEN c_invest IS TRUE THEN 'high_risk_high_potential' WHEN c_high_potential IS TRUE THEN 'low_risk_high_potential'
            WHEN c_high_risk IS TRUE THEN 'high_risk_low_potential' ELSE 'default' END AS growth_risk_rule,
        CASE WHEN (c_big_company AND c_big_contract) IS TRUE THEN 'big_company_big_contract'
            WHEN c_big_contract IS TRUE THEN 'small_company_big_contract'
            WHEN c_big_company IS TRUE THEN 'big_company_small_contract' ELSE 'default' END AS size_contract_rule,
        CASE WHEN c_stakes IS TRUE THEN 'high_stakes_at_risk' WHEN c_maxed_out IS TRUE THEN 'maxed_out'
            WHEN c_high_potential IS TRUE THEN 'high_potential' ELSE 'default' END AS touch_tier_rule,
        CASE WHEN c_strategic IS TRUE THEN 'top_arr_with_expansion' ELSE 'default' END AS strategic_accounts_rule
    FROM conditions
),
named AS (
    SELECT *,
        CASE wallet_share_matrix_rule WHEN 'poor_health' THEN 'Re-evaluate' WHEN 'mature_key_account' THEN 'Protect'
            WHEN 'kept_key_account' THEN 'Protect' WHEN 'untapped_potential' THEN 'Grow' ELSE 'Manage' END AS wallet_share_matrix,
        CASE growth_risk_rule WHEN 'high_risk_high_potential' THEN 'Invest' WHEN 'low_risk_high_potential' THEN 'Grow'
            WHEN 'high_risk_low_potential' THEN 'Protect' ELSE 'Sustain' END AS growth_risk,
        CASE size_contract_rule WHEN 'big_company_big_contract' THEN 'Enterprise' WHEN 'small_company_big_contract' THEN 'Major'
            WHEN 'big_company_small_contract' THEN 'Large Opportunity' ELSE 'SMB' END AS size_contract,
        CASE touch_tier_rule WHEN 'high_stakes_at_risk' THEN 'High touch' WHEN 'maxed_out' THEN 'Low touch'
            WHEN 'high_potential' THEN 'High touch' ELSE 'Low touch' END AS touch_tier,
        CASE strategic_accounts_rule WHEN 'top_arr_with_expansion' THEN 'Strategic' ELSE 'Standard' END AS strategic_accounts
    FROM labels
),
-- A stay goes on while the label is the one of the quarter before.
since AS (
    SELECT *,
        {since_columns}
    FROM named
),
escalation AS (
    SELECT *,
        CASE WHEN wallet_share_matrix = 'Re-evaluate'
            AND {cycle_index} - {since_index} + 1 >= {p['re_evaluate_escalate_cycles']}
            THEN 'stuck_in_re_evaluate' ELSE 'default' END AS re_evaluate_escalation_rule
    FROM since
)
SELECT * EXCLUDE (arr_q_protect, arr_q_stakes, arr_pareto, {helper_columns}),
    CASE re_evaluate_escalation_rule WHEN 'stuck_in_re_evaluate' THEN 'Escalate' ELSE 'None' END AS re_evaluate_escalation,
    CASE WHEN prev_re_evaluate_escalation = (CASE re_evaluate_escalation_rule WHEN 'stuck_in_re_evaluate' THEN 'Escalate' ELSE 'None' END)
        THEN COALESCE(prev_re_evaluate_escalation_since, '{before}') ELSE '{cycle}' END AS re_evaluate_escalation_since
FROM escalation
ORDER BY account_id
"""


def run_duckdb(a):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    history = "snapshot_date" in [c[0] for c in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{a.accounts}')").fetchall()]
    sql = duckdb_sql(a.accounts, a.usage, a.as_of, history, a.previous)
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
    ap.add_argument("--previous", help="duckdb: this peer's own output for the quarter before (hysteresis, _since)")
    a = ap.parse_args()
    {"duckdb": run_duckdb, "polars": run_polars, "scan": run_scan}[a.engine](a)


if __name__ == "__main__":
    sys.exit(main())
