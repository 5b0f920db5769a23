"""The example DAGs: they import cleanly, and each one runs to success (``dag.test()``) against the emulator.

The DAGs read everything they need from the ``baseten_default`` connection and Variables, so the tests
set ``AIRFLOW_CONN_BASETEN_DEFAULT`` and ``AIRFLOW_VAR_*`` exactly as ``make demo`` does.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from dev.demo import WebhookReceiver, asset_events, write_documents, write_inputs
from tests.dag_support import ensure_db, run_dag, task_states

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DAG_IDS = {
    "baseten_batch_inference",
    "baseten_train_then_promote",
    "baseten_async_inference",
    "baseten_sharded_batch",
    "baseten_openai_batches",
    "baseten_chains",
    "baseten_deploy",
    "baseten_promote_new_deployment",
    "baseten_on_new_production",
}


def dag_bag() -> Any:
    try:  # Airflow >= 3.2
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return (
        DagBag(dag_folder=str(EXAMPLES), include_examples=False) if _takes_examples(DagBag) else DagBag(str(EXAMPLES))
    )


def _takes_examples(cls: Any) -> bool:
    import inspect

    return "include_examples" in inspect.signature(cls.__init__).parameters


@pytest.fixture
def env(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The connection, Variables and a fast poll interval, pointing at the emulator and ``tmp_path``."""
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(200)
    monkeypatch.setenv("BASETEN_EXAMPLE_POLL_SECONDS", "0.2")  # read when the DAG file is parsed
    monkeypatch.setenv("BASETEN_EXAMPLE_MODEL_ID", emulator.model_id)  # the assets example watches it
    write_inputs(tmp_path / "input.jsonl", 300)
    write_documents(tmp_path / "documents.parquet", 100)
    variables = {
        "baseten_batch_input": str(tmp_path / "input.jsonl"),
        "baseten_batch_output_dir": str(tmp_path / "out"),
        "baseten_training_project_id": next(iter(emulator.state.projects)),
        "baseten_async_batch_size": "5",
        "baseten_sharded_work_dir": str(tmp_path / "sharded"),
        "baseten_shard_rows": "120",
        "baseten_documents": str(tmp_path / "documents.parquet"),
        "baseten_openai_output_dir": str(tmp_path / "openai"),
        "baseten_chain_id": next(iter(emulator.state.chains)),
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", value)
    return variables


def load(dag_id: str) -> Any:
    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


def test_example_dags_import_without_errors() -> None:
    bag = dag_bag()
    assert bag.import_errors == {}
    assert set(bag.dags) == DAG_IDS
    for dag in bag.dags.values():
        assert "baseten" in dag.tags
        assert dag.doc_md and "Configure it" in dag.doc_md  # each DAG reads like a how-to
        for task in dag.tasks:  # every Baseten task uses the default connection
            assert getattr(task, "baseten_conn_id", "baseten_default") == "baseten_default"


def test_batch_inference_writes_every_prediction_in_order(env: dict[str, Any], emulator: Any) -> None:
    run = run_dag(load("baseten_batch_inference"))
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    report = xcom(run, "check_counts")
    assert report["predictions"] == 300 and report["errors"] == 0
    lines = Path(report["output_path"]).read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(300))
    assert emulator.counters()["requests"]["production_predict"] == 300


