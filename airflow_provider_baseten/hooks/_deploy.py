"""Deploying over REST: prepare an upload, upload the archive to S3, commit a new model or deployment.

Baseten's documented route with only an API key (``BEYOND-SEED.md`` 1.1-1.3): ``POST /v1/prepare_model_upload``
hands out temporary AWS credentials and an S3 key, the archive (a gzip tar of a Truss directory or of one
``config.yaml``) is uploaded there, then ``POST /v1/models`` (a new model) or
``POST /v1/models/{model_id}/deployments`` (a new deployment of an existing model) commits it.

The two commits are not idempotent (each makes a deployment that builds on a GPU): their rows say
``repeat="creates"`` and an ambiguous failure is reconciled by name (the model's, or the ``deployment_name``).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten.client.checks import int_in
from airflow_provider_baseten.hooks._api import (
    _Call,
    _for_team,
    _m,
    _made_since,
    _name,
    _one_named,
    _Reconcile,
    _v,
)
from airflow_provider_baseten.hooks._core import _HookCore
from airflow_provider_baseten.hooks._deployments import list_deployments, list_models

if TYPE_CHECKING:
    from airflow_provider_baseten.client.archive import Archive
    from airflow_provider_baseten.models import (
        CreatedDeployment,
        Deployment,
        DeployResult,
        LlmModelHandle,
        Model,
        ModelUpload,
    )

#: Baseten's bounds for ``deploy_timeout_minutes`` (``DeploymentArchivePayloadV1``).
DEPLOY_TIMEOUT_MINUTES = (10, 1440)


def deployment_payload(config: dict[str, Any], *, raw_config: str | None = None, **options: Any) -> dict[str, Any]:
    """Baseten's ``DeploymentArchivePayloadV1``, checked before anything is sent.

    :param options: ``environment``, ``deployment_name``, ``labels``, ``deploy_timeout_minutes``,
        ``preserve_env_instance_type`` (see :func:`deploy_options`).
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if not isinstance(config, dict) or not config:
        raise BasetenValidationError("config must be a non-empty dict (the parsed config.yaml).", field="config")
    body: dict[str, Any] = {"config": config}
    if raw_config is not None:
        body["raw_config"] = str(raw_config)
    return {**body, **deploy_options(**options)}


def deploy_options(
    *,
    environment: str | None = None,
    deployment_name: str | None = None,
    labels: dict[str, Any] | None = None,
    deploy_timeout_minutes: int | None = None,
    preserve_env_instance_type: bool = True,
) -> dict[str, Any]:
    """The options of a ``DeploymentArchivePayloadV1`` (all but the config), checked without any request."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    body: dict[str, Any] = {"preserve_env_instance_type": bool(preserve_env_instance_type)}
    if environment is not None:
        body["environment_name"] = _v("environment", environment)
    if deployment_name is not None:
        if not isinstance(deployment_name, str) or not deployment_name.strip():
            raise BasetenValidationError("deployment_name must be a non-empty string.", field="deployment_name")
        body["deployment_name"] = deployment_name
    if labels is not None:
        if not isinstance(labels, dict) or not all(isinstance(k, str) for k in labels):
            raise BasetenValidationError(
                f"labels must be a dict with string keys, e.g. {{'team': 'ml'}}; got {labels!r}."[:300], field="labels"
            )
        body["labels"] = dict(labels)
    if deploy_timeout_minutes is not None:
        body["deploy_timeout_minutes"] = int_in(
            "deploy_timeout_minutes", deploy_timeout_minutes, *DEPLOY_TIMEOUT_MINUTES
        )
    return body


def _model_name(name: Any) -> str:
    return _name("model", name, "model_name")


def _pick_model(models: list[Model], name: str) -> Model | None:
    return cast("Model | None", _one_named(models, name, "models", "pass model_id= instead."))


def _created(model: Model, deployment: Deployment | None) -> CreatedDeployment:
    m = _m()
    created: CreatedDeployment = m.CreatedDeployment(model=model, deployment=deployment)
    return created


# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def prepare_model_upload(
    hook: _HookCore,
    /,
    deployment: dict[str, Any],
    *,
    name: str | None = None,
    model_id: str | None = None,
    team_id: str | None = None,
    dry_run: bool = False,
) -> _Call[ModelUpload]:
    """Validate a deployment payload and get temporary S3 credentials and a key to upload its archive to.

    :param deployment: Baseten's ``DeploymentArchivePayloadV1`` (see :func:`deployment_payload`).
    :param name: A new model's name; or ``model_id``: another deployment of an existing model (exactly one).
    :param team_id: The new model's team (only with ``name``).
    :param dry_run: Validate only: no credentials, bucket or key come back.
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if (name is None) == (model_id is None):
        raise BasetenValidationError(
            f"Give exactly one of name= (a new model) or model_id= (a new deployment of it); got name={name!r}, "
            f"model_id={model_id!r}.",
            field="name",
        )
    if team_id is not None and name is None:
        raise BasetenValidationError("team_id= only goes with name= (a new model).", field="team_id")
    if not isinstance(deployment, dict) or not isinstance(deployment.get("config"), dict):
        raise BasetenValidationError("deployment must be a dict with a 'config' dict.", field="deployment")
    body: dict[str, Any] = {"deployment": deployment, "dry_run": bool(dry_run)}
    if name is not None:
        body["name"] = _model_name(name)
    if model_id is not None:
        body["model_id"] = _v("model_id", model_id)
    if team_id is not None:
        body["team_id"] = _v("team_id", team_id)
    m = _m()
    return _Call("prepare_model_upload", body=body, parse=lambda d: m.parse(m.ModelUpload, d, "prepare_model_upload"))


