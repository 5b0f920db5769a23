"""``make demo``: run every example DAG against a local Baseten emulator, then print what happened.

``python -m dev.demo``

1. starts two emulators on 127.0.0.1 (a fast clock: training jobs and promotions take seconds, not hours);
2. makes a temporary ``AIRFLOW_HOME`` with SQLite, migrates it, and copies the DB for the second lane;
3. points ``AIRFLOW_CONN_BASETEN_DEFAULT`` at the emulator: the direct API, or the LowCodeAPI gateway with
   ``BASETEN_DEMO_GATEWAY=lowcodeapi`` (then the examples whose routes the gateway lacks are skipped);
4. writes a 5,000-line input JSONL, a Parquet table of documents, and starts a local webhook receiver;
5. runs the examples in two lanes at once. Lane A: the train-then-promote DAG, whose approval gate waits for
   a person, in a real local Airflow (api-server, dag-processor, scheduler, triggerer on 127.0.0.1) that the
   demo approves through Airflow's REST API. Lane B: every other example with ``airflow dags test``, one
   after the other. The assets example's two DAGs run that way too: the producer by hand (it promotes the
   deployment the Variable names: no watcher runs without a scheduler and triggerer; ``make e2e`` runs the
   real watcher), then the consumer, which reads the producer's event through ``inlet_events``;
6. checks what each example made, on the emulator and in its outputs (not only that it succeeded), prints a
   line per example (result, time, what was checked), stops everything, and exits non-zero on any failure.

Nothing listens beyond 127.0.0.1 and everything it starts stops when it ends. ``BASETEN_DEMO_KEEP=1`` keeps
the temporary folder (logs, outputs, the SQLite DB) for a look afterwards.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

DAGS = (
    "baseten_batch_inference",
    "baseten_train_then_promote",
    "baseten_async_inference",
    "baseten_sharded_batch",
    "baseten_openai_batches",
    "baseten_chains",
    "baseten_deploy",
    "baseten_promote_new_deployment",  # the assets example: the producer, run by hand ...
    "baseten_on_new_production",  # ... then the consumer, reading the producer's event
)
#: Examples whose routes (OpenAI-compatible, chains, deploy, training projects and job creation) the LowCodeAPI
#: gateway's reference does not list: the hook refuses those through the gateway before sending.
DIRECT_ONLY = frozenset({"baseten_openai_batches", "baseten_chains", "baseten_deploy", "baseten_train_then_promote"})
DOCUMENTS = 500  # rows of the OpenAI batches DAG's Parquet input
SHARD_ROWS = 1000  # the sharded DAG splits the same 5,000 inputs into 5 mapped predict tasks
BATCH_SIZE = 5000
ASYNC_BATCH_SIZE = 20
API_KEY = "demo-api-key-not-a-secret"
TIME_SCALE = 30.0  # emulated seconds per real second
DEMO_PROJECT = "airflow-demo-fine-tune"  # the train-then-promote DAG creates it by name
DAG_TIMEOUT = 150.0  # real seconds per `airflow dags test`
APPROVAL_DAG = "baseten_train_then_promote"  # its human approval is answered through the REST API
APPROVAL_TIMEOUT = 420.0  # real seconds for starting a local Airflow and running that DAG in it
WEBHOOK_SECRET = "demo-webhook-secret"  # the emulator signs every delivery with it; the receiver checks it
APPROVAL_BODY = "approval-body.md"  # the approval's body as Airflow showed it, saved by run_with_approval


class WebhookReceiver:
    """The provider's own webhook receiver (``python -m airflow_provider_baseten.webhooks``) on 127.0.0.1: it
    verifies the emulator's signatures with ``secret`` and stores each result in its ``ResultStore``, which
    the async example's wait listens to. Without a secret it accepts unsigned deliveries (``--allow-unsigned``,
    loopback only): for tests whose emulator does not sign."""

    def __init__(self, store: Path, secret: str | None = None) -> None:
        from dev.local_airflow import free_port

        self.store_path, self.port = store, free_port()
        self._secret = secret
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/deliveries"

    def __enter__(self) -> WebhookReceiver:
        import httpx

        command = [sys.executable, "-m", "airflow_provider_baseten.webhooks", "--host", "127.0.0.1", "--port",
                   str(self.port), "--store", str(self.store_path)]  # fmt: skip
        env = dict(os.environ)
        if self._secret:
            env["BASETEN_DEMO_WEBHOOK_SECRET"] = self._secret
            command += ["--secret-env", "BASETEN_DEMO_WEBHOOK_SECRET"]
        else:
            command.append("--allow-unsigned")
        self._proc = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # up when /health answers
            expect(self._proc.poll() is None, f"the webhook receiver exited ({self._proc.returncode})")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the webhook receiver did not start in 60 s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    @property
    def store(self) -> Any:
        """The receiver's ``ResultStore``."""
        from airflow_provider_baseten.webhooks.store import ResultStore

        return ResultStore(self.store_path)

    def count(self) -> int:
        """How many results the receiver stored (one file per request id)."""
        return len(self.store.list_ids())


