"""Reads one of quadrant's Delta tables the way lakehouse users do, with the
`deltalake` package (delta-rs) and Python polars' `scan_delta`, and prints
what each sees as JSON: the version, rows per partition and run, column
types, and the table's history. Used by tests/it/delta.rs.

    python3 tests/delta/reader.py TABLE_URI [VERSION] [--dump FILE]

With `--dump FILE`, the rows `deltalake` reads are also written to FILE as
Parquet, sorted, for a test to compare value for value.

S3 and Azure credentials and endpoints come from the environment, as
scripts/test sets them for moto and Azurite.
"""

import json
import os
import sys

import deltalake
import polars as pl

sys.path.insert(0, os.path.dirname(__file__))
from options import storage_options  # noqa: E402

args = sys.argv[1:]
dump = None
if "--dump" in args:
    at = args.index("--dump")
    dump = args[at + 1]
    del args[at : at + 2]
uri = args[0].rstrip("/")
version = int(args[1]) if len(args) > 1 else None


def partitions(frame):
    keys = [c for c in ("cycle", "from", "to") if c in frame.columns]
    runs = "run_id" if "run_id" in frame.columns else None
    out = {}
    for row in frame.group_by(keys + ([runs] if runs else [])).len().iter_rows(named=True):
        key = "/".join(str(row[k]) for k in keys)
        out.setdefault(key, {})[row[runs] if runs else "*"] = row["len"]
    return out


def accounts(frame):
    """Distinct accounts per partition, for tables with an account_id."""
    keys = [c for c in ("cycle", "from", "to") if c in frame.columns]
    if "account_id" not in frame.columns or not keys:
        return {}
    out = {}
    for row in frame.group_by(keys).agg(pl.col("account_id").n_unique().alias("n")).iter_rows(named=True):
        out["/".join(str(row[k]) for k in keys)] = row["n"]
    return out


def nulls(frame):
    keys = [c for c in ("cycle", "from", "to") if c in frame.columns]
    out = {}
    for part in frame.partition_by(keys, as_dict=False):
        key = "/".join(str(part[k][0]) for k in keys)
        counts = {c: n for c, n in part.null_count().row(0, named=True).items() if n}
        out[key] = counts
    return out


options = storage_options(uri)
table = deltalake.DeltaTable(uri, version=version, storage_options=options)
frame = pl.from_arrow(table.to_pyarrow_table())
history = []
for h in table.history():
    params = h.get("operationParameters") or {}
    history.append(
        {
            "version": h.get("version"),
            "operation": h.get("operation"),
            "mode": params.get("mode"),
            "predicate": params.get("predicate"),
            "quadrant": h.get("quadrant"),
            "userMetadata": h.get("userMetadata"),
        }
    )
if dump:
    keys = [c for c in ("cycle", "from", "to", "account_id") if c in frame.columns]
    frame.sort(keys + [c for c in frame.columns if c not in keys]).write_parquet(dump)
scanned = pl.scan_delta(uri, version=version, storage_options=options).collect()
seen = {
    "version": table.version(),
    "partition_columns": table.metadata().partition_columns,
    "rows": frame.height,
    "partitions": partitions(frame),
    "accounts": accounts(frame),
    "types": {c: str(t) for c, t in frame.schema.items()},
    "nulls": nulls(frame),
    "history": sorted(history, key=lambda h: h["version"]),
    "polars": {"rows": scanned.height, "partitions": partitions(scanned)},
}
print(json.dumps(seen))
sys.stdout.flush()
# pyarrow's and delta-rs' threads can abort an orderly interpreter exit.
os._exit(0)
