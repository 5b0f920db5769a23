"""Importing the operator and sensor modules, as DAG parsing does, loads only what parsing needs (issue 22 §8).

The target is at most +20 ms over ``import airflow.sdk`` (``benchmarks/run.py --only imports`` measures it).
Milliseconds flake on a busy machine, so this test counts modules instead: the hook, the client core's
transport and batch engine, the pydantic models and the triggers are loaded when a task runs, never at parse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
P = "airflow_provider_baseten"
PARSED = [
    *(f"{P}.operators.{m}" for m in ("base", "inference", "deployment", "training", "openai", "deploy")),
    *(f"{P}.sensors.{m}" for m in ("base", "inference", "deployment", "training")),
]
# Loaded when a task runs (or a trigger fires), not when its DAG is parsed.
NOT_AT_PARSE = (
    f"{P}.hooks",
    f"{P}.client.transport",
    f"{P}.client.batch",
    f"{P}.models",
    f"{P}.triggers",
    "openlineage",
    "airflow.providers.openlineage",
)


def _modules_added_by(code: str) -> list[str]:
    script = f"import json, sys, airflow.sdk\nbefore = set(sys.modules)\n{code}\nprint(json.dumps(sorted(set(sys.modules) - before)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    names: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return names


def test_parsing_imports_no_runtime_modules() -> None:
    import airflow.sdk

    added = _modules_added_by("import " + ", ".join(PARSED))
    heavy = [m for m in added if m.startswith(NOT_AT_PARSE)]
    assert not heavy, f"importing the operators and sensors loads what only a running task needs: {heavy}"
    if hasattr(airflow.sdk, "ResumableJobMixin"):  # Airflow >= 3.3: the SDK's own, not common.compat's (~2 ms)
        assert "airflow.providers.common.compat.sdk" not in added
