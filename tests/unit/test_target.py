"""The one target rule (issue 23 §1): ``check_target`` decides, for every operator, sensor and hook call that
addresses a model, which deployment ``environment`` / ``deployment_id`` mean; ``model_apis_route`` decides,
from the arguments alone, whether an OpenAI-compatible call goes to Model APIs.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_baseten.client.checks import check_target, model_apis_route
from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.operators.deployment import (
    ActivateDeploymentOperator,
    DeactivateDeploymentOperator,
    PromoteDeploymentOperator,
    UpdateAutoscalingOperator,
)
from airflow_provider_baseten.operators.inference import AsyncPredictOperator, PredictOperator, WakeDeploymentOperator
from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator, RunChainOperator
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor

# (environment, deployment_id) given -> (environment, deployment_id) kept, and whether it is a deprecated alias.
ACCEPTED: list[tuple[Any, Any, tuple[str | None, str | None], bool]] = [
    (None, None, (None, None), False),  # the production environment
    ("production", None, ("production", None), False),
    ("development", None, ("development", None), False),
    ("staging", None, ("staging", None), False),
    (None, "abcd1234", (None, "abcd1234"), False),
    (None, "production", ("production", None), True),
    (None, "development", ("development", None), True),
]

# (environment, deployment_id) -> the field named and a part of the message.
REFUSED: list[tuple[Any, Any, str, str]] = [
    ("staging", "abcd1234", "deployment_id", "not both"),
    ("production", "production", "deployment_id", "not both"),
    ("", None, "environment", "non-empty"),
    (None, "", "deployment_id", "non-empty"),
    ("a/b", None, "environment", "contains '/'"),
    (None, "x y", "deployment_id", "contains ' '"),
    (None, 7, "deployment_id", "non-empty string"),
    ("{{ params.env }}", None, "environment", "contains ' '"),  # a template left unrendered at execute
]


@pytest.mark.parametrize(("environment", "deployment_id", "kept", "alias"), ACCEPTED)
def test_accepted_targets(environment: Any, deployment_id: Any, kept: Any, alias: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_target(environment, deployment_id, who="T") == kept
    deprecations = [w for w in caught if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert len(deprecations) == int(alias)
    if alias:
        assert f"environment={deployment_id!r}" in str(deprecations[0].message)


@pytest.mark.parametrize(("environment", "deployment_id", "field", "says"), REFUSED)
def test_refused_targets(environment: Any, deployment_id: Any, field: str, says: str) -> None:
    with pytest.raises(BasetenValidationError, match=says) as refused:
        check_target(environment, deployment_id, who="T")
    assert refused.value.field == field


def test_templates_wait_for_rendering_but_not_for_both() -> None:
    assert check_target("{{ params.env }}", None, who="T", templates_ok=True) == ("{{ params.env }}", None)
    assert check_target(None, "{{ ti.xcom_pull('d') }}", who="T", templates_ok=True)[1].startswith("{{")
    with pytest.raises(BasetenValidationError, match="not both"):
        check_target("{{ params.env }}", "abcd1234", who="T", templates_ok=True)


def test_an_xcomarg_target_waits_for_the_run() -> None:
    """An upstream task's output (e.g. a deployment it created) is known only when the task runs."""
    from airflow.sdk import DAG, task

    @task
    def pick() -> str:
        return "abcd1234"

    with DAG("t_xcom_target", schedule=None):
        dep = pick()
        wake = WakeDeploymentOperator(task_id="wake", deployment_id=dep)
        promote = PromoteDeploymentOperator(task_id="promote", deployment_id=dep)
    assert wake.deployment_id is dep and promote.deployment_id is dep


def _build(cls: type, **kwargs: Any) -> Any:
    extra: dict[str, Any] = {
        PredictOperator: {"model_input": {"x": 1}},
        AsyncPredictOperator: {"model_input": {"x": 1}},
        EmbeddingsOperator: {"text": "a"},
        ChatCompletionsOperator: {"messages": [{"role": "user", "content": "x"}]},
        RunChainOperator: {"chain_id": "c1", "chain_input": {"a": 1}},
        UpdateAutoscalingOperator: {"autoscaling_settings": {"min_replica": 1}},
    }.get(cls, {})
    return cls(task_id="t", **extra, **kwargs)


TARGETED = [
    PredictOperator,
    AsyncPredictOperator,
    EmbeddingsOperator,
    ChatCompletionsOperator,
    RunChainOperator,
    WakeDeploymentOperator,
    ActivateDeploymentOperator,
    DeactivateDeploymentOperator,
    UpdateAutoscalingOperator,
    DeploymentStatusSensor,
]


