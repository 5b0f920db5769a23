"""Case: two workers (two processes) fill one result cache at the same time; nothing is lost.

Both embed the same 1,200 texts (in opposite orders, so they race on the same entries from both ends) into
one cache folder at once. Afterwards the folder holds exactly one whole, correct entry per text (no temporary
file left, none damaged), and a third run is answered entirely from the cache: the emulator's text counter
does not move.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_baseten.client.cache import MISS, ResultCache, ScopedCache
from airflow_provider_baseten.emulator.handlers.openai import embed
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.hooks._openai import EMBED_TEXT_ROUTE

pytestmark = pytest.mark.chaos  # two fresh interpreters: a few seconds

ROOT = Path(__file__).resolve().parents[2]
N = 1_200


def texts_sent(emu: BasetenEmulator) -> int:
    return emu.counters().get("texts", {}).get("embeddings", 0)


def test_two_workers_fill_one_cache_and_lose_nothing(emulator: BasetenEmulator, tmp_path: Path) -> None:
    texts = [f"shared text {i}" for i in range(N)]
    cache_dir = tmp_path / "cache"
    procs = []
    for n, order in enumerate((texts, texts[::-1])):
        (tmp_path / f"texts{n}.json").write_text(json.dumps(order))
        spec = {
            "api_key": emulator.api_key,
            "url": emulator.url,
            "inference_url": emulator.inference_url,
            "model_id": emulator.model_id,
            "texts": str(tmp_path / f"texts{n}.json"),
            "cache": str(cache_dir),
            "batch_size": 8,
            "ready": str(tmp_path / f"ready{n}"),
            "go": str(tmp_path / "go"),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.chaos._cache_child", json.dumps(spec)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        )
    emulator.set_predict_latency(0.002)  # requests overlap: both workers are writing at the same time
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{n}").exists() for n in range(2)):
        assert all(p.poll() is None for p in procs), "a worker died before starting"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "go").touch()
    summaries = [json.loads(p.communicate(timeout=120)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(s["succeeded"] == N and s["failed"] == 0 for s in summaries)
    both = texts_sent(emulator)
    assert N <= both <= 2 * N  # a text both sent before either stored it was paid twice; none was lost

    files = sorted(cache_dir.glob("??/*.json"))
    assert len(files) == N
    assert not list(cache_dir.glob("??/.tmp-*"))
    scoped = ScopedCache(ResultCache(cache_dir), "deployment:echo1234/dep1prod", EMBED_TEXT_ROUTE)
    for text in texts:
        vector = scoped.cache.get(scoped.key({"input": text}))
        assert vector is not MISS and vector == embed(text)

    third = emulator.hook().embed_batch(texts, batch_size=8, cache=cache_dir)
    assert third.cached == N and texts_sent(emulator) == both  # a third worker sends nothing
