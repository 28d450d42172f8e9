"""Executes the example DAG's task callable (examples/airflow) with the real
quadrant binary for each exit code, as Airflow would run it, and prints what
Airflow would do: success (with the XCom it pushed), fail without retry
(AirflowFailException), or retry (any other exception). Used by
tests/it/clients.rs."""

import json
import os
import sys
from datetime import datetime, timezone

os.environ.setdefault("AIRFLOW_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), "quadrant-airflow-home"))
folder = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "airflow")
sys.path.insert(0, folder)
import quadrant_dag  # noqa: E402

quadrant_bin, output, pipeline = sys.argv[1:4]


class TaskInstance:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def attempt(output, pipeline, run_date):
    quadrant_dag.QUADRANT, quadrant_dag.OUTPUT, quadrant_dag.PIPELINE = quadrant_bin, output, pipeline
    ti = TaskInstance()
    end = datetime.fromisoformat(run_date).replace(tzinfo=timezone.utc)
    try:
        returned = quadrant_dag.run_cycle(data_interval_end=end, ti=ti)
        return {"outcome": "success", "returned": returned, "xcom_cycle": ti.xcom.get("summary", {}).get("cycle")}
    except quadrant_dag.AirflowFailException as e:
        return {"outcome": "fail_without_retry", "error": str(e)}
    except Exception as e:  # Airflow retries every other exception
        return {"outcome": "retry", "error": str(e)}


print(json.dumps({
    "committed": attempt(output, pipeline, "2026-10-01T06:00:00"),
    "rerun": attempt(output, pipeline, "2026-10-01T06:00:00"),
    "bad_pipeline": attempt(output, pipeline + ".missing", "2026-10-01T06:00:00"),
    "no_usage_in_windows": attempt(output, pipeline, "2018-01-01T06:00:00"),
    "store_unreachable": attempt("s3://no-such-bucket-quadrant/airflow", pipeline, "2026-10-01T06:00:00"),
}))
