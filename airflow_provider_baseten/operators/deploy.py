"""Deploy what you trained: a config or Truss directory, or a training checkpoint, to a new Baseten deployment.

The create is not idempotent (a second deployment builds on a second GPU), so the operators are *durable*
on Airflow 3.3+: the deployment's ids go to the task's state store right after the create, and a retried
task reconnects to that deployment instead of making another. Each deployment also gets a name unique to
the task run (unless you name it), so a retry finds the deployment a lost or ambiguous create made, even if
the worker died before the ids were stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten import _lineage, xcom
from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.links import BasetenDeploymentLink, BasetenModelLink
from airflow_provider_baseten.operators._base import BasetenWaitingOperator, ResumableJobMixin
from airflow_provider_baseten.operators._durable import CreateMarker, made_by_earlier_try, run_unique_name

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import JsonValue

    from airflow_provider_baseten.models import Deployment

NOT_FOUND = "NOT_FOUND"
#: Statuses of a deployment that has been built and deployed: a retry does not deploy again.
DEPLOYED_STATES = frozenset({"ACTIVE", "SCALED_TO_ZERO", "WAKING_UP"})
# Task state store key of the create marker (operators/_durable.py); the name is kept for retries in flight.
_UNKNOWN_CREATE_KEY = "baseten_deploy_create_unknown"
__all__ = ["DeployModelOperator", "DeployTrainingCheckpointOperator", "deployment_ref", "run_unique_name"]


def deployment_ref(external_id: Any) -> tuple[str, str]:
    """``(model_id, deployment_id)`` from the stored external id ``{"model_id", "deployment_id"}``."""
    if isinstance(external_id, dict) and external_id.get("model_id") and external_id.get("deployment_id"):
        return str(external_id["model_id"]), str(external_id["deployment_id"])
    raise ValueError(f"A deployment reference is {{'model_id': ..., 'deployment_id': ...}}, got {external_id!r}."[:300])


class DeployModelOperator(ResumableJobMixin, BasetenWaitingOperator):
    """Deploy a config dict or a Truss directory as a new Baseten deployment and wait until it is ACTIVE.

    Packs the source (a gzip tar; a Truss directory less its ``.truss_ignore``), gets an upload slot from
    ``prepare_model_upload``, uploads the archive (SigV4, needs ``pip install 'airflow-provider-baseten[deploy]'``)
    and commits: a new deployment of the model named ``model_name`` (or ``model_id``) when it exists, else a
    new model. ``model_id``, ``deployment_id`` and the model/deployment URLs go to XCom before any waiting.

    The wait (deferrable) tolerates ``not_found_grace`` seconds of 404 right after the create, waits through
    BUILDING, DEPLOYING, LOADING_MODEL and UPDATING, and fails fast on BUILD_FAILED, DEPLOY_FAILED, UNHEALTHY
    (and FAILED, BUILD_STOPPED) with the deployment's last ERROR log lines in the task log.

    Durable on Airflow 3.3+ (see the module): a retry reconnects to the deployment this task made (or returns
    it at once when it is already ACTIVE); a deployment that failed is not reconnected to: the retry deploys
    afresh. A killed task leaves its deployment building (the retry reconnects to it); nothing is deleted.

    When the wait ends, its cost goes to the task log and XCom ``baseten_cost``: Baseten's billed figure for the
    deployment when the usage summary lists it, else its replica-minutes since creation x its price.

    Returns the deployment id.

    :param config: The ``config.yaml`` as a dict (templated); the archive holds only ``config.yaml``.
    :param truss_dir: Or the path of a Truss directory (templated).
    :param model_name: The model to deploy to (found by name, created if missing); default the config's
        ``model_name``.
    :param model_id: Or an existing model's id.
    :param environment: Deploy into this environment (it serves the deployment once ACTIVE).
    :param deployment_name: The deployment's name (default: the task id plus a hash of the run, unique per run).
    :param labels: Labels for the deployment.
    :param deploy_timeout_minutes: Baseten's deploy timeout (10-1440).
    :param dry_run: Only validate with Baseten (nothing uploaded or created); returns ``None``.
    :param not_found_grace: Seconds of 404 tolerated right after the create (default 60).
    :param error_lines: How many of the deployment's last ERROR lines to log when it fails (default 20).
    """

    template_fields: Sequence[str] = (
        "config",
        "truss_dir",
        "model_name",
        "model_id",
        "environment",
        "deployment_name",
        "labels",
        "baseten_conn_id",
    )
    template_fields_renderers = {"config": "json", "labels": "json"}
    operator_extra_links = (BasetenModelLink(), BasetenDeploymentLink())
    ui_color = "#e8f0fe"
    default_poke_interval = 15.0
    external_id_key = "baseten_model_deployment"

    def __init__(
        self,
        *,
        config: dict[str, Any] | None = None,
        truss_dir: str | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_name: str | None = None,
        labels: dict[str, Any] | None = None,
        deploy_timeout_minutes: int | None = None,
        dry_run: bool = False,
        not_found_grace: float = 60.0,
        error_lines: int = 20,
        **kwargs: Any,
    ) -> None:
        if environment is not None:  # deploying into an environment changes what it serves: an asset event
            from airflow_provider_baseten.assets import ENVIRONMENT_ALIAS, default_outlets, environment_asset

            default_outlets(kwargs, (model_id, environment), environment_asset, ENVIRONMENT_ALIAS)
        super().__init__(**kwargs)
        if config is not None and truss_dir is not None:
            raise ValueError("Give config= or truss_dir=, not both.")
        if config is None and truss_dir is None and not self._renders_config:
            raise ValueError(f"{type(self).__name__} needs config= (a dict) or truss_dir= (a Truss directory).")
        if model_name is not None and model_id is not None:
            raise ValueError("Give model_name= or model_id=, not both.")
        if not_found_grace < 0 or not isinstance(error_lines, int) or error_lines < 0:
            raise ValueError("not_found_grace and error_lines must not be negative.")
        if deploy_timeout_minutes is not None:  # not templated: a bad value fails when the DAG is parsed
            from airflow_provider_baseten.hooks._deploy import deploy_options

            deploy_options(deploy_timeout_minutes=deploy_timeout_minutes)
        self.config = config
        self.truss_dir = truss_dir
        self.model_name = model_name
        self.model_id = model_id
        self.environment = environment
        self.deployment_name = deployment_name
        self.labels = labels
        self.deploy_timeout_minutes = deploy_timeout_minutes
        self.deploy_dry_run = dry_run  # BaseOperator has a dry_run() method
        self.not_found_grace = float(not_found_grace)
        self.error_lines = error_lines
        self._deployment: dict[str, str] | None = None
        self._active: dict[str, str] | None = None  # the deployment seen ACTIVE (asset event, lineage)
        self._not_found_until: float | None = None

    #: Subclasses that build ``config`` themselves (from a checkpoint) set this.
    _renders_config = False

    def execute(self, context: Context) -> str | None:
        """Deploy (or reconnect to this task's deployment on a retry) and wait if asked; return its id."""
        self._preflight()
        if self.deploy_dry_run:
            self.hook.deploy_model(self._source(), dry_run=True, **self._target())
            self.log.info("Dry run passed: Baseten accepted the config; nothing was uploaded or created.")
            return None
        return cast("str", self.execute_resumable(context))

    def _source(self) -> dict[str, Any] | str:
        from airflow_provider_baseten.exceptions import BasetenValidationError

        source = self.config if self.config is not None else self.truss_dir
        if not isinstance(source, (dict, str)) or not source:
            raise BasetenValidationError("config must be a dict or truss_dir a directory path.", field="config")
        return source

    def _preflight(self) -> None:
        """Every check that needs no request: bad input fails here, with the fix named, before anything is sent."""
        from airflow_provider_baseten.client.upload import check_installed
        from airflow_provider_baseten.exceptions import BasetenValidationError
        from airflow_provider_baseten.hooks._deploy import deploy_options

        deploy_options(
            environment=self.environment,
            deployment_name=self.deployment_name or None,
            labels=self.labels,
            deploy_timeout_minutes=self.deploy_timeout_minutes,
        )
        if self.config is None and self._renders_config:
            return  # the checkpoint operator renders its config later; the rest is checked then
        source = self._source()
        if not isinstance(source, dict):
            from airflow_provider_baseten.client.archive import read_truss_config

            read_truss_config(source)  # a missing directory or config.yaml
        if not self.model_id and not self._model_name():
            raise BasetenValidationError(
                "Name the model: model_name=, model_id=, or a 'model_name' in the config.", field="model_name"
            )
        if not self.deploy_dry_run:
            check_installed()

    def _model_name(self) -> str | None:
        """The model's name: ``model_name``, else the config's (a Truss directory's ``config.yaml``)."""
        from airflow_provider_baseten.client.archive import read_truss_config

        if self.model_name:
            return self.model_name
        source = self._source()
        config = source if isinstance(source, dict) else read_truss_config(source)[0]
        name = config.get("model_name") if isinstance(config, dict) else None
        return str(name) if name else None

    def _target(self) -> dict[str, Any]:
        # A templated "" means "not given" (e.g. an unset Variable).
        return {"model_name": self.model_name or None, "model_id": self.model_id or None}

    def _name(self, context: Context) -> str:
        return self.deployment_name or run_unique_name(context, self.task_id)

    # -- ResumableJobMixin -----------------------------------------------------------------------------
    def submit_job(self, context: Context) -> JsonValue:
        """Deploy; push the ids and URLs at once. Returns ``{model_id, deployment_id}``.

        First looks for the deployment an earlier try made but could not record (a worker killed after the
        create, or a create whose answer was lost): by this run's unique name, or, for a name you chose,
        only when an earlier try started a create without storing the ids (killed, or failed), and only among
        deployments created since.
        """

        marker = CreateMarker(context, _UNKNOWN_CREATE_KEY)
        name = self._name(context)
        dep = self._made_by_earlier_try(name, marker.earlier())
        if dep is None:
            # Until the ids are stored (see poll_until_complete), a retry looks for what this try made: a
            # worker killed mid-create, or any failure (even one that looks clean) leaves the marker.
            marker.start()
            result = self.hook.deploy_model(
                self._source(),
                **self._target(),
                environment=self.environment,
                deployment_name=name,
                labels=self.labels,
                deploy_timeout_minutes=self.deploy_timeout_minutes,
            )
            model_id, dep_id = str(result.model_id), str(result.deployment_id)
        else:
            model_id, dep_id = str(dep.model_id), dep.id
        self._deployment = {"model_id": model_id, "deployment_id": dep_id}
        self._not_found_until = time.time() + self.not_found_grace
        self._push(context)
        return dict(self._deployment)

    def _made_by_earlier_try(self, name: str, unknown: dict[str, Any] | None) -> Deployment | None:
        """The one live (or deployed) deployment named ``name`` that an earlier try of this run made, if any."""
        from airflow_provider_baseten.exceptions import BasetenNotFoundError
        from airflow_provider_baseten.hooks._deploy import _pick_model

        if self.deployment_name and not unknown:
            return None  # a name you chose may be an older deployment's: only look after an unrecorded create
        model_id = self.model_id
        if model_id is None:
            name_of_model = self._model_name()
            found = _pick_model(self.hook.list_models(), name_of_model) if name_of_model else None
            if found is None:
                return None
            model_id = found.id
        try:
            deps = self.hook.list_deployments(model_id)
        except BasetenNotFoundError:
            return None
        # The run-unique name finds it even without a marker (before Airflow 3.3, or ids stored then lost).
        dep: Deployment | None = made_by_earlier_try(
            self, deps, unknown or {}, name=name, status=lambda d: d.status or "UNKNOWN", what="Deployment"
        )
        if dep is not None:
            dep.model_id = dep.model_id or model_id
        return dep

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """The stored deployment's status (``NOT_FOUND`` if it is gone, so a new one is deployed)."""
        from airflow_provider_baseten.exceptions import BasetenNotFoundError

        model_id, dep_id = deployment_ref(external_id)
        try:
            return self.hook.get_deployment(dep_id, model_id=model_id).status or "UNKNOWN"
        except BasetenNotFoundError:
            self.log.warning("Deployment %s from an earlier try no longer exists; deploying a new one.", dep_id)
            return NOT_FOUND

    def is_job_active(self, status: str) -> bool:
        """Reconnect to a deployment still on its way (building, deploying, loading, updating, unknown)."""
        from airflow_provider_baseten.models import DEPLOYMENT_FAILED_STATES

        bad = DEPLOYMENT_FAILED_STATES | DEPLOYED_STATES | {NOT_FOUND, "INACTIVE", "DEACTIVATING"}
        return status not in bad

    def is_job_succeeded(self, status: str) -> bool:
        """Built and deployed: ACTIVE (or scaled to zero since, or waking up)."""
        return status in DEPLOYED_STATES

    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        """Wait for ACTIVE if ``wait_for_completion`` (deferring when ``deferrable``); return the id."""
        model_id, dep_id = deployment_ref(external_id)
        CreateMarker(context, _UNKNOWN_CREATE_KEY).clear()  # the mixin has stored the ids by now
        if self._deployment is None:  # reconnecting: an earlier try of this task made the deployment
            self.log.info("Reconnected to deployment %s of model %s from an earlier try.", dep_id, model_id)
            self._deployment = {"model_id": model_id, "deployment_id": dep_id}
            self._not_found_until = time.time() + self.not_found_grace
            self._push(context)
        if not self.wait_for_completion:
            return dep_id
        return cast(
            "str",
            self.wait_for_deployment(
                context,
                model_id,
                dep_id,
                ["ACTIVE"],
                not_found_until=self._not_found_until,
                error_lines=self.error_lines,
            ),
        )

    def get_job_result(self, external_id: Any, context: Context) -> str:
        """The deployment id (pushing the ids and URLs if this try has not yet)."""
        model_id, dep_id = deployment_ref(external_id)
        if self._deployment is None:
            self.log.info("Deployment %s was already deployed by an earlier try.", dep_id)
            self._deployment = {"model_id": model_id, "deployment_id": dep_id}
            self._push(context)
            self._deployed(context, model_id, dep_id)  # a wait ends in on_event, which does it
        return dep_id

    def _deployed(self, context: Context, model_id: str, dep_id: str) -> None:
        """The deployment is ACTIVE: with ``environment``, emit the environment asset's event (logged)."""
        self._active = {"model_id": model_id, "deployment_id": dep_id}
        if self.environment is None:
            return
        from airflow_provider_baseten.assets import emit_environment_event

        extra = emit_environment_event(
            context,
            model_id=model_id,
            environment=self.environment,
            deployment_id=dep_id,
            previous_deployment_id=None,  # not tracked for a deploy: the environment is taken over once ACTIVE
        )
        self.log.info("Asset event of environment %s of model %s: %s", self.environment, model_id, extra)

    @_lineage.never_raises
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (``[openlineage]``): the new deployment as output, or, deployed into an environment, the
        deployment in and the environment out. Nothing when the task did not see it ACTIVE."""
        active = self._active or {}
        if self.environment is None:
            return _lineage.deployment_lineage(active.get("model_id"), active.get("deployment_id"))
        return _lineage.environment_lineage(active.get("model_id"), active.get("deployment_id"), self.environment)

    def _push(self, context: Context) -> None:
        from airflow_provider_baseten._tasks import push_deployment

        assert self._deployment is not None
        model_id, dep_id = self._deployment["model_id"], self._deployment["deployment_id"]
        context["ti"].xcom_push(key=xcom.MODEL_ID, value=model_id)
        push_deployment(context, model_id, dep_id, log=self.log)
        self.log.info("Deployment %s of model %s: waiting for it to become ACTIVE.", dep_id, model_id)

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> str:
        """Report the wait's cost; log a failed deployment's ERROR lines, then fail; on success return the
        deployment id."""
        from airflow_provider_baseten._tasks import deployment_cost

        dep_id = str(event.get("deployment_id"))
        model_id = event.get("model_id") or (self._deployment or {}).get("model_id") or self.model_id
        if event.get("status") != "timeout" and model_id:
            deployment_cost(context, self.hook, self.log, str(model_id), dep_id)
        super().on_event(context, event)
        self._deployed(context, str(model_id), dep_id)
        return dep_id


class DeployTrainingCheckpointOperator(DeployModelOperator):
    """Deploy a training job's checkpoint: wait until its checkpoints are synced, pick one, render, deploy.

    1. Waits (deferrable) until the job is ``TRAINING_JOB_COMPLETED`` with ``checkpoint_sync_status``
       ``COMPLETED``; a failed, stopped or expired job fails the task.
    2. Picks the checkpoint: the latest by ``created_at`` (default), or ``checkpoint_id`` (an id, or a list of
       LoRA ids on one base model); FULL and WHISPER checkpoints deploy alone.
    3. Renders ``config.yaml`` for ``route`` (see :mod:`airflow_provider_baseten.client.serving` for the defaults):
       ``engine_builder`` (Engine-Builder-LLM ``checkpoint_repository`` with ``source: BASETEN_TRAINING``) or
       ``vllm`` (a vLLM server with ``training_checkpoints``). ``config_overrides`` is deep-merged into it;
       ``config_template`` replaces it (with ``{model_name}``, ``{project_name}``, ``{job_id}``,
       ``{checkpoint_id}``, ``{base_model}``, ``{download_folder}`` filled in).
    4. Deploys and waits as :class:`DeployModelOperator` (durable: a retry reconnects).

    The chosen checkpoint id goes to XCom ``checkpoint_id``. Returns the deployment id.

    :param training_project_id: The training project.
    :param training_job_id: The job whose checkpoint to deploy.
    :param model_name: The model to deploy to (found by name, created if missing).
    :param model_id: Or an existing model's id. Neither (or only empty strings): the connection's ``model_id``.
    :param checkpoint_id: ``"latest"`` (default), a checkpoint id, or a list of LoRA checkpoint ids.
    :param route: ``engine_builder`` (default) or ``vllm``.
    :param base_model: The base model for a LoRA deployment (default: the checkpoint's ``base_model``).
    :param config_overrides: Deep-merged into the rendered config (e.g. ``{"resources": {"accelerator": "H100:2"}}``).
    :param config_template: A whole config to use instead of the route's (placeholders filled in).
    """

    template_fields: Sequence[str] = (
        *DeployModelOperator.template_fields,
        "training_project_id",
        "training_job_id",
        "checkpoint_id",
        "config_overrides",
        "config_template",
    )
    template_fields_renderers = {
        **DeployModelOperator.template_fields_renderers,
        "config_overrides": "json",
        "config_template": "json",
    }
    external_id_key = "baseten_checkpoint_deployment"
    _renders_config = True

    def __init__(
        self,
        *,
        training_project_id: str,
        training_job_id: str,
        model_name: str | None = None,
        checkpoint_id: str | list[str] | None = "latest",
        route: str = "engine_builder",
        base_model: str | None = None,
        config_overrides: dict[str, Any] | None = None,
        config_template: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.client.serving import ROUTES

        if "config" in kwargs or "truss_dir" in kwargs:
            raise ValueError(
                "DeployTrainingCheckpointOperator renders its config: use config_overrides/config_template."
            )
        if route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, got {route!r}.")
        if not training_project_id or not training_job_id:
            raise ValueError("training_project_id and training_job_id are required.")
        super().__init__(model_name=model_name, **kwargs)
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id
        self.checkpoint_id = checkpoint_id
        self.route = route
        self.base_model = base_model
        self.config_overrides = config_overrides
        self.config_template = config_template

    def execute(self, context: Context) -> str | None:
        """Wait for the checkpoints to sync (deferring when ``deferrable``), then deploy."""
        from airflow_provider_baseten._tasks import defer_backstop
        from airflow_provider_baseten.triggers._poll import wait_inline
        from airflow_provider_baseten.triggers.checkpoint import CheckpointSyncTrigger, checkpoints_ready

        self._preflight()
        job = self.hook.get_training_job(self.training_project_id, self.training_job_id)
        if not checkpoints_ready(job):
            self.log.info(
                "Training job %s is %s, checkpoint sync %s: waiting until its checkpoints are synced.",
                job.id,
                job.current_status,
                job.checkpoint_sync_status,
            )
            trigger = CheckpointSyncTrigger(
                conn_id=self.baseten_conn_id,
                training_project_id=self.training_project_id,
                training_job_id=self.training_job_id,
                poll_interval=self.poke_interval,
                end_time=self.end_time(context),
                hook_params=self.hook_params,
            )
            if self.deferrable:
                self.defer(trigger=trigger, method_name="execute_synced", timeout=defer_backstop(trigger.end_time))
            return self.execute_synced(context, dict(wait_inline(trigger)))
        return self._deploy(context)

    def execute_synced(self, context: Context, event: dict[str, Any] | None = None) -> str | None:
        """Resume once the checkpoints are synced (or the job failed): deploy, or fail."""
        from airflow_provider_baseten._tasks import raise_for_event, validate_event

        checked = validate_event(event)
        raise_for_event(checked)
        self.log.info("%s", checked.get("message"))
        return self._deploy(context)

    def _deploy(self, context: Context) -> str | None:
        self.config = self.render(context)
        return super().execute(context)

    def render(self, context: Context | None = None) -> dict[str, Any]:
        """Pick the checkpoint(s) and render the serving config (pushing ``checkpoint_id`` when in a task)."""
        from airflow_provider_baseten.client.serving import render_config, select_checkpoints

        pid, jid = self.training_project_id, self.training_job_id
        chosen = select_checkpoints(self.hook.get_training_job_checkpoints(pid, jid), self.checkpoint_id)
        project = self.hook.get_training_project(pid)
        ids = [c.checkpoint_id for c in chosen]
        if not self.model_name and not self.model_id:  # neither given: the connection's model
            from airflow_provider_baseten._tasks import resolve_model

            self.model_id = resolve_model(self.hook, None)
        name = self.model_name or self.hook.get_model(self.model_id).name or str(self.model_id)
        self.log.info("Deploying checkpoint(s) %s of training job %s by the %s route.", ids, jid, self.route)
        if context is not None:
            context["ti"].xcom_push(key=xcom.CHECKPOINT_ID, value=ids[0] if len(ids) == 1 else ids)
        return render_config(
            self.route,
            model_name=name,
            project_name=str(project.name or pid),
            job_id=jid,
            checkpoints=chosen,
            base_model=self.base_model,
            template=self.config_template,
            overrides=self.config_overrides,
        )
