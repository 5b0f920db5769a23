"""Creates are exactly-once: faults applied *after* the emulator committed the create, objects counted on the server.

Each case makes the emulator do the work (queue the request, start the job, store the key) and then answer
500/502/504, drop the connection, or answer too late for the client's read timeout. The provider must then
never send the create again: it finds the object by name where the API allows, or raises an error that
says the object may exist and how to check. Counts come from the emulator's state, never from the client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_baseten.client.transport import Timeouts
from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.exceptions import BasetenError
from tests.integration.conftest import make_hook

PROJECT = "proj1234"
JOB = {"image": {"base_image": "pytorch:2.3"}, "compute": {"cpu_count": 4}}
AMBIGUOUS = ["502", "drop"]  # every fault x every create: tests/chaos/test_ambiguous_creates.py


def _jobs(emu: Any, name: str | None = None) -> list[Any]:
    with emu.state.lock:
        return [j for j in emu.state.jobs.values() if name is None or j.name == name]


def _submissions(emu: Any) -> int:
    return emu.counters()["submissions"].get("async_predict", 0)


@pytest.mark.parametrize("kind", AMBIGUOUS)
def test_named_training_job_is_created_once_and_found(emulator: Any, kind: str) -> None:
    emulator.set_faults([FaultRule(kind, endpoints=["create_training_job"], times=1, after=True)])
    job = make_hook(emulator).create_training_job(PROJECT, {**JOB, "name": f"nightly-{kind}"})
    assert job.name == f"nightly-{kind}"
    assert [j.id for j in _jobs(emulator, f"nightly-{kind}")] == [job.id]
    assert emulator.counters()["requests"]["create_training_job"] == 1
    assert emulator.counters()["faults"][f"{kind}+after"] == 1


@pytest.mark.parametrize("kind", AMBIGUOUS)
def test_unnamed_training_job_is_not_resent_and_the_error_says_how_to_check(emulator: Any, kind: str) -> None:
    before = len(_jobs(emulator))
    emulator.set_faults([FaultRule(kind, endpoints=["create_training_job"], times=1, after=True)])
    with pytest.raises(BasetenError) as info:
        make_hook(emulator).create_training_job(PROJECT, JOB)
    assert info.value.maybe_created
    assert "may have taken effect" in str(info.value) and "list_training_jobs" in str(info.value)
    assert len(_jobs(emulator)) == before + 1  # the one the server made; no second
    assert emulator.counters()["requests"]["create_training_job"] == 1


def test_read_timeout_after_commit_reconciles(emulator: Any) -> None:
    emulator.set_faults([FaultRule("slow", endpoints=["create_training_job"], times=1, after=True, delay=1.0)])
    hook = make_hook(emulator, timeouts=Timeouts(management_read=0.3))
    job = hook.create_training_job(PROJECT, {**JOB, "name": "slow-one"})
    assert [j.id for j in _jobs(emulator, "slow-one")] == [job.id]
    assert emulator.counters()["requests"]["create_training_job"] == 1


def test_async_twin_reconciles_the_same_way(emulator: Any) -> None:
    emulator.set_faults([FaultRule("502", endpoints=["create_training_job"], times=1, after=True)])

    async def go() -> Any:
        hook = make_hook(emulator)
        try:
            return await hook.acreate_training_job(PROJECT, {**JOB, "name": "async-one"})
        finally:
            await hook.aclose()

    job = asyncio.run(go())
    assert [j.id for j in _jobs(emulator, "async-one")] == [job.id]


def test_an_older_job_with_the_same_name_is_not_taken_for_the_new_one(emulator: Any) -> None:
    hook = make_hook(emulator)
    old = hook.create_training_job(PROJECT, {**JOB, "name": "reused"})
    with emulator.state.lock:
        emulator.state.jobs[old.id].created -= 3600  # made an hour ago
    emulator.set_faults([FaultRule("502", endpoints=["create_training_job"], times=1, after=True)])
    new = hook.create_training_job(PROJECT, {**JOB, "name": "reused"})
    assert new.id != old.id
    assert sorted(j.id for j in _jobs(emulator, "reused")) == sorted([old.id, new.id])


def test_a_job_that_existed_before_the_create_is_never_taken_for_it(emulator: Any) -> None:
    """A plain 502 (nothing created) right after a same-named job: the old job must not come back as the new one."""
    hook = make_hook(emulator)
    old = hook.create_training_job(
        PROJECT, {**JOB, "name": "sweep", "runtime": {"environment_variables": {"LR": "0.1"}}}
    )
    emulator.set_faults([FaultRule("502", endpoints=["create_training_job"], times=1)])  # before acting
    with pytest.raises(BasetenError) as info:
        hook.create_training_job(
            PROJECT, {**JOB, "name": "sweep", "runtime": {"environment_variables": {"LR": "0.01"}}}
        )
    assert info.value.maybe_created
    assert [j.id for j in _jobs(emulator, "sweep")] == [old.id]


def test_an_environment_that_existed_before_is_not_reported_as_created(emulator: Any) -> None:
    hook = make_hook(emulator)
    hook.create_environment("canary")
    emulator.set_faults([FaultRule("502", endpoints=["create_environment"], times=1)])
    with pytest.raises(BasetenError) as info:
        hook.create_environment("canary", autoscaling_settings={"max_replica": 8})
    assert info.value.maybe_created


@pytest.mark.parametrize("kind", AMBIGUOUS)
def test_async_submit_is_never_resent(emulator: Any, kind: str) -> None:
    emulator.set_time_scale(0)
    emulator.set_faults([FaultRule(kind, endpoints=["inference"], times=1, after=True)])
    with pytest.raises(BasetenError) as info:
        make_hook(emulator).async_predict({"i": 1})
    assert info.value.maybe_created and "get_async_queue_status" in str(info.value)
    assert _submissions(emulator) == 1


@pytest.mark.parametrize(("kind", "sent"), [("503", 2), ("429", 2), ("500", 1)])
def test_faults_before_the_server_acts(emulator: Any, kind: str, sent: int) -> None:
    """503 and 429 prove nothing was done, so the submit is repeated; a 500 does not, so it is not."""
    emulator.set_time_scale(0)
    emulator.set_faults([FaultRule(kind, endpoints=["inference"], times=1, retry_after=0.01)])
    hook = make_hook(emulator)
    if sent == 2:
        assert hook.async_predict({"i": 1}).request_id
    else:
        with pytest.raises(BasetenError):
            hook.async_predict({"i": 1})
    assert emulator.counters()["requests"]["production_async_predict"] == sent
    assert _submissions(emulator) == sent - 1


def test_environment_is_found_by_name(emulator: Any) -> None:
    emulator.set_faults([FaultRule("502", endpoints=["create_environment"], times=1, after=True)])
    env = make_hook(emulator).create_environment("canary")
    assert env.name == "canary"
    with emulator.state.lock:
        assert "canary" in emulator.state.models[emulator.model_id].environments
    assert emulator.counters()["requests"]["create_environment"] == 1


def test_api_key_is_not_resent(emulator: Any) -> None:
    with emulator.state.lock:
        before = len(emulator.state.api_keys)
    emulator.set_faults([FaultRule("504", endpoints=["create_api_key"], times=1, after=True)])
    with pytest.raises(BasetenError) as info:
        make_hook(emulator).create_api_key(name="ci")
    assert info.value.maybe_created and "list_api_keys" in str(info.value)
    with emulator.state.lock:
        assert len(emulator.state.api_keys) == before + 1


def test_secret_upsert_is_repeated_and_leaves_one_secret(emulator: Any) -> None:
    emulator.set_faults([FaultRule("502", endpoints=["upsert_secret"], times=1, after=True)])
    secret = make_hook(emulator).upsert_secret("hf_token", "v-123")
    assert secret.name == "hf_token"
    assert emulator.counters()["requests"]["upsert_secret"] == 2
    with emulator.state.lock:
        assert [s for s in emulator.state.secrets if s == "hf_token"] == ["hf_token"]


@pytest.mark.parametrize(("after", "jobs"), [(True, 1), (False, 1)])
def test_a_retried_training_task_finds_the_job_an_ambiguous_create_made(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, after: bool, jobs: int
) -> None:
    """Try 1's create gets a 502 (after the job was made, or before); try 2 reconnects or creates: one job."""
    from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
    from tests.dag_support import StateStore, context

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(0)
    store = StateStore()
    before = len(_jobs(emulator))
    emulator.set_faults([FaultRule("502", endpoints=["create_training_job"], times=1, after=after)])

    def attempt() -> Any:
        op = CreateTrainingJobOperator(
            task_id="t", training_project_id=PROJECT, image=JOB["image"], wait_for_completion=False, retries=1
        )
        return op.execute(context(task_state_store=store))

    if after:  # the job has the run-unique name: the hook's own lookup finds it, try 1 already has it
        job_id = attempt()
    else:
        with pytest.raises(BasetenError) as info:
            attempt()
        assert info.value.maybe_created
        job_id = attempt()
    assert len(_jobs(emulator)) == before + jobs
    assert job_id in {j.id for j in _jobs(emulator)}
    assert emulator.counters()["requests"]["create_training_job"] == (1 if after else 2)
