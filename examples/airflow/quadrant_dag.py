"""quadrant in Airflow: one run per quarter, with catchup for backfills.

Each quarter's DAG run computes the quarter that just ended. quadrant's exit
codes drive retries: 1 (I/O) and 5 (the quarter's inputs have not landed yet:
the usage does not reach its last day, or the account export is missing) are
retried; 2 (usage/config) and 3 (data quality) fail at once; 4 (cycle already
committed) is done. The run summary is pushed to XCom from --summary-file.
"""

import json
import os
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
try:  # Airflow 3
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 2
    from airflow.exceptions import AirflowFailException
try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2
    from airflow.operators.python import PythonOperator

QUADRANT = os.environ.get("QUADRANT_BIN", "quadrant")
OUTPUT = os.environ.get("QUADRANT_OUTPUT", "s3://bucket/quadrant")
PIPELINE = os.environ.get("QUADRANT_PIPELINE", "/opt/quadrant/pipelines/default.toml")


def cycle_of(data_interval_end):
    """The quarter that ended just before the run, as a quadrant cycle id.

    Uses the end of the data interval: with Airflow 2's interval timetable and
    Airflow 3's cron trigger timetable alike, the day before it lies in the
    quarter that just ended."""
    day = data_interval_end - timedelta(days=1)
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def run_cycle(data_interval_end, ti, **_):
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as summary:
        proc = subprocess.run(
            [QUADRANT, "run", "--pipeline", PIPELINE, "--output", OUTPUT, "--cycle", cycle_of(data_interval_end),
             "--log-format", "json", "--summary-file", summary.name],
            check=False,
        )
        if proc.returncode == 4:
            return "already committed"  # a rerun of a committed quarter is done
        if proc.returncode in (2, 3):
            raise AirflowFailException(f"quadrant exited {proc.returncode}: not retryable")
        if proc.returncode == 5:
            raise RuntimeError("quadrant exited 5: the quarter's inputs have not landed yet, retrying later")
        if proc.returncode != 0:
            raise RuntimeError(f"quadrant exited {proc.returncode}: retrying")
        ti.xcom_push(key="summary", value=json.load(open(summary.name)))


with DAG(
    dag_id="quadrant_quarterly",
    description="Segment the customer base once per quarter",
    schedule="0 6 1 1,4,7,10 *",  # after each quarter ends
    start_date=datetime(2025, 1, 1),
    catchup=True,  # backfills past quarters, each committed on its own
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10), "retry_exponential_backoff": True},
    tags=["customer-success", "quadrant"],
) as dag:
    PythonOperator(task_id="segment_cycle", python_callable=run_cycle)
