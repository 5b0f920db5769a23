"""Property-based fuzzing of the emulator with schemathesis, from the same official specs it validates against.

Every spec operation the emulator serves (one per endpoint of ``_routes.ENDPOINTS``) gets positive cases
(requests the spec allows) and negative ones (requests it forbids), sent over HTTP to a running emulator.
Checks: no 5xx, every answer matches the spec's response schema, and no request the spec forbids is
accepted. ``make test`` runs a few examples per operation and mode; ``make chaos`` runs many more
(tests/chaos/test_fuzz.py; ``BASETEN_FUZZ_EXAMPLES`` overrides both).
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from airflow_provider_baseten.client.routes import ENDPOINTS
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.emulator.validation import find_operation, is_uri, load_spec

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)

CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]
FAST_EXAMPLES = 4
GATEWAY_EXAMPLES = 2
MODEL = "echo1234"

# (surface, METHOD, spec path) of every operation the emulator serves.
SERVED = sorted({(ep.surface, ep.method, found[0]) for ep in ENDPOINTS if (found := find_operation(ep))})
# LowCodeAPI has no chain inference routes (the hook refuses them before sending).
GATEWAY_SERVED = [op for op in SERVED if op[0] != "chain"]
# No spec covers the OpenAI /sync passthrough or Model APIs: pydantic request models check them instead.
OUTSIDE_SPECS = [ep.name for ep in ENDPOINTS if ep.name.endswith("_sync") or ep.surface == "model_apis"]


def _examples(default: int) -> int:
    return int(os.environ.get("BASETEN_FUZZ_EXAMPLES", default))


def fuzz_emulator() -> BasetenEmulator:
    """An emulator of its own (the fuzzer's deletes and promotions touch no other test's state), with a fast
    clock so predicts on scaled-to-zero deployments wake in milliseconds."""
    return BasetenEmulator(api_key=f"fuzz-key-{secrets.token_hex(8)}", time_scale=1000.0, cold_start_timeout=2.0)


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[BasetenEmulator]:
    with fuzz_emulator() as emu:
        yield emu


@cache
def _schema(surface: str, gateway: bool = False) -> Any:
    spec = load_spec(surface)
    if gateway:  # LowCodeAPI authenticates with ?api_token=, not the spec's Authorization header
        spec = {**spec, "security": []}
    return schemathesis.openapi.from_dict(spec)


def _fuzz(
    emu: BasetenEmulator,
    surface: str,
    method: str,
    path: str,
    mode: GenerationMode,
    examples: int,
    gateway: bool = False,
) -> Counter:
    """Fuzz one operation; on the LowCodeAPI ``gateway`` (new URL format) answers are enveloped, so only the
    status checks apply there."""
    operation = _schema("inference" if surface == "chain" else surface, gateway)[path][method.lower()]
    if gateway:
        base_url, headers, query = emu.gateway_url, {}, {"api_token": emu.api_key}
        checks = [not_a_server_error, negative_data_rejection]
    else:
        base_url = emu.url + {"inference": f"/model/{MODEL}", "chain": "/chain/chain123"}.get(surface, "")
        if surface != "management" and path.count("/") == 1:  # a bare path: served on a regional host only
            base_url += "-production"
        headers, query, checks = {"Authorization": f"Bearer {emu.api_key}"}, {}, CHECKS
    seen: Counter = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        hook = case.body.get("webhook_endpoint") if isinstance(case.body, dict) else None
        if isinstance(hook, str) and is_uri(hook):
            # Never let the emulator call out: valid webhooks go back to itself (a 405, a failed delivery).
            case.body["webhook_endpoint"] = emu.url + "/__admin/health"
        response = case.call(base_url=base_url, headers=headers, params=query, timeout=10)
        seen[response.status_code // 100] += 1
        case.validate_response(response, checks=checks)

    run()
    return seen


NOTHING_TO_NEGATE = "nothing to negate without the Authorization header: no parameters, no body"


def _only_path_parameters(surface: str, method: str, path: str) -> bool:
    """No body and no query, header or cookie parameter: without the Authorization header schemathesis finds
    nothing to negate (a path segment stays a valid string), so the gateway case is unsatisfiable."""
    spec = load_spec("inference" if surface == "chain" else surface)
    item = spec["paths"][path]
    operation = item[method.lower()]
    parameters = [_resolved(spec, p) for p in operation.get("parameters", []) + item.get("parameters", [])]
    return "requestBody" not in operation and all(p["in"] == "path" for p in parameters)


def _resolved(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its local ``$ref`` points at."""
    if "$ref" not in node:
        return node
    for key in node["$ref"].removeprefix("#/").split("/"):
        spec = spec[key]
    return spec


def test_every_served_operation_is_fuzzed() -> None:
    assert len(SERVED) == len(ENDPOINTS) - len(OUTSIDE_SPECS), "each endpoint maps to its own spec operation"


@pytest.mark.parametrize(("surface", "method", "path"), SERVED, ids=[f"{m} {p}" for _, m, p in SERVED])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_fuzz_operation(fuzz_target: BasetenEmulator, surface: str, method: str, path: str, mode: Any) -> None:
    seen = _fuzz(fuzz_target, surface, method, path, mode, _examples(FAST_EXAMPLES))
    assert sum(seen.values()) > 0
    assert 5 not in seen


@pytest.mark.parametrize(("surface", "method", "path"), GATEWAY_SERVED, ids=[f"{m} {p}" for _, m, p in GATEWAY_SERVED])
def test_fuzz_operation_through_the_gateway(fuzz_target: BasetenEmulator, surface: str, method: str, path: str) -> None:
    # The LowCodeAPI surface forwards the same requests: the same rules refuse the same negative cases.
    if _only_path_parameters(surface, method, path):
        # Decided up front: hypothesis would give up only after ~460 rejected drafts (a second or more each).
        pytest.skip(NOTHING_TO_NEGATE)
    try:
        seen = _fuzz(fuzz_target, surface, method, path, GenerationMode.NEGATIVE, _examples(GATEWAY_EXAMPLES), True)
    except hypothesis.errors.Unsatisfiable:
        pytest.skip(NOTHING_TO_NEGATE)
    assert sum(seen.values()) > 0
    assert 5 not in seen
