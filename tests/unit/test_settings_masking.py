"""API keys are masked however the settings are built: from a connection, directly, or on an event loop."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from airflow_provider_baseten.client.redact import redact
from airflow_provider_baseten.client.settings import Settings


def _key() -> str:
    return f"sk-{uuid.uuid4().hex}"


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What reaches Airflow's (sync) secrets masker."""
    import airflow.sdk.log

    seen: list[str] = []
    monkeypatch.setattr(airflow.sdk.log, "mask_secret", seen.append)
    return seen


def test_settings_built_directly_mask_their_key(masked: list[str]) -> None:
    key = _key()
    Settings(api_key=key)
    assert key in masked
    assert redact(f"key {key} here") == "key *** here"


def test_from_extra_masks_once_before_validating(masked: list[str]) -> None:
    key = _key()
    Settings.from_extra(api_key=f"  {key} ", host=None, extra={})
    assert masked.count(key) == 1


def test_from_extra_leaves_masking_to_the_caller_when_asked(masked: list[str]) -> None:
    """``register_key=False`` is the async path's: the hook masks with ``aregister_secret`` itself."""
    key = _key()
    Settings.from_extra(api_key=key, host=None, extra={}, register_key=False)
    assert key not in masked
    assert key in redact(f"key {key} here")


def test_on_an_event_loop_the_key_is_masked_without_the_blocking_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built inside a trigger must not call the sync masker (a supervisor round trip)."""
    import airflow.sdk.log

    def blocking(*_: object) -> None:
        raise AssertionError("the sync mask_secret blocks the triggerer's event loop")

    monkeypatch.setattr(airflow.sdk.log, "mask_secret", blocking)
    key = _key()

    async def build() -> str:
        Settings(api_key=key)
        await asyncio.sleep(0)  # the masking task runs on the loop's next step
        await asyncio.sleep(0)
        return redact(f"key {key} here")

    assert asyncio.run(build()) == "key *** here"
