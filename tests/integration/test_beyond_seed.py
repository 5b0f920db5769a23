"""Training projects, promotion control, deployment retry, logs, metrics and rate limits against the emulator.

Counts come from the emulator (its counters, request log and state), never from the client.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest
import structlog
from airflow.sdk import DAG

from airflow_provider_baseten.client.transport import RetryPolicy, Transport
from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.emulator.state import FAILURE_LOGS
from airflow_provider_baseten.exceptions import BasetenGatewayUnsupportedError, BasetenRateLimitError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.triggers.baseten import PromotionTrigger
from tests.dag_support import run_dag, task_states
from tests.integration import test_deployment_operators as shared

from .conftest import make_hook

MODEL = "echo1234"
# Training projects and deployment retries are not in the LowCodeAPI reference: through the gateway they are
# refused before sending (test_gateway_refuses_an_unlisted_endpoint_before_sending), so only direct here.
GATEWAYS = [pytest.param({"gateway": "baseten"}, id="direct")]


def sleeping_hook(emu: BasetenEmulator, sleeps: list[float], **settings: Any) -> BasetenHook:
    """A hook whose waits are recorded and move the emulator's (frozen) clock instead of real time."""
    s = emu.settings(retry=RetryPolicy(max_attempts=3, max_retry_after=120, total_timeout=600), **settings)

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        emu.advance(seconds)

    hook = BasetenHook(settings=s)
    hook._transport = Transport(s, sleep=sleep)
    return hook


def served(emu: BasetenEmulator, endpoint: str) -> list[int]:
    """The statuses the emulator answered ``endpoint`` with, in order."""
    return [r["status"] for r in emu.requests() if r["endpoint"] == endpoint]


# -- training projects ----------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", GATEWAYS)
def test_get_or_create_training_project_creates_once(emulator: BasetenEmulator, settings: dict[str, Any]) -> None:
    hook = make_hook(emulator, **settings)
    first = hook.get_or_create_training_project("nightly-sft")
    again = hook.get_or_create_training_project("nightly-sft")
    assert first.id == again.id and first.name == "nightly-sft"
    named = [p for p in emulator.core.state.snapshot()["training_projects"] if p["name"] == "nightly-sft"]
    assert len(named) == 1
    assert served(emulator, "create_training_project") == [200]  # the second call only looked it up
    assert hook.get_or_create_training_project("fine-tune-demo").id == "proj1234"


