"""pytest fixtures for testing Baseten DAGs and code against the local emulator.

Enable with ``pytest_plugins = ["airflow_provider_baseten.emulator.pytest_plugin"]`` in ``conftest.py``.

* ``emulator``: a :class:`~airflow_provider_baseten.emulator.BasetenEmulator`, reset to its seed state for
  every test (one server per session). Its clock runs ``EMULATOR_TIME_SCALE`` times faster than real time;
  freeze it with ``emulator.set_time_scale(0)`` and move it with ``emulator.advance(seconds)`` to observe
  intermediate states deterministically.
* ``emulator_factory``: ``emulator_factory(**config)`` starts a separate emulator with its own config
  (e.g. ``time_scale=0``, ``faults=[...]``, ``state={...}``), stopped after the test.
* ``baseten_dag_test``: ``baseten_dag_test(dag, **test_kwargs)`` runs a DAG object with ``dag.test()`` against
  ``emulator`` and returns the DagRun. The DAG may be defined anywhere, in the test function too: the fixture
  migrates the metadata DB once and serializes the DAG first, as Airflow 3 requires. Give the test session an
  ``AIRFLOW_HOME`` of its own (set before Airflow is imported, e.g. at the top of ``conftest.py``), as the
  fixture creates the DB there and writes the DAG into it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_baseten.emulator.server import BasetenEmulator

EMULATOR_API_KEY = f"emulator-test-key-{secrets.token_hex(8)}"  # random per run: no test relies on its value
EMULATOR_TIME_SCALE = 20.0


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[BasetenEmulator]:
    """One emulator server for the whole session (use ``emulator`` for a clean state per test)."""
    from airflow_provider_baseten.emulator.server import BasetenEmulator

    emu = BasetenEmulator(api_key=EMULATOR_API_KEY, time_scale=EMULATOR_TIME_SCALE).start()
    yield emu
    emu.stop()


@pytest.fixture
def emulator(emulator_session: BasetenEmulator) -> Iterator[BasetenEmulator]:
    """The session's emulator, reset to its seed state (and LowCodeAPI format memory forgotten)."""
    from airflow_provider_baseten.client.ratelimit import reset_rate_limits
    from airflow_provider_baseten.client.transport import reset_format_memory

    emulator_session.reset()
    reset_format_memory()
    reset_rate_limits()
    yield emulator_session
    reset_format_memory()
    reset_rate_limits()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., BasetenEmulator]]:
    """Start extra emulators with their own config: ``emulator_factory(time_scale=0, faults=[...])``."""
    from airflow_provider_baseten.client.ratelimit import reset_rate_limits
    from airflow_provider_baseten.client.transport import reset_format_memory
    from airflow_provider_baseten.emulator.server import BasetenEmulator

    started: list[BasetenEmulator] = []

    def make(**config: Any) -> BasetenEmulator:
        config.setdefault("api_key", EMULATOR_API_KEY)
        emu = BasetenEmulator(**config).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()
    reset_format_memory()
    reset_rate_limits()


@pytest.fixture
def baseten_dag_test(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``baseten_dag_test(dag, **test_kwargs)``: ``dag.test()`` a DAG object against ``emulator``; returns the DagRun.

    The emulator's connections (``AIRFLOW_CONN_BASETEN_DEFAULT``) are set for the test. Before the run the
    metadata DB is migrated (once) and the DAG serialized into it, so a DAG defined inside the test function
    runs as well as one from the DAGs folder. ``test_kwargs`` go to ``dag.test()`` (e.g. ``run_conf``).
    """
    from airflow_provider_baseten.emulator.dagrun import run_dag

    for name, value in emulator.connection_env().items():
        monkeypatch.setenv(name, value)
    return run_dag
