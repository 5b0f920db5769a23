"""The one target rule and the inputs' own names, in real Airflow (``dag.test()``) against the emulator.

Every deprecated spelling still works and warns; a templated target is checked once rendered, before anything
is sent; the Rendered Template view shows the inputs under the names the DAG's author wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import DAG

from airflow_provider_baseten.operators.deployment import ActivateDeploymentOperator, UpdateAutoscalingOperator
from airflow_provider_baseten.operators.inference import PredictOperator, WakeDeploymentOperator
from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator, RunChainOperator
from airflow_provider_baseten.sensors.deployment import DeploymentStatusSensor
from tests.dag_support import run_dag, task_states

START = datetime(2026, 1, 1)
FAST = {"poke_interval": 0.02, "timeout": 60}


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``baseten_default`` points at the emulator (model echo1234: dep1prod in production, dep2devl the
    development deployment, SCALED_TO_ZERO), whose clock runs fast."""
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(200)
    return emulator


def _endpoints(emulator: Any) -> list[str]:
    return [r["endpoint"] for r in emulator.requests()]


def _xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


def test_deprecated_deployment_id_alias_warns_and_still_works(conn: Any) -> None:
    """``deployment_id="production"`` / ``"development"`` mean ``environment=`` of the same name, everywhere."""
    with (
        DAG("t_target_alias", schedule=None, start_date=START) as dag,
        pytest.warns(AirflowProviderDeprecationWarning) as warned,
    ):
        PredictOperator(task_id="predict", model_input={"x": 1}, deployment_id="production")
        WakeDeploymentOperator(task_id="wake", deployment_id="development", **FAST)
        DeploymentStatusSensor(task_id="sensor", deployment_id="production", **FAST)
        UpdateAutoscalingOperator(task_id="scale", deployment_id="development", autoscaling_settings={"max_replica": 2})
        ActivateDeploymentOperator(task_id="activate", deployment_id="production", **FAST)
    messages = [str(w.message) for w in warned if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert len(messages) == 5
    assert all("is deprecated; use environment=" in m for m in messages), messages
    run = run_dag(dag)
    assert task_states(run) == dict.fromkeys(("predict", "wake", "sensor", "scale", "activate"), "success")
    assert _xcom(run, "predict") is not None
    assert _xcom(run, "wake") == "dep2devl" and _xcom(run, "sensor", "deployment_id") == "dep1prod"
    assert _xcom(run, "activate") == "dep1prod"
    sent = _endpoints(conn)
    for endpoint in (
        "production_predict",
        "development_wake",
        "update_development_autoscaling_settings",
        "activate_environment",
    ):
        assert endpoint in sent, (endpoint, sent)
    assert not [e for e in sent if e.startswith("deployment_")]  # never "production" as a deployment id


def test_a_templated_target_is_checked_once_rendered(conn: Any) -> None:
    """A template cannot be checked when the DAG is parsed: it is checked at execute, before any request."""
    params = {"bad": "a/b", "alias": "production", "good": "staging"}
    with DAG("t_target_templated", schedule=None, start_date=START, params=params) as dag:
        PredictOperator(task_id="bad", model_input={"x": 1}, environment="{{ params.bad }}")
        PredictOperator(task_id="alias", model_input={"x": 1}, deployment_id="{{ params.alias }}")
        WakeDeploymentOperator(task_id="good", environment="{{ params.good }}", wait_for_completion=False)
    with pytest.warns(AirflowProviderDeprecationWarning, match="environment='production'"):
        run = run_dag(dag)
    assert task_states(run) == {"bad": "failed", "alias": "success", "good": "success"}
    sent = _endpoints(conn)
    assert sent.count("production_predict") == 1  # the alias's, after rendering; the bad one sent nothing
    assert "environment_wake" in sent


def test_rendered_template_fields_carry_the_authors_names(conn: Any) -> None:
    """The Rendered Template view (RenderedTaskInstanceFields) shows ``texts``, ``messages``, ``chain_input``."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    params = {"texts": ["a", "b"], "q": "hello", "n": 3}
    with DAG(
        "t_rendered_names", schedule=None, start_date=START, params=params, render_template_as_native_obj=True
    ) as dag:
        EmbeddingsOperator(task_id="embed", texts="{{ params.texts }}", environment="production")
        ChatCompletionsOperator(task_id="chat", messages=[{"role": "user", "content": "{{ params.q }}"}])
        RunChainOperator(task_id="chain", chain_id="chain123", chain_input={"n": "{{ params.n }}"})
    run = run_dag(dag)
    assert task_states(run) == {"embed": "success", "chat": "success", "chain": "success"}
    rendered = {
        t: RenderedTaskInstanceFields.get_templated_fields(run.get_task_instance(t)) for t in ("embed", "chat", "chain")
    }
    assert rendered["embed"]["texts"] == ["a", "b"]
    assert rendered["chat"]["messages"] == [{"role": "user", "content": "hello"}]
    assert rendered["chain"]["chain_input"] == {"n": 3}
    for fields in rendered.values():
        assert not {"model_input", "model_inputs"} & set(fields), fields  # names nobody wrote
    assert len(_xcom(run, "embed")) == 2 and _xcom(run, "chain")["output"] == {"n": 3}


def test_hook_predict_takes_model_input_and_the_deprecated_input(conn: Any) -> None:
    """``BasetenHook.predict`` takes the operators' name; ``input=`` still works, with a warning."""
    from airflow.sdk import task

    from airflow_provider_baseten.hooks.baseten import BasetenHook

    @task
    def new_name() -> Any:
        return BasetenHook().predict(model_input={"x": 1})

    @task
    def old_name() -> Any:
        return BasetenHook().predict(input={"x": 2})

    with DAG("t_hook_predict_names", schedule=None, start_date=START) as dag:
        new_name()
        old_name()
    with pytest.warns(AirflowProviderDeprecationWarning, match="input= is deprecated; use model_input="):
        run = run_dag(dag)
    assert task_states(run) == {"new_name": "success", "old_name": "success"}
    assert _endpoints(conn).count("production_predict") == 2


def test_every_other_deprecated_alias_warns_and_works_in_a_dag_run(conn: Any) -> None:
    """The aliases the test above does not reach, each in one ``dag.test()``: the target alias on the async,
    deactivate and OpenAI/chain operators, ``check_interval=``, ``inputs=`` and ``BasetenHook.apredict(input=)``."""
    import asyncio

    from airflow.sdk import task

    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.operators.deployment import DeactivateDeploymentOperator
    from airflow_provider_baseten.operators.inference import AsyncPredictOperator

    @task
    def apredict_old_name() -> Any:
        return asyncio.run(BasetenHook().apredict(input={"x": 4}))["output"]

    with (
        DAG("t_target_alias_rest", schedule=None, start_date=START) as dag,
        pytest.warns(AirflowProviderDeprecationWarning) as warned,
    ):
        AsyncPredictOperator(
            task_id="submit", model_inputs=[{"x": 1}], deployment_id="production", wait_for_completion=False
        )
        EmbeddingsOperator(task_id="embed", texts=["a"], deployment_id="production")
        ChatCompletionsOperator(
            task_id="chat", messages=[{"role": "user", "content": "hi"}], deployment_id="production"
        )
        RunChainOperator(task_id="chain", chain_id="chain123", chain_input={"q": 1}, deployment_id="production")
        PredictOperator(task_id="inputs", inputs=[{"x": 1}])
        WakeDeploymentOperator(task_id="wake", check_interval=0.02, timeout=60)
        DeactivateDeploymentOperator(task_id="deactivate", deployment_id="development", **FAST)
        apredict_old_name()
    messages = [str(w.message) for w in warned if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert len(messages) == 7, messages
    assert all(w.filename == __file__ for w in warned), [
        (w.filename, w.lineno, str(w.message)[:50]) for w in warned if w.filename != __file__
    ]
    with pytest.warns(AirflowProviderDeprecationWarning, match="input= is deprecated; use model_input="):
        run = run_dag(dag)
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    assert _xcom(run, "apredict_old_name") == {"x": 4} and _xcom(run, "chain")["output"] == {"q": 1}
    sent = _endpoints(conn)
    for endpoint in ("production_async_predict", "environment_sync", "deactivate_development_deployment"):
        assert endpoint in sent, (endpoint, sent)
    assert not [e for e in sent if e.startswith("deployment_")]
