"""Every request the hook builds for the direct API conforms to Baseten's official OpenAPI specs.

Path (against the spec's templates), method, query parameter names and the JSON body (with ``jsonschema``,
``$ref``s resolved inside the whole spec document) are checked for every endpoint case and for the
option-heavy variants of the calls that have bodies.
"""

from __future__ import annotations

import contextlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from airflow_provider_baseten.client.routes import ENDPOINTS
from airflow_provider_baseten.exceptions import BasetenError
from tests.unit._support import CASES, DEP, ENV, PROJ, Case, Recorder, _c, answer, body_of, main_request, make_hook
from tests.unit.test_spec_bodies import NOT_IN_SPEC

SPECS = Path(__file__).parents[1] / "specs"
SPEC_FILES = {"management": "openapi-management.json", "inference": "openapi-inference.json"}
METHODS = ("get", "post", "put", "patch", "delete")

# Bodies richer than the endpoint cases: every option each body-taking call accepts.
ALL_AUTOSCALING = {
    "min_replica": 0,
    "max_replica": 4,
    "autoscaling_window": 60,
    "scale_down_delay": 900,
    "concurrency_target": 2,
    "target_utilization_percentage": 70,
    "target_in_flight_tokens": 1000,
    "max_scale_down_rate": 10,
}
VARIANTS: dict[str, Case] = {
    "predict_nested_input": _c("predict", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}),
    "async_predict_all_options": _c(
        "async_predict",
        {"prompt": "hi"},
        deployment_id=DEP,
        webhook_endpoint="https://example.com/hook",
        priority=2,
        max_time_in_queue_seconds=259200,
        inference_retry_config={"max_attempts": 10, "initial_delay_ms": 0, "max_delay_ms": 60000},
    ),
    "autoscaling_all_fields": _c("update_autoscaling_settings", ALL_AUTOSCALING, deployment_id=DEP),
    "autoscaling_of_an_environment": _c("update_autoscaling_settings", environment=ENV, max_replica=3),
    "create_environment_minimal": _c("create_environment", "canary"),
    "create_environment_full": _c(
        "create_environment",
        "canary",
        autoscaling_settings=ALL_AUTOSCALING,
        promotion_settings={
            "redeploy_on_promotion": True,
            "rolling_deploy": True,
            "ramp_up_while_promoting": True,
            "ramp_up_duration_seconds": 600,
        },
    ),
    "promote_into_production_by_name": _c("promote_deployment", DEP, environment="production"),
    "promote_into_environment_no_scale_down": _c(
        "promote_deployment", DEP, environment=ENV, scale_down_previous=False, preserve_env_instance_type=False
    ),
    "create_api_key_minimal": _c("create_api_key", "PERSONAL"),
    "search_everything": _c(
        "search_training_jobs",
        project_id=PROJ,
        job_id="tj1",
        statuses=["TRAINING_JOB_RUNNING", "TRAINING_JOB_COMPLETED"],
        order_by=[{"field": "created_at", "order": "desc"}],
    ),
    "search_nothing": _c("search_training_jobs"),
    "create_training_job_full": _c(
        "create_training_job",
        PROJ,
        {
            "name": "gpt-oss-job",
            "image": {"base_image": "hello-world"},
            "compute": {"accelerator": {"accelerator": "H100", "count": 2}, "cpu_count": 1, "memory": "2Gi"},
            "runtime": {"start_commands": ["python main.py"], "environment_variables": {"A": "b"}},
        },
    ),
}


@cache
def spec(surface: str) -> dict[str, Any]:
    return json.loads((SPECS / SPEC_FILES[surface]).read_text())


