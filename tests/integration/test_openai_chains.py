"""OpenAI-compatible inference, Model APIs and chains: hook, batches and operators against the emulator over HTTP.

Counts are taken at the server (the emulator's request log, counters, or a counter wrapped around its
embedder), never in the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.emulator import FaultRule
from airflow_provider_baseten.emulator.handlers import openai as emu_openai
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import (
    BasetenBatchError,
    BasetenGatewayUnsupportedError,
    BasetenNotFoundError,
    BasetenServerError,
    BasetenValidationError,
)
from airflow_provider_baseten.links import model_url
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator, RunChainOperator
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.xcom import MODEL_URL
from tests.dag_support import run_dag, task_states
from tests.integration.conftest import make_hook

START = datetime(2026, 1, 1)
CHAIN = "chain123"


class TextCounter:
    """Texts the emulated embedder received and answered, per text (wrapped around the server's embedder)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: Counter[str] = Counter()
        self.ok: Counter[str] = Counter()
        original = emu_openai.embeddings

        def counted(body: Any, model: str) -> dict[str, Any]:
            texts = body.get("input") if isinstance(body, dict) else None
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            self.sent.update(texts)
            out = original(body, model)
            self.ok.update(texts)
            return out

        monkeypatch.setattr(emu_openai, "embeddings", counted)


@pytest.fixture
def texts_seen(monkeypatch: pytest.MonkeyPatch) -> TextCounter:
    return TextCounter(monkeypatch)


@pytest.fixture
def hook(emulator: BasetenEmulator) -> Any:
    h = make_hook(emulator)
    yield h
    h.close()


def _paths(emu: BasetenEmulator, endpoint: str) -> list[str]:
    return [r["path"] for r in emu.requests() if r["endpoint"] == endpoint]


def _words(texts: list[str]) -> int:
    return sum(len(t.split()) or 1 for t in texts)


# -- hook: single calls ------------------------------------------------------------------------------------
def test_embeddings_on_a_deployment_and_on_model_apis(emulator: BasetenEmulator, hook: Any) -> None:
    on_dep = hook.embeddings(["alpha beta", "gamma"], environment="production", model="served")
    assert on_dep.vectors() == [emu_openai.embed("alpha beta"), emu_openai.embed("gamma")]
    assert on_dep.usage.prompt_tokens == 3
    assert _paths(emulator, "environment_sync") == [
        f"/model/{emulator.model_id}/environments/production/sync/v1/embeddings"
    ]
    on_apis = hook.embeddings("delta", model="bge-large", model_apis=True, dimensions=4)
    assert on_apis.vectors() == [emu_openai.embed("delta", 4)] and on_apis.model == "bge-large"
    assert _paths(emulator, "model_apis_request") == ["/model_apis/v1/embeddings"]
    again = asyncio.run(hook.aembeddings("delta", model="bge-large", model_apis=True, dimensions=4))
    assert again.vectors() == on_apis.vectors()


def test_chat_completions_and_rerank(emulator: BasetenEmulator, hook: Any) -> None:
    reply = hook.chat_completions(
        [{"role": "user", "content": "hello there"}], model="deepseek-ai/DeepSeek-V4-Pro", model_apis=True
    )
    assert reply.text == "echo: hello there"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (2, 3, 5)
    on_dev = hook.chat_completions([{"role": "user", "content": "x"}], environment="development", max_tokens=1)
    assert on_dev.text == "echo:"
    ranked = hook.rerank("red apple", ["green pear", "red apple pie", "red car"], environment="production")
    assert [d.index for d in ranked.data] == [1, 2, 0]
    assert _paths(emulator, "development_sync") == [f"/model/{emulator.model_id}/development/sync/v1/chat/completions"]
    assert _paths(emulator, "environment_sync") == [f"/model/{emulator.model_id}/environments/production/sync/rerank"]


def test_chat_completions_keeps_a_model_given_in_options(emulator: BasetenEmulator, hook: Any) -> None:
    messages = [{"role": "user", "content": "x"}]
    reply = hook.chat_completions(messages, environment="production", options={"model": "served", "seed": 1})
    assert reply.model == "served"  # the server read it from the body
    assert (
        hook.chat_completions(messages, model="m", model_apis=True, options={"model": "other"}).model == "m"
    )  # the argument wins


def test_sync_request_passes_any_route_through(emulator: BasetenEmulator, hook: Any) -> None:
    dep = hook.list_deployments()[0].id
    assert hook.sync_request("v1/completions", {"prompt": "p"}, deployment_id=dep) == {
        "route": "/v1/completions",
        "input": {"prompt": "p"},
    }
    assert _paths(emulator, "deployment_sync") == [f"/model/{emulator.model_id}/deployment/{dep}/sync/v1/completions"]


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.chat_completions([], model="m", model_apis=True),  # no messages
        lambda h: h.chat_completions(
            [{"role": "user", "content": "x"}], model="m", model_apis=True, options={"stream": True}
        ),
        lambda h: h.chat_completions([{"role": "user", "content": "x"}], model="m", model_apis=True, temperature=3),
        lambda h: h.embeddings([], model="m", model_apis=True),
        lambda h: h.embeddings(["a", ""], model="m", model_apis=True),  # embed_batch refuses an empty text too
        lambda h: h.embeddings("", environment="production"),
        lambda h: h.embeddings("x", model="m", model_apis=True, encoding_format="hex"),
        lambda h: h.rerank("q", [], model="m", model_apis=True),
        lambda h: h.sync_request("../v1/x", {}),
        lambda h: h.sync_request("v1/x?y=1", {}),
        lambda h: h.run_chain(["not", "a", "dict"], chain_id=CHAIN),
        lambda h: h.run_chain({"a": 1}, chain_id="bad/id"),
        lambda h: h.embed_batch(["a"], batch_size=0),
        lambda h: h.embed_batch(["a"], max_chars_per_request=0),
        lambda h: h.embed_batch(["a"], model="m", model_apis=True, dimensions=0),
        lambda h: h.embed_batch(["a"], model="m", model_apis=True, encoding_format="hex"),
        # one input given where a batch is expected: not iterated character by character or key by key
        lambda h: h.embed_batch("hello", model="m", model_apis=True),
        lambda h: asyncio.run(h.aembed_batch(b"hello", model="m", model_apis=True)),
        lambda h: h.chat_completions_batch(
            {"messages": [{"role": "user", "content": "x"}]}, model="m", model_apis=True
        ),
        lambda h: asyncio.run(h.achat_completions_batch("hi", model="m", model_apis=True)),
        lambda h: h.run_chain_batch({"names": ["a"]}, chain_id=CHAIN),
        # options shared by every request: checked once, up front (not failed item by item)
        lambda h: h.chat_completions_batch([{"messages": [{"role": "user", "content": "x"}]}], options={"stream": 1}),
        lambda h: h.chat_completions_batch(
            [{"messages": [{"role": "user", "content": "x"}]}], options={"temperature": 5}
        ),
        lambda h: asyncio.run(
            h.achat_completions_batch([{"messages": [{"role": "user", "content": "x"}]}], options=[])
        ),
    ],
)
def test_bad_input_is_refused_before_any_request(emulator: BasetenEmulator, hook: Any, call: Any) -> None:
    with pytest.raises(BasetenValidationError):
        call(hook)
    assert emulator.requests() == []