def create_model(
    hook: _HookCore,
    /,
    name: str,
    s3_key: str | None,
    deployment: dict[str, Any],
    *,
    disable_archive_download: bool = False,
    team_id: str | None = None,
) -> _Call[CreatedDeployment]:
    """Create a model from an uploaded archive (its first deployment starts building).

    Not idempotent: after an ambiguous failure (a 502 once the model may exist) the model is looked up by
    ``name`` among those that were not there before, and used instead of creating a second one. Such a
    reconciled answer has ``deployment=None`` (:meth:`deploy_model` then looks the deployment up).

    :param team_id: A team's id: the model is created in that team (``/v1/teams/{team_id}/models``).
    """
    m = _m()
    name = _model_name(name)
    models = list_models(hook)
    started = time.time()

    def pick(found: list[Any], before: list[Any]) -> Any:
        mine = [x for x in _made_since(found, {b.id for b in before}, started) if x.name == name]
        return _created(mine[0], None) if len(mine) == 1 else None

    source = {
        "kind": "model_archive",
        "name": name,
        "s3_key": s3_key,
        "deployment": deployment,
        "disable_archive_download": bool(disable_archive_download),
    }
    call = _Call(
        "create_model",
        body={"source": source},
        parse=lambda d: m.parse(m.CreatedDeployment, d, "create_model"),
        reconcile=_Reconcile(models, models, pick, f"model named {name!r}"),
    )
    return _for_team(call, team_id)


def create_model_deployment(
    hook: _HookCore, /, s3_key: str | None, deployment: dict[str, Any], *, model_id: str | None = None
) -> _Call[CreatedDeployment]:
    """Add a deployment to an existing model from an uploaded archive (it starts building).

    Not idempotent: with a ``deployment_name`` in ``deployment``, an ambiguous failure is reconciled by
    finding the new deployment of that name (not there before the call); without one, it is raised.
    """
    m = _m()
    model = hook._model(model_id)
    name = deployment.get("deployment_name") if isinstance(deployment, dict) else None
    reconcile = None
    if isinstance(name, str) and name:
        deps = list_deployments(hook, model)
        started = time.time()

        def pick(found: list[Any], before: list[Any]) -> Any:
            mine = [x for x in _made_since(found, {b.id for b in before}, started) if x.name == name]
            return _created(m.Model(id=model), mine[0]) if len(mine) == 1 else None

        reconcile = _Reconcile(deps, deps, pick, f"deployment named {name!r}")
    return _Call(
        "create_model_deployment",
        {"model_id": model},
        body={"source": {"kind": "model_archive", "s3_key": s3_key, "deployment": deployment}},
        parse=lambda d: m.parse(m.CreatedDeployment, d, "create_model_deployment"),
        reconcile=reconcile,
    )


