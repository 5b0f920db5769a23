"""Management endpoints for models, chains, deployments, environments and promotions, with their
logs and metrics."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_baseten.emulator.core import StateCore, _as_list
from airflow_provider_baseten.emulator.objects import (
    AUTOSCALING_LIMITS,
    DEFAULT_METRICS,
    DEFAULT_PROMOTION_SETTINGS,
    INSTANCE_TYPE,
    METRICS,
    ApiError,
    Deployment,
    Environment,
    Model,
    Promotion,
)


class DeploymentHandlers(StateCore):
    """Models, chains, deployments, environments, promotions, logs and metrics. Handlers are ``_h_<endpoint name>``; see :meth:`.EmulatorState.handle`."""

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

    # -- deployments ---------------------------------------------------------------------------------
    def _h_list_deployments(self, params: dict[str, str], *_: Any) -> Any:
        model = self._model(params["model_id"])
        return 200, {"deployments": [self._deployment_json(model, d) for d in model.deployments.values()]}

    def _get_dep(self, params: dict[str, str], which: str | None = None) -> tuple[Model, Deployment]:
        model = self._model(params["model_id"])
        dep = self._deployment(model, which or params["deployment_id"])
        if self.clock.now() < dep.visible_at:  # just created: not visible yet, as Baseten's first seconds
            raise ApiError(404, f"Deployment {dep.id} of model {model.id} not found")
        return model, dep

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

    def _h_activate_production_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._activate(self._get_dep(params, "production")[1])

    def _h_deactivate_production_deployment(self, params: dict[str, str], *_: Any) -> Any:
        return self._deactivate(self._get_dep(params, "production")[1])

    def _h_get_deployment_config(self, params: dict[str, str], query: dict[str, Any], *_: Any) -> Any:
        # The emulator keeps no Truss config per deployment: it answers one built from what it knows.
        model, _dep = self._get_dep(params)
        config = {"model_name": model.name, "resources": {"instance_type": INSTANCE_TYPE["id"]}}
        fmt = query.get("output_format") or "both"
        raw = json.dumps(config, indent=2)  # JSON is YAML
        return 200, {"config": config if fmt != "raw" else None, "raw_config": raw if fmt != "parsed" else None}

    def _h_get_deployment_download_url(self, params: dict[str, str], *_: Any) -> Any:
        _model, dep = self._get_dep(params)
        signature = self.new_id(32)
        url = f"https://emulator-truss-archives.s3.amazonaws.com/{dep.id}/truss.tgz?X-Amz-Signature={signature}"
        return 200, {"download_url": url}

    def _h_terminate_replica(self, params: dict[str, str], *_: Any) -> Any:
        _model, dep = self._get_dep(params)
        replica = params["replica_id"]
        if replica != dep.replica or dep.status not in ("ACTIVE", "UPDATING", "UNHEALTHY"):
            raise ApiError(404, f"Replica {replica} of deployment {dep.id} not found")
        dep.log(self.clock.now(), "INFO", f"Replica {replica} terminated by request; the autoscaler replaces it")
        return 200, {"success": True}

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

    def _h_update_production_autoscaling_settings(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        return self._autoscaling(self._get_dep(params, "production")[1].autoscaling, body)

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
        p, now = self._running_promotion(params)[2:]
        if p.paused_at is None:
            p.paused_at = now
        return 200, {"success": True}

    def _h_resume_promotion(self, params: dict[str, str], *_: Any) -> Any:
        p, now = self._running_promotion(params)[2:]
        if p.paused_at is not None:
            p.paused_total += now - p.paused_at
            p.paused_at = None
        return 200, {"success": True}

    def _h_force_cancel_promotion(self, params: dict[str, str], *_: Any) -> Any:
        p = self._running_promotion(params)[2]
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

    def _h_get_deployment_logs(self, params: dict[str, str], query: dict[str, Any], *_: Any) -> Any:
        dep = self._get_dep(params)[1]
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
