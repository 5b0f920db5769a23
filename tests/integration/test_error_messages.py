"""Error messages read as sentences: Baseten's own text is quoted once, with one period after it."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenAuthError
from airflow_provider_baseten.hooks.baseten import BasetenHook


def test_the_401_message_has_one_period(emulator: BasetenEmulator) -> None:
    """The emulator answers 401 "Invalid or missing API key." as Baseten does; the message said "key.. Check"."""
    hook = BasetenHook(settings=dataclasses.replace(emulator.settings(), api_key="wrong-key-not-a-secret"))
    with pytest.raises(BasetenAuthError) as caught:
        hook.list_models()
    message = str(caught.value)
    assert "(401): Invalid or missing API key. Check the API key" in message, message
    assert ".." not in message
    assert emulator.counters()["responses"]["401"] == 1  # one answer, counted on the server
