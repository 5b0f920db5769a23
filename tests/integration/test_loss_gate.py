"""The training-quality gate on the emulator's frozen clock: each ``stop_on`` rule stops its scripted loss
timeline at the right step (one stop, counted on the server; the job STOPPED), and never a converging one.

The emulator writes step ``i`` of a scripted job at ``run_start + 0.05 * i`` emulated seconds (100 steps over
its 5 s RUNNING phase). The test moves the clock one step at a time and polls the trigger once per step, so
the poll at which the rule fires is the step at which the data broke it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_baseten.emulator import loss_script
from airflow_provider_baseten.loss import LossWatch, StopOnDivergence, StopOnNonFinite, StopOnPlateau, StopRule
from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

PROJECT = "proj1234"
IMAGE = {"base_image": "python:3.11"}
RUN_START = 4.0  # pending 1 + created 1 + deploying 2 (the emulator's default durations)
STEP = 0.05  # training_running 5.0 / 100 steps
ALL_RULES: list[StopRule] = [StopOnNonFinite(), StopOnDivergence(2.0, 3), StopOnPlateau(0.01, 10)]


def start_job(emulator: Any, script: str, fmt: str) -> str:
    env = {"EMULATOR_LOSS": script, "EMULATOR_LOSS_FORMAT": fmt}
    job = emulator.hook().create_training_job(PROJECT, {"image": IMAGE, "runtime": {"environment_variables": env}})
    return str(job.id)


def gate(jid: str, rules: list[StopRule], *, owns_job: bool = True) -> TrainingJobTrigger:
    spec = LossWatch(PROJECT, jid, rules).spec()
    trigger = TrainingJobTrigger(
        conn_id="baseten_default", training_project_id=PROJECT, training_job_id=jid, loss_gate=spec, owns_job=owns_job
    )
    # As the triggerer does: built again from its serialized kwargs.
    return TrainingJobTrigger(**trigger.serialize()[1])


def step_through(
    emulator: Any, trigger: TrainingJobTrigger, first: int = 1, stride: int = 1
) -> tuple[int, dict[str, Any]]:
    """Move the frozen clock until step ``first`` is written and poll the trigger, then ``stride`` steps at a
    time, one poll each; return (the step written at the poll that gave the event, the event)."""

    async def run() -> tuple[int, dict[str, Any]]:
        hook = emulator.hook()
        try:
            emulator.advance(RUN_START + 0.001 + (first - 1) * STEP)  # steps 1 .. first - 1 written
            for step in range(first, loss_script.STEPS + 2 * stride, stride):
                emulator.advance(STEP * (stride if step > first else 1))
                found = await trigger.check(hook)
                if found is not None:
                    return min(step, loss_script.STEPS), dict(found)
            raise AssertionError("no event")
        finally:
            await hook.aclose()

    return asyncio.run(run())


def stops(emulator: Any) -> int:
    return int(emulator.counters()["cancellations"].get("training_job", 0))


@pytest.mark.parametrize(
    ("script", "fmt", "rules", "fires_at", "says"),
    [
        ("nan@37", "hf", [StopOnNonFinite()], 37, "loss is nan at step 37 (stop_on=StopOnNonFinite())"),
        ("nan@37", "kv", ALL_RULES, 37, "loss is nan at step 37"),
        ("diverging@50", "json", [StopOnDivergence(2.0, 3)], 54, "loss diverged at step 54"),
        ("diverging@50", "hf", ALL_RULES, 54, "loss diverged at step 54"),
        ("plateau@30", "kv", [StopOnPlateau(0.01, 10)], 40, "loss plateaued at step 40"),
        ("plateau@30", "json", ALL_RULES, 40, "loss plateaued at step 40"),
    ],
)
def test_each_rule_stops_its_timeline_at_the_right_step(
    emulator: Any, script: str, fmt: str, rules: list[StopRule], fires_at: int, says: str
) -> None:
    emulator.set_time_scale(0)
    jid = start_job(emulator, script, fmt)
    step, event = step_through(emulator, gate(jid, rules), first=fires_at - 3)
    assert step == fires_at
    assert event["status"] == "failed" and event["stopped"] is True
    assert event["termination_reason"].startswith(says), event["termination_reason"]
    assert event["job_status"] == "TRAINING_JOB_STOPPED"
    # Counted on the server: one stop, the job STOPPED, and it wrote no step after the one that broke the rule.
    assert stops(emulator) == 1
    hook = emulator.hook()
    assert hook.get_training_job(PROJECT, jid).current_status == "TRAINING_JOB_STOPPED"
    emulator.advance(60)
    server_lines = [line.message for line in hook.get_training_job_logs(PROJECT, jid, limit=1000)]
    assert sum("loss" in m for m in server_lines) == fires_at
    # The event is small and JSON: a summary, never the series.
    assert event["loss"]["steps"] == fires_at and event["loss"]["last_step"] == fires_at
    assert len(json.dumps(event, allow_nan=False)) < 2000


@pytest.mark.parametrize("fmt", loss_script.FORMATS)
def test_a_converging_run_is_never_stopped(emulator: Any, fmt: str) -> None:
    emulator.set_time_scale(0)
    jid = start_job(emulator, "converging", fmt)
    step, event = step_through(emulator, gate(jid, ALL_RULES), stride=10)
    assert event["status"] == "success", event
    assert step == loss_script.STEPS  # COMPLETED with its 100th step: the poll still reads that last line
    assert stops(emulator) == 0
    assert event["loss"] == {
        "first": pytest.approx(loss_script.converging(1), abs=1e-6),
        "best": pytest.approx(loss_script.converging(100), abs=1e-6),
        "best_step": 100,
        "last": pytest.approx(loss_script.converging(100), abs=1e-6),
        "last_step": 100,
        "steps": 100,
    }


def test_one_poll_with_many_lines_fires_at_the_step_that_broke_the_rule(emulator: Any) -> None:
    emulator.set_time_scale(0)
    jid = start_job(emulator, "nan@37", "json")
    emulator.advance(RUN_START + 80 * STEP + 0.001)  # 80 steps written before the first poll
    hook = emulator.hook()

    async def once() -> Any:
        try:
            return await gate(jid, [StopOnNonFinite()]).check(hook)
        finally:
            await hook.aclose()

    event = asyncio.run(once())
    assert event["termination_reason"] == "loss is nan at step 37 (stop_on=StopOnNonFinite())"
    assert stops(emulator) == 1


def test_a_job_the_task_did_not_start_is_never_stopped(emulator: Any) -> None:
    emulator.set_time_scale(0)
    jid = start_job(emulator, "nan@5", "kv")
    step, event = step_through(emulator, gate(jid, [StopOnNonFinite()], owns_job=False), first=3)
    assert step == 5 and event["status"] == "failed" and event["stopped"] is False
    assert "not stopped" in event["message"]
    assert stops(emulator) == 0
    assert emulator.hook().get_training_job(PROJECT, jid).current_status == "TRAINING_JOB_RUNNING"


def test_each_poll_reads_only_new_lines(emulator: Any) -> None:
    """Bounded work per poll: the logs are read forward from the newest line already read."""
    emulator.set_time_scale(0)
    jid = start_job(emulator, "converging", "kv")
    trigger = gate(jid, ALL_RULES)
    step_through(emulator, trigger, stride=10)
    assert trigger.loss_gate is not None
    assert len(trigger.loss_gate.follower.seen) <= 2  # only the newest millisecond's keys are kept
    requests = emulator.counters()["requests"]
    # One logs read per poll once RUNNING (steps 1, 11, ... 91, then COMPLETED: 11 polls), new lines only.
    assert requests["get_training_job_logs"] == 11


def test_without_a_gate_no_logs_are_read(emulator: Any) -> None:
    emulator.set_time_scale(0)
    jid = start_job(emulator, "nan@2", "kv")
    trigger = TrainingJobTrigger(conn_id="baseten_default", training_project_id=PROJECT, training_job_id=jid)
    assert "loss_gate" not in trigger.serialize()[1]
    _, event = step_through(emulator, trigger, stride=50)
    assert event["status"] == "success" and "loss" not in event
    assert emulator.counters()["requests"].get("get_training_job_logs", 0) == 0


def test_a_job_found_ended_is_judged_on_every_line_it_logged(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait that first looks after the job ended (a sensor started late, a long pause) reads to the end of the
    log before it says success: MAX_PAGES bounds one poll of a *running* job only. Scaled down: 10-line pages,
    2 pages per poll, 100+ lines, the NaN at step 60."""
    from airflow_provider_baseten.client import logs

    monkeypatch.setattr(LossWatch, "MAX_PAGES", 2)
    real = logs.LogFollower.__init__

    def small_pages(self: Any, start: Any, page_size: int = 1000, log: Any = None) -> None:
        real(self, start, 10, log)

    monkeypatch.setattr(logs.LogFollower, "__init__", small_pages)
    jid = start_job(emulator, "nan@60", "kv")
    emulator.advance(100_000)  # it ran all 100 steps and completed before the wait's first look
    trigger = gate(jid, [StopOnNonFinite()], owns_job=False)

    async def look() -> Any:
        hook = emulator.hook()
        try:
            return await trigger.check(hook)
        finally:
            await hook.aclose()

    event = asyncio.run(look())
    assert event is not None and event["status"] == "failed", event
    assert "loss is nan at step 60" in event["message"] and event["stopped"] is False
