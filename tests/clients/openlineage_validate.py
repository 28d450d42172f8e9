"""Validates OpenLineage run events (a JSON list on stdin) with the official
openlineage-python client: every event is rebuilt from the client's models,
generated from the OpenLineage JSON schema (their validators check the event
time, the run id as a UUID and the URIs), then serialized again; the result
must equal what quadrant sent. Prints the event types on success.

    python3 tests/clients/openlineage_validate.py < events.json
"""

import json
import sys

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import error_message_run, nominal_time_run, output_statistics_output_dataset
from openlineage.client.serde import Serde

events = json.load(sys.stdin)


def run_facets(f):
    out = {}
    if "nominalTime" in f:
        out["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=f["nominalTime"]["nominalStartTime"], nominalEndTime=f["nominalTime"]["nominalEndTime"]
        )
    if "errorMessage" in f:
        out["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f["errorMessage"]["message"], programmingLanguage=f["errorMessage"]["programmingLanguage"]
        )
    unknown = set(f) - {"nominalTime", "errorMessage"}
    assert not unknown, f"unexpected run facets {unknown}"
    return out


def outputs(items):
    out = []
    for d in items:
        facets = {}
        stats = d.get("outputFacets", {}).get("outputStatistics")
        if stats:
            facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=stats["rowCount"], size=stats["size"]
            )
        out.append(OutputDataset(namespace=d["namespace"], name=d["name"], outputFacets=facets))
    return out


def strip(value):
    """Drops what the client adds on its own (producer and schema URLs of facets, empty facets)."""
    if isinstance(value, dict):
        return {
            k: strip(v) for k, v in value.items() if k not in ("_producer", "_schemaURL", "schemaURL") and v not in ({}, None)
        }
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


for e in events:
    rebuilt = RunEvent(
        eventType=RunState[e["eventType"]],
        eventTime=e["eventTime"],
        run=Run(runId=e["run"]["runId"], facets=run_facets(e["run"].get("facets", {}))),
        job=Job(namespace=e["job"]["namespace"], name=e["job"]["name"]),
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in e["inputs"]],
        outputs=outputs(e["outputs"]),
        producer=e["producer"],
    )
    again = json.loads(Serde.to_json(rebuilt))
    assert e["schemaURL"].startswith("https://openlineage.io/spec/2-0-") and e["schemaURL"].endswith("#/$defs/RunEvent"), e["schemaURL"]
    assert strip(again) == strip(e), f"differs:\nsent    {strip(e)}\nrebuilt {strip(again)}"
print(json.dumps([e["eventType"] for e in events]))
