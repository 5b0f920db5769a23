"""Case 1: faults during a batch. Every output must be present once, in input order; nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_baseten.client.transport import RetryPolicy
from airflow_provider_baseten.emulator.server import BasetenEmulator
from tests.chaos._support import FAST_POLICY, batch_faults, check_ordered_once, hook_for, read_jsonl, timed
from tests.chaos.report import Row


def _run(
    emu: BasetenEmulator, tmp_path: Path, n: int, retry_after: float, policy: RetryPolicy | None, row: Row
) -> None:
    inputs = [{"i": i} for i in range(n)]

    # Fault-free reference run.
    emu.clear_faults()
    clean = hook_for(emu, policy)
    base, base_elapsed = timed(clean.predict_batch, inputs, max_concurrency=32, output_path=tmp_path / "clean.jsonl")
    assert base.succeeded == n

    emu.reset()
    emu.set_faults(batch_faults(retry_after), seed=7)
    hook = hook_for(emu, policy)
    out = tmp_path / "faulty.jsonl"
    result, elapsed = timed(hook.predict_batch, inputs, max_concurrency=32, output_path=out)
    counters = emu.counters()
    lines = read_jsonl(out)
    missing, duplicated, wrong = check_ordered_once(lines, n)
    injected = sum(counters["faults"].values())
    retries = dict(sorted(result.retries.items()))

    row.tried = (
        f"{n} sync predictions, 32 workers, output_path; seeded faults: 10% 429 (Retry-After {retry_after:g}s), "
        f"5% 503, 2% 502, 1% dropped, 1% truncated JSON"
        + ("" if policy is None else f"; retry waits scaled down (max_attempts={policy.max_attempts})")
    )
    row.happened = (
        f"{result.succeeded}/{n} succeeded, {injected} faults injected {dict(counters['faults'])}; "
        f"retries by class {retries}; {elapsed:.1f}s vs {base_elapsed:.1f}s fault-free "
        f"(x{elapsed / max(base_elapsed, 1e-9):.2f})"
    )
    row.lost = f"{missing} missing, {duplicated} duplicated, {wrong} out of order"
    row.metrics.update(elapsed=elapsed, base_elapsed=base_elapsed, retries=retries, faults=counters["faults"])

    assert result.succeeded == n and result.failed == 0
    assert (missing, duplicated, wrong) == (0, 0, 0)
    assert len(lines) == n
    # Every injected fault was retried exactly once (a fault is one failed attempt), by its class.
    assert sum(retries.values()) == injected
    assert retries.get("429", 0) == counters["faults"].get("429", 0)
    assert retries.get("503", 0) == counters["faults"].get("503", 0)
    assert retries.get("502", 0) == counters["faults"].get("502", 0)
    assert retries.get("connection", 0) == counters["faults"].get("drop", 0)
    assert retries.get("bad_response", 0) == counters["faults"].get("truncate", 0)
    # The server answered each item's successful attempt once; truncated answers were whole on the server.
    assert counters["requests"]["production_predict"] == n + injected


def test_batch_faults_fast(emulator: BasetenEmulator, tmp_path: Path, chaos_row: Row) -> None:
    chaos_row.case = "1 batch faults (fast)"
    _run(emulator, tmp_path, 300, 0, FAST_POLICY, chaos_row)


@pytest.mark.chaos
def test_batch_faults_5000(emulator: BasetenEmulator, tmp_path: Path, chaos_row: Row) -> None:
    chaos_row.case = "1 batch faults (5,000)"
    _run(emulator, tmp_path, 5000, 1, None, chaos_row)