def dags_folder() -> Path:
    """``example_dags/`` of this checkout (or ``BASETEN_DEMO_DAGS_FOLDER``)."""
    folder = Path(os.environ.get("BASETEN_DEMO_DAGS_FOLDER") or Path(__file__).resolve().parents[1] / "example_dags")
    if not (folder / "baseten_batch_inference.py").exists():
        raise SystemExit(f"No example DAGs in {folder}: run from a checkout, or set BASETEN_DEMO_DAGS_FOLDER.")
    return folder


def airflow_env(
    home: Path, connection_json: str, variables: dict[str, str], dags: Path | None = None
) -> dict[str, str]:
    """The environment of every Airflow command: a private home, SQLite, the connection and Variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    # Each `airflow` command imports thousands of modules: without cached bytecode (uv installs none, and
    # PYTHONDONTWRITEBYTECODE stops Python writing it) every command spends ~15 s compiling them again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags or dags_folder()),
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


def write_documents(path: Path, n: int) -> None:
    """A Parquet table of ``n`` documents (columns ``id``, ``text``), the OpenAI batches DAG's input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"document {i}: the delivery was quick and the product works as described" for i in range(n)]
    pq.write_table(pa.table({"id": [f"doc-{i:05d}" for i in range(n)], "text": texts}), path)


def airflow_cmd() -> str:
    return str(Path(sys.executable).parent / "airflow")


class DagRunner:
    """One Airflow process that runs ``airflow dags test DAG_ID`` for each DAG id it is sent, in turn.

    Each ``airflow`` command spends most of its time importing Airflow (several seconds, more on a busy
    machine); one process for a whole lane pays that once. It reads a DAG id a line on stdin, writes that
    DAG's output to ``<logs>/<dag_id>.log``, and answers one JSON line ``{"ok", "seconds"}`` on stdout.
    """

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dev.demo", "--serve-dags-test", str(logs)],
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(logs / "dag-runner.log").open("w"),
            text=True,
        )

    def run(self, dag_id: str) -> tuple[bool, float, Path]:
        """Run ``dag_id``; (succeeded, seconds, log). A DAG that outlasts ``DAG_TIMEOUT`` stops the runner."""
        log = self.logs / f"{dag_id}.log"
        start = time.monotonic()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is not None:
            return False, 0.0, self.logs / "dag-runner.log"
        self.proc.stdin.write(dag_id + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], DAG_TIMEOUT + 60)  # + the first import
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            with log.open("a") as fh:
                fh.write(f"\n[demo] no answer from the DAG runner within {DAG_TIMEOUT + 60:.0f} s\n")
            self.close()
            return False, time.monotonic() - start, log
        answer = json.loads(line)
        return bool(answer["ok"]), float(answer["seconds"]), log

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve_dags_test(logs: Path) -> int:
    """The :class:`DagRunner` process: ``airflow dags test`` for each DAG id read from stdin."""
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()
    parser = cli_parser.get_parser()
    answers = os.fdopen(os.dup(1), "w")  # the protocol; fds 1 and 2 go to each DAG's log
    for line in sys.stdin:
        dag_id = line.strip()
        start = time.monotonic()
        with (logs / f"{dag_id}.log").open("w") as log:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                args = parser.parse_args(["dags", "test", dag_id])
                args.func(args)
                ok = True
            except BaseException as exc:  # SystemExit("DagRun failed") included: one DAG, not the lane
                print(f"[demo] {type(exc).__name__}: {exc}", file=sys.stderr)
                ok = False
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
        answers.write(json.dumps({"ok": ok, "seconds": round(time.monotonic() - start, 3)}) + "\n")
        answers.flush()
    return 0


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
            # What the person was shown: the approval's body as Airflow rendered it (the gate's report).
            details = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve_promotion/-1/hitlDetails")
            (folder / APPROVAL_BODY).write_text(str(details.json().get("body") or ""))
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