@pytest.mark.parametrize("url_format", ["new", "old"])
def test_lowcodeapi_has_none_of_these_routes_a_typed_error_says_so(emulator: BasetenEmulator, url_format: str) -> None:
    hook = make_hook(emulator, gateway="lowcodeapi", url_format=url_format)
    calls = [
        lambda: hook.embeddings("x", model="m", model_apis=True),
        lambda: hook.chat_completions([{"role": "user", "content": "x"}]),
        lambda: hook.sync_request("v1/x", {}),
        lambda: hook.run_chain({"a": 1}, chain_id=CHAIN),
        lambda: hook.async_run_chain({"a": 1}, chain_id=CHAIN),
        lambda: hook.get_async_request("r" * 32, chain_id=CHAIN),
        lambda: hook.embed_batch(["a", "b"], model="m", model_apis=True),
    ]
    for call in calls:
        with pytest.raises(BasetenGatewayUnsupportedError, match="LowCodeAPI gateway"):
            call()
    assert emulator.requests() == []


# -- chains ------------------------------------------------------------------------------------------------
def test_run_chain_and_async_run_chain_with_status_and_cancel(emulator: BasetenEmulator, hook: Any) -> None:
    emulator.set_time_scale(0)  # requests stay QUEUED
    assert hook.run_chain({"names": ["a"]}, chain_id=CHAIN)["output"] == {"names": ["a"]}
    assert hook.run_chain({"n": 1}, chain_id=CHAIN, environment="staging")["output"] == {"n": 1}
    assert hook.run_chain({"n": 1}, chain_id=CHAIN, deployment_id=f"{CHAIN}dep")["deployment_id"] == f"{CHAIN}dep"
    rid = hook.async_run_chain({"names": ["b"]}, chain_id=CHAIN).request_id
    status = hook.get_async_request(rid, chain_id=CHAIN)
    assert (status.status, status.chain_id, status.model_id) == ("QUEUED", CHAIN, None)
    assert asyncio.run(hook.acancel_async_request(rid, chain_id=CHAIN)).canceled is True
    assert hook.get_async_request(rid, chain_id=CHAIN).status == "CANCELED"
    assert f"/chain/{CHAIN}/async_request/{rid}" in _paths(emulator, "chain_get_async_request")
    with pytest.raises(BasetenNotFoundError):  # a chain's request is not the model's
        hook.get_async_request(rid)
    assert emulator.counters()["submissions"]["async_run_remote"] == 1


