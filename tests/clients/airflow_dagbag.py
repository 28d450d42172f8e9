"""Loads examples/airflow with Airflow's own DagBag and prints what it found,
and the cycle each quarterly run computes. Used by tests/it/clients.rs."""

import json
import os
import sys
from datetime import datetime, timezone

os.environ.setdefault("AIRFLOW_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), "quadrant-airflow-home"))
from airflow.models import DagBag  # noqa: E402

folder = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "airflow")
bag = DagBag(dag_folder=folder)
dag = bag.dags.get("quadrant_quarterly")
sys.path.insert(0, folder)
import quadrant_dag  # noqa: E402

runs = ["2025-04-01T06:00:00", "2025-07-01T06:00:00", "2026-01-01T06:00:00"]
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tasks": [t.task_id for t in dag.tasks] if dag else [],
    "catchup": bool(dag.catchup) if dag else None,
    "cycles": [quadrant_dag.cycle_of(datetime.fromisoformat(r).replace(tzinfo=timezone.utc)) for r in runs],
}))