class CheckFailed(Exception):
    """An example DAG succeeded, but what it made is not what it should be."""


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


class Lane:
    """What one lane of DAG runs uses: an emulator, a metadata DB, the Airflow environment."""

    def __init__(self, emu: Any, env: dict[str, str], logs: Path) -> None:
        self.emu, self.env, self.logs = emu, env, logs
        self.db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
        self.delta: dict[str, int] = {}  # the emulator's request counts of the last DAG run in this lane
        self.runner: DagRunner | None = None

    def requests(self) -> dict[str, int]:
        return dict(self.emu.counters()["requests"])


class Demo:
    """Runs the examples in two lanes at once, each with its own emulator and metadata DB.

    Lane A: the train-then-promote DAG in a real local Airflow (its approval is answered through the REST
    API) on a real-time emulator. Lane B, meanwhile: every other example, one ``airflow dags test`` after the
    other, on a fast emulator. Running them side by side keeps ``make demo`` near the time of lane A alone.
    """

    def __init__(self, gateway: Literal["baseten", "lowcodeapi"], data: Path, receiver: WebhookReceiver) -> None:
        self.gateway, self.data, self.receiver = gateway, data, receiver
        self.results: dict[str, tuple[str, float, str]] = {}  # dag id -> (result, seconds, what was checked)
        self.candidate = ""  # the deployment the assets example promotes
        self.gate_report = ""  # the train-then-promote approval's body: the evaluation report a person approved
        self._print_lock = threading.Lock()

    def record(self, dag_id: str, result: str, seconds: float, checked: str) -> None:
        self.results[dag_id] = (result, seconds, checked)
        with self._print_lock:
            print(f"    ran {dag_id}: {result} in {seconds:.1f} s", flush=True)

    def run(self, lane: Lane, dag_id: str) -> None:
        """Run one example, then check what it made; record the outcome."""
        if self.gateway == "lowcodeapi" and dag_id in DIRECT_ONLY:
            self.record(dag_id, "skipped", 0.0, "the LowCodeAPI gateway has none of its routes")
            return
        before = lane.requests()
        if dag_id == APPROVAL_DAG:
            ok, seconds, log = run_with_approval(dag_id, lane.env, lane.logs)
        else:
            assert lane.runner is not None
            ok, seconds, log = lane.runner.run(dag_id)
        after = lane.requests()
        lane.delta = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
        state, tasks = run_states(lane.db, dag_id)
        not_ok = {t: s for t, s in tasks.items() if s not in ("success", "skipped")}
        if not (ok and state == "success" and not not_ok):
            self.record(dag_id, "FAILED", seconds, f"run state {state}, tasks not ok: {not_ok}")
            with self._print_lock:
                print(f"    last lines of {log}:\n{tail(log)}", file=sys.stderr)
            return
        try:
            checked = CHECKS[dag_id](self, lane)
        except CheckFailed as exc:
            self.record(dag_id, "FAILED", seconds, f"check failed: {exc}")
            return
        self.record(dag_id, "success", seconds, checked)


