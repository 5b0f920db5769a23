"""Cost per task and budget guards against the emulator: prices (cached per process, counted on the server),
exact estimates against the emulator's billed figures, and the guard that stops a job at its cap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from airflow_provider_baseten import cost
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenValidationError

from .conftest import make_hook


@pytest.fixture(autouse=True)
def _fresh_prices() -> Iterator[None]:
    cost.clear_price_cache()
    yield
    cost.clear_price_cache()


def price_lists(emu: BasetenEmulator) -> int:
    return emu.counters()["requests"].get("list_instance_type_prices", 0)


def test_prices_are_cached_per_process_for_the_ttl(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = make_hook(emulator)
    assert cost.price_per_minute(hook, "A10Gx4x16") == 0.02012
    assert asyncio.run(cost.aprice_per_minute(hook, "H100x26x234")) == 0.10833
    assert price_lists(emulator) == 1  # one list served both
    with pytest.raises(BasetenValidationError, match="no price for instance type 'B200x9'"):
        cost.price_per_minute(hook, "B200x9")
    assert price_lists(emulator) == 1
    monkeypatch.setattr(cost, "PRICE_TTL_SECONDS", -1.0)  # every entry is now stale
    cost.price_per_minute(hook, "A10Gx4x16")
    assert price_lists(emulator) == 2
