"""Reads quadrant's Delta tables with Delta Lake's own Spark implementation
(delta-spark, the reader of Databricks and most Delta users), in one local
SparkSession, and prints what it sees as JSON, one object per table, in the
shape of tests/delta/reader.py (delta-rs) so that a test can compare them:
the version, rows per partition and run, the null values per partition
and column, Spark's column types, the history.

    python tests/delta/spark_reader.py TABLE_URI[@VERSION] ...

Paths are local, s3:// (read as s3a:// with the S3A connector jars in
QUADRANT_TEST_SPARK_JARS, against AWS_ENDPOINT_URL with the AWS_* keys, as
scripts/test sets them for moto) or az:// (read as abfs:// against
AZURITE_BLOB_STORAGE_URL with Azurite's well-known key) or gs:// (with
Google's GCS connector against fake-gcs-server's JSON API at
QUADRANT_TEST_GCS_JSON_URL). Delta's jars are in
QUADRANT_TEST_DELTA_SPARK_JARS.
"""

import glob
import json
import os
import sys
import tempfile

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


# Azurite's well-known development account and key.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def hadoop_path(uri):
    """The path Hadoop's connectors read for a test store's URI."""
    if uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://") :]
    if uri.startswith("az://"):
        container, _, rest = uri[len("az://") :].partition("/")
        return f"abfs://{container}@{AZURITE_ACCOUNT}.dfs.core.windows.net/{rest}"
    return uri


def session(s3, azure=False, gcs=False):
    jars = sorted(glob.glob(os.path.join(os.environ["QUADRANT_TEST_DELTA_SPARK_JARS"], "*.jar")))
    if s3 or azure or gcs:
        jars += sorted(glob.glob(os.path.join(os.environ["QUADRANT_TEST_SPARK_JARS"], "*.jar")))
    tmp = tempfile.mkdtemp(prefix="delta-spark-reader-")
    b = (
        SparkSession.builder.master("local[2]")
        .appName("quadrant-delta-spark-reader")
        .config("spark.driver.memory", "1g")
        # A short session on two cores: the quick JIT and the serial GC.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # Delta rebuilds a table's state in 50 partitions by default.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", os.path.join(tmp, "warehouse"))
        .config("spark.local.dir", os.path.join(tmp, "local"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    )
    if s3:
        b = (
            b.config("spark.hadoop.fs.s3a.endpoint", os.environ["AWS_ENDPOINT_URL"])
            .config("spark.hadoop.fs.s3a.endpoint.region", os.environ.get("AWS_REGION", "us-east-1"))
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
            .config(
                "spark.hadoop.fs.s3a.aws.credentials.provider",
                "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
            )
        )
    if azure:
        # ABFS in its Blob-endpoint mode against Azurite (as scripts/test
        # configures the Spark Connect server).
        endpoint = os.environ["AZURITE_BLOB_STORAGE_URL"].removeprefix("http://").rstrip("/")
        b = (
            b.config("spark.hadoop.fs.azure.abfs.endpoint", endpoint)
            .config("spark.hadoop.fs.azure.always.use.https", "false")
            .config("spark.hadoop.fs.azure.account.hns.enabled", "false")
            .config("spark.hadoop.fs.azure.fns.account.service.type", "BLOB")
            .config("spark.hadoop.fs.azure.ingress.service.type", "BLOB")
            .config("spark.hadoop.fs.azure.networking.library", "JDK_HTTP_URL_CONNECTION")
            .config(f"spark.hadoop.fs.azure.account.key.{AZURITE_ACCOUNT}.dfs.core.windows.net", AZURITE_KEY)
        )
    if gcs:
        # Google's GCS connector against fake-gcs-server's JSON API (as
        # scripts/test configures the Spark Connect server).
        b = (
            b.config("spark.hadoop.fs.gs.impl", "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem")
            .config("spark.hadoop.fs.gs.storage.root.url", os.environ["QUADRANT_TEST_GCS_JSON_URL"] + "/")
            .config("spark.hadoop.fs.gs.auth.type", "UNAUTHENTICATED")
            .config("spark.hadoop.fs.gs.project.id", "quadrant-test")
            .config("spark.hadoop.fs.gs.block.size", "67108864")
            .config("spark.hadoop.fs.gs.rewrite.max.chunk.size", "536870912")
            .config("spark.hadoop.fs.gs.outputstream.buffer.size", "8388608")
            .config("spark.hadoop.fs.gs.inputstream.inplace.seek.limit", "8388608")
            .config("spark.hadoop.fs.gs.inputstream.min.range.request.size", "2097152")
        )
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read(spark, arg):
    uri, _, version = arg.partition("@")
    path = hadoop_path(uri)
    reader = spark.read.format("delta")
    if version:
        reader = reader.option("versionAsOf", int(version))
    frame = reader.load(path)
    quoted = path.replace("`", "``")
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{quoted}`").collect()[0]
    keys = [c for c in ("cycle", "from", "to") if c in frame.columns]
    runs = ["run_id"] if "run_id" in frame.columns else []
    partitions = {}
    for row in frame.groupBy(*(keys + runs)).count().collect():
        key = "/".join(str(row[k]) for k in keys)
        partitions.setdefault(key, {})[row["run_id"] if runs else "*"] = row["count"]
    nulls = {}
    columns = [c for c in frame.columns if c not in keys]
    if keys and columns:
        counts = frame.groupBy(*keys).agg(*[F.count_if(F.col(f"`{c}`").isNull()).alias(c) for c in columns])
        for row in counts.collect():
            key = "/".join(str(row[k]) for k in keys)
            nulls[key] = {c: row[c] for c in columns if row[c]}
    history = []
    for h in spark.sql(f"DESCRIBE HISTORY delta.`{quoted}`").orderBy("version").collect():
        params = h["operationParameters"] or {}
        history.append(
            {
                "version": h["version"],
                "operation": h["operation"],
                "mode": params.get("mode"),
                "predicate": params.get("predicate"),
                "userMetadata": h["userMetadata"],
            }
        )
    latest = history[-1]["version"] if history else None
    return {
        "uri": uri,
        "version": int(version) if version else latest,
        "partition_columns": list(detail["partitionColumns"]),
        "partitions": partitions,
        "nulls": nulls,
        "types": {f.name: f.dataType.simpleString() for f in frame.schema.fields},
        "history": history,
    }


def main():
    args = sys.argv[1:]
    spark = session(*(any(a.startswith(scheme) for a in args) for scheme in ("s3://", "az://", "gs://")))
    try:
        print(json.dumps([read(spark, a) for a in args]))
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
