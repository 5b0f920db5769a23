"""The result cache, measured: re-embed a corpus in which a share of the texts changed.

``python benchmarks/cache.py [--texts 100000] [--changed 0.05] [--batch-size 64] [--concurrency 32]``
(``make bench-cache`` runs the defaults). Not part of ``make test``: the full run takes minutes.

The emulator runs in its own process (``python -m airflow_provider_baseten.emulator``) with ``--predict-latency``
per request (default 20 ms, a small embedding model's answer time), and counts on the server every text that
reached its embedder (``/__admin/counters``: ``texts.embeddings``). Three runs of ``hook.embed_batch``:

1. ``full``: every text, no cache (what a run costs today);
2. ``fill``: every text, with an empty cache folder (the first cached run: the full run plus the writes);
3. ``changed``: the corpus with ``--changed`` of its texts edited, with the filled cache.

It prints, per run, the texts the server received, the requests, the wall time and the hit line, and checks
that run 3 sent exactly the changed texts and that every vector it returned is its text's own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

API_KEY = "bench-cache-key"
ROOT = Path(__file__).resolve().parents[1]


def start_emulator(latency: float, env_file: Path) -> tuple[subprocess.Popen[str], dict[str, Any], str]:
    """The emulator in its own process; its connection (with the key) and admin URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_baseten.emulator",
            "--api-key",
            API_KEY,
            "--env-file",
            str(env_file),
            "--predict-latency",
            str(latency),
            "--time-scale",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Baseten emulator listening on http://127.0.0.1:PORT"
    url = line.strip().rsplit(" ", 1)[-1]
    deadline = time.monotonic() + 30
    while not env_file.exists() or not env_file.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError("the emulator wrote no connection")
        time.sleep(0.05)
    first = env_file.read_text().splitlines()[0]  # AIRFLOW_CONN_BASETEN_DEFAULT='{...}'
    conn = json.loads(first.split("=", 1)[1].strip("'"))
    return proc, conn, url


def counters(url: str) -> tuple[int, int]:
    """(texts embedded, embeddings requests) as the server counted them."""
    got = httpx.get(f"{url}/__admin/counters", timeout=10).json()
    return got.get("texts", {}).get("embeddings", 0), got.get("requests", {}).get("environment_sync", 0)


def run(hook: Any, url: str, texts: list[str], args: argparse.Namespace, cache: Any) -> dict[str, Any]:
    before = counters(url)
    started = time.perf_counter()
    result = hook.embed_batch(
        texts,
        environment="production",
        batch_size=args.batch_size,
        max_concurrency=args.concurrency,
        progress_interval=3600,
        **({"cache": cache} if cache is not None else {}),
    )
    elapsed = time.perf_counter() - started
    after = counters(url)
    return {
        "texts_sent": after[0] - before[0],
        "requests": after[1] - before[1],
        "seconds": round(elapsed, 2),
        "succeeded": result.succeeded,
        "cache": result.cache_line,
        "results": result.results,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=100_000)
    p.add_argument("--changed", type=float, default=0.05, help="share of the texts edited before the third run")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--latency", type=float, default=0.02, help="seconds the emulated model takes per request")
    args = p.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="baseten-bench-cache-home-"))
    from airflow_provider_baseten.client.transport import Settings
    from airflow_provider_baseten.emulator.handlers.openai import embed
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    work = Path(tempfile.mkdtemp(prefix="baseten-bench-cache-"))
    proc, conn, url = start_emulator(args.latency, work / "emulator.env")
    try:
        settings = Settings.from_extra(api_key=conn["password"], host=conn["host"], extra=conn["extra"])
        corpus = [
            f"document {i}: a paragraph about topic {i % 97} and item {i * 7919 % 100_003}" for i in range(args.texts)
        ]
        step = max(1, round(1 / args.changed)) if args.changed > 0 else 0
        changed = [t + " (revised)" if step and i % step == 0 else t for i, t in enumerate(corpus)]
        n_changed = sum(1 for a, b in zip(corpus, changed, strict=True) if a != b)
        cache = work / "cache"

        full = run(BasetenHook(settings=settings), url, corpus, args, None)
        fill = run(BasetenHook(settings=settings), url, corpus, args, cache)
        again = run(BasetenHook(settings=settings), url, changed, args, cache)

        assert full["texts_sent"] == fill["texts_sent"] == args.texts, (full, fill)
        assert again["texts_sent"] == n_changed, f"sent {again['texts_sent']} texts, {n_changed} changed"
        assert again["results"] == [embed(t) for t in changed], "a vector is not its text's own"
        size = sum(f.stat().st_size for f in cache.glob("??/*.json"))
        print(
            f"{args.texts:,} texts, {n_changed:,} changed ({args.changed:.0%}); batch_size {args.batch_size}, "
            f"concurrency {args.concurrency}, {args.latency * 1000:.0f} ms per request; server-side counts"
        )
        for name, r in (("full (no cache)", full), ("fill (empty cache)", fill), ("changed (cache)", again)):
            line = (
                f"  {name:20} {r['texts_sent']:>8,} texts sent in {r['requests']:>5,} requests  {r['seconds']:>7.2f} s"
            )
            print(line + (f"   [{r['cache']}]" if r["cache"] else ""))
        print(f"  cache folder: {len(list(cache.glob('??/*.json'))):,} entries, {size / 1e6:.1f} MB")
        print(f"  re-embedding with the cache: {again['seconds'] / full['seconds']:.1%} of the full run's time")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
