"""The emulator's objects and fixed data: models, deployments, environments, promotions, training jobs,
async requests, their lazily computed timelines (:func:`phase`), the seed state and :class:`ApiError`.

A timeline is computed from timestamps on the emulator :class:`~.clock.Clock` whenever something reads it,
so the same sequence of calls and clock moves always gives the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_baseten.emulator.config import Durations

TEAM = "emulator-team"
TEAM_ID = "team1234"  # the workspace's one (default) team
INSTANCE_TYPE: dict[str, Any] = {
    "id": "A10Gx4x16",
    "name": "A10G (1 GPU, 4 vCPU, 16 GiB)",
    "memory_limit_mib": 16384,
    "millicpu_limit": 4000,
    "gpu_count": 1,
    "gpu_type": "A10G",
    "gpu_memory_limit_mib": 24576,
}
#: The instance types the emulator offers, with fixed prices in USD per minute (decimal strings, so tests can
#: assert exact dollars). Every emulated deployment runs on ``INSTANCE_TYPE``; a training job on the type of its
#: ``compute.accelerator`` (``INSTANCE_TYPE`` when it gives none).
INSTANCE_TYPES: tuple[tuple[dict[str, Any], str], ...] = (
    (
        {
            "id": "CPUx1x2",
            "name": "1 vCPU, 2 GiB",
            "memory_limit_mib": 2048,
            "millicpu_limit": 1000,
            "gpu_count": 0,
            "gpu_type": None,
            "gpu_memory_limit_mib": None,
        },
        "0.00058",
    ),
    (INSTANCE_TYPE, "0.02012"),
    (
        {
            "id": "H100x26x234",
            "name": "H100 (1 GPU, 26 vCPU, 234 GiB)",
            "memory_limit_mib": 239616,
            "millicpu_limit": 26000,
            "gpu_count": 1,
            "gpu_type": "H100",
            "gpu_memory_limit_mib": 81920,
        },
        "0.10833",
    ),
)


def price_of(instance_type_id: str) -> str:
    """The emulator's price of an instance type, USD per minute (a decimal string)."""
    return next(p for t, p in INSTANCE_TYPES if t["id"] == instance_type_id)