def test_an_ambiguous_async_run_chain_is_never_sent_twice(emulator: BasetenEmulator, hook: Any) -> None:
    emulator.set_faults([FaultRule("502", endpoints=["chain_production_async_run_remote"], times=1, after=True)])
    with pytest.raises(BasetenServerError) as err:
        hook.async_run_chain({"names": ["x"]}, chain_id=CHAIN)
    assert err.value.maybe_created
    assert emulator.counters()["submissions"]["async_run_remote"] == 1  # queued once, never re-sent
    assert emulator.counters()["requests"]["chain_production_async_run_remote"] == 1


def test_sync_inference_after_a_502_the_server_acted_on_is_retried(
    emulator: BasetenEmulator, hook: Any, texts_seen: TextCounter
) -> None:
    emulator.set_faults([FaultRule("502", endpoints=["environment_sync"], times=1, after=True)])
    vectors = hook.embeddings(["a", "b"], environment="production").vectors()
    assert vectors == [emu_openai.embed("a"), emu_openai.embed("b")]
    assert texts_seen.ok == Counter({"a": 2, "b": 2})  # safe to repeat: served twice, answered once


def test_embed_batch_after_502s_the_server_acted_on(
    emulator: BasetenEmulator, hook: Any, texts_seen: TextCounter
) -> None:
    emulator.set_faults([FaultRule("502", endpoints=["environment_sync"], times=3, after=True)])
    texts = [f"doc {i}" for i in range(40)]
    result = hook.embed_batch(texts, environment="production", batch_size=8, max_concurrency=4)
    assert result.results == [emu_openai.embed(t) for t in texts]
    assert emulator.counters()["requests"]["environment_sync"] == 5 + 3  # three requests served twice
    assert sum(texts_seen.ok.values()) == 40 + 3 * 8 and set(texts_seen.ok) == set(texts)
    assert result.usage is not None and result.usage["prompt_tokens"] == _words(texts)  # answers read once each


def test_async_predict_operator_and_sensor_on_a_chain(emulator: BasetenEmulator, monkeypatch: Any) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(1000)
    with DAG("t_chain_async", schedule=None, start_date=START) as dag:
        submit = AsyncPredictOperator(task_id="submit", chain_id=CHAIN, model_inputs=[{"n": 1}, {"n": 2}])
        AsyncPredictSensor(task_id="wait", chain_id=CHAIN, request_ids=submit.output, poke_interval=0.05)
    run = run_dag(dag)
    assert task_states(run) == {"submit": "success", "wait": "success"}
    assert emulator.counters()["submissions"]["async_run_remote"] == 2
    statuses = [r for r in emulator.requests() if r["endpoint"] == "chain_get_async_request"]
    assert statuses and all(r["path"].startswith(f"/chain/{CHAIN}/") for r in statuses)
    assert emulator.counters()["submissions"].get("async_predict", 0) == 0
    # A chain has no model page: the link is empty, not an "XCom not found" error logged by Airflow.
    assert run.get_task_instance("submit").xcom_pull(task_ids="submit", key=MODEL_URL) == ""