@pytest.mark.parametrize("cls", TARGETED, ids=lambda c: c.__name__)
def test_every_operator_and_sensor_has_the_one_rule(cls: type) -> None:
    """Same default, same refusal of both at construction, same deprecated alias, everywhere."""
    default = _build(cls)
    assert (default.environment, default.deployment_id) == (None, None)
    with pytest.raises(BasetenValidationError, match="not both"):
        _build(cls, environment="staging", deployment_id="abcd1234")
    with pytest.warns(AirflowProviderDeprecationWarning, match="environment='development'"):
        alias = _build(cls, deployment_id="development")
    assert (alias.environment, alias.deployment_id) == ("development", None)
    with pytest.raises(BasetenValidationError, match="contains '/'"):
        _build(cls, environment="a/b")
    templated = _build(cls, environment="{{ params.env }}")  # checked once rendered
    assert templated.environment == "{{ params.env }}"


def test_promote_checks_the_same_names_for_its_two_ends() -> None:
    """Its ``environment`` is the destination and ``deployment_id`` the source: both given is the point."""
    op = PromoteDeploymentOperator(task_id="p", deployment_id="development", environment="staging")
    assert (op.deployment_id, op.environment) == ("development", "staging")
    with pytest.raises(BasetenValidationError, match="contains '/'"):
        PromoteDeploymentOperator(task_id="p", deployment_id="a/b")
    with pytest.raises(BasetenValidationError, match="not an environment to promote into"):
        PromoteDeploymentOperator(task_id="p", deployment_id="abcd1234", environment="development")
    with pytest.raises(BasetenValidationError, match="pass the id of the deployment to promote"):
        PromoteDeploymentOperator(task_id="p", deployment_id="production")  # was accepted, then sent as an id
    PromoteDeploymentOperator(task_id="p", deployment_id="{{ params.dep }}")  # checked once rendered


def test_the_sensor_timeout_shows_its_public_import_path() -> None:
    from airflow_provider_baseten.sensors.base import BasetenSensorTimeout

    assert f"{BasetenSensorTimeout.__module__}.{BasetenSensorTimeout.__qualname__}" == (
        "airflow_provider_baseten.sensors.base.BasetenSensorTimeout"
    )


# (model, model_apis, model_id, environment, deployment_id) -> Model APIs?, or the message of the refusal.
ROUTES: list[tuple[dict[str, Any], bool | str]] = [
    ({}, False),  # the connection's model
    ({"model": "bge", "model_apis": True}, True),
    ({"model": "bge", "model_id": "abcd1234"}, False),
    ({"model": "bge", "environment": "production"}, False),
    ({"model": "bge", "deployment_id": "abcd1234"}, False),
    ({"model": "bge", "model_apis": False}, False),
    ({"model": "bge"}, "pass model_apis=True"),
    ({"model": "bge", "model_apis": True, "model_id": "abcd1234"}, "no model_id"),
    ({"model_apis": True}, "needs model="),
    ({"model": "bge", "model_apis": 1}, "True, False or None"),
]


@pytest.mark.parametrize(("kwargs", "expected"), ROUTES)
def test_model_apis_route(kwargs: dict[str, Any], expected: bool | str) -> None:
    args = {"model": None, "model_apis": None, "model_id": None, "environment": None, "deployment_id": None}
    if isinstance(expected, bool):
        assert model_apis_route(**{**args, **kwargs}) is expected
    else:
        with pytest.raises(BasetenValidationError, match=expected):
            model_apis_route(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("cls", "kw", "unit"),
    [
        (PredictOperator, {"model_inputs": "{path}"}, "inputs"),
        (EmbeddingsOperator, {"texts": "{path}"}, "texts"),
        (ChatCompletionsOperator, {"requests": "{path}", "model_apis": True, "model": "m"}, "prompts"),
        (RunChainOperator, {"chain_id": "abcd1234", "chain_inputs": "{path}"}, "chain inputs"),
    ],
)
def test_reading_a_file_logs_what_its_items_are(cls: type, kw: dict[str, Any], unit: str, tmp_path: Any) -> None:
    """Issue 23: the log counts texts, prompts and chain inputs as what they are, not as "inputs"."""
    import json

    from structlog.testing import capture_logs

    path = tmp_path / "in.jsonl"
    line = {"messages": [{"role": "user", "content": "hi"}]} if cls is ChatCompletionsOperator else {"text": "hi"}
    path.write_text("\n".join(json.dumps(line if cls is not EmbeddingsOperator else "hi") for _ in range(3)) + "\n")
    op = cls(task_id="t", **{k: (str(path) if v == "{path}" else v) for k, v in kw.items()})
    with capture_logs() as logs:  # Airflow 3's task loggers are structlog's
        op._batch_inputs()
    assert f"Reading 3 {unit} from {path}" in [entry["event"] for entry in logs]
