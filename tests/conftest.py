"""Test-wide set-up: a private AIRFLOW_HOME with SQLite, set before anything imports Airflow."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Each Python process of the suite (pytest-xdist workers, the subprocesses tests start, `airflow db migrate`)
# imports Airflow, SQLAlchemy and FastAPI: without cached bytecode (uv installs none, and PYTHONDONTWRITEBYTECODE,
# set in some images, stops Python writing it) every one compiles them from source again, ~3 s of CPU for
# `import airflow.sdk` alone. The bytecode goes into the virtualenv and git-ignored __pycache__ folders.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

_HOME = Path(tempfile.mkdtemp(prefix="baseten-airflow-home-"))
atexit.register(shutil.rmtree, _HOME, True)  # each pytest process removes the home it made (and its SQLite file)
# make test runs pytest-xdist workers, which inherit the environment set below in the controller. Each worker
# takes a home of its own instead: one SQLite file per process, as two processes writing one file hit "database
# is locked". A setting made outside pytest is kept: only what points into the controller's home is replaced.
_made = os.environ.get("BASETEN_TEST_HOME_MADE")
if os.environ.get("PYTEST_XDIST_WORKER") and _made:
    for name in ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER"):
        if _made in os.environ.get(name, ""):
            del os.environ[name]
elif "AIRFLOW_HOME" not in os.environ:
    os.environ["BASETEN_TEST_HOME_MADE"] = str(_HOME)
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_HOME / "dags"))

# Emulator fixtures (`emulator`, `emulator_factory`) for every test.
pytest_plugins = ["airflow_provider_baseten.emulator.pytest_plugin"]

SPECS = Path(__file__).parent / "specs"


@pytest.fixture(autouse=True)
def _fresh_redaction_registry() -> Iterator[None]:
    """Each test starts with no registered secrets, so a key is masked only if this test's code registered it."""
    from airflow_provider_baseten.client import redact as _redact

    with _redact._lock:
        _redact._secrets.clear()
    yield
    with _redact._lock:
        _redact._secrets.clear()
