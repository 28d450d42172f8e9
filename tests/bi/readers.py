"""Reads quadrant's snapshot tables the way BI tools do (hive-partitioned
Parquet under OUTPUT/segments/) with DuckDB, pyarrow datasets and Python
polars, and prints what each one sees as JSON: rows, cycles, column types and
a checksum of ARR per label. Used by tests/it/bi.rs.

    python3 tests/bi/readers.py OUTPUT
"""

import json
import sys

root = sys.argv[1].rstrip("/")
segments = f"{root}/segments"
seen = {}


def kind(t):
    t = str(t).lower()
    if "date" in t and "time" not in t:
        return "date"
    if t in ("varchar", "string", "utf8", "large_string", "str") or "string" in t or "utf8" in t:
        return "string"
    if any(x in t for x in ("int", "double", "float", "decimal")):
        return "number"
    return t


import duckdb  # noqa: E402

con = duckdb.connect()
rel = con.sql(
    f"SELECT * FROM read_parquet('{segments}/*/*.parquet', hive_partitioning = true, hive_types = {{'cycle': VARCHAR}})"
)
types = {c: kind(t) for c, t in zip(rel.columns, rel.types)}
rows = con.sql(f"SELECT count(*), list(DISTINCT cycle ORDER BY cycle), round(sum(arr), 2) FROM rel").fetchall()[0]
by_label = dict(
    con.sql("SELECT cycle || '/' || wallet_share_matrix, round(sum(arr), 2) FROM rel GROUP BY 1 ORDER BY 1").fetchall()
)
seen["duckdb"] = {"rows": rows[0], "cycles": rows[1], "arr": rows[2], "types": types, "by_label": by_label}

import pyarrow as pa  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402

dataset = ds.dataset(segments, format="parquet", partitioning=ds.partitioning(pa.schema([("cycle", pa.string())]), flavor="hive"))
table = dataset.to_table()
types = {f.name: kind(f.type) for f in table.schema}
import pyarrow.compute as pc  # noqa: E402

cycles = sorted(set(table.column("cycle").to_pylist()))
grouped = table.group_by(["cycle", "wallet_share_matrix"]).aggregate([("arr", "sum")])
by_label = {f"{c}/{l}": round(v, 2) for c, l, v in zip(grouped["cycle"].to_pylist(), grouped["wallet_share_matrix"].to_pylist(), grouped["arr_sum"].to_pylist())}
seen["pyarrow"] = {"rows": table.num_rows, "cycles": cycles, "arr": round(pc.sum(table["arr"]).as_py(), 2), "types": types, "by_label": dict(sorted(by_label.items()))}

import polars as pl  # noqa: E402

frame = pl.scan_parquet(f"{segments}/**/*.parquet", hive_partitioning=True, hive_schema={"cycle": pl.String}).collect()
types = {c: kind(t) for c, t in frame.schema.items()}
grouped = frame.group_by("cycle", "wallet_share_matrix").agg(pl.col("arr").sum()).sort("cycle", "wallet_share_matrix")
by_label = {f"{c}/{l}": round(v, 2) for c, l, v in grouped.iter_rows()}
seen["polars"] = {"rows": frame.height, "cycles": sorted(frame["cycle"].unique().to_list()), "arr": round(frame["arr"].sum(), 2), "types": types, "by_label": by_label}

print(json.dumps(seen, indent=1, sort_keys=True))