def check_batch(demo: Demo, lane: Lane) -> str:
    report = xcom(lane.db, "baseten_batch_inference", "check_counts") or {}
    lines = Path(report.get("output_path", "/nonexistent")).read_text().splitlines() if report else []
    sent = lane.delta.get("production_predict", 0)
    expect(len(lines) == BATCH_SIZE and report.get("errors") == 0, f"{len(lines)} result lines, report {report}")
    expect(sent == BATCH_SIZE, f"the emulator answered {sent} predictions, not {BATCH_SIZE}")
    return f"{len(lines):,} result lines in input order, 0 errors, {sent:,} predictions counted by the emulator"


def check_train(demo: Demo, lane: Lane) -> str:
    db, dag = lane.db, APPROVAL_DAG
    job_id = xcom(db, dag, "create_training_job", "training_job_id")
    status = str(xcom(db, dag, "wait_for_training") or "unknown").removeprefix("TRAINING_JOB_")
    deployed, model = xcom(db, dag, "deploy_checkpoint"), xcom(db, dag, "deploy_checkpoint", "model_id")
    checkpoint = xcom(db, dag, "deploy_checkpoint", "checkpoint_id")
    promoted = xcom(db, dag, "promote_candidate")
    expect(status == "COMPLETED" and bool(deployed) and promoted == deployed, f"job {status}, promoted {promoted}")
    serving = lane.emu.hook().get_deployment("production", model_id=model).id
    expect(serving == promoted, f"production of {model} serves {serving}, not the promoted {promoted}")
    autoscaling = (xcom(db, dag, "set_autoscaling") or {}).get("status", "?")
    promotes = sum(n for k, n in lane.delta.items() if k.startswith("promote"))
    report = xcom(db, dag, "evaluate_candidate", "baseten_evaluation") or {}
    body_file = lane.logs / "local-airflow" / APPROVAL_BODY
    body = body_file.read_text() if body_file.exists() else ""
    evaluated = report.get("inputs", 0)
    expect(bool(report.get("gate", {}).get("passed")), f"the gate did not pass: {report.get('gate')}")
    expect(lane.delta.get("production_predict", 0) == evaluated > 0, f"production got {lane.delta} for {evaluated}")
    expect(report.get("markdown", "?") in body, "the approval's body does not hold the evaluation report")
    demo.gate_report = body
    cost = xcom(db, dag, "wait_for_training", "baseten_cost") or {}
    expect(bool(cost.get("usd")), f"the training wait reported no cost (XCom baseten_cost: {cost})")
    training_line = next((line for line in body.splitlines() if line.startswith("Training: loss")), "")
    expect(f"cost ${cost.get('usd', 0):.2f}" in training_line, f"the approval's body lacks the cost: {training_line!r}")
    return (
        f"training job {job_id} {status}, cost ${cost.get('usd', 0):.4f} ({cost.get('source')}: "
        f"{cost.get('minutes', 0):.2f} instance-minutes of {cost.get('instance_type')}); {checkpoint} deployed as "
        f"{deployed}; evaluated against production on {evaluated} inputs (gate passed, {evaluated} production "
        f"predictions counted by the emulator); approved through the REST API; production of {model} serves it "
        f"({promotes} promote call, autoscaling {autoscaling})"
    )


def check_async(demo: Demo, lane: Lane) -> str:
    counts = xcom(lane.db, "baseten_async_inference", "report") or {}
    expect(counts.get("succeeded") == ASYNC_BATCH_SIZE, f"gathered {counts}")
    expect(demo.receiver.count() == ASYNC_BATCH_SIZE, f"{demo.receiver.count()} of {ASYNC_BATCH_SIZE} webhooks")
    rows = [json.loads(line) for line in (demo.data / "async-outputs.jsonl").read_text().splitlines()]
    expect([r["index"] for r in rows] == list(range(ASYNC_BATCH_SIZE)), "the gathered outputs are not in input order")
    status_calls = lane.delta.get("get_async_request", 0)
    print(f"  baseten_async_inference gathered output, first row: {json.dumps(rows[0])[:160]}")
    return (
        f"{ASYNC_BATCH_SIZE} async outputs stored by the receiver and gathered in input order into "
        f"async-outputs.jsonl; {status_calls} status calls (the wait listened to the store)"
    )


