"""Deploy what you trained: the hook's REST deploy, the S3 upload, and the deploy operators, against the emulator.

Every count is read on the server (the emulator's state and counters), never in the client.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow.sdk import DAG, AssetAlias

from airflow_provider_baseten.client import routes
from airflow_provider_baseten.emulator.config import Durations, FaultRule
from airflow_provider_baseten.exceptions import (
    BasetenConfigurationError,
    BasetenError,
    BasetenValidationError,
)
from airflow_provider_baseten.models import ModelUpload
from airflow_provider_baseten.operators.deploy import DeployModelOperator, DeployTrainingCheckpointOperator
from tests.dag_support import StateStore, context, run_dag, task_states
from tests.integration.test_deployment_operators import messages, xcom
from tests.integration.test_deployment_operators import task_log as task_log  # the fixture

START = datetime(2026, 1, 1)
FAST = {"poke_interval": 0.02, "timeout": 60}
CONFIG = {"model_name": "my-finetune", "resources": {"accelerator": "H100:1", "use_gpu": True}}


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(200)
    return emulator


# Retries as many as the defaults, with backoffs of milliseconds: for tests that exhaust them on purpose.
SHORT_BACKOFF = {"retry": {"backoff_base": 0.005, "max_backoff": 0.02}}


def deployments(emu: Any, model_name: str | None = None) -> list[Any]:
    """Every deployment the emulator holds (of the models called ``model_name``)."""
    with emu.state.lock:
        return [d for m in emu.state.models.values() if model_name in (None, m.name) for d in m.deployments.values()]


def counter(emu: Any, group: str, key: str) -> int:
    return int(emu.counters()[group].get(key, 0))


def truss_dir(tmp_path: Path) -> Path:
    root = tmp_path / "truss"
    (root / "model").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "config.yaml").write_text("model_name: truss-model\nresources:\n  accelerator: A10G\n")
    (root / "model" / "model.py").write_text("class Model:\n    def predict(self, x):\n        return x\n")
    (root / "model" / "weights.bin").write_bytes(b"\0" * 1024)
    (root / "data" / "big.parquet").write_bytes(b"\1" * 4096)
    (root / ".truss_ignore").write_text("# not shipped\ndata/\n*.bin\n")
    return root


# -- the hook ---------------------------------------------------------------------------------------
def test_a_config_dict_makes_a_new_model_whose_deployment_becomes_active(conn: Any) -> None:
    hook = conn.hook()
    before = len(deployments(conn))
    conn.set_time_scale(0)
    result = hook.deploy_model(CONFIG, deployment_name="v1", labels={"run": "7"})
    assert result.deployment is not None and result.deployment.status == "BUILDING"
    assert len(deployments(conn)) == before + 1
    assert [d.id for d in deployments(conn, "my-finetune")] == [result.deployment_id]
    slot = conn.state.uploads[result.s3_key]
    assert slot["uploaded"] and slot["files"] == ["config.yaml"] and slot["archive_config"] == CONFIG
    assert counter(conn, "submissions", "model_archive_upload") == 1
    seen = []
    for _ in range(8):  # build 3 s, deploy 2 s, load 1 s (emulated), read every 0.9 s
        status = hook.get_deployment(result.deployment_id, model_id=result.model_id).status
        if not seen or seen[-1] != status:
            seen.append(status)
        conn.advance(0.9)
    assert seen == ["BUILDING", "DEPLOYING", "LOADING_MODEL", "ACTIVE"]
    dep = hook.get_deployment(result.deployment_id, model_id=result.model_id)
    assert dep.name == "v1" and dep.labels == {"run": "7"}


def test_an_existing_model_found_by_name_gets_a_new_deployment(conn: Any) -> None:
    hook = conn.hook()
    models_before = len(conn.state.models)
    result = hook.deploy_model({"model_name": "echo-model"}, deployment_name="v9")
    assert result.model_id == "echo1234"
    assert len(conn.state.models) == models_before
    assert "v9" in [d.name for d in deployments(conn, "echo-model")]
    assert counter(conn, "requests", "create_model_deployment") == 1
    assert counter(conn, "requests", "create_model") == 0


def test_a_truss_directory_ships_less_what_truss_ignore_lists(conn: Any, tmp_path: Path) -> None:
    result = conn.hook().deploy_model(truss_dir(tmp_path))
    slot = conn.state.uploads[result.s3_key]
    assert sorted(slot["files"]) == [".truss_ignore", "config.yaml", "model/model.py"]
    assert conn.state.models[result.model_id].name == "truss-model"


def test_the_async_twin_deploys_into_an_environment(conn: Any) -> None:
    async def go() -> Any:
        hook = conn.hook()
        try:
            return await hook.adeploy_model(CONFIG, environment="staging", deployment_name="a1")
        finally:
            await hook.aclose()

    result = asyncio.run(go())
    conn.advance(30)
    env = conn.hook().get_environment("staging", model_id=result.model_id)
    assert env.current_deployment is not None and env.current_deployment.id == result.deployment_id


def test_a_dry_run_validates_and_creates_nothing(conn: Any) -> None:
    before = len(deployments(conn))
    result = conn.hook().deploy_model(CONFIG, dry_run=True)
    assert result.dry_run and result.deployment_id is None
    assert len(deployments(conn)) == before
    assert conn.state.uploads == {}
    assert counter(conn, "requests", "prepare_model_upload:dry_run") == 1
    assert counter(conn, "requests", "create_model") == 0


def test_bad_input_is_refused_before_any_request(conn: Any, tmp_path: Path) -> None:
    hook = conn.hook()
    sent = sum(conn.counters()["requests"].values())
    with pytest.raises(BasetenValidationError, match="deploy_timeout_minutes"):
        hook.deploy_model(CONFIG, deploy_timeout_minutes=5)
    with pytest.raises(BasetenValidationError, match="not a Truss directory"):
        hook.deploy_model(str(tmp_path / "missing"))
    with pytest.raises(BasetenValidationError, match="Name the model"):
        hook.deploy_model({"resources": {}})
    (tmp_path / "config.yaml").write_text("- just\n- a list\n")
    with pytest.raises(BasetenValidationError, match="mapping"):
        hook.deploy_model(tmp_path)
    assert sum(conn.counters()["requests"].values()) == sent


def test_a_missing_deploy_extra_names_the_install_command(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    sent = sum(conn.counters()["requests"].values())
    with pytest.raises(BasetenConfigurationError, match=r"pip install 'airflow-provider-baseten\[deploy\]'"):
        conn.hook().deploy_model(CONFIG)
    assert sum(conn.counters()["requests"].values()) == sent
    conn.hook().deploy_model(CONFIG, dry_run=True)  # a dry run uploads nothing: no extra needed


def test_creates_are_classified_not_idempotent() -> None:
    assert routes.endpoint("create_model").creates and routes.endpoint("create_model_deployment").creates
    assert routes.endpoint("prepare_model_upload").repeat == "safe"


# -- the upload's signature --------------------------------------------------------------------------
def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_upload_must_be_sigv4_signed_with_the_issued_credentials(conn: Any, tmp_path: Path) -> None:
    from airflow_provider_baseten.client.upload import upload_archive

    hook = conn.hook()
    slot = hook.prepare_model_upload({"config": CONFIG}, name="sig-check")
    url = f"{conn.upload_url}/{slot.s3_bucket}/{slot.s3_key}"
    body = _tar({"config.yaml": b"model_name: x\n"})
    unsigned = httpx.put(url, content=body)
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text
    forged = "AWS4-HMAC-SHA256 Credential={}/20260101/us-west-2/s3/aws4_request, SignedHeaders={}, Signature={}"
    assert slot.creds is not None
    headers = {
        "authorization": forged.format(
            slot.creds.aws_access_key_id, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token", "0" * 64
        ),
        "x-amz-date": "20260101T000000Z",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-security-token": slot.creds.aws_session_token,
    }
    bad = httpx.put(url, content=body, headers=headers)
    assert bad.status_code == 403 and "SignatureDoesNotMatch" in bad.text
    wrong_key = slot.model_copy(update={"creds": slot.creds.model_copy(update={"aws_secret_access_key": "x" * 40})})
    archive = tmp_path / "ok.tgz"
    archive.write_bytes(body)
    with pytest.raises(BasetenError, match="SignatureDoesNotMatch"):
        upload_archive(archive, wrong_key, conn.upload_url)
    no_config = tmp_path / "no-config.tgz"
    no_config.write_bytes(_tar({"model/model.py": b"x = 1\n"}))
    with pytest.raises(BasetenError, match="InvalidArchive"):
        upload_archive(no_config, slot, conn.upload_url)
    assert not conn.state.uploads[slot.s3_key]["uploaded"]
    assert upload_archive(archive, slot, conn.upload_url) == len(body)
    assert conn.state.uploads[slot.s3_key]["uploaded"]
    assert slot.creds.aws_secret_access_key not in repr(slot) and "aws_session_token" not in repr(slot)


def test_a_commit_without_an_upload_is_refused(conn: Any) -> None:
    hook = conn.hook()
    slot = hook.prepare_model_upload({"config": CONFIG}, name="never-uploaded")
    with pytest.raises(BasetenError, match="upload the archive"):
        hook.create_model("never-uploaded", slot.s3_key, {"config": CONFIG})
    assert deployments(conn, "never-uploaded") == []


def test_no_s3_key_means_no_upload(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Baseten builds some configs without an archive (s3_key null): the hook skips the upload."""
    hook = conn.hook()
    uploads: list[Any] = []
    monkeypatch.setattr("airflow_provider_baseten.client.upload.upload_archive", lambda *a: uploads.append(a) or 1)
    archive_less = ModelUpload(s3_key=None)
    assert hook._upload(None, archive_less) == 0  # type: ignore[arg-type]
    assert uploads == []


