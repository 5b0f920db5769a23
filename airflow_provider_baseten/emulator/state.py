"""The emulator's in-memory Baseten: models, deployments, environments, training, async requests.

State changes over time are computed *lazily* from timestamps on the emulator :class:`~.clock.Clock`
whenever something reads them, so the same sequence of calls and clock moves always gives the same answers.
Side effects that happen "by themselves" (a promotion finishing, an async request completing and its webhook
firing) are applied when first observed: by any read, or by the app's ticker every few milliseconds.

Handlers return Baseten-shaped JSON (``dict``) or raise :class:`ApiError`; the app adds HTTP, auth and the
gateway envelope. Every public method takes the state lock: the app's event loop and a test thread may both
call in.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import string
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_baseten.emulator.clock import Clock
from airflow_provider_baseten.emulator.config import Durations, EmulatorConfig

TEAM = "emulator-team"
INSTANCE_TYPE = {
    "id": "A10Gx4x16",
    "name": "A10G (1 GPU, 4 vCPU, 16 GiB)",
    "memory_limit_mib": 16384,
    "millicpu_limit": 4000,
    "gpu_count": 1,
    "gpu_type": "A10G",
    "gpu_memory_limit_mib": 24576,
}
DEFAULT_AUTOSCALING = {
    "min_replica": 0,
    "max_replica": 1,
    "autoscaling_window": 60,
    "scale_down_delay": 900,
    "concurrency_target": 1,
    "target_utilization_percentage": 70,
    "target_in_flight_tokens": None,
    "max_scale_down_rate": None,
}
AUTOSCALING_LIMITS = {
    "min_replica": (0, 1000),
    "max_replica": (1, 1000),
    "autoscaling_window": (10, 3600),
    "scale_down_delay": (0, 86400),
    "concurrency_target": (1, 100000),
    "target_utilization_percentage": (1, 100),
    "target_in_flight_tokens": (1, 10**9),
    "max_scale_down_rate": (1, 50),
}
DEFAULT_PROMOTION_SETTINGS = {
    "redeploy_on_promotion": False,
    "rolling_deploy": False,
    "promotion_cleanup_strategy": "SCALE_TO_ZERO",
    "rolling_deploy_config": None,
    "ramp_up_while_promoting": False,
    "ramp_up_duration_seconds": 600,
}
ASYNC_PAYLOAD_LIMIT = 256 * 1024
DEFAULT_STATE: dict[str, Any] = {
    "models": [
        {
            "id": "echo1234",
            "name": "echo-model",
            "deployments": [
                {"id": "dep1prod", "name": "v1", "status": "ACTIVE", "environment": "production"},
                {"id": "dep2devl", "name": "development", "status": "SCALED_TO_ZERO", "is_development": True},
                {"id": "dep3stag", "name": "v2", "status": "ACTIVE", "environment": "staging"},
            ],
        },
        {
            "id": "sleepy12",
            "name": "sleepy-model",
            "deployments": [
                {"id": "dep4zzzz", "name": "v1", "status": "SCALED_TO_ZERO", "environment": "production"},
            ],
        },
    ],
    "chains": [{"id": "chain123", "name": "rag-chain", "deployments_count": 1}],
    "training_projects": [{"id": "proj1234", "name": "fine-tune-demo"}],
    "secrets": [{"name": "hf_access_token"}],
    "api_keys": [{"prefix": "ci000001", "name": "ci", "type": "WORKSPACE_INVOKE"}],
}


class ApiError(Exception):
    """An error answer: HTTP ``status``, a message (never containing a secret) and Baseten's error code."""

    def __init__(self, status: int, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


def iso(t: float) -> str:
    """Epoch seconds as an RFC 3339 UTC timestamp, as Baseten writes them."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def phase(start: float, steps: Sequence[tuple[str, float]], final: str, now: float) -> tuple[str, float]:
    """The status at ``now`` of a timeline that runs ``steps`` from ``start`` then stays ``final``; and since when."""
    t = start
    for status, duration in steps:
        if now < t + duration:
            return status, t
        t += duration
    return final, t


def model_output(model_id: str, deployment_id: str, model_input: Any) -> dict[str, Any]:
    """The emulated model: echo the input, plus its JSON length and, for ``{"text": ...}``, an upper-cased copy.

    ``{"output": <input>, "length": len(json.dumps(input)), "model_id": ..., "deployment_id": ...}``
    """
    out: dict[str, Any] = {
        "output": model_input,
        "length": len(json.dumps(model_input, separators=(",", ":"))),
        "model_id": model_id,
        "deployment_id": deployment_id,
    }
    if isinstance(model_input, dict) and isinstance(model_input.get("text"), str):
        out["upper"] = model_input["text"].upper()
    return out


@dataclass
class Deployment:
    """A model deployment and its status timeline."""

    id: str
    model_id: str
    name: str
    created: float
    status: str
    is_development: bool = False
    labels: dict[str, Any] | None = None
    autoscaling: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_AUTOSCALING))
    steps: list[tuple[str, float]] = field(default_factory=list)
    steps_start: float = 0.0
    final: str = "ACTIVE"

    def refresh(self, now: float) -> None:
        """Apply the timeline up to ``now``."""
        if self.steps:
            status, _ = phase(self.steps_start, self.steps, self.final, now)
            self.status = status
            if status == self.final:
                self.steps = []

    def start(self, now: float, steps: list[tuple[str, float]], final: str = "ACTIVE") -> None:
        """Start a new timeline at ``now``."""
        self.steps, self.steps_start, self.final = steps, now, final
        self.refresh(now)

    def ready_at(self, now: float) -> float | None:
        """When it is (or will be) ACTIVE; ``None`` if it will not be without an activate."""
        if self.status == "ACTIVE":
            return now
        if self.steps and self.final == "ACTIVE":
            return self.steps_start + sum(d for _, d in self.steps)
        return None


@dataclass
class Promotion:
    """A promotion of ``deployment_id`` into an environment."""

    deployment_id: str
    start: float
    release_end: float
    ramp_end: float
    scale_down_previous: bool
    status: str | None = None  # set once terminal: SUCCEEDED or CANCELED

    def current(self, now: float) -> str:
        """RELEASING, RAMPING_UP, then SUCCEEDED (or the terminal status it was given)."""
        if self.status:
            return self.status
        if now < self.release_end:
            return "RELEASING"
        if now < self.ramp_end:
            return "RAMPING_UP"
        return "SUCCEEDED"

    def percent(self, now: float) -> int:
        """Share of traffic on the new deployment."""
        status = self.current(now)
        if status == "SUCCEEDED":
            return 100
        if status != "RAMPING_UP":
            return 0
        span = max(self.ramp_end - self.release_end, 1e-9)
        return max(1, min(99, int((now - self.release_end) / span * 100)))


@dataclass
class Environment:
    """A model environment."""

    name: str
    model_id: str
    created: float
    current_deployment_id: str | None = None
    autoscaling: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_AUTOSCALING))
    promotion_settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PROMOTION_SETTINGS))
    promotion: Promotion | None = None


@dataclass
class Model:
    """A model, its deployments and environments."""

    id: str
    name: str
    created: float
    deployments: dict[str, Deployment] = field(default_factory=dict)
    environments: dict[str, Environment] = field(default_factory=dict)


@dataclass
class TrainingJob:
    """A training job. Its status is a pure function of time unless stopped."""

    id: str
    project_id: str
    name: str | None
    spec: dict[str, Any]
    created: float
    fail: bool
    durations: Durations
    stopped_at: float | None = None

    def timeline(self) -> list[tuple[str, float]]:
        """The job's status steps."""
        d = self.durations
        return [
            ("TRAINING_JOB_PENDING", d.training_pending),
            ("TRAINING_JOB_CREATED", d.training_created),
            ("TRAINING_JOB_DEPLOYING", d.training_deploying),
            ("TRAINING_JOB_RUNNING", d.training_running),
        ]

    def status(self, now: float) -> tuple[str, float]:
        """(current_status, since)."""
        final = "TRAINING_JOB_FAILED" if self.fail else "TRAINING_JOB_COMPLETED"
        if self.stopped_at is not None and now >= self.stopped_at:
            status, _ = phase(self.created, self.timeline(), final, self.stopped_at)
            if status.endswith(("_PENDING", "_CREATED", "_DEPLOYING", "_RUNNING")):
                return "TRAINING_JOB_STOPPED", self.stopped_at
        return phase(self.created, self.timeline(), final, now)

    def running_progress(self, now: float) -> float:
        """0..1: how much of the RUNNING phase has passed."""
        steps = self.timeline()
        run_start = self.created + sum(d for _, d in steps[:-1])
        end = now if self.stopped_at is None else min(now, self.stopped_at)
        return max(0.0, min(1.0, (end - run_start) / max(steps[-1][1], 1e-9)))


@dataclass
class AsyncRequest:
    """An async predict request."""

    request_id: str
    model_id: str
    deployment_id: str
    model_input: Any
    created: float
    queue_end: float
    run_end: float
    expire_at: float  # created + max_time_in_queue_seconds
    fail: bool
    webhook_endpoint: str | None
    canceled_at: float | None = None
    webhook_status: str = "PENDING"
    webhook_sending: bool = False

    def status(self, now: float) -> tuple[str, float]:
        """(status, since)."""
        if self.canceled_at is not None:
            return "CANCELED", self.canceled_at
        if self.queue_end > self.expire_at and now >= self.expire_at:
            return "EXPIRED", self.expire_at
        if now < self.queue_end:
            return "QUEUED", self.created
        if now < self.run_end:
            return "IN_PROGRESS", self.queue_end
        if self.fail:
            return "FAILED", self.run_end
        if self.webhook_status == "FAILED":
            return "WEBHOOK_FAILED", self.run_end
        return "SUCCEEDED", self.run_end

    def completed_at(self, now: float) -> float | None:
        """When it reached a terminal status (``None`` while still active)."""
        status, since = self.status(now)
        return None if status in ("QUEUED", "IN_PROGRESS") else since


class EmulatorState:
    """Every object the emulator holds, and the behaviour of every endpoint in ``_routes``."""

    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.reset()

    # -- seeding -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything and load the seed state again."""
        with self.lock:
            self.rng = random.Random(self.config.seed)
            self.models: dict[str, Model] = {}
            self.chains: dict[str, dict[str, Any]] = {}
            self.projects: dict[str, dict[str, Any]] = {}
            self.jobs: dict[str, TrainingJob] = {}
            self.secrets: dict[str, dict[str, Any]] = {}
            self.api_keys: dict[str, dict[str, Any]] = {}
            self.async_requests: dict[str, AsyncRequest] = {}
            self.webhook_pending: set[str] = set()
            self.webhook_log: list[dict[str, Any]] = []
            self.training_fail = self.config.training_fail
            self._counters: dict[str, Counter[str]] = {
                k: Counter() for k in ("requests", "submissions", "cancellations", "webhooks", "faults", "responses")
            }
            self._seed(copy.deepcopy(self.config.state if self.config.state is not None else DEFAULT_STATE))

    def _seed(self, seed: dict[str, Any]) -> None:
        now = self.clock.now()
        created = now - 86400
        for m in seed.get("models", []):
            model = Model(id=m["id"], name=m.get("name", m["id"]), created=created)
            self.models[model.id] = model
            for d in m.get("deployments", []):
                dep = self._new_deployment(model, d, created)
                if d.get("environment"):
                    env = model.environments.get(d["environment"]) or Environment(d["environment"], model.id, created)
                    env.current_deployment_id = dep.id
                    model.environments[env.name] = env
            for e in m.get("environments", []):
                env = model.environments.get(e["name"]) or Environment(e["name"], model.id, created)
                env.current_deployment_id = e.get("deployment_id", env.current_deployment_id)
                model.environments[env.name] = env
            if "production" not in model.environments:
                model.environments["production"] = Environment("production", model.id, created)
        for c in seed.get("chains", []):
            self.chains[c["id"]] = {
                "id": c["id"],
                "created_at": iso(created),
                "name": c.get("name", c["id"]),
                "deployments_count": c.get("deployments_count", 1),
                "team_name": TEAM,
            }
        for p in seed.get("training_projects", []):
            self.projects[p["id"]] = {"id": p["id"], "name": p.get("name", p["id"]), "created": created}
            for j in p.get("jobs", []):
                self._create_job(p["id"], j, created, job_id=j.get("id"))
        for s in seed.get("secrets", []):
            self.secrets[s["name"]] = self._secret(s["name"], s.get("value", "seeded"), created)
        for k in seed.get("api_keys", []):
            self.api_keys[k["prefix"]] = {
                "prefix": k["prefix"],
                "name": k.get("name"),
                "type": k.get("type", "WORKSPACE_INVOKE"),
                "model_ids": k.get("model_ids"),
                "team_name": TEAM,
            }

    def _new_deployment(self, model: Model, d: dict[str, Any], created: float) -> Deployment:
        dep = Deployment(
            id=d.get("id") or self.new_id(),
            model_id=model.id,
            name=d.get("name") or "deployment",
            created=created,
            status=d.get("status", "ACTIVE"),
            is_development=bool(d.get("is_development")),
            labels=d.get("labels"),
        )
        if dep.status == "BUILDING":  # seeded mid-build: run the build from now
            self._start_build(dep, self.clock.now())
        model.deployments[dep.id] = dep
        return dep

    def _start_build(self, dep: Deployment, now: float) -> None:
        d = self.config.durations
        dep.start(now, [("BUILDING", d.build), ("DEPLOYING", d.deploy)])

    def new_id(self, n: int = 8) -> str:
        """A Baseten-looking id (8 lowercase letters and digits), repeatable for a given seed."""
        return "".join(self.rng.choices(string.ascii_lowercase + string.digits, k=n))

    # -- helpers -------------------------------------------------------------------------------------
    def _model(self, model_id: str | None, inference: bool = False) -> Model:
        model = self.models.get(model_id or "")
        if model is None:
            code = "model_does_not_exist" if inference else None
            raise ApiError(404, f"Model {model_id} not found", code)
        self._refresh_model(model, self.clock.now())
        return model

    def default_model_id(self) -> str | None:
        """The model LowCodeAPI inference reaches (it has no model id in the path): the first one seeded."""
        with self.lock:
            return next(iter(self.models), None)

    def _refresh_model(self, model: Model, now: float) -> None:
        for env in model.environments.values():
            p = env.promotion
            if p and p.status is None and p.current(now) == "SUCCEEDED":
                self._finish_promotion(model, env, p, now)
        for dep in model.deployments.values():
            dep.refresh(now)

    def _finish_promotion(self, model: Model, env: Environment, p: Promotion, now: float) -> None:
        previous = env.current_deployment_id
        p.status = "SUCCEEDED"
        env.current_deployment_id = p.deployment_id
        if p.scale_down_previous and previous and previous != p.deployment_id and previous in model.deployments:
            still_serving = any(e.current_deployment_id == previous for e in model.environments.values())
            if not still_serving:
                old = model.deployments[previous]
                old.steps = []
                cleanup = env.promotion_settings.get("promotion_cleanup_strategy") or "SCALE_TO_ZERO"
                if cleanup == "DEACTIVATE":
                    old.status = "INACTIVE"
                elif cleanup == "SCALE_TO_ZERO":
                    old.status = "SCALED_TO_ZERO"

    def _env_of(self, model: Model, dep_id: str) -> str | None:
        for env in model.environments.values():
            if env.current_deployment_id == dep_id:
                return env.name
        return None

    def _deployment(self, model: Model, deployment_id: str, inference: bool = False) -> Deployment:
        if deployment_id == "production":
            env = model.environments.get("production")
            deployment_id = env.current_deployment_id if env and env.current_deployment_id else ""
        elif deployment_id == "development":
            deployment_id = next((d.id for d in model.deployments.values() if d.is_development), "")
        dep = model.deployments.get(deployment_id)
        if dep is None:
            code = "model_does_not_exist" if inference else None
            raise ApiError(404, f"Deployment {deployment_id or '(none)'} of model {model.id} not found", code)
        return dep

    def _environment(self, model: Model, env_name: str) -> Environment:
        env = model.environments.get(env_name)
        if env is None:
            raise ApiError(404, f"Environment {env_name} of model {model.id} not found")
        return env

    # -- JSON views ----------------------------------------------------------------------------------
    def _deployment_json(self, model: Model, dep: Deployment) -> dict[str, Any]:
        env = self._env_of(model, dep.id)
        replicas = max(1, dep.autoscaling.get("min_replica") or 0) if dep.status in ("ACTIVE", "UPDATING") else 0
        return {
            "id": dep.id,
            "created_at": iso(dep.created),
            "name": dep.name,
            "model_id": model.id,
            "is_production": env == "production",
            "is_development": dep.is_development,
            "status": dep.status,
            "active_replica_count": replicas,
            "autoscaling_settings": dict(dep.autoscaling) if dep.status not in ("BUILDING",) else None,
            "instance_type_name": INSTANCE_TYPE["name"],
            "environment": env,
            "labels": dep.labels,
        }

    def _model_json(self, model: Model) -> dict[str, Any]:
        prod = model.environments.get("production")
        dev = next((d.id for d in model.deployments.values() if d.is_development), None)
        return {
            "id": model.id,
            "created_at": iso(model.created),
            "name": model.name,
            "deployments_count": len(model.deployments),
            "production_deployment_id": prod.current_deployment_id if prod else None,
            "development_deployment_id": dev,
            "instance_type_name": INSTANCE_TYPE["name"],
            "team_name": TEAM,
        }

    def _environment_json(self, model: Model, env: Environment, now: float) -> dict[str, Any]:
        current = model.deployments.get(env.current_deployment_id or "")
        p = env.promotion
        active = p is not None and p.current(now) in ("RELEASING", "RAMPING_UP")
        candidate = model.deployments.get(p.deployment_id) if p and active else None
        return {
            "name": env.name,
            "created_at": iso(env.created),
            "model_id": model.id,
            "current_deployment": self._deployment_json(model, current) if current else None,
            "candidate_deployment": self._deployment_json(model, candidate) if candidate else None,
            # Kept after it ends (SUCCEEDED/CANCELED) so pollers see how it ended; null before any promotion.
            "in_progress_promotion": (
                {"status": p.current(now), "percent_traffic_to_new_version": p.percent(now), "error_message": None}
                if p
                else None
            ),
            "autoscaling_settings": dict(env.autoscaling),
            "promotion_settings": dict(env.promotion_settings),
            "instance_type": dict(INSTANCE_TYPE),
        }

    def _secret(self, name: str, value: str, created: float) -> dict[str, Any]:
        # Only a digest is kept: the emulator cannot leak a value it does not have.
        digest = hashlib.sha256(value.encode()).hexdigest()
        return {"id": "s" + digest[:7], "created_at": iso(created), "name": name, "team_name": TEAM, "_digest": digest}

    # -- dispatch ------------------------------------------------------------------------------------
    def handle(
        self, name: str, params: dict[str, str], query: dict[str, str], body: Any, model_id: str | None
    ) -> tuple[int, Any]:
        """Answer endpoint ``name`` (sync predict excluded: see :meth:`predict_target`). Returns (status, JSON)."""
        with self.lock:
            for action in ("async_predict", "async_queue_status", "wake"):
                if name.endswith("_" + action):
                    target = name[: -len(action) - 1]
                    return getattr(self, "_" + action)(target, params, body, model_id)
            handler: Callable[..., tuple[int, Any]] = getattr(self, "_h_" + name)
            return handler(params, query, body, model_id)

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

    def _wake_deployment(self, dep: Deployment, now: float) -> float | None:
        """Start waking a scaled-to-zero deployment; when it will be ACTIVE (``None``: it will not)."""
        dep.refresh(now)
        if dep.status == "SCALED_TO_ZERO":
            dep.start(now, [("WAKING_UP", self.config.durations.wake)])
        return dep.ready_at(now)

    def predict_target(self, target: str, params: dict[str, str], model_id: str | None) -> tuple[str, str, float]:
        """Resolve a sync predict: (model_id, deployment_id, ready_at). Wakes a scaled-to-zero deployment."""
        with self.lock:
            model, dep = self._target(target, params, model_id)
            ready = self._wake_deployment(dep, self.clock.now())
            if ready is None:
                raise ApiError(400, f"Deployment {dep.id} is {dep.status}; activate it first", "model_not_ready")
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

    def _async_request(self, request_id: str) -> AsyncRequest:
        req = self.async_requests.get(request_id)
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
        req = self._async_request(params["request_id"])
        now = self.clock.now()
        status, since = req.status(now)
        errors = []
        if status == "FAILED":
            errors = [{"code": "MODEL_PREDICT_ERROR", "message": "The model raised an exception (emulated failure)."}]
        elif status == "EXPIRED":
            errors = [{"code": "MODEL_NOT_READY", "message": "The request expired in the queue."}]
        return 200, {
            "request_id": req.request_id,
            "model_id": req.model_id,
            "deployment_id": req.deployment_id,
            "status": status,
            "webhook_status": req.webhook_status,
            "created_at": iso(req.created),
            "status_at": iso(since),
            "errors": errors,
        }

    def _h_cancel_async_request(self, params: dict[str, str], query: Any, body: Any, model_id: str | None) -> Any:
        req = self._async_request(params["request_id"])
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

    def webhook_done(self, req: AsyncRequest, ok: bool, detail: str) -> None:
        """Record the outcome of a webhook delivery."""
        with self.lock:
            req.webhook_status = "SUCCEEDED" if ok else "FAILED"
            self.webhooks["delivered" if ok else "failed"] += 1
            self.webhook_log.append(
                {"request_id": req.request_id, "url": req.webhook_endpoint, "ok": ok, "detail": detail}
            )
            del self.webhook_log[:-1000]

    # -- models and chains ---------------------------------------------------------------------------
    def _h_list_models(self, *_: Any) -> Any:
        now = self.clock.now()
        for m in self.models.values():
            self._refresh_model(m, now)
        return 200, {"models": [self._model_json(m) for m in self.models.values()]}

    def _h_get_model(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._model_json(self._model(params["model_id"]))

    def _h_delete_model(self, params: dict[str, str], *_: Any) -> Any:
        model = self._model(params["model_id"])
        del self.models[model.id]
        return 200, {"id": model.id, "deleted": True}

    def _h_list_chains(self, *_: Any) -> Any:
        return 200, {"chains": list(self.chains.values())}

    def _chain(self, chain_id: str) -> dict[str, Any]:
        if chain_id not in self.chains:
            raise ApiError(404, f"Chain {chain_id} not found")
        return self.chains[chain_id]

    def _h_get_chain(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._chain(params["chain_id"])

    def _h_delete_chain(self, params: dict[str, str], *_: Any) -> Any:
        chain = self._chain(params["chain_id"])
        del self.chains[chain["id"]]
        return 200, {"id": chain["id"], "deleted": True}

    # -- deployments ---------------------------------------------------------------------------------
    def _h_list_deployments(self, params: dict[str, str], *_: Any) -> Any:
        model = self._model(params["model_id"])
        return 200, {"deployments": [self._deployment_json(model, d) for d in model.deployments.values()]}

    def _get_dep(self, params: dict[str, str], which: str | None = None) -> tuple[Model, Deployment]:
        model = self._model(params["model_id"])
        return model, self._deployment(model, which or params["deployment_id"])

    def _h_get_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._deployment_json(*self._get_dep(params))

    def _h_get_production_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._deployment_json(*self._get_dep(params, "production"))

    def _h_get_development_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._deployment_json(*self._get_dep(params, "development"))

    def _h_delete_deployment(self, params: dict[str, str], *_: Any) -> Any:
        model, dep = self._get_dep(params)
        if self._env_of(model, dep.id) == "production":
            raise ApiError(400, "Cannot delete the production deployment; promote another deployment first")
        for env in model.environments.values():
            if env.current_deployment_id == dep.id:
                env.current_deployment_id = None
        del model.deployments[dep.id]
        return 200, {"id": dep.id, "deleted": True, "model_id": model.id}

    def _activate(self, dep: Deployment) -> tuple[int, Any]:
        now = self.clock.now()
        if dep.status in ("INACTIVE", "DEACTIVATING"):
            dep.start(now, [("DEPLOYING", self.config.durations.deploy)])
        elif dep.status == "SCALED_TO_ZERO":
            self._wake_deployment(dep, now)
        return 200, {"success": True}

    def _deactivate(self, dep: Deployment) -> tuple[int, Any]:
        dep.steps = []
        dep.status = "INACTIVE"
        return 200, {"success": True}

    def _h_activate_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._activate(self._get_dep(params)[1])

    def _h_activate_development_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._activate(self._get_dep(params, "development")[1])

    def _h_deactivate_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._deactivate(self._get_dep(params)[1])

    def _h_deactivate_development_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._deactivate(self._get_dep(params, "development")[1])

    def _env_deployment(self, params: dict[str, str]) -> Deployment:
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        if not env.current_deployment_id:
            raise ApiError(400, f"Environment {env.name} has no deployment")
        return model.deployments[env.current_deployment_id]

    def _h_activate_environment(self, params: dict[str, str], *_: Any) -> Any:
        return self._activate(self._env_deployment(params))

    def _h_deactivate_environment(self, params: dict[str, str], *_: Any) -> Any:
        return self._deactivate(self._env_deployment(params))

    def _bool(self, body: dict[str, Any], key: str) -> bool:
        value = body.get(key, True)
        if not isinstance(value, bool):
            raise ApiError(422, f"{key} must be a boolean")
        return value

    def _promote(self, model: Model, env: Environment, dep: Deployment, scale_down: bool) -> tuple[int, Any]:
        now = self.clock.now()
        if dep.status in ("INACTIVE", "BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "BUILD_STOPPED"):
            raise ApiError(400, f"Deployment {dep.id} is {dep.status} and cannot be promoted")
        if env.promotion and env.promotion.current(now) in ("RELEASING", "RAMPING_UP"):
            raise ApiError(400, f"A promotion into {env.name} is already in progress; cancel it first")
        if env.current_deployment_id == dep.id:
            raise ApiError(400, f"Deployment {dep.id} is already the {env.name} deployment")
        d = self.config.durations
        self._wake_deployment(dep, now)
        release_end = max(now, dep.ready_at(now) or now) + d.promotion_releasing
        env.promotion = Promotion(dep.id, now, release_end, release_end + d.promotion_ramping, scale_down)
        self._refresh_model(model, now)
        return 200, self._deployment_json(model, dep)

    def _body(self, body: Any) -> dict[str, Any]:
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(422, "The request body must be a JSON object")
        return body

    def _h_promote_deployment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        model, dep = self._get_dep(params)
        env = model.environments.setdefault("production", Environment("production", model.id, self.clock.now()))
        return self._promote(model, env, dep, self._bool(body, "scale_down_previous_production"))

    def _h_promote_development_deployment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        model, dep = self._get_dep(params, "development")
        env = model.environments.setdefault("production", Environment("production", model.id, self.clock.now()))
        return self._promote(model, env, dep, self._bool(body, "scale_down_previous_production"))

    def _h_promote_to_environment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        if not isinstance(body.get("deployment_id"), str):
            raise ApiError(422, "deployment_id is required")
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        dep = self._deployment(model, body["deployment_id"])
        return self._promote(model, env, dep, self._bool(body, "scale_down_previous_deployment"))

    def _h_cancel_promotion(self, params: dict[str, str], *_: Any) -> Any:
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        p = env.promotion
        if p is None or p.current(self.clock.now()) not in ("RELEASING", "RAMPING_UP"):
            raise ApiError(400, f"No promotion in progress for environment {env.name}")
        p.status = "CANCELED"
        self.cancellations["promotion"] += 1
        return 200, {"status": "CANCELED", "message": f"Promotion into {env.name} canceled."}

    def _autoscaling(self, current: dict[str, Any], body: Any) -> tuple[int, Any]:
        body = self._body(body)
        unknown = set(body) - set(AUTOSCALING_LIMITS)
        if unknown:
            raise ApiError(422, f"Unknown autoscaling setting(s): {', '.join(sorted(unknown))}")
        merged = dict(current)
        for key, value in body.items():
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise ApiError(422, f"{key} must be an integer")
            lo, hi = AUTOSCALING_LIMITS[key]
            if not lo <= value <= hi:
                raise ApiError(400, f"{key} must be between {lo} and {hi}")
            merged[key] = value
        if merged["min_replica"] > merged["max_replica"]:
            raise ApiError(400, "min_replica must not exceed max_replica")
        if merged == current:
            return 200, {"status": "UNCHANGED", "message": "Autoscaling settings are unchanged."}
        current.update(merged)
        return 200, {"status": "ACCEPTED", "message": "Autoscaling settings updated."}

    def _h_update_deployment_autoscaling_settings(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        return self._autoscaling(self._get_dep(params)[1].autoscaling, body)

    def _h_update_development_autoscaling_settings(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        return self._autoscaling(self._get_dep(params, "development")[1].autoscaling, body)

    # -- environments --------------------------------------------------------------------------------
    def _h_list_environments(self, params: dict[str, str], *_: Any) -> Any:
        model = self._model(params["model_id"])
        now = self.clock.now()
        return 200, {"environments": [self._environment_json(model, e, now) for e in model.environments.values()]}

    def _h_get_environment(self, params: dict[str, str], *_: Any) -> Any:
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        return 200, self._environment_json(model, env, self.clock.now())

    def _promotion_settings(self, env: Environment, value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, dict) or set(value) - set(DEFAULT_PROMOTION_SETTINGS):
            raise ApiError(422, "promotion_settings has unknown fields")
        before = dict(env.promotion_settings)
        env.promotion_settings.update(value)
        return before != env.promotion_settings

    def _h_create_environment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        model = self._model(params["model_id"])
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "name is required")
        if name in model.environments:
            raise ApiError(409, f"Environment {name} already exists")
        env = Environment(name, model.id, self.clock.now())
        if body.get("autoscaling_settings"):
            self._autoscaling(env.autoscaling, body["autoscaling_settings"])
        self._promotion_settings(env, body.get("promotion_settings"))
        model.environments[name] = env
        return 200, self._environment_json(model, env, self.clock.now())

    def _h_update_environment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        if set(body) - {"autoscaling_settings", "promotion_settings"}:
            raise ApiError(422, "Only autoscaling_settings and promotion_settings can be updated")
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        changed = self._promotion_settings(env, body.get("promotion_settings"))
        if body.get("autoscaling_settings") is not None:
            _, result = self._autoscaling(env.autoscaling, body["autoscaling_settings"])
            changed = changed or result["status"] == "ACCEPTED"
        if not changed:
            return 200, {"status": "UNCHANGED", "message": "Environment settings are unchanged."}
        return 200, {"status": "ACCEPTED", "message": "Environment settings updated."}

    # -- secrets and API keys ------------------------------------------------------------------------
    def _h_list_secrets(self, *_: Any) -> Any:
        return 200, {"secrets": [self._public(s) for s in self.secrets.values()]}

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _h_upsert_secret(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ApiError(422, "name and value (strings) are required")
        old = self.secrets.get(name)
        secret = self._secret(name, value, self.clock.now())
        if old:  # the id and creation time survive rotation
            secret["id"], secret["created_at"] = old["id"], old["created_at"]
        self.secrets[name] = secret
        return 200, self._public(secret)

    def _h_list_api_keys(self, *_: Any) -> Any:
        return 200, {"keys": list(self.api_keys.values())}

    def _h_create_api_key(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        kind = body.get("type")
        if kind not in ("PERSONAL", "WORKSPACE_MANAGE_ALL", "WORKSPACE_EXPORT_METRICS", "WORKSPACE_INVOKE"):
            raise ApiError(
                422, "type must be PERSONAL, WORKSPACE_MANAGE_ALL, WORKSPACE_EXPORT_METRICS or WORKSPACE_INVOKE"
            )
        prefix = self.new_id()
        self.api_keys[prefix] = {
            "prefix": prefix,
            "name": body.get("name"),
            "type": kind,
            "model_ids": body.get("model_ids"),
            "team_name": TEAM,
        }
        # The plaintext is returned once, here, and not kept.
        return 200, {"api_key": f"{prefix}.{self.new_id(32)}"}

    def _h_delete_api_key(self, params: dict[str, str], *_: Any) -> Any:
        prefix = params.get("prefix") or ""
        if prefix not in self.api_keys:
            raise ApiError(404, f"API key {prefix} not found")
        del self.api_keys[prefix]
        return 200, {"prefix": prefix}

    # -- training ------------------------------------------------------------------------------------
    def _project(self, project_id: str) -> dict[str, Any]:
        if project_id not in self.projects:
            raise ApiError(404, f"Training project {project_id} not found")
        return self.projects[project_id]

    def _create_job(self, project_id: str, spec: dict[str, Any], now: float, job_id: str | None = None) -> TrainingJob:
        env = ((spec.get("runtime") or {}).get("environment_variables") or {}) if isinstance(spec, dict) else {}
        fail = self.training_fail or str(env.get("EMULATOR_FAIL", "")).lower() in ("1", "true", "yes")
        job = TrainingJob(
            id=job_id or self.new_id(),
            project_id=project_id,
            name=spec.get("name"),
            spec=copy.deepcopy(spec),
            created=now,
            fail=fail,
            durations=copy.copy(self.config.durations),
        )
        self.jobs[job.id] = job
        return job

    def _job(self, params: dict[str, str]) -> TrainingJob:
        self._project(params["training_project_id"])
        job = self.jobs.get(params["training_job_id"])
        if job is None or job.project_id != params["training_project_id"]:
            raise ApiError(404, f"Training job {params['training_job_id']} not found")
        return job

    def _job_json(self, job: TrainingJob, now: float) -> dict[str, Any]:
        status, since = job.status(now)
        project = self.projects.get(job.project_id, {"id": job.project_id, "name": job.project_id})
        return {
            "id": job.id,
            "created_at": iso(job.created),
            "current_status": status,
            "error_message": "Training process exited with code 1 (emulated failure)."
            if status == "TRAINING_JOB_FAILED"
            else None,
            "instance_type": dict(INSTANCE_TYPE),
            "updated_at": iso(since),
            "training_project_id": job.project_id,
            "training_project": {"id": project["id"], "name": project["name"]},
            "name": job.name,
            "priority": 0,
            "availability_model": "dedicated",
        }

    def _project_json(self, project: dict[str, Any], now: float) -> dict[str, Any]:
        jobs = [j for j in self.jobs.values() if j.project_id == project["id"]]
        latest = max(jobs, key=lambda j: j.created, default=None)
        return {
            "id": project["id"],
            "name": project["name"],
            "created_at": iso(project["created"]),
            "updated_at": iso(latest.created if latest else project["created"]),
            "team_name": TEAM,
            "latest_job": self._job_json(latest, now) if latest else None,
        }

    def _h_create_training_job(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        project = self._project(params["training_project_id"])
        spec = body.get("training_job")
        if not isinstance(spec, dict) or not isinstance(spec.get("image"), dict):
            raise ApiError(422, "training_job.image is required")
        now = self.clock.now()
        job = self._create_job(project["id"], spec, now)
        self.submissions["training_job"] += 1
        return 200, {"training_job": self._job_json(job, now)}

    def _h_list_training_jobs(self, params: dict[str, str], *_: Any) -> Any:
        project = self._project(params["training_project_id"])
        now = self.clock.now()
        jobs = [self._job_json(j, now) for j in self.jobs.values() if j.project_id == project["id"]]
        return 200, {"training_project": self._project_json(project, now), "training_jobs": jobs}

    def _h_get_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        return 200, {
            "training_project": self._project_json(self.projects[job.project_id], now),
            "training_job": self._job_json(job, now),
        }

    def _h_search_training_jobs(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        now = self.clock.now()
        jobs = [self._job_json(j, now) for j in self.jobs.values()]
        if body.get("project_id"):
            jobs = [j for j in jobs if j["training_project_id"] == body["project_id"]]
        if body.get("job_id"):
            jobs = [j for j in jobs if j["id"] == body["job_id"]]
        if body.get("statuses"):
            jobs = [j for j in jobs if j["current_status"] in body["statuses"]]
        for order in reversed(body.get("order_by") or [{"field": "created_at", "order": "desc"}]):
            key = order.get("field", "created_at")
            jobs.sort(key=lambda j, k=key: str(j.get(k) or ""), reverse=order.get("order", "desc") == "desc")
        return 200, {"training_jobs": jobs}

    def _h_stop_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        status, _ = job.status(now)
        if status.endswith(("_PENDING", "_CREATED", "_DEPLOYING", "_RUNNING")):
            job.stopped_at = now
            self.cancellations["training_job"] += 1
        return 200, {"training_job": self._job_json(job, now)}

    def _h_recreate_training_job(self, params: dict[str, str], *_: Any) -> Any:
        old = self._job(params)
        now = self.clock.now()
        job = self._create_job(old.project_id, old.spec, now)
        self.submissions["training_job"] += 1
        return 200, {"training_job": self._job_json(job, now)}

    def _checkpoints(self, job: TrainingJob, now: float) -> list[dict[str, Any]]:
        progress = job.running_progress(now)
        status, _ = job.status(now)
        count = 2 if status == "TRAINING_JOB_COMPLETED" else (1 if progress >= 0.5 else 0)
        run_start = job.created + sum(d for _, d in job.timeline()[:-1])
        return [
            {
                "checkpoint_id": f"checkpoint-{i}",
                "created_at": iso(run_start + job.durations.training_running * i / 2),
                "checkpoint_type": "lora",
                "base_model": "Qwen/Qwen2.5-7B-Instruct",
                "lora_adapter_config": {"r": 16, "lora_alpha": 32},
                "size_bytes": 1_048_576 * i,
                "training_job_id": job.id,
            }
            for i in range(1, count + 1)
        ]

    def _h_get_training_job_checkpoints(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        return 200, {"training_job": self._job_json(job, now), "checkpoints": self._checkpoints(job, now)}

    def _h_get_training_job_checkpoint_files(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        files = []
        for cp in self._checkpoints(job, now):
            for fname in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json"):
                rel = f"{cp['checkpoint_id']}/{fname}"
                files.append(
                    {
                        "url": f"{self.files_url}/training/{job.id}/{rel}",
                        "relative_file_name": rel,
                        "node_rank": 0,
                        "size_bytes": 1024,
                        "last_modified": cp["created_at"],
                    }
                )
        try:
            start = int(query.get("page_token") or 0)
            size = int(query.get("page_size") or 100)
        except ValueError:
            raise ApiError(422, "page_token and page_size must be integers") from None
        page = files[start : start + size]
        nxt = start + size if start + size < len(files) else None
        return 200, {"presigned_urls": page, "next_page_token": nxt, "total_count": len(files)}

    def _h_get_training_job_logs(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        lines: list[tuple[float, str]] = []
        t = job.created
        for status, duration in job.timeline():
            if t > now:
                break
            lines.append((t, f"{status}: {job.name or job.id}"))
            t += duration
        if job.running_progress(now) > 0:
            run_start = job.created + sum(d for _, d in job.timeline()[:-1])
            steps = int(job.running_progress(now) * 10)
            for i in range(1, steps + 1):
                at = run_start + job.durations.training_running * i / 10
                lines.append((at, f"step {i * 10}/100 loss={2.0 / (i + 1):.4f}"))
        status, since = job.status(now)
        if status not in (
            "TRAINING_JOB_PENDING",
            "TRAINING_JOB_CREATED",
            "TRAINING_JOB_DEPLOYING",
            "TRAINING_JOB_RUNNING",
        ):
            lines.append((since, f"{status}: finished"))
        try:
            lo = int(query["start_epoch_millis"]) / 1000 if query.get("start_epoch_millis") else None
            hi = int(query["end_epoch_millis"]) / 1000 if query.get("end_epoch_millis") else None
            limit = int(query["limit"]) if query.get("limit") else None
        except ValueError:
            raise ApiError(422, "start_epoch_millis, end_epoch_millis and limit must be integers") from None
        lines = [(t, m) for t, m in lines if (lo is None or t >= lo) and (hi is None or t <= hi)]
        if query.get("direction") == "desc":  # newest first, so a limit keeps the newest
            lines.reverse()
        if limit is not None:
            lines = lines[:limit]
        return 200, {
            "logs": [
                {"timestamp": str(int(t * 1e9)), "message": m, "replica": "replica-0", "level": "INFO"}
                for t, m in lines
            ]
        }

    def _h_get_training_job_metrics(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        now = self.clock.now()
        points = max(1, int(job.running_progress(now) * 5))
        run_start = job.created + sum(d for _, d in job.timeline()[:-1])

        def series(scale: float) -> list[dict[str, Any]]:
            return [
                {"value": scale * (0.5 + 0.1 * i), "timestamp": iso(run_start + i * job.durations.training_running / 5)}
                for i in range(points)
            ]

        storage = {"usage_bytes": series(1e9), "utilization": series(0.1)}
        metrics = {
            "gpu_memory_usage_bytes": {"0": series(1e10)},
            "gpu_utilization": {"0": series(1.0)},
            "cpu_usage": series(2.0),
            "cpu_memory_usage_bytes": series(4e9),
            "ephemeral_storage": storage,
        }
        return 200, {
            **metrics,
            "training_job": self._job_json(job, now),
            "cache": None,
            "per_node_metrics": [{"node_id": "node-0", "metrics": metrics}],
        }

    def _h_download_training_job(self, params: dict[str, str], *_: Any) -> Any:
        job = self._job(params)
        return 200, {"artifact_presigned_urls": [f"{self.files_url}/training/{job.id}/artifacts.tar.gz"]}

    # -- admin helpers -------------------------------------------------------------------------------
    files_url = "http://127.0.0.1/__files"

    def create_deployment(self, model_id: str, name: str | None = None, status: str = "BUILDING") -> dict[str, Any]:
        """Add a deployment to a model, as ``truss push`` would (it builds, deploys, then is ACTIVE)."""
        with self.lock:
            model = self._model(model_id)
            dep = self._new_deployment(
                model, {"name": name or f"v{len(model.deployments) + 1}", "status": status}, self.clock.now()
            )
            return self._deployment_json(model, dep)

    def scale_to_zero(self, model_id: str, deployment_id: str) -> dict[str, Any]:
        """Scale a deployment to zero, as Baseten does after ``scale_down_delay`` without traffic."""
        with self.lock:
            model = self._model(model_id)
            dep = self._deployment(model, deployment_id)
            dep.steps = []
            dep.status = "SCALED_TO_ZERO"
            return self._deployment_json(model, dep)

    def snapshot(self) -> dict[str, Any]:
        """Everything visible, as JSON (secret values and API key plaintexts are never kept, so never shown)."""
        with self.lock:
            now = self.clock.now()
            models = []
            for model in self.models.values():
                self._refresh_model(model, now)
                models.append(
                    {
                        **self._model_json(model),
                        "deployments": [self._deployment_json(model, d) for d in model.deployments.values()],
                        "environments": [self._environment_json(model, e, now) for e in model.environments.values()],
                    }
                )
            return {
                "now": iso(now),
                "models": models,
                "chains": list(self.chains.values()),
                "training_projects": [self._project_json(p, now) for p in self.projects.values()],
                "training_jobs": [self._job_json(j, now) for j in self.jobs.values()],
                "secrets": [self._public(s) for s in self.secrets.values()],
                "api_keys": list(self.api_keys.values()),
                "async_requests": {
                    rid: {"status": r.status(now)[0], "webhook_status": r.webhook_status}
                    for rid, r in self.async_requests.items()
                },
                "webhooks": list(self.webhook_log),
            }

    # Counters live on the state so a reset clears them with everything else.
    @property
    def counters(self) -> dict[str, Counter[str]]:
        """All counters: ``requests`` (per endpoint name), ``submissions``, ``cancellations``, ``webhooks``,
        ``faults`` (per kind) and ``responses`` (per HTTP status)."""
        return self._counters

    @property
    def submissions(self) -> Counter[str]:
        """Things created: ``async_predict``, ``training_job``."""
        return self._counters["submissions"]

    @property
    def cancellations(self) -> Counter[str]:
        """Things canceled: ``async_request``, ``training_job``, ``promotion``."""
        return self._counters["cancellations"]

    @property
    def webhooks(self) -> Counter[str]:
        """Webhook deliveries: ``delivered``, ``failed``."""
        return self._counters["webhooks"]
