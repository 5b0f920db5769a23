"""OpenLineage in a real Airflow run (issue 17 §3): ``dag.test()`` with the OpenLineage provider's file
transport; the COMPLETE events of the batch, training and promotion tasks carry their datasets. And the
same DAG runs, emitting nothing, when OpenLineage cannot be imported (no ``[openlineage]`` extra).

Each run is a fresh process: the OpenLineage listener reads its transport once, when Airflow loads plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dag_support import ensure_db
from tests.integration._lineage_run import MODEL, PROJECT, ROWS

pytest.importorskip("airflow.providers.openlineage")

# Two Airflow processes, about 10 s each: run by make e2e (and CI), not by the fast make test.
pytestmark = pytest.mark.airflow_e2e

ROOT = Path(__file__).resolve().parents[2]


def _run(emulator: Any, workdir: Path, *flags: str, **env: str) -> dict[str, str]:
    ensure_db()
    emulator.set_time_scale(200)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration._lineage_run", str(workdir), *flags],
        env={**os.environ, **emulator.connection_env(), "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("STATES ")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(line[len("STATES ") :]))


def _complete(events: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    (event,) = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"baseten_lineage.{task_id}"]
    return event


def _ids(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def test_complete_events_carry_the_datasets(emulator: Any, tmp_path: Path) -> None:
    log = tmp_path / "ol.jsonl"
    transport = json.dumps({"type": "file", "log_file_path": str(log), "append": True})
    states = _run(emulator, tmp_path, AIRFLOW__OPENLINEAGE__TRANSPORT=transport, AIRFLOW__OPENLINEAGE__NAMESPACE="t")
    assert states == {"batch": "success", "train": "success", "promote": "success"}
    events = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]

    batch = _complete(events, "batch")
    assert _ids(batch["inputs"]) == [
        ("file", str(tmp_path / "in.jsonl")),
        ("baseten", f"model/{MODEL}/environments/production"),
    ]
    assert batch["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == ROWS
    assert _ids(batch["outputs"]) == [("file", str(tmp_path / "out.jsonl"))]
    assert batch["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == ROWS

    # Both waits were deferred: the ids came back with the trigger's event, in the resumed task.
    train = _complete(events, "train")
    (job,) = emulator.hook().list_training_jobs(PROJECT)
    assert _ids(train["outputs"]) == [("baseten", f"training_project/{PROJECT}/jobs/{job.id}")]

    promote = _complete(events, "promote")
    served = emulator.hook().get_environment("staging", model_id=MODEL).current_deployment.id
    assert _ids(promote["inputs"]) == [("baseten", f"model/{MODEL}/deployments/{served}")]
    assert _ids(promote["outputs"]) == [("baseten", f"model/{MODEL}/environments/staging")]
    assert promote["outputs"][0]["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "OVERWRITE"


def test_without_openlineage_the_dag_runs_and_emits_nothing(emulator: Any, tmp_path: Path) -> None:
    log = tmp_path / "ol.jsonl"
    transport = json.dumps({"type": "file", "log_file_path": str(log), "append": True})
    states = _run(emulator, tmp_path, "--no-openlineage", AIRFLOW__OPENLINEAGE__TRANSPORT=transport)
    assert states == {"batch": "success", "train": "success", "promote": "success"}
    assert not log.exists()
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == ROWS
