"""EvaluateDeploymentOperator against the emulator: both targets get exactly N requests (counted on the
server), the candidate's faults show in its figures, the gate fails the task naming the rule and both values."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_baseten import xcom
from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.exceptions import BasetenGateFailed
from airflow_provider_baseten.operators.evaluation import EvaluateDeploymentOperator, current
from tests.dag_support import context

N = 20
INPUTS = [{"text": f"prompt {i}", "expected": f"PROMPT {i}"} for i in range(N)]
NO_RETRY = {"retry": {"max_attempts": 1}}  # a candidate's injected 500 is then that input's error


def accuracy(outputs: list[Any], expected: list[Any] | None) -> float:
    """The share of outputs whose upper-cased echo is the expected text (a failed request is wrong)."""
    assert expected is not None
    return sum(1 for o, e in zip(outputs, expected, strict=True) if o and o.get("upper") == e) / len(outputs)


@pytest.fixture
def candidate(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return str(emulator.create_deployment(emulator.model_id, name="candidate", status="ACTIVE")["id"])


def _deployment(emulator: Any, deployment_id: str) -> Any:
    return emulator.state.models[emulator.model_id].deployments[deployment_id]


def _evaluate(candidate: str, **kw: Any) -> tuple[dict[str, Any], Any]:
    op = EvaluateDeploymentOperator(
        task_id="evaluate",
        deployment_id=candidate,
        eval_inputs=INPUTS,
        expected_field="expected",
        metrics={"accuracy": accuracy},
        hook_params=NO_RETRY,
        max_concurrency=4,
        **kw,
    )
    ctx = context()
    error = None
    try:
        op.execute(ctx)
    except BasetenGateFailed as exc:
        error = exc
    return ctx["ti"].xcoms[xcom.BASETEN_EVALUATION], error


def test_each_target_gets_exactly_n_requests_and_the_candidate_differs(emulator: Any, candidate: str) -> None:
    production = emulator.hook().get_deployment("production", model_id=emulator.model_id).id
    # After the server acted: the candidate computes the answer (and counts it), the client gets a 500.
    emulator.set_faults(
        [
            FaultRule(kind="500", endpoints=["deployment_predict"], times=2, after=True),
            FaultRule(kind="slow", endpoints=["deployment_predict"], delay=0.05),  # every other candidate request
        ]
    )
    report, error = _evaluate(candidate, gate=[("error_rate", "<=", 0.2), ("latency_p95_ms", "<=", "100 x current")])
    assert error is None
    assert _deployment(emulator, candidate).predictions == N
    assert _deployment(emulator, production).predictions == N
    requests = emulator.counters()["requests"]
    assert requests["deployment_predict"] == N and requests["production_predict"] == N
    cand, cur = report["candidate"]["values"], report["current"]["values"]
    assert report["candidate"]["errors"] == 2 and report["current"]["errors"] == 0
    assert cand["error_rate"] == pytest.approx(0.1) and cur["error_rate"] == 0.0
    assert cand["accuracy"] == pytest.approx(0.9) and cur["accuracy"] == 1.0
    assert report["delta"]["accuracy"] == pytest.approx(-0.1)
    assert emulator.counters()["faults"]["slow"] == N - 2  # the slow rule hit the candidate's answered requests only
    assert cand["latency_p50_ms"] >= 50 and cand["latency_p95_ms"] >= 50
    # Cost: price per minute x wall time; 18 slow answers, 4 at a time, took at least 5 x 0.05 s.
    price = next(
        float(p.price) for p in emulator.hook().list_instance_type_prices() if p.instance_type.id == "A10Gx4x16"
    )
    assert cand["cost_per_1k_usd"] >= price * 0.25 / 60 / N * 1000 and cur["cost_per_1k_usd"] > 0
    assert report["current"]["deployment_id"] == production and report["gate"]["passed"]
    md = report["markdown"]
    assert "| accuracy | 0.9 | 1 | -0.1 |" in md
    assert f"/models/{emulator.model_id}/logs/{candidate}" in md and "/baseten/ti?dag_id=" in md
    assert emulator.api_key not in repr(report)


def test_at_most_max_concurrency_requests_in_flight(emulator: Any, candidate: str) -> None:
    emulator.set_predict_latency(0.02)  # each answer holds its slot, so the server sees the client's bound
    _evaluate(candidate)
    assert 2 <= emulator.counters()["capacity"]["peak_inflight"] <= 4  # max_concurrency=4 (of 20 inputs)


def test_failed_gate_fails_the_task_naming_rule_and_values(emulator: Any, candidate: str) -> None:
    emulator.set_faults([FaultRule(kind="500", endpoints=["deployment_predict"], times=4, after=True)])
    report, error = _evaluate(candidate, gate=[("accuracy", ">=", current()), ("error_rate", "<=", 0.5)])
    assert isinstance(error, BasetenGateFailed)
    assert error.rule == "accuracy >= current"
    assert error.candidate == pytest.approx(0.8) and error.threshold == 1.0
    assert "accuracy >= current (candidate 0.8, threshold 1.0)" in str(error)
    assert len(error.failed) == 1  # the error-rate rule passed
    assert report["gate"]["passed"] is False and "**Gate: FAILED**" in report["markdown"]  # pushed before failing


def test_eval_file_is_read_and_checked_before_any_request(emulator: Any, candidate: str, tmp_path: Any) -> None:
    import json

    from airflow_provider_baseten.exceptions import BasetenValidationError

    good = tmp_path / "eval.jsonl"
    good.write_text("".join(json.dumps(item) + "\n" for item in INPUTS[:5]))
    op = EvaluateDeploymentOperator(
        task_id="evaluate",
        deployment_id=candidate,
        eval_inputs=str(good),
        expected_field="expected",
        metrics={"accuracy": "tests.integration.test_evaluation.accuracy"},  # an import path
    )
    ctx = context()
    op.execute(ctx)
    report = ctx["ti"].xcoms[xcom.BASETEN_EVALUATION]
    assert report["candidate"]["values"]["accuracy"] == 1.0 and report["inputs"] == 5
    assert emulator.counters()["requests"]["deployment_predict"] == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(INPUTS[0]) + "\n" + json.dumps({"text": "no expected"}) + "\n")
    op.eval_inputs = str(bad)  # as a template would render it
    with pytest.raises(BasetenValidationError, match=r"eval_inputs\[1\] has no field 'expected'"):
        op.execute(context())
    assert emulator.counters()["requests"]["deployment_predict"] == 5  # nothing more was sent


def test_without_prices_the_cost_is_na_and_the_rest_is_reported(
    emulator: Any, candidate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_baseten.cost import clear_price_cache

    clear_price_cache()  # the price list is cached per process
    emulator.set_faults([FaultRule(kind="500", endpoints=["list_instance_type_prices"])])
    report, error = _evaluate(candidate, gate=[("error_rate", "<=", 0.0)])
    assert error is None and emulator.counters()["requests"]["list_instance_type_prices"] >= 1
    assert report["candidate"]["values"]["cost_per_1k_usd"] is None
    assert "| est. cost / 1k requests (USD) | n/a | n/a | n/a |" in report["markdown"]
    logged = capsys.readouterr().out.splitlines()
    assert sum("warning" in line and "cost per 1,000 requests is not estimated" in line for line in logged) == 2