async def test_async_get_or_create_training_project(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    made = await hook.aget_or_create_training_project("async-sft")
    assert (await hook.aget_training_project(made.id)).name == "async-sft"
    assert [p.id for p in await hook.alist_training_projects() if p.name == "async-sft"] == [made.id]


def test_create_training_project_is_resent_after_a_damaged_answer_and_stays_one(emulator: BasetenEmulator) -> None:
    # The emulator commits the project, then the answer is cut in half: an upsert may be sent again.
    emulator.set_faults([FaultRule("truncate", times=1, endpoints=["create_training_project"])])
    project = make_hook(emulator).create_training_project("after-the-fact")
    assert served(emulator, "create_training_project") == [200, 200]
    named = [p for p in emulator.core.state.snapshot()["training_projects"] if p["name"] == "after-the-fact"]
    assert [p["id"] for p in named] == [project.id]
    assert emulator.counters()["submissions"]["training_project"] == 1


@pytest.mark.parametrize("url_format", ["new", "old", "auto"])
def test_gateway_refuses_an_unlisted_endpoint_before_sending(emulator: BasetenEmulator, url_format: str) -> None:
    # Issue 24: a route the gateway's reference does not list used to be sent (twice in auto: once per URL
    # format) and 404. Now nothing reaches the gateway, sync or async, and the error says what to do.
    emulator.set_gateway_unlisted(False)
    hook = make_hook(emulator, gateway="lowcodeapi", url_format=url_format)
    calls = [
        lambda: hook.list_training_projects(),
        lambda: hook.get_training_project("proj1234"),
        lambda: asyncio.run(hook.aget_training_project("proj1234")),
        lambda: hook.get_deployment_logs("dep1prod"),
        # A create whose reconcile snapshot (list_models) the gateway does list: the snapshot is not sent either.
        lambda: hook.create_model("m-refused", None, {"config": {"model_name": "m"}}),
        lambda: asyncio.run(hook.acreate_model("m-refused", None, {"config": {"model_name": "m"}})),
    ]
    for call in calls:
        with pytest.raises(BasetenGatewayUnsupportedError, match="does not list") as err:
            call()
        assert "gateway=baseten" in str(err.value) and err.value.status_code is None
    assert [r for r in emulator.requests() if r["surface"] != "direct"] == []  # zero sent
    assert hook.list_models()  # the endpoints in the gateway's reference still work
    assert make_hook(emulator).list_training_projects()  # and the direct API has it


# -- promotion control ----------------------------------------------------------------------------------
def test_promotion_trigger_logs_each_phase_through_pause_and_roll_forward(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator)
    hook.promote_deployment("dep1prod", environment="staging")
    trigger = PromotionTrigger(conn_id="unused", model_id=MODEL, environment="staging", deployment_id="dep1prod")

    async def watch() -> Any:  # one event loop, as in the triggerer (the hook's async client is bound to it)
        assert await trigger.check(hook) is None  # RELEASING
        assert await trigger.check(hook) is None  # unchanged: not logged again
        hook.pause_promotion("staging")
        emulator.advance(30)
        assert await trigger.check(hook) is None  # PAUSED waits
        hook.resume_promotion("staging")
        emulator.advance(3)
        assert await trigger.check(hook) is None  # RAMPING_UP
        hook.force_roll_forward_promotion("staging")
        return await trigger.check(hook)

    with structlog.testing.capture_logs() as events:
        done = asyncio.run(watch())
    assert done is not None and done["status"] == "success"
    logged = [str(e.get("event")) for e in events]
    phases = [m for m in logged if m.startswith("Promotion of deployment dep1prod")]
    assert [p.split(": ")[1].split(",")[0] for p in phases] == ["RELEASING", "PAUSED", "RAMPING_UP", "SUCCEEDED"]
    assert any("paused; it waits for resume_promotion" in m for m in logged)


def test_failed_promotion_fails_the_trigger_with_its_error_and_error_lines(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    emulator.set_promotion_fail(True)
    hook = make_hook(emulator)
    hook.promote_deployment("dep1prod", environment="staging")
    emulator.advance(5)
    trigger = PromotionTrigger(conn_id="unused", model_id=MODEL, environment="staging", deployment_id="dep1prod")
    result = asyncio.run(trigger.check(hook))
    assert result["status"] == "failed" and result["promotion_status"] == "FAILED"
    assert "failed its health checks during release" in result["message"]
    assert any("ERROR" in line and "health checks" in line for line in result["error_lines"])
    assert hook.get_environment("staging").current_deployment.id == "dep3stag"  # nothing changed hands


def test_force_cancel_rolls_back_at_once(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator)
    hook.promote_deployment("dep1prod", environment="staging")
    emulator.advance(3)
    assert hook.get_environment("staging").in_progress_promotion.status == "RAMPING_UP"
    assert hook.force_cancel_promotion("staging").success is True
    env = hook.get_environment("staging")
    assert env.in_progress_promotion.status == "CANCELED" and env.current_deployment.id == "dep3stag"
    assert env.candidate_deployment is None
    assert emulator.counters()["cancellations"]["promotion"] == 1


# -- retry, logs, metrics -------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", GATEWAYS)
def test_retry_a_failed_build_then_it_serves(emulator: BasetenEmulator, settings: dict[str, Any]) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator, **settings)
    dep = emulator.create_deployment(MODEL, "v7", fail="BUILD_FAILED")["id"]
    emulator.advance(10)
    assert hook.get_deployment(dep).status == "BUILD_FAILED"
    errors = hook.get_deployment_logs(dep, min_level="ERROR")
    assert [e.message for e in errors][-1] == "Build failed: pip install exited with code 1"
    result = hook.retry_deployment(dep)
    assert result.retried is True and result.reason is None
    assert hook.retry_deployment(dep).retried is False  # building again: nothing to retry
    emulator.advance(10)
    assert hook.get_deployment(dep).status == "ACTIVE"
    assert emulator.counters()["submissions"]["deployment_retry"] == 1


def test_iter_deployment_logs_pages_and_dedups_like_the_cli(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    base = int(emulator.core.clock.now() * 1000) - 600_000  # ten minutes ago, in ms
    # 2,400 lines: three per millisecond (so page boundaries cut through milliseconds), two replicas.
    lines = [
        {"timestamp": (base + i // 3) * 1_000_000 + i % 3, "message": f"line {i}", "replica": f"r{i % 2}"}
        for i in range(2400)
    ]
    emulator.add_logs(MODEL, "dep1prod", lines)
    got = list(hook.iter_deployment_logs("dep1prod", start_epoch_millis=base, page_size=100))
    assert [x.message for x in got] == [f"line {i}" for i in reversed(range(2400))]  # all, once, newest first
    pages = len(served(emulator, "get_deployment_logs"))
    assert 2400 / 100 < pages <= 2400 / 97 + 2  # each page repeats at most its boundary millisecond
    newest = list(hook.iter_deployment_logs("dep1prod", start_epoch_millis=base, page_size=100, limit=250))
    assert [x.message for x in newest] == [f"line {i}" for i in range(2399, 2149, -1)]

    async def collect() -> list[str]:
        return [x.message async for x in hook.aiter_deployment_logs("dep1prod", start_epoch_millis=base, limit=50)]

    assert asyncio.run(collect()) == [f"line {i}" for i in range(2399, 2349, -1)]


def test_iter_deployment_logs_ends_when_one_millisecond_overflows_a_page(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    ms = int(emulator.core.clock.now() * 1000) - 60_000
    emulator.add_logs(MODEL, "dep1prod", [{"timestamp": ms * 1_000_000, "message": f"m{i}"} for i in range(30)])
    emulator.add_logs(MODEL, "dep1prod", [{"timestamp": (ms - 5) * 1_000_000, "message": "older"}])
    with structlog.testing.capture_logs() as events:
        got = [x.message for x in hook.iter_deployment_logs("dep1prod", start_epoch_millis=ms - 10, page_size=10)]
    assert got[:10] == [f"m{i}" for i in range(29, 19, -1)] and got[-1] == "older"  # stepped past, not stuck
    assert any("share the millisecond" in str(e.get("event")) for e in events)


def test_environment_logs_and_metrics(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator)
    new = emulator.create_deployment(MODEL, "v8")["id"]
    emulator.advance(10)
    hook.promote_deployment(new, environment="staging")
    assert any("is ACTIVE" in x.message for x in hook.get_environment_logs("staging"))
    for _ in range(3):
        hook.predict({"x": 1})
    summary = hook.get_deployment_metrics(
        "dep1prod", mode="SUMMARY", metrics=["baseten_inference_requests_total", "baseten_replicas_active"]
    )
    assert summary.series("baseten_inference_requests_total") == [(summary.start_epoch_millis, [3.0, 0.0])]
    series = hook.get_deployment_metrics("dep1prod", mode="SERIES")
    assert len(series.metric_values) == 10 and series.step_seconds == 360
    assert series.metric_descriptors[0].name == "baseten_replicas_active"


# -- rate limits ----------------------------------------------------------------------------------------
def test_activations_are_paced_under_20_per_minute(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    sleeps: list[float] = []
    hook = sleeping_hook(emulator, sleeps)
    for _ in range(25):
        hook.activate_deployment("dep3stag")
    assert served(emulator, "activate_deployment") == [200] * 25  # never a 429: the client waited
    assert len(sleeps) == 5 and all(59 < s < 63 for s in sleeps)


def test_a_429_retry_after_body_is_honoured(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    raw = httpx.Client(headers={"Authorization": f"Bearer {emulator.api_key}"})
    url = f"{emulator.url}/v1/models/{MODEL}/deployments/dep3stag/retry"
    assert [raw.post(url).status_code for _ in range(10)] == [200] * 10  # someone else spent the budget
    over = raw.post(url)
    assert over.status_code == 429 and over.json() == {
        "error": "Rate limit exceeded. Please try again later.",
        "retry_after": 60,
    }
    sleeps: list[float] = []
    result = sleeping_hook(emulator, sleeps).retry_deployment("dep3stag")
    assert result.retried is False and sleeps[0] == 60  # waited what Baseten asked before sending again
    assert served(emulator, "retry_deployment")[-2:] == [429, 200]
    raw.close()


def test_rate_limited_without_budget_left_raises_a_typed_error(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    raw = httpx.Client(headers={"Authorization": f"Bearer {emulator.api_key}"})
    url = f"{emulator.url}/v1/models/{MODEL}/deployments/dep3stag/deactivate"
    assert [raw.post(url).status_code for _ in range(20)] == [200] * 20  # another process spent the budget
    raw.close()
    with pytest.raises(BasetenRateLimitError) as err:
        make_hook(emulator, retry=RetryPolicy(max_attempts=2, max_retry_after=0.01)).deactivate_deployment("dep3stag")
    assert err.value.retry_after == 60 and err.value.status_code == 429


# -- observability in real Airflow (dag.test) ----------------------------------------------------------
conn = shared.conn
task_log = shared.task_log
START = datetime(2026, 1, 1)


@pytest.mark.parametrize("deferrable", shared.MODES)
@pytest.mark.parametrize("failure", ["BUILD_FAILED", "DEPLOY_FAILED", "UNHEALTHY"])
def test_failed_deployment_wait_shows_the_last_error_lines(
    conn: BasetenEmulator, task_log: list[dict[str, Any]], failure: str, deferrable: bool
) -> None:
    dep = conn.create_deployment(MODEL, "v5", fail=failure)["id"]
    with DAG(f"t_dep_errors_{failure}_{deferrable}", schedule=None, start_date=START) as dag:
        DeploymentStatusSensor(task_id="wait", deployment_id=dep, deferrable=deferrable, poke_interval=0.02, timeout=60)
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}
    logged = shared.messages(task_log)
    assert "ERROR line(s) of the remote logs" in logged
    assert FAILURE_LOGS[failure][-1][1] in logged  # the deployment's own last ERROR line
    assert "Step 1/3" not in logged  # INFO lines are not shown


@pytest.mark.parametrize("deferrable", shared.MODES)
def test_promote_operator_logs_phases_and_fails_a_failed_promotion_with_its_logs(
    conn: BasetenEmulator, task_log: list[dict[str, Any]], deferrable: bool
) -> None:
    conn.set_promotion_fail(True)
    with DAG(f"t_promote_fail_{deferrable}", schedule=None, start_date=START) as dag:
        PromoteDeploymentOperator(
            task_id="promote", deployment_id="dep1prod", environment="staging", deferrable=deferrable, **shared.FAST
        )
    run = run_dag(dag)
    assert task_states(run) == {"promote": "failed"}
    logged = shared.messages(task_log)
    assert "Promotion of deployment dep1prod into staging: " in logged  # each phase change is logged
    assert "failed its health checks during release" in logged
    assert "ERROR line(s) of the remote logs" in logged
    env = make_hook(conn).get_environment("staging")
    assert env.current_deployment.id == "dep3stag" and env.in_progress_promotion.status == "FAILED"
