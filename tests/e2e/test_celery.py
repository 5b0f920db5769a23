"""The sharded example on a real CeleryExecutor: a Redis broker, two Celery workers, all on 127.0.0.1.

``make e2e-celery``. Three runs of ``baseten_sharded_batch`` over the same input, against an emulator whose
predictions take :data:`LATENCY` seconds (so a shard takes seconds and the client is never the limit):

1. two workers: the shards ran on both worker hostnames and overlapped in time, and the merged output is
   byte-identical to one task predicting the whole input;
2. one worker is SIGKILLed (its whole process tree) mid-shard: the scheduler notices the dead task, the retry
   runs on the other worker and resumes the shard, and the emulator's request counter shows that at most
   the killed shard's in-flight requests (its ``max_concurrency``) were sent twice; the output is still
   byte-identical;
3. the one worker left runs the same input alone: the predict phase's wall time against run 1's gives the
   speed-up of two workers over one.

It prints which shard ran on which worker, and stops everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from airflow_provider_baseten.batch_io import read_records
from airflow_provider_baseten.emulator import BasetenEmulator
from dev.demo import write_inputs
from tests.e2e._support import ROOT, Component, airflow_env, free_port, migrate, start_airflow

pytestmark = pytest.mark.airflow_e2e

DAG = "baseten_sharded_batch"
INPUTS = 800
SHARD_ROWS = 200  # 4 shards
SHARD_CONCURRENCY = 4  # requests in flight per shard: what a killed shard may have to send again
LATENCY = 0.25  # seconds per prediction: a shard takes ~SHARD_ROWS * LATENCY / SHARD_CONCURRENCY = 12.5 s
WORKERS = ("worker-a", "worker-b")
STARTUP_TIMEOUT = 300.0
RUN_TIMEOUT = 300.0


def _redis(port: int, workdir: Path, logs: Path) -> Component:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run `make e2e-celery`, which installs it")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    return Component("redis", args, dict(os.environ), logs, program=server)


def _kill_tree(component: Component) -> list[int]:
    """SIGKILL a component's process and every process it started (the Celery pool, the task supervisor
    and the task itself, whatever session they put themselves in)."""
    root = psutil.Process(component.proc.pid)
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


class Api:
    """The bits of Airflow's REST API the test needs."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=f"{base}/api/v2", timeout=30)

    def trigger(self, run_id: str) -> None:
        r = self.http.post(f"/dags/{DAG}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        assert r.status_code in (200, 201), r.text

    def run_state(self, run_id: str) -> str:
        return str(self.http.get(f"/dags/{DAG}/dagRuns/{run_id}").json()["state"])

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/dags/{DAG}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return list(r.json()["task_instances"])

    def wait(self, run_id: str, components: list[Component]) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            for c in components:
                assert c.alive(), f"{c.name} exited:\n{c.tail()}"
            state = self.run_state(run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise AssertionError(f"{run_id} did not finish in {RUN_TIMEOUT:.0f} s: {self.task_instances(run_id)}")


def _when(ts: str | None) -> float:
    assert ts, "a finished task has start and end dates"
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _shards(tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((t for t in tis if t["task_id"] == "predict"), key=lambda t: t["map_index"])


def _report(title: str, tis: list[dict[str, Any]]) -> float:
    """Print which shard ran on which worker; return the predict phase's wall time."""
    shards = _shards(tis)
    t0 = min(_when(t["start_date"]) for t in shards)
    t1 = max(_when(t["end_date"]) for t in shards)
    print(f"\n{title}: predict phase {t1 - t0:.1f} s")
    for t in shards:
        start, end = _when(t["start_date"]) - t0, _when(t["end_date"]) - t0
        print(
            f"  {t.get('rendered_map_index') or t['map_index']!s:<12} on {t['hostname']:<10} "
            f"try {t['try_number']}  {start:6.1f} s -> {end:6.1f} s  {t['state']}"
        )
    return t1 - t0


def _overlap(shards: list[dict[str, Any]]) -> bool:
    """Whether two shards on different workers ran at the same time."""
    return any(
        a["hostname"] != b["hostname"]
        and _when(a["start_date"]) < _when(b["end_date"])
        and _when(b["start_date"]) < _when(a["end_date"])
        for a in shards
        for b in shards
    )


def test_sharded_batch_on_two_celery_workers(tmp_path: Path) -> None:
    home, logs, data = tmp_path / "airflow", tmp_path / "logs", tmp_path / "data"
    for d in (home, logs, data):
        d.mkdir()
    write_inputs(data / "input.jsonl", INPUTS)
    api_port, redis_port = free_port(), free_port()
    components: list[Component] = []
    workers: dict[str, Component] = {}
    with BasetenEmulator(api_key="e2e-celery-key-not-a-secret", predict_latency=LATENCY) as emu:
        env = airflow_env(
            home,
            api_port,
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__HOSTNAME_CALLABLE="tests.e2e._celery_host.hostname",
            AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
            AIRFLOW__CELERY__RESULT_BACKEND=f"redis://127.0.0.1:{redis_port}/1",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="1",  # one shard at a time per worker: the spread shows
            # A SIGKILLed task stops heart-beating: fail it (and so retry it) after 20 s, not 5 minutes.
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            AIRFLOW_VAR_BASETEN_BATCH_INPUT=str(data / "input.jsonl"),
            AIRFLOW_VAR_BASETEN_SHARDED_WORK_DIR=str(data / "sharded"),
            AIRFLOW_VAR_BASETEN_SHARD_ROWS=str(SHARD_ROWS),
            BASETEN_EXAMPLE_SHARD_CONCURRENCY=str(SHARD_CONCURRENCY),
            BASETEN_EXAMPLE_MAX_SHARDS_AT_ONCE="4",
            PYTHONPATH=str(ROOT),
        )
        migrate(env)
        try:
            components.append(_redis(redis_port, data, logs))
            base = start_airflow(env, api_port, logs, components, [DAG], STARTUP_TIMEOUT)
            for name in WORKERS:
                args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
                args += ["--without-mingle", "--without-gossip"]
                workers[name] = Component(name, args, {**env, "BASETEN_E2E_WORKER": name}, logs)
                components.append(workers[name])
            _wait_workers(f"redis://127.0.0.1:{redis_port}/0", components)
            api = Api(base)
            r = api.http.patch(f"/dags/{DAG}", json={"is_paused": False})
            assert r.status_code == 200, r.text

            single = data / "single.jsonl"  # one task's output for the whole input, to compare bytes with
            emu.hook().predict_batch(read_records(data / "input.jsonl"), output_path=single, max_concurrency=64)
            reference = single.read_bytes()

            # 1. Two workers.
            before = emu.counters()["requests"].get("production_predict", 0)
            api.trigger("two_workers")
            assert api.wait("two_workers", components) == "success", api.task_instances("two_workers")
            tis = api.task_instances("two_workers")
            two = _report("Two Celery workers", tis)
            shards = _shards(tis)
            assert len(shards) == INPUTS // SHARD_ROWS
            assert {t["hostname"] for t in shards} == set(WORKERS), shards
            assert _overlap(shards), "no two shards on different workers ran at the same time"
            assert emu.counters()["requests"]["production_predict"] - before == INPUTS
            merged = Path(_xcom(home, "two_workers", "merge")["output_path"])
            assert merged.read_bytes() == reference

            # 2. SIGKILL one worker mid-shard; its retry resumes the shard on the other worker.
            before = emu.counters()["requests"].get("production_predict", 0)
            api.trigger("kill_one_worker")
            victim, journal = _wait_mid_shard(api, home, components)
            killed = _kill_tree(workers[victim])
            print(f"\nSIGKILLed {victim} (pids {killed}) with {journal[1]} results in {journal[0].name}")
            survivors = [c for c in components if c is not workers[victim]]
            assert api.wait("kill_one_worker", survivors) == "success", api.task_instances("kill_one_worker")
            tis = api.task_instances("kill_one_worker")
            _report("One worker SIGKILLed mid-shard", tis)
            sent = emu.counters()["requests"]["production_predict"] - before
            print(f"  predictions sent: {sent} for {INPUTS} inputs (re-sent: {sent - INPUTS})")
            assert INPUTS <= sent <= INPUTS + SHARD_CONCURRENCY, sent
            retried = [t for t in _shards(tis) if t["try_number"] > 1]
            assert retried and all(t["hostname"] != victim for t in retried), retried
            merged = Path(_xcom(home, "kill_one_worker", "merge")["output_path"])
            assert merged.read_bytes() == reference
            dep = emu.hook().get_deployment("production").autoscaling_settings
            assert (dep.min_replica, dep.max_replica) == (0, 1), dep  # scale_for_batch given back

            # 3. The worker left, alone: the same input on one worker.
            api.trigger("one_worker")
            assert api.wait("one_worker", survivors) == "success", api.task_instances("one_worker")
            one = _report("One Celery worker", api.task_instances("one_worker"))
            print(f"\nSpeed-up, predict phase: 2 workers {two:.1f} s vs 1 worker {one:.1f} s = {one / two:.2f}x")
            assert one / two > 1.3, (one, two)
        finally:
            for c in reversed(components):
                c.stop()
    for c in components:
        assert not c.alive()


def _wait_workers(broker: str, components: list[Component]) -> None:
    """Until both workers answer a Celery ping through the broker (so the first shards can spread)."""
    from celery import Celery

    app = Celery(broker=broker)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen: set[str] = set()
    while time.monotonic() < deadline:
        for c in components:
            assert c.alive(), f"{c.name} exited:\n{c.tail()}"
        replies = app.control.inspect(timeout=2).ping() or {}
        seen = {name.split("@", 1)[0] for name in replies}
        if seen >= set(WORKERS):
            return
        time.sleep(1)
    raise AssertionError(f"only {sorted(seen)} of {WORKERS} answered a ping in {STARTUP_TIMEOUT:.0f} s")


def _wait_mid_shard(api: Api, home: Path, components: list[Component]) -> tuple[str, tuple[Path, int]]:
    """Wait until a shard is running on a worker with some of its results journalled; return that worker."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        for c in components:
            assert c.alive(), f"{c.name} exited:\n{c.tail()}"
        try:
            shards = _xcom(home, "kill_one_worker", "split")
        except sqlite3.OperationalError:  # locked for a moment by a writer: look again
            shards = None
        running = [t for t in _shards(api.task_instances("kill_one_worker")) if t["state"] == "running"]
        if shards and running:
            for t in running:
                journal = Path(shards[t["map_index"]]["output_path"] + ".journal")
                lines = _lines(journal)
                if 20 <= lines <= SHARD_ROWS // 2 and t.get("hostname") in WORKERS:
                    return str(t["hostname"]), (journal, lines)
        time.sleep(0.2)
    raise AssertionError("no shard was seen mid-way on a worker")


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for _ in fh) - 1  # the header line
    except FileNotFoundError:
        return 0


def _xcom(home: Path, run_id: str, task_id: str) -> Any:
    """A task's return value in one run, from the metadata DB (``None`` until it is there)."""
    with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=10) as conn:
        row = conn.execute(
            "SELECT x.value FROM xcom x JOIN dag_run d ON d.id = x.dag_run_id"
            " WHERE x.dag_id = ? AND d.run_id = ? AND x.task_id = ? AND x.key = 'return_value' AND x.map_index = -1",
            (DAG, run_id, task_id),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    value = json.loads(row[0].decode() if isinstance(row[0], bytes) else row[0])
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
