"""Run one DAG (batch predict from a JSONL file, a training job, a promotion) with ``dag.test()`` in a
fresh process, so the OpenLineage listener is set up from this process's environment.

``python -m tests.integration._lineage_run WORKDIR [--no-openlineage]``. The caller sets the connection
(the emulator), ``AIRFLOW_HOME`` and, for lineage, ``AIRFLOW__OPENLINEAGE__TRANSPORT``. With
``--no-openlineage`` every OpenLineage import fails, as on an install without the ``[openlineage]`` extra.
Prints ``STATES {task_id: state}`` last.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

MODEL = "echo1234"  # seeded in the emulator
PROJECT = "proj1234"  # seeded, with no jobs
ROWS = 25
FAST = {"poke_interval": 0.05, "timeout": 120, "deferrable": True}


class _NoOpenLineage(importlib.abc.MetaPathFinder):
    """Fails every import of the OpenLineage client and of the provider's code (its plugin, listener,
    extractors); only the provider's metadata stays importable, since its entry point is still installed."""

    allowed = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        blocked = name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage."))
        if blocked and name not in self.allowed:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: no [openlineage] extra)")


def main(workdir: Path) -> None:
    from airflow.sdk import DAG

    from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
    from airflow_provider_baseten.operators.inference import PredictOperator
    from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
    from tests.dag_support import run_dag, task_states

    inputs = workdir / "in.jsonl"
    inputs.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(ROWS)))
    with DAG("baseten_lineage", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        PredictOperator(
            task_id="batch", model_id=MODEL, model_inputs=str(inputs), output_path=str(workdir / "out.jsonl")
        )
        CreateTrainingJobOperator(
            task_id="train",
            training_project_id=PROJECT,
            image={"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"},
            runtime={"start_commands": ["python train.py"]},
            **FAST,
        )
        PromoteDeploymentOperator(
            task_id="promote", model_id=MODEL, deployment_id="development", environment="staging", **FAST
        )
    print("STATES", json.dumps(task_states(run_dag(dag))))


if __name__ == "__main__":
    if "--no-openlineage" in sys.argv:
        sys.meta_path.insert(0, _NoOpenLineage())
    main(Path(sys.argv[1]))
