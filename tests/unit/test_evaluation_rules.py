"""EvaluateDeploymentOperator and its gate rules: everything is checked when the DAG is parsed, before any
request (these tests have no server: a request would fail them)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_baseten.exceptions import BasetenGateFailed, BasetenValidationError
from airflow_provider_baseten.operators.evaluation import (
    Current,
    EvaluateDeploymentOperator,
    GateRule,
    current,
    percentile,
    render_markdown,
)


def _op(**kw: Any) -> EvaluateDeploymentOperator:
    args: dict[str, Any] = {"task_id": "e", "deployment_id": "dep1", "eval_inputs": [{"x": 1}], **kw}
    return EvaluateDeploymentOperator(**args)


def test_tuple_rules_parse_to_typed_rules() -> None:
    op = _op(
        metrics={"accuracy": "statistics.fmean"},  # an import path, resolved at construction
        gate=[("accuracy", ">=", "current"), ("error_rate", "<=", 0.01), ("latency_p95_ms", "<=", "1.2 x current")],
    )
    assert op.gate == [
        GateRule("accuracy", ">=", Current(1.0)),
        GateRule("error_rate", "<=", 0.01),
        GateRule("latency_p95_ms", "<=", Current(1.2)),
    ]
    assert [str(r) for r in op.gate] == ["accuracy >= current", "error_rate <= 0.01", "latency_p95_ms <= 1.2 x current"]
    assert GateRule.of(("latency_p50_ms", "<", "2*current")).threshold == current(2)


@pytest.mark.parametrize(
    ("kw", "field", "says"),
    [
        ({"gate": [("accuracy", ">=", 0.9)]}, "gate", "names no metric"),
        ({"gate": [("error_rate", "=>", 0.1)]}, "gate", "op must be one of"),
        ({"gate": [("error_rate", "<=", "lots")]}, "gate", "neither a number nor 'current'"),
        ({"gate": [("error_rate", "<=", float("nan"))]}, "gate", "finite number"),
        ({"gate": [("error_rate", "<=")]}, "gate", "(metric, op, threshold)"),
        ({"gate": ("error_rate", "<=", 0.1)}, "gate", "a list of rules"),
        ({"metrics": {"error_rate": len}}, "metrics", "other than error_rate"),
        ({"metrics": {"acc": "no_such_module.fn"}}, "metrics", "cannot import"),
        ({"metrics": {"acc": 3}}, "metrics", "must be a callable"),
        ({"eval_inputs": []}, "eval_inputs", "empty"),
        ({"eval_inputs": {"x": 1}}, "eval_inputs", "list of inputs"),
        ({"eval_inputs": [{1, 2}]}, "eval_inputs[0]", "JSON"),
        ({"expected_outputs": [1, 2]}, "expected_outputs", "one item per input (1)"),
        ({"expected_field": "y"}, "expected_field", "no field 'y'"),
        ({"max_concurrency": 0}, "max_concurrency", "from 1 to 256"),
        ({"deployment_id": "production"}, "deployment_id", "candidate deployment's id"),
        ({"environment": "a/b"}, "environment", ""),
    ],
)
def test_bad_arguments_are_refused_at_construction(kw: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(BasetenValidationError) as info:
        _op(**kw)
    assert says in str(info.value)
    assert info.value.field is None or field.startswith(info.value.field)


def test_templated_eval_set_and_xcom_targets_are_checked_at_run_time() -> None:
    from datetime import datetime

    from airflow.sdk import DAG, task

    op = _op(eval_inputs="{{ var.value.eval_path }}", expected_field="expected")
    assert op.eval_inputs == "{{ var.value.eval_path }}"

    @task
    def deployed() -> str:
        return "dep1"

    with DAG("t_eval_xcom", schedule=None, start_date=datetime(2026, 1, 1)):
        _op(deployment_id=deployed(), eval_inputs=deployed())  # XComArgs: resolved when the task runs


def test_current_rule_without_a_current_deployment_passes_as_na() -> None:
    assert GateRule("accuracy", ">=", current()).check(0.5, None)["note"] == "n/a"
    assert GateRule("error_rate", "<=", 0.1).check(None, None)["passed"] is False  # nothing measured: fail
    outcome = GateRule("latency_p95_ms", "<=", current(1.2)).check(130.0, 100.0)
    assert outcome == {
        "rule": "latency_p95_ms <= 1.2 x current",
        "candidate": 130.0,
        "threshold": 120.0,
        "passed": False,
    }


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0 and percentile(values, 95) == 19.0 and percentile([], 95) is None


def test_gate_error_names_every_failed_rule_and_both_values() -> None:
    failed = [
        {"rule": "accuracy >= current", "candidate": 0.8, "threshold": 0.9, "passed": False},
        {"rule": "error_rate <= 0.01", "candidate": 0.05, "threshold": 0.01, "passed": False},
    ]
    err = BasetenGateFailed(failed)
    assert "accuracy >= current (candidate 0.8, threshold 0.9)" in str(err)
    assert "error_rate <= 0.01 (candidate 0.05, threshold 0.01)" in str(err)
    from airflow_provider_baseten.exceptions import AirflowFailException

    assert isinstance(err, AirflowFailException)  # not retried: the same evaluation would give the same verdict


def test_markdown_without_a_current_deployment() -> None:
    report = {
        "environment": "production",
        "inputs": 3,
        "candidate": {"deployment_id": "d1", "errors": 0, "requests": 3, "values": {"error_rate": 0.0}},
        "current": None,
        "delta": {"error_rate": None},
        "gate": {"passed": True, "rules": []},
        "links": {"deployment": "https://app.baseten.co/models/m/logs/d1", "baseten_tab": "/baseten/ti?dag_id=x"},
    }
    md = render_markdown(report)
    assert "production (serves nothing yet)" in md and "| error rate | 0 | n/a | n/a |" in md