# -- exactly once ------------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["create_model", "create_model_deployment"])
def test_a_502_after_the_create_is_reconciled_by_name(conn: Any, endpoint: str) -> None:
    name = "my-finetune" if endpoint == "create_model" else "echo-model"
    conn.set_faults([FaultRule("502", endpoints=[endpoint], times=1, after=True)])
    before = len(deployments(conn, name))
    result = conn.hook().deploy_model({"model_name": name}, deployment_name="once")
    assert len(deployments(conn, name)) == before + 1
    assert result.deployment_id == next(d.id for d in deployments(conn, name) if d.name == "once")
    assert counter(conn, "requests", endpoint) == 1
    assert counter(conn, "faults", "502") == 1


def test_a_retried_task_reconnects_and_never_deploys_twice(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # task_state_store: Airflow 3.3+
    store = StateStore()

    def attempt(**kw: Any) -> Any:
        op = DeployModelOperator(task_id="deploy", config=CONFIG, retries=2, **FAST, **kw)
        return op.execute(context(task_state_store=store))

    first = attempt(wait_for_completion=False)
    assert store.data["baseten_model_deployment"]["deployment_id"] == first
    again = attempt()  # the retry waits for the same deployment
    assert again == first
    assert len(deployments(conn, "my-finetune")) == 1
    assert counter(conn, "requests", "create_model") == 1


def test_a_create_lost_before_it_was_recorded_is_found_by_the_run_unique_name(conn: Any) -> None:
    """Try 1 created the deployment, then died before writing the state store: try 2 finds it by name."""
    from airflow_provider_baseten.operators.deploy import run_unique_name

    ctx = context(task_state_store=StateStore())
    conn.hook().deploy_model(CONFIG, deployment_name=run_unique_name(ctx, "deploy"))
    op = DeployModelOperator(task_id="deploy", config=CONFIG, **FAST)
    op.execute(ctx)
    assert len(deployments(conn, "my-finetune")) == 1
    assert counter(conn, "requests", "create_model") == 1


def test_an_ambiguous_create_whose_lookup_failed_too_is_settled_by_the_retry(conn: Any) -> None:
    store = StateStore()
    conn.set_faults(
        [
            FaultRule("502", endpoints=["create_model_deployment"], times=1, after=True),
            FaultRule("500", endpoints=["list_deployments"], times=8, skip=1),
        ]
    )

    def attempt() -> Any:
        op = DeployModelOperator(
            task_id="d",
            config={"model_name": "echo-model"},
            deployment_name="mine",
            wait_for_completion=False,
            hook_params=SHORT_BACKOFF,  # the lookup's retries exhaust in milliseconds, not ~8 s of real sleeps
        )
        return op.execute(context(task_state_store=store))

    with pytest.raises(BasetenError) as info:
        attempt()
    assert info.value.maybe_created
    conn.clear_faults()
    dep_id = attempt()
    assert [d.id for d in deployments(conn, "echo-model") if d.name == "mine"] == [dep_id]
    assert counter(conn, "requests", "create_model_deployment") == 1


# -- the operators in real Airflow -----------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_deploy_operator_waits_until_active_and_pushes_ids(conn: Any, tmp_path: Path, deferrable: bool) -> None:
    with DAG(f"t_deploy_{deferrable}", schedule=None, start_date=START) as dag:
        DeployModelOperator(task_id="deploy", truss_dir=str(truss_dir(tmp_path)), deferrable=deferrable, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"deploy": "success"}
    dep_id, model_id = xcom(run, "deploy"), xcom(run, "deploy", "model_id")
    assert conn.hook().get_deployment(dep_id, model_id=model_id).status == "ACTIVE"
    assert xcom(run, "deploy", "baseten_deployment_url").endswith(f"/models/{model_id}/logs/{dep_id}")
    assert len(deployments(conn, "truss-model")) == 1


def test_a_build_failure_fails_the_task_with_the_error_lines(conn: Any, task_log: list[dict[str, Any]]) -> None:
    conn.set_deploy_fail("BUILD_FAILED")
    with DAG("t_deploy_build_failed", schedule=None, start_date=START) as dag:
        DeployModelOperator(task_id="deploy", config=CONFIG, **FAST)
    run = run_dag(dag)
    assert task_states(run) == {"deploy": "failed"}
    logged = messages(task_log)
    assert "No matching distribution found for torch==9.9.9" in logged
    assert [d.status for d in deployments(conn, "my-finetune")] == ["BUILD_FAILED"]


def test_the_wait_tolerates_404_right_after_the_create(emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator_factory(time_scale=20, durations=Durations(not_found_after_create=20))
    for key, value in emu.connection_env().items():
        monkeypatch.setenv(key, value)
    op = DeployModelOperator(task_id="deploy", config=CONFIG, **FAST)
    ctx = context(task_state_store=StateStore())
    dep_id = op.execute(ctx)
    assert emu.hook().get_deployment(dep_id, model_id=ctx["ti"].xcoms["model_id"]).status == "ACTIVE"
    assert counter(emu, "responses", "404") >= 1  # it did see the 404s, and waited through them


def test_the_operator_dry_run_creates_nothing(conn: Any) -> None:
    op = DeployModelOperator(task_id="deploy", config=CONFIG, dry_run=True)
    assert op.execute(context()) is None
    assert deployments(conn, "my-finetune") == [] and conn.state.uploads == {}


# -- checkpoints --------------------------------------------------------------------------------------
PROJECT = "proj1234"  # seeded, named fine-tune-demo
JOB = {"image": {"base_image": "pytorch/pytorch:2.3.0"}, "name": "sft"}


def test_a_checkpoint_not_yet_synced_is_waited_on_then_the_latest_is_deployed(conn: Any) -> None:
    conn.set_time_scale(20)
    job = conn.hook().create_training_job(PROJECT, JOB)
    op = DeployTrainingCheckpointOperator(
        task_id="deploy_ckpt", training_project_id=PROJECT, training_job_id=job.id, model_name="ckpt-model", **FAST
    )
    ctx = context(task_state_store=StateStore())
    dep_id = op.execute(ctx)
    assert ctx["ti"].xcoms["checkpoint_id"] == "checkpoint-2"
    assert conn.hook().get_training_job(PROJECT, job.id).checkpoint_sync_status == "COMPLETED"
    (dep,) = deployments(conn, "ckpt-model")
    assert dep.id == dep_id and dep.status == "ACTIVE"
    slot = next(s for s in conn.state.uploads.values() if s.get("archive_config", {}).get("model_name") == "ckpt-model")
    repo = slot["archive_config"]["trt_llm"]["build"]["checkpoint_repository"]
    assert repo == {"source": "BASETEN_TRAINING", "repo": "fine-tune-demo", "revision": f"{job.id}/checkpoint-2"}
    assert counter(conn, "requests", "get_training_job") >= 2  # it polled the sync status


def test_a_chosen_lora_checkpoint_deploys_on_vllm_with_overrides(conn: Any) -> None:
    conn.set_time_scale(200)
    job = conn.hook().create_training_job(PROJECT, JOB)
    op = DeployTrainingCheckpointOperator(
        task_id="deploy_ckpt",
        training_project_id=PROJECT,
        training_job_id=job.id,
        model_name="lora-model",
        checkpoint_id="checkpoint-1",
        route="vllm",
        config_overrides={"resources": {"accelerator": "H100:4"}},
        deferrable=True,
        **FAST,
    )
    with DAG("t_deploy_ckpt_vllm", schedule=None, start_date=START) as dag:
        dag.add_task(op)
    run = run_dag(dag)
    assert task_states(run) == {"deploy_ckpt": "success"}
    config = next(s for s in conn.state.uploads.values() if s["uploaded"])["archive_config"]
    assert config["resources"] == {"accelerator": "H100:4", "use_gpu": True}
    assert "--lora-modules checkpoint-1=" in config["docker_server"]["start_command"]
    assert config["training_checkpoints"]["artifact_references"] == [
        {"training_job_id": job.id, "paths": ["rank-0/checkpoint-1/"]}
    ]


def test_a_failed_training_job_fails_the_checkpoint_deploy_without_deploying(conn: Any) -> None:
    job = conn.hook().create_training_job(
        PROJECT, {**JOB, "runtime": {"environment_variables": {"EMULATOR_FAIL": "1"}}}
    )
    op = DeployTrainingCheckpointOperator(
        task_id="d", training_project_id=PROJECT, training_job_id=job.id, model_name="never", **FAST
    )
    with pytest.raises(BasetenError, match="TRAINING_JOB_FAILED"):
        op.execute(context(task_state_store=StateStore()))
    assert deployments(conn, "never") == [] and conn.state.uploads == {}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_a_deploy_into_an_environment_emits_its_asset_and_lineage(conn: Any, deferrable: bool) -> None:
    """Deployed into ``staging``: the environment's asset event carries the new deployment (from Airflow's DB),
    and the lineage names the deployment in and the environment out; without an environment, no event."""
    from airflow_provider_baseten import assets
    from tests.integration.test_asset_events import events

    with DAG(f"t_deploy_asset_{deferrable}", schedule=None, start_date=START) as dag:
        into = DeployModelOperator(
            task_id="into",
            config=CONFIG,
            model_name="my-finetune",
            environment="staging",
            deferrable=deferrable,
            **FAST,
        )
        DeployModelOperator(task_id="plain", config=CONFIG, model_name="my-finetune", deferrable=deferrable, **FAST)
    assert into.outlets == [AssetAlias(assets.ENVIRONMENT_ALIAS)]  # the model id is known only at run time
    run = run_dag(dag)
    assert task_states(run) == {"into": "success", "plain": "success"}
    dep_id, model_id = xcom(run, "into"), xcom(run, "into", "model_id")
    [(uri, extra)] = events(run)  # one event, once; "plain" declares no outlet
    assert uri == f"baseten://model/{model_id}/environments/staging"
    assert extra["deployment_id"] == dep_id and extra["environment"] == "staging" and extra["serving"] is True


def test_deploy_lineage_names_what_was_deployed() -> None:
    pytest.importorskip("airflow.providers.openlineage")
    op = DeployModelOperator(task_id="d", config=CONFIG, environment="production")
    assert op.get_openlineage_facets_on_complete(None).outputs == []  # nothing seen ACTIVE: nothing reported
    op._active = {"model_id": "m1", "deployment_id": "d1"}
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [d.name for d in lineage.inputs] == ["model/m1/deployments/d1"]
    assert [d.name for d in lineage.outputs] == ["model/m1/environments/production"]
    plain = DeployModelOperator(task_id="p", config=CONFIG)
    plain._active = {"model_id": "m1", "deployment_id": "d1"}
    assert [d.name for d in plain.get_openlineage_facets_on_complete(None).outputs] == ["model/m1/deployments/d1"]
