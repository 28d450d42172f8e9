"""Benchmark: quadrant against DuckDB and Python polars running the same
pipeline (pipelines/default.toml) on the same files, and against a plain scan
of the usage columns. Not a test: it measures, checks that every engine gives
every account the same labels, and reports medians and ratios.

    python3 bench/run.py [--scale 1] [--runs 3] [--threads 2]
    python3 bench/run.py --engine spark [--spark-remote sc://HOST:PORT]
    python3 bench/run.py --engine delta

--scale 1 is 250,000 accounts x 365 days of usage (about 50 million rows);
--scale 10 has ten times the accounts and usage rows. Data is generated once
with `quadrant generate` into bench-data/ (not committed). Needs a release
build (cargo build --release) and `pip install duckdb polars pyarrow`.

--engine spark runs quadrant twice on the same data instead: the usage pass
on this machine (polars) and on a Spark Connect server (--spark-remote, or
SPARK_REMOTE), checks that both commit the same labels, and reports the
ratio. It needs a release build with the Spark engine
(cargo build --release --features spark). Peak RSS is quadrant's own: the
Spark server's memory is its JVM's (docs/scale-out.md).

--engine backfill runs quadrant on one cycle (2026-Q3), on a backfill of
four (--cycles 2025-Q4..2026-Q3, a fresh root each round) and on a
replace of the first of them with --cascade (which recomputes the three
after it: a backfilled root is prepared, untimed, before each round), and
reports each against the one cycle. Its data has 460 days of usage, so that
2025-Q4's windows are covered. The backfill and the cascade must commit the
same labels for every account of every cycle.

--engine delta runs quadrant twice on the same data: committing Parquet
snapshots and committing to a Delta Lake table (`[output] format = "delta"`,
a fresh table each run), checks both commit the same labels, and reports the
ratio.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMENTATIONS = ["wallet_share_matrix", "growth_risk", "size_contract", "touch_tier", "strategic_accounts"]
# The whole default pipeline, as quadrant and the DuckDB peer compute it: the
# sixth segmentation reads the others' labels and `_since`.
ALL_COLUMNS = SEGMENTATIONS + ["re_evaluate_escalation"] + [f"{s}_since" for s in SEGMENTATIONS + ["re_evaluate_escalation"]]
BACKFILL = ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
AS_OF = "2026-09-30"


def measure(cmd, env=None):
    """Runs a command; returns (seconds, peak RSS in MiB) of that process alone.
    A pair (prepare, cmd) runs `prepare` first, untimed."""
    if isinstance(cmd, tuple):
        measure(cmd[0], env)
        cmd = cmd[1]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--quadrant", default=os.path.join(ROOT, "target", "release", "quadrant"))
    ap.add_argument("--only", help="comma-separated engines to run (quadrant,duckdb,polars,scan)")
    ap.add_argument("--engine", choices=["peers", "spark", "delta", "backfill"], default="peers",
                    help="peers: against DuckDB, Python polars and a scan; spark: the usage pass on Spark against "
                    "polars; delta: Delta Lake output against Parquet output")
    ap.add_argument("--spark-remote", default=os.environ.get("SPARK_REMOTE"))
    a = ap.parse_args()
    if a.engine == "backfill" and a.days == 365:
        a.days = 460
    if a.engine == "spark" and not a.spark_remote:
        sys.exit("--engine spark needs --spark-remote sc://HOST:PORT (or SPARK_REMOTE)")
    if not os.path.exists(a.quadrant):
        sys.exit(f"{a.quadrant} is missing: run `cargo build --release` first")

    accounts_n = 250_000 * a.scale
    data = os.path.join(ROOT, "bench-data", f"accounts-{accounts_n}-days-{a.days}")
    if not os.path.exists(os.path.join(data, "accounts.parquet")):
        print(f"generating {accounts_n} accounts x {a.days} days into {data}", flush=True)
        seconds, _ = measure([a.quadrant, "-q", "generate", "--force", "--out", data, "--accounts", str(accounts_n),
                              "--days", str(a.days), "--seed", "1", "--end", AS_OF])
        print(f"  generated in {seconds:.1f} s", flush=True)
    accounts = os.path.join(data, "accounts.parquet")
    usage_dir = os.path.join(data, "usage")
    usage_glob = os.path.join(usage_dir, "*.parquet")
    usage_bytes = sum(os.path.getsize(os.path.join(usage_dir, f)) for f in os.listdir(usage_dir))

    env = dict(os.environ, POLARS_MAX_THREADS=str(a.threads), RAYON_NUM_THREADS=str(a.threads))
    work = tempfile.mkdtemp(prefix="quadrant-bench-")
    peers = [sys.executable, os.path.join(ROOT, "bench", "peers.py")]
    common = ["--accounts", accounts, "--usage", usage_glob, "--as-of", AS_OF, "--threads", str(a.threads)]
    engines = {
        "quadrant": lambda run: [a.quadrant, "-q", "run", "--cycle", "2026-Q3", "--accounts", accounts,
                                 "--usage", usage_dir + "/", "--output", os.path.join(work, f"q{run}")],
        "duckdb": lambda run: peers + ["duckdb", *common, "--out", os.path.join(work, f"duckdb{run}.parquet")],
        "polars": lambda run: peers + ["polars", *common, "--out", os.path.join(work, f"polars{run}.parquet")],
        "scan": lambda run: peers + ["scan", *common],
    }
    if a.engine == "spark":
        engines = {
            "quadrant": engines["quadrant"],
            "quadrant-spark": lambda run: engines["quadrant"](run)[:-1] + [os.path.join(work, f"s{run}"), "--engine",
                                                                          "spark", "--spark-remote", a.spark_remote],
        }
    if a.engine == "delta":
        with open(os.path.join(ROOT, "pipelines", "default.toml")) as f:
            text = f.read()
        delta_toml = os.path.join(work, "delta.toml")
        with open(delta_toml, "w") as f:
            f.write(text.replace("\n[output]\n", '\n[output]\nformat = "delta"\n'))
        engines = {
            "quadrant": engines["quadrant"],
            "quadrant-delta": lambda run: [a.quadrant, "-q", "run", "--pipeline", delta_toml]
            + engines["quadrant"](run)[3:-1] + [os.path.join(work, f"d{run}")],
        }
    if a.engine == "backfill":
        one = engines["quadrant"]
        engines = {
            "quadrant": one,
            "quadrant-backfill": lambda run: one(run)[:3] + ["--cycles", f"{BACKFILL[0]}..{BACKFILL[-1]}"]
            + one(run)[5:-1] + [os.path.join(work, f"b{run}")],
            "quadrant-cascade": lambda run: (
                one(run)[:3] + ["--cycles", f"{BACKFILL[0]}..{BACKFILL[-1]}"] + one(run)[5:-1] + [os.path.join(work, f"c{run}")],
                one(run)[:3] + ["--cycle", BACKFILL[0], "--replace", "--cascade"] + one(run)[5:-1] + [os.path.join(work, f"c{run}")],
            ),
        }
    if a.only:
        engines = {k: v for k, v in engines.items() if k in a.only.split(",")}

    results = {name: [] for name in engines}
    for run in range(a.runs):
        for name, cmd in engines.items():  # alternate engines within each round
            seconds, rss = measure(cmd(run), env)
            results[name].append((seconds, rss))
            print(f"  round {run + 1} {name:8} {seconds:6.2f} s {rss:7.0f} MiB", flush=True)

    # The same labels for every account, before anything is reported.
    import polars as pl

    frames = {}
    if a.engine == "backfill":
        for cycle in BACKFILL:
            read = lambda folder: pl.read_parquet(os.path.join(work, folder, "segments", f"cycle={cycle}", "*.parquet"))
            b, c = (read(f).select(["account_id", *ALL_COLUMNS]).sort("account_id") for f in ("b0", "c0"))
            if not b.equals(c):
                sys.exit(f"the backfill and the cascade disagree on cycle {cycle}")
    for name, folder in (("quadrant", "q0"), ("quadrant-spark", "s0"), ("quadrant-delta", "d0")):
        if name in engines:
            partition = os.path.join(work, folder, "segments", "cycle=2026-Q3")
            part = next(f for f in os.listdir(partition) if f.endswith(".parquet"))
            frames[name] = pl.read_parquet(os.path.join(partition, part))
    for peer in ("duckdb", "polars"):
        if peer in engines:
            frames[peer] = pl.read_parquet(os.path.join(work, f"{peer}0.parquet"))
    names = list(frames)
    for other in names[1:]:
        # The Python polars peer computes the five frameworks; DuckDB the
        # whole pipeline, compared column for column.
        columns = SEGMENTATIONS if "polars" in (names[0], other) else ALL_COLUMNS
        base = frames[names[0]].select(["account_id", *columns]).sort("account_id")
        cmp = frames[other].select(["account_id", *columns]).sort("account_id")
        if base.height != cmp.height or not base.equals(cmp):
            joined = base.join(cmp, on="account_id", how="full", suffix="_other")
            diff = joined.filter(pl.any_horizontal([pl.col(s).ne_missing(pl.col(f"{s}_other")) for s in columns]))
            sys.exit(f"{names[0]} and {other} disagree on {diff.height} accounts ({base.height} vs {cmp.height} rows):\n{diff.head(5)}")
    accounts_in_cycle = frames[names[0]].height if names else 0
    shutil.rmtree(work, ignore_errors=True)

    med = {n: (statistics.median(s for s, _ in r), statistics.median(m for _, m in r)) for n, r in results.items()}
    print()
    print(f"{accounts_n} accounts ({accounts_in_cycle} in the cycle), {a.days} days of usage "
          f"({usage_bytes / 2**20:.0f} MiB of Parquet), {a.threads} threads, median of {a.runs} runs")
    print(f"labels: identical for every account across {', '.join(names)}")
    print()
    print("| engine | wall time (s) | peak RSS (MiB) |")
    print("|---|---|---|")
    for n, (s, m) in med.items():
        print(f"| {n} | {s:.2f} | {m:.0f} |")
    if "quadrant" in med:
        q = med["quadrant"]
        print()
        for n, (s, m) in med.items():
            if n == "quadrant":
                continue
            if a.engine == "backfill":
                # How many one-cycle runs a backfill of four costs.
                print(f"{n} / quadrant (one cycle): time {s / q[0]:.2f}x, peak RSS {m / q[1]:.2f}x")
            else:
                print(f"quadrant / {n}: time {q[0] / s:.2f}x, peak RSS {q[1] / m:.2f}x")


if __name__ == "__main__":
    main()