# -- batches -----------------------------------------------------------------------------------------------
def test_embed_batch_packs_texts_and_keeps_order(emulator: BasetenEmulator, hook: Any) -> None:
    texts = [f"text number {i}" for i in range(203)]
    result = hook.embed_batch(texts, batch_size=16, max_concurrency=8, environment="production")
    assert result.results == [emu_openai.embed(t) for t in texts]
    assert emulator.counters()["requests"]["environment_sync"] == 13  # ceil(203 / 16)
    assert (result.total, result.succeeded, result.failed) == (203, 203, 0)
    assert result.usage == {"prompt_tokens": _words(texts), "completion_tokens": 0, "total_tokens": _words(texts)}
    assert result.summary()["usage"] == result.usage


def test_embed_batch_sends_dimensions_and_the_other_embedding_fields(
    emulator: BasetenEmulator, hook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies: list[Any] = []
    original = emu_openai.embeddings

    def recorded(body: Any, model: str) -> dict[str, Any]:
        bodies.append(body)
        return original(body, model)

    monkeypatch.setattr(emu_openai, "embeddings", recorded)
    texts = [f"t{i}" for i in range(5)]
    result = hook.embed_batch(
        texts, model="m", model_apis=True, batch_size=2, dimensions=4, encoding_format="float", user="u1"
    )
    assert result.results == [emu_openai.embed(t, 4) for t in texts]
    assert len(bodies) == 3 and all(
        (b["dimensions"], b["encoding_format"], b["user"], b["model"]) == (4, "float", "u1", "m") for b in bodies
    )


def test_embed_batch_max_chars_per_request(emulator: BasetenEmulator, hook: Any, texts_seen: TextCounter) -> None:
    texts = ["x" * 40] * 10 + ["y" * 500]  # 100 characters per request: two 40s, then the long one alone
    result = asyncio.run(
        hook.aembed_batch(texts, model="bge", model_apis=True, batch_size=32, max_chars_per_request=100)
    )
    assert len(result.results) == 11 and result.results[-1] == emu_openai.embed("y" * 500)
    assert emulator.counters()["requests"]["model_apis_request"] == 6


def test_a_failed_request_fails_each_of_its_texts(emulator: BasetenEmulator, hook: Any) -> None:
    texts = [f"t{i}" for i in range(40)]
    texts[13] = "__fail_422__"  # the model refuses the request holding it: texts 8-15
    texts[30] = ""  # not a text: fails alone, never sent
    result = hook.embed_batch(texts, batch_size=8, on_error="record", max_error_rate=1.0, model="m", model_apis=True)
    assert sorted(result.failures) == [*range(8, 16), 30]
    assert result.failed == 9 and result.succeeded == 31
    assert result.results[9] == {"index": 9, "error": result.failures[9]}
    assert result.results[31] == emu_openai.embed("t31")
    assert emulator.counters()["requests"]["model_apis_request"] == 5


def test_progress_counts_texts_refused_unsent(
    emulator: BasetenEmulator, hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test_embed_progress")
    caplog.set_level(logging.INFO, logger=log.name)
    texts: list[Any] = ["a", 1, "b", None, "c", "d", ""]
    result = hook.embed_batch(
        texts, model="m", model_apis=True, batch_size=2, on_error="record", max_error_rate=1.0, log=log
    )
    assert (result.succeeded, result.failed) == (4, 3)
    assert emulator.counters()["requests"]["model_apis_request"] == 2
    final = [r.getMessage() for r in caplog.records if "finished" in r.getMessage()]
    assert len(final) == 1 and "7/7 texts embedded (100.0%)" in final[0] and "3 error(s)" in final[0]


def test_error_budget_counts_texts(emulator: BasetenEmulator, hook: Any) -> None:
    texts = [f"t{i}" for i in range(64)]
    texts[3] = "__fail_400__"
    with pytest.raises(BasetenBatchError, match="over the error budget") as err:
        hook.embed_batch(
            texts, batch_size=8, max_concurrency=1, on_error="record", max_failures=7, model="m", model_apis=True
        )
    assert len(err.value.failures) == 8  # one request of 8 texts: 8 > 7
    hook.embed_batch(
        texts, batch_size=8, on_error="record", max_failures=8, model="m", model_apis=True
    )  # within budget


def test_embed_batch_resume_sends_only_what_is_missing(
    emulator: BasetenEmulator, hook: Any, texts_seen: TextCounter, tmp_path: Path
) -> None:
    out = tmp_path / "vectors.jsonl"
    texts = [f"doc {i}" for i in range(100)]
    hook.embed_batch(texts, batch_size=10, output_path=out, model="m", model_apis=True)
    # Lose the results of texts 40-49 (resume=True over *other* texts is refused: test_batch_inputs.py).
    kept = [line for line in out.read_text().splitlines() if not 40 <= json.loads(line)["index"] < 50]
    out.write_text("".join(line + "\n" for line in kept))
    texts_seen.sent.clear()
    second = hook.embed_batch(texts, batch_size=10, output_path=out, resume=True, model="m", model_apis=True)
    assert second.skipped == 90 and second.succeeded == 10
    assert sum(texts_seen.sent.values()) == 10  # only the ten failed texts, in one request
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["index"] for rec in lines] == list(range(100))
    assert [rec["output"] for rec in lines] == [emu_openai.embed(t) for t in texts]


def test_embed_batch_parquet_out_and_resume(
    emulator: BasetenEmulator, hook: Any, texts_seen: TextCounter, tmp_path: Path
) -> None:
    """A ``.parquet`` output holds one row per text in order; a resume reads it back and sends only the gaps."""
    pytest.importorskip("pyarrow")
    from airflow_provider_baseten.batch_io import read_records, read_results, write_records

    src = tmp_path / "texts.parquet"
    texts = [f"doc {i}" for i in range(60)]
    write_records(src, ({"text": t} for t in texts))
    read_back = [rec["text"] for rec in read_records(src)]
    assert read_back == texts
    out = tmp_path / "vectors.parquet"
    # The first request (texts 0-7) fails every attempt of its three retry sequences; resume=True over
    # *other* texts would be refused (test_batch_inputs.py), so the same texts are resumed.
    emulator.set_faults([FaultRule("500", endpoints=["model_apis_request"], times=12)])
    first = hook.embed_batch(
        read_back,
        batch_size=8,
        max_concurrency=1,
        output_path=out,
        on_error="record",
        max_error_rate=1.0,
        model="m",
        model_apis=True,
    )
    emulator.set_faults([])
    assert sorted(first.failures) == list(range(0, 8))
    assert out.read_bytes()[:4] == b"PAR1"  # Parquet, not JSONL with another name
    texts_seen.sent.clear()
    second = hook.embed_batch(read_back, batch_size=8, output_path=out, resume=True, model="m", model_apis=True)
    assert (second.skipped, second.succeeded) == (52, 8)
    assert sum(texts_seen.sent.values()) == 8  # the server saw only the failed request's texts again
    rows = list(read_results(out))
    assert [r["index"] for r in rows] == list(range(60))
    import pyarrow as pa

    # Parquet keeps vectors as list<float> (float32): what the model computed, not the JSON's float64 digits.
    assert [r["output"] for r in rows] == [pa.array(emu_openai.embed(t), pa.float32()).to_pylist() for t in texts]


def test_chat_completions_batch(emulator: BasetenEmulator, hook: Any) -> None:
    requests: list[Any] = [{"messages": [{"role": "user", "content": f"question {i}"}]} for i in range(50)]
    requests[7] = "not a request"
    result = hook.chat_completions_batch(
        requests, model="llm", model_apis=True, options={"max_tokens": 16}, on_error="record", max_error_rate=0.1
    )
    assert [r["choices"][0]["message"]["content"] for i, r in enumerate(result.results) if i != 7] == [
        f"echo: question {i}" for i in range(50) if i != 7
    ]
    assert list(result.failures) == [7]
    assert emulator.counters()["requests"]["model_apis_request"] == 49
    assert result.usage == {"prompt_tokens": 98, "completion_tokens": 147, "total_tokens": 245}


def test_run_chain_batch(emulator: BasetenEmulator, hook: Any) -> None:
    result = hook.run_chain_batch([{"n": i} for i in range(30)], chain_id=CHAIN, max_concurrency=4)
    assert [r["output"]["n"] for r in result.results] == list(range(30))
    assert emulator.counters()["requests"]["chain_production_run_remote"] == 30


def test_run_chain_batch_fails_an_input_that_is_not_a_dict_unsent(emulator: BasetenEmulator, hook: Any) -> None:
    inputs: list[Any] = [{"n": 0}, ["n", 1], "n=2", {"n": 3}]
    result = hook.run_chain_batch(iter(inputs), chain_id=CHAIN, on_error="record", max_error_rate=1.0)
    assert sorted(result.failures) == [1, 2] and "must be a dict" in result.failures[1]
    assert [r["output"]["n"] for r in (result.results[0], result.results[3])] == [0, 3]
    assert emulator.counters()["requests"]["chain_production_run_remote"] == 2  # the two dicts only


# -- operators in real Airflow -----------------------------------------------------------------------------
def test_operators_in_a_dag(emulator: BasetenEmulator, monkeypatch: Any, tmp_path: Path) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps(f"line {i}") + "\n" for i in range(25)))
    out = tmp_path / "out.jsonl"
    params = {"greeting": "hi", "llm": "llm", "chain": CHAIN}  # rendered into the templated fields
    with DAG("t_openai_ops", schedule=None, start_date=START, params=params) as dag:
        EmbeddingsOperator(task_id="one", text="solo", model="bge", model_apis=True, dimensions=4)
        EmbeddingsOperator(
            task_id="many", texts=str(texts), environment="production", batch_size=4, output_path=str(out), dimensions=3
        )
        ChatCompletionsOperator(
            task_id="chat",
            messages=[{"role": "user", "content": "{{ params.greeting }}"}],
            model="{{ params.llm }}",
            model_apis=True,
        )
        ChatCompletionsOperator(
            task_id="chats", requests=[{"messages": [{"role": "user", "content": "a"}]}], model="l", model_apis=True
        )
        RunChainOperator(task_id="chain", chain_id="{{ params.chain }}", chain_input={"names": ["{{ 'x' }}"]})
        RunChainOperator(task_id="chains", chain_id=CHAIN, chain_inputs=[{"n": 1}, {"n": 2}], environment="staging")
    run = run_dag(dag)
    assert set(task_states(run).values()) == {"success"}

    def xcom(task_id: str) -> Any:
        return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)

    assert xcom("one") == emu_openai.embed("solo", 4)
    # The model link is the model called: none for Model APIs or a chain (not the connection's default model).
    links = {t: run.get_task_instance(t).xcom_pull(task_ids=t, key=MODEL_URL) for t in ("one", "many", "chain")}
    assert links == {"one": "", "many": model_url(emulator.model_id), "chain": ""}
    summary = xcom("many")
    assert summary["succeeded"] == 25 and summary["usage"]["prompt_tokens"] == 50
    assert [json.loads(line)["output"] for line in out.read_text().splitlines()] == [
        emu_openai.embed(f"line {i}", 3) for i in range(25)
    ]
    assert emulator.counters()["requests"]["environment_sync"] == 7  # ceil(25 / 4)
    assert xcom("chat")["choices"][0]["message"]["content"] == "echo: hi" and xcom("chat")["model"] == "llm"
    assert xcom("chats")[0]["usage"]["total_tokens"] == 3
    assert xcom("chain")["output"] == {"names": ["x"]}
    assert [r["output"] for r in xcom("chains")] == [{"n": 1}, {"n": 2}]


