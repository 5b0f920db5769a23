"""SIGKILL the standalone webhook receiver mid-delivery and restart it: nothing is lost, thanks to Baseten's
(the emulator's) second attempt, and nothing is stored twice. Real processes: the receiver is
``python -m airflow_provider_baseten.webhooks``; the emulator delivers over HTTP on 127.0.0.1.

The emulated clock is frozen during the outage, so the restart always lands inside the 2 s retry window (a
Python process restart on a loaded 2-core machine can take longer than 2 real seconds); the clock then moves
the 2 s and the retries go out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.webhooks.store import ResultStore
from tests.chaos.report import Row
from tests.integration.conftest import make_hook

pytestmark = pytest.mark.chaos
SECRET = "whsec-chaos-kill-receiver"
REQUESTS = 300


def _until(what: str, check: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def _free_port() -> int:
    from airflow_provider_baseten.emulator.server import bind_socket

    sock = bind_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _start(store: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WH_SECRET": SECRET}
    cmd = [sys.executable, "-m", "airflow_provider_baseten.webhooks", "--port", str(port), "--store", str(store)]
    proc = subprocess.Popen([*cmd, "--secret-env", "WH_SECRET"], env=env)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, "the receiver exited"
            return False

    _until("the receiver answers", healthy)
    return proc


def test_sigkill_mid_delivery_then_restart_loses_nothing(tmp_path: Path, chaos_row: Row) -> None:
    chaos_row.tried = f"{REQUESTS} async results delivered; SIGKILL the receiver after 20 stored bodies"
    store, port = tmp_path / "store", _free_port()
    with BasetenEmulator(api_key="k", time_scale=0, webhook_secret=SECRET) as emu:
        proc = _start(store, port)
        try:
            hook = make_hook(emu)
            url = f"http://127.0.0.1:{port}/deliveries"
            ids = {hook.async_predict({"i": i}, webhook_endpoint=url).request_id for i in range(REQUESTS)}
            emu.advance(2)  # every request completes: the emulator sends all first attempts at once
            _until("some bodies are stored", lambda: store.exists() and len(ResultStore(store).list_ids()) >= 20)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            at_kill = len(ResultStore(store).list_ids())
            _until(
                "every first attempt is done",
                lambda: sum(len(r.webhook_attempts) for r in emu.state.async_requests.values()) == REQUESTS,
            )
            failed_first = sum(r.webhook_attempts[0] != "HTTP 200" for r in emu.state.async_requests.values())
            proc = _start(store, port)
            emu.advance(2)  # the retry window passes: second attempts reach the restarted receiver
            _until(
                "every delivery is finished",
                lambda: sum(emu.counters()["webhooks"].get(k, 0) for k in ("delivered", "failed")) == REQUESTS,
            )
        finally:
            proc.kill()
            proc.wait(10)
        counts = dict(emu.counters()["webhooks"])
        outcomes = Counter(tuple(r.webhook_attempts) for r in emu.state.async_requests.values())
    stored = ResultStore(store).list_ids()
    chaos_row.happened = (
        f"{at_kill} stored at the kill; {failed_first} first attempts failed; attempts {counts.get('attempts')}"
    )
    chaos_row.lost = str(len(ids - stored))
    chaos_row.metrics = {"outcomes": {"/".join(k): v for k, v in outcomes.items()}}
    assert failed_first > 0, "the kill did not interrupt any delivery"
    assert stored == ids
    # One file per request; at most the killed process's unfinished temp files besides (hidden, never listed).
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == sorted(f"{r}.json" for r in ids)
    assert counts == {"attempts": REQUESTS + failed_first, "delivered": REQUESTS}
