"""The deadline bounds every check, not only the pauses between them (issue 21 §2).

A check still running at the deadline (a slow answer, a retry sequence, thousands of ids to read at 20/s) is
cut there: the ``timeout`` event and the undo before it (``cancel_on_timeout``) come at the deadline, long
before Airflow's deferral timeout (``defer_backstop``), which would fail the task without either. Cancels are
counted on the emulator. The real-Airflow version is tests/e2e/test_deadlines.py (chaos).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from airflow_provider_baseten.client.transport import RetryPolicy, until
from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenError, BasetenTimeoutError
from airflow_provider_baseten.operators._base import defer_backstop
from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger

MARGIN = 1.5  # seconds past the deadline the event may come (the undo of a few cancels included). The
# regressions guarded against were seconds late (8.6 s; a 3 s slow read): 1.5 s of slack for a loaded machine.
GUARD = 20.0  # the test's own bound: today's trigger would take minutes


@pytest.fixture
def frozen(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> BasetenEmulator:
    emulator.set_time_scale(0)  # every request stays QUEUED
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return emulator


def cancels(emu: BasetenEmulator) -> int:
    return emu.counters()["cancellations"].get("async_request", 0)


def queued(emu: BasetenEmulator, n: int) -> list[str]:
    """``n`` QUEUED async requests: a few sent over HTTP, the rest copies placed in the emulator's state."""
    hook = emu.hook()
    first = [hook.async_predict({"i": i}).request_id for i in range(min(n, 3))]
    model = emu.state.async_requests[first[0]]
    copies = {f"{i:032x}": dataclasses.replace(model, request_id=f"{i:032x}") for i in range(n - len(first))}
    emu.state.async_requests.update(copies)
    return [*first, *copies]


def wait_timed(ids: list[str], own: list[str], **kwargs: Any) -> tuple[dict[str, Any], float]:
    """Wait on ``ids`` (``own``: this task's) with a deadline 1 s away and ``cancel_on_timeout``; return the
    event and the seconds from the deadline to the event, checked to be before Airflow's deferral timeout."""
    end_time = time.time() + 1.0
    trigger = AsyncPredictTrigger(
        conn_id="baseten_default",
        request_ids=ids,
        submitted_ids=own,
        poll_interval=0.2,
        end_time=end_time,
        cancel_on_timeout=True,
        **kwargs,
    )
    event = asyncio.run(asyncio.wait_for(trigger.wait(), GUARD))
    late = time.time() - end_time
    backstop = defer_backstop(end_time)
    assert backstop is not None and late < backstop.total_seconds() - (end_time - time.time())
    return dict(event), late


def test_a_check_slow_at_the_deadline_is_cut_there(frozen: BasetenEmulator) -> None:
    """The third status read hangs 3 s: the timeout event and the cancels still come at the 1 s deadline.

    Before: the event came after the slow reads, 8.6 s past the deadline.
    """
    ids = queued(frozen, 3)
    frozen.set_faults([FaultRule("slow", delay=3.0, endpoints=["get_async_request"], skip=6)])
    event, late = wait_timed(ids, ids, max_status_rps=1000)
    assert event["status"] == "timeout" and event["undone"] is True, event
    assert frozen.counters()["faults"].get("slow", 0) >= 1  # the slow read did happen
    assert 0 <= late < MARGIN, late
    assert cancels(frozen) == 3  # counted on the server: the task's own requests, cancelled
    assert set(event["states"].values()) == {"CANCELED"}  # what is left to clean up: nothing


def test_five_thousand_ids_time_out_at_the_deadline(frozen: BasetenEmulator) -> None:
    """5,000 ids read at Baseten's 20 status reads/s take 250 s a round: the deadline cuts the round.

    Before: the event came after the whole round (minutes; here the test's 20 s guard fired first).
    """
    ids = queued(frozen, 5000)
    own = ids[:5]  # this task submitted these; the others belong to someone else and are never cancelled
    event, late = wait_timed(ids, own)
    assert event["status"] == "timeout" and event["undone"] is True, event
    assert 0 <= late < MARGIN, late
    assert cancels(frozen) == 5
    assert frozen.counters()["requests"]["get_async_request"] < 100  # the round was cut, not finished
    assert [event["states"][r] for r in own] == ["CANCELED"] * 5


def read_until(hook: Any, rid: str, seconds: float, error: type[Exception]) -> float:
    """Read ``rid``'s status under ``until(now + seconds)``; expect ``error``; return the seconds it took."""

    took: list[float] = []

    async def read() -> None:
        await hook.aget_transport()  # the connection and SSL context first: the deadline is the request's
        t0 = time.monotonic()
        try:
            with until(time.time() + seconds):
                await hook.aget_async_request(rid)
        finally:
            took.append(time.monotonic() - t0)

    with pytest.raises(error):
        asyncio.run(asyncio.wait_for(read(), GUARD))
    return took[0]


def test_a_request_may_take_only_the_time_left(frozen: BasetenEmulator) -> None:
    """Under ``until``, a slow answer times out at the deadline and no retry starts past it."""
    (rid,) = queued(frozen, 1)
    frozen.set_faults([FaultRule("slow", delay=3.0, endpoints=["get_async_request"])])
    assert read_until(frozen.hook(), rid, 0.5, BasetenTimeoutError) < 0.5 + MARGIN

    # A 503 storm with retries that would back off for seconds: the sequence stops before the deadline.
    frozen.set_faults([FaultRule("503", endpoints=["get_async_request"])])
    slow_retries = RetryPolicy(max_attempts=6, backoff_base=2.0, max_backoff=2.0, total_timeout=60)
    assert read_until(frozen.hook(retry=slow_retries), rid, 0.5, BasetenError) < 0.5 + MARGIN

    # A retry whose wait would end past the deadline is not started at all: a 429 asking for 2 s (Retry-After,
    # not jittered backoff, whose uniform(0, 2 s) waits could fit several tries into 0.5 s by luck) is the last
    # request the server sees.
    frozen.set_faults([FaultRule("429", endpoints=["get_async_request"], retry_after=2)])
    before = frozen.counters()["faults"].get("429", 0)
    assert read_until(frozen.hook(retry=slow_retries), rid, 0.5, BasetenError) < 0.5 + MARGIN
    assert frozen.counters()["faults"].get("429", 0) - before == 1  # counted on the server
