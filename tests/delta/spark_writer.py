"""Another Delta writer, Delta Lake's own Spark implementation, commits to a
cycle's partition of quadrant's snapshot table: it appends the rows of one
cycle as another's. Used by tests/it/delta.rs to race a waiting run.

    python tests/delta/spark_writer.py TABLE_URI FROM_CYCLE TO_CYCLE

A Spark session takes long to start, so the writer starts it first, prints
`ready`, and commits when a line arrives on stdin; then prints `done`.
"""

import os
import sys

from pyspark.sql import functions as F

sys.path.insert(0, os.path.dirname(__file__))
from spark_reader import hadoop_path, session  # noqa: E402

uri, source, target = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
path = hadoop_path(uri)
spark = session(path.startswith("s3a://"), path.startswith("abfs://"), path.startswith("gs://"))
try:
    print("ready", flush=True)
    sys.stdin.readline()
    rows = spark.read.format("delta").load(path).where(F.col("cycle") == source)
    rows.withColumn("cycle", F.lit(target)).write.format("delta").mode("append").save(path)
    print("done", flush=True)
finally:
    spark.stop()
