"""The operator contract: XCom keys as constants, the typed trigger event, the no-op ``deferrable`` warning,
and one parameter name per idea across sibling classes (old names still work, with a deprecation warning)."""

from __future__ import annotations

import ast
import re
import typing
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import DAG

import airflow_provider_baseten
from airflow_provider_baseten import events, xcom
from airflow_provider_baseten._tasks import validate_event
from airflow_provider_baseten.exceptions import BasetenError
from airflow_provider_baseten.operators._base import BasetenWaitingOperator
from airflow_provider_baseten.operators.deployment import (
    ActivateDeploymentOperator,
    DeactivateDeploymentOperator,
    PromoteDeploymentOperator,
)
from airflow_provider_baseten.operators.inference import (
    AsyncPredictOperator,
    PredictOperator,
    WakeDeploymentOperator,
)
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator, RecreateTrainingJobOperator
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from airflow_provider_baseten.sensors.inference import AsyncPredictSensor
from airflow_provider_baseten.sensors.training import TrainingJobSensor
from tests.dag_support import run_dag, task_states

START = datetime(2026, 1, 1)
PACKAGE = Path(airflow_provider_baseten.__file__).parent

# One valid construction of each waiting operator, without the interval.
WAITING: dict[type[BasetenWaitingOperator], dict[str, Any]] = {
    AsyncPredictOperator: {"model_input": {"x": 1}},
    WakeDeploymentOperator: {},
    PromoteDeploymentOperator: {"deployment_id": "dep1"},
    ActivateDeploymentOperator: {"deployment_id": "dep1"},
    DeactivateDeploymentOperator: {"deployment_id": "dep1"},
    CreateTrainingJobOperator: {"training_project_id": "p1", "image": "img:1"},
    RecreateTrainingJobOperator: {"training_project_id": "p1", "training_job_id": "j1"},
}
SENSORS: dict[type[Any], dict[str, Any]] = {
    AsyncPredictSensor: {"request_ids": ["r1"]},
    DeploymentStatusSensor: {},
    TrainingJobSensor: {"training_project_id": "p1", "training_job_id": "j1"},
}


# -- XCom keys -----------------------------------------------------------------------------------------
def test_xcom_keys_are_public_constants_with_distinct_values() -> None:
    values = [getattr(xcom, name) for name in xcom.__all__]
    assert len(set(values)) == len(values) and all(isinstance(v, str) for v in values)
    assert sorted(xcom.__all__) == sorted(n for n in vars(xcom) if n.isupper())


def test_no_xcom_key_is_spelled_as_a_literal_in_the_package() -> None:
    """Operators, sensors and links push and read keys only through :mod:`airflow_provider_baseten.xcom`."""
    literal = re.compile(r"(xcom_push|xcom_pull|_pulled|get_value)\([^)]*key=\"|_pulled\(ti_key, \"")
    offenders = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == []


# -- the trigger event ---------------------------------------------------------------------------------
def test_the_event_typeddict_requires_status_and_message_only() -> None:
    assert events.BasetenTriggerEvent.__required_keys__ == frozenset({"status", "message"})
    assert set(typing.get_args(events.EventStatus)) == events.EVENT_STATUSES


