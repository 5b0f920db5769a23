"""Cost per task and budget guards against the emulator: prices (cached per process, counted on the server),
exact estimates against the emulator's billed figures, and the guard that stops a job at its cap."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_baseten import _lineage, cost
from airflow_provider_baseten._tasks import raise_for_event
from airflow_provider_baseten.emulator.config import Durations, FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import (
    AirflowFailException,  # the Task SDK's, or 3.1's airflow.exceptions
    BasetenBudgetExceeded,
    BasetenError,
    BasetenUnpricedError,
    BasetenValidationError,
)
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator, RecreateTrainingJobOperator
from airflow_provider_baseten.triggers import _poll
from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger
from tests.dag_support import context
from tests.integration.test_deployment_operators import task_log as task_log

from .conftest import make_hook


@pytest.fixture(autouse=True)
def _fresh_prices() -> Iterator[None]:
    cost.clear_price_cache()
    yield
    cost.clear_price_cache()


def price_lists(emu: BasetenEmulator) -> int:
    return emu.counters()["requests"].get("list_instance_type_prices", 0)


def test_prices_are_cached_per_process_for_the_ttl(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = make_hook(emulator)
    assert cost.price_per_minute(hook, "A10Gx4x16") == 0.02012
    assert asyncio.run(cost.aprice_per_minute(hook, "H100x26x234")) == 0.10833
    assert price_lists(emulator) == 1  # one list served both
    with pytest.raises(BasetenUnpricedError, match="no price for instance type 'B200x9'") as err:
        cost.price_per_minute(hook, "B200x9")
    assert err.value.instance_type == "B200x9" and isinstance(err.value, BasetenValidationError)
    assert price_lists(emulator) == 2  # a type the cached list lacks may be newer than it: read once more
    monkeypatch.setattr(cost, "PRICE_TTL_SECONDS", -1.0)  # every entry is now stale
    cost.price_per_minute(hook, "A10Gx4x16")
    assert price_lists(emulator) == 3


# -- the emulator: compute and billing ---------------------------------------------------------------------
H100 = {"accelerator": {"accelerator": "H100", "count": 1}, "node_count": 2}
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
H100_PRICE = 0.10833


@pytest.fixture
def frozen(emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> BasetenEmulator:
    """A frozen-clock emulator at noon UTC (no day boundary near), as ``baseten_default``; the cost module
    reads the emulator's clock as its wall clock. A job runs 1 + 1 + 2 s then ``training_running`` s."""
    emu: BasetenEmulator = emulator_factory(time_scale=0, durations=Durations(training_running=596))
    now = emu.state.clock.now()
    emu.advance((now // 86400 + 1) * 86400 + 12 * 3600 - now)
    for key, value in emu.connection_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cost, "_now", emu.state.clock.now)
    return emu


def test_emulator_jobs_carry_their_compute_and_bill_node_minutes(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    job = hook.create_training_job("proj1234", {"image": IMAGE, "compute": H100})
    assert job.instance_type is not None and job.instance_type["id"] == "H100x26x234"
    with pytest.raises(BasetenValidationError, match="No instance type has accelerator"):
        hook.create_training_job(
            "proj1234", {"image": IMAGE, "compute": {"accelerator": {"accelerator": "TPU", "count": 3}}}
        )
    assert frozen.counters()["submissions"]["training_job"] == 1  # the refused one was not created
    frozen.advance(600)  # 1 + 1 + 2 + 596 s: exactly 10 minutes, then COMPLETED
    day = datetime.fromtimestamp(frozen.state.clock.now(), timezone.utc).date()
    usage = hook.get_usage_summary(day, day + timedelta(days=1))
    assert usage.training_usage is not None
    (item,) = usage.training_usage.breakdown
    assert (item.billable_resource.id, item.billable_resource.instance_type) == (job.id, "H100x26x234")
    assert (item.minutes, item.subtotal) == (20, Decimal("2.16660"))  # 2 nodes x 10 min x $0.10833


def run_inline(op: Any) -> tuple[Any, dict[str, Any]]:
    """Run ``op.execute`` with a minimal context; return (result or raised error, the XComs pushed)."""
    ctx = context()
    try:
        result: Any = op.execute(ctx)
    except Exception as exc:
        result = exc
    return result, ctx["ti"].xcoms


def budget_failure(op: Any, deferrable: bool) -> tuple[Any, dict[str, Any]]:
    """Run ``op`` until its budget guard fails it: inline, or as the triggerer does (the trigger rebuilt from
    its serialized kwargs, the task resumed in ``execute_complete``). The ``BasetenBudgetExceeded`` it raised
    (a ``pytest.raises`` info) and the trigger's kwargs (``{}`` inline)."""
    if deferrable:
        ctx = context()
        job = op.submit_job(ctx)
        _path, kwargs = op._trigger(job["training_project_id"], job["training_job_id"], ctx).serialize()
        event = asyncio.run(TrainingJobTrigger(**kwargs).wait())
        with pytest.raises(BasetenBudgetExceeded) as err:
            op.execute_complete(ctx, event)
        return err, kwargs
    result, _ = run_inline(op)
    with pytest.raises(BasetenBudgetExceeded) as err:
        raise result
    return err, {}


def tick_per_poll(emu: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every poll of a training wait first moves the frozen clock one poll interval: virtual time, no luck."""
    check = TrainingJobTrigger.check

    async def ticking(self: TrainingJobTrigger, hook: Any) -> Any:
        emu.advance(self.poll_interval)
        return await check(self, hook)

    monkeypatch.setattr(TrainingJobTrigger, "check", ticking)
    # The pause between polls is the clock's move: the poll loop's asyncio (only its) sleeps 0 s.
    monkeypatch.setattr(_poll, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": _yield}))


async def _yield(seconds: float) -> None:
    await asyncio.sleep(0)


def test_exact_cost_of_a_job_estimate_equals_the_emulators_bill(
    frozen: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, task_log: list[dict[str, Any]]
) -> None:
    tick_per_poll(frozen, monkeypatch)
    op = CreateTrainingJobOperator(
        task_id="train", training_project_id="proj1234", image=IMAGE, compute=H100, deferrable=False, poke_interval=60
    )
    result, xcoms = run_inline(op)
    assert isinstance(result, str)
    guess = cost.training_job_estimate(make_hook(frozen), make_hook(frozen).get_training_job("proj1234", result), 2)
    assert (guess.minutes, round(guess.usd, 10)) == (20.0, 2.1666)
    assert xcoms["baseten_cost"] == {
        "usd": 2.1666,
        "estimated": False,
        "minutes": 20.0,
        "instance_type": "H100x26x234",
        "source": "billed",
    }
    lines = [e["event"] for e in task_log if str(e.get("event", "")).startswith("Cost of")]
    assert lines == [
        f"Cost of training job {result}: $2.1666 (billed: 20.00 instance-minutes of H100x26x234); estimate $2.1666"
    ]
    facet = _lineage.training_lineage("proj1234", result, op._cost).run_facets["baseten_cost"]
    assert (facet.usd, facet.source, facet.instance_type) == (2.1666, "billed", "H100x26x234")


def test_no_billing_access_degrades_to_the_estimate_with_one_warning(
    frozen: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, task_log: list[dict[str, Any]]
) -> None:
    tick_per_poll(frozen, monkeypatch)
    frozen.set_faults([FaultRule("403", endpoints=["get_usage_summary"])])
    op = CreateTrainingJobOperator(
        task_id="train", training_project_id="proj1234", image=IMAGE, compute=H100, deferrable=False, poke_interval=60
    )
    result, xcoms = run_inline(op)
    assert isinstance(result, str)
    assert frozen.counters()["faults"]["403"] == 1  # the server refused the one usage-summary request
    assert xcoms["baseten_cost"]["source"] == "estimate" and xcoms["baseten_cost"]["estimated"] is True
    assert round(xcoms["baseten_cost"]["usd"], 10) == 2.1666
    warnings = [str(e["event"]) for e in task_log if e.get("log_level") == "warning"]
    # (Airflow's own warning: the minimal test context has no task state store.)
    assert [w for w in warnings if "task_state_store" not in w] == [
        "No billing access with this API key (403 on the usage summary): the cost is an estimate."
    ]


# -- budget guards -----------------------------------------------------------------------------------------
def stops(emu: BasetenEmulator) -> int:
    return emu.counters()["requests"].get("stop_training_job", 0)


@pytest.mark.parametrize(
    ("caps", "fires_at", "spent", "unit"),
    [
        ({"max_cost_usd": 1.0}, 4, 4 * 2 * H100_PRICE, "usd"),  # 5 min would be $1.0833
        ({"max_gpu_minutes": 7}, 3, 6.0, "gpu_minutes"),  # 2 nodes x 1 GPU: 4 min would be 8
    ],
    ids=["usd", "gpu-minutes"],
)
@pytest.mark.parametrize("deferrable", [False, True], ids=["inline", "deferred"])
def test_the_guard_stops_the_job_at_its_cap(
    frozen: BasetenEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caps: dict[str, float],
    fires_at: int,
    spent: float,
    unit: str,
    deferrable: bool,
) -> None:
    frozen.state.config.durations.training_running = 3600  # a long job
    tick_per_poll(frozen, monkeypatch)
    op = CreateTrainingJobOperator(
        task_id="train", training_project_id="proj1234", image=IMAGE, compute=H100, poke_interval=60, **caps
    )
    err, kwargs = budget_failure(op, deferrable)
    if deferrable:
        assert kwargs["budget"] == {**{"max_cost_usd": None, "max_gpu_minutes": None}, **caps, "count": 2}
    created = frozen.state.jobs[next(iter(frozen.state.jobs))]
    minutes = (frozen.state.clock.now() - created.created) / 60
    assert minutes == fires_at  # polled at minutes 1, 2, ...: the guard fired before the next would pass the cap
    assert (err.value.unit, err.value.cap, err.value.stopped) == (unit, float(next(iter(caps.values()))), True)
    assert err.value.spent == pytest.approx(spent) and err.value.spent <= err.value.cap
    assert isinstance(err.value, AirflowFailException)  # Airflow does not retry it
    assert f"spent {'$' if unit == 'usd' else ''}" in str(err.value) and "stopped the job" in str(err.value)
    assert stops(frozen) == 1 and frozen.counters()["cancellations"]["training_job"] == 1
    job_now = make_hook(frozen).get_training_job("proj1234", created.id)
    assert job_now.current_status == "TRAINING_JOB_STOPPED"


@pytest.mark.parametrize("deferrable", [False, True], ids=["inline", "deferred"])
def test_a_dollar_cap_that_cannot_be_priced_fails_closed(
    frozen: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, deferrable: bool
) -> None:
    """Baseten lists no price for the job's instance type: the USD cap cannot be enforced, so the job is stopped
    and the task fails without retrying (before: a retryable error, and the job ran on with no cap)."""
    from airflow_provider_baseten.emulator.handlers import billing

    unpriced = tuple((t, p) for t, p in billing.INSTANCE_TYPES if t["id"] != "H100x26x234")
    monkeypatch.setattr(billing, "INSTANCE_TYPES", unpriced)  # the emulator's price list, not the client
    frozen.state.config.durations.training_running = 3600
    tick_per_poll(frozen, monkeypatch)
    op = CreateTrainingJobOperator(
        task_id="train", training_project_id="proj1234", image=IMAGE, compute=H100, poke_interval=60, max_cost_usd=5
    )
    err, _ = budget_failure(op, deferrable)
    assert isinstance(err.value, AirflowFailException) and err.value.stopped is True
    assert math.isnan(err.value.spent) and err.value.cap == 5.0
    assert "cannot be enforced" in str(err.value) and "H100x26x234" in str(err.value)
    assert stops(frozen) == 1
    created = next(iter(frozen.state.jobs))
    assert make_hook(frozen).get_training_job("proj1234", created).current_status == "TRAINING_JOB_STOPPED"


@pytest.mark.parametrize(("fault", "closed"), [("400", True), ("503", False)], ids=["refused", "blip"])
def test_a_price_list_that_refuses_fails_closed_and_a_blip_does_not(
    frozen: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, fault: str, closed: bool
) -> None:
    """A price list that answers 400 will answer 400 to a retry too: the cap cannot be enforced, the job is
    stopped. A 5xx (after the transport's retries) is an error of this wait: the task's retry asks again, and the
    job is left running for it."""
    frozen.state.config.durations.training_running = 3600
    tick_per_poll(frozen, monkeypatch)
    frozen.set_faults([FaultRule(fault, endpoints=["list_instance_type_prices"])])
    op = CreateTrainingJobOperator(
        task_id="train", training_project_id="proj1234", image=IMAGE, compute=H100, poke_interval=60,
        max_cost_usd=5, hook_params={"retry": {"max_attempts": 1}},
    )  # fmt: skip
    result, _ = run_inline(op)
    if closed:
        assert isinstance(result, BasetenBudgetExceeded) and "price list cannot be read" in str(result), result
        assert math.isnan(result.spent) and stops(frozen) == 1
    else:
        assert isinstance(result, BasetenError) and not isinstance(result, BasetenBudgetExceeded), result
        assert stops(frozen) == 0


def test_a_job_the_task_did_not_start_is_never_stopped(
    frozen: BasetenEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen.state.config.durations.training_running = 3600
    tick_per_poll(frozen, monkeypatch)
    job = make_hook(frozen).create_training_job("proj1234", {"image": IMAGE, "compute": H100})
    trigger = TrainingJobTrigger(
        conn_id="baseten_default",
        training_project_id="proj1234",
        training_job_id=job.id,
        poll_interval=60,
        budget={"max_cost_usd": 1.0, "count": 2},
        owns_job=False,
        cancel_on_timeout=True,
    )
    event = asyncio.run(trigger.wait())
    assert event["status"] == "failed" and event["budget"]["stopped"] is False
    assert "did NOT stop the job" in event["message"]
    with pytest.raises(BasetenBudgetExceeded, match="did NOT stop"):
        raise_for_event(event)
    assert stops(frozen) == 0
    assert make_hook(frozen).get_training_job("proj1234", job.id).current_status == "TRAINING_JOB_RUNNING"


@pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan")])
@pytest.mark.parametrize("cap", ["max_cost_usd", "max_gpu_minutes"])
def test_caps_are_checked_when_the_dag_is_parsed(cap: str, bad: Any) -> None:
    with pytest.raises(BasetenValidationError, match="node_count must be a positive integer"):
        RecreateTrainingJobOperator(task_id="t", training_project_id="p", training_job_id="j", node_count=0)
    with pytest.raises(BasetenValidationError, match=f"{cap} must be a positive number"):
        CreateTrainingJobOperator(task_id="t", training_project_id="p", image=IMAGE, **{cap: bad})
    with pytest.raises(BasetenValidationError, match=f"{cap} must be a positive number"):
        RecreateTrainingJobOperator(task_id="t", training_project_id="p", training_job_id="j", **{cap: bad})


# -- a batch holding replicas with scale_for_batch -----------------------------------------------------------
def test_the_guard_stops_a_scale_for_batch_batch_keeps_its_output_and_gives_the_lease_back(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from airflow_provider_baseten.operators import _scale
    from airflow_provider_baseten.operators.inference import PredictOperator
    from tests.integration.test_scale_for_batch import FileStore, settings

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(_scale, "VariableStore", lambda: FileStore(tmp_path / "vars.json"))
    minutes = iter(range(1000))
    monkeypatch.setattr(cost, "_now", lambda: 60.0 * next(minutes))  # each reading of the clock: one minute on
    out = tmp_path / "out.jsonl"
    op = PredictOperator(
        task_id="p",
        model_inputs=[{"i": i} for i in range(10)],
        max_concurrency=1,
        output_path=str(out),
        scale_for_batch=2,
        max_cost_usd=0.2,
    )
    ctx = context()
    ctx["ti"].dag_id, ctx["ti"].run_id = "d", "r"
    with pytest.raises(BasetenBudgetExceeded, match="stopped sending, kept what succeeded") as err:
        op.execute(ctx)
    # 2 replicas x $0.02012 a minute: checks at minutes 1-3 pass, at 4 the next would be $0.2012 > $0.20.
    assert emulator.counters()["requests"]["production_predict"] == 3
    assert len(out.read_text().splitlines()) == 3  # what succeeded is kept
    assert (err.value.cap, err.value.unit) == (0.2, "usd") and err.value.spent == pytest.approx(4 * 2 * 0.02012)
    assert settings(make_hook(emulator)) == (0, 1)  # the lease was given back
    assert ctx["ti"].xcoms["baseten_cost"]["source"] == "estimate"
    assert ctx["ti"].xcoms["baseten_cost"]["minutes"] == 10.0  # 2 replicas x 5 minutes (the report reads the clock)


def test_max_cost_usd_on_a_batch_needs_scale_for_batch() -> None:
    from airflow_provider_baseten.operators.inference import PredictOperator

    with pytest.raises(BasetenValidationError, match="give scale_for_batch too"):
        PredictOperator(task_id="p", model_inputs=[{}], max_cost_usd=1.0)


def test_the_training_sensor_reports_the_cost_of_the_job_it_waited_for(frozen: BasetenEmulator) -> None:
    from airflow_provider_baseten.sensors.training import TrainingJobSensor

    job = make_hook(frozen).create_training_job("proj1234", {"image": IMAGE, "compute": H100})
    frozen.advance(600)  # COMPLETED after exactly 10 minutes
    sensor = TrainingJobSensor(
        task_id="wait", training_project_id="proj1234", training_job_id=job.id, deferrable=False, poke_interval=1
    )
    ctx = context()
    assert sensor.execute(ctx) == "TRAINING_JOB_COMPLETED"
    # The sensor does not know the node count (1 assumed); the billed figure, here available, is exact.
    assert ctx["ti"].xcoms["baseten_cost"] == {
        "usd": 2.1666,
        "estimated": False,
        "minutes": 20.0,
        "instance_type": "H100x26x234",
        "source": "billed",
    }


def test_a_deploy_wait_costs_the_deployments_replica_minutes(frozen: BasetenEmulator) -> None:
    from airflow_provider_baseten._tasks import deployment_cost
    from tests.integration.test_scale_for_batch import Log

    dep = frozen.create_deployment("echo1234", "v9", status="ACTIVE")["id"]
    frozen.advance(600)
    hook, ctx = make_hook(frozen), context()
    guess = cost.deployment_estimate(hook, hook.get_deployment(dep, model_id="echo1234"))
    assert (guess.minutes, round(guess.usd, 10), guess.instance_type) == (10.0, 0.2012, "A10G (1 GPU, 4 vCPU, 16 GiB)")
    deployment_cost(ctx, hook, Log(), "echo1234", dep)
    assert ctx["ti"].xcoms["baseten_cost"] == {  # the emulator bills one replica of A10Gx4x16
        "usd": 0.2012,
        "estimated": False,
        "minutes": 10.0,
        "instance_type": "A10Gx4x16",
        "source": "billed",
    }


@pytest.mark.airflow_e2e  # a real dag.test() (~7 s): make e2e
def test_a_real_dag_run_fails_at_the_cap_without_retrying(
    frozen: BasetenEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dag.test(): the guard's BasetenBudgetExceeded fails the task for good although retries=2."""
    from airflow.sdk import DAG

    from tests.dag_support import run_dag, task_states

    frozen.state.config.durations.training_running = 3600
    tick_per_poll(frozen, monkeypatch)
    with DAG("t_budget_guard", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        CreateTrainingJobOperator(
            task_id="train",
            training_project_id="proj1234",
            image=IMAGE,
            compute=H100,
            max_cost_usd=1.0,
            poke_interval=60,
            deferrable=False,
            retries=2,
            retry_delay=timedelta(seconds=0),
        )
    run = run_dag(dag)
    assert task_states(run) == {"train": "failed"}  # not up_for_retry
    assert run.get_task_instance("train").try_number == 1
    assert frozen.counters()["submissions"]["training_job"] == 1 and stops(frozen) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_cost_usd": 5.0}, "max_cost_usd"),
        ({"max_gpu_minutes": 60}, "max_gpu_minutes"),
        ({"stop_on": "nan"}, "stop_on"),
    ],
)
def test_guards_without_a_wait_are_refused_at_parse_time(kwargs: dict[str, Any], field: str) -> None:
    """A budget cap or a loss gate acts while the task waits: with wait_for_completion=False nothing would enforce
    it, so it is refused when the DAG is parsed instead of being silently ignored."""
    from airflow_provider_baseten.exceptions import BasetenValidationError
    from airflow_provider_baseten.operators.training import CreateTrainingJobOperator

    with pytest.raises(BasetenValidationError, match="wait_for_completion=False") as info:
        CreateTrainingJobOperator(
            task_id="t", training_project_id="p", image={"base_image": "x"}, wait_for_completion=False, **kwargs
        )
    assert info.value.field == field
