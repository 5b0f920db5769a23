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
import re
import string
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_baseten._routes import RATE_LIMITS
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
    """An error answer: HTTP ``status``, a message (never containing a secret) and Baseten's error code.

    ``extra`` fields join the error body (a 429's ``retry_after``).
    """

    def __init__(
        self, status: int, message: str, error_code: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.extra = extra or {}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Metrics the emulator knows (Baseten rejects unknown names), with (unit_hint, kind, label_sets).
METRICS: dict[str, tuple[str, str, list[dict[str, str]]]] = {
    "baseten_replicas_active": ("COUNT", "GAUGE", [{}]),
    "baseten_inference_requests_total": ("COUNT", "COUNTER", [{"status": "2xx"}, {"status": "5xx"}]),
    "baseten_end_to_end_response_time_seconds": (
        "SECONDS",
        "HISTOGRAM",
        [{"quantile": "0.5"}, {"quantile": "0.99"}, {"stat": "avg"}],
    ),
    "baseten_replicas_starting": ("COUNT", "GAUGE", [{}]),
}
DEFAULT_METRICS = (
    "baseten_replicas_active",
    "baseten_inference_requests_total",
    "baseten_end_to_end_response_time_seconds",
)
FAILED_BUILDS = ("BUILD_FAILED", "DEPLOY_FAILED", "UNHEALTHY")
#: What a failing deployment writes to its logs last: (level, message). All at one millisecond, like a traceback.
FAILURE_LOGS: dict[str, list[tuple[str, str]]] = {
    "BUILD_FAILED": [
        ("ERROR", "ERROR: Could not find a version that satisfies the requirement torch==9.9.9 (emulated)"),
        ("ERROR", "ERROR: No matching distribution found for torch==9.9.9"),
        ("ERROR", "Build failed: pip install exited with code 1"),
    ],
    "DEPLOY_FAILED": [
        ("ERROR", "Traceback (most recent call last):"),
        ("ERROR", '  File "/app/model/model.py", line 12, in load'),
        ("ERROR", "RuntimeError: CUDA out of memory while loading weights (emulated)"),
        ("ERROR", "Model failed to load; the deployment is DEPLOY_FAILED"),
    ],
    "UNHEALTHY": [
        ("ERROR", "Readiness probe failed: GET /health answered 503 (emulated)"),
        ("ERROR", "Replica restarted 3 times in 5 minutes; the deployment is UNHEALTHY"),
    ],
}


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
    fail_with: str | None = None  # BUILD_FAILED / DEPLOY_FAILED / UNHEALTHY: how its builds end ...
    failures_left: int = 0  # ... for this many more builds (a retry then succeeds)
    logs: list[tuple[int, str, str | None, str]] = field(default_factory=list)  # (epoch ns, level, replica, message)
    predictions: int = 0

    @property
    def replica(self) -> str:
        """The 5-character replica id its runtime lines carry."""
        return ("r" + self.id)[:5]

    def log(self, t: float, level: str, message: str, replica: str | None = None) -> None:
        """Add a log line at emulated time ``t``."""
        self.logs.append((round(t * 1e9), level, replica, message))

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
    status: str | None = None  # set once terminal: SUCCEEDED, FAILED or CANCELED
    fail: bool = False  # the candidate fails its release: the promotion ends FAILED
    paused_at: float | None = None
    paused_total: float = 0.0  # time spent paused: the timeline is shifted by it
    error_message: str | None = None

    def _t(self, now: float) -> float:
        """``now`` on the promotion's own timeline (which stands still while paused)."""
        return (self.paused_at if self.paused_at is not None else now) - self.paused_total

    def current(self, now: float) -> str:
        """RELEASING, RAMPING_UP, then SUCCEEDED (FAILED after a failed release; PAUSED while paused)."""
        if self.status:
            return self.status
        if self.paused_at is not None:
            return "PAUSED"
        t = self._t(now)
        if t < self.release_end:
            return "RELEASING"
        if self.fail:
            return "FAILED"
        if t < self.ramp_end:
            return "RAMPING_UP"
        return "SUCCEEDED"

    def percent(self, now: float) -> int:
        """Share of traffic on the new deployment."""
        status = self.current(now)
        if status == "SUCCEEDED":
            return 100
        t = self._t(now)
        if status not in ("RAMPING_UP", "PAUSED") or t < self.release_end:
            return 0
        span = max(self.ramp_end - self.release_end, 1e-9)
        return max(1, min(99, int((t - self.release_end) / span * 100)))

    def active(self, now: float) -> bool:
        """Still running (or paused)."""
        return self.current(now) in ("RELEASING", "RAMPING_UP", "PAUSED")


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
            self.promotion_fail = self.config.promotion_fail
            self.rate_windows: dict[str, deque[float]] = {}
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
            self.projects[p["id"]] = {
                "id": p["id"],
                "name": p.get("name", p["id"]),
                "created": created,
                "updated": created,
            }
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
            fail_with=d.get("fail"),
            failures_left=int(d.get("fail_times", 1)) if d.get("fail") else 0,
        )
        if dep.fail_with is not None and dep.fail_with not in FAILED_BUILDS:
            raise ApiError(422, f"fail must be one of {', '.join(FAILED_BUILDS)}")
        if dep.status == "BUILDING":  # seeded mid-build: run the build from now
            self._start_build(dep, self.clock.now())
        model.deployments[dep.id] = dep
        return dep

    def _start_build(self, dep: Deployment, now: float) -> None:
        """Build and deploy from ``now``: ACTIVE at the end, or ``fail_with`` while failures are left."""
        d = self.config.durations
        fail = dep.fail_with if dep.failures_left > 0 else None
        dep.failures_left -= fail is not None
        steps = [("BUILDING", d.build)] if fail == "BUILD_FAILED" else [("BUILDING", d.build), ("DEPLOYING", d.deploy)]
        dep.start(now, steps, fail or "ACTIVE")
        # The lines this build will have written by each moment (read lazily, filtered by time).
        dep.log(now, "INFO", f"Build of deployment {dep.name} ({dep.id}) started")
        for i, pkg in enumerate(("truss-server-base", "requirements.txt", "model weights cache")):
            dep.log(now + d.build * (i + 1) / 4, "INFO", f"Step {i + 1}/3: installing {pkg}")
        end = now + sum(duration for _, duration in steps)
        if fail != "BUILD_FAILED":
            dep.log(now + d.build, "INFO", "Image built; deploying")
            dep.log(now + d.build + d.deploy / 2, "WARNING", "Replica scheduling took longer than usual", dep.replica)
        for level, message in FAILURE_LOGS.get(fail or "", []):
            dep.log(end, level, message, None if fail == "BUILD_FAILED" else dep.replica)
        if fail is None:
            dep.log(end, "INFO", "Model loaded; the deployment is ACTIVE", dep.replica)

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
            elif p and p.status is None and p.current(now) == "FAILED":
                p.status = "FAILED"  # the environment keeps serving what it served
                p.error_message = f"Deployment {p.deployment_id} failed its health checks during release (emulated)."
                dep = model.deployments.get(p.deployment_id)
                if dep is not None:
                    dep.log(p.release_end + p.paused_total, "ERROR", p.error_message, dep.replica)
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
        active = p is not None and p.active(now)
        candidate = model.deployments.get(p.deployment_id) if p and active else None
        return {
            "name": env.name,
            "created_at": iso(env.created),
            "model_id": model.id,
            "current_deployment": self._deployment_json(model, current) if current else None,
            "candidate_deployment": self._deployment_json(model, candidate) if candidate else None,
            # Kept after it ends (SUCCEEDED/CANCELED) so pollers see how it ended; null before any promotion.
            "in_progress_promotion": (
                {
                    "status": p.current(now),
                    "percent_traffic_to_new_version": p.percent(now),
                    "error_message": p.error_message,
                    "rolling_deploy": bool(env.promotion_settings.get("rolling_deploy")),
                }
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
            self._rate_limit(name)
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
        if env.promotion and env.promotion.active(now):
            raise ApiError(400, f"A promotion into {env.name} is already in progress; cancel it first")
        if env.current_deployment_id == dep.id:
            raise ApiError(400, f"Deployment {dep.id} is already the {env.name} deployment")
        d = self.config.durations
        self._wake_deployment(dep, now)
        release_end = max(now, dep.ready_at(now) or now) + d.promotion_releasing
        env.promotion = Promotion(
            dep.id, now, release_end, release_end + d.promotion_ramping, scale_down, fail=self.promotion_fail
        )
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
        if p is None or not p.active(self.clock.now()):
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
            "updated_at": iso(max(latest.created if latest else 0.0, project.get("updated", project["created"]))),
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
        lines: list[tuple[float, str, str]] = []
        t = job.created
        for status, duration in job.timeline():
            if t > now:
                break
            lines.append((t, "INFO", f"{status}: {job.name or job.id}"))
            t += duration
        if job.running_progress(now) > 0:
            run_start = job.created + sum(d for _, d in job.timeline()[:-1])
            steps = int(job.running_progress(now) * 10)
            for i in range(1, steps + 1):
                at = run_start + job.durations.training_running * i / 10
                lines.append((at, "INFO", f"step {i * 10}/100 loss={2.0 / (i + 1):.4f}"))
        status, since = job.status(now)
        if status == "TRAINING_JOB_FAILED":
            lines.append((since, "ERROR", "Traceback (most recent call last):"))
            lines.append((since, "ERROR", "RuntimeError: loss became NaN at step 100 (emulated failure)"))
        if status not in (
            "TRAINING_JOB_PENDING",
            "TRAINING_JOB_CREATED",
            "TRAINING_JOB_DEPLOYING",
            "TRAINING_JOB_RUNNING",
        ):
            lines.append((since, "INFO", f"{status}: finished"))
        entries = [(round(at * 1e9), level, "replica-0", message) for at, level, message in lines]
        # Baseten's default window is the last 30 minutes; a job's own logs default to its whole life here.
        window = {"start_epoch_millis": str(int(job.created * 1000)), **query}
        return 200, self._logs(entries, window)

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

    # -- rate limits ---------------------------------------------------------------------------------
    def _rate_limit(self, name: str) -> None:
        """Baseten's per-key endpoint limits (activate/deactivate 20/min, retry 10/min), on the emulated clock."""
        rule = RATE_LIMITS.get(name)
        if rule is None or not self.config.rate_limits:
            return
        bucket, limit, per = rule
        now = self.clock.now()
        window = self.rate_windows.setdefault(bucket, deque())
        while window and window[0] <= now - per:
            window.popleft()
        if len(window) >= limit:
            retry_after = max(1, int(window[0] + per - now + 0.999))
            raise ApiError(429, "Rate limit exceeded. Please try again later.", extra={"retry_after": retry_after})
        window.append(now)

    # -- training projects ---------------------------------------------------------------------------
    def _h_list_training_projects(self, *_: Any) -> Any:
        now = self.clock.now()
        return 200, {"training_projects": [self._project_json(p, now) for p in self.projects.values()]}

    def _h_get_training_project(self, params: dict[str, str], *_: Any) -> Any:
        project = self._project(params["training_project_id"])
        return 200, {"training_project": self._project_json(project, self.clock.now())}

    def _h_create_training_project(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        spec = self._body(body).get("training_project")
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError(422, "training_project.name is required")
        now = self.clock.now()
        project = next((p for p in self.projects.values() if p["name"] == name), None)
        if project is None:  # an upsert: the name is the identity
            project = {"id": self.new_id(), "name": name, "created": now, "updated": now}
            self.projects[project["id"]] = project
            self.submissions["training_project"] += 1
        else:
            project["updated"] = now
        return 200, {"training_project": self._project_json(project, now)}

    # -- promotion control ---------------------------------------------------------------------------
    def _running_promotion(self, params: dict[str, str]) -> tuple[Model, Environment, Promotion, float]:
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        now = self.clock.now()
        p = env.promotion
        if p is None or not p.active(now):
            raise ApiError(400, f"No promotion in progress for environment {env.name}")
        return model, env, p, now

    def _h_pause_promotion(self, params: dict[str, str], *_: Any) -> Any:
        _, _, p, now = self._running_promotion(params)
        if p.paused_at is None:
            p.paused_at = now
        return 200, {"success": True}

    def _h_resume_promotion(self, params: dict[str, str], *_: Any) -> Any:
        _, _, p, now = self._running_promotion(params)
        if p.paused_at is not None:
            p.paused_total += now - p.paused_at
            p.paused_at = None
        return 200, {"success": True}

    def _h_force_cancel_promotion(self, params: dict[str, str], *_: Any) -> Any:
        _, _, p, _ = self._running_promotion(params)
        p.status = "CANCELED"  # rolled back at once: the environment keeps its current deployment
        self.cancellations["promotion"] += 1
        return 200, {"success": True}

    def _h_force_roll_forward_promotion(self, params: dict[str, str], *_: Any) -> Any:
        model, env, p, now = self._running_promotion(params)
        p.fail = False
        self._finish_promotion(model, env, p, now)
        return 200, {"success": True}

    # -- deployment retry, logs and metrics ----------------------------------------------------------
    def _retry(self, model: Model, dep: Deployment) -> tuple[int, Any]:
        if dep.status not in ("BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "UNHEALTHY", "BUILD_STOPPED"):
            reason = f"Deployment {dep.id} is {dep.status}; only a failed deployment can be retried."
            return 200, {"retried": False, "reason": reason, "deployment": self._deployment_json(model, dep)}
        self._start_build(dep, self.clock.now())
        self.submissions["deployment_retry"] += 1
        return 200, {"retried": True, "reason": None, "deployment": self._deployment_json(model, dep)}

    def _h_retry_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._retry(*self._get_dep(params))

    def _h_retry_production_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._retry(*self._get_dep(params, "production"))

    def _h_retry_development_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._retry(*self._get_dep(params, "development"))

    @staticmethod
    def _int_query(query: dict[str, Any], key: str, lo: int | None = None, hi: int | None = None) -> int | None:
        raw = query.get(key)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ApiError(422, f"{key} must be an integer") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ApiError(422, f"{key} must be between {lo} and {hi}")
        return value

    def _window(self, query: dict[str, Any], default: float) -> tuple[int, int]:
        """The (start, end) epoch ms of a logs or metrics query (Baseten's defaults; at most 7 days)."""
        end = self._int_query(query, "end_epoch_millis")
        end = end if end is not None else int(self.clock.now() * 1000)
        start = self._int_query(query, "start_epoch_millis")
        start = start if start is not None else end - int(default * 1000)
        if start > end or end - start > 7 * 86400 * 1000:
            raise ApiError(400, "The window must start before it ends and span at most 7 days")
        return start, end

    def _logs(self, entries: list[tuple[int, str, str | None, str]], query: dict[str, Any]) -> dict[str, Any]:
        start, end = self._window(query, 1800)
        limit = self._int_query(query, "limit", 1, 1000) or 500
        direction = query.get("direction") or "asc"
        level = query.get("min_level")
        if direction not in ("asc", "desc") or (level is not None and level not in LOG_LEVELS):
            raise ApiError(422, "direction must be asc or desc; min_level DEBUG, INFO, WARNING or ERROR")
        includes, excludes = _as_list(query.get("includes")), _as_list(query.get("excludes"))
        if len(includes) > 8 or len(excludes) > 8:
            raise ApiError(422, "includes and excludes take at most 8 substrings each")
        try:
            pattern = re.compile(query["search_pattern"]) if query.get("search_pattern") else None
        except re.error:
            raise ApiError(400, "search_pattern is not a valid regular expression") from None
        now_ns = int(self.clock.now() * 1e9)
        lines = [
            e
            for e in entries
            if e[0] <= now_ns  # only what has been written by now
            and start <= e[0] // 1_000_000 <= end
            and (level is None or (e[1] in LOG_LEVELS and LOG_LEVELS.index(e[1]) >= LOG_LEVELS.index(level)))
            and (not query.get("replica") or e[2] == query["replica"])
            and all(x in e[3] for x in includes)
            and not any(x in e[3] for x in excludes)
            and (pattern is None or pattern.search(e[3]))
        ]
        lines.sort(key=lambda e: e[0])  # stable: lines of one nanosecond keep the order they were written in
        if direction == "desc":
            lines.reverse()
        return {
            "logs": [
                {"timestamp": str(ns), "message": message, "replica": replica, "request_id": None, "level": lvl}
                for ns, lvl, replica, message in lines[:limit]
            ]
        }

    def _h_get_deployment_logs(self, params: dict[str, str], query: dict[str, Any], *_: Any) -> Any:
        _, dep = self._get_dep(params)
        return 200, self._logs(dep.logs, query)

    def _h_get_environment_logs(self, params: dict[str, str], query: dict[str, Any], *_: Any) -> Any:
        model = self._model(params["model_id"])
        env = self._environment(model, params["env_name"])
        ids = {env.current_deployment_id, env.promotion.deployment_id if env.promotion else None} - {None}
        return 200, self._logs([e for i in ids if i in model.deployments for e in model.deployments[i].logs], query)

    def _h_get_deployment_metrics(self, params: dict[str, str], query: dict[str, Any], *_: Any) -> Any:
        model, dep = self._get_dep(params)
        mode = query.get("mode") or "CURRENT"
        if mode not in ("CURRENT", "SUMMARY", "SERIES"):
            raise ApiError(422, "mode must be CURRENT, SUMMARY or SERIES")
        if mode == "CURRENT" and (query.get("start_epoch_millis") or query.get("end_epoch_millis")):
            raise ApiError(400, "mode CURRENT takes no start_epoch_millis or end_epoch_millis")
        names = _as_list(query.get("metrics")) or list(DEFAULT_METRICS)
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise ApiError(400, f"Unknown metric(s): {', '.join(unknown)}")
        start, end = self._window(query, 3600)
        steps = 10 if mode == "SERIES" else 1
        step_ms = max(1, (end - start) // steps)
        replicas = self._deployment_json(model, dep)["active_replica_count"]
        latency = max(self.config.predict_latency, 0.001)
        sample = {
            "baseten_replicas_active": [float(replicas)],
            "baseten_inference_requests_total": [float(dep.predictions), 0.0],
            "baseten_end_to_end_response_time_seconds": [latency, latency * 3, latency * 1.2],
            "baseten_replicas_starting": [1.0 if dep.status in ("DEPLOYING", "WAKING_UP") else 0.0],
        }
        descriptors = [
            {"name": n, "unit_hint": METRICS[n][0], "kind": METRICS[n][1], "label_sets": METRICS[n][2]} for n in names
        ]
        values = [
            {
                "start_epoch_millis": end if mode == "CURRENT" else start + i * step_ms,
                "values": [[v / steps if METRICS[n][1] == "COUNTER" else v for v in sample[n]] for n in names],
            }
            for i in range(steps)
        ]
        return 200, {
            "start_epoch_millis": end if mode == "CURRENT" else start,
            "end_epoch_millis": end,
            "mode": mode,
            "step_seconds": step_ms // 1000 if mode == "SERIES" else None,
            "metric_descriptors": descriptors,
            "metric_values": values,
        }

    # -- admin helpers -------------------------------------------------------------------------------
    files_url = "http://127.0.0.1/__files"

    def create_deployment(
        self,
        model_id: str,
        name: str | None = None,
        status: str = "BUILDING",
        fail: str | None = None,
        fail_times: int = 1,
    ) -> dict[str, Any]:
        """Add a deployment to a model, as ``truss push`` would (it builds, deploys, then is ACTIVE).

        ``fail`` (``BUILD_FAILED``, ``DEPLOY_FAILED`` or ``UNHEALTHY``) makes its first ``fail_times`` builds
        end that way, with ERROR lines in its logs; a ``retry_deployment`` after that succeeds.
        """
        with self.lock:
            model = self._model(model_id)
            spec = {"name": name or f"v{len(model.deployments) + 1}", "status": status, "fail": fail}
            dep = self._new_deployment(model, {**spec, "fail_times": fail_times}, self.clock.now())
            return self._deployment_json(model, dep)

    def add_logs(self, model_id: str, deployment_id: str, lines: list[dict[str, Any]]) -> int:
        """Append log lines ``{"timestamp": <epoch ns>, "message", "level"?, "replica"?}``; returns the count."""
        with self.lock:
            dep = self._deployment(self._model(model_id), deployment_id)
            for line in lines:
                level = line.get("level")
                dep.logs.append((int(line["timestamp"]), level, line.get("replica"), str(line["message"])))
            return len(dep.logs)

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


def _as_list(value: Any) -> list[str]:
    """A repeated query parameter as a list (a single value arrives as a string)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
