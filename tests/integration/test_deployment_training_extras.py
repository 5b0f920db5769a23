"""Deployment config, download URL, replica termination, the ``production`` shortcut routes, and training job
update/delete, project delete and cache summary, against the emulator over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenNotFoundError, BasetenValidationError

from .conftest import make_hook

MODEL = "echo1234"
JOB = {"image": {"base_image": "python:3.11"}, "name": "ft-run"}


def served(emu: BasetenEmulator, endpoint: str) -> list[int]:
    return [r["status"] for r in emu.requests() if r["endpoint"] == endpoint]


def test_production_shortcuts_use_their_own_routes_direct_and_the_listed_row_through_the_gateway(
    emulator: BasetenEmulator,
) -> None:
    hook = make_hook(emulator)
    assert hook.deactivate_deployment("production").success is True
    assert hook.get_deployment("production").status in ("DEACTIVATING", "INACTIVE")
    assert asyncio.run(hook.aactivate_deployment("production")).success is True
    assert hook.update_autoscaling_settings(deployment_id="production", max_replica=3).status == "ACCEPTED"
    assert hook.get_deployment("production").autoscaling_settings.max_replica == 3
    assert served(emulator, "deactivate_production_deployment") == [200]
    assert served(emulator, "activate_production_deployment") == [200]
    assert served(emulator, "update_production_autoscaling_settings") == [200]
    # The gateway's reference has no production rows: the same call goes to /deployments/production/... on the
    # listed {deployment_id} row, so it is not refused.
    gateway = make_hook(emulator, gateway="lowcodeapi", url_format="new")
    assert gateway.update_autoscaling_settings(deployment_id="production", max_replica=2).status == "ACCEPTED"
    assert gateway.activate_deployment("production").success is True
    sent = [(r["method"], r["path"]) for r in emulator.requests() if r["surface"] != "direct"]
    assert ("POST", f"/baseten/v1/models/{MODEL}/deployments/production/activate") in sent


def test_deployment_config_in_each_format(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    both = hook.get_deployment_config("dep1prod", model_id=MODEL)
    assert both.config is not None and both.config["model_name"] and both.raw_config
    raw = asyncio.run(hook.aget_deployment_config("dep1prod", output_format="raw"))
    assert raw.config is None and raw.raw_config == both.raw_config
    with pytest.raises(BasetenValidationError, match="output_format"):
        hook.get_deployment_config("dep1prod", output_format="yaml")
    assert served(emulator, "get_deployment_config") == [200, 200]  # the bad one was not sent


def test_download_url_is_returned_and_masked(emulator: BasetenEmulator) -> None:
    download = make_hook(emulator).get_deployment_download_url("dep1prod")
    assert download.download_url.startswith("https://") and "X-Amz-Signature=" in download.download_url
    assert download.download_url not in repr(download)
    with pytest.raises(BasetenNotFoundError):
        make_hook(emulator).get_deployment_download_url("nosuch12")


def test_terminate_a_replica_once(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    replica = ("r" + "dep1prod")[:5]  # the emulator's replica id, as its log lines carry it
    assert hook.terminate_replica("dep1prod", replica).success is True
    lines = hook.get_deployment_logs("dep1prod", limit=1000)
    assert any(f"Replica {replica} terminated" in x.message for x in lines)
    with pytest.raises(BasetenNotFoundError):
        asyncio.run(hook.aterminate_replica("dep1prod", "zzzzz"))


def test_update_and_delete_a_training_job_then_the_project(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    project = hook.create_training_project("to-delete")
    job = hook.create_training_job(project.id, JOB)
    assert hook.update_training_job(project.id, job.id, priority=1).id == job.id
    with pytest.raises(BasetenValidationError, match="priority"):
        hook.update_training_job(project.id, job.id, priority="high")  # type: ignore[arg-type]
    cache = hook.get_training_project_cache_summary(project.id)
    assert cache.project_id == project.id and [f.path.split("/")[-2] for f in cache.file_summaries] == [job.id]
    assert cache.size_bytes == 50 * 1024 * 1024
    gone = hook.delete_training_job(project.id, job.id)
    assert gone.deleted is True and gone.id == job.id
    with pytest.raises(BasetenNotFoundError):  # deleting twice deletes one job; the second is a 404
        asyncio.run(hook.adelete_training_job(project.id, job.id))
    assert hook.delete_training_project(project.id).deleted is True
    with pytest.raises(BasetenNotFoundError):
        hook.get_training_project(project.id)
    assert served(emulator, "update_training_job") == [200]


def test_bis_llm_model_builds_and_serves_then_a_new_version(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator)
    handle = hook.create_llm_model("my-llm", {"accelerator": "H100", "use_gpu": True}, llm_config={"build": {}})
    assert handle.hostname == f"model-{handle.model_id}.api.baseten.co" and handle.version_id
    emulator.advance(120)
    production = hook.get_deployment("production", model_id=handle.model_id)
    assert production.id == handle.version_id and production.status == "ACTIVE"
    assert hook.predict({"q": 1}, model_id=handle.model_id)["output"] == {"q": 1}
    again = asyncio.run(hook.acreate_llm_model_deployment({"accelerator": "H100"}, model_id=handle.model_id))
    assert again.model_id == handle.model_id and again.version_id != handle.version_id
    with pytest.raises(BasetenValidationError, match="resources"):
        hook.create_llm_model("bad-llm", {})
    assert emulator.counters()["submissions"]["deployment"] == 2


def test_bis_llm_create_is_reconciled_by_name_after_an_ambiguous_failure(emulator: BasetenEmulator) -> None:
    from airflow_provider_baseten.emulator.config import FaultRule

    emulator.set_faults([FaultRule("502", endpoints=["create_llm_model"], times=1, after=True)])
    handle = make_hook(emulator).create_llm_model("once-llm", {"accelerator": "H100"})
    assert emulator.counters()["faults"]["502+after"] == 1
    assert emulator.counters()["requests"]["create_llm_model"] == 1  # not sent again: found by name instead
    named = [m for m in make_hook(emulator).list_models() if m.name == "once-llm"]
    assert [m.id for m in named] == [handle.model_id] and handle.version_id is None