def check_sharded(demo: Demo, lane: Lane) -> str:
    report = xcom(lane.db, "baseten_sharded_batch", "check_counts") or {}
    sent = lane.delta.get("production_predict", 0)
    expect(report.get("predictions") == BATCH_SIZE and report.get("errors") == 0, f"report {report}")
    expect(sent == BATCH_SIZE, f"the emulator answered {sent} predictions: an input was sent twice or not at all")
    return f"{BATCH_SIZE:,} predictions in {report['shards']} mapped shards merged in order, each input sent once"


def check_openai(demo: Demo, lane: Lane) -> str:
    import pyarrow.parquet as pq

    report = xcom(lane.db, "baseten_openai_batches", "check_outputs") or {}
    embedded = xcom(lane.db, "baseten_openai_batches", "embed") or {}
    table = pq.read_table(embedded["output_path"])
    first = table.column("output")[0].as_py()  # the output column is list<float32>: one vector a row
    expect(table.num_rows == DOCUMENTS and table.column("error").null_count == DOCUMENTS, "embeddings rows")
    expect(isinstance(first, list) and all(isinstance(x, float) for x in first), f"not a vector: {first!r}")
    ids = pq.read_table(demo.data / "documents.parquet", columns=["id"]).column("id").to_pylist()
    expect(table.column("id").to_pylist() == ids, "embeddings rows do not carry their document ids in order")
    chats = lane.delta.get("model_apis_request", 0)
    embeds = lane.delta.get("environment_sync", 0)
    expect(report.get("summaries", {}).get("rows") == DOCUMENTS and chats == DOCUMENTS, f"{chats} chat requests")
    expect(embeds == -(-DOCUMENTS // 64), f"{embeds} embeddings requests for {DOCUMENTS} texts, 64 a request")
    return (
        f"{DOCUMENTS} embeddings ({len(first)}-d, {embeds} requests) and {DOCUMENTS} Model APIs chat completions "
        f"written to Parquet, one row per document in order, 0 errors"
    )


def check_chains(demo: Demo, lane: Lane) -> str:
    one = xcom(lane.db, "baseten_chains", "ask") or {}
    many = xcom(lane.db, "baseten_chains", "ask_many") or []
    states = xcom(lane.db, "baseten_chains", "wait_for_async") or {}
    expect(one.get("output") == {"question": "What is a chain?"}, f"ask returned {one}")
    expect(len(many) == 3 and len(states) == 3 and set(states.values()) == {"SUCCEEDED"}, f"{many} {states}")
    sync, queued = (
        lane.delta.get("chain_production_run_remote", 0),
        lane.delta.get("chain_production_async_run_remote", 0),
    )
    expect((sync, queued) == (4, 3), f"the emulator saw {sync} run_remote and {queued} async_run_remote calls")
    promoted = xcom(lane.db, "baseten_chains", "promote")
    serving = lane.emu.hook().get_chain_environment(next(iter(lane.emu.state.chains)), "production").current_deployment
    expect(promoted is not None and serving is not None and serving.id == promoted, f"production serves {serving}")
    expect(lane.delta.get("promote_to_chain_environment", 0) == 1, "one chain promotion")
    return (
        f"{sync} run_remote calls answered in order; {queued} async_run_remote calls SUCCEEDED (waited deferred); "
        f"chain deployment {promoted} waited ACTIVE, smoke-tested, promoted to production (once) and scaled"
    )


def check_deploy(demo: Demo, lane: Lane) -> str:
    report = xcom(lane.db, "baseten_deploy", "report") or {}
    hook = lane.emu.hook()
    found = {}
    for name, key in (("airflow-example-embedder", "config"), ("airflow-example-hello", "truss")):
        (model,) = [m for m in hook.list_models() if m.name == name]
        found[key] = hook.get_deployment(report.get(key, "?"), model_id=model.id).status
    expect(found == {"config": "ACTIVE", "truss": "ACTIVE"}, f"deployments on the emulator: {found}")
    expect(report["answer"].get("deployment_id") == report["truss"], f"answered by {report['answer']}")
    return (
        f"config -> {report['config']}, Truss dir -> {report['truss']}, both ACTIVE on the emulator; "
        "the Truss deployment answered the predict"
    )


def check_producer(demo: Demo, lane: Lane) -> str:
    candidate = xcom(lane.db, "baseten_promote_new_deployment", "candidate")
    serving = lane.emu.hook().get_deployment("production", model_id=lane.emu.model_id).id
    expect(candidate == demo.candidate == serving, f"promoted {candidate}; production serves {serving}")
    events = asset_events(lane.db, f"baseten://model/{lane.emu.model_id}/environments/production")
    expect(len(events) == 1 and events[0].get("deployment_id") == candidate, f"asset events {events}")
    return f"{candidate} smoke-tested and promoted; 1 asset event on production (run by hand: no watcher here)"


def check_consumer(demo: Demo, lane: Lane) -> str:
    seen = xcom(lane.db, "baseten_on_new_production", "new_production")
    outputs = xcom(lane.db, "baseten_on_new_production", "rescore") or []
    expect(seen == demo.candidate, f"the consumer read {seen} from the asset event, not {demo.candidate}")
    expect(outputs and all(o["deployment_id"] == seen for o in outputs), f"rescored on {outputs}")
    return f"read {seen} from the producer's event (inlet_events); {len(outputs)} inputs re-scored on it"


def asset_events(db: Path, uri: str) -> list[dict[str, Any]]:
    """The extras of the asset events recorded for ``uri``, oldest first."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? ORDER BY e.id",
            (uri,),
        ).fetchall()
    return [json.loads(r[0]) if isinstance(r[0], (str, bytes)) else r[0] for r in rows]


CHECKS = {
    "baseten_batch_inference": check_batch,
    "baseten_train_then_promote": check_train,
    "baseten_async_inference": check_async,
    "baseten_sharded_batch": check_sharded,
    "baseten_openai_batches": check_openai,
    "baseten_chains": check_chains,
    "baseten_deploy": check_deploy,
    "baseten_promote_new_deployment": check_producer,
    "baseten_on_new_production": check_consumer,
}


def main() -> int:
    from airflow_provider_baseten.emulator import BasetenEmulator

    chosen = os.environ.get("BASETEN_DEMO_GATEWAY", "baseten").strip().lower() or "baseten"
    if chosen not in ("baseten", "lowcodeapi"):
        print(f"BASETEN_DEMO_GATEWAY must be 'baseten' or 'lowcodeapi', not {chosen!r}", file=sys.stderr)
        return 2
    gateway: Literal["baseten", "lowcodeapi"] = "lowcodeapi" if chosen == "lowcodeapi" else "baseten"
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="baseten-demo-"))
    home, home_a, data, logs = work / "airflow", work / "airflow-approval", work / "data", work / "logs"
    approval_dags = work / "approval-dags"
    for d in (home, home_a, approval_dags, data / "output", logs):
        d.mkdir(parents=True)
    demo: Demo | None = None
    try:
        with (
            BasetenEmulator(api_key=API_KEY, time_scale=TIME_SCALE, webhook_secret=WEBHOOK_SECRET) as emu,
            BasetenEmulator(api_key=API_KEY, time_scale=TIME_SCALE) as emu_a,
            WebhookReceiver(data / "webhook-store", WEBHOOK_SECRET) as receiver,
        ):
            write_inputs(data / "input.jsonl", BATCH_SIZE)
            write_documents(data / "documents.parquet", DOCUMENTS)
            demo = Demo(gateway, data, receiver)
            # The assets example's producer, run by hand, promotes this new deployment (it becomes ACTIVE).
            demo.candidate = emu.create_deployment(emu.model_id, name="candidate")["id"]
            variables = {
                "baseten_batch_input": str(data / "input.jsonl"),
                "baseten_batch_output_dir": str(data / "output"),
                "baseten_training_project": DEMO_PROJECT,  # created by the DAG (get_or_create_training_project)
                "baseten_webhook_url": receiver.url,
                "baseten_results_path": str(data / "webhook-store"),
                "baseten_async_output": str(data / "async-outputs.jsonl"),
                "baseten_async_batch_size": str(ASYNC_BATCH_SIZE),
                "baseten_sharded_work_dir": str(data / "sharded"),
                "baseten_shard_rows": str(SHARD_ROWS),
                "baseten_documents": str(data / "documents.parquet"),
                "baseten_openai_output_dir": str(data / "openai"),
                "baseten_chain_id": next(iter(emu.state.chains)),
                # The chains example takes this new chain deployment (it builds, then is ACTIVE) to production.
                "baseten_chain_deployment_id": emu.state.create_chain_deployment(next(iter(emu.state.chains)))["id"],
                "baseten_candidate_deployment_id": demo.candidate,
            }
            env = airflow_env(home, emu.connection_json(gateway=gateway), variables)
            env["BASETEN_EXAMPLE_MODEL_ID"] = emu.model_id  # the assets example's model, read at parse time
            # Lane A's Airflow parses only its DAG: no other example (nor the assets example's watcher) runs there.
            shutil.copy(dags_folder() / f"{APPROVAL_DAG}.py", approval_dags)
            env_a = airflow_env(home_a, emu_a.connection_json(gateway=gateway), variables, dags=approval_dags)
            where = emu.gateway_url if gateway == "lowcodeapi" else emu.url
            print(f"Baseten emulators ({gateway} API) on {where} and {emu_a.url}; Airflow home {home}")
            migrate = subprocess.run(
                [airflow_cmd(), "db", "migrate"], env=env, capture_output=True, text=True, check=False
            )
            if migrate.returncode != 0:
                print(migrate.stdout[-3000:], migrate.stderr[-3000:], sep="\n", file=sys.stderr)
                return 1
            shutil.copy(home / "airflow.db", home_a / "airflow.db")  # one migration for both lanes
            lane_b = Lane(emu, env, logs)
            lane_a = Lane(emu_a, env_a, logs)
            real_airflow_pace(emu_a)
            approval = threading.Thread(target=demo.run, args=(lane_a, APPROVAL_DAG), name="lane-a")
            approval.start()
            lane_b.runner = DagRunner(env, logs)
            try:
                for dag_id in DAGS:
                    if dag_id != APPROVAL_DAG:
                        demo.run(lane_b, dag_id)
            finally:
                lane_b.runner.close()
                approval.join()
    finally:
        if os.environ.get("BASETEN_DEMO_KEEP"):
            print(f"Kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"\n[{gateway}] each example, what ran and what was checked (on the emulator and in the outputs):")
    results = demo.results if demo is not None else {}
    for dag_id in DAGS:
        result, seconds, checked = results.get(dag_id, ("FAILED", 0.0, "did not run"))
        print(f"  {dag_id:<32} {result:<8} {seconds:5.1f} s  {checked}")
    if demo is not None and demo.gate_report:
        print(f"\nThe gate's report, as the approval of {APPROVAL_DAG} showed it (Airflow's rendered body):\n")
        print(demo.gate_report)
    failures = [d for d in DAGS if results.get(d, ("FAILED",))[0] == "FAILED"]
    if failures:
        print(f"\nFAILED: {', '.join(failures)} ({elapsed:.0f} s)", file=sys.stderr)
        return 1
    ran = sum(1 for d in DAGS if results[d][0] == "success")
    print(f"\nAll {ran} example DAGs succeeded in {elapsed:.0f} s.")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-dags-test"]:
        sys.exit(serve_dags_test(Path(sys.argv[2])))
    sys.exit(main())
