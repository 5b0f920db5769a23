"""Load test of the standalone webhook receiver: deliveries per second, latency percentiles, and loss.

``.venv/bin/python scripts/webhook_load.py [--requests 3000] [--concurrency 1,4,8,16,32]`` starts
``python -m airflow_provider_baseten.webhooks`` on 127.0.0.1 (one process, a local store folder), then, for each
concurrency level, sends that many signed ~1 KB webhook bodies (each a new ``request_id``) over keep-alive
connections, as fast as the receiver answers (closed loop). It prints one JSON line per level: deliveries/s,
p50/p99/max latency in ms, and the loss (bodies sent and answered 200 minus ``.json`` files counted in the store
folder). Not part of ``make test``: it measures, it does not check.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

SECRET = "whsec-load-test-secret"


def _body(request_id: str) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "model_id": "m1",
            "deployment_id": "d1",
            "type": "async_request_completed",
            "time": "2025-01-01T00:00:00Z",
            "data": {"text": "x" * 800},
            "errors": [],
        }
    ).encode()


async def _level(url: str, total: int, concurrency: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    ok = 0
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal ok
            for _ in queue:
                body = _body(uuid.uuid4().hex)
                sig = "v1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                start = time.perf_counter()
                r = await client.post(url, content=body, headers={"X-BASETEN-SIGNATURE": sig})
                latencies.append(time.perf_counter() - start)
                ok += r.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, ok, elapsed


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    """Start the receiver, run each level, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,4,8,16,32")
    parser.add_argument("--port", type=int, default=18791)
    args = parser.parse_args()
    store = tempfile.mkdtemp(prefix="webhook-load-")
    env = {**os.environ, "WH_LOAD_SECRET": SECRET}
    cmd = [sys.executable, "-m", "airflow_provider_baseten.webhooks", "--port", str(args.port), "--store", store]
    proc = subprocess.Popen([*cmd, "--secret-env", "WH_LOAD_SECRET"], env=env)
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the receiver did not start") from None
                time.sleep(0.1)
        asyncio.run(_level(base + "/deliveries", 200, 4))  # warm up (not counted in the levels)
        sent_ok = 200
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            latencies, ok, elapsed = asyncio.run(_level(base + "/deliveries", args.requests, concurrency))
            sent_ok += ok
            files = sum(1 for n in os.listdir(store) if n.endswith(".json"))
            row = {
                "concurrency": concurrency,
                "requests": args.requests,
                "ok": ok,
                "deliveries_per_s": round(len(latencies) / elapsed, 1),
                "p50_ms": round(_pct(latencies, 50), 1),
                "p99_ms": round(_pct(latencies, 99), 1),
                "max_ms": round(max(latencies) * 1000, 1),
                "stored_files": files,
                "lost": sent_ok - files,
            }
            print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
