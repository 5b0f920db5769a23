"""Case 5: bad input. Each gives a typed error naming the field and saying what to fix, before any request
is sent (the emulator's counters prove none went out)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenConfigurationError, BasetenError, BasetenValidationError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.operators.deployment import UpdateAutoscalingOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator, PredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from tests.chaos._support import context
from tests.chaos.report import ROWS, Row

Env = dict[str, Any]
# Words that tell the user what to do (every message must contain one).
ADVICE = (
    "use ",
    "give",
    "must",
    "put ",
    "check",
    "fix",
    "convert",
    "remove",
    "e.g.",
    "needs",
    "only one",
    "not both",
    "store ",
)


def _conn(emu: BasetenEmulator, conn_id: str, mp: pytest.MonkeyPatch, **changes: Any) -> BasetenHook:
    """A hook reading connection ``conn_id`` = the emulator's, with ``changes`` (``extra__x`` edits the extra)."""
    conn = emu.connection()
    for key, value in changes.items():
        if key.startswith("extra__"):
            conn["extra"][key[len("extra__") :]] = value
        else:
            conn[key] = value
    mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return BasetenHook(conn_id)


def _hook(emu: BasetenEmulator) -> BasetenHook:
    return emu.hook()


BIG = {"blob": "x" * (256 * 1024)}
LONG_ID = "a" * 200

# (case, field the error must name, action)
CASES: list[tuple[str, str, Callable[[BasetenEmulator, pytest.MonkeyPatch, Path], Any]]] = [
    ("empty API key", "password", lambda e, mp, p: _conn(e, "c1", mp, password="").list_models()),
    ("missing API key", "password", lambda e, mp, p: _conn(e, "c2", mp, password=None).list_models()),
    ("blank API key", "password", lambda e, mp, p: _conn(e, "c3", mp, password="   ").list_models()),
    ("unknown gateway", "gateway", lambda e, mp, p: _conn(e, "c4", mp, extra__gateway="openai").list_models()),
    ("unknown auth scheme", "auth_scheme", lambda e, mp, p: _conn(e, "c5", mp, extra__auth_scheme="Basic").predict({})),
    ("unknown url_format", "url_format", lambda e, mp, p: _conn(e, "c6", mp, extra__url_format="v3").list_models()),
    (
        "malformed inference_url",
        "inference_url",
        lambda e, mp, p: _conn(e, "c7", mp, extra__inference_url="model-{model_id}.api.baseten.co").predict({}),
    ),
    (
        "inference_url bad placeholder",
        "inference_url",
        lambda e, mp, p: _conn(e, "c8", mp, extra__inference_url="https://model-{model}.x.co").predict({}),
    ),
    ("malformed host", "host", lambda e, mp, p: _conn(e, "c9", mp, host="https://exa mple.com").list_models()),
    ("model_id with /", "model_id", lambda e, mp, p: _hook(e).get_model("abc/def")),
    ("model_id ..", "model_id", lambda e, mp, p: _hook(e).list_deployments(model_id="..")),
    ("deployment_id with ?", "deployment_id", lambda e, mp, p: _hook(e).get_deployment("dep?x=1")),
    ("environment with #", "environment", lambda e, mp, p: _hook(e).predict({}, environment="prod#1")),
    ("request_id with space", "request_id", lambda e, mp, p: _hook(e).get_async_request("abc def")),
    ("over-long model_id", "model_id", lambda e, mp, p: _hook(e).predict({}, model_id=LONG_ID)),
    ("training job id ..", "training_job_id", lambda e, mp, p: _hook(e).get_training_job("proj1", "../x")),
    ("explicit empty model_id", "model_id", lambda e, mp, p: _hook(e).predict({}, model_id="")),
    ("non-JSON input (set)", "model_input", lambda e, mp, p: _hook(e).predict({"x": {1, 2}})),
    ("NaN input", "model_input", lambda e, mp, p: _hook(e).predict({"x": float("nan")})),
    ("async payload > 256 KiB", "model_input", lambda e, mp, p: _hook(e).async_predict(BIG)),
    ("async model_input not a dict", "model_input", lambda e, mp, p: _hook(e).async_predict([1, 2])),
    ("priority out of range", "priority", lambda e, mp, p: _hook(e).async_predict({"x": 1}, priority=5)),
    (
        "queue time out of range",
        "max_time_in_queue_seconds",
        lambda e, mp, p: _hook(e).async_predict({"x": 1}, max_time_in_queue_seconds=5),
    ),
    (
        "inference retry attempts out of range",
        "inference_retry_config.max_attempts",
        lambda e, mp, p: _hook(e).async_predict({"x": 1}, inference_retry_config={"max_attempts": 20}),
    ),
    (
        "webhook not http(s)",
        "webhook_endpoint",
        lambda e, mp, p: _hook(e).async_predict({"x": 1}, webhook_endpoint="ftp://x"),
    ),
    (
        "autoscaling min_replica < 0",
        "min_replica",
        lambda e, mp, p: _hook(e).update_autoscaling_settings({"min_replica": -1}, deployment_id="d1"),
    ),
    (
        "autoscaling min > max",
        "max_replica",
        lambda e, mp, p: _hook(e).update_autoscaling_settings({"min_replica": 5, "max_replica": 2}, deployment_id="d1"),
    ),
    (
        "autoscaling utilization 150%",
        "target_utilization_percentage",
        lambda e, mp, p: UpdateAutoscalingOperator(
            task_id="a", autoscaling_settings={"target_utilization_percentage": 150}, deployment_id="d1"
        ).execute(context()),
    ),
    (
        "autoscaling both targets",
        "deployment_id",
        lambda e, mp, p: _hook(e).update_autoscaling_settings({"min_replica": 1}, deployment_id="d", environment="s"),
    ),
    ("empty batch", "inputs", lambda e, mp, p: _hook(e).predict_batch([])),
    (
        "empty batch (operator)",
        "model_inputs",
        lambda e, mp, p: PredictOperator(task_id="b", model_inputs=[]).execute(context()),
    ),
    ("JSONL with a bad line", "inputs", lambda e, mp, p: _jsonl_operator(p).execute(context())),
    ("batch max_concurrency 0", "max_concurrency", lambda e, mp, p: _hook(e).predict_batch([{}], max_concurrency=0)),
    ("batch resume without output_path", "resume", lambda e, mp, p: _hook(e).predict_batch([{}], resume=True)),
    (
        "environment and deployment_id",
        "deployment_id",
        lambda e, mp, p: _hook(e).predict({}, environment="staging", deployment_id="abc"),
    ),
    (
        "async operator: one input not a dict",
        "model_inputs",
        lambda e, mp, p: AsyncPredictOperator(task_id="a", model_inputs=[{"a": 1}, "b"]).execute(context()),
    ),
    (
        "async operator: payload > 256 KiB",
        "model_inputs",
        lambda e, mp, p: AsyncPredictOperator(task_id="a", model_inputs=[{"a": 1}, BIG]).execute(context()),
    ),
    ("create_api_key unknown type", "type", lambda e, mp, p: _hook(e).create_api_key("ROOT")),
    (
        "training job without image",
        "training_job",
        lambda e, mp, p: _hook(e).create_training_job("proj1", {"name": "x"}),
    ),
    (
        "training operator compute not a dict",
        "compute",
        lambda e, mp, p: CreateTrainingJobOperator(
            task_id="t", training_project_id="proj1", image={"base_image": "x"}, compute="H100"
        ).execute(context()),
    ),
    ("upsert_secret empty value", "value", lambda e, mp, p: _hook(e).upsert_secret("name", "")),
]


