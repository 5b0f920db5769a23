"""``hook_params`` is checked without importing httpx (operators check it at DAG parse), so its keys are written
out in ``client/checks.py``; this keeps them equal to the fields of ``Timeouts`` and ``RetryPolicy``."""

from __future__ import annotations

import dataclasses
import json

from airflow_provider_baseten.client.checks import HOOK_PARAM_FIELDS, hook_params
from airflow_provider_baseten.config import RetryPolicy, Timeouts


def test_the_keys_are_the_fields_of_timeouts_and_retry_policy() -> None:
    assert set(HOOK_PARAM_FIELDS["timeouts"]) == {f.name for f in dataclasses.fields(Timeouts)}
    assert set(HOOK_PARAM_FIELDS["retry"]) == {f.name for f in dataclasses.fields(RetryPolicy)}


def test_checked_hook_params_are_plain_json_and_build_the_classes() -> None:
    every = {group: dict.fromkeys(fields, 2) for group, fields in HOOK_PARAM_FIELDS.items()}
    checked = hook_params(every)
    assert json.loads(json.dumps(checked, allow_nan=False)) == checked
    assert Timeouts(**checked["timeouts"]) == Timeouts(2, 2, 2)
    assert RetryPolicy(**checked["retry"]).max_attempts == 2
    assert hook_params(None) == {} and hook_params({"timeouts": {}, "retry": None}) == {}
