"""``make demo``: run every example DAG against a local Baseten emulator, then print what happened.

``python -m dev.demo``

1. starts the emulator on 127.0.0.1 (a fast clock: training jobs and promotions take seconds, not hours);
2. makes a temporary ``AIRFLOW_HOME`` with SQLite and migrates it;
3. points ``AIRFLOW_CONN_BASETEN_DEFAULT`` at the emulator: the direct API, or the LowCodeAPI gateway with
   ``BASETEN_DEMO_GATEWAY=lowcodeapi``;
4. writes a 5,000-line input JSONL and starts a local webhook receiver for the async DAG;
5. runs each example DAG with ``airflow dags test`` and checks that every run succeeded; the train-then-promote
   DAG, whose approval gate waits for a person, runs in a real local Airflow instead (api-server,
   dag-processor, scheduler, triggerer on 127.0.0.1) and the demo approves it through Airflow's REST API;
6. prints a short summary, stops everything, and exits non-zero on any failure.

Nothing listens beyond 127.0.0.1 and everything it starts stops when it ends. ``BASETEN_DEMO_KEEP=1`` keeps
the temporary folder (logs, outputs, the SQLite DB) for a look afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

DAGS = (
    "baseten_batch_inference",
    "baseten_train_then_promote",
    "baseten_async_inference",
    "baseten_sharded_batch",
)
SHARD_ROWS = 1000  # the sharded DAG splits the same 5,000 inputs into 5 mapped predict tasks
BATCH_SIZE = 5000
ASYNC_BATCH_SIZE = 20
API_KEY = "demo-api-key-not-a-secret"
TIME_SCALE = 30.0  # emulated seconds per real second
DEMO_PROJECT = "airflow-demo-fine-tune"  # the train-then-promote DAG creates it by name
DAG_TIMEOUT = 150.0  # real seconds per `airflow dags test`
APPROVAL_DAG = "baseten_train_then_promote"  # its human approval is answered through the REST API
APPROVAL_TIMEOUT = 420.0  # real seconds for starting a local Airflow and running that DAG in it


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) overflows when Baseten delivers many results at once: the extra
    # connections are reset and those webhooks are lost.
    request_queue_size = 256
    daemon_threads = True


class WebhookReceiver:
    """A tiny HTTP server on 127.0.0.1 that records the async results Baseten POSTs to it."""

    def __init__(self) -> None:
        self.received: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                with receiver._lock:
                    receiver.received[str(payload.get("request_id"))] = payload
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/baseten/async-results"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, succeeded_only: bool = False) -> int:
        with self._lock:
            if succeeded_only:
                return sum(1 for p in self.received.values() if not p.get("errors"))
            return len(self.received)


def dags_folder() -> Path:
    """``example_dags/`` of this checkout (or ``BASETEN_DEMO_DAGS_FOLDER``)."""
    folder = Path(os.environ.get("BASETEN_DEMO_DAGS_FOLDER") or Path(__file__).resolve().parents[1] / "example_dags")
    if not (folder / "baseten_batch_inference.py").exists():
        raise SystemExit(f"No example DAGs in {folder}: run from a checkout, or set BASETEN_DEMO_DAGS_FOLDER.")
    return folder


def airflow_env(home: Path, connection_json: str, variables: dict[str, str]) -> dict[str, str]:
    """The environment of every Airflow command: a private home, SQLite, the connection and Variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    # Each `airflow` command imports thousands of modules: without cached bytecode (uv installs none, and
    # PYTHONDONTWRITEBYTECODE stops Python writing it) every command spends ~15 s compiling them again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_BASETEN_DEFAULT": connection_json,
            "BASETEN_EXAMPLE_POLL_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"AIRFLOW_VAR_{k.upper()}": v for k, v in variables.items()})
    return env


