"""Output a pipeline can use (issue 23): embeddings as a ``list<float>`` Parquet column, input columns carried
to each result (``passthrough_columns``), and batch logs that count texts, prompts and inputs.

Against the emulator over HTTP; requests are counted at the server.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.batch_io import read_results, write_records
from airflow_provider_baseten.emulator import FaultRule
from airflow_provider_baseten.emulator.handlers import openai as emu_openai
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenBatchError, BasetenValidationError
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator, RunChainOperator
from tests.dag_support import context, run_dag, task_states
from tests.integration.conftest import make_hook

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

START = datetime(2026, 1, 1)


@pytest.fixture
def hook(emulator: BasetenEmulator) -> Any:
    h = make_hook(emulator)
    yield h
    h.close()


def _as_float32(values: list[float]) -> list[float]:
    return list(pa.array(values, pa.float32()).to_pylist())


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"doc-{i}", "body": f"text {i}", "n": i} for i in range(n)]


def _sent(emulator: BasetenEmulator, endpoint: str) -> int:
    return int(emulator.counters()["requests"].get(endpoint, 0))


# -- 1. embeddings in Parquet: a list<float> vector column ----------------------------------------------------
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_in_parquet_are_a_list_of_float32_column(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path, encoding: str
) -> None:
    """Was: the vector was JSON text in a string column. base64 answers are decoded into the same column."""
    out = tmp_path / "vectors.parquet"
    texts = [f"doc {i}" for i in range(20)]
    hook.embed_batch(texts, batch_size=6, output_path=out, model="m", model_apis=True, encoding_format=encoding)
    table = pq.read_table(out)
    assert table.schema.field("output").type == pa.list_(pa.float32())
    assert table.schema.names == ["index", "output", "error"]
    assert table.column("index").to_pylist() == list(range(20))
    expected = [_as_float32(emu_openai.embed(t)) for t in texts]
    if encoding == "float":  # the emulator's base64 answer is its own float32 encoding of the same numbers
        assert table.column("output").to_pylist() == expected
    else:
        assert [len(v) for v in table.column("output").to_pylist()] == [len(v) for v in expected]
    # Other kinds keep today's shape: the output as JSON text.
    hook.predict_batch([{"n": 1}], output_path=tmp_path / "p.parquet")
    assert pq.read_schema(tmp_path / "p.parquet").field("output").type == pa.string()


def test_a_vector_parquet_output_resumes(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Resume reads the list<float> column back (the fingerprint is unchanged), sends only the failed texts,
    and says how many were already done."""
    out = tmp_path / "vectors.parquet"
    texts = [f"doc {i}" for i in range(60)]
    emulator.set_faults([FaultRule("500", endpoints=["model_apis_request"], times=12)])  # texts 0-7
    opts: dict[str, Any] = {"batch_size": 8, "output_path": out, "model": "m", "model_apis": True}
    first = hook.embed_batch(texts, max_concurrency=1, on_error="record", max_error_rate=1.0, **opts)
    emulator.set_faults([])
    assert sorted(first.failures) == list(range(8))
    before = _sent(emulator, "model_apis_request")
    log = logging.getLogger("test_vector_resume")
    caplog.set_level(logging.INFO, logger=log.name)
    second = hook.embed_batch(texts, resume=True, log=log, **opts)
    assert (second.skipped, second.succeeded) == (52, 8)
    assert _sent(emulator, "model_apis_request") - before == 1  # the eight failed texts, one request
    table = pq.read_table(out)
    assert table.schema.field("output").type == pa.list_(pa.float32())
    assert table.column("output").to_pylist() == [_as_float32(emu_openai.embed(t)) for t in texts]
    messages = [r.getMessage() for r in caplog.records]
    assert any("Resuming: 52 of 60 texts already done" in m for m in messages), messages
    final = [m for m in messages if "finished" in m]
    assert "60/60 texts embedded (100.0%), 52 already done" in final[0]


