"""Unit-test fixtures: no network, no real sleeps, a fresh LowCodeAPI format memory per test."""

from __future__ import annotations

import os
import tempfile

import pytest

# The same private Airflow home as tests/conftest.py, for runs that skip it (`--confcutdir=tests/unit`).
_HOME = tempfile.mkdtemp(prefix="baseten-unit-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


@pytest.fixture(autouse=True)
def _fresh_format_memory():
    """Each test starts with no remembered LowCodeAPI URL format, and leaves none behind."""
    from airflow_provider_baseten.client.ratelimit import reset_rate_limits
    from airflow_provider_baseten.client.transport import reset_format_memory

    reset_format_memory()
    reset_rate_limits()
    yield
    reset_format_memory()
    reset_rate_limits()
