"""Another Delta writer (the `deltalake` package, delta-rs) commits to a
cycle's partition of quadrant's snapshot table: it appends the rows of one
cycle as another's. Used by tests/it/delta.rs to race a waiting run.

    python3 tests/delta/other_writer.py TABLE_URI FROM_CYCLE TO_CYCLE

S3 and Azure endpoints come from the environment, as for reader.py.
"""

import os
import sys

import deltalake
import pyarrow.compute as pc

sys.path.insert(0, os.path.dirname(__file__))
from options import storage_options  # noqa: E402

uri, source, target = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
options = storage_options(uri)
table = deltalake.DeltaTable(uri, storage_options=options)
rows = table.to_pyarrow_table()
at = rows.schema.get_field_index("cycle")
rows = rows.set_column(at, "cycle", pc.replace_substring(rows["cycle"], source, target))
deltalake.write_deltalake(uri, rows, mode="append", partition_by=["cycle"], storage_options=options)
sys.stdout.flush()
os._exit(0)
