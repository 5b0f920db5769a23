"""State machines through the hook: wake, promote, train, async (with webhook delivery)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenNotFoundError, BasetenValidationError

from .conftest import Receiver, make_hook

SLEEPY = "sleepy12"
PROJECT = "proj1234"


@pytest.fixture
def frozen(emulator: BasetenEmulator) -> BasetenEmulator:
    """The emulator with its clock stopped: only ``advance`` moves state."""
    emulator.set_time_scale(0)
    return emulator


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_wake(frozen: BasetenEmulator, gateway: str) -> None:
    # LowCodeAPI inference has no model id in the path: it reaches the default model, so sleep that one.
    model = SLEEPY if gateway == "baseten" else frozen.model_id
    if gateway == "lowcodeapi":
        frozen.scale_to_zero(model, "dep1prod")
    hook = make_hook(frozen, gateway=gateway, model_id=model)
    assert hook.get_deployment("production").status == "SCALED_TO_ZERO"
    assert hook.get_deployment("production").active_replica_count == 0
    assert hook.wake() is None
    assert hook.get_deployment("production").status == "WAKING_UP"
    frozen.advance(1.9)
    assert hook.get_deployment("production").status == "WAKING_UP"
    frozen.advance(0.2)
    deployment = hook.get_deployment("production")
    assert deployment.status == "ACTIVE" and deployment.active_replica_count == 1


def test_predict_wakes_and_waits_for_the_cold_start(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator, model_id=SLEEPY)
    emulator.set_time_scale(100)  # 2 emulated seconds of WAKING_UP = 20 ms
    assert hook.predict({"x": 1})["deployment_id"] == "dep4zzzz"
    assert hook.get_deployment("production").status == "ACTIVE"
    emulator.scale_to_zero(SLEEPY, "dep4zzzz")
    assert hook.get_deployment("production").status == "SCALED_TO_ZERO"


def test_new_deployment_builds_then_deploys(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    new = frozen.create_deployment("echo1234", "v9")
    seen = []
    for step in (0, 3, 2):
        frozen.advance(step)
        seen.append(hook.get_deployment(new["id"]).status)
    assert seen == ["BUILDING", "DEPLOYING", "ACTIVE"]


def test_promote_to_production_runs_its_course(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    new = frozen.create_deployment("echo1234", "v3")["id"]
    assert hook.promote_deployment(new).id == new  # still building: the promotion waits for it
    steps = []
    for advance in (0, 5, 2.5, 3):
        frozen.advance(advance)
        env = hook.get_environment("production")
        p = env.in_progress_promotion
        steps.append((p.status, p.percent_traffic_to_new_version, env.current_deployment.id))
    assert steps[0] == ("RELEASING", 0, "dep1prod")
    assert steps[1] == ("RELEASING", 0, "dep1prod")
    assert steps[2][0] == "RAMPING_UP" and 0 < steps[2][1] < 100 and steps[2][2] == "dep1prod"
    assert steps[3] == ("SUCCEEDED", 100, new)
    assert hook.get_model().production_deployment_id == new
    assert hook.get_deployment("production").id == new
    old = hook.get_deployment("dep1prod")
    assert old.status == "SCALED_TO_ZERO" and not old.is_production
    assert hook.predict({"x": 1})["deployment_id"] == new


def test_cancel_promotion_only_while_in_progress(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    hook.promote_deployment("development")  # dev is scaled to zero: it wakes first
    frozen.advance(1)
    assert hook.get_environment("production").in_progress_promotion.status == "RELEASING"
    assert hook.cancel_promotion().status == "CANCELED"
    env = hook.get_environment("production")
    assert env.in_progress_promotion.status == "CANCELED" and env.candidate_deployment is None
    assert env.current_deployment.id == "dep1prod"
    with pytest.raises(BasetenValidationError):
        hook.cancel_promotion()
    frozen.advance(60)
    assert hook.get_environment("production").current_deployment.id == "dep1prod"
    assert frozen.counters()["cancellations"] == {"promotion": 1}


def test_autoscaling_validation(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    with pytest.raises(BasetenValidationError):
        hook.update_autoscaling_settings(deployment_id="dep1prod", min_replica=3)  # > current max_replica 1
    import httpx

    r = httpx.patch(
        emulator.url + "/v1/models/echo1234/deployments/dep1prod/autoscaling_settings",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        json={"max_scale_down_rate": 80},
    )
    # The spec bounds max_scale_down_rate to 1..50: the strict emulator answers 422 as schema validation does ...
    assert r.status_code == 422 and "max_scale_down_rate" in r.json()["error"]
    with emulator.lenient():  # ... and its own state checks still answer 400 when validation is off
        r = httpx.patch(
            emulator.url + "/v1/models/echo1234/deployments/dep1prod/autoscaling_settings",
            headers={"Authorization": f"Bearer {emulator.api_key}"},
            json={"max_scale_down_rate": 80},
        )
    assert r.status_code == 400 and "max_scale_down_rate" in r.json()["error"]
    r = httpx.patch(
        emulator.url + "/v1/models/echo1234/deployments/dep1prod/autoscaling_settings",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        json={"bogus": 1},
    )
    assert r.status_code == 422


def test_training_job_lifecycle(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    job = hook.create_training_job(PROJECT, {"image": {"base_image": "python:3.11"}, "name": "ft"})
    seen = []
    for advance in (0, 1, 1, 2, 2.5, 2.5):
        frozen.advance(advance)
        seen.append(hook.get_training_job(PROJECT, job.id).current_status)
    assert seen == [
        "TRAINING_JOB_PENDING",
        "TRAINING_JOB_CREATED",
        "TRAINING_JOB_DEPLOYING",
        "TRAINING_JOB_RUNNING",
        "TRAINING_JOB_RUNNING",
        "TRAINING_JOB_COMPLETED",
    ]
    assert len(hook.get_training_job_checkpoints(PROJECT, job.id)) == 2
    assert any("loss=" in line.message for line in hook.get_training_job_logs(PROJECT, job.id))


def test_training_job_failure_flag_and_stop(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    spec = {"image": {"base_image": "python:3.11"}, "runtime": {"environment_variables": {"EMULATOR_FAIL": "1"}}}
    failing = hook.create_training_job(PROJECT, spec)
    running = hook.create_training_job(PROJECT, {"image": {"base_image": "python:3.11"}})
    frozen.advance(5)
    assert hook.stop_training_job(PROJECT, running.id).current_status == "TRAINING_JOB_STOPPED"
    frozen.advance(10)
    failed = hook.get_training_job(PROJECT, failing.id)
    assert failed.current_status == "TRAINING_JOB_FAILED" and "exited with code 1" in failed.error_message
    assert hook.get_training_job(PROJECT, running.id).current_status == "TRAINING_JOB_STOPPED"
    retried = hook.recreate_training_job(PROJECT, failing.id)
    assert retried.id not in (failing.id, running.id)
    counts = frozen.counters()
    assert counts["submissions"] == {"training_job": 3} and counts["cancellations"] == {"training_job": 1}


@pytest.mark.parametrize("gateway", ["baseten", "lowcodeapi"])
def test_async_request_delivers_its_webhook(emulator: BasetenEmulator, receiver: Receiver, gateway: str) -> None:
    hook = make_hook(emulator, gateway=gateway)
    emulator.set_time_scale(100)
    submitted = hook.async_predict({"text": "hello"}, webhook_endpoint=receiver.url)
    (body,) = receiver.wait(1)
    assert body == {
        "request_id": submitted.request_id,
        "model_id": "echo1234",
        "deployment_id": "dep1prod",
        "type": "async_request_completed",
        "time": body["time"],
        "data": {
            "output": {"text": "hello"},
            "length": 16,
            "model_id": "echo1234",
            "deployment_id": "dep1prod",
            "upper": "HELLO",
        },
        "errors": [],
    }
    for _ in range(100):  # the status flips right after the receiver answers
        status = hook.get_async_request(submitted.request_id)
        if status.webhook_status != "PENDING":
            break
    assert (status.status, status.webhook_status) == ("SUCCEEDED", "SUCCEEDED")
    assert emulator.counters()["webhooks"] == {"attempts": 1, "delivered": 1}


def test_async_request_failure_and_expiry(frozen: BasetenEmulator, receiver: Receiver) -> None:
    hook = make_hook(frozen)
    submitted = hook.async_predict({"fail": True}, webhook_endpoint=receiver.url)
    assert hook.get_async_request(submitted.request_id).status == "QUEUED"
    frozen.advance(0.5)
    assert hook.get_async_request(submitted.request_id).status == "IN_PROGRESS"
    frozen.advance(1)
    (body,) = receiver.wait(1)
    assert body["data"] is None and body["errors"][0]["code"] == "MODEL_PREDICT_ERROR"
    status = hook.get_async_request(submitted.request_id)
    assert status.status == "FAILED" and status.errors[0].code == "MODEL_PREDICT_ERROR"
    frozen.advance(3599)
    assert hook.get_async_request(submitted.request_id).status == "FAILED"
    frozen.advance(2)
    with pytest.raises(BasetenNotFoundError):
        hook.get_async_request(submitted.request_id)


def test_async_webhook_failure_and_signature(emulator_factory: object) -> None:
    emu = emulator_factory(time_scale=100, webhook_secret="whsec-test")  # type: ignore[operator]
    bad = Receiver(status=500)
    try:
        hook = make_hook(emu)
        submitted = hook.async_predict({"q": 1}, webhook_endpoint=bad.url)
        bad.wait(1)
        for _ in range(100):
            status = hook.get_async_request(submitted.request_id)
            if status.webhook_status != "PENDING":
                break
        assert (status.status, status.webhook_status) == ("WEBHOOK_FAILED", "FAILED")
        sent = json.dumps(bad.bodies[0], separators=(",", ":")).encode()
        expected = "v1=" + hmac.new(b"whsec-test", sent, hashlib.sha256).hexdigest()
        assert bad.headers[0]["X-BASETEN-SIGNATURE"] == expected
    finally:
        bad.close()


def test_async_cancel_only_while_queued(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen)
    first = hook.async_predict({"n": 1})
    second = hook.async_predict({"n": 2})
    assert hook.cancel_async_request(first.request_id).canceled is True
    frozen.advance(0.6)
    late = hook.cancel_async_request(second.request_id)
    assert late.canceled is False and "IN_PROGRESS" in late.message
    queue = hook.get_async_queue_status()
    assert (queue.num_queued_requests, queue.num_in_progress_requests) == (0, 1)
    assert frozen.counters()["cancellations"] == {"async_request": 1}
    assert frozen.counters()["submissions"] == {"async_predict": 2}


def test_async_request_on_a_sleeping_model_waits_for_the_wake(frozen: BasetenEmulator) -> None:
    hook = make_hook(frozen, model_id=SLEEPY)
    submitted = hook.async_predict({"q": 1})
    assert hook.get_deployment("production").status == "WAKING_UP"
    frozen.advance(1)
    assert hook.get_async_request(submitted.request_id).status == "QUEUED"
    frozen.advance(1.5)
    assert hook.get_async_request(submitted.request_id).status == "IN_PROGRESS"
