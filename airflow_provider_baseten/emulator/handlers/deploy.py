"""Deploying over REST: ``prepare_model_upload``, the S3-compatible archive upload, and the two commits.

``prepare_model_upload`` hands out an upload slot: temporary credentials, a bucket and a key. The app serves
``PUT /__s3/{bucket}/{key}`` (:mod:`..s3`), which checks the SigV4 signature against the slot's credentials
and that the archive holds a valid ``config.yaml``, then calls :meth:`DeployHandlers.receive_upload`.
``create_model`` / ``create_model_deployment`` commit an uploaded key: the deployment builds on the emulator
clock (BUILDING -> DEPLOYING -> LOADING_MODEL -> ACTIVE), or ends ``config.deploy_fail`` with ERROR logs.
"""

from __future__ import annotations

import string
from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.objects import INSTANCE_TYPE, ApiError, Environment, Model

BUCKET = "baseten-emulator-model-uploads"
REGION = "us-west-2"


class DeployHandlers(StateCore):
    """Upload slots and the deployments committed from them. Handlers are ``_h_<endpoint name>``."""

    uploads: dict[str, dict[str, Any]]
    deploy_fail: str | None

    def _token(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def _h_prepare_model_upload(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        body = self._body(body)
        name, model_id = body.get("name"), body.get("model_id")
        if (name is None) == (model_id is None):
            raise ApiError(400, "Exactly one of name or model_id is required.", "client_error")
        if model_id is not None and body.get("team_id") is not None:
            raise ApiError(400, "team_id must not be set with model_id.", "client_error")
        if model_id is not None:
            self._model(model_id)  # 404 for an unknown model
        deployment = self._check_payload(body.get("deployment"))
        self._counters["requests"]["prepare_model_upload:" + ("dry_run" if body.get("dry_run") else "slot")] += 1
        if body.get("dry_run"):
            return 200, {"creds": None, "s3_bucket": None, "s3_key": None, "s3_region": None}
        key = f"models/{self.new_id(12)}/model.tgz"
        creds = {
            "aws_access_key_id": "ASIA" + self._token(16, string.ascii_uppercase + string.digits),
            "aws_secret_access_key": self._token(40),
            "aws_session_token": self._token(120),
        }
        self.uploads[key] = {
            "bucket": BUCKET,
            "key": key,
            "creds": creds,
            "name": name,
            "model_id": model_id,
            "config": deployment["config"],
            "uploaded": False,
            "size": 0,
            "files": [],
            "committed": False,
        }
        return 200, {"creds": creds, "s3_bucket": BUCKET, "s3_key": key, "s3_region": REGION}

    def _check_payload(self, deployment: Any) -> dict[str, Any]:
        if not isinstance(deployment, dict) or not isinstance(deployment.get("config"), dict):
            raise ApiError(422, "deployment.config must be an object (the parsed config.yaml).")
        minutes = deployment.get("deploy_timeout_minutes")
        if minutes is not None and not 10 <= int(minutes) <= 1440:
            raise ApiError(400, "deploy_timeout_minutes must be between 10 and 1440.", "client_error")
        if deployment.get("is_development") and (
            deployment.get("environment_name") or deployment.get("deployment_name")
        ):
            raise ApiError(
                400, "A development deployment takes no environment_name or deployment_name.", "client_error"
            )
        return deployment

    # -- the S3 side (called by ``..s3``) ---------------------------------------------------------------
    def upload_slot(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The slot ``prepare_model_upload`` handed out for ``bucket``/``key`` (``None``: no such slot)."""
        with self.lock:
            slot = self.uploads.get(key)
            return dict(slot) if slot is not None and slot["bucket"] == bucket else None

    def receive_upload(self, key: str, size: int, files: list[str], config: dict[str, Any]) -> None:
        """Record a verified archive upload (a second PUT of the same key replaces the first, as in S3)."""
        with self.lock:
            slot = self.uploads[key]
            slot.update(uploaded=True, size=size, files=files, archive_config=config)
            self._counters["submissions"]["model_archive_upload"] += 1

    # -- commits ----------------------------------------------------------------------------------------
    def _uploaded(self, key: Any) -> dict[str, Any]:
        slot = self.uploads.get(key) if isinstance(key, str) else None
        if slot is None:
            raise ApiError(400, f"Unknown s3_key {key!r}: call prepare_model_upload first.", "client_error")
        if not slot["uploaded"]:
            raise ApiError(
                400, f"Nothing was uploaded to {key!r}; upload the archive before committing.", "client_error"
            )
        if slot["committed"]:
            raise ApiError(400, f"The archive at {key!r} was already committed; prepare a new upload.", "client_error")
        return slot

    def _h_create_model(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        source = self._body(body).get("source") or {}
        if source.get("kind") != "model_archive":
            raise ApiError(400, "The emulator creates models from a model_archive only.", "client_error")
        slot = self._uploaded(source.get("s3_key"))
        if slot["name"] is None:
            raise ApiError(400, "This upload was prepared for a new deployment (model_id), not a new model.")
        deployment = self._check_payload(source.get("deployment"))
        now = self.clock.now()
        model = Model(id=self.new_id(), name=str(source.get("name")), created=now)
        model.environments["production"] = Environment("production", model.id, now)
        self.models[model.id] = model
        return self._commit(model, slot, deployment, now)

    def _h_create_model_deployment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        model = self._model(params["model_id"])
        source = self._body(body).get("source") or {}
        slot = self._uploaded(source.get("s3_key"))
        if slot["model_id"] != model.id:
            raise ApiError(400, f"This upload was prepared for {slot['model_id'] or 'a new model'}, not {model.id}.")
        return self._commit(model, slot, self._check_payload(source.get("deployment")), self.clock.now())

    # -- BIS-LLM deploys: an engine config, no archive ---------------------------------------------------
    def _h_create_llm_model(self, params: Any, query: Any, body: Any, _: Any) -> Any:
        name = self._body(body).get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "name is required")
        now = self.clock.now()
        model = Model(id=self.new_id(), name=name, created=now)
        model.environments["production"] = Environment("production", model.id, now)
        self.models[model.id] = model
        return self._llm_deploy(model, body, now, first=True)

    def _h_create_llm_model_deployment(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        return self._llm_deploy(self._model(params["model_id"]), body, self.clock.now(), first=False)

    def _llm_deploy(self, model: Model, body: Any, now: float, first: bool) -> Any:
        """A new deployment built on the emulator's clock (as an uploaded one). A new model's first one becomes
        production once ACTIVE; a later version is promoted by the caller (how Baseten treats it is unverified)."""
        if not isinstance(self._body(body).get("resources"), dict):
            raise ApiError(422, "resources (an object) is required")
        spec = {"name": f"llm-{len(model.deployments) + 1}", "status": "ACTIVE", "fail": self.deploy_fail}
        dep = self._new_deployment(model, spec, now)
        dep.pending_environment = "production" if first else None
        self._start_build(dep, now, loading=True)
        self._counters["submissions"]["deployment"] += 1
        handle = {"model_id": model.id, "version_id": dep.id, "hostname": f"model-{model.id}.api.baseten.co"}
        return 200, {**handle, "instance_type_name": INSTANCE_TYPE["id"]}

    def _commit(self, model: Model, slot: dict[str, Any], deployment: dict[str, Any], now: float) -> Any:
        slot["committed"] = True
        spec = {
            "name": deployment.get("deployment_name") or f"deployment-{len(model.deployments) + 1}",
            "status": "ACTIVE",  # the build below sets the real timeline
            "labels": deployment.get("labels"),
            "is_development": bool(deployment.get("is_development")),
            "fail": self.deploy_fail,
        }
        dep = self._new_deployment(model, spec, now)
        dep.pending_environment = deployment.get("environment_name")
        dep.visible_at = now + self.config.durations.not_found_after_create
        self._start_build(dep, now, loading=True)
        self._counters["submissions"]["deployment"] += 1
        return 200, {"model": self._model_json(model), "deployment": self._deployment_json(model, dep)}