def test_every_key_a_trigger_fires_is_declared_in_the_event_type() -> None:
    """Every keyword of the triggers' ``event(...)`` calls (every module of the triggers package) and every key of their ``_ids()`` is declared."""
    keys: set[str] = set()
    trees = [ast.parse(path.read_text()) for path in sorted((PACKAGE / "triggers").glob("*.py"))]
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "event":
            keys |= {k.arg for k in node.keywords if k.arg}
        if isinstance(node, ast.FunctionDef) and node.name == "_ids":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Dict):
                    keys |= {k.value for k in ret.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    declared = set(typing.get_type_hints(events.BasetenTriggerEvent))
    assert {"request_ids", "training_job_id", "deployment_id", "undone"} <= keys
    assert keys <= declared, keys - declared


@pytest.mark.parametrize(
    "bad",
    [None, "success", {"message": "m"}, {"status": "done", "message": "m"}],
    ids=["none", "str", "nostatus", "bad"],
)
def test_a_malformed_event_is_a_typed_error(bad: Any) -> None:
    with pytest.raises(BasetenError, match="Malformed trigger event"):
        validate_event(bad)


def test_an_event_without_a_required_key_is_a_typed_error() -> None:
    with pytest.raises(BasetenError, match="lacks \\['training_job_id'\\]"):
        validate_event({"status": "success", "message": "m"}, required=["training_job_id"])


# -- deferrable without waiting --------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(WAITING), ids=lambda c: c.__name__)
def test_deferrable_without_waiting_warns_at_construction(cls: type[BasetenWaitingOperator]) -> None:
    with pytest.warns(UserWarning, match="deferrable=True has no effect with wait_for_completion=False"):
        cls(task_id="t", deferrable=True, wait_for_completion=False, **WAITING[cls])


@pytest.mark.parametrize(
    "kwargs",
    [{"deferrable": True}, {"deferrable": False, "wait_for_completion": False}, {"wait_for_completion": False}],
    ids=["waits", "not-deferrable", "deferrable-from-config"],
)
def test_no_warning_when_deferrable_means_something_or_was_not_asked_for(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op = PromoteDeploymentOperator(task_id="t", deployment_id="dep1", **kwargs)
    assert op.deferrable is kwargs.get("deferrable", True)


# -- one name per idea: poke_interval ------------------------------------------------------------------
def test_operators_and_sensors_share_poke_interval() -> None:
    for cls, kw in {**WAITING, **SENSORS}.items():
        assert cls(task_id="t", poke_interval=7, **kw).poke_interval == 7, cls.__name__


@pytest.mark.parametrize("cls", list(WAITING), ids=lambda c: c.__name__)
def test_check_interval_still_works_with_a_deprecation_warning(cls: type[BasetenWaitingOperator]) -> None:
    with pytest.warns(AirflowProviderDeprecationWarning, match="check_interval= is deprecated; use poke_interval="):
        op = cls(task_id="t", check_interval=3, **WAITING[cls])
    assert op.poke_interval == 3
    with pytest.warns(AirflowProviderDeprecationWarning, match="use poke_interval"):
        assert op.check_interval == 3


def test_each_operator_keeps_its_default_interval() -> None:
    defaults = {cls: cls(task_id="t", **kw).poke_interval for cls, kw in WAITING.items()}
    assert defaults[AsyncPredictOperator] == defaults[PromoteDeploymentOperator] == 10.0
    assert defaults[WakeDeploymentOperator] == defaults[ActivateDeploymentOperator] == 5.0
    assert defaults[CreateTrainingJobOperator] == 30.0


def test_both_interval_names_at_once_is_an_error() -> None:
    with pytest.raises(ValueError, match="give poke_interval= only"):
        WakeDeploymentOperator(task_id="t", poke_interval=1, check_interval=2)


@pytest.mark.parametrize("bad", [0, -1.5])
def test_a_non_positive_interval_is_an_error_under_either_name(bad: float) -> None:
    with pytest.raises(ValueError, match="poke_interval must be a positive number"):
        WakeDeploymentOperator(task_id="t", poke_interval=bad)
    with (
        pytest.raises(ValueError, match="poke_interval must be a positive number"),
        pytest.warns(AirflowProviderDeprecationWarning),
    ):
        WakeDeploymentOperator(task_id="t", check_interval=bad)


# -- one name per idea: model_input(s) -----------------------------------------------------------------
@pytest.mark.parametrize(("old", "new"), [("input", "model_input"), ("inputs", "model_inputs")])
def test_predict_old_input_names_still_work_with_a_deprecation_warning(old: str, new: str) -> None:
    value = [{"x": 1}]
    with pytest.warns(AirflowProviderDeprecationWarning, match=f"{old}= is deprecated; use {new}="):
        op = PredictOperator(task_id="t", **{old: value})
    assert getattr(op, new) == value and getattr(op, old) == value
    assert op.single is (new == "model_input")


def test_predict_both_input_names_at_once_is_an_error() -> None:
    with pytest.raises(ValueError, match="give model_inputs= only"):
        PredictOperator(task_id="t", model_inputs=[{"x": 1}], inputs=[{"x": 2}])


def test_predict_and_async_predict_share_input_names_and_template_them() -> None:
    for cls in (PredictOperator, AsyncPredictOperator):
        assert {"model_input", "model_inputs"} <= set(cls.template_fields), cls.__name__


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point ``baseten_default`` at the emulator."""
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    return emulator


@pytest.mark.parametrize("name", ["model_input", "input"])
def test_a_templated_input_renders_under_either_name(name: str, conn: Any) -> None:
    """In real Airflow: the Jinja in ``input=`` (old name) is rendered exactly as in ``model_input=``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)
        with DAG(f"t_contract_{name}", schedule=None, start_date=START, params={"word": "hello"}) as dag:
            PredictOperator(task_id="p", **{name: {"text": "{{ params.word }}"}})
    run = run_dag(dag)
    assert task_states(run) == {"p": "success"}
    ti = run.get_task_instance("p")
    assert ti.xcom_pull(task_ids="p")["upper"] == "HELLO"
    assert conn.counters()["requests"]["production_predict"] == 1
    assert ti.xcom_pull(task_ids="p", key=xcom.MODEL_URL).endswith(f"/models/{conn.model_id}/overview")