def test_embeddings_operator_text_from_xcom_must_be_one_string(emulator: BasetenEmulator, monkeypatch: Any) -> None:
    from airflow.sdk import task

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    with DAG("t_embed_text_xcom", schedule=None, start_date=START) as dag:

        @task
        def texts() -> list[str]:
            return ["a", "b"]

        EmbeddingsOperator(task_id="embed", text=texts(), model="bge", model_apis=True)
    run = run_dag(dag)
    assert task_states(run)["embed"] == "failed"  # was: both embedded, the first vector returned
    assert _paths(emulator, "model_apis_request") == []


def test_operator_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EmbeddingsOperator(task_id="e", text="a", texts=["b"])
    with pytest.raises(ValueError, match="batch_size"):
        EmbeddingsOperator(task_id="e", texts=["b"], batch_size=0)
    # was: inline it failed at the first poke, deferred it ignored model_id
    with pytest.raises(ValueError, match="not both"):
        AsyncPredictSensor(task_id="s", request_ids=["r"], model_id="abcd1234", chain_id=CHAIN)
    with pytest.raises(ValueError, match="texts="):  # was: embedded both, returned the first vector only
        EmbeddingsOperator(task_id="e", text=["a", "b"])
    with pytest.raises(ValueError, match="max_chars_per_request"):
        EmbeddingsOperator(task_id="e", texts=["b"], max_chars_per_request=-1)
    with pytest.raises(ValueError, match="do not apply"):
        RunChainOperator(task_id="c", chain_id=CHAIN, chain_input={}, wake_first=True)
    with pytest.raises(ValueError, match="do not apply"):
        AsyncPredictOperator(task_id="a", chain_id=CHAIN, model_input={}, webhook_endpoint="https://x.example/h")


