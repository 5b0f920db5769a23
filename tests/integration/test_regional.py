"""Regional environments: ``regional=True`` sends predict, async predict, queue status, wake and chain runs to the
environment's own host (``model-{id}-{env}`` / ``chain-{id}-{env}``, bare paths), over HTTP to the emulator, counted
on the server; a bad combination is refused before anything is sent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_baseten.exceptions import BasetenGatewayUnsupportedError, BasetenValidationError

MODEL = "echo1234"  # seeded: production -> dep1prod, staging -> dep3stag
CHAIN = "chain123"


def requests_of(emulator: Any) -> list[tuple[str, str]]:
    return [(r["endpoint"], r["path"]) for r in emulator.requests()]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_regional_call_reaches_the_environments_host(emulator: Any, mode: str) -> None:
    hook = emulator.hook()
    calls = [
        ("predict", ({"x": 1},), {"model_id": MODEL}),
        ("async_predict", ({"x": 1},), {"model_id": MODEL}),
        ("get_async_queue_status", (), {"model_id": MODEL}),
        ("wake", (), {"model_id": MODEL}),
        ("run_chain", ({"names": ["a"]},), {"chain_id": CHAIN}),
        ("async_run_chain", ({"names": ["a"]},), {"chain_id": CHAIN}),
    ]

    async def all_async() -> list[Any]:
        out = [
            await getattr(hook, "a" + name)(*args, **kw, environment="staging", regional=True)
            for name, args, kw in calls
        ]
        await hook.aclose()
        return out

    if mode == "sync":
        answers = [getattr(hook, name)(*a, **kw, environment="staging", regional=True) for name, a, kw in calls]
    else:
        answers = asyncio.run(all_async())
    predicted, queued, queue, woken, ran, chain_queued = answers
    assert predicted["deployment_id"] == "dep3stag"  # the staging environment's deployment, named by the host
    assert queue.deployment_id == "dep3stag" and queue.num_queued_requests == 1
    assert woken is None and queued.request_id and chain_queued.request_id
    assert ran["output"] == {"names": ["a"]}
    assert requests_of(emulator) == [
        ("regional_predict", f"/model/{MODEL}-staging/predict"),
        ("regional_async_predict", f"/model/{MODEL}-staging/async_predict"),
        ("regional_async_queue_status", f"/model/{MODEL}-staging/async_queue_status"),
        ("regional_wake", f"/model/{MODEL}-staging/wake"),
        ("chain_regional_run_remote", f"/chain/{CHAIN}-staging/run_remote"),
        ("chain_regional_async_run_remote", f"/chain/{CHAIN}-staging/async_run_remote"),
    ]
    # A regional async request is followed on the model's own host, as Baseten documents.
    assert hook.get_async_request(queued.request_id, model_id=MODEL).model_id == MODEL


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({}, "environment"),  # no environment: nothing names the regional host
        ({"environment": "development"}, "environment"),  # a deployment, with no regional host
        ({"deployment_id": "dep3stag"}, "deployment_id"),
        ({"environment": "Prod_US"}, "environment"),  # cannot be part of a host name
    ],
)
def test_a_bad_regional_combination_is_refused_before_sending(emulator: Any, kw: dict[str, Any], field: str) -> None:
    hook = emulator.hook()
    for call in (
        lambda: hook.predict({"x": 1}, model_id=MODEL, regional=True, **kw),
        lambda: hook.wake(model_id=MODEL, regional=True, **kw),
        lambda: hook.run_chain({"names": []}, chain_id=CHAIN, regional=True, **kw),
    ):
        with pytest.raises(BasetenValidationError, match="regional") as err:
            call()
        assert err.value.field == field
    assert emulator.requests() == []


def test_regional_through_lowcodeapi_is_refused_before_sending(emulator: Any) -> None:
    hook = emulator.hook(gateway="lowcodeapi")
    with pytest.raises(BasetenGatewayUnsupportedError):
        hook.predict({"x": 1}, environment="staging", regional=True)
    with pytest.raises(BasetenGatewayUnsupportedError):
        hook.run_chain({"names": []}, chain_id=CHAIN, environment="staging", regional=True)
    assert emulator.requests() == []


def test_an_unknown_regional_environment_is_baseten_s_404(emulator: Any) -> None:
    from airflow_provider_baseten.exceptions import BasetenNotFoundError

    with pytest.raises(BasetenNotFoundError):
        emulator.hook().predict({"x": 1}, model_id=MODEL, environment="prod-us", regional=True)
    assert requests_of(emulator) == [("regional_predict", f"/model/{MODEL}-prod-us/predict")]
