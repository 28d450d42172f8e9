"""quadrant as a Dagster asset, run through Dagster Pipes.

One partition per review cycle: quadrant takes the partition key as its
cycle, logs through Pipes, and reports the materialization with the label
counts, ARR per label, rows and run id as metadata. Exit code 5 means the
cycle's inputs have not landed yet (the usage does not reach the quarter's
end, or the account export is missing): the step is retried later instead of
failing; every other failure fails the step.

    QUADRANT_BIN=target/release/quadrant QUADRANT_OUTPUT=s3://bucket/quadrant \
        dagster dev -f examples/dagster/definitions.py
"""

import os
import re
import shutil

import dagster as dg

QUADRANT = os.environ.get("QUADRANT_BIN") or shutil.which("quadrant") or "quadrant"
OUTPUT = os.environ.get("QUADRANT_OUTPUT", "out/")
PIPELINE = os.environ.get("QUADRANT_PIPELINE")  # default: the built-in pipeline
# quadrant's "inputs not ready, retry later": how often, and how far apart.
NOT_READY = 5
NOT_READY_RETRIES = int(os.environ.get("QUADRANT_NOT_READY_RETRIES", "12"))
NOT_READY_WAIT_SECONDS = float(os.environ.get("QUADRANT_NOT_READY_WAIT_SECONDS", "3600"))

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
    try:
        return pipes.run(command=command, context=context).get_materialize_result()
    except Exception as failed:
        # Pipes reports the exit code in its message ("... failed with code N").
        code = re.search(r"code (\d+)$", str(failed))
        if code and int(code.group(1)) == NOT_READY:
            context.log.info(f"cycle {context.partition_key}: inputs not ready yet; retrying later")
            raise dg.RetryRequested(max_retries=NOT_READY_RETRIES, seconds_to_wait=NOT_READY_WAIT_SECONDS) from failed
        raise


defs = dg.Definitions(assets=[quadrant_segments], resources={"pipes": dg.PipesSubprocessClient()})