def test_train_then_promote_promotes_the_candidate(
    env: dict[str, Any], emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project is named, not given by id: the DAG creates it on the first run and finds it on the next.
    monkeypatch.delenv("AIRFLOW_VAR_BASETEN_TRAINING_PROJECT_ID")
    monkeypatch.setenv("AIRFLOW_VAR_BASETEN_TRAINING_PROJECT", "nightly-fine-tune")
    monkeypatch.setenv("AIRFLOW_VAR_BASETEN_SKIP_APPROVAL", "true")  # unattended (the e2e tests answer it)
    run = run_dag(load("baseten_train_then_promote"))
    project = xcom(run, "training_project")
    assert [p["id"] for p in emulator.state.snapshot()["training_projects"] if p["name"] == "nightly-fine-tune"] == [
        project
    ]
    assert emulator.hook().get_training_job(project, xcom(run, "create_training_job")).training_project_id == project
    states = task_states(run)
    assert states.pop("training_project") == "success"
    assert states.pop("recreate_training_job") == "skipped"
    assert states.pop("reject_candidate") == "skipped"
    assert states.pop("approve_promotion") == "skipped"
    assert set(states.values()) == {"success"}, states
    assert xcom(run, "wait_for_training") == "TRAINING_JOB_COMPLETED"
    assert xcom(run, "deploy_checkpoint", "checkpoint_id") == "checkpoint-2"  # the latest
    candidate, model = xcom(run, "deploy_checkpoint"), xcom(run, "deploy_checkpoint", "model_id")
    assert model == "echo1234"  # the connection's model
    assert [
        d.id for d in emulator.state.models[model].deployments.values() if d.name.startswith("deploy_checkpoint")
    ] == [candidate]  # one deployment made
    # The gate's evidence: each target got one request per eval input, counted on the server.
    report = xcom(run, "evaluate_candidate", "baseten_evaluation")
    assert report["gate"]["passed"] and report["inputs"] == 8
    assert report["candidate"]["deployment_id"] == candidate and report["current"]["deployment_id"] == "dep1prod"
    assert emulator.counters()["requests"]["production_predict"] == 8
    assert emulator.state.models[model].deployments[candidate].predictions == 3 + 8  # the smoke test's 3, then 8
    assert "| keyword_recall | 1 | 1 | +0 |" in report["markdown"]
    assert xcom(run, "promote_candidate") == candidate
    hook = emulator.hook()
    assert hook.get_deployment("production", model_id=model).id == candidate
    assert xcom(run, "set_autoscaling")["status"] in ("ACCEPTED", "QUEUED", "UNCHANGED")


def test_train_then_promote_recreates_and_rejects_a_weak_candidate(
    env: dict[str, Any], emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = emulator.hook()
    project = env["baseten_training_project_id"]
    earlier = hook.create_training_job(project, {"image": {"base_image": "python:3.11"}, "name": "known-good"})
    monkeypatch.setenv("AIRFLOW_VAR_BASETEN_RECREATE_TRAINING_JOB_ID", earlier.id)
    monkeypatch.setenv("AIRFLOW_VAR_BASETEN_MIN_QUALITY", "1.5")  # unreachable: the candidate is rejected
    run = run_dag(load("baseten_train_then_promote"))
    states = task_states(run)
    assert states["create_training_job"] == "skipped" and states["recreate_training_job"] == "success"
    assert states["promote_candidate"] == "skipped" and states["set_autoscaling"] == "skipped"
    assert states["approve_promotion"] == "skipped" and states["evaluate_candidate"] == "skipped"
    assert states["reject_candidate"] == "success"
    assert xcom(run, "recreate_training_job") != earlier.id  # a new job, copied from the earlier one
    model, candidate = xcom(run, "deploy_checkpoint", "model_id"), xcom(run, "deploy_checkpoint")
    assert hook.get_deployment("production", model_id=model).id == "dep1prod" != candidate  # production untouched
    assert emulator.counters()["requests"].get("promote_deployment", 0) == 0


def test_async_inference_delivers_every_result_to_the_webhook(
    env: dict[str, Any], emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store, out = tmp_path / "webhook-store", tmp_path / "async-outputs.jsonl"
    with WebhookReceiver(store) as receiver:
        monkeypatch.setenv("AIRFLOW_VAR_BASETEN_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("AIRFLOW_VAR_BASETEN_RESULTS_PATH", str(store))
        monkeypatch.setenv("AIRFLOW_VAR_BASETEN_ASYNC_OUTPUT", str(out))
        run = run_dag(load("baseten_async_inference"))
        assert set(task_states(run).values()) == {"success"}, task_states(run)
        ids = xcom(run, "submit")
        assert len(ids) == 5
        assert xcom(run, "report") == {"total": 5, "succeeded": 5, "failed": 0}
        assert set(receiver.store.list_ids()) == set(ids)  # the wait listened: every result was stored
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["index"] for r in rows] == list(range(5))  # gathered in input order
        assert emulator.counters()["requests"].get("get_async_request", 0) == 0  # no status call


def test_sharded_batch_merges_every_shard_in_order(env: dict[str, Any], emulator: Any, tmp_path: Path) -> None:
    """split -> mapped predict (one task per shard, named by map_index_template) -> merge -> check."""
    run = run_dag(load("baseten_sharded_batch"))
    states = task_states(run)
    assert states == {
        "split": "success",
        **{f"predict[{i}]": "success" for i in range(3)},  # 300 inputs, 120 a shard
        "merge": "success",
        "check_counts": "success",
    }, states
    names = sorted(ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "predict")
    assert names == ["part-00000", "part-00001", "part-00002"]
    report = xcom(run, "check_counts")
    assert report == {"predictions": 300, "errors": 0, "shards": 3, "output_path": report["output_path"]}
    assert emulator.counters()["requests"]["production_predict"] == 300  # each input sent once
    # The merged file is byte-identical to one task predicting the whole input.
    single = tmp_path / "single.jsonl"
    emulator.hook().predict_batch(
        __import__("airflow_provider_baseten.batch", fromlist=["x"]).read_records(env["baseten_batch_input"]),
        output_path=single,
    )
    assert Path(report["output_path"]).read_bytes() == single.read_bytes()
    # scale_for_batch (2 replicas, the example's default) was given back after each shard.
    dep = emulator.hook().get_deployment("production").autoscaling_settings
    assert (dep.min_replica, dep.max_replica) == (0, 1)
    assert emulator.counters()["requests"]["update_deployment_autoscaling_settings"] == 2 * 3


def test_a_sharded_retry_sends_only_what_the_shard_lacks(
    env: dict[str, Any], emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard's earlier try left results (resume=True): only the rest is sent, and they are merged."""
    from datetime import datetime, timezone

    when = datetime(2025, 3, 1, tzinfo=timezone.utc)
    run_dir = tmp_path / "sharded" / when.strftime("%Y%m%dT%H%M%S")
    (run_dir / "shards").mkdir(parents=True)
    earlier = [{"index": i, "output": f"kept from an earlier try {i}"} for i in range(50)]
    (run_dir / "shards" / "part-00001.out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in earlier))
    run = run_dag(load("baseten_sharded_batch"), logical_date=when)
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    assert emulator.counters()["requests"]["production_predict"] == 300 - 50
    merged = [json.loads(line) for line in Path(xcom(run, "merge")["output_path"]).read_text().splitlines()]
    assert [r["index"] for r in merged] == list(range(300))
    assert [r["output"] for r in merged[120:170]] == [f"kept from an earlier try {i}" for i in range(50)]


def test_openai_batches_write_one_parquet_row_per_document(env: dict[str, Any], emulator: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_provider_baseten.emulator.handlers.openai import embed

    run = run_dag(load("baseten_openai_batches"))
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    documents = pq.read_table(env["baseten_documents"])
    texts, ids = documents.column("text").to_pylist(), documents.column("id").to_pylist()
    vectors = pq.read_table(xcom(run, "embed")["output_path"])
    assert vectors.column("index").to_pylist() == list(range(100))
    assert vectors.column("id").to_pylist() == ids  # passthrough_columns=["id"]
    assert str(vectors.schema.field("output").type) == "list<element: float>"  # a vector column, not JSON text
    expected = [pa.array(embed(t), pa.float32()).to_pylist() for t in texts]  # stored as float32
    assert vectors.column("output").to_pylist() == expected
    assert vectors.column("error").null_count == 100  # no row failed
    summaries = pq.read_table(xcom(run, "summarise")["output_path"])
    assert summaries.column("id").to_pylist() == ids
    chats = summaries.column("output").to_pylist()
    answers = [json.loads(c)["choices"][0]["message"]["content"] for c in chats]
    assert answers == [f"echo: {t}" for t in texts]  # the emulated LLM echoes the user's text, in input order
    requests = emulator.counters()["requests"]
    assert requests["model_apis_request"] == 100  # the chat batch went to Model APIs (model_apis=True)
    assert requests["environment_sync"] == 2  # 100 texts, 64 a request, to the production deployment
    assert xcom(run, "check_outputs")["summaries"]["rows"] == 100
    # cache=: the task stored each text's vector; the same texts on the same deployment are not sent again.
    embedded = xcom(run, "embed")
    assert embedded["cached"] == 0 and embedded["cache"] == "0 of 100 texts from cache, 100 sent"
    cache = os.path.join(env["baseten_openai_output_dir"], "embeddings-cache")
    again = emulator.hook().embed_batch(texts, environment="production", batch_size=64, cache=cache)
    assert again.cached == 100 and again.results == vectors_of(texts)
    assert emulator.counters()["requests"]["environment_sync"] == 2  # nothing more was sent


def vectors_of(texts: list[str]) -> list[list[float]]:
    from airflow_provider_baseten.emulator.handlers.openai import embed

    return [embed(t) for t in texts]


def test_chains_run_sync_in_order_and_async_deferred(
    env: dict[str, Any], emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100x: builds and async calls take a fraction of a second, and the async statuses outlive the run (Baseten
    # keeps one an hour: 36 s here). At 2000x, on Airflow 3.1 (which ran the deployment branch first) they
    # expired before the sensor looked: UNKNOWN.
    emulator.set_time_scale(100)
    chain = env["baseten_chain_id"]
    new = emulator.state.create_chain_deployment(chain)["id"]  # as `truss chains push` makes (BUILDING)
    monkeypatch.setenv("AIRFLOW_VAR_BASETEN_CHAIN_DEPLOYMENT_ID", new)
    run = run_dag(load("baseten_chains"))
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    assert xcom(run, "ask")["output"] == {"question": "What is a chain?"}
    questions = [r["output"]["question"] for r in xcom(run, "ask_many")]
    assert questions == ["What does Airflow schedule?", "What does Baseten serve?", "Where do async outputs go?"]
    ids = xcom(run, "submit_async")
    assert xcom(run, "wait_for_async") == dict.fromkeys(ids, "SUCCEEDED") and len(ids) == 3
    requests = emulator.counters()["requests"]
    assert (requests["chain_production_run_remote"], requests["chain_production_async_run_remote"]) == (4, 3)
    assert all(
        r["path"].startswith(f"/chain/{chain}/") for r in emulator.requests() if r["endpoint"].startswith("chain_")
    )
    # The new deployment: ACTIVE, smoke-tested on its own route, promoted into production, scaled there.
    assert xcom(run, "wait_active") == "ACTIVE"
    assert xcom(run, "smoke")["deployment_id"] == new and requests["chain_deployment_run_remote"] == 1
    assert xcom(run, "promote") == new and requests["promote_to_chain_environment"] == 1
    hook = emulator.hook()
    production = hook.get_chain_environment(chain, "production")
    assert production.current_deployment is not None and production.current_deployment.id == new
    entrypoint = next(s for s in production.chainlet_settings if s.chainlet_name == "Entrypoint")
    assert entrypoint.autoscaling_settings is not None and entrypoint.autoscaling_settings.max_replica == 4
    assert xcom(run, "scale")["status"] == "ACCEPTED"


def test_deploy_makes_active_deployments_from_a_config_and_the_truss_dir(env: dict[str, Any], emulator: Any) -> None:
    run = run_dag(load("baseten_deploy"))
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    report = xcom(run, "report")
    with emulator.state.lock:
        models = {m.name: m for m in emulator.state.models.values()}
        made = {
            name: [(d.id, d.status) for d in models[name].deployments.values()]
            for name in ("airflow-example-embedder", "airflow-example-hello")
        }
    assert made == {
        "airflow-example-embedder": [(report["config"], "ACTIVE")],
        "airflow-example-hello": [(report["truss"], "ACTIVE")],
    }
    shipped = sorted(f for slot in emulator.state.uploads.values() for f in slot["files"])
    assert shipped == ["config.yaml", "config.yaml", "model/model.py"]  # the config; the Truss dir
    assert report["answer"]["deployment_id"] == report["truss"]  # the predict reached the new deployment


def test_assets_producer_event_reaches_the_consumer(env: dict[str, Any], emulator: Any, monkeypatch: Any) -> None:
    """The producer, run by hand, promotes and emits; the consumer reads that event (``inlet_events``)."""
    candidate = emulator.create_deployment(emulator.model_id, name="candidate")["id"]
    monkeypatch.setenv("AIRFLOW_VAR_BASETEN_CANDIDATE_DEPLOYMENT_ID", candidate)
    uri = f"baseten://model/{emulator.model_id}/environments/production"
    db = Path(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    # The session shares one metadata DB, and the emulator's seeded ids repeat after each reset: an earlier test
    # may have recorded an event for the same deployment id. Only the events this run adds count.
    ensure_db()  # the DB exists before it is read (this test may be the first to use it)
    earlier = len(asset_events(db, uri))
    producer = run_dag(load("baseten_promote_new_deployment"))
    assert set(task_states(producer).values()) == {"success"}, task_states(producer)
    assert emulator.hook().get_deployment("production").id == candidate
    (event,) = [e for e in asset_events(db, uri)[earlier:] if e.get("deployment_id") == candidate]
    assert event["previous_deployment_id"] == "dep1prod" and event["serving"] is True
    consumer = run_dag(load("baseten_on_new_production"))
    assert set(task_states(consumer).values()) == {"success"}, task_states(consumer)
    assert xcom(consumer, "new_production") == candidate
    assert {o["deployment_id"] for o in xcom(consumer, "rescore")} == {candidate}


def test_every_operator_and_sensor_use_is_between_howto_markers() -> None:
    """The docs include the examples by ``# [START howto_...]`` / ``# [END howto_...]``: balanced, unique,
    around every provider operator and sensor, and listed in the file's first comment (new files)."""
    for path in sorted(EXAMPLES.glob("*.py")):
        lines = path.read_text().splitlines()
        starts = [ln.split("[START ")[1].rstrip("]") for ln in lines if "# [START howto_" in ln]
        ends = [ln.split("[END ")[1].rstrip("]") for ln in lines if "# [END howto_" in ln]
        assert starts == ends and len(set(starts)) == len(starts), path.name
        inside = None
        for ln in lines:
            if "# [START howto_" in ln:
                inside = ln
            elif "# [END howto_" in ln:
                inside = None
            elif re.search(r"= \w+(Operator|Sensor)(\.partial)?\(", ln) and "airflow.providers" not in ln:
                provider_class = re.search(r"(\w+)(Operator|Sensor)", ln)
                assert provider_class and (inside or provider_class.group(1) == "Empty"), f"{path.name}: {ln}"
        if lines[0].startswith("# Markers"):
            header = " ".join(ln for ln in lines[:3] if ln.startswith("#"))
            assert all(name in header for name in starts), path.name
