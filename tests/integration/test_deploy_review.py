"""Hostile review of the deploy surface (issue 14): each test failed before its fix.

Every count is read on the server (the emulator's request counters and state), never in the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.exceptions import BasetenConfigurationError, BasetenError, BasetenValidationError
from airflow_provider_baseten.operators.deploy import (
    DeployModelOperator,
    DeployTrainingCheckpointOperator,
    run_unique_name,
)
from tests.dag_support import StateStore, context
from tests.integration.conftest import make_hook
from tests.integration.test_deploy import CONFIG, FAST, conn, counter, deployments, truss_dir
from tests.integration.test_deployment_operators import messages
from tests.integration.test_deployment_operators import task_log as task_log  # the fixture

__all__ = ["conn"]  # the fixture


def sent(emu: Any) -> int:
    """Every API request the emulator has counted."""
    return sum(emu.counters()["requests"].values())


class _Killed(BaseException):
    """The worker dying (SIGKILL): nothing in the task catches it, only the state store survives."""


# -- exactly once --------------------------------------------------------------------------------------
def test_a_truss_dir_deploy_lost_before_it_was_recorded_is_found_on_retry(conn: Any, tmp_path: Path) -> None:
    """The model's name is in the Truss directory's config.yaml: the retry must look there to find it."""
    root = truss_dir(tmp_path)
    ctx = context(task_state_store=StateStore())
    conn.hook().deploy_model(root, deployment_name=run_unique_name(ctx, "deploy"))
    dep_id = DeployModelOperator(task_id="deploy", truss_dir=str(root), wait_for_completion=False).execute(ctx)
    assert [d.id for d in deployments(conn, "truss-model")] == [dep_id]
    assert counter(conn, "requests", "create_model") == 1


def test_a_worker_killed_right_after_a_named_create_does_not_deploy_twice(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a deployment_name you chose, a kill between the create and the state store write used to make
    the retry deploy a second time (it only looked after an ambiguous *error*)."""
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    store = StateStore()
    real = BasetenHook.deploy_model

    def create_then_die(self: Any, *a: Any, **kw: Any) -> Any:
        real(self, *a, **kw)
        raise _Killed

    def attempt() -> Any:
        op = DeployModelOperator(task_id="d", config=CONFIG, deployment_name="v2", wait_for_completion=False)
        return op.execute(context(task_state_store=store))

    monkeypatch.setattr(BasetenHook, "deploy_model", create_then_die)
    with pytest.raises(_Killed):
        attempt()
    monkeypatch.setattr(BasetenHook, "deploy_model", real)
    dep_id = attempt()
    assert [d.id for d in deployments(conn, "my-finetune")] == [dep_id]
    assert counter(conn, "requests", "create_model") == 1


def test_the_create_marker_outlives_a_failure_and_goes_once_the_ids_are_stored(conn: Any) -> None:
    """Any failed try leaves the marker (a refusal may hide a create that acted); a stored id clears it."""
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # task_state_store: Airflow 3.3+
    store = StateStore()
    conn.set_faults([FaultRule("500", endpoints=["create_model"], times=1)])
    op = DeployModelOperator(task_id="d", config=CONFIG, deployment_name="v1", wait_for_completion=False)
    with pytest.raises(BasetenError):
        op.execute(context(task_state_store=store))
    assert store.data["baseten_deploy_create_unknown"]["since"] > 0
    conn.clear_faults()
    dep_id = op.execute(context(task_state_store=store))
    assert store.data["baseten_deploy_create_unknown"] == {}
    assert store.data["baseten_model_deployment"]["deployment_id"] == dep_id
    assert [d.id for d in deployments(conn, "my-finetune")] == [dep_id]