def _llm_body(
    resources: Any,
    llm_config: Any,
    llm_version: Any,
    environment_variables: Any,
    autoscaling_settings: Any,
    metadata: Any,
) -> dict[str, Any]:
    """The body of a BIS-LLM deploy: ``resources`` (required) and the options given (``None`` ones left out)."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    options = {
        "llm_config": llm_config,
        "llm_version": llm_version,
        "environment_variables": environment_variables,
        "autoscaling_settings": autoscaling_settings,
        "metadata": metadata,
    }

    if not isinstance(resources, dict) or not resources:
        raise BasetenValidationError(
            "resources must be a non-empty dict, e.g. {'accelerator': 'H100', 'use_gpu': True}.", field="resources"
        )
    for key, value in options.items():
        if value is not None and key != "llm_version" and not isinstance(value, dict):
            raise BasetenValidationError(f"{key} must be a dict, got {type(value).__name__}.", field=key)
    return {"resources": resources, **{k: v for k, v in options.items() if v is not None}}


def create_llm_model(
    hook: _HookCore,
    /,
    name: str,
    resources: dict[str, Any],
    *,
    llm_config: dict[str, Any] | None = None,
    llm_version: str | None = None,
    environment_variables: dict[str, Any] | None = None,
    autoscaling_settings: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    team_id: str | None = None,
) -> _Call[LlmModelHandle]:
    """Deploy a new BIS-LLM model (Baseten's LLM engine from a config; no Truss archive).

    Not idempotent: after an ambiguous failure the model is looked up by ``name`` among those that were not
    there before, and used instead of creating a second one (its handle then has no ``version_id``).

    :param resources: e.g. ``{"accelerator": "H100", "use_gpu": True}``.
    :param llm_config: The engine's config (checkpoint, quantization, runtime...).
    :param autoscaling_settings: As :meth:`update_autoscaling_settings` takes them.
    :param team_id: A team's id: the model is that team's.
    """
    m = _m()
    name = _model_name(name)
    options = (llm_config, llm_version, environment_variables, autoscaling_settings, metadata)
    body = {"name": name, **_llm_body(resources, *options)}
    models = list_models(hook)
    started = time.time()

    def pick(found: list[Any], before: list[Any]) -> Any:
        mine = [x for x in _made_since(found, {b.id for b in before}, started) if x.name == name]
        return m.LlmModelHandle(model_id=mine[0].id) if len(mine) == 1 else None

    call = _Call(
        "create_llm_model",
        body=body,
        parse=lambda d: m.parse(m.LlmModelHandle, d, "create_llm_model"),
        reconcile=_Reconcile(models, models, pick, f"model named {name!r}"),
    )
    return _for_team(call, team_id)


def create_llm_model_deployment(
    hook: _HookCore,
    /,
    resources: dict[str, Any],
    *,
    model_id: str | None = None,
    llm_config: dict[str, Any] | None = None,
    llm_version: str | None = None,
    environment_variables: dict[str, Any] | None = None,
    autoscaling_settings: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> _Call[LlmModelHandle]:
    """Deploy a new version of a BIS-LLM model. Not idempotent, and the request names nothing to find it by:
    an ambiguous failure is raised (``maybe_created``), never sent again.

    :param resources: e.g. ``{"accelerator": "H100", "use_gpu": True}``.
    """
    m = _m()
    options = (llm_config, llm_version, environment_variables, autoscaling_settings, metadata)
    return _Call(
        "create_llm_model_deployment",
        {"model_id": hook._model(model_id)},
        body=_llm_body(resources, *options),
        parse=lambda d: m.parse(m.LlmModelHandle, d, "create_llm_model_deployment"),
    )


class _DeployApi(_HookCore):
    """Deploy methods of :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook`."""

    # -- the whole deploy -------------------------------------------------------------------------------
    def deploy_model(
        self,
        /,
        source: dict[str, Any] | str | os.PathLike[str],
        *,
        model_name: str | None = None,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_name: str | None = None,
        labels: dict[str, Any] | None = None,
        deploy_timeout_minutes: int | None = None,
        dry_run: bool = False,
        team_id: str | None = None,
        preserve_env_instance_type: bool = True,
    ) -> DeployResult:
        """Deploy a config dict or a Truss directory: pack, prepare, upload, commit. Does not wait.

        :param source: A config dict (packed as the archive's only file, ``config.yaml``) or a Truss directory
            (packed whole, less what its ``.truss_ignore`` lists), as a gzip tar in a temporary file.
        :param model_name: Deploy to the model of this name: a new deployment of it if it exists, else a new
            model (default: the config's ``model_name``).
        :param model_id: Deploy a new deployment of this model (instead of finding one by name).
        :param environment: Deploy into this environment (it takes over once the deployment is ACTIVE).
        :param deployment_name: The deployment's name (also how an ambiguous create is reconciled).
        :param labels: Labels for the deployment.
        :param deploy_timeout_minutes: Baseten's deploy timeout (10-1440).
        :param dry_run: Validate only (``prepare_model_upload`` with ``dry_run``): nothing is uploaded or created.
        :returns: :class:`~airflow_provider_baseten.models.DeployResult` (ids; the deployment is BUILDING).

        Wait for ACTIVE with :class:`~airflow_provider_baseten.operators.deploy.DeployModelOperator` or
        ``DeploymentStatusTrigger``. Needs the ``[deploy]`` extra to upload (not for a dry run).
        """
        from airflow_provider_baseten.client.archive import build_archive

        a = {k: v for k, v in locals().items() if k not in ("self", "build_archive")}
        plan = self._deploy_plan(a)
        with build_archive(source) as archive:
            payload = self._payload(archive, a)
            target = self._deploy_target(plan, archive.config, self._send(list_models) if plan["find"] else [])
            upload = self._send(prepare_model_upload, payload, dry_run=dry_run, **target)
            if dry_run:
                return self._dry(target)
            sent = self._upload(archive, upload)
            if "model_id" in target:
                created = self._send(create_model_deployment, upload.s3_key, payload, model_id=target["model_id"])
            else:
                created = self._send(create_model, target["name"], upload.s3_key, payload)
            if created.deployment is None:
                created = _created(
                    created.model, self._newest_deployment(self._send(list_deployments, created.model.id))
                )
        return self._result(created, sent, upload.s3_key)

    async def adeploy_model(
        self,
        /,
        source: dict[str, Any] | str | os.PathLike[str],
        *,
        model_name: str | None = None,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_name: str | None = None,
        labels: dict[str, Any] | None = None,
        deploy_timeout_minutes: int | None = None,
        dry_run: bool = False,
        team_id: str | None = None,
        preserve_env_instance_type: bool = True,
    ) -> DeployResult:
        """Async :meth:`deploy_model` (the same arguments, awaitable; packing and upload run in a thread)."""
        from airflow_provider_baseten.client.archive import build_archive

        args = {k: v for k, v in locals().items() if k not in ("self", "build_archive")}
        plan = self._deploy_plan(args)
        archive = await asyncio.to_thread(build_archive, source)
        try:
            payload = self._payload(archive, args)
            target = self._deploy_target(plan, archive.config, await self._asend(list_models) if plan["find"] else [])
            upload = await self._asend(prepare_model_upload, payload, dry_run=args["dry_run"], **target)
            if args["dry_run"]:
                return self._dry(target)
            sent = await asyncio.to_thread(self._upload, archive, upload)
            if "model_id" in target:
                created = await self._asend(
                    create_model_deployment, upload.s3_key, payload, model_id=target["model_id"]
                )
            else:
                created = await self._asend(create_model, target["name"], upload.s3_key, payload)
            if created.deployment is None:
                deps = await self._asend(list_deployments, created.model.id)
                created = _created(created.model, self._newest_deployment(deps))
        finally:
            archive.close()
        return self._result(created, sent, upload.s3_key)

    # -- the steps both twins share ---------------------------------------------------------------------
    def _deploy_plan(self, a: dict[str, Any]) -> dict[str, Any]:
        """Check :meth:`deploy_model`'s arguments ``a`` before anything is packed or sent."""
        from airflow_provider_baseten.client.upload import check_installed
        from airflow_provider_baseten.exceptions import BasetenConfigurationError, BasetenValidationError

        if self.settings.gateway == "lowcodeapi":
            raise BasetenConfigurationError(
                "LowCodeAPI's Baseten reference lists none of the deploy routes (prepare_model_upload, create_model, "
                "create_model_deployment): deploy through a direct Baseten connection (extra gateway=baseten)."
            )
        source, model_name, model_id, team_id = a["source"], a["model_name"], a["model_id"], a["team_id"]
        if model_name is not None and model_id is not None:
            raise BasetenValidationError("Give model_name= or model_id=, not both.", field="model_id")
        if not isinstance(source, (dict, str, os.PathLike)):
            raise BasetenValidationError(
                f"source must be a config dict or a Truss directory path, got {type(source).__name__}.", field="source"
            )
        if isinstance(source, dict) and model_name is None and model_id is None and not source.get("model_name"):
            raise BasetenValidationError(
                "Name the model: model_name=, model_id=, or a 'model_name' in the config.", field="model_name"
            )
        if not isinstance(source, dict) and not Path(source).is_dir():
            raise BasetenValidationError(f"{str(source)!r} is not a Truss directory.", field="source")
        if model_id is not None:
            _v("model_id", model_id)
        elif model_name is not None:
            _model_name(model_name)
        if team_id is not None and model_id is not None:
            raise BasetenValidationError("team_id= only goes with a new model (model_name=).", field="team_id")
        if not a["dry_run"]:
            check_installed()  # a missing extra is an error before anything is sent
        return {"model_name": model_name, "model_id": model_id, "team_id": team_id, "find": model_id is None}

    @staticmethod
    def _payload(archive: Archive, a: dict[str, Any]) -> dict[str, Any]:
        keys = ("environment", "deployment_name", "labels", "deploy_timeout_minutes", "preserve_env_instance_type")
        return deployment_payload(archive.config, raw_config=archive.raw_config, **{k: a[k] for k in keys})

    def _deploy_target(self, plan: dict[str, Any], config: dict[str, Any], models: list[Model]) -> dict[str, Any]:
        """``{"model_id": ...}`` (a new deployment of an existing model) or ``{"name": ..., "team_id"?}``."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if plan["model_id"] is not None:
            return {"model_id": plan["model_id"]}
        name = plan["model_name"] or config.get("model_name")
        if name is not None:
            name = _model_name(name)
        else:
            raise BasetenValidationError(
                "Name the model: model_name=, model_id=, or a 'model_name' in the config.", field="model_name"
            )
        found = _pick_model(models, name)
        if found is not None:
            self.log.info("Model %r exists (%s): deploying a new deployment of it.", name, found.id)
            return {"model_id": found.id}
        self.log.info("No model named %r: creating it.", name)
        return {"name": name, **({"team_id": plan["team_id"]} if plan["team_id"] else {})}

    def _upload(self, archive: Archive, upload: ModelUpload) -> int:
        from airflow_provider_baseten.client.upload import upload_archive

        if not upload.s3_key:
            self.log.info("Baseten builds this model from its config alone (no s3_key): nothing to upload.")
            return 0
        self.log.info("Uploading the model archive (%d files, %d bytes).", len(archive.files), archive.size)
        return upload_archive(archive.path, upload, self.settings.upload_endpoint_url)

    @staticmethod
    def _newest_deployment(deps: list[Deployment]) -> Deployment:
        from airflow_provider_baseten.exceptions import BasetenError
        from airflow_provider_baseten.hooks._api import _created_at

        if not deps:
            raise BasetenError("The model was created, but it has no deployment yet; look it up in Baseten.")
        return max(deps, key=_created_at)

    def _dry(self, target: dict[str, Any]) -> DeployResult:
        self.log.info("Dry run: Baseten accepted the deployment payload; nothing uploaded or created.")
        m = _m()
        result: DeployResult = m.DeployResult(model_id=target.get("model_id"), dry_run=True)
        return result

    def _result(self, created: CreatedDeployment, sent: int, s3_key: str | None) -> DeployResult:
        m = _m()
        dep = created.deployment
        self.log.info(
            "Created deployment %s of model %s (status %s).",
            dep.id if dep else None,
            created.model.id,
            dep.status if dep else None,
        )
        result: DeployResult = m.DeployResult(
            model_id=created.model.id,
            deployment_id=dep.id if dep else None,
            model=created.model,
            deployment=dep,
            uploaded_bytes=sent,
            s3_key=s3_key,
        )
        return result
