"""Every endpoint of the route table, both gateways, both LowCodeAPI URL formats, sync and async.

The endpoint list comes from ``_routes.ENDPOINTS`` (the code's single source of truth); the expected
LowCodeAPI paths come from the gateway reference's own tables, and the old format is derived in the test
from the reference's rule, not by calling the code under test.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import httpx
import pytest

from airflow_provider_baseten import __version__
from airflow_provider_baseten.client.routes import ENDPOINTS, endpoint
from tests.unit._reference import EXPECTED_COUNTS, Row, rows
from tests.unit._support import (
    CASES,
    CHAIN,
    ENV,
    GATEWAY_BASE,
    KEY,
    MANAGEMENT_HOST,
    MODEL,
    NEW_KEY,
    Case,
    Recorder,
    answer,
    body_of,
    fill,
    main_request,
    make_hook,
    old_format,
    query_of,
)

ALL = [ep.name for ep in ENDPOINTS]
IN_REFERENCE = [ep.name for ep in ENDPOINTS if ep.in_gateway_reference]
USER_AGENT = f"airflow-provider-baseten/{__version__} apache-airflow/{version('apache-airflow')}"


def run(case: Case, hook, mode: str):
    if mode == "sync":
        return case.call(hook)
    return asyncio.run(case.acall(hook))


def test_cases_cover_every_endpoint_of_the_route_table():
    missing = set(ALL) - set(CASES)
    unknown = set(CASES) - set(ALL)
    assert not missing, f"endpoints without a test case: {sorted(missing)}"
    assert not unknown, f"test cases for endpoints the table does not have: {sorted(unknown)}"


def test_every_endpoint_is_reachable_by_a_public_hook_method_and_its_async_twin():
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    for name, case in CASES.items():
        assert callable(getattr(BasetenHook, case.method, None)), name
        assert asyncio.iscoroutinefunction(getattr(BasetenHook, "a" + case.method)), name


# The auth scheme is one header set in Transport.build for every endpoint: it is not a dimension of this
# matrix; test_api_key_auth_scheme checks it on one endpoint of each surface, in both modes.
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", ALL)
def test_direct_gateway(name, mode, auth_scheme="Bearer"):
    ep, case = endpoint(name), CASES[name]
    rec = Recorder(answer(case, gateway=False))
    hook = make_hook(rec, auth_scheme=auth_scheme)

    result = run(case, hook, mode)

    req = main_request(rec)
    assert req.method == ep.method
    assert req.url.scheme == "https"
    hosts = {
        "inference": f"model-{MODEL}.api.baseten.co",
        "chain": f"chain-{CHAIN}.api.baseten.co",
        "model_apis": "inference.baseten.co",
    }
    if "regional" in name:  # a regional environment is in the host: model-{id}-{env}, chain-{id}-{env}
        hosts = {surface: host.replace(".api.", f"-{ENV}.api.") for surface, host in hosts.items()}
    assert req.url.host == hosts.get(ep.surface, MANAGEMENT_HOST)
    assert set(case.params) == set(ep.params), "the case must fill exactly the endpoint's path parameters"
    prefix = "/v1" if ep.surface == "model_apis" else ""  # Model APIs' base URL ends in /v1
    assert req.url.path == prefix + fill(ep.path, case.params)
    assert query_of(req) == case.query
    assert body_of(req) == case.body
    if case.body is not None:
        assert req.headers["content-type"] == "application/json"
    else:
        assert "content-type" not in req.headers
    assert req.headers["authorization"] == f"{auth_scheme} {KEY}"
    assert req.headers["user-agent"] == USER_AGENT
    assert "api_token" not in str(req.url)
    if name == "create_api_key":
        assert result.api_key == NEW_KEY
    elif case.response is None:
        assert result is None
    elif name.endswith("_predict") and "async" not in name:
        assert result == case.response  # sync predict returns the model's output as it answered


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", ["get_model", "production_predict"])
def test_api_key_auth_scheme(name, mode):
    """``auth_scheme="Api-Key"`` on the management and the inference surface, sync and async."""
    test_direct_gateway(name, mode, auth_scheme="Api-Key")


def _reference_row(name: str) -> Row:
    """The (slip-corrected) reference row documenting endpoint ``name``."""
    ep = endpoint(name)
    matches = []
    for row in rows():
        fixed = row.corrected()
        path, query = Row.split(fixed.new)
        params_in_query = {k for k, v in query.items() if v == "{" + k + "}"}
        if fixed.method == ep.method and path == (ep.gateway_path or ep.path) and params_in_query <= set(ep.params):
            matches.append(fixed)
    assert len(matches) == 1, f"{name}: {len(matches)} reference rows match"
    return matches[0]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("url_format", ["new", "old"])
@pytest.mark.parametrize("name", IN_REFERENCE)
def test_lowcodeapi_gateway(name, url_format, mode):
    case = CASES[name]
    row = _reference_row(name)
    rec = Recorder(answer(case, gateway=True))
    hook = make_hook(rec, gateway="lowcodeapi", url_format=url_format)

    result = run(case, hook, mode)

    req = main_request(rec)
    assert req.method == row.method
    new_path, new_query = Row.split(row.new)
    if url_format == "new":
        path = fill(new_path, case.params)
        query = {k: fill(v, case.params) for k, v in new_query.items()}
    else:
        path, query = old_format(new_path, case.params)
        old_path, old_query = Row.split(row.old)
        assert path == old_path, "the reference's old column follows its own rule"
        query.update({k: fill(v, case.params) for k, v in old_query.items()})
    assert str(req.url).startswith(GATEWAY_BASE + "/")
    assert req.url.path == "/baseten" + path
    assert dict(req.url.params) == {**query, **case.query, "api_token": KEY}
    assert body_of(req) == case.body
    assert req.headers.get("content-type") == (None if case.body is None else "application/json")
    assert "authorization" not in req.headers, "LowCodeAPI authenticates by api_token only"
    assert req.headers["user-agent"] == USER_AGENT
    if name == "create_api_key":
        assert result.api_key == NEW_KEY


def test_lowcodeapi_default_predict_goes_to_the_production_environment():
    # The reference has no /production/predict row: production is reached as an environment.
    case = CASES["production_predict"]
    rec = Recorder(answer(case, gateway=True))
    hook = make_hook(rec, gateway="lowcodeapi", url_format="new")
    assert case.call(hook) == case.response
    assert rec.requests[0].url.path == "/baseten/environments/production/predict"


def test_lowcodeapi_inference_needs_no_model_id():
    case = CASES["development_async_predict"]
    rec = Recorder(answer(case, gateway=True))
    hook = make_hook(rec, gateway="lowcodeapi", model_id=None)
    assert case.call(hook).request_id == case.response["request_id"]
    assert rec.requests[0].url.path == "/baseten/development/async_predict"


def test_direct_inference_url_template_and_host_override():
    from airflow_provider_baseten.client.transport import Settings
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    rec = Recorder(
        lambda r: httpx.Response(200, json={"models": []}) if "/v1/" in r.url.path else httpx.Response(200, json={})
    )
    s = Settings.from_extra(
        api_key=KEY,
        host="baseten.internal:8443/",
        extra={"inference_url": "http://localhost:9000/m/{model_id}"},
    )
    hook = BasetenHook(settings=s, http_transport=httpx.MockTransport(rec))
    hook.list_models()
    hook.predict({"x": 1}, model_id="abc")
    assert str(rec.requests[0].url) == "https://baseten.internal:8443/v1/models"
    assert str(rec.requests[1].url) == "http://localhost:9000/m/abc/production/predict"


def test_one_pooled_client_per_hook_is_reused():
    rec = Recorder(answer(CASES["list_models"], gateway=False))
    hook = make_hook(rec)
    transport = hook.get_transport()
    hook.list_models()
    client = transport.client
    hook.list_models()
    hook.list_models()
    assert transport.client is client
    assert rec.count == 3


def test_reference_rows_match_the_route_table():
    table = rows()
    counts = {c: sum(1 for r in table if r.category == c) for c in EXPECTED_COUNTS}
    assert counts == EXPECTED_COUNTS

    gateway_endpoints = {ep.name: ep for ep in ENDPOINTS if ep.in_gateway_reference}
    matched: dict[str, Row] = {}
    for raw in table:
        row = raw.corrected()
        path, query = Row.split(row.new)
        candidates = [
            ep
            for ep in gateway_endpoints.values()
            if ep.method == row.method
            and ep.category == row.category
            and (ep.gateway_path or ep.path) == path
            and set(query) <= set(ep.params)
        ]
        assert len(candidates) == 1, f"reference row {raw} matches {[c.name for c in candidates]}"
        ep = candidates[0]
        assert ep.name not in matched, f"{ep.name} matches two rows"
        matched[ep.name] = raw
        # The old column is the new one with the reference's rule applied.
        expected_old, _ = old_format(path, {p: "" for p in ep.params})
        old_path, old_query = Row.split(row.old)
        assert old_path == expected_old
        assert old_query == query
    assert set(matched) == set(gateway_endpoints), "every gateway endpoint in the table has a reference row"


def test_reference_documents_the_deactivate_slip_and_the_prefix_query():
    slips = [r for r in rows() if r.is_documented_slip]
    assert len(slips) == 3
    assert {endpoint(n).path.rsplit("/", 1)[-1] for n in IN_REFERENCE if "deactivate" in n} == {"deactivate"}
    (delete_key,) = [r for r in rows() if r.title == "Delete API key"]
    assert delete_key.method == "DELETE" and delete_key.new == "/v1/api_keys?prefix={prefix}"
    assert endpoint("delete_api_key").path == "/v1/api_keys/{prefix}"  # the direct API's form
