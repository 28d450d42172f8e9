"""Executes the example DAG (examples/airflow) with Airflow itself: one
`dag.test()` DAG run per case, each configured as a deployment would be,
through QUADRANT_BIN, QUADRANT_OUTPUT and QUADRANT_PIPELINE (and the store's
environment). Airflow's own task runner runs the task, decides success, retry
or failure from what the task raised, and retries with the DAG's `retries`.

Reads the cases as JSON on stdin: a list of {"name", "logical_date", "env"};
"{closed_port}" in an env value is a loopback port where nothing listens.
Prints, on its last line after "RESULT ", for each case what Airflow recorded:
the DAG run's state, the task's final state and number of tries, the state
Airflow's task runner gave each try with the error it caught, and the XComs
the task pushed. Used by tests/it/clients.rs.

Only the retry delay is changed (to 0, from the DAG's 10 minutes), so that a
retried task is retried within the test; the number of retries is the DAG's.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

FOLDER = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "airflow"))

home = tempfile.mkdtemp(prefix="quadrant-airflow-")
os.environ.update({
    "AIRFLOW_HOME": home,
    "AIRFLOW__CORE__DAGS_FOLDER": FOLDER,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
})
migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
if migrate.returncode != 0:
    sys.exit(f"airflow db migrate failed:\n{migrate.stdout}{migrate.stderr}")

import airflow.sdk.definitions.dag as sdk_dag  # noqa: E402
from airflow.models import DagBag, TaskInstance  # noqa: E402
from airflow.models.xcom import XComModel  # noqa: E402
from airflow.utils.session import create_session  # noqa: E402
from sqlalchemy import select  # noqa: E402

# What Airflow's task runner decided for each try: dag.test() runs each try
# through _run_task; the wrapper only reads the state the runner set.
tries = []


def state(s):
    return getattr(s, "value", s)


run_task = sdk_dag._run_task


def recorded_run_task(**kwargs):
    result = run_task(**kwargs)
    tries.append({
        "state": state(kwargs["ti"].state),
        "error": f"{type(result.error).__name__}: {result.error}" if result and result.error else None,
    })
    return result


sdk_dag._run_task = recorded_run_task

# Bound but not listening: a connection to it is refused.
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
closed_port = str(closed.getsockname()[1])

cases = json.load(sys.stdin)
base_env = dict(os.environ)
results = {}
for case in cases:
    os.environ.clear()
    os.environ.update(base_env)
    os.environ.update({k: v.replace("{closed_port}", closed_port) for k, v in case["env"].items()})
    tries.clear()
    bag = DagBag(dag_folder=FOLDER)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["quadrant_quarterly"]
    task = dag.task_dict["segment_cycle"]
    task.retry_delay = timedelta(0)
    task.retry_exponential_backoff = False
    logical_date = datetime.fromisoformat(case["logical_date"]).replace(tzinfo=timezone.utc)
    dr = dag.test(logical_date=logical_date)
    with create_session() as session:
        ti = session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dr.run_id,
            TaskInstance.task_id == "segment_cycle"))
        xcoms = session.scalars(select(XComModel).where(
            XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id)).all()
        results[case["name"]] = {
            "dag_run": state(dr.state),
            "state": state(ti.state),
            "tries": ti.try_number,
            "each_try": list(tries),
            "retries": task.retries,
            "xcom": {x.key: XComModel.deserialize_value(x) for x in xcoms},
        }

print("RESULT " + json.dumps(results))
