"""quadrant as a Dagster asset, run through Dagster Pipes.

One partition per review cycle: quadrant takes the partition key as its
cycle, logs through Pipes, and reports the materialization with the label
counts, ARR per label, rows and run id as metadata.

    QUADRANT_BIN=target/release/quadrant QUADRANT_OUTPUT=s3://bucket/quadrant \
        dagster dev -f examples/dagster/definitions.py
"""

import os
import shutil

import dagster as dg

QUADRANT = os.environ.get("QUADRANT_BIN") or shutil.which("quadrant") or "quadrant"
OUTPUT = os.environ.get("QUADRANT_OUTPUT", "out/")
PIPELINE = os.environ.get("QUADRANT_PIPELINE")  # default: the built-in pipeline

cycles = dg.StaticPartitionsDefinition(
    [f"{year}-Q{q}" for year in range(2024, 2027) for q in range(1, 5)]
)


@dg.asset(partitions_def=cycles, description="One immutable quadrant snapshot per review cycle")
def quadrant_segments(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    command = [QUADRANT, "run", "--output", OUTPUT, "--log-format", "json"]
    if PIPELINE:
        command += ["--pipeline", PIPELINE]
    # Reruns of a partition replace its snapshot; the manifest records the replaced run.
    command.append("--replace")
    return pipes.run(command=command, context=context).get_materialize_result()


defs = dg.Definitions(assets=[quadrant_segments], resources={"pipes": dg.PipesSubprocessClient()})
