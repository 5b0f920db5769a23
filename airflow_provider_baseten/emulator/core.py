"""What every part of the emulated API shares: the object stores (declared here, filled by
:class:`~.state.EmulatorState`), lookups that raise Baseten's 404s, JSON renderers, deployment builds and
wakes, rate limits and the log-window helpers.
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
import string
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from airflow_provider_baseten.client.routes import endpoint
from airflow_provider_baseten.emulator.clock import Clock
from airflow_provider_baseten.emulator.config import EmulatorConfig
from airflow_provider_baseten.emulator.objects import (
    FAILED_BUILDS,
    FAILURE_LOGS,
    INSTANCE_TYPE,
    LOG_LEVELS,
    TEAM,
    ApiError,
    AsyncRequest,
    Chain,
    Deployment,
    Environment,
    Model,
    Promotion,
    TrainingJob,
    iso,
    training_compute,
)


class StateCore:
    """The stores and shared helpers every handler mixin (``emulator/handlers/``) builds on."""

    config: EmulatorConfig
    clock: Clock
    lock: threading.RLock
    rng: random.Random
    models: dict[str, Model]
    chains: dict[str, Chain]
    projects: dict[str, dict[str, Any]]
    jobs: dict[str, TrainingJob]
    secrets: dict[str, dict[str, Any]]
    api_keys: dict[str, dict[str, Any]]
    async_requests: dict[str, AsyncRequest]
    webhook_pending: set[str]
    webhook_log: list[dict[str, Any]]
    training_fail: Any
    promotion_fail: Any
    rate_windows: dict[str, deque[float]]
    _counters: dict[str, Counter[str]]

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

    def _start_build(self, dep: Deployment, now: float, loading: bool = False) -> None:
        """Build and deploy from ``now``: ACTIVE at the end, or ``fail_with`` while failures are left.

        ``loading``: a LOADING_MODEL step follows DEPLOYING (deployments created from an upload).
        """
        d = self.config.durations
        fail = dep.fail_with if dep.failures_left > 0 else None
        dep.failures_left -= fail is not None
        steps = [("BUILDING", d.build)] if fail == "BUILD_FAILED" else [("BUILDING", d.build), ("DEPLOYING", d.deploy)]
        if loading and fail in (None, "UNHEALTHY"):
            steps.append(("LOADING_MODEL", d.loading_model))
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
            if dep.pending_environment and dep.status == "ACTIVE":  # deployed into an environment: it takes over
                name = dep.pending_environment
                taken = model.environments.setdefault(name, Environment(name, model.id, now))
                taken.current_deployment_id, dep.pending_environment = dep.id, None

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

    def _wake_deployment(self, dep: Deployment, now: float) -> float | None:
        """Start waking a scaled-to-zero deployment; when it will be ACTIVE (``None``: it will not)."""
        dep.refresh(now)
        if dep.status == "SCALED_TO_ZERO":
            dep.start(now, [("WAKING_UP", self.config.durations.wake)])
        return dep.ready_at(now)

    def _bool(self, body: dict[str, Any], key: str) -> bool:
        value = body.get(key, True)
        if not isinstance(value, bool):
            raise ApiError(422, f"{key} must be a boolean")
        return value

    def _body(self, body: Any) -> dict[str, Any]:
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(422, "The request body must be a JSON object")
        return body

    # -- training ------------------------------------------------------------------------------------
    def _project(self, project_id: str) -> dict[str, Any]:
        if project_id not in self.projects:
            raise ApiError(404, f"Training project {project_id} not found")
        return self.projects[project_id]

    def _create_job(self, project_id: str, spec: dict[str, Any], now: float, job_id: str | None = None) -> TrainingJob:
        env = ((spec.get("runtime") or {}).get("environment_variables") or {}) if isinstance(spec, dict) else {}
        fail = self.training_fail or str(env.get("EMULATOR_FAIL", "")).lower() in ("1", "true", "yes")
        training_compute(spec)  # an accelerator no instance type has is refused before the job exists
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

    # -- rate limits ---------------------------------------------------------------------------------
    def _rate_limit(self, name: str) -> None:
        """Baseten's per-key endpoint limits (activate/deactivate 20/min, retry 10/min), on the emulated clock."""
        rule = endpoint(name).rate_limit
        if rule is None or not self.config.rate_limits:
            return
        limit, per = rule.limit, rule.per
        now = self.clock.now()
        window = self.rate_windows.setdefault(rule.bucket, deque())
        while window and window[0] <= now - per:
            window.popleft()
        if len(window) >= limit:
            retry_after = max(1, int(window[0] + per - now + 0.999))
            raise ApiError(429, "Rate limit exceeded. Please try again later.", extra={"retry_after": retry_after})
        window.append(now)

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

    def _logs(self, entries: list[tuple[int, str | None, str | None, str]], query: dict[str, Any]) -> dict[str, Any]:
        start, end = self._window(query, 1800)
        limit = self._int_query(query, "limit", 1, 1000) or 500
        direction = query.get("direction") or "asc"
        if direction not in ("asc", "desc"):
            raise ApiError(422, "direction must be asc or desc; min_level DEBUG, INFO, WARNING or ERROR")
        keep = _log_filter(query)
        now_ns = int(self.clock.now() * 1e9)
        # Only what has been written by now, in the window, and matching the query's filters.
        lines = [e for e in entries if e[0] <= now_ns and start <= e[0] // 1_000_000 <= end and keep(e)]
        lines.sort(key=lambda e: e[0])  # stable: lines of one nanosecond keep the order they were written in
        if direction == "desc":
            lines.reverse()
        return {
            "logs": [
                {"timestamp": str(ns), "message": message, "replica": replica, "request_id": None, "level": lvl}
                for ns, lvl, replica, message in lines[:limit]
            ]
        }

    # -- admin helpers -------------------------------------------------------------------------------
    files_url = "http://127.0.0.1/__files"

    # Counters live on the state so a reset clears them with everything else.
    @property
    def counters(self) -> dict[str, Counter[str]]:
        """All counters: ``requests`` (per endpoint name), ``submissions``, ``cancellations``, ``webhooks``,
        ``faults`` (per kind), ``responses`` (per HTTP status) and ``texts`` (texts embedded: ``embeddings``)."""
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


def _log_filter(query: dict[str, Any]) -> Callable[[tuple[int, str | None, str | None, str]], bool]:
    """Whether a log entry ``(ns, level, replica, message)`` passes the query's level, replica, substring and
    pattern filters (each checked first: a bad one is the API's 422 or 400)."""
    level = query.get("min_level")
    if level is not None and level not in LOG_LEVELS:
        raise ApiError(422, "direction must be asc or desc; min_level DEBUG, INFO, WARNING or ERROR")
    includes, excludes = _as_list(query.get("includes")), _as_list(query.get("excludes"))
    if len(includes) > 8 or len(excludes) > 8:
        raise ApiError(422, "includes and excludes take at most 8 substrings each")
    try:
        pattern = re.compile(query["search_pattern"]) if query.get("search_pattern") else None
    except re.error:
        raise ApiError(400, "search_pattern is not a valid regular expression") from None
    replica = query.get("replica")
    least = LOG_LEVELS.index(level) if level is not None else 0

    def keep(e: tuple[int, str | None, str | None, str]) -> bool:
        return (
            (level is None or (e[1] in LOG_LEVELS and LOG_LEVELS.index(e[1]) >= least))
            and (not replica or e[2] == replica)
            and all(x in e[3] for x in includes)
            and not any(x in e[3] for x in excludes)
            and (pattern is None or pattern.search(e[3]) is not None)
        )

    return keep


def _as_list(value: Any) -> list[str]:
    """A repeated query parameter as a list (a single value arrives as a string)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