@cache
def registry(surface: str) -> Registry:
    resource = Resource.from_contents(spec(surface), default_specification=DRAFT202012)
    return Registry().with_resource(f"urn:baseten:{surface}", resource)


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def match_operation(surface: str, method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec path template (and operation) that ``method path`` hits; the most literal one wins."""
    hits = []
    for template, ops in spec(surface)["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            hits.append((template.count("{"), template))
    assert hits, f"{method} {path} matches no path of Baseten's {surface} spec"
    template = min(hits)[1]
    return template, spec(surface)["paths"][template][method.lower()]


def body_schema_pointer(surface: str, template: str, method: str, op: dict[str, Any]) -> str | None:
    """JSON pointer (in the spec document) of the operation's JSON request body schema, if it has one."""
    body = op.get("requestBody")
    if body is None:
        return None
    if "$ref" in body:  # e.g. #/components/requestBodies/AsyncPredictInput
        base = body["$ref"].removeprefix("#")
        body = registry(surface).resolver(f"urn:baseten:{surface}").lookup(f"urn:baseten:{surface}#{base}").contents
    else:
        base = _pointer("paths", template, method.lower(), "requestBody")
    if "application/json" not in body.get("content", {}):
        return None
    return base + _pointer("content", "application/json", "schema")


def inference_server(host: str) -> str:
    """The inference spec's server template ``host`` is an instance of (ids alphanumeric, an environment a host
    label), e.g. ``https://model-{model_id}-{env_name}.api.baseten.co`` for a regional model host."""
    for server in spec("inference")["servers"]:
        template = server["url"].removeprefix("https://")
        parts = re.split(r"(\{[a-z_]+\})", template)
        pattern = "".join(
            ("[a-z0-9]+" if p != "{env_name}" else "[a-z0-9][a-z0-9-]*") if p.startswith("{") else re.escape(p)
            for p in parts
        )
        if re.fullmatch(pattern, host):
            return str(server["url"])
    raise AssertionError(f"{host} is no server of the inference spec")


def check_against_spec(request: httpx.Request) -> str:
    host = request.url.host
    surface = "management" if host == "api.baseten.co" else "inference"
    template, op = match_operation(surface, request.method, request.url.path)
    if surface == "inference":
        # Bare paths (tag "Regional") are served on regional hosts only, and only they are.
        regional = "{env_name}" in inference_server(host)
        assert regional == ("Regional" in op.get("tags", [])), f"{host}{request.url.path}"

    query_params = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
    unknown = set(request.url.params) - query_params
    assert not unknown, f"{template}: query parameters {unknown} are not in the spec"

    pointer = body_schema_pointer(surface, template, request.method, op)
    body = body_of(request)
    if pointer is None:
        assert body is None, f"{request.method} {template} has no request body in the spec, sent {body!r}"
        assert "content-type" not in request.headers, f"{request.method} {template}: Content-Type without a body"
    else:
        assert body is not None, f"{request.method} {template} needs a JSON body"
        validator = Draft202012Validator({"$ref": f"urn:baseten:{surface}#{pointer}"}, registry=registry(surface))
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{request.method} {template}: " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors[:5]
        )
    return template


def _send(case: Case) -> httpx.Request:
    rec = Recorder(answer(case, gateway=False) if case.response is not None else lambda r: httpx.Response(200, json={}))
    hook = make_hook(rec)
    # The variants' answers are not what the parsers expect; the request is what counts.
    with contextlib.suppress(BasetenError):
        case.call(hook)
    return main_request(rec)


@pytest.mark.parametrize("name", [ep.name for ep in ENDPOINTS if ep.name not in NOT_IN_SPEC])
def test_endpoint_case_conforms_to_baseten_spec(name):
    ep = next(e for e in ENDPOINTS if e.name == name)
    template = check_against_spec(_send(CASES[name]))
    # The spec's template and the route table's agree up to parameter names (e.g. {api_key_prefix}).
    normalise = lambda t: re.sub(r"\{[^}]+\}", "{}", t)  # noqa: E731
    assert normalise(template) == normalise(ep.path)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_conforms_to_baseten_spec(variant):
    check_against_spec(_send(VARIANTS[variant]))


def test_the_checker_rejects_what_the_spec_forbids():
    # Guard against a checker that accepts anything.
    def req(method: str, url: str, body: Any = None) -> httpx.Request:
        return httpx.Request(method, url, json=body) if body is not None else httpx.Request(method, url)

    bad = [
        req("PATCH", "https://api.baseten.co/v1/models/m/deployments/d/autoscaling_settings", {"min_instances": 1}),
        req("POST", "https://api.baseten.co/v1/models/m/environments/e/promote", {"scale_down_previous": True}),
        req("POST", "https://model-abc.api.baseten.co/production/async_predict", {"model_input": {}, "priority": 3}),
        req("POST", "https://api.baseten.co/v1/api_keys", {"type": "ROOT"}),
        req("PUT", "https://api.baseten.co/v1/models"),
        req("GET", "https://api.baseten.co/v1/modelz"),
        req("GET", "https://api.baseten.co/v1/models?bogus=1"),
        req("POST", "https://api.baseten.co/v1/models/m/environments/e/activate", {"x": 1}),
    ]
    for request in bad:
        with pytest.raises(AssertionError):
            check_against_spec(request)
