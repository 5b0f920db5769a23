"""Waits that listen, in a real Airflow (api-server, dag-processor, scheduler with LocalExecutor, triggerer;
tests/e2e/_support.py) against the emulator on 127.0.0.1.

The webhook receiver is the one the provider's plugin mounts on Airflow's own API server
(``/baseten-webhooks/``), configured by the ``baseten_webhooks`` connection (its password is the webhook secret,
its extra ``store`` the folder); the emulator signs every delivery with the same secret.

1. The mounted receiver answers 401 to a bad signature (and stores nothing) and 200 to a good one.
2. ONE ``AsyncPredictOperator`` task (tests/e2e/dags/webhooks_listen.py) submits 20,000 async requests with
   the connection's webhook URL, defers, and listens to the store. Counted on the server side: every result
   stored exactly once (files in the store == the emulator's delivered count == 20,000, one attempt each),
   Baseten status calls during the wait (the emulator's request counter), the time from the last stored
   result to the task's success, and the gathered output file (20,000 rows, in input order).
3. The API server (and so the mounted receiver) is SIGKILLed while 300 results are being delivered, and
   started again: nothing is lost, thanks to the emulator's second attempt, and nothing is stored twice. The
   emulator's clock is frozen during the outage, so the restart always lands inside the 2 s retry window (an
   API server takes far longer than 2 real seconds to start on a loaded 2-core machine); the clock then moves
   the 2 s and the retries go out. (tests/chaos/test_kill_webhook_receiver.py does the same to the
   standalone receiver.)

``WEBHOOKS_E2E_REQUESTS`` overrides the 20,000: ``make e2e`` runs 2,000 to stay inside CI's 30 minutes, and
``make e2e WEBHOOKS_E2E_REQUESTS=20000`` the full figure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from tests.chaos._support import until
from tests.chaos.test_real_airflow import Airflow
from tests.e2e._support import Component, airflow_env, free_port, private_home, running_airflow, wait_http

pytestmark = pytest.mark.airflow_e2e

KEY = "e2e-webhooks-key-not-a-secret"
SECRET = "whsec-e2e-webhooks-not-a-real-secret"
REQUESTS = int(os.environ.get("WEBHOOKS_E2E_REQUESTS", "20000"))
KILL_REQUESTS = 300  # tests/e2e/dags/webhooks_listen.py: webhooks_kill
DAG_ID, KILL_DAG_ID, TASK_ID = "webhooks_listen", "webhooks_kill", "submit_and_listen"
STARTUP = 300.0
RUN = 900.0


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _signed(body: bytes, secret: str) -> dict[str, str]:
    """Signed as Baseten signs (written here, not imported from the receiver: an independent signer)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-BASETEN-SIGNATURE": f"v1={digest}"}


