"""Materializes examples/dagster's asset for one cycle with Dagster itself,
then prints what Dagster's own event log recorded: the materialization, its
partition and metadata, and the log lines quadrant sent through Pipes.

    QUADRANT_BIN=... QUADRANT_OUTPUT=... python3 tests/clients/dagster_run.py 2026-Q3
"""

import json
import os
import sys

import dagster as dg

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "dagster"))
import definitions  # noqa: E402

partition = sys.argv[1]
with dg.DagsterInstance.ephemeral() as instance:
    result = dg.materialize(
        [definitions.quadrant_segments],
        partition_key=partition,
        resources={"pipes": dg.PipesSubprocessClient()},
        instance=instance,
        raise_on_error=False,
    )
    records = instance.fetch_materializations(dg.AssetKey("quadrant_segments"), limit=10).records
    events = instance.all_logs(result.run_id)
    logs = [e.user_message for e in events if e.user_message]
    retries = [e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    out = {
        "success": result.success,
        "retries": len(retries),
        "materializations": [
            {
                "asset_key": r.asset_key.to_user_string(),
                "partition": r.partition_key,
                "metadata": {k: v.value for k, v in r.asset_materialization.metadata.items()},
            }
            for r in records
        ],
        "logs": logs,
    }
    print(json.dumps(out, default=str))
