"""Issue 21 §3, §4, §6: a resume never keeps another batch's results, and bad batch input is refused
before anything is sent. Every count is taken on the emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.emulator.handlers import openai as emu_openai
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenServerError, BasetenValidationError
from airflow_provider_baseten.operators.inference import PredictOperator
from airflow_provider_baseten.operators.openai import RunChainOperator
from tests.dag_support import FakeTI, context
from tests.integration.conftest import make_hook

CHAIN = "chain123"


@pytest.fixture
def hook(emulator: BasetenEmulator) -> Any:
    h = make_hook(emulator)
    yield h
    h.close()


@pytest.fixture
def conn(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> BasetenEmulator:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return emulator


def _sent(emu: BasetenEmulator) -> int:
    return sum(emu.counters()["requests"].values())


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- §3 a resume over other inputs is refused before sending ---------------------------------------------------
def test_resume_with_more_inputs_than_the_file_holds_is_refused(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    hook.predict_batch([{"i": i} for i in range(10)], output_path=out)
    emulator.reset()
    with pytest.raises(BasetenValidationError) as info:
        hook.predict_batch([{"j": i} for i in range(12)], output_path=out, resume=True)
    assert _sent(emulator) == 0
    message = str(info.value)
    assert info.value.field == "resume" and "count=10" in message and "count=12" in message
    assert "output_path" in message and "resume=False" in message
    assert [line["output"]["output"]["i"] for line in _lines(out)] == list(range(10))  # the file is untouched


def test_resume_over_a_regenerated_jsonl_is_refused(conn: BasetenEmulator, tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(10)))
    PredictOperator(task_id="p", model_inputs=str(src), output_path=str(out)).execute(context())
    src.write_text("".join(json.dumps({"i": 100 + i}) + "\n" for i in range(10)))  # same size, other inputs
    conn.reset()
    op = PredictOperator(task_id="p", model_inputs=str(src), output_path=str(out), resume=True)
    with pytest.raises(BasetenValidationError, match="resume=False"):
        op.execute(context())
    assert _sent(conn) == 0


def test_embed_batch_resume_over_other_texts_is_refused(emulator: BasetenEmulator, hook: Any, tmp_path: Path) -> None:
    out = tmp_path / "vectors.jsonl"
    hook.embed_batch([f"old {i}" for i in range(6)], environment="production", batch_size=2, output_path=out)
    emulator.reset()
    with pytest.raises(BasetenValidationError, match="resume"):
        hook.embed_batch(
            [f"new {i}" for i in range(6)], environment="production", batch_size=2, output_path=out, resume=True
        )
    assert _sent(emulator) == 0
    assert [line["output"] for line in _lines(out)] == [emu_openai.embed(f"old {i}") for i in range(6)]


def test_a_killed_runs_journal_for_other_inputs_is_refused(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    hook.predict_batch([{"i": i} for i in range(4)], output_path=out)
    out.rename(tmp_path / "kept.jsonl")
    # What a kill -9 leaves: a journal (header and two results) and no merged file.
    from airflow_provider_baseten.client.batch.sinks import _JsonlSink

    sink = _JsonlSink(out, resume=False, fingerprint={"count": 4, "size": 1, "sha256": "0" * 16})
    sink.put(0, {"old": 0}, None)
    sink.put(1, {"old": 1}, None)
    assert sink._fd is not None
    import os

    os.close(sink._fd)
    emulator.reset()
    with pytest.raises(BasetenValidationError, match="0000000000000000"):
        hook.predict_batch([{"i": i} for i in range(4)], output_path=out, resume=True)
    assert _sent(emulator) == 0


def test_resume_with_the_same_inputs_still_skips(emulator: BasetenEmulator, hook: Any, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    inputs = [{"i": i} for i in range(10)]
    hook.predict_batch(inputs, output_path=out)
    kept = _lines(out)
    out.write_text("".join(json.dumps(line) + "\n" for line in kept[:7]))  # the fingerprint file is kept
    emulator.reset()
    result = hook.predict_batch(inputs, output_path=out, resume=True)
    assert (result.skipped, result.succeeded) == (7, 3)
    assert emulator.counters()["requests"]["production_predict"] == 3


def test_an_output_without_a_fingerprint_still_resumes(emulator: BasetenEmulator, hook: Any, tmp_path: Path) -> None:
    """A file written by the previous version (no fingerprint): unknown, accepted (and logged)."""
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps({"index": i, "output": {"i": i}}) + "\n" for i in range(5)))
    result = hook.predict_batch([{"i": i} for i in range(8)], output_path=out, resume=True)
    assert (result.skipped, result.succeeded) == (5, 3)
    assert emulator.counters()["requests"]["production_predict"] == 3


class _Retry(FakeTI):
    def __init__(self, try_number: int) -> None:
        super().__init__()
        self.try_number = try_number


def test_a_retried_task_resumes_by_default_and_not_when_told(conn: BasetenEmulator, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    inputs = [{"i": i} for i in range(10)]
    PredictOperator(task_id="p", model_inputs=inputs, output_path=str(out)).execute({"ti": _Retry(1)})
    out.write_text("".join(json.dumps(line) + "\n" for line in _lines(out)[:6]))  # try 1 "died" after 6
    conn.reset()
    summary = PredictOperator(task_id="p", model_inputs=inputs, output_path=str(out)).execute({"ti": _Retry(2)})
    assert (summary["skipped"], summary["succeeded"]) == (6, 4)
    assert conn.counters()["requests"]["production_predict"] == 4
    conn.reset()  # opted out: every input is sent again
    PredictOperator(task_id="p", model_inputs=inputs, output_path=str(out), resume=False).execute({"ti": _Retry(3)})
    assert conn.counters()["requests"]["production_predict"] == 10
    conn.reset()  # the inputs changed between tries (a re-rendered template): start afresh, never mix
    other = [{"i": 50 + i} for i in range(10)]
    PredictOperator(task_id="p", model_inputs=other, output_path=str(out)).execute({"ti": _Retry(4)})
    assert conn.counters()["requests"]["production_predict"] == 10
    assert [line["output"]["output"]["i"] for line in _lines(out)] == [50 + i for i in range(10)]


# -- §4 bad batch input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_path", [str, Path], ids=["str", "Path"])
@pytest.mark.parametrize("method", ["predict_batch", "embed_batch", "chat_completions_batch", "run_chain_batch"])
def test_a_path_given_to_a_hook_batch_is_refused_before_sending(
    emulator: BasetenEmulator, hook: Any, tmp_path: Path, method: str, as_path: Any
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"i": 1}\n')
    kwargs: dict[str, Any] = {"chain_id": CHAIN} if method == "run_chain_batch" else {}
    if method in ("embed_batch", "chat_completions_batch"):
        kwargs["environment"] = "production"
    with pytest.raises(BasetenValidationError) as info:
        getattr(hook, method)(as_path(src), **kwargs)
    assert _sent(emulator) == 0
    message = str(info.value)
    assert "read_records" in message and "wrap" not in message


def test_an_output_folder_that_does_not_exist_is_created(emulator: BasetenEmulator, hook: Any, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "out.jsonl"
    result = hook.predict_batch([{"i": i} for i in range(3)], output_path=out)
    assert result.succeeded == 3 and len(_lines(out)) == 3
    assert emulator.counters()["requests"]["production_predict"] == 3  # each sent once, none wasted


# -- §6 -------------------------------------------------------------------------------------------------------
def test_run_chain_operator_refuses_scale_for_batch() -> None:
    with pytest.raises(BasetenValidationError, match="chain") as info:
        RunChainOperator(task_id="c", chain_id=CHAIN, chain_inputs=[{"a": 1}], scale_for_batch=2)
    assert info.value.field == "scale_for_batch"


def test_a_failing_worker_stops_its_siblings(emulator: BasetenEmulator, hook: Any) -> None:
    emulator.set_predict_latency(0.2)

    def inputs() -> Any:
        for i in range(100):
            if i == 6:
                raise RuntimeError("the input source broke")
            yield {"i": i}

    async def go() -> set[asyncio.Task[Any]]:
        with pytest.raises(RuntimeError, match="source broke"):
            await hook.apredict_batch(inputs(), max_concurrency=4)
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    assert asyncio.run(go()) == set()  # no worker left sending in the caller's event loop


def test_a_stopped_batch_keeps_the_request_id_and_the_cause(emulator: BasetenEmulator, hook: Any) -> None:
    emulator.set_faults([FaultRule("503", endpoints=["production_predict"])])  # an outage: the breaker stops it
    with pytest.raises(BasetenServerError) as info:
        hook.predict_batch([{"i": i} for i in range(40)], max_concurrency=2)
    err = info.value
    assert isinstance(err.__cause__, BasetenServerError)
    assert err.request_id and err.request_id == err.__cause__.request_id
    assert err.status_code == 503 and "Batch stopped" in err.message
