"""Bad arguments fail with a BasetenValidationError naming the field, before any request goes out."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.client.transport import RetryPolicy
from airflow_provider_baseten.exceptions import BasetenValidationError
from tests.unit._support import DEP, JOB, KEY, PROJ, Recorder, make_hook

BAD_IDS = ["", "   ", "a/b", "a?b", "a#b", "a..b", "../etc", "a b", "x" * 200]


def _never(request: httpx.Request) -> httpx.Response:  # pragma: no cover - must not be reached
    raise AssertionError(f"a request went out: {request.method} {request.url}")


def rejected(method: str, args: tuple, kwargs: dict[str, Any], *, mode: str = "sync", **hook_kw: Any):
    rec = Recorder(_never)
    hook = make_hook(rec, **hook_kw)
    with pytest.raises(BasetenValidationError) as info:
        if mode == "sync":
            getattr(hook, method)(*args, **kwargs)
        else:
            asyncio.run(getattr(hook, "a" + method)(*args, **kwargs))
    assert rec.count == 0, "nothing may be sent"
    assert info.value.status_code is None
    assert KEY not in str(info.value)
    return info.value


AS = "update_autoscaling_settings"
AP = "async_predict"
IN = {"prompt": "hi"}

CASES: list[tuple[str, str, tuple, dict[str, Any]]] = [
    # (expected field, method, args, kwargs)
    # autoscaling ranges
    ("max_replica", AS, (), {"deployment_id": DEP, "min_replica": 5, "max_replica": 2}),
    ("max_scale_down_rate", AS, (), {"deployment_id": DEP, "max_scale_down_rate": 0}),
    ("max_scale_down_rate", AS, (), {"deployment_id": DEP, "max_scale_down_rate": 51}),
    ("min_replica", AS, (), {"deployment_id": DEP, "min_replica": -1}),
    ("scale_down_delay", AS, (), {"deployment_id": DEP, "scale_down_delay": -5}),
    ("target_utilization_percentage", AS, (), {"deployment_id": DEP, "target_utilization_percentage": 101}),
    ("concurrency_target", AS, (), {"deployment_id": DEP, "concurrency_target": "lots"}),
    ("min_instances", AS, ({"min_instances": 1},), {"deployment_id": DEP}),  # the reference example's name
    ("max_replica", AS, (), {"environment": "staging", "min_replica": 3, "max_replica": 1}),
    ("settings", AS, (), {"deployment_id": DEP}),
    ("deployment_id", AS, (), {"deployment_id": DEP, "environment": "staging", "min_replica": 1}),
    ("max_replica", "create_environment", ("canary",), {"autoscaling_settings": {"max_replica": 0}}),
    ("max_scale_down_rate", "update_environment", ("staging",), {"autoscaling_settings": {"max_scale_down_rate": 51}}),
    ("autoscaling_settings", "update_environment", ("staging",), {}),
    # promote options
    ("scale_down_previous", "promote_deployment", (DEP,), {"scale_down_previous": "yes"}),
    ("preserve_env_instance_type", "promote_deployment", (DEP,), {"preserve_env_instance_type": 1}),
    ("scale_down_previous", "promote_deployment", (DEP,), {"environment": "staging", "scale_down_previous": None}),
    ("deployment_id", "promote_deployment", ("development",), {"environment": "staging"}),
    # async predict options
    ("priority", AP, (IN,), {"priority": 3}),
    ("priority", AP, (IN,), {"priority": -1}),
    ("max_time_in_queue_seconds", AP, (IN,), {"max_time_in_queue_seconds": 5}),
    ("max_time_in_queue_seconds", AP, (IN,), {"max_time_in_queue_seconds": 300000}),
    ("inference_retry_config.max_attempts", AP, (IN,), {"inference_retry_config": {"max_attempts": 11}}),
    ("inference_retry_config.max_attempts", AP, (IN,), {"inference_retry_config": {"max_attempts": 0}}),
    ("inference_retry_config.initial_delay_ms", AP, (IN,), {"inference_retry_config": {"initial_delay_ms": 10001}}),
    ("inference_retry_config.max_delay_ms", AP, (IN,), {"inference_retry_config": {"max_delay_ms": 60001}}),
    ("inference_retry_config.retries", AP, (IN,), {"inference_retry_config": {"retries": 2}}),
    ("webhook_endpoint", AP, (IN,), {"webhook_endpoint": "ftp://example.com/hook"}),
    ("model_input", AP, (["not", "a", "dict"],), {}),
    ("model_input", AP, ({"blob": "a" * (256 * 1024)},), {}),
    ("model_input", AP, ({"when": object()},), {}),
    # target selection
    ("deployment_id", "predict", (IN,), {"environment": "staging", "deployment_id": DEP}),
    ("deployment_id", AP, (IN,), {"environment": "staging", "deployment_id": DEP}),
    ("deployment_id", "get_async_queue_status", (), {"environment": "staging", "deployment_id": DEP}),
    ("deployment_id", "wake", (), {"environment": "development", "deployment_id": DEP}),
    # non-JSON input
    ("model_input", "predict", ({"when": object()},), {}),
    ("model_input", "predict", ({"x": math.nan},), {}),
    ("model_input", "predict", ({1, 2, 3},), {}),
    # other arguments
    ("type", "create_api_key", ("ROOT",), {}),
    ("value", "upsert_secret", ("hf_token", ""), {}),
    ("training_job", "create_training_job", (PROJ, {"name": "no image"}), {}),
    # search: the spec's types (the strict emulator and Prism refuse them with 422)
    ("project_id", "search_training_jobs", (), {"project_id": 1234}),
    ("statuses", "search_training_jobs", (), {"statuses": "TRAINING_JOB_RUNNING"}),
    ("statuses", "search_training_jobs", (), {"statuses": [1]}),
    ("order_by", "search_training_jobs", (), {"order_by": [{"field": "created_at"}]}),
    ("order_by", "search_training_jobs", (), {"order_by": {"field": "created_at", "order": "asc"}}),
]


# One gateway and one mode: the builder validates its arguments before any transport exists, and the sync
# method and its async twin share that builder (hooks/_api.py), so neither dimension can fail on its own.
# test_bad_ids_are_refused_by_async_twins_and_the_gateway_too proves the async and gateway routes.
@pytest.mark.parametrize(("field", "method", "args", "kwargs"), CASES, ids=[f"{c[1]}-{c[0]}" for c in CASES])
def test_bad_argument_names_its_field_and_sends_nothing(field, method, args, kwargs):
    exc = rejected(method, args, kwargs)
    assert exc.field == field, str(exc)


# (field, method, args builder): each id argument of the surface, fed every bad value.
ID_CALLS: list[tuple[str, str, Any]] = [
    ("model_id", "get_model", lambda v: ((v,), {})),
    ("model_id", "delete_model", lambda v: ((v,), {})),
    ("model_id", "list_deployments", lambda v: ((v,), {})),
    ("model_id", "predict", lambda v: (({"x": 1},), {"model_id": v})),
    ("deployment_id", "get_deployment", lambda v: ((v,), {})),
    ("deployment_id", "delete_deployment", lambda v: ((v,), {})),
    ("deployment_id", "activate_deployment", lambda v: ((v,), {})),
    ("deployment_id", "promote_deployment", lambda v: ((v,), {})),
    ("deployment_id", "predict", lambda v: (({"x": 1},), {"deployment_id": v})),
    ("deployment_id", "async_predict", lambda v: (({"x": 1},), {"deployment_id": v})),
    ("environment", "predict", lambda v: (({"x": 1},), {"environment": v})),
    ("environment", "wake", lambda v: ((), {"environment": v})),
    ("environment", "get_environment", lambda v: ((v,), {})),
    ("environment", "activate_environment", lambda v: ((v,), {})),
    ("environment", "deactivate_environment", lambda v: ((v,), {})),
    ("environment", "cancel_promotion", lambda v: ((v,), {})),
    ("environment", "update_environment", lambda v: ((v,), {"promotion_settings": {"rolling_deploy": True}})),
    ("environment", "promote_deployment", lambda v: ((DEP,), {"environment": v})),
    ("request_id", "get_async_request", lambda v: ((v,), {})),
    ("request_id", "cancel_async_request", lambda v: ((v,), {})),
    ("chain_id", "get_chain", lambda v: ((v,), {})),
    ("chain_id", "delete_chain", lambda v: ((v,), {})),
    ("prefix", "delete_api_key", lambda v: ((v,), {})),
    ("name", "upsert_secret", lambda v: ((v, "value"), {})),
    ("name", "create_environment", lambda v: ((v,), {})),
    ("training_project_id", "list_training_jobs", lambda v: ((v,), {})),
    ("training_project_id", "get_training_job", lambda v: ((v, JOB), {})),
    ("training_job_id", "get_training_job", lambda v: ((PROJ, v), {})),
    ("training_job_id", "stop_training_job", lambda v: ((PROJ, v), {})),
    ("training_project_id", "create_training_job", lambda v: ((v, {"image": {"base_image": "x"}}), {})),
]


@pytest.mark.parametrize(("field", "method", "build"), ID_CALLS, ids=[f"{c[1]}-{c[0]}" for c in ID_CALLS])
def test_bad_ids_are_refused(field, method, build):
    for bad in BAD_IDS:
        args, kwargs = build(bad)
        exc = rejected(method, args, kwargs)
        assert exc.field == field, f"{bad!r}: {exc}"


@pytest.mark.parametrize("bad", ["a/b", "..", ""])
def test_bad_ids_are_refused_by_async_twins_and_the_gateway_too(bad):
    assert rejected("get_deployment", (bad,), {}, mode="async").field == "deployment_id"
    assert rejected("get_chain", (bad,), {}, gateway="lowcodeapi").field == "chain_id"
    assert rejected("predict", ({"x": 1},), {"deployment_id": bad}, gateway="lowcodeapi").field == "deployment_id"


def test_no_model_id_anywhere_names_model_id():
    assert rejected("get_deployment", (DEP,), {}, model_id=None).field == "model_id"
    assert rejected("predict", ({"x": 1},), {}, model_id=None).field == "model_id"
    assert rejected("list_environments", (), {}, model_id=None, mode="async").field == "model_id"


def test_limits_are_inclusive():
    rec = Recorder(lambda r: httpx.Response(201, json={"request_id": "r"}))
    hook = make_hook(rec)
    for kwargs in (
        {"priority": 0, "max_time_in_queue_seconds": 10},
        {"priority": 2, "max_time_in_queue_seconds": 259200},
        {"inference_retry_config": {"max_attempts": 10, "initial_delay_ms": 10000, "max_delay_ms": 60000}},
        {"inference_retry_config": {"max_attempts": 1, "initial_delay_ms": 0, "max_delay_ms": 0}},
    ):
        hook.async_predict({"x": 1}, **kwargs)
    # A payload just under 256 KiB goes out.
    hook.async_predict({"blob": "a" * (256 * 1024 - 100)})
    assert rec.count == 5


def test_retry_policy_is_validated():
    with pytest.raises(BasetenValidationError) as info:
        RetryPolicy(max_attempts=0)
    assert info.value.field == "max_attempts"
    with pytest.raises(BasetenValidationError):
        RetryPolicy(total_timeout=0)


@pytest.mark.parametrize("default", ["conn-model", None])
@pytest.mark.parametrize("given", [None, "", "m-given"])
def test_operators_and_sensors_pick_the_model_by_the_hooks_rule(given: str | None, default: str | None):
    """``resolve_model`` (what operators and sensors use) and the hook answer the same question alike: only
    ``None`` falls back to the connection's model_id; an explicit ``""`` is an error naming model_id."""
    from airflow_provider_baseten._tasks import resolve_model

    rec = Recorder(lambda r: httpx.Response(200, json={"environments": []}))
    hook = make_hook(rec, model_id=default)
    try:
        hook.list_environments(model_id=given)
        by_hook: str | None = rec.requests[0].url.path.split("/")[3]  # /v1/models/{model_id}/environments
    except BasetenValidationError as exc:
        assert exc.field == "model_id" and rec.count == 0
        by_hook = None
    try:
        ours: str | None = resolve_model(hook, given)
    except BasetenValidationError as exc:
        assert exc.field == "model_id"
        ours = None
    assert ours == by_hook
    assert ours == ((given if given is not None else default) or None)