class World(Airflow):
    """The emulator, the running Airflow, its REST API, the store and the output file."""

    def __init__(
        self, emu: BasetenEmulator, base: str, components: list[Any], home: Path, tmp: Path, env: dict[str, str]
    ) -> None:
        super().__init__(httpx.Client(base_url=f"{base}/api/v2", timeout=60), components, home)
        self.emu, self.base, self.env, self.logs = emu, base, env, tmp
        self.store, self.outputs = tmp / "store", tmp / "outputs"

    def ended(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """The task instance once it succeeded or failed."""
        ti = self.tis(dag_id, run_id).get(TASK_ID, {})
        return ti if ti.get("state") in ("success", "failed") else None

    def stored(self) -> list[Path]:
        """The store's result files (a writer's hidden temp files are not results)."""
        return [p for p in self.store.iterdir() if not p.name.startswith(".")] if self.store.exists() else []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("webhooks")
    home, dags = private_home(tmp, Path(__file__).parent / "dags" / "webhooks_listen.py")
    port = free_port()
    receiver = {
        "conn_type": "http",
        "schema": "http",  # loopback only: Baseten requires https elsewhere
        "host": "127.0.0.1",
        "port": port,  # this Airflow's API server, where the plugin mounts the receiver
        "password": SECRET,
        "extra": {"store": str(tmp / "store")},
    }
    with BasetenEmulator(api_key=KEY, time_scale=1.0, webhook_secret=SECRET) as emu:
        env = airflow_env(
            home,
            port,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_CONN_BASETEN_WEBHOOKS=json.dumps(receiver),
            AIRFLOW_VAR_WEBHOOKS_E2E_REQUESTS=str(REQUESTS),
            AIRFLOW_VAR_WEBHOOKS_E2E_OUTPUTS=str(tmp / "outputs"),
        )
        (tmp / "outputs").mkdir()
        with running_airflow(env, port, tmp, [DAG_ID, KILL_DAG_ID], STARTUP) as (base, components):
            yield World(emu, base, components, home, tmp, env)


def test_mounted_receiver_refuses_a_bad_signature_and_stores_a_good_one(world: World) -> None:
    body = json.dumps(
        {
            "request_id": "e2e-signature-probe",
            "model_id": "echo1234",
            "deployment_id": "dep1prod",
            "type": "async_request_completed",
            "time": "2026-01-01T00:00:00Z",
            "data": {"probe": True},
            "errors": [],
        }
    ).encode()
    url = f"{world.base}/baseten-webhooks/"
    # No Airflow login: the signature is the authentication.
    bad = httpx.post(url, content=body, headers=_signed(body, "whsec-someone-else"), timeout=60)
    assert bad.status_code == 401, bad.text
    assert world.stored() == []
    good = httpx.post(url, content=body, headers=_signed(body, SECRET), timeout=60)
    assert good.status_code == 200, good.text
    assert [p.name for p in world.stored()] == ["e2e-signature-probe.json"]
    assert json.loads((world.store / "e2e-signature-probe.json").read_bytes()) == json.loads(body)
    (world.store / "e2e-signature-probe.json").unlink()  # the next test counts only its own results
    print(f"\nMounted receiver: bad signature -> {bad.status_code}, good signature -> {good.status_code}")


def test_one_task_listens_for_its_async_results(world: World) -> None:
    w, emu = world, world.emu
    assert not emu.state.async_requests and not w.stored()  # the counts below are this run's only
    w.trigger(DAG_ID, "listen1")
    ti = until(f"{TASK_ID} to end", lambda: w.ended(DAG_ID, "listen1"), RUN, w.components, step=0.25)
    assert ti["state"] == "success", ti
    counters = emu.counters()

    # Exactly once, counted on the server side: the emulator's submissions and deliveries, the store's files.
    submitted = set(emu.state.async_requests)
    assert counters["submissions"]["async_predict"] == len(submitted) == REQUESTS
    files = w.stored()
    stored_ids = {p.name.removesuffix(".json") for p in files}
    assert len(files) == len(stored_ids) == REQUESTS and stored_ids == submitted
    webhooks = dict(counters["webhooks"])
    assert webhooks == {"attempts": REQUESTS, "delivered": REQUESTS}, webhooks  # no retry, no failure
    assert sorted(w.xcom(DAG_ID, "listen1", TASK_ID, "request_ids")) == sorted(submitted)

    # The wait listened: Baseten's status API is the backstop only (this counts every status call of the run).
    status_calls = counters["requests"].get("get_async_request", 0)
    assert status_calls <= REQUESTS // 100, status_calls

    # Every output, in input order, each in its own input's place.
    rows = [json.loads(line) for line in (w.outputs / "listen.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(REQUESTS))
    assert all(r["output"]["output"] == {"i": r["index"]} for r in rows)

    start, end = _ts(ti["start_date"]), _ts(ti["end_date"])
    last_stored = max(p.stat().st_mtime for p in files)
    first_stored = min(p.stat().st_mtime for p in files)
    assert last_stored <= end
    report = {
        "requests": REQUESTS,
        "stored_files": len(files),
        "delivered": webhooks["delivered"],
        "delivery_attempts": webhooks["attempts"],
        "status_calls_during_wait": status_calls,
        "first_to_last_stored_s": round(last_stored - first_stored, 1),
        "deliveries_per_s": round(REQUESTS / max(last_stored - first_stored, 1e-9)),
        "last_stored_to_task_success_s": round(end - last_stored, 1),
        "task_total_s": round(end - start, 1),
        "output_rows": len(rows),
    }
    print("\nListening wait evidence:", report)


def test_api_server_sigkilled_mid_delivery_then_restarted_loses_nothing(world: World) -> None:
    w, emu = world, world.emu
    emu.set_time_scale(0)  # the requests stay queued until the test moves the clock
    try:
        w.trigger(KILL_DAG_ID, "kill1")
        until(
            "the task to defer",
            lambda: w.tis(KILL_DAG_ID, "kill1").get(TASK_ID, {}).get("state") == "deferred",
            RUN,
            w.components,
        )
        ids = set(w.xcom(KILL_DAG_ID, "kill1", TASK_ID, "request_ids"))
        assert len(ids) == KILL_REQUESTS
        requests = [emu.state.async_requests[r] for r in ids]

        def mine() -> set[str]:
            return {p.name.removesuffix(".json") for p in w.stored()} & ids

        emu.advance(2)  # every request ends: the emulator sends all first attempts at once
        until("some results stored", lambda: len(mine()) >= 20, 60, w.components, step=0.005)
        api = next(c for c in w.components if c.name == "api-server")
        os.killpg(os.getpgid(api.proc.pid), signal.SIGKILL)  # the API server and its workers, mid-delivery
        api.proc.wait(10)
        at_kill = mine()
        api.stop()  # closes its log
        until("every first attempt is done", lambda: all(r.webhook_attempts for r in requests), 60, [], step=0.05)
        failed_first = sum(r.webhook_attempts[0] != "HTTP 200" for r in requests)
        # Stored, but the 200 never left the killed server: Baseten's retry is a duplicate, stored once.
        redelivered = sum(r.request_id in at_kill and r.webhook_attempts[0] != "HTTP 200" for r in requests)
        restarted = Component(
            "api-server-2",
            ["api-server", "--host", "127.0.0.1", "--port", str(w.env["AIRFLOW__API__PORT"])],
            w.env,
            w.logs,
        )
        w.components[w.components.index(api)] = restarted  # the fixture stops it
        wait_http(f"{w.base}/api/v2/monitor/health", STARTUP, w.components)
        emu.advance(2)  # the retry window passes: the second attempts reach the restarted API server
        until(
            "every delivery to finish",
            lambda: all(r.webhook_status in ("SUCCEEDED", "FAILED") for r in requests),
            120,
            w.components,
            step=0.05,
        )
    finally:
        emu.set_time_scale(1.0)
    ti = until(f"{TASK_ID} to end", lambda: w.ended(KILL_DAG_ID, "kill1"), RUN, w.components, step=0.25)
    assert ti["state"] == "success", ti
    assert failed_first > 0, "the kill interrupted no delivery"
    assert all(r.webhook_status == "SUCCEEDED" for r in requests)
    assert sum(len(r.webhook_attempts) for r in requests) == KILL_REQUESTS + failed_first
    assert mine() == ids  # nothing lost; one file per request id, so nothing stored twice
    rows = [json.loads(line) for line in (w.outputs / "kill.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(KILL_REQUESTS))
    assert all(r["output"]["output"] == {"i": r["index"]} for r in rows)
    print(
        f"\nAPI server SIGKILL mid-delivery: {len(at_kill)} of {KILL_REQUESTS} stored at the kill, {failed_first} "
        f"first attempts failed ({redelivered} of them already stored: redelivered, stored once), all "
        f"{len(mine())} stored after the retries, lost {len(ids - mine())}"
    )