def _jsonl_operator(tmp: Path) -> PredictOperator:
    src = tmp / "in.jsonl"
    src.write_text('{"i": 0}\n{"i": 1}\n{"i": 2,\n{"i": 3}\n')
    return PredictOperator(task_id="b", model_inputs=str(src))


@pytest.fixture
def default_conn(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> BasetenEmulator:
    """Operators use ``baseten_default``: point it at the emulator."""
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return emulator


_results: list[str] = []


@pytest.mark.parametrize(("case", "field", "action"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    case: str, field: str, action: Any, default_conn: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(BasetenError) as info:
        action(default_conn, monkeypatch, tmp_path)
    exc = info.value
    sent = sum(default_conn.counters()["requests"].values())
    _results.append(f"{case}: {type(exc).__name__}(field={getattr(exc, 'field', None)!r}), {sent} sent")
    assert isinstance(exc, BasetenValidationError), f"{type(exc).__name__}: {exc}"
    assert exc.field == field, f"field {exc.field!r}, expected {field!r}: {exc}"
    assert exc.status_code is None  # caught here, not refused by Baseten
    assert sent == 0, default_conn.counters()["requests"]
    message = exc.message.lower()
    assert any(word in message for word in ADVICE), f"no advice in: {exc.message}"
    if field in ("password", "gateway", "auth_scheme", "url_format", "inference_url", "host"):
        assert isinstance(exc, BasetenConfigurationError)


def test_bad_input_summary(chaos_row: Row) -> None:
    """One report row for the whole table (runs after the parametrized cases in this module)."""
    chaos_row.case = "5 bad input"
    failed = [r for r in ROWS if r.case.startswith("test_bad_input[") and r.outcome != "PASS"]
    chaos_row.tried = f"{len(CASES)} bad inputs: " + "; ".join(c[0] for c in CASES)
    chaos_row.happened = (
        f"{len(_results)} raised a typed BasetenValidationError naming the field, with advice; "
        f"{len(failed)} did not" + (f" ({', '.join(r.case for r in failed)})" if failed else "")
    )
    chaos_row.lost = "0 requests sent (emulator counters)" if not failed else "see failures"
    assert len(_results) == len(CASES) and not failed
