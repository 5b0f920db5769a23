"""Case: ``kill -9`` an ``embed_batch`` (texts packed several per request) mid-run, then resume.

The batch runs in a subprocess against the emulator; the test counts, at the server, every text the
embedder received and answered, per run. A text answered in the killed run and sent again after it was paid
for and lost: that may only be what was in flight at the kill (``max_concurrency`` requests of
``batch_size`` texts). The resumed file holds one line per text, in input order, each the text's own vector.
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

from airflow_provider_baseten.emulator.handlers import openai as emu_openai
from airflow_provider_baseten.emulator.server import BasetenEmulator
from tests.chaos._support import read_jsonl, start_batch_child

ROOT = Path(__file__).resolve().parents[2]


class _Texts:
    """Texts the emulated embedder received (``sent``) and answered (``ok``) in the current run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: Counter[str] = Counter()
        self.ok: Counter[str] = Counter()
        original = emu_openai.embeddings

        def counted(body: Any, model: str) -> dict[str, Any]:
            texts = list(body.get("input") or []) if isinstance(body, dict) else []
            self.sent.update(texts)
            out = original(body, model)
            self.ok.update(texts)
            return out

        monkeypatch.setattr(emu_openai, "embeddings", counted)

    def new_run(self) -> tuple[Counter[str], Counter[str]]:
        self.sent, self.ok = Counter(), Counter()
        return self.sent, self.ok


def test_kill_9_mid_embed_batch_then_resume(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    n, concurrency, batch = 3000, 4, 8
    texts = [f"passage {i}" for i in range(n)]
    src = tmp_path / "texts.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in texts))
    out = tmp_path / "vectors.jsonl"
    counter = _Texts(monkeypatch)
    emulator.set_predict_latency(0.01)

    # Run 1: SIGKILL once the embedder has answered 1,000 texts (an event at the server, not a sleep).
    _, ok1 = counter.new_run()
    proc = start_batch_child(emulator, src, str(out), n, concurrency, kind="embed", batch_size=batch)
    deadline = time.monotonic() + 120
    while sum(ok1.values()) < 1000:
        assert proc.poll() is None, f"the batch ended before the kill:\n{proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    answered = set(ok1)
    assert not out.exists()  # nothing writes the file during a run: nothing to damage

    # Run 2: resume to the end.
    emulator.set_predict_latency(0.0)
    sent2, _ = counter.new_run()
    proc = start_batch_child(emulator, src, str(out), n, concurrency, kind="embed", batch_size=batch)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])

    resent = sum(1 for t in answered if sent2[t])  # paid for in run 1, sent again in run 2
    assert resent <= concurrency * batch, resent
    # Every text, none twice in run 2. The counter counts a text when the embedder answers it, so a request the
    # killed child had in flight may still be answered after run 2's count began: such texts (at most the
    # in-flight requests' worth, none that run 1 had answered) show twice, once from the dead child, once resent.
    twice = [t for t, count in sent2.items() if count > 1]
    assert len(twice) <= concurrency * batch and not set(twice) & answered, twice
    assert max(sent2.values()) <= 2 and set(sent2) | answered == set(texts)
    assert summary["skipped"] >= len(answered) - concurrency * batch
    lines = read_jsonl(out)
    assert [rec["index"] for rec in lines] == list(range(n))
    assert [rec["output"] for rec in lines] == [emu_openai.embed(t) for t in texts]
    assert summary["usage"]["prompt_tokens"] == 2 * (
        sum(sent2.values()) - len(twice)
    )  # the dead child's are not run 2's
