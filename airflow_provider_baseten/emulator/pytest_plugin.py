"""pytest fixtures for testing Baseten DAGs and code against the local emulator.

Enable with ``pytest_plugins = ["airflow_provider_baseten.emulator.pytest_plugin"]`` in ``conftest.py``.

* ``emulator``: a :class:`~airflow_provider_baseten.emulator.BasetenEmulator`, reset to its seed state for
  every test (one server per session). Its clock runs ``EMULATOR_TIME_SCALE`` times faster than real time;
  freeze it with ``emulator.set_time_scale(0)`` and move it with ``emulator.advance(seconds)`` to observe
  intermediate states deterministically.
* ``emulator_factory``: ``emulator_factory(**config)`` starts a separate emulator with its own config
  (e.g. ``time_scale=0``, ``faults=[...]``, ``state={...}``), stopped after the test.
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
