"""A deploy task in a process of its own, for the kill -9 cases: ``python -m tests.chaos._deploy_child '<json>'``.

The JSON names the ``store`` (a JSON file standing in for Airflow's task state store, which outlives the
worker), the ``config`` and the ``deployment_name`` (``null``: the run-unique default). The connection comes
from the environment (``AIRFLOW_CONN_BASETEN_DEFAULT``). It runs ``DeployModelOperator.execute`` and waits.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from airflow_provider_baseten.operators.deploy import DeployModelOperator
from tests.dag_support import context


class FileStore:
    """A task state store in a JSON file, written atomically: what a killed worker leaves, survives."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str) -> Any:
        """The value stored under ``key``."""
        return self._read().get(key)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        data = {**self._read(), key: value}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


def main(spec: dict[str, Any]) -> None:
    """Run the deploy ``spec`` describes."""
    op = DeployModelOperator(
        task_id="deploy", config=spec["config"], deployment_name=spec["deployment_name"], poke_interval=0.05
    )
    print(op.execute(context(task_state_store=FileStore(spec["store"]))), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