def test_the_deferred_wait_follows_a_chain_request_on_the_chain_host(
    emulator: BasetenEmulator, hook: Any, monkeypatch: Any
) -> None:
    from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(1000)
    rid = hook.async_run_chain({"names": ["x"]}, chain_id=CHAIN).request_id
    _, kwargs = AsyncPredictTrigger(conn_id="baseten_default", request_ids=[rid], chain_id=CHAIN).serialize()
    assert kwargs["chain_id"] == CHAIN  # survives the trip to the triggerer
    trigger = AsyncPredictTrigger(**{**kwargs, "poll_interval": 0.01})

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "success" and payload["states"] == {rid: "SUCCEEDED"}
    assert _paths(emulator, "chain_get_async_request")
    assert not _paths(emulator, "get_async_request")  # never asked the model host


def test_embed_batch_reads_vectors_by_index_and_fails_a_short_answer(
    emulator: BasetenEmulator, hook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = emu_openai.embeddings

    def shuffled(body: Any, model: str) -> dict[str, Any]:  # a server listing vectors out of order ...
        out = original(body, model)
        out["data"] = out["data"][::-1]
        if "short" in body["input"]:  # ... and one answering fewer vectors than texts
            out["data"] = out["data"][1:]
        return out

    monkeypatch.setattr(emu_openai, "embeddings", shuffled)
    texts = [f"t{i}" for i in range(12)]
    texts[9] = "short"
    result = hook.embed_batch(texts, batch_size=4, on_error="record", max_error_rate=1.0, model="m", model_apis=True)
    assert result.results[:8] == [emu_openai.embed(t) for t in texts[:8]]
    assert sorted(result.failures) == [8, 9, 10, 11]
    assert "one vector for each" in result.failures[8]


def test_embeddings_operator_reads_the_text_column_of_a_parquet_file(
    emulator: BasetenEmulator, monkeypatch: Any, tmp_path: Path
) -> None:
    """Parquet rows are dicts: with several columns, text_column names the text (was: each row dict was sent
    failed alone as "not a string", with no way to name the column); without it the task fails before any request, naming the columns.
    A one-column file needs no text_column."""
    pytest.importorskip("pyarrow")
    from airflow_provider_baseten.batch_io import write_records
    from tests.dag_support import context

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    rows = tmp_path / "rows.parquet"
    write_records(rows, [{"id": i, "body": f"doc {i}"} for i in range(5)])
    only = tmp_path / "only.parquet"
    write_records(only, [{"body": f"doc {i}"} for i in range(5)])
    expected = [emu_openai.embed(f"doc {i}", 3) for i in range(5)]

    unnamed = EmbeddingsOperator(task_id="e", texts=str(rows), model="bge", model_apis=True, dimensions=3)
    with pytest.raises(BasetenValidationError, match=r"columns \['id', 'body'\].*text_column="):
        unnamed.execute(context())
    wrong = EmbeddingsOperator(task_id="e", texts=str(rows), model="bge", model_apis=True, text_column="text")
    with pytest.raises(BasetenValidationError, match="text_column"):
        wrong.execute(context())
    assert emulator.counters()["requests"] == {}  # nothing sent
    named = EmbeddingsOperator(
        task_id="e", texts=str(rows), model="bge", model_apis=True, dimensions=3, text_column="body"
    )
    assert named.execute(context()) == expected
    assert (
        EmbeddingsOperator(task_id="e", texts=str(only), model="bge", model_apis=True, dimensions=3).execute(context())
        == expected
    )
    dicts = [{"body": f"doc {i}"} for i in range(5)]
    assert (
        EmbeddingsOperator(
            task_id="e", texts=dicts, model="bge", model_apis=True, dimensions=3, text_column="body"
        ).execute(context())
        == expected
    )
    with pytest.raises(BasetenValidationError, match=r"texts\[1\] has no 'body'"):
        EmbeddingsOperator(
            task_id="e", texts=[{"body": "a"}, {"b": 1}], model="bge", model_apis=True, text_column="body"
        ).execute(context())
    with pytest.raises(ValueError, match="text_column"):
        EmbeddingsOperator(task_id="e", texts=dicts, text_column="")
