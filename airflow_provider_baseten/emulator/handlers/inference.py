"""Inference endpoints of the emulated API: sync predict targets, wake, async predict (queue, status,
cancel) and webhook deliveries."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.objects import (
    ASYNC_PAYLOAD_LIMIT,
    ApiError,
    AsyncRequest,
    Deployment,
    Model,
    iso,
    model_output,
)


class InferenceHandlers(StateCore):
    """Async predict, wake and the sync predict target. Handlers are ``_h_<endpoint name>``; see :meth:`.EmulatorState.handle`."""

    # -- inference -----------------------------------------------------------------------------------
    def _target(self, target: str, params: dict[str, str], model_id: str | None) -> tuple[Model, Deployment]:
        model = self._model(model_id, inference=True)
        if target == "deployment":
            dep = self._deployment(model, params["deployment_id"], inference=True)
        elif target in ("production", "development"):
            dep = self._deployment(model, target, inference=True)
        else:
            env = model.environments.get(params["env_name"])
            if env is None or not env.current_deployment_id:
                raise ApiError(404, f"Environment {params['env_name']} not found", "model_does_not_exist")
            dep = self._deployment(model, env.current_deployment_id, inference=True)
        return model, dep

    def predict_target(self, target: str, params: dict[str, str], model_id: str | None) -> tuple[str, str, float]:
        """Resolve a sync predict: (model_id, deployment_id, ready_at). Wakes a scaled-to-zero deployment."""
        with self.lock:
            model, dep = self._target(target, params, model_id)
            ready = self._wake_deployment(dep, self.clock.now())
            if ready is None:
                raise ApiError(400, f"Deployment {dep.id} is {dep.status}; activate it first", "model_not_ready")
            dep.predictions += 1
            return model.id, dep.id, ready

    def _wake(self, target: str, params: dict[str, str], body: Any, model_id: str | None) -> tuple[int, Any]:
        _, dep = self._target(target, params, model_id)
        self._wake_deployment(dep, self.clock.now())
        return 202, None

    def _async_predict(self, target: str, params: dict[str, str], body: Any, model_id: str | None) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("model_input"), dict):
            raise ApiError(400, "model_input is required and must be a JSON object", "client_error")
        if len(json.dumps(body)) > ASYNC_PAYLOAD_LIMIT:
            raise ApiError(413, "Async request payload exceeds 256 KiB", "payload_too_large")
        checks = {"priority": (0, 2), "max_time_in_queue_seconds": (10, 259200)}
        for key, (lo, hi) in checks.items():
            v = body.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi):
                raise ApiError(400, f"{key} must be an integer between {lo} and {hi}", "client_error")
        webhook = body.get("webhook_endpoint")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            raise ApiError(400, "webhook_endpoint must be an http(s) URL", "client_error")
        model, dep = self._target(target, params, model_id)
        now = self.clock.now()
        ready = self._wake_deployment(dep, now)
        if ready is None:
            raise ApiError(400, f"Deployment {dep.id} is {dep.status}; activate it first", "model_not_ready")
        d = self.config.durations
        queue_end = max(now + d.async_queued, ready)
        req = AsyncRequest(
            request_id=self.new_id(32),
            model_id=model.id,
            deployment_id=dep.id,
            model_input=body["model_input"],
            created=now,
            queue_end=queue_end,
            run_end=queue_end + d.async_in_progress,
            expire_at=now + body.get("max_time_in_queue_seconds", 600),
            fail=bool(body["model_input"].get("fail")),
            webhook_endpoint=webhook,
            webhook_status="PENDING" if webhook else "NO_WEBHOOK_PROVIDED",
        )
        self.async_requests[req.request_id] = req
        self.submissions["async_predict"] += 1
        if webhook:
            self.webhook_pending.add(req.request_id)
        return 201, {"request_id": req.request_id}

    def _async_request(self, request_id: str, host_id: str | None = None) -> AsyncRequest:
        req = self.async_requests.get(request_id)
        if req is not None and req.chain_id is not None and host_id != req.chain_id:
            req = None  # a chain's request is known on its chain's host only
        now = self.clock.now()
        if req is not None:
            done = req.completed_at(now)
            if done is not None and now >= done + self.config.durations.async_status_ttl:
                del self.async_requests[request_id]  # Baseten keeps status one hour after completion
                req = None
        if req is None:
            raise ApiError(404, f"Async request {request_id} not found", "model_does_not_exist")
        return req

    def _h_get_async_request(self, params: dict[str, str], query: Any, body: Any, model_id: str | None) -> Any:
        req = self._async_request(params["request_id"], model_id)
        now = self.clock.now()
        status, since = req.status(now)
        errors = []
        if status == "FAILED":
            errors = [{"code": "MODEL_PREDICT_ERROR", "message": "The model raised an exception (emulated failure)."}]
        elif status == "EXPIRED":
            errors = [{"code": "MODEL_NOT_READY", "message": "The request expired in the queue."}]
        return 200, {
            "request_id": req.request_id,
            **({"chain_id": req.chain_id} if req.chain_id else {"model_id": req.model_id}),
            "deployment_id": req.deployment_id,
            "status": status,
            "webhook_status": req.webhook_status,
            "created_at": iso(req.created),
            "status_at": iso(since),
            "errors": errors,
        }

    def _h_cancel_async_request(self, params: dict[str, str], query: Any, body: Any, model_id: str | None) -> Any:
        req = self._async_request(params["request_id"], model_id)
        now = self.clock.now()
        status, _ = req.status(now)
        if status != "QUEUED":
            return 200, {
                "request_id": req.request_id,
                "canceled": False,
                "message": f"Request is {status}; only QUEUED requests can be canceled.",
            }
        req.canceled_at = now
        if req.webhook_endpoint:
            req.webhook_status = "CANCELED"
            self.webhook_pending.discard(req.request_id)
        self.cancellations["async_request"] += 1
        return 200, {"request_id": req.request_id, "canceled": True, "message": "Request canceled."}

    def _async_queue_status(self, target: str, params: dict[str, str], body: Any, model_id: str | None) -> Any:
        model, dep = self._target(target, params, model_id)
        now = self.clock.now()
        queued = in_progress = 0
        for req in self.async_requests.values():
            if req.deployment_id == dep.id:
                status, _ = req.status(now)
                queued += status == "QUEUED"
                in_progress += status == "IN_PROGRESS"
        return 200, {
            "model_id": model.id,
            "deployment_id": dep.id,
            "num_queued_requests": queued,
            "num_in_progress_requests": in_progress,
        }

    def due_webhooks(self) -> list[tuple[AsyncRequest, dict[str, Any]]]:
        """Async requests that just finished and whose webhook is not yet sent, with the webhook body."""
        out = []
        with self.lock:
            now = self.clock.now()
            for rid in list(self.webhook_pending):
                req = self.async_requests.get(rid)
                if req is None:
                    self.webhook_pending.discard(rid)
                    continue
                status, since = req.status(now)
                if status in ("QUEUED", "IN_PROGRESS") or req.webhook_sending:
                    continue
                req.webhook_sending = True
                self.webhook_pending.discard(rid)
                errors = []
                data = None
                if status == "SUCCEEDED":
                    data = model_output(req.model_id, req.deployment_id, req.model_input)
                elif status == "FAILED":
                    errors = [{"code": "MODEL_PREDICT_ERROR", "message": "The model raised an exception (emulated)."}]
                else:
                    errors = [{"code": "MODEL_NOT_READY", "message": f"The request ended {status}."}]
                payload = {
                    "request_id": req.request_id,
                    "model_id": req.model_id,
                    "deployment_id": req.deployment_id,
                    "type": "async_request_completed",
                    "time": iso(since),
                    "data": data,
                    "errors": errors,
                }
                out.append((req, payload))
        return out

    def webhook_attempted(self, req: AsyncRequest, detail: str) -> None:
        """Count one delivery attempt (``detail``: ``HTTP 200``, ``ConnectTimeout``, ...)."""
        with self.lock:
            req.webhook_attempts.append(detail)
            self.webhooks["attempts"] += 1

    def webhook_done(self, req: AsyncRequest, ok: bool, detail: str) -> None:
        """Record the outcome of a webhook delivery (after its last attempt)."""
        with self.lock:
            req.webhook_status = "SUCCEEDED" if ok else "FAILED"
            self.webhooks["delivered" if ok else "failed"] += 1
            self.webhook_log.append(
                {
                    "request_id": req.request_id,
                    "url": req.webhook_endpoint,
                    "ok": ok,
                    "detail": detail,
                    "attempts": list(req.webhook_attempts),
                }
            )
            del self.webhook_log[:-1000]
