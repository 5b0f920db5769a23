"""A local Baseten emulator: the direct API and the LowCodeAPI gateway, in memory, on 127.0.0.1.

Start it as ``python -m airflow_provider_baseten.emulator``, as ``with BasetenEmulator(...) as emu:``, or
through the pytest fixtures in :mod:`airflow_provider_baseten.emulator.pytest_plugin`. Imports are lazy so
that loading the pytest plugin does not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_baseten.emulator.config import Durations, EmulatorConfig, FaultRule, load_config
    from airflow_provider_baseten.emulator.server import BasetenEmulator

__all__ = ["BasetenEmulator", "Durations", "EmulatorConfig", "FaultRule", "load_config"]

_WHERE = {
    "BasetenEmulator": "server",
    "Durations": "config",
    "EmulatorConfig": "config",
    "FaultRule": "config",
    "load_config": "config",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        module = importlib.import_module(f"{__name__}.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(name)