def write_inputs(path: Path, n: int) -> None:
    """``n`` model inputs, one JSON object a line."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"text": f"review {i}: the delivery was quick and the product works"}) + "\n")


def airflow_cmd() -> str:
    return str(Path(sys.executable).parent / "airflow")


def run_dag(dag_id: str, env: dict[str, str], logs: Path) -> tuple[bool, float, Path]:
    """``airflow dags test DAG_ID``, output to a log file; (succeeded, seconds, log)."""
    log = logs / f"{dag_id}.log"
    start = time.monotonic()
    with log.open("w") as fh:
        try:
            proc = subprocess.run(
                [airflow_cmd(), "dags", "test", dag_id],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=DAG_TIMEOUT,
                check=False,
            )
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            fh.write(f"\n[demo] timed out after {DAG_TIMEOUT:.0f} s\n")
            ok = False
    return ok, time.monotonic() - start, log


def run_with_approval(dag_id: str, env: dict[str, str], logs: Path) -> tuple[bool, float, Path]:
    """Run ``dag_id`` in a real local Airflow and approve its ``approve_promotion`` through the REST API.

    ``airflow dags test`` cannot take a person's answer: the approval needs the API server (to answer) and
    the scheduler (to resume the task). Everything started here stops before this returns.
    """
    import httpx

    from dev.local_airflow import answer_approval, free_port, server_env, start_airflow

    start = time.monotonic()
    port = free_port()
    env = {**env, **server_env(Path(env["AIRFLOW_HOME"]), port)}
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"  # only this manual run: no scheduled runs of the others
    env.pop("BASETEN_EXAMPLE_APPROVAL_MINUTES", None)
    components: list[Any] = []
    folder = logs / "local-airflow"
    folder.mkdir(exist_ok=True)
    run_id = "demo_approved"
    ok = False
    try:
        base = start_airflow(env, port, folder, components, [dag_id], timeout=APPROVAL_TIMEOUT)
        with httpx.Client(base_url=f"{base}/api/v2", timeout=30) as api:
            api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
            api.post(f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None}).raise_for_status()
            answer_approval(api, dag_id, run_id, "approve_promotion", "Approve", components, APPROVAL_TIMEOUT)
            print(f"    approved {dag_id} run {run_id} through PATCH /api/v2/.../approve_promotion/-1/hitlDetails")
            deadline = time.monotonic() + APPROVAL_TIMEOUT
            while time.monotonic() < deadline:
                state = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json().get("state")
                if state in ("success", "failed"):
                    ok = state == "success"
                    break
                time.sleep(1)
    except Exception as exc:  # reported like a failed `airflow dags test`
        (folder / "demo-error.log").write_text(f"{type(exc).__name__}: {exc}\n")
    finally:
        for c in reversed(components):
            c.stop()
    return ok, time.monotonic() - start, folder / "scheduler.log"


def real_airflow_pace(emu: Any) -> None:
    """Real time, and remote waits of several seconds, for the DAG run in a real Airflow.

    A trigger that fires before the scheduler has handled the deferring try's exit makes Airflow 3.3 fail the
    resumed try (apache/airflow#67287): every wait lasts long enough for the scheduler to see the deferral
    first, as in ``tests/e2e``.
    """
    from airflow_provider_baseten.emulator.config import Durations

    emu.set_time_scale(1.0)
    emu.core.config.durations = Durations(
        training_running=10.0, build=8.0, promotion_ramping=8.0, wake=8.0, checkpoint_sync=0.0
    )


def run_states(db: Path, dag_id: str) -> tuple[str | None, dict[str, str]]:
    """The latest run's state and its task states, from the metadata DB."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if row is None:
            return None, {}
        tis = conn.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, row[0])
        ).fetchall()
    return row[1], {t: s or "none" for t, s in tis}


