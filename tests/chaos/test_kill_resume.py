"""Case: ``kill -9`` a batch twice, once while it redoes earlier failures. Nothing the output file held is
ever at risk, and each item is paid for at most once more than the requests in flight at a kill.

A batch runs in a subprocess against the emulator; the test counts, at the server, every request that
reached the model and every 200 it answered, per input, per run. "Re-sent after a kill" = items the
server answered 200 in the killed run and received again in the next: results paid for and lost. That
may only be what was in flight, at most ``max_concurrency``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.emulator import app as emulator_app
from airflow_provider_baseten.emulator.server import BasetenEmulator
from tests.chaos._support import ForkedChild, read_jsonl, start_batch_child
from tests.chaos.report import Row

ROOT = Path(__file__).resolve().parents[2]


class _Run:
    """What the emulated model saw in one run, per input ``i``: requests, and the 200s it answered."""

    def __init__(self) -> None:
        self.sent: Counter[int] = Counter()
        self.ok: Counter[int] = Counter()


class _ModelCounter:
    """Counts every request that reaches the emulated model, per run (``new_run`` starts the next)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.run = _Run()
        original = emulator_app._predict

        async def counted(core: Any, target: str, params: Any, model_id: Any, body: Any) -> tuple[int, Any]:
            run = self.run
            i = body.get("i") if isinstance(body, dict) else None
            run.sent[i] += 1
            answer = await original(core, target, params, model_id, body)
            run.ok[i] += 1
            return answer

        monkeypatch.setattr(emulator_app, "_predict", counted)

    def new_run(self) -> _Run:
        self.run = _Run()
        return self.run


def _kill_after(proc: ForkedChild, counter: _Run, answered: int, timeout: float = 60) -> int:
    """SIGKILL ``proc`` once the model has answered ``answered`` requests of this run; return that count."""
    deadline = time.monotonic() + timeout
    while sum(counter.ok.values()) < answered:
        assert proc.poll() is None, f"the batch ended before the kill:\n{proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return sum(counter.ok.values())


def _finish(proc: ForkedChild) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _write(path: Path, n: int, failing: set[int]) -> None:
    path.write_text("".join(json.dumps({"i": i, **({"fail": True} if i in failing else {})}) + "\n" for i in range(n)))


def _lost(killed: _Run, sent_next: Counter[int]) -> int:
    """Items answered 200 in the killed run and sent again in the next: paid for twice."""
    return sum(1 for i in killed.ok if sent_next[i])


def _case(
    emu: BasetenEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    row: Row,
    *,
    n: int,
    every: int,
    concurrency: int,
    kill_first_at: int,
) -> None:
    model = _ModelCounter(monkeypatch)
    src = tmp_path / "inputs.jsonl"
    failing = set(range(0, n, every))
    _write(src, n, failing)
    out = tmp_path / "out.jsonl"
    journal = Path(str(out) + ".journal")
    emu.set_predict_latency(0.004)
    steps: list[str] = []

    # Run 1: killed mid-batch. The output file is never written during a run, so nothing to damage.
    run1 = model.new_run()
    answered = _kill_after(start_batch_child(emu, src, str(out), n, concurrency), run1, kill_first_at)
    assert not out.exists() and journal.exists()
    journalled = sum(1 for line in journal.read_bytes().splitlines()[1:] if b'"output"' in line)
    assert journalled >= answered - len(failing) - concurrency  # everything answered is kept, but what was in flight

    # Run 2: resume to the end. The model's errors are recorded, each tried exactly twice.
    counter = model.new_run()
    summary2 = _finish(start_batch_child(emu, src, str(out), n, concurrency))
    resent1 = _lost(run1, counter.sent)
    lines = read_jsonl(out)
    assert [r["index"] for r in lines] == list(range(n))
    assert {r["index"] for r in lines if "error" in r} == failing
    model_attempts = {counter.sent[i] for i in failing if not run1.sent[i]}
    assert model_attempts == {2}, model_attempts  # a model's error: two attempts, not 18
    steps.append(f"kill 1 after {answered} answers: {journalled} kept in the journal, {resent1} re-sent")
    assert resent1 <= concurrency

    # The user fixes the failing inputs; run 3 redoes them and is killed half way through.
    _write(src, n, set())
    before = out.read_bytes()
    emu.set_predict_latency(0.05)  # slow enough that the kill lands mid-redo
    run3 = model.new_run()
    answered3 = _kill_after(start_batch_child(emu, src, str(out), n, concurrency), run3, len(failing) // 2)
    assert out.read_bytes() == before  # the file is exactly what it was: nothing it held was at risk
    assert set(run3.sent) <= failing  # only the failed items were redone

    # Run 4: resume again, to the end.
    emu.set_predict_latency(0.004)
    counter = model.new_run()
    summary4 = _finish(start_batch_child(emu, src, str(out), n, concurrency))
    resent3 = _lost(run3, counter.sent)
    steps.append(f"kill 2 (redoing {len(failing)} failures) after {answered3} answers: {resent3} re-sent")
    assert resent3 <= concurrency
    assert set(counter.sent) <= failing
    lines = read_jsonl(out)
    assert [r["index"] for r in lines] == list(range(n))
    assert all("output" in r and r["output"]["output"]["i"] == r["index"] for r in lines)
    assert not journal.exists()

    row.tried = (
        f"{n}-item JSONL batch in a subprocess (concurrency {concurrency}), 1 in {every} inputs makes the model "
        f"raise; SIGKILL mid-batch, resume, fix the inputs, SIGKILL while redoing the {len(failing)} failures, resume"
    )
    row.happened = (
        "; ".join(steps)
        + f". Run 2 skipped {summary2['skipped']}, run 4 skipped {summary4['skipped']}; the file was byte-for-byte "
        f"unchanged by kill 2; each model error cost 2 attempts"
    )
    row.lost = f"0 results lost; re-sent {resent1} and {resent3} (limit {concurrency} each)"


def test_kill_resume_twice_fast(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chaos_row: Row
) -> None:
    chaos_row.case = "10.3 kill -9 resume twice (fast)"
    _case(emulator, monkeypatch, tmp_path, chaos_row, n=1200, every=15, concurrency=8, kill_first_at=500)


@pytest.mark.chaos
def test_kill_resume_twice(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chaos_row: Row
) -> None:
    chaos_row.case = "10.3 kill -9 resume twice (4,000)"
    _case(emulator, monkeypatch, tmp_path, chaos_row, n=4000, every=50, concurrency=32, kill_first_at=2000)
