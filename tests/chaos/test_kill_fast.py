"""Case 3, fast part: a trigger killed the way Airflow 3.3's triggerer kills it. The run is cancelled with the
user-action message, ``on_kill`` is awaited, and the triggerer's next loop cancels the trigger again while
``on_kill`` runs (Airflow then swallows that CancelledError). The undo must still reach Baseten."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_baseten.emulator import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger, BasetenPollTrigger, TrainingJobTrigger

try:
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG as USER_ACTION
except ImportError:  # pragma: no cover - older Airflow: no trigger on_kill at all
    USER_ACTION = "user-action"


async def _run_like_the_triggerer(trigger: BasetenPollTrigger) -> Any:
    """``TriggerRunner.run_trigger`` of Airflow 3.3, reduced to its cancel handling."""
    try:
        async for event in trigger.run():
            return event
    except asyncio.CancelledError as exc:
        if exc.args and exc.args[0] == USER_ACTION:
            with contextlib.suppress(asyncio.CancelledError):  # on_kill itself cancelled: Airflow swallows it
                await asyncio.wait_for(trigger.on_kill(), timeout=30)
        raise


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Yield to the loop until the emulator's counters show ``check``; fail (naming ``what``) at ``timeout``.

    An event to wait for, not a guess at how long something takes: each check reads the emulator's counters.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


def _slow_calls(emu: BasetenEmulator) -> int:
    """Requests the ``slow`` fault has received (counted on arrival, before it delays them)."""
    return emu.counters()["faults"].get("slow", 0)


async def _kill_twice(trigger: BasetenPollTrigger, emu: BasetenEmulator, polling: Callable[[], bool]) -> None:
    """Cancel as the triggerer does, then cancel again while ``on_kill``'s first (slow) call is in flight."""
    task = asyncio.ensure_future(_run_like_the_triggerer(trigger))
    await _until(polling, "the trigger is polling")
    slow_before = _slow_calls(emu)
    task.cancel(USER_ACTION)
    # on_kill's first call has reached the emulator, which holds it for the slow fault's 0.3 s.
    await _until(lambda: _slow_calls(emu) > slow_before, "on_kill's first call reached the emulator")
    task.cancel()  # the triggerer's next loop: the trigger's row is gone, cancel it again
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def frozen(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> BasetenEmulator:
    emulator.set_time_scale(0)  # everything stays QUEUED / RUNNING until the test says otherwise
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return emulator


def test_async_kill_survives_a_second_cancel(frozen: BasetenEmulator) -> None:
    frozen.set_faults([FaultRule("slow", delay=0.3, endpoints=["cancel_async_request"])])
    hook = frozen.hook()
    own = [hook.async_predict({"i": i}).request_id for i in range(3)]
    foreign = hook.async_predict({"i": 99}).request_id
    trigger = AsyncPredictTrigger(
        conn_id="baseten_default",
        request_ids=[*own, foreign],
        submitted_ids=own,
        poll_interval=0.05,
        cancel_on_kill=True,
    )

    async def scenario() -> None:
        await _kill_twice(trigger, frozen, lambda: frozen.counters()["requests"].get("get_async_request", 0) >= 1)
        # The undo runs on the loop after the run task is gone (as on the triggerer's long-lived loop).
        await _until(lambda: frozen.counters()["cancellations"].get("async_request", 0) >= 3, "3 cancellations")

    asyncio.run(scenario())
    now = frozen.core.clock.now()
    states = {rid: frozen.state.async_requests[rid].status(now)[0] for rid in [*own, foreign]}
    assert [states[r] for r in own] == ["CANCELED"] * 3
    assert states[foreign] == "QUEUED"


def test_training_kill_survives_a_second_cancel(frozen: BasetenEmulator) -> None:
    frozen.set_faults([FaultRule("slow", delay=0.3, endpoints=["get_training_job", "stop_training_job"], times=None)])
    hook = frozen.hook()
    project = next(iter(frozen.state.projects))
    job = hook.create_training_job(project, {"image": {"base_image": "x"}}).id
    trigger = TrainingJobTrigger(
        conn_id="baseten_default",
        training_project_id=project,
        training_job_id=job,
        poll_interval=0.05,
        cancel_on_kill=True,
    )

    async def scenario() -> None:
        await _kill_twice(trigger, frozen, lambda: _slow_calls(frozen) >= 1)  # every poll is slow here
        await _until(lambda: frozen.counters()["cancellations"].get("training_job", 0) >= 1, "the job is stopped")

    asyncio.run(scenario())
    assert frozen.state.jobs[job].status(frozen.core.clock.now())[0] == "TRAINING_JOB_STOPPED"
