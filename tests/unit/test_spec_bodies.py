"""Body presence and ``Content-Type`` of every hook request are exactly what Baseten's specs define.

Derived from ``tests/specs`` (not a hand list): for each endpoint of ``_routes.ENDPOINTS`` the spec operation
with the same method and path shape says whether a request body exists and in which media types. The hook's
call for that endpoint (``CASES``) is sent on both gateways, sync and async, and must send no body and no
``Content-Type`` where the spec defines none, and a body of a declared media type where it defines one.
An endpoint added to the route table without a spec operation fails here unless it is listed in
``NOT_IN_SPEC`` with the reason.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from airflow_provider_baseten.client.routes import ENDPOINTS, Endpoint
from tests.conftest import SPECS
from tests.unit._support import CASES, Recorder, answer, main_request, make_hook

# Routes Baseten's specs do not describe (gateway-only or undocumented), each with the reason.
NOT_IN_SPEC: dict[str, str] = {
    **{
        f"{t}_sync": "the /sync/{route} passthrough forwards to the container's own routes: not in INF (BEYOND-SEED 4.1)"
        for t in ("environment", "development", "deployment")
    },
    "model_apis_request": "Baseten's Model APIs (inference.baseten.co/v1) have an OpenAI spec of their own, not INF",
}

_PARAM = re.compile(r"\{[^}]+\}")


@cache
def _spec(surface: str) -> dict[str, Any]:
    return json.loads((SPECS / f"openapi-{surface}.json").read_text())


def spec_request_body(ep: Endpoint) -> dict[str, Any] | None:
    """The spec's ``requestBody`` (``$ref`` resolved) for ``ep``; ``None`` when the spec defines none."""
    spec = _spec("inference" if ep.surface == "chain" else ep.surface)  # chains are in the inference spec
    shape = _PARAM.sub("{}", ep.path)
    for path, ops in spec["paths"].items():
        op = ops.get(ep.method.lower())
        if op is not None and _PARAM.sub("{}", path) == shape:
            body = op.get("requestBody")
            if body is not None and "$ref" in body:
                body = spec["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
            return body
    raise LookupError(f"{ep.name}: {ep.method} {ep.path} is in no path of Baseten's {ep.surface} spec")


IN_SPEC = [ep for ep in ENDPOINTS if ep.name not in NOT_IN_SPEC]


def test_every_endpoint_is_in_the_spec_or_says_why_not():
    missing = []
    for ep in IN_SPEC:
        try:
            spec_request_body(ep)
        except LookupError as exc:
            missing.append(str(exc))
    assert not missing, "add these to the spec check or to NOT_IN_SPEC with a reason:\n" + "\n".join(missing)
    assert all(reason.strip() for reason in NOT_IN_SPEC.values())


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda ep: ep.name)
def test_each_rows_body_flag_is_the_specs(ep: Endpoint) -> None:
    """The row's ``body`` (what the transport and the emulator read) says what Baseten's spec says."""
    takes_body = True if ep.name in NOT_IN_SPEC else spec_request_body(ep) is not None
    assert ep.body == takes_body, f"{ep.name}: set body={takes_body} on its row"


def test_the_spec_has_bodiless_posts_so_this_check_is_not_vacuous():
    bodiless = {ep.name for ep in IN_SPEC if ep.method == "POST" and spec_request_body(ep) is None}
    assert {"production_wake", "activate_deployment", "cancel_promotion", "recreate_training_job"} <= bodiless


# One gateway and one mode: Transport.build makes the body and its Content-Type in the same lines for both
# gateways, sync and async (hooks/_api.py sends the same _Call either way). test_endpoints.py checks, for
# every endpoint in both modes and both gateways, that the body and Content-Type are the ones built here.
@pytest.mark.parametrize("ep", IN_SPEC, ids=lambda ep: ep.name)
def test_body_and_content_type_match_the_spec(ep: Endpoint) -> None:
    case = CASES[ep.name]
    rec = Recorder(answer(case, gateway=False))
    hook = make_hook(rec)
    case.call(hook)
    request = main_request(rec)
    declared = spec_request_body(ep)
    content_type = request.headers.get("content-type")
    if declared is None:
        assert request.content == b"", f"{ep.name}: the spec defines no body, the hook sent {request.content!r}"
        assert content_type is None, f"{ep.name}: the spec defines no body, the hook sent Content-Type {content_type}"
        return
    media_types = set(declared.get("content", {}))
    if declared.get("required"):
        assert request.content, f"{ep.name}: the spec requires a body"
    if request.content:
        assert content_type is not None, f"{ep.name}: a body without Content-Type"
        assert content_type.split(";")[0].strip() in media_types, (ep.name, content_type, media_types)
