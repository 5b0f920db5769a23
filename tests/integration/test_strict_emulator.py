"""The emulator rejects what Baseten's spec rejects, and accepts the valid twin of each request.

``VIOLATIONS`` is a table of deliberate spec violations: each row is sent over HTTP to the emulator on the
direct API and on the LowCodeAPI gateway (new URL format), and must be refused with the status a strict
server (Stoplight Prism on the official specs, Baseten's own API) gives it, in Baseten's error shape; its
twin, the same request made valid, must be accepted. Nothing a rejected request asked for may happen:
the emulator's counters show no submission.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.client.routes import endpoint
from airflow_provider_baseten.emulator.server import BasetenEmulator

JOB = {"training_project_id": "proj1234", "training_job_id": "JOB"}  # JOB: filled with a real job id
DEP = {"model_id": "echo1234", "deployment_id": "dep3stag"}
ENV = {"model_id": "echo1234", "env_name": "staging"}
M = {"model_id": "echo1234"}
JSON = "application/json"
_NOTHING = object()


@dataclass
class Violation:
    """A request that breaks the spec (``bad``) and its valid twin (``good``)."""

    name: str
    params: dict[str, str]
    bad: Any  # the body (JSON-encoded unless bytes); _NOTHING: no body
    good: Any
    status: int  # what the bad request gets
    good_status: int = 200
    query: dict[str, str] = field(default_factory=dict)
    good_query: dict[str, str] = field(default_factory=dict)
    content_type: str | None = JSON  # of the bad request, when it has a body


VIOLATIONS: dict[str, Violation] = {
    # A body where the spec defines none: 415 (what the hook used to send).
    "wake_with_a_body": Violation("production_wake", {}, {}, _NOTHING, 415, 202),
    "activate_with_a_body": Violation("activate_deployment", DEP, {}, _NOTHING, 415),
    "deactivate_environment_with_a_body": Violation("deactivate_environment", ENV, {}, _NOTHING, 415),
    "recreate_with_a_body": Violation("recreate_training_job", JOB, {}, _NOTHING, 415),
    "list_models_with_a_body": Violation("list_models", {}, {"x": 1}, _NOTHING, 415),
    # A media type the operation does not take: 415.
    "async_predict_as_text": Violation(
        "production_async_predict", {}, b'{"model_input": {}}', {"model_input": {}}, 415, 201, content_type="text/plain"
    ),
    "promote_without_content_type": Violation(
        "promote_deployment",
        DEP,
        b"{}",
        {},
        415,
        content_type=None,
    ),
    # A body that is not JSON: 400.
    "predict_not_json": Violation("production_predict", {}, b"{not json", {"text": "x"}, 400),
    # A required body missing: 422.
    "stop_without_its_body": Violation("stop_training_job", JOB, _NOTHING, {}, 422),
    "async_predict_without_a_body": Violation("production_async_predict", {}, _NOTHING, {"model_input": {}}, 422, 201),
    # The body breaks its schema: 422.
    "search_with_a_numeric_project_id": Violation(
        "search_training_jobs", {}, {"project_id": 1234}, {"project_id": "proj1234"}, 422
    ),
    "search_with_statuses_as_a_string": Violation(
        "search_training_jobs", {}, {"statuses": "TRAINING_JOB_RUNNING"}, {"statuses": ["TRAINING_JOB_RUNNING"]}, 422
    ),
    "search_order_by_without_order": Violation(
        "search_training_jobs",
        {},
        {"order_by": [{"field": "created_at"}]},
        {"order_by": [{"field": "created_at", "order": "asc"}]},
        422,
    ),
    "predict_a_list": Violation("production_predict", {}, [1, 2, 3], {"items": [1, 2, 3]}, 422),
    "async_priority_out_of_range": Violation(
        "production_async_predict", {}, {"model_input": {}, "priority": 3}, {"model_input": {}, "priority": 2}, 422, 201
    ),
    "async_without_model_input": Violation(
        "production_async_predict", {}, {"priority": 1}, {"model_input": {}, "priority": 1}, 422, 201
    ),
    "async_webhook_not_a_uri": Violation(
        "production_async_predict",
        {},
        {"model_input": {}, "webhook_endpoint": "not a uri"},
        {"model_input": {}, "webhook_endpoint": "WEBHOOK"},  # WEBHOOK: the emulator's own URL
        422,
        201,
    ),
    "autoscaling_unknown_field": Violation(
        "update_deployment_autoscaling_settings", DEP, {"min_instances": 1}, {"min_replica": 0}, 422
    ),
    "autoscaling_out_of_range": Violation(
        "update_deployment_autoscaling_settings", DEP, {"max_scale_down_rate": 80}, {"max_scale_down_rate": 50}, 422
    ),
    "api_key_of_an_unknown_type": Violation("create_api_key", {}, {"type": "ROOT"}, {"type": "PERSONAL"}, 422),
    "secret_value_not_a_string": Violation(
        "upsert_secret", {}, {"name": "tok", "value": 5}, {"name": "tok", "value": "v"}, 422
    ),
    "environment_without_a_name": Violation("create_environment", M, {}, {"name": "canary"}, 422),
    "promote_to_environment_without_deployment": Violation(
        "promote_to_environment", ENV, {"scale_down_previous_deployment": True}, {"deployment_id": "dep1prod"}, 422
    ),
    "training_job_without_its_wrapper": Violation(
        "create_training_job",
        {"training_project_id": "proj1234"},
        {"image": {"base_image": "python:3.11"}},
        {"training_job": {"image": {"base_image": "python:3.11"}}},
        422,
    ),
    # A bad query parameter: 422.
    "logs_with_a_non_integer_limit": Violation(
        "get_training_job_logs", JOB, _NOTHING, _NOTHING, 422, query={"limit": "ten"}, good_query={"limit": "10"}
    ),
}


def _send(
    emu: BasetenEmulator,
    gateway: str,
    name: str,
    params: dict[str, str],
    body: Any,
    query: dict[str, str],
    content_type: str | None,
) -> httpx.Response:
    ep = endpoint(name)
    if gateway == "direct":
        base = emu.inference_url.replace("{model_id}", params.get("model_id", "echo1234"))
        url = (base if ep.surface == "inference" else emu.url) + ep.direct_path(params)
        q, headers = dict(query), {"Authorization": f"Bearer {emu.api_key}"}
    else:
        path, extra = ep.gateway_request(params, "new")
        url, q, headers = emu.gateway_url + path, {**extra, **query, "api_token": emu.api_key}, {}
    content = None
    if body is not _NOTHING:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        if content_type:
            headers["Content-Type"] = content_type
    return httpx.request(ep.method, url, params=q, content=content, headers=headers, timeout=10)


def _fill(emu: BasetenEmulator, job_id: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fill(emu, job_id, v) for k, v in value.items()}
    if value == "JOB":
        return job_id
    if value == "WEBHOOK":
        return emu.url + "/__admin/health"
    return value


@pytest.fixture
def job_id(emulator: BasetenEmulator) -> str:
    emulator.set_time_scale(0)
    return emulator.hook().create_training_job("proj1234", {"image": {"base_image": "python:3.11"}}).id


@pytest.mark.parametrize("gateway", ["direct", "lowcodeapi"])
@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_violation_is_rejected_and_its_twin_accepted(
    emulator: BasetenEmulator, job_id: str, case: str, gateway: str
) -> None:
    v = VIOLATIONS[case]
    params = _fill(emulator, job_id, v.params)
    before = emulator.counters()["submissions"]

    bad = _send(emulator, gateway, v.name, params, _fill(emulator, job_id, v.bad), v.query, v.content_type)

    assert bad.status_code == v.status, (case, bad.status_code, bad.text)
    error = bad.json()
    if gateway == "direct":
        assert isinstance(error["error"], str) and error["error"]
        if endpoint(v.name).surface == "inference":
            assert error["error_code"] == "client_error"
    else:
        assert error["data"] is None and error["error"]
    assert emulator.counters()["submissions"] == before, "a rejected request must not take effect"

    good = _send(emulator, gateway, v.name, params, _fill(emulator, job_id, v.good), v.good_query, JSON)
    assert good.status_code == v.good_status, (case, good.status_code, good.text)


def test_the_table_covers_every_kind_of_violation() -> None:
    assert {v.status for v in VIOLATIONS.values()} == {400, 415, 422}


def test_an_unknown_method_is_refused(emulator: BasetenEmulator) -> None:
    r = httpx.put(emulator.url + "/v1/models", headers={"Authorization": f"Bearer {emulator.api_key}"})
    assert r.status_code == 405


def test_lenient_accepts_what_strict_refuses(emulator_factory: Any, emulator: BasetenEmulator) -> None:
    lenient = emulator_factory(strict=False, time_scale=0)
    for emu in (lenient, emulator):
        emu.set_time_scale(0)
    wake = VIOLATIONS["wake_with_a_body"]
    assert _send(emulator, "direct", wake.name, {}, {}, {}, JSON).status_code == 415
    assert _send(lenient, "direct", wake.name, {}, {}, {}, JSON).status_code == 202
    with emulator.lenient():
        assert _send(emulator, "direct", wake.name, {}, {}, {}, JSON).status_code == 202
    assert _send(emulator, "direct", wake.name, {}, {}, {}, JSON).status_code == 415, "strict again on exit"
    # Over the admin API too.
    assert httpx.post(emulator.url + "/__admin/config", json={"strict": False}).json()["strict"] is False
    assert _send(emulator, "direct", wake.name, {}, {}, {}, JSON).status_code == 202
    emulator.reset()
    assert emulator.core.strict is True, "reset restores the configured strictness"


def test_command_line_lenient_switch() -> None:
    import re
    import subprocess
    import sys

    from airflow_provider_baseten.emulator.config import EmulatorConfig

    assert EmulatorConfig().strict is True
    assert "strict=False" in repr(EmulatorConfig(strict=False))
    cmd = [sys.executable, "-m", "airflow_provider_baseten.emulator", "--port", "0", "--api-key", "cli-key-123"]
    proc = subprocess.Popen([*cmd, "--lenient"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())  # type: ignore[union-attr]
        assert match
        headers = {"Authorization": "Bearer cli-key-123"}
        r = httpx.post(match.group(1) + "/model/echo1234/production/wake", json={}, headers=headers)
        assert r.status_code == 202, "--lenient tolerates a body the spec does not define"
        assert httpx.get(match.group(1) + "/__admin/health").status_code == 200
    finally:
        proc.kill()
        proc.wait(10)


def test_specs_ship_inside_the_package() -> None:
    from importlib import resources

    from airflow_provider_baseten.emulator.validation import SpecValidator, load_spec

    for surface in ("management", "inference"):
        path = resources.files("airflow_provider_baseten.emulator").joinpath("specs", f"openapi-{surface}.json")
        assert path.is_file()
        assert load_spec(surface)["openapi"].startswith("3.1")
    # The OpenAI /sync passthrough and Model APIs are in no Baseten spec (pydantic request models check them).
    outside = [n for n in SpecValidator().warm() if not (n.endswith("_sync") or n == "model_apis_request")]
    assert outside == [], "every other endpoint of the route table has its spec operation"


def test_a_route_the_specs_do_not_describe_is_served_leniently() -> None:
    from airflow_provider_baseten.client.routes import Endpoint
    from airflow_provider_baseten.emulator.validation import SpecValidator

    gateway_only = Endpoint("made_up", "POST", "/v1/not_in_the_spec", "management", None)
    assert SpecValidator().rules(gateway_only) is None
