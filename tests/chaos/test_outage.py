"""Case 2: a sustained outage (100% 503). The task fails within its retry bounds saying Baseten is
unavailable, keeps what it finished on disk, and a rerun with ``resume=True`` skips the finished items."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from airflow_provider_baseten.client.transport import RetryPolicy
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenServerError
from airflow_provider_baseten.operators.inference import PredictOperator
from tests.chaos._support import Outage, check_ordered_once, context, hook_for, read_jsonl
from tests.chaos.report import Row


def _operator(emu: BasetenEmulator, src: Path, out: Path, policy: RetryPolicy | None) -> PredictOperator:
    op = PredictOperator(
        task_id="batch",
        model_inputs=str(src),
        output_path=str(out),
        resume=True,
        max_concurrency=32,
        progress_interval=60,
    )
    op.__dict__["hook"] = hook_for(emu, policy)  # the connection's hook, with this case's retry policy
    return op


def _bound(policy: RetryPolicy, max_concurrency: int = 32) -> float:
    """The longest the batch may take to give up in an outage: the circuit breaker trips after
    ``max(50, 4 * concurrency)`` failed retry sequences, each at most the policy's backoff caps."""
    per_sequence = sum(min(policy.max_backoff, policy.backoff_base * 2**i) for i in range(policy.max_attempts - 1))
    per_sequence = min(per_sequence, policy.total_timeout)
    rounds = max(50, 4 * max_concurrency) / max_concurrency
    return (rounds + 1) * per_sequence + 10.0  # + one sequence in flight per worker, + request time


def _case(
    emu: BasetenEmulator, tmp_path: Path, row: Row, n: int, after: int, seconds: float, policy: RetryPolicy | None
) -> None:
    src = tmp_path / "inputs.jsonl"
    src.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(n)))
    out = tmp_path / "out.jsonl"
    effective = policy or RetryPolicy()
    bound = _bound(effective)
    tries: list[str] = []
    with Outage(emu, after=after, seconds=seconds) as outage:
        # Try 1: the outage starts mid-batch.
        t0 = time.monotonic()
        with pytest.raises(BasetenServerError) as info:
            _operator(emu, src, out, policy).execute(context())
        took = time.monotonic() - t0
        message = str(info.value)
        kept = [r for r in read_jsonl(out) if "output" in r]
        tries.append(f"try 1 failed in {took:.1f}s with {len(kept)} kept")
        assert took < bound, f"took {took:.1f}s, bound {bound:.1f}s"
        assert "unavailable" in message and "resume=True" in message and str(out) in message
        assert len(kept) >= after - 32  # everything that succeeded before the outage is on disk
        assert all(r["output"]["output"]["i"] == r["index"] for r in kept)
        first_message = message

        # Retries during the outage fail the same bounded way and never resend a finished item.
        while not outage.over and outage.real_seconds_left() > bound and len(tries) < 4:
            before = emu.counters()["requests"]["production_predict"]
            t0 = time.monotonic()
            with pytest.raises(BasetenServerError):
                _operator(emu, src, out, policy).execute(context())
            took = time.monotonic() - t0
            assert took < bound
            sent = emu.counters()["requests"]["production_predict"] - before
            assert sent <= (n - len(kept)) * 3 * effective.max_attempts
            still = [r for r in read_jsonl(out) if "output" in r]
            assert [r["index"] for r in still] == [r["index"] for r in kept]
            tries.append(f"try {len(tries) + 1} failed in {took:.1f}s, {len(kept)} kept")

        # The outage ends (on the emulator's clock): wait it out, or move the frozen clock past it.
        if emu.core.clock.time_scale == 0:
            emu.advance(seconds)
        else:
            time.sleep(outage.real_seconds_left() + 0.05)
        assert outage.over

        before = emu.counters()["requests"]["production_predict"]
        result = _operator(emu, src, out, policy).execute(context())
        sent = emu.counters()["requests"]["production_predict"] - before

    lines = read_jsonl(out)
    missing, duplicated, wrong = check_ordered_once(lines, n)
    tries.append(f"rerun (resume) sent {sent} for {n - len(kept)} left, skipped {result['skipped']}")
    row.tried = (
        f"{n}-line JSONL batch via PredictOperator (output_path, resume=True); 100% 503 from request {after + 1} "
        f"for {seconds:g}s of emulator time; retry policy max_attempts={effective.max_attempts}"
    )
    row.happened = "; ".join(tries) + f". Error: {first_message[:160]}..."
    row.lost = f"{missing} missing, {duplicated} duplicated, {wrong} out of order; {outage.errors} 503s answered"
    assert result["skipped"] == len(kept) and result["succeeded"] == n - len(kept)
    assert sent == n - len(kept)  # the finished items were not sent again (emulator counters)
    assert (missing, duplicated, wrong) == (0, 0, 0)


FAST = RetryPolicy(max_attempts=3, backoff_base=0.005, max_backoff=0.02, max_retry_after=0.05, total_timeout=5)


def test_outage_fast(emulator: BasetenEmulator, tmp_path: Path, chaos_row: Row) -> None:
    chaos_row.case = "2 sustained outage (fast)"
    emulator.set_time_scale(0)  # the outage ends only when the test moves the clock
    _case(emulator, tmp_path, chaos_row, n=600, after=200, seconds=120, policy=FAST)


@pytest.mark.chaos
def test_outage_two_minutes(emulator: BasetenEmulator, tmp_path: Path, chaos_row: Row) -> None:
    chaos_row.case = "2 sustained outage (2 min)"
    emulator.set_time_scale(1)  # real time: 2 minutes of 503
    _case(emulator, tmp_path, chaos_row, n=3000, after=1000, seconds=120, policy=None)