def training_compute(spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``(instance type, node count)`` of a ``CreateTrainingJobV1`` body: the instance type whose GPU type and
    count are ``compute.accelerator`` (``INSTANCE_TYPE`` when the body gives no accelerator, the emulator's
    default), and ``compute.node_count`` (default 1, as in the spec). An accelerator no instance type has is 400.
    """
    compute: dict[str, Any] = spec["compute"] if isinstance(spec.get("compute"), dict) else {}
    nodes = compute.get("node_count", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ApiError(400, f"compute.node_count must be a positive integer, got {nodes!r}")
    acc = compute.get("accelerator")
    if not isinstance(acc, dict):
        return INSTANCE_TYPE, nodes
    for itype, _price in INSTANCE_TYPES:
        if itype["gpu_type"] == acc.get("accelerator") and itype["gpu_count"] == acc.get("count"):
            return itype, nodes
    offered = ", ".join(f"{t['gpu_type']}:{t['gpu_count']}" for t, _p in INSTANCE_TYPES if t["gpu_type"])
    raise ApiError(400, f"No instance type has accelerator {acc!r}; the emulator offers {offered}.")


#: Model APIs prices in USD per token (input, output): $0.50 and $1.50 per million.
MODEL_API_TOKEN_PRICES = ("0.0000005", "0.0000015")
#: The emulated user behind the API key (``users/me``), first of the workspace's users.
USER = {"user_id": "user1234", "email": "airflow@example.com", "name": "Emulator User", "workspace_name": TEAM}
USERS = (
    USER,
    {"user_id": "user5678", "email": "ops@example.com", "name": "Ops", "workspace_name": TEAM},
    {"user_id": "user9012", "email": None, "name": "Service account", "workspace_name": TEAM},
)
#: Baseten's Model APIs catalogue as the emulator serves it (names without slashes: they go in a URL path).
MODEL_APIS = tuple(
    {
        "name": name,
        "display_name": display,
        "description": f"{display}, served by Baseten's Model APIs.",
        "model_family": family,
        "release_date": "2026-01-15",
        "invoke_url": "https://inference.baseten.co/v1",
        "context_length": context,
        "cost_per_million_input_tokens": 0.5,
        "cost_per_million_output_tokens": 1.5,
        "rate_limits": [{"type": "REQUEST", "unit": "MINUTE", "threshold": 600}],
        "org_details": {"added_at": "2026-02-01T00:00:00Z", "last_used_at": None} if added else None,
    }
    for name, display, family, context, added in (
        ("deepseek-v3", "DeepSeek V3", "deepseek", 131072, True),
        ("gpt-oss-120b", "GPT OSS 120B", "gpt-oss", 131072, False),
        ("llama-4-maverick", "Llama 4 Maverick", "llama", 1048576, True),
    )
)
#: Training GPU capacity per GPU type: (baseline, limit). Each running emulated job uses one GPU of its type.
TRAINING_GPU_CAPACITY = {"A10G": (4, 8), "H100": (0, 2)}

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
    # One ACTIVE deployment (its id: the chain id + "dep") serving production and staging, also the development one.
    "chains": [{"id": "chain123", "name": "rag-chain"}],
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
    logs: list[tuple[int, str | None, str | None, str]] = field(
        default_factory=list
    )  # (epoch ns, level, replica, message)
    predictions: int = 0
    pending_environment: str | None = None  # an uploaded deployment takes over this environment once ACTIVE
    visible_at: float = 0.0  # GET answers 404 before this (a fresh deployment may 404 for seconds)

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


#: The chainlets of an emulated chain deployment, entrypoint first.
CHAINLETS = ("Entrypoint", "Retriever")


@dataclass
class ChainDeployment:
    """A chain deployment: one model deployment per chainlet (as Baseten resolves a chainlet), by chainlet name."""

    id: str
    chain_id: str
    created: float
    chainlets: dict[str, Deployment]
    instance_types: dict[str, str]  # chainlet name -> instance type id
    is_development: bool = False

    def status(self) -> str:
        """A failed chainlet's status; ACTIVE when all are; otherwise the first chainlet not ACTIVE yet."""
        statuses = [c.status for c in self.chainlets.values()]
        failed = [s for s in statuses if s in (*FAILED_BUILDS, "FAILED", "BUILD_STOPPED")]
        if failed:
            return failed[0]
        return next((s for s in statuses if s != "ACTIVE"), "ACTIVE")

    def refresh(self, now: float) -> None:
        """Apply every chainlet's timeline up to ``now``."""
        for chainlet in self.chainlets.values():
            chainlet.refresh(now)

    def ready_at(self, now: float) -> float | None:
        """When every chainlet is (or will be) ACTIVE; ``None`` if one will not be."""
        times = [c.ready_at(now) for c in self.chainlets.values()]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)


@dataclass
class ChainEnvironment(Environment):
    """A chain environment: an environment (its current deployment and promotion) with per-chainlet settings
    (``{chainlet name: {"autoscaling": {...}, "instance_type_id": str}}``)."""

    chainlet_settings: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Chain:
    """A chain, its deployments and environments."""

    id: str
    name: str
    created: float
    deployments: dict[str, ChainDeployment] = field(default_factory=dict)
    environments: dict[str, ChainEnvironment] = field(default_factory=dict)


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

    @property
    def compute(self) -> tuple[dict[str, Any], int]:
        """``(instance type, node count)`` from the job's create body (a recreated job copies it)."""
        return training_compute(self.spec)

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
    webhook_attempts: list[str] = field(default_factory=list)  # each delivery attempt's outcome, in order
    chain_id: str | None = None  # a chain's request (async_run_remote): reported with chain_id, not model_id

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
