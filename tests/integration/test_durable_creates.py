"""A create whose worker dies after Baseten committed the object never makes a second one (issue 21 §1).

Fast, in-process form of the chaos matrix in ``tests/chaos/test_kill_mid_create.py``: the "kill" is a
``BaseException`` raised right after the real create returned (the server has the object; nothing after the
create runs in that try, as after a SIGKILL). The task state store is the in-memory stand-in for Airflow 3.3's.
Objects are counted on the emulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_baseten.exceptions import BasetenError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.operators._durable import CreateMarker, made_by_earlier_try
from airflow_provider_baseten.operators.deploy import DeployModelOperator, DeployTrainingCheckpointOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator, RecreateTrainingJobOperator
from tests.dag_support import StateStore, context

pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # task_state_store: Airflow 3.3+

PROJECT = "proj1234"
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}
CONFIG = {"model_name": "durable-model", "resources": {"accelerator": "H100:1", "use_gpu": True}}
QUICK = {"poke_interval": 0.02, "timeout": 60, "wait_for_completion": False}


class Killed(BaseException):
    """The worker died: raised after the create acted, so no code of the task runs after it."""


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(0)
    return emulator


def _kill_after(monkeypatch: pytest.MonkeyPatch, method: str, nth: int = 1) -> None:
    """The ``nth`` call of ``BasetenHook.<method>`` acts on the server, then the worker dies."""
    real = getattr(BasetenHook, method)
    calls = [0]

    def dying(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == nth:
            raise Killed(f"SIGKILL after {method} #{nth}")
        return result

    monkeypatch.setattr(BasetenHook, method, dying)


def _deployments(emu: Any) -> int:
    with emu.state.lock:
        return sum(len(m.deployments) for m in emu.state.models.values() if m.name == CONFIG["model_name"])


def _submissions(emu: Any, kind: str) -> int:
    return int(emu.counters()["submissions"].get(kind, 0))


# Each setup returns the task: a factory of the operator, the same on every try.
def _create(emu: Any) -> Callable[[], Any]:
    return lambda: CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, image=IMAGE, **QUICK)


def _recreate(emu: Any) -> Callable[[], Any]:
    source = emu.hook().create_training_job(PROJECT, {"image": IMAGE, "name": "source"})
    return lambda: RecreateTrainingJobOperator(
        task_id="t", training_project_id=PROJECT, training_job_id=source.id, **QUICK
    )


def _deploy(emu: Any) -> Callable[[], Any]:
    return lambda: DeployModelOperator(task_id="t", config=CONFIG, **QUICK)


def _checkpoint(emu: Any) -> Callable[[], Any]:
    job = emu.hook().create_training_job(PROJECT, {"image": IMAGE, "name": "trained"})
    emu.advance(1e6)  # completed, checkpoints synced
    return lambda: DeployTrainingCheckpointOperator(
        task_id="t", training_project_id=PROJECT, training_job_id=job.id, model_name=CONFIG["model_name"], **QUICK
    )


def _async(emu: Any) -> Callable[[], Any]:
    return lambda: AsyncPredictOperator(task_id="t", model_inputs=[{"i": i} for i in range(3)], **QUICK)


# (setup, hook method the worker dies after, at which call, objects the task makes, how to count them)
CASES: dict[str, tuple[Callable[[Any], Any], str, int, int, Callable[[Any], int]]] = {
    "create-training-job": (_create, "create_training_job", 1, 1, lambda e: _submissions(e, "training_job")),
    "recreate-training-job": (_recreate, "recreate_training_job", 1, 1, lambda e: _submissions(e, "training_job") - 1),
    "deploy": (_deploy, "deploy_model", 1, 1, _deployments),
    "deploy-checkpoint": (_checkpoint, "deploy_model", 1, 1, _deployments),
    # 3 inputs, plus the one in flight at the kill: Baseten cannot list async requests, so the retry cannot
    # find it; it sends it again rather than lose it (at most the in-flight submits are sent twice).
    "async-submit": (_async, "async_predict", 2, 3 + 1, lambda e: _submissions(e, "async_predict")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_try_killed_mid_create_then_retried_makes_each_object_once(
    conn: Any, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    setup, method, nth, objects, count = CASES[case]
    factory = setup(conn)
    store = StateStore()
    with monkeypatch.context() as m:
        _kill_after(m, method, nth)
        with pytest.raises(Killed):
            factory().execute(context(task_state_store=store))
    assert count(conn) == nth  # the killed try made its objects: the server has them
    factory().execute(context(task_state_store=store))  # Airflow's retry, with what the killed try left
    assert count(conn) == objects
    assert not any(key.endswith("create_unknown") and value for key, value in store.data.items())


def test_the_marker_is_written_before_the_create_and_cleared_once_the_ids_are_stored(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore()
    seen: list[Any] = []
    real = BasetenHook.create_training_job

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(store.get("baseten_training_create_unknown"))  # what a kill during the create would leave
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BasetenHook, "create_training_job", spy)
    job_id = _create(conn)().execute(context(task_state_store=store))
    assert seen and seen[0]["since"] <= time.time()
    assert store.get("baseten_training_create_unknown") == {}
    assert store.get("baseten_training_job")["training_job_id"] == job_id


def test_without_a_store_nothing_is_marked_and_the_create_runs_as_before(conn: Any) -> None:
    marker = CreateMarker(context(), "k")
    marker.start(["a"])
    marker.clear()
    assert marker.earlier() is None
    _create(conn)().execute(context())
    assert _submissions(conn, "training_job") == 1


def test_two_candidates_are_an_error_not_a_third_object(conn: Any) -> None:
    op = _create(conn)()
    since = time.time()
    for _ in range(2):
        conn.hook().create_training_job(PROJECT, {"image": IMAGE, "name": "same"})
    jobs = conn.hook().list_training_jobs(PROJECT)
    with pytest.raises(BasetenError, match="2 live Training jobs"):
        made_by_earlier_try(
            op, jobs, {"since": since}, name="same", status=lambda j: j.current_status, what="Training job"
        )
    assert made_by_earlier_try(op, jobs, {"since": since}, name="other", status=str, what="x") is None


def test_a_retried_deploy_does_not_reconnect_to_an_inactive_deployment(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§6: the deployment found by the run-unique name was deactivated; the retry must not wait on it."""
    store = StateStore()
    with monkeypatch.context() as m:
        _kill_after(m, "deploy_model")
        with pytest.raises(Killed):
            _deploy(conn)().execute(context(task_state_store=store))
    conn.set_time_scale(1000)
    hook = conn.hook()
    (model,) = [x for x in hook.list_models() if x.name == CONFIG["model_name"]]
    (first,) = hook.list_deployments(model.id)
    deadline = time.monotonic() + 30
    while hook.get_deployment(first.id, model_id=model.id).status != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hook.deactivate_deployment(first.id, model_id=model.id)
    assert hook.get_deployment(first.id, model_id=model.id).status == "INACTIVE"
    dep_id = _deploy(conn)().execute(context(task_state_store=store))
    assert dep_id != first.id
    assert _deployments(conn) == 2


def test_reconnect_status_checks_take_turns_from_the_status_budget(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """§6: a retry's reconnect checks (one GET per earlier request) stay under ``[baseten] status_budget_rps``."""
    monkeypatch.setenv("AIRFLOW__BASETEN__STATUS_BUDGET_RPS", "10")
    conn.set_time_scale(1)
    store = StateStore()
    inputs = [{"b": i} for i in range(8)]
    AsyncPredictOperator(task_id="b", model_inputs=inputs, **QUICK).execute(context(task_state_store=store))
    store.data.pop("baseten_async_request_ids", None)  # the mixin's ids gone: the retry re-checks every input
    start = len(conn.requests())
    AsyncPredictOperator(task_id="b", model_inputs=inputs, **QUICK).execute(context(task_state_store=store))
    gets = [r for r in conn.requests()[start:] if r["endpoint"] == "get_async_request"]
    assert len(gets) == 8 and _submissions(conn, "async_predict") == 8
    from datetime import datetime

    times = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in gets]
    assert times[-1] - times[0] >= 7 * 0.1 * 0.9  # 8 turns, 0.1 s apart (the emulator's clock runs at 1x)