# -- 2. passthrough_columns --------------------------------------------------------------------------------------
@pytest.mark.parametrize("out_fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("in_fmt", ["jsonl", "parquet"])
def test_passthrough_ids_survive_a_run_that_stops_midway_and_its_resume(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path, in_fmt: str, out_fmt: str
) -> None:
    """The ids of a file's rows are carried to each result, in input order, across a stopped run and its resume."""
    from airflow_provider_baseten.batch_io import read_records

    src = tmp_path / f"in.{in_fmt}"
    write_records(src, _rows(60))
    out = tmp_path / f"out.{out_fmt}"
    # After 25 answers every predict fails: input 25 exhausts its retries and the error budget stops the batch.
    emulator.set_faults([FaultRule("500", endpoints=["production_predict"], skip=25)])
    with pytest.raises(BasetenBatchError, match="over the error budget"):
        hook.predict_batch(
            read_records(src), output_path=out, passthrough_columns=["id"], max_failures=0, max_concurrency=1, total=60
        )
    emulator.set_faults([])
    kept = list(read_results(out))
    assert [r["id"] for r in kept if "output" in r] == [f"doc-{i}" for i in range(25)]
    before = _sent(emulator, "production_predict")
    second = hook.predict_batch(
        read_records(src), output_path=out, passthrough_columns=["id"], resume=True, total=60, max_concurrency=4
    )
    assert second.skipped == 25 and second.succeeded == 35
    assert _sent(emulator, "production_predict") - before == 35  # only what the first run lacked
    records = list(read_results(out))
    assert [r["index"] for r in records] == list(range(60))
    assert [r["id"] for r in records] == [f"doc-{i}" for i in range(60)]
    assert [r["output"]["output"]["n"] for r in records] == list(range(60))  # each id beside its own output
    if out_fmt == "parquet":
        schema = pq.read_schema(out)
        assert schema.names == ["index", "id", "output", "error"]
        assert schema.field("id").type == pa.string()
    else:
        assert json.loads(out.read_text().splitlines()[0]) == {
            "index": 0,
            "output": records[0]["output"],
            "id": "doc-0",
        }


def test_passthrough_on_embeddings_chat_and_chains_in_memory(emulator: BasetenEmulator, hook: Any) -> None:
    """In-memory lists of dicts: each result is a record with the columns. Chat requests and chain inputs are
    sent without them (they are not part of those bodies' schemas)."""
    rows = [{"id": 10 + i, "body": f"doc {i}"} for i in range(5)]
    embedded = hook.embed_batch(
        rows, text_column="body", passthrough_columns=["id"], model="m", model_apis=True, dimensions=3
    ).results
    assert embedded == [{"index": i, "output": emu_openai.embed(f"doc {i}", 3), "id": 10 + i} for i in range(5)]
    chats = [{"id": i, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(3)]
    answers = hook.chat_completions_batch(chats, model="llm", model_apis=True, passthrough_columns=["id"]).results
    assert [(a["id"], a["output"]["choices"][0]["message"]["content"]) for a in answers] == [
        (i, f"echo: q{i}") for i in range(3)
    ]
    chained = hook.run_chain_batch(
        [{"id": i, "n": i * 2} for i in range(3)], chain_id="chain123", passthrough_columns=["id"]
    ).results
    assert [(c["id"], c["output"]["output"]) for c in chained] == [(i, {"n": i * 2}) for i in range(3)]


def test_embeddings_with_passthrough_to_parquet_types_each_column(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path
) -> None:
    out = tmp_path / "v.parquet"
    rows = [{"id": i, "score": i / 2, "tag": ["a", 1][i % 2], "body": f"doc {i}"} for i in range(12)]
    hook.embed_batch(
        iter(rows),
        text_column="body",
        passthrough_columns=["id", "score", "tag"],
        output_path=out,
        model="m",
        model_apis=True,
        batch_size=5,
    )
    table = pq.read_table(out)
    assert table.schema.names == ["index", "id", "score", "tag", "output", "error"]
    kinds = [table.schema.field(c).type for c in ("id", "score", "tag", "output")]
    assert kinds == [pa.int64(), pa.float64(), pa.string(), pa.list_(pa.float32())]
    assert table.column("id").to_pylist() == list(range(12))
    assert table.column("tag").to_pylist() == ["a", "1"] * 6  # mixed kinds: strings, other values as JSON text


def test_a_row_without_a_passthrough_column(emulator: BasetenEmulator, hook: Any) -> None:
    """A list is checked before anything is sent; from an iterator the row fails alone, unsent."""
    rows: list[Any] = [{"id": 0, "n": 0}, {"n": 1}, {"id": 2, "n": 2}]
    with pytest.raises(BasetenValidationError, match=r"input 1 has no column 'id'") as err:
        hook.predict_batch(rows, passthrough_columns=["id"])
    assert err.value.field == "passthrough_columns"
    assert _sent(emulator, "production_predict") == 0
    result = hook.predict_batch(iter(rows), passthrough_columns=["id"], on_error="record", max_error_rate=1.0)
    assert list(result.failures) == [1] and "input 1 has no column 'id'" in result.failures[1]
    assert [r.get("id") for r in result.results] == [0, None, 2]
    assert _sent(emulator, "production_predict") == 2


@pytest.mark.parametrize("bad", ["index", "output", "error"])
def test_a_passthrough_name_that_is_a_result_field_is_refused_when_the_dag_is_parsed(bad: str) -> None:
    with pytest.raises(BasetenValidationError, match=f"'{bad}' is a field of every result"):
        PredictOperator(task_id="p", model_inputs=[{"n": 1}], passthrough_columns=["id", bad])
    with pytest.raises(BasetenValidationError, match="list of column names"):
        EmbeddingsOperator(task_id="e", texts=["a"], passthrough_columns="id")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_operator_refuses_a_file_without_the_column_before_any_request(
    emulator: BasetenEmulator, monkeypatch: Any, tmp_path: Path, fmt: str
) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    src = tmp_path / f"in.{fmt}"
    rows: list[dict[str, Any]] = _rows(5)
    if fmt == "jsonl":
        del rows[3]["id"]  # one line lacks it
        where = r"input 3 has no column 'id'"
    else:
        rows = [{"body": r["body"]} for r in rows]  # the schema lacks it: every row
        where = r"has no column 'id', so input 0"
    write_records(src, rows)
    op = PredictOperator(task_id="p", model_inputs=str(src), passthrough_columns=["id"])
    with pytest.raises(BasetenValidationError, match=where):
        op.execute(context())
    assert emulator.counters()["requests"] == {}


# -- 3. logs count what the items are ----------------------------------------------------------------------------
def test_batch_logs_count_texts_prompts_and_inputs(
    emulator: BasetenEmulator, hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test_batch_units")
    caplog.set_level(logging.INFO, logger=log.name)
    hook.embed_batch([f"t{i}" for i in range(30)], batch_size=4, model="m", model_apis=True, log=log)
    hook.chat_completions_batch(
        [{"messages": [{"role": "user", "content": "q"}]}] * 3, model="llm", model_apis=True, log=log
    )
    hook.predict_batch([{"n": i} for i in range(5)], log=log)
    hook.run_chain_batch([{"n": 1}], chain_id="chain123", log=log)
    final = [r.getMessage() for r in caplog.records if "finished" in r.getMessage()]
    assert len(final) == 4
    assert final[0].startswith("Batch embeddings finished: 30/30 texts embedded (100.0%)") and "texts/s" in final[0]
    assert final[1].startswith("Batch chat completions finished: 3/3 prompts completed (100.0%)")
    assert final[2].startswith("Batch predict finished: 5/5 inputs predicted (100.0%)")
    assert final[3].startswith("Batch chain finished: 1/1 chain inputs run (100.0%)")
    with pytest.raises(BasetenBatchError, match="2 of 2 texts failed"):
        hook.embed_batch(["", ""], model="m", model_apis=True, log=log)


# -- a DAG: passthrough through the operators (dag.test) ------------------------------------------------------
def test_passthrough_through_operators_in_a_dag(emulator: BasetenEmulator, monkeypatch: Any, tmp_path: Path) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    rows = tmp_path / "rows.parquet"
    write_records(rows, _rows(30))
    lines = tmp_path / "rows.jsonl"
    write_records(lines, _rows(30))
    vectors, predictions = tmp_path / "vectors.parquet", tmp_path / "predictions.jsonl"
    with DAG("t_passthrough", schedule=None, start_date=START) as dag:
        EmbeddingsOperator(
            task_id="embed",
            texts=str(rows),
            text_column="body",
            passthrough_columns=["id"],
            output_path=str(vectors),
            model="bge",
            model_apis=True,
            batch_size=8,
            dimensions=4,
        )
        PredictOperator(
            task_id="predict", model_inputs=str(lines), passthrough_columns=["id"], output_path=str(predictions)
        )
        ChatCompletionsOperator(
            task_id="chat",
            requests=[{"id": "q1", "messages": [{"role": "user", "content": "hi"}]}],
            passthrough_columns=["id"],
            model="llm",
            model_apis=True,
        )
        RunChainOperator(
            task_id="chain", chain_id="chain123", chain_inputs=[{"id": 7, "n": 1}], passthrough_columns=["id"]
        )
    run = run_dag(dag)
    assert set(task_states(run).values()) == {"success"}
    table = pq.read_table(vectors)
    assert table.schema.names == ["index", "id", "output", "error"]
    assert table.schema.field("output").type == pa.list_(pa.float32())
    assert table.column("id").to_pylist() == [f"doc-{i}" for i in range(30)]
    assert table.column("output").to_pylist() == [_as_float32(emu_openai.embed(f"text {i}", 4)) for i in range(30)]
    assert [r["id"] for r in read_results(predictions)] == [f"doc-{i}" for i in range(30)]
    chat = run.get_task_instance("chat").xcom_pull(task_ids="chat")
    assert chat[0]["id"] == "q1" and chat[0]["output"]["choices"][0]["message"]["content"] == "echo: hi"
    chain = run.get_task_instance("chain").xcom_pull(task_ids="chain")
    assert chain == [{"index": 0, "output": chain[0]["output"], "id": 7}] and chain[0]["output"]["output"] == {"n": 1}


def test_merging_shards_keeps_the_vector_column_and_the_ids(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path
) -> None:
    """Was: a Parquet merge of embedding shards wrote JSON text, and refused shards with passthrough columns."""
    from airflow_provider_baseten.batch_io import merge_outputs, split_input

    src = tmp_path / "rows.parquet"
    write_records(src, _rows(25))
    shards = split_input(src, tmp_path / "shards", rows_per_shard=10, output_format="parquet")
    for shard in shards:
        from airflow_provider_baseten.batch_io import read_records

        hook.embed_batch(
            read_records(shard.path),
            text_column="body",
            passthrough_columns=["id"],
            output_path=shard.output_path,
            model="m",
            model_apis=True,
        )
    merged = tmp_path / "all.parquet"
    assert merge_outputs(shards, merged) == 25
    table = pq.read_table(merged)
    assert table.schema.names == ["index", "id", "output", "error"]
    assert table.schema.field("output").type == pa.list_(pa.float32())
    assert table.column("index").to_pylist() == list(range(25))
    assert table.column("id").to_pylist() == [f"doc-{i}" for i in range(25)]
    assert table.column("output").to_pylist() == [_as_float32(emu_openai.embed(f"text {i}")) for i in range(25)]


@pytest.mark.parametrize("out_fmt", ["jsonl", "parquet"])
def test_passthrough_ids_after_a_killed_run(emulator: BasetenEmulator, hook: Any, tmp_path: Path, out_fmt: str) -> None:
    """A run killed mid-batch leaves only its journal (results with their ids); the resume folds it in first,
    sends only the rest, and every id stays beside its own output."""
    from airflow_provider_baseten.client.batch.fingerprint import of_values
    from airflow_provider_baseten.client.batch.sinks import open_sink

    rows = _rows(30)
    out = tmp_path / f"out.{out_fmt}"
    killed = open_sink(out, resume=False, fingerprint=of_values(rows), carried=["id"])
    killed.carry = {i: {"id": rows[i]["id"]} for i in (0, 2, 1, 5)}
    for i in (0, 2, 1, 5):  # answered out of order, then SIGKILL: never closed
        killed.put(i, {"output": rows[i]}, None)
    assert not out.exists()
    result = hook.predict_batch(rows, output_path=out, resume=True, passthrough_columns=["id"])
    assert (result.skipped, result.succeeded) == (4, 26)
    assert _sent(emulator, "production_predict") == 26
    records = list(read_results(out))
    assert [r["id"] for r in records] == [f"doc-{i}" for i in range(30)]
    assert [r["output"]["output"]["id"] for r in records] == [f"doc-{i}" for i in range(30)]