def xcom(db: Path, dag_id: str, task_id: str, key: str = "return_value") -> Any:
    """An XCom value of the latest run (stored as JSON in Airflow 3)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT x.value FROM xcom x JOIN dag_run d ON d.id = x.dag_run_id"
            " WHERE x.dag_id = ? AND x.task_id = ? AND x.key = ? ORDER BY d.id DESC LIMIT 1",
            (dag_id, task_id, key),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    value = row[0]
    if isinstance(value, bytes):
        value = value.decode()
    try:
        value = json.loads(value)
    except ValueError:
        return value
    # Some Airflow versions store JSON-encoded strings of JSON.
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    from airflow_provider_baseten.emulator import BasetenEmulator

    chosen = os.environ.get("BASETEN_DEMO_GATEWAY", "baseten").strip().lower() or "baseten"
    if chosen not in ("baseten", "lowcodeapi"):
        print(f"BASETEN_DEMO_GATEWAY must be 'baseten' or 'lowcodeapi', not {chosen!r}", file=sys.stderr)
        return 2
    gateway: Literal["baseten", "lowcodeapi"] = "lowcodeapi" if chosen == "lowcodeapi" else "baseten"
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="baseten-demo-"))
    home, data, logs = work / "airflow", work / "data", work / "logs"
    for d in (home, data / "output", logs):
        d.mkdir(parents=True)
    failures: list[str] = []
    try:
        with BasetenEmulator(api_key=API_KEY, time_scale=TIME_SCALE) as emu, WebhookReceiver() as receiver:
            write_inputs(data / "input.jsonl", BATCH_SIZE)
            variables = {
                "baseten_batch_input": str(data / "input.jsonl"),
                "baseten_batch_output_dir": str(data / "output"),
                "baseten_training_project": DEMO_PROJECT,  # created by the DAG (get_or_create_training_project)
                "baseten_webhook_url": receiver.url,
                "baseten_async_batch_size": str(ASYNC_BATCH_SIZE),
                "baseten_sharded_work_dir": str(data / "sharded"),
                "baseten_shard_rows": str(SHARD_ROWS),
            }
            env = airflow_env(home, emu.connection_json(gateway=gateway), variables)
            where = emu.gateway_url if gateway == "lowcodeapi" else emu.url
            print(f"Baseten emulator ({gateway} API) on {where}; Airflow home {home}")
            migrate = subprocess.run(
                [airflow_cmd(), "db", "migrate"], env=env, capture_output=True, text=True, check=False
            )
            if migrate.returncode != 0:
                print(migrate.stdout[-3000:], migrate.stderr[-3000:], sep="\n", file=sys.stderr)
                return 1
            db = home / "airflow.db"
            for dag_id in DAGS:
                if dag_id == APPROVAL_DAG:
                    real_airflow_pace(emu)
                    ok, seconds, log = run_with_approval(dag_id, env, logs)
                    emu.set_time_scale(TIME_SCALE)
                else:
                    ok, seconds, log = run_dag(dag_id, env, logs)
                state, tasks = run_states(db, dag_id)
                not_ok = {t: s for t, s in tasks.items() if s not in ("success", "skipped")}
                ok = ok and state == "success" and not not_ok
                print(f"  {dag_id:<28} {'success' if ok else 'FAILED':<8} {seconds:5.1f} s")
                if not ok:
                    failures.append(dag_id)
                    print(f"    run state {state}, tasks not ok: {not_ok}; last lines of {log}:", file=sys.stderr)
                    print(tail(log), file=sys.stderr)
            # Webhooks are delivered as the requests finish; give the last ones a moment.
            deadline = time.monotonic() + 10
            while receiver.count() < ASYNC_BATCH_SIZE and time.monotonic() < deadline:
                time.sleep(0.1)
            if "baseten_async_inference" not in failures and receiver.count() < ASYNC_BATCH_SIZE:
                failures.append(f"webhooks ({receiver.count()} of {ASYNC_BATCH_SIZE} received)")
            summary = _summary(db, emu, receiver, gateway)
    finally:
        if os.environ.get("BASETEN_DEMO_KEEP"):
            print(f"Kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(summary)
    elapsed = time.monotonic() - started
    if failures:
        print(f"\nFAILED: {', '.join(failures)} ({elapsed:.0f} s)", file=sys.stderr)
        return 1
    print(f"\nAll {len(DAGS)} example DAGs succeeded in {elapsed:.0f} s.")
    return 0


def _summary(db: Path, emu: Any, receiver: WebhookReceiver, gateway: str) -> str:
    """One short paragraph a person can read: what each DAG did, from XCom and the emulator's state."""
    parts = []
    batch = xcom(db, "baseten_batch_inference", "check_counts") or {}
    if batch:
        parts.append(
            f"{batch['predictions']:,} predictions in {batch['elapsed_seconds']:.1f} s, {batch['errors']} errors"
        )
    job_id = xcom(db, "baseten_train_then_promote", "create_training_job", "training_job_id")
    job_status = xcom(db, "baseten_train_then_promote", "wait_for_training")
    project = xcom(db, "baseten_train_then_promote", "training_project")
    if job_id:
        status = str(job_status or "unknown").removeprefix("TRAINING_JOB_")
        parts.append(
            f"training job {job_id} {status}" + (f" in project {DEMO_PROJECT!r} ({project})" if project else "")
        )
    deployed = xcom(db, "baseten_train_then_promote", "deploy_checkpoint")
    model = xcom(db, "baseten_train_then_promote", "deploy_checkpoint", "model_id")
    checkpoint = xcom(db, "baseten_train_then_promote", "deploy_checkpoint", "checkpoint_id")
    if deployed:
        parts.append(f"checkpoint {checkpoint} deployed as {deployed} of model {model}")
    promoted = xcom(db, "baseten_train_then_promote", "promote_candidate")
    if promoted and model:
        serving = emu.hook().get_deployment("production", model_id=model)
        where = "promoted to production" if serving.id == promoted else f"promoted, but production is {serving.id}"
        autoscaling = xcom(db, "baseten_train_then_promote", "set_autoscaling") or {}
        promotes = sum(n for k, n in emu.counters()["requests"].items() if k.startswith("promote"))
        parts.append(
            f"approved through the REST API, {where} ({promotes} promote call, autoscaling "
            f"{autoscaling.get('status', '?')})"
        )
    states = xcom(db, "baseten_async_inference", "report") or {}
    if states:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        webhooks = f"{receiver.count()} webhooks received"
        failed = emu.counters()["webhooks"].get("failed", 0)
        if failed:
            webhooks += f" ({failed} deliveries failed)"
        parts.append(f"{sum(states.values())} async requests: {counts}; {webhooks}")
    sharded = xcom(db, "baseten_sharded_batch", "check_counts") or {}
    if sharded:
        parts.append(
            f"{sharded['predictions']:,} predictions in {sharded['shards']} mapped shards merged in order, "
            f"{sharded['errors']} errors"
        )
    return f"[{gateway}] " + "; ".join(parts) + "."


if __name__ == "__main__":
    sys.exit(main())
