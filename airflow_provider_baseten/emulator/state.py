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
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from airflow_provider_baseten.client.routes import BY_TARGET, TEAM_TWIN
from airflow_provider_baseten.emulator.clock import Clock
from airflow_provider_baseten.emulator.config import EmulatorConfig
from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.handlers.billing import BillingHandlers
from airflow_provider_baseten.emulator.handlers.chains import ChainManagementHandlers
from airflow_provider_baseten.emulator.handlers.deploy import DeployHandlers
from airflow_provider_baseten.emulator.handlers.deployments import DeploymentHandlers
from airflow_provider_baseten.emulator.handlers.inference import InferenceHandlers
from airflow_provider_baseten.emulator.handlers.openai import ChainHandlers
from airflow_provider_baseten.emulator.handlers.training import TrainingHandlers
from airflow_provider_baseten.emulator.handlers.workspace import WorkspaceHandlers
from airflow_provider_baseten.emulator.objects import (
    DEFAULT_STATE,
    FAILURE_LOGS,
    TEAM,
    ApiError,
    Environment,
    Model,
    iso,
    model_output,
)

# The rows answered per target, read back from the hook's own lookup table so the two never disagree on a
# name: a model's queued request, queue status and wake, and a chain's run_remote and async_run_remote.
_BY_TARGET = {name: key for key, name in BY_TARGET.items() if key[0] in ("async_predict", "async_queue_status", "wake")}
_CHAIN_RUNS = {name: key for key, name in BY_TARGET.items() if key[0] in ("run_remote", "async_run_remote")}
# A team-scoped twin -> the workspace row it mirrors. The emulator has one team, whose objects are the workspace's.
_TEAM_ROWS = {twin: name for name, twin in TEAM_TWIN.items()}


class EmulatorState(
    InferenceHandlers,
    ChainHandlers,
    ChainManagementHandlers,
    DeploymentHandlers,
    DeployHandlers,
    TrainingHandlers,
    WorkspaceHandlers,
    BillingHandlers,
    StateCore,
):
    """Every object the emulator holds, and the behaviour of every endpoint in ``_routes``.

    The handlers live in ``emulator/handlers/`` (one mixin per part of the API); this class owns the
    stores' life cycle (reset, seed), the dispatch (:meth:`handle`) and the admin helpers.
    """

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
            self.models = {}
            self.chains = {}
            self.projects = {}
            self.jobs = {}
            self.secrets = {}
            self.api_keys = {}
            self.async_requests = {}
            self.webhook_pending = set()
            self.webhook_log = []
            self.training_fail = self.config.training_fail
            self.promotion_fail = self.config.promotion_fail
            self.deploy_fail = self.config.deploy_fail
            self.billing_access = self.config.billing_access
            self.model_api_usage = []
            self.env_group_access = {}
            self.uploads = {}
            self.rate_windows = {}
            self._counters = {
                k: Counter()
                for k in ("requests", "submissions", "cancellations", "webhooks", "faults", "responses", "texts")
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
            self._seed_chain(c, created)
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

    # -- dispatch ------------------------------------------------------------------------------------
    def handle(
        self, name: str, params: dict[str, str], query: dict[str, Any], body: Any, model_id: str | None
    ) -> tuple[int, Any]:
        """Answer endpoint ``name`` (sync predict excluded: see :meth:`predict_target`). Returns (status, JSON)."""
        with self.lock:
            self._rate_limit(name)
            if name in _BY_TARGET:
                action, target = _BY_TARGET[name]
                act: Callable[..., tuple[int, Any]] = getattr(self, "_" + action)
                return act(target, params, body, model_id)
            if name in _CHAIN_RUNS:
                action, target = _CHAIN_RUNS[name]
                return self.chain_run(target, action, params, body, model_id)
            if name in _TEAM_ROWS:
                self._team(params["team_id"])
                name = _TEAM_ROWS[name]
            handler: Callable[..., tuple[int, Any]] = getattr(self, "_h_" + name)
            return handler(params, query, body, model_id)

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
            chains = list(self.chains.values())
            for chain in chains:
                self._refresh_chain(chain, now)
            return {
                "now": iso(now),
                "models": models,
                "chains": [
                    {
                        **self._chain_json(c),
                        "deployments": [self._chain_dep_json(c, d) for d in c.deployments.values()],
                        "environments": [self._chain_env_json(c, e) for e in c.environments.values()],
                    }
                    for c in chains
                ],
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


# The objects other modules (the app, validation, tests) import from here.
__all__ = ["FAILURE_LOGS", "ApiError", "EmulatorState", "iso", "model_output"]
