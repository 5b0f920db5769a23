"""stop_on / loss_pattern / loss_series_path on the training operators: checked at construction, and (one
real ``dag.test()``) a NaN run is stopped, the task fails with BasetenTrainingQualityError without a retry,
and the loss summary and series land in XCom and a file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten import xcom as keys
from airflow_provider_baseten.emulator.config import Durations
from airflow_provider_baseten.exceptions import BasetenTrainingQualityError, BasetenValidationError
from airflow_provider_baseten.loss import StopOnDivergence, StopOnNonFinite, StopOnPlateau, read_series
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator, RecreateTrainingJobOperator
from airflow_provider_baseten.sensors.training import TrainingJobSensor
from tests.dag_support import run_dag, task_states
from tests.integration.test_deployment_operators import xcom

START = datetime(2026, 1, 1)
PROJECT = "proj1234"
IMAGE = {"base_image": "python:3.11"}


def runtime(script: str, fmt: str = "kv") -> dict[str, Any]:
    return {"environment_variables": {"EMULATOR_LOSS": script, "EMULATOR_LOSS_FORMAT": fmt}}


@pytest.mark.parametrize(
    "bad",
    ["divergence", 2.0, [None], {"rule": "plateau", "patience": 3}, [StopOnNonFinite(), "inf"], object()],
)
def test_a_bad_stop_on_fails_at_construction(bad: Any) -> None:
    with pytest.raises(BasetenValidationError, match="stop_on"):
        CreateTrainingJobOperator(task_id="t", training_project_id=PROJECT, image=IMAGE, stop_on=bad)


def test_bad_rule_arguments_and_patterns_fail_at_construction() -> None:
    with pytest.raises(BasetenValidationError, match="factor"):
        StopOnDivergence(0.5, 3)
    with pytest.raises(BasetenValidationError, match="named group 'loss'"):
        RecreateTrainingJobOperator(
            task_id="t", training_project_id=PROJECT, training_job_id="j", loss_pattern="x=(\\d+)"
        )


def test_rules_are_kept_as_json_specs_for_the_trigger() -> None:
    op = CreateTrainingJobOperator(
        task_id="t", training_project_id=PROJECT, image=IMAGE,
        stop_on=["nan", StopOnDivergence(3, 5), StopOnPlateau(1e-3, 20)], loss_pattern=r"L=(?P<loss>\S+)",
    )  # fmt: skip
    trigger = op._trigger(PROJECT, "job1")
    assert trigger.serialize()[1]["loss_gate"] == {
        "stop_on": [
            {"rule": "nan"},
            {"rule": "divergence", "factor": 3.0, "patience": 5},
            {"rule": "plateau", "min_delta": 0.001, "patience": 20},
        ],
        "loss_pattern": r"L=(?P<loss>\S+)",
    }
    assert trigger.serialize()[1]["owns_job"] is True  # the operator's own job: a rule that fires stops it
    plain = CreateTrainingJobOperator(task_id="p", training_project_id=PROJECT, image=IMAGE)
    assert "loss_gate" not in plain._trigger(PROJECT, "job1").serialize()[1]


def test_the_sensor_gate_never_stops_the_job() -> None:
    sensor = TrainingJobSensor(task_id="s", training_project_id=PROJECT, training_job_id="j", stop_on="nan")
    assert sensor.loss_gate == {"stop_on": [{"rule": "nan"}], "loss_pattern": None}
    assert TrainingJobSensor(task_id="q", training_project_id=PROJECT, training_job_id="j").loss_gate is None
    with pytest.raises(BasetenValidationError):
        TrainingJobSensor(task_id="b", training_project_id=PROJECT, training_job_id="j", stop_on=["plateau"])


def test_a_nan_run_is_stopped_and_fails_without_retry(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failures: Any
) -> None:
    # A long RUNNING phase (100 steps over 10,000 emulated s, ~0.5 s real per step at 200x): the job is still
    # running when step 2's nan is read, whatever the poll timing.
    emu = emulator_factory(time_scale=200, durations=Durations(training_running=10_000))
    for key, value in emu.connection_env().items():
        monkeypatch.setenv(key, value)
    failed, keep = failures
    with DAG("t_loss_nan", schedule=None, start_date=START) as dag:
        CreateTrainingJobOperator(
            task_id="train", training_project_id=PROJECT, image=IMAGE, runtime=runtime("nan@2", "hf"),
            stop_on=["nan", StopOnDivergence(2.0, 3)], loss_series_path=str(tmp_path / "{{ ti.task_id }}.csv"),
            deferrable=True, poke_interval=0.05, timeout=60, retries=2, on_failure_callback=keep,
        )  # fmt: skip
    run = run_dag(dag)
    assert task_states(run) == {"train": "failed"}
    error = failed["train"]
    assert isinstance(error, BasetenTrainingQualityError) and error.stopped
    assert error.termination_reason == "loss is nan at step 2 (stop_on=StopOnNonFinite())"
    assert run.get_task_instance("train").try_number == 1  # AirflowFailException: not retried
    # Counted on the server: one stop, the job STOPPED.
    assert emu.counters()["cancellations"]["training_job"] == 1
    (job,) = emu.hook().list_training_jobs(PROJECT)
    assert job.current_status == "TRAINING_JOB_STOPPED"
    loss = xcom(run, "train", keys.BASETEN_LOSS)
    assert loss["termination_reason"] == error.termination_reason
    assert loss["series_path"] == str(tmp_path / "train.csv")
    assert loss["first"] == pytest.approx(2.0 / 1.05, abs=1e-6) and loss["last"] == "nan"
    series = read_series(loss["series_path"])
    assert [p.step for p in series[:2]] == [1, 2] and series[1].loss != series[1].loss  # nan


# -- slower real-Airflow cases: make e2e ------------------------------------------------------------------
def slow_emulator(emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emu = emulator_factory(time_scale=200, durations=Durations(training_running=10_000))
    for key, value in emu.connection_env().items():
        monkeypatch.setenv(key, value)
    return emu


@pytest.mark.airflow_e2e
def test_inline_recreate_stops_only_the_new_diverging_job(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, failures: Any
) -> None:
    emu = slow_emulator(emulator_factory, monkeypatch)
    source = emu.hook().create_training_job(PROJECT, {"image": IMAGE, "runtime": runtime("diverging@3", "json")})
    failed, keep = failures
    with DAG("t_loss_diverge_inline", schedule=None, start_date=START) as dag:
        RecreateTrainingJobOperator(
            task_id="again", training_project_id=PROJECT, training_job_id=source.id,
            stop_on=[StopOnDivergence(2.0, 3)], deferrable=False, poke_interval=0.05, timeout=60,
            on_failure_callback=keep,
        )  # fmt: skip
    run = run_dag(dag)
    assert task_states(run) == {"again": "failed"}
    error = failed["again"]
    assert isinstance(error, BasetenTrainingQualityError)
    assert error.termination_reason.startswith("loss diverged at step 7: ")  # 1.5^k > 2 from k = 2: steps 5, 6, 7
    assert emu.counters()["cancellations"]["training_job"] == 1
    statuses = {j.id: j.current_status for j in emu.hook().list_training_jobs(PROJECT)}
    new = xcom(run, "again", keys.TRAINING_JOB_ID)
    assert statuses[new] == "TRAINING_JOB_STOPPED"
    assert statuses[source.id] == "TRAINING_JOB_RUNNING"  # the job it copied is never stopped


@pytest.mark.airflow_e2e
def test_a_converging_run_completes_with_its_loss_reported(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(200)
    rules = ["nan", StopOnDivergence(2.0, 3), StopOnPlateau(0.01, 10)]
    with DAG("t_loss_converging", schedule=None, start_date=START) as dag:
        train = CreateTrainingJobOperator(
            task_id="train", training_project_id=PROJECT, image=IMAGE, runtime=runtime("converging", "kv"),
            stop_on=rules, loss_series_path=str(tmp_path / "loss.csv"), deferrable=False, poke_interval=0.05,
            timeout=60,
        )  # fmt: skip
        watch = TrainingJobSensor(
            task_id="watch", training_project_id=PROJECT, stop_on=rules, poke_interval=0.05, timeout=60,
            training_job_id="{{ ti.xcom_pull(task_ids='train', key='training_job_id') }}",
        )  # fmt: skip
        train >> watch
    run = run_dag(dag)
    assert task_states(run) == {"train": "success", "watch": "success"}
    assert xcom(run, "watch", keys.BASETEN_LOSS)["best_step"] == 100
    assert emulator.counters()["cancellations"].get("training_job", 0) == 0
    loss = xcom(run, "train", keys.BASETEN_LOSS)
    assert loss["steps"] == 100 and loss["best_step"] == 100 and loss["termination_reason"] is None
    assert len(read_series(loss["series_path"])) == 100


@pytest.mark.parametrize(("script", "passes"), [("diverging@80", False), ("converging", True)])
def test_a_retry_that_finds_the_job_completed_still_gates_its_loss(
    emulator: Any, tmp_path: Path, script: str, passes: bool
) -> None:
    """The try that watched the job died; the job COMPLETED meanwhile. The retry only finds it completed: the
    stop_on rules still run over the whole logged series, so a run that diverged is not approved (before, the
    retry succeeded with no loss read)."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from tests.dag_support import FakeTI

    emulator.set_time_scale(0)
    hook = emulator.hook()
    job = hook.create_training_job(PROJECT, {"image": IMAGE, "runtime": runtime(script)}).id
    emulator.advance(100_000)  # it ran all 100 steps and completed with no try watching
    assert hook.get_training_job(PROJECT, job).current_status == "TRAINING_JOB_COMPLETED"
    op = CreateTrainingJobOperator(
        task_id="train", training_project_id=PROJECT, image=IMAGE, stop_on=[StopOnDivergence(2.0, 3)],
        loss_series_path=str(tmp_path / "loss.csv"),
    )  # fmt: skip
    op.hook = hook  # type: ignore[misc]
    ctx = {"task": op, "ti": FakeTI(), "outlet_events": OutletEventAccessors()}
    ref = {"training_project_id": PROJECT, "training_job_id": job}
    if passes:
        assert op.get_job_result(ref, ctx) == job
        from airflow.sdk import AssetAlias

        from airflow_provider_baseten import assets

        [added] = ctx["outlet_events"][AssetAlias(assets.TRAINING_JOB_ALIAS)].asset_alias_events
        assert added.extra[keys.BASETEN_LOSS]["steps"] == 100  # the asset event carries the loss summary
    else:
        with pytest.raises(BasetenTrainingQualityError, match="while no try watched it") as err:
            op.get_job_result(ref, ctx)
        assert err.value.stopped is False and "diverg" in err.value.termination_reason
    loss = ctx["ti"].xcoms[keys.BASETEN_LOSS]
    assert loss["steps"] == 100 and len(read_series(loss["series_path"])) == 100
    assert (loss["termination_reason"] is None) is passes
    assert emulator.counters()["cancellations"].get("training_job", 0) == 0  # an ended job is never stopped


def test_a_trigger_serialized_with_the_old_gate_spec_still_stops_its_own_job() -> None:
    """Before ``owns_job`` was the one home, the gate spec carried ``stop_job``: a trigger deferred then and
    resumed now must still stop the operator's job when a rule fires (and keep saying so when serialized)."""
    from airflow_provider_baseten.triggers.baseten import TrainingJobTrigger

    old = {"stop_on": [{"rule": "nan"}], "loss_pattern": None, "stop_job": True}
    trigger = TrainingJobTrigger(conn_id="c", training_project_id=PROJECT, training_job_id="j", loss_gate=old)
    assert trigger.owns_job is True and trigger.loss_gate is not None and trigger.loss_gate.stop_job is True
    again = TrainingJobTrigger(**trigger.serialize()[1])
    assert again.owns_job is True and again.loss_gate is not None and again.loss_gate.stop_job is True
    sensor = {"stop_on": [{"rule": "nan"}], "loss_pattern": None, "stop_job": False}
    watch_only = TrainingJobTrigger(conn_id="c", training_project_id=PROJECT, training_job_id="j", loss_gate=sensor)
    assert watch_only.owns_job is False and watch_only.loss_gate is not None and not watch_only.loss_gate.stop_job