# -- bad input: a typed error before any request --------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"config": CONFIG, "labels": ["team", "a"]}, "labels"),
        ({"config": CONFIG, "labels": "team=a"}, "labels"),
        ({"config": CONFIG, "deployment_name": "  "}, "deployment_name"),
        ({"config": {"resources": {}}}, "Name the model"),
        ({"truss_dir": "/nonexistent/truss", "model_name": "m"}, "not a directory"),
        ({"truss_dir": "TMP", "model_name": "m"}, "config.yaml"),
        ({"truss_dir": "TMP_NAMELESS"}, "Name the model"),
    ],
    ids=["labels-list", "labels-str", "blank-name", "no-model-name", "missing-dir", "no-config-yaml", "nameless-dir"],
)
def test_bad_operator_input_is_refused_before_any_request(
    conn: Any, tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    if kwargs.get("truss_dir") == "TMP":
        kwargs["truss_dir"] = str(tmp_path)
    elif kwargs.get("truss_dir") == "TMP_NAMELESS":
        (tmp_path / "config.yaml").write_text("resources:\n  accelerator: A10G\n")
        kwargs["truss_dir"] = str(tmp_path)
    before = sent(conn)
    op = DeployModelOperator(task_id="d", **kwargs, **FAST)
    with pytest.raises(BasetenValidationError, match=match):
        op.execute(context(task_state_store=StateStore()))
    assert sent(conn) == before


def test_deploy_timeout_out_of_range_fails_when_the_dag_is_parsed() -> None:
    for bad in (5, 1441, "30"):
        with pytest.raises(BasetenValidationError, match="deploy_timeout_minutes"):
            DeployModelOperator(task_id="d", config=CONFIG, deploy_timeout_minutes=bad)  # type: ignore[arg-type]


def test_bad_checkpoint_deploy_input_is_refused_before_any_request(conn: Any) -> None:
    before = sent(conn)
    op = DeployTrainingCheckpointOperator(
        task_id="d", training_project_id="p", training_job_id="j", model_name="m", labels=["x"], **FAST
    )
    with pytest.raises(BasetenValidationError, match="labels"):
        op.execute(context(task_state_store=StateStore()))
    assert sent(conn) == before


# -- the gateway -------------------------------------------------------------------------------------------
def test_a_deploy_through_lowcodeapi_is_refused_before_sending(conn: Any) -> None:
    """LowCodeAPI's reference lists none of the deploy routes: say so before anything is sent."""
    hook = make_hook(conn, gateway="lowcodeapi")
    before = sent(conn)
    for dry_run in (True, False):
        with pytest.raises(BasetenConfigurationError, match="gateway=baseten"):
            hook.deploy_model(CONFIG, dry_run=dry_run)
    assert sent(conn) == before


# -- secrets -----------------------------------------------------------------------------------------------
def test_the_upload_credentials_never_reach_logs_xcom_or_rendered_fields(
    conn: Any, task_log: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """A real Airflow run, with botocore logging at DEBUG (it logs signed headers): the temporary secret key
    and session token the emulator issued appear nowhere the task leaves text."""
    import logging
    from datetime import datetime

    from airflow.sdk import DAG

    from tests.dag_support import run_dag, task_states

    caplog.set_level(logging.DEBUG, logger="botocore")
    with DAG("t_deploy_secrets", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        DeployModelOperator(task_id="deploy", config=CONFIG, labels={"run": "{{ run_id }}"}, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"deploy": "success"}
    issued = [slot["creds"] for slot in conn.state.uploads.values()]
    assert len(issued) == 1
    secrets = [issued[0]["aws_secret_access_key"], issued[0]["aws_session_token"]]
    ti = run.get_task_instance("deploy")
    xcoms = {key: ti.xcom_pull(task_ids="deploy", key=key) for key in ("return_value", "model_id", "deployment_id")}
    texts = {
        "task log": messages(task_log) + "\n" + "\n".join(map(str, task_log)),
        "xcom": repr(xcoms),
        "rendered": repr(rendered(ti)),
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, where


def rendered(ti: Any) -> Any:
    """The task's rendered template fields, as Airflow stored them for the UI."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        fields = RenderedTaskInstanceFields.get_templated_fields(ti, session=session)
    assert fields and fields.get("config") and fields.get("labels")
    return fields


def test_a_failed_upload_error_names_no_secret(conn: Any, tmp_path: Path) -> None:
    from airflow_provider_baseten.client.upload import upload_archive
    from airflow_provider_baseten.exceptions import BasetenError

    hook = conn.hook()
    slot = hook.prepare_model_upload({"config": CONFIG}, name="leak-check")
    assert slot.creds is not None
    archive = tmp_path / "a.tgz"
    archive.write_bytes(b"not a tar")
    with pytest.raises(BasetenError) as info:
        upload_archive(archive, slot, conn.upload_url)
    text = f"{info.value}\n{info.value!r}\n{info.value.__dict__}\n{slot!r}\n{slot}"
    assert slot.creds.aws_secret_access_key not in text and slot.creds.aws_session_token not in text


# -- the checkpoint operator ------------------------------------------------------------------------------
def test_an_unknown_checkpoint_id_names_the_ones_there_and_deploys_nothing(conn: Any) -> None:
    from tests.integration.test_deploy import JOB, PROJECT

    conn.set_time_scale(200)
    job = conn.hook().create_training_job(PROJECT, JOB)
    op = DeployTrainingCheckpointOperator(
        task_id="d",
        training_project_id=PROJECT,
        training_job_id=job.id,
        model_name="ckpt-model",
        checkpoint_id="checkpoint-9",
        **FAST,
    )
    with pytest.raises(BasetenValidationError, match=r"checkpoint-9.*'checkpoint-1', 'checkpoint-2'"):
        op.execute(context(task_state_store=StateStore()))
    assert conn.state.uploads == {} and deployments(conn, "ckpt-model") == []
    assert counter(conn, "requests", "prepare_model_upload:slot") == 0


# -- a new user -------------------------------------------------------------------------------------------
def test_the_connection_the_emulator_cli_prints_deploys_to_the_emulator_not_to_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started from the command line, the emulator printed a connection without ``upload_endpoint_url``:
    a deploy then sent the archive to the real AWS bucket. Its printed connection must deploy as is."""
    import json
    import re
    import subprocess
    import sys

    import httpx

    from airflow_provider_baseten.hooks.baseten import BasetenHook

    cmd = [sys.executable, "-m", "airflow_provider_baseten.emulator", "--port", "0", "--api-key", "k-123"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        printed = re.search(r"AIRFLOW_CONN_BASETEN_DEFAULT='(.*)'", lines[2])
        assert printed, lines
        conn = json.loads(printed.group(1))
        conn["password"] = "k-123"
        monkeypatch.setenv("AIRFLOW_CONN_BASETEN_DEFAULT", json.dumps(conn))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        result = BasetenHook("baseten_default").deploy_model(CONFIG)
        counters = httpx.get(conn["host"] + "/__admin/counters").json()
        assert counters["submissions"]["model_archive_upload"] == 1  # the archive reached the emulator
        assert counters["submissions"]["deployment"] == 1 and result.deployment_id
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_upload_put_that_fails_is_put_again_and_committed_once(conn: Any) -> None:
    """S3 PUT is idempotent: a PUT refused before storing, then one stored but answered 502, are both sent
    again (botocore's retries, the file rewound); the archive is committed once, as one deployment."""
    conn.set_faults(
        [
            FaultRule("503", endpoints=["s3_put_object"], times=1),
            FaultRule("502", endpoints=["s3_put_object"], times=1, after=True),
        ]
    )
    result = conn.hook().deploy_model(CONFIG)
    faults = conn.counters()["faults"]
    assert faults["s3_put_object:503"] == 1 and faults["s3_put_object:502+after"] == 1
    assert counter(conn, "submissions", "model_archive_upload") == 2  # the 502-after PUT and the last one
    slot = conn.state.uploads[result.s3_key]
    assert slot["uploaded"] and slot["size"] == result.uploaded_bytes and slot["files"] == ["config.yaml"]
    assert counter(conn, "requests", "create_model") == 1
    assert [d.id for d in deployments(conn, "my-finetune")] == [result.deployment_id]
