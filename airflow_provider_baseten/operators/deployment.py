"""Deployment operators: promote, activate, deactivate, and change autoscaling.

A promotion is the step of a train-then-promote pipeline that touches what users are served, so the
promote operator is careful about ownership: it cancels a promotion only if this task started it, and it
never deactivates or scales down anything when killed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten import _lineage, xcom
from airflow_provider_baseten._tasks import deployment_behind, push_deployment, rendered_target, resolve_model
from airflow_provider_baseten.client.checks import check_target, is_template, validate_id
from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.links import BasetenDeploymentLink, BasetenModelLink
from airflow_provider_baseten.operators._base import BasetenBaseOperator, BasetenWaitingOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


_UNSET: Any = object()


def _addressed(target: dict[str, str | None]) -> tuple[str, str]:
    """``("deployment", id)`` or ``("environment", name)``: what the hook's management calls take for a checked
    target. The development deployment is a deployment there (``"development"`` in place of its id)."""
    env = target["environment"] or "production"
    if target["deployment_id"] is not None or env == "development":
        return "deployment", target["deployment_id"] or env
    return "environment", env


class PromoteDeploymentOperator(BasetenWaitingOperator):
    """Promote a deployment to production, or into a named environment, and wait until it serves.

    The promoted deployment's id and UI URL are pushed to XCom (``deployment_id``,
    ``baseten_deployment_url``) right after the promotion is requested, before any waiting. The task
    returns the promoted deployment's id.

    If the deployment already serves the environment, nothing is sent: the task logs that and succeeds.
    If a promotion of this same deployment into the environment is already in progress (started by
    someone else, or by an earlier try), the task waits for it without starting another one, and does
    not cancel it when killed (it is not this task's promotion).

    :param deployment_id: The deployment's id, or ``"development"`` for the development deployment.
    :param model_id: The model (default: the connection's ``model_id``).
    :param environment: Where to promote it (unlike the other operators', this ``environment`` is the
        destination): ``"production"`` (default) or the name of a custom environment. ``"development"`` (the
        development deployment everywhere else) is refused.
    :param scale_down_previous: Scale down the deployment the environment served before (Baseten's
        ``scale_down_previous_production`` / ``scale_down_previous_deployment``). Default True.
    :param preserve_env_instance_type: Keep the environment's instance type. Default True.
    :param wait_for_completion: Wait until the promotion finished and the deployment is ACTIVE (default True).
    :param cancel_on_kill: When killed mid-promotion, cancel the promotion *this task started*. Nothing is
        ever deactivated or scaled down on kill.
    :param cancel_on_timeout: At the deadline (``timeout`` / ``execution_timeout``), cancel the promotion *this
        task started* (default True; a retry does not reconnect to a promotion, so retries do not change it).

    Asset event: by default the task's outlet is the environment's asset
    (:func:`~airflow_provider_baseten.assets.environment_asset`), or ``AssetAlias("baseten:environment")``
    when the model or environment is templated or left to the connection. On success the event extra is
    ``{deployment_id, previous_deployment_id, environment, promoted_at, model_id, noop, serving}``. A no-op
    promotion (the deployment already served) still emits, with ``noop: true`` and ``previous_deployment_id ==
    deployment_id``: the task succeeded, and Airflow emits a succeeded task's outlets; consumers that only
    want real changes skip ``noop`` events. With ``wait_for_completion=False`` the event says ``serving:
    false`` (requested, not yet serving). Pass ``outlets=[]`` for no event.
    """

    template_fields: Sequence[str] = ("deployment_id", "model_id", "environment", "baseten_conn_id")
    operator_extra_links = (BasetenModelLink(), BasetenDeploymentLink())
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        deployment_id: str,
        model_id: str | None = None,
        environment: str = "production",
        scale_down_previous: bool = True,
        preserve_env_instance_type: bool = True,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.assets import ENVIRONMENT_ALIAS, default_outlets, environment_asset

        default_outlets(kwargs, (model_id, environment or "production"), environment_asset, ENVIRONMENT_ALIAS)
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.environment = environment or "production"
        self._check_names(templates_ok=True)
        self.scale_down_previous = scale_down_previous
        self.preserve_env_instance_type = preserve_env_instance_type
        self._started = False  # True once this task's promote request was accepted
        self._done = False
        self._model: str | None = None
        self._target_id: str | None = None
        self._previous: Any = _UNSET  # what the environment served before (set by execute)
        self._served: str | None = None  # the deployment that serves the environment at the end (lineage)
        self._noop = False  # it already served: nothing was promoted

    def _check_names(self, templates_ok: bool = False) -> None:
        """The target rule's name checks (:func:`~airflow_provider_baseten.client.checks.check_target`), for a
        promotion's two ends: ``deployment_id`` (an id, or ``"development"``) goes into ``environment``."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if not self.deployment_id:
            raise BasetenValidationError(
                "deployment_id is required: a deployment id, or 'development'.", field="deployment_id"
            )
        for name, value in (("deployment_id", self.deployment_id), ("environment", self.environment)):
            if not (templates_ok and is_template(value)):
                validate_id(name, value)
        if self.deployment_id == "production":
            raise BasetenValidationError(
                "PromoteDeploymentOperator: deployment_id='production' names what production serves now, which "
                "cannot be promoted into anything; pass the id of the deployment to promote (or 'development').",
                field="deployment_id",
            )
        if self.environment == "development":
            raise BasetenValidationError(
                "PromoteDeploymentOperator: environment='development' names the development deployment, which "
                "is not an environment to promote into; promote into 'production' or a custom environment.",
                field="environment",
            )

    def execute(self, context: Context) -> str:
        """Promote (unless already serving), push the id and URL, and wait if asked."""
        from airflow_provider_baseten.exceptions import BasetenValidationError
        from airflow_provider_baseten.models import PROMOTION_ACTIVE_STATES

        self._check_names()  # the rendered values, before anything is sent
        hook = self.hook
        model = self._model = resolve_model(hook, self.model_id)
        env_name = self.environment
        target_id = self.deployment_id
        if target_id == "development":
            target_id = hook.get_deployment("development", model_id=model).id
            self.log.info("The development deployment of model %s is %s.", model, target_id)

        env = hook.get_environment(env_name, model_id=model)
        current = env.current_deployment
        promo = env.in_progress_promotion
        promo_active = promo is not None and promo.status in PROMOTION_ACTIVE_STATES
        candidate = env.candidate_deployment
        if current is not None and current.id == target_id and not promo_active:
            self.log.info(
                "Deployment %s already serves %s of model %s (status %s); nothing to promote.",
                target_id,
                env_name,
                model,
                current.status,
            )
            push_deployment(context, model, target_id)
            self._done = True
            self._emit(context, model, target_id, target_id, noop=True)
            self._served, self._noop = target_id, True
            return target_id

        previous = self._previous = current.id if current is not None else None
        context["ti"].xcom_push(key=xcom.PREVIOUS_DEPLOYMENT_ID, value=previous)  # for execute_complete
        owned = True
        if promo_active and candidate is not None and candidate.id == target_id:
            self.log.info(
                "A promotion of deployment %s into %s is already in progress (%s); waiting for it instead of "
                "starting another. This task did not start it, so it will not cancel it.",
                target_id,
                env_name,
                promo.status if promo else None,
            )
            owned = False
        else:
            # Promoting "development" to production has its own endpoint; an environment needs the id.
            to_send = "development" if self.deployment_id == "development" and env_name == "production" else target_id
            self.log.info(
                "Promoting deployment %s of model %s into %s (scale_down_previous=%s, preserve_env_instance_type=%s).",
                target_id,
                model,
                env_name,
                self.scale_down_previous,
                self.preserve_env_instance_type,
            )
            try:
                promoted_id = hook.promote_deployment(
                    to_send,
                    model_id=model,
                    environment=env_name,
                    scale_down_previous=self.scale_down_previous,
                    preserve_env_instance_type=self.preserve_env_instance_type,
                ).id
            except BasetenValidationError:
                # A retry after an answer lost in transit (a 502 once Baseten had acted) is refused with
                # "already the deployment" / "already in progress": then the promotion exists, and it is ours.
                if not self._promotion_made(hook, model, env_name, target_id):
                    raise
                self.log.warning(
                    "Baseten refused a retried promote call, but deployment %s is now promoted into %s: an "
                    "earlier attempt went through (its answer was lost). Continuing with that promotion.",
                    target_id,
                    env_name,
                )
                promoted_id = target_id
            self._started = True
            target_id = promoted_id or target_id
            self._target_id = target_id
            self.log.info("Promotion of deployment %s into %s started.", target_id, env_name)

        push_deployment(context, model, target_id, log=self.log)
        if not self.wait_for_completion:
            self._emit(context, model, target_id, previous, serving=False)
            return target_id
        from airflow_provider_baseten.triggers.baseten import PromotionTrigger

        return cast(
            "str",
            self.wait(
                context,
                PromotionTrigger(
                    conn_id=self.baseten_conn_id,
                    model_id=model,
                    environment=env_name,
                    deployment_id=target_id,
                    poll_interval=self.poke_interval,
                    end_time=self.end_time(context),
                    hook_params=self.hook_params,
                    cancel_on_kill=self.cancel_on_kill and owned,
                    # A retry does not reconnect to a promotion it did not start: with no durable record of it,
                    # the promotion this try started is cancelled at the deadline (retries or not).
                    cancel_on_timeout=self.undo_on_timeout(context) and owned,
                ),
            ),
        )

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> str:
        """Fail unless the promotion finished with the deployment serving; return its id."""
        self._done = True
        super().on_event(context, event)
        previous = self._previous
        if previous is _UNSET:  # resumed after deferral: a new operator object, the value is in XCom
            ti = context["ti"]
            previous = ti.xcom_pull(task_ids=ti.task_id, key=xcom.PREVIOUS_DEPLOYMENT_ID, map_indexes=ti.map_index)
        self._model = self._model or event.get("model_id")  # after a deferral, execute's state is gone
        self._served = str(event.get("deployment_id"))
        model = str(event.get("model_id") or self._model)
        self._emit(context, model, self._served, previous)
        return self._served

    def _emit(self, context: Context, model: str, deployment_id: str, previous: Any, **kw: Any) -> None:
        """The environment asset's event (see the class docstring); logged."""
        from airflow_provider_baseten.assets import emit_environment_event

        extra = emit_environment_event(
            context,
            model_id=model,
            environment=self.environment,
            deployment_id=deployment_id,
            previous_deployment_id=previous,
            **kw,
        )
        self.log.info("Asset event of environment %s of model %s: %s", self.environment, model, extra)

    @staticmethod
    def _promotion_made(hook: Any, model: str, env_name: str, target_id: str) -> bool:
        """Whether ``target_id`` now serves ``env_name``, or is being promoted into it."""
        from airflow_provider_baseten.models import PROMOTION_ACTIVE_STATES

        env = hook.get_environment(env_name, model_id=model)
        promo = env.in_progress_promotion
        promoting = promo is not None and promo.status in PROMOTION_ACTIVE_STATES
        candidate = env.candidate_deployment
        serving = env.current_deployment
        return (serving is not None and serving.id == target_id) or (
            promoting and candidate is not None and candidate.id == target_id
        )

    @_lineage.never_raises
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the deployment in, the environment it now serves out (``[openlineage]``).

        Nothing when the task did not wait (``wait_for_completion=False``): the promotion may not finish. A
        no-op (the deployment already served) reports the same datasets without a lifecycle change.
        """
        return _lineage.environment_lineage(self._model, self._served, self.environment, changed=not self._noop)

    def on_kill(self) -> None:
        """Cancel the promotion this task started, if it is still in progress (``cancel_on_kill``).

        Only a promotion whose candidate is this task's deployment is cancelled; nothing is deactivated or
        scaled down.
        """
        if not (self.cancel_on_kill and self._started and not self._done and self._model and self._target_id):
            return
        from airflow_provider_baseten.models import PROMOTION_ACTIVE_STATES

        try:
            env = self.hook.get_environment(self.environment, model_id=self._model)
            promo = env.in_progress_promotion
            candidate = env.candidate_deployment
            if promo is None or promo.status not in PROMOTION_ACTIVE_STATES:
                self.log.info("No promotion in progress into %s; nothing to cancel.", self.environment)
                return
            if candidate is not None and candidate.id != self._target_id:
                self.log.info("The promotion in progress is not this task's; leaving it alone.")
                return
            result = self.hook.cancel_promotion(self.environment, model_id=self._model)
            self.log.info("Cancelled the promotion into %s: %s %s", self.environment, result.status, result.message)
        except Exception as exc:  # on_kill must not raise
            self.log.warning("Could not cancel the promotion into %s: %s", self.environment, exc)


class _ActivationOperator(BasetenWaitingOperator):
    """Shared body of activate and deactivate: one call, then optionally wait for the resulting status."""

    template_fields: Sequence[str] = ("deployment_id", "environment", "model_id", "baseten_conn_id")
    operator_extra_links = (BasetenModelLink(), BasetenDeploymentLink())
    _verb = ""
    _target_statuses: tuple[str, ...] = ()
    _failed_statuses: tuple[str, ...] | None = None
    default_poke_interval = 5.0

    def __init__(
        self,
        *,
        deployment_id: str | None = None,
        environment: str | None = None,
        model_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment, self.deployment_id = check_target(
            environment, deployment_id, who=type(self).__name__, templates_ok=True
        )
        self.model_id = model_id

    def execute(self, context: Context) -> str | None:
        """Send the request, push the deployment's id and URL, and wait if asked; return the deployment id."""
        from airflow_provider_baseten.exceptions import BasetenRemoteStateError

        target = rendered_target(self)  # before anything is sent
        hook = self.hook
        model = resolve_model(hook, self.model_id)
        kind, name = _addressed(target)
        what = f"{kind} {name}"
        result = getattr(hook, f"{self._verb}_{kind}")(name, model_id=model)
        if result.success is False:
            raise BasetenRemoteStateError(f"Baseten refused to {self._verb} {what} of model {model}.")
        self.log.info("Requested: %s %s of model %s.", self._verb, what, model)
        dep_id = deployment_behind(hook, model, **target)
        push_deployment(context, model, dep_id)
        if not self.wait_for_completion:
            return dep_id
        if dep_id is None:
            self.log.warning("No deployment serves %s; nothing to wait for.", what)
            return None
        failed = None if self._failed_statuses is None else list(self._failed_statuses)
        return self.wait_for_deployment(context, model, dep_id, self._target_statuses, failed_statuses=failed)

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> str | None:
        """Fail unless the deployment reached the wanted status; return its id."""
        super().on_event(context, event)
        return event.get("deployment_id")


class ActivateDeploymentOperator(_ActivationOperator):
    """Activate a deployment, or the deployment behind an environment, and by default wait until ACTIVE.

    Pushes ``deployment_id`` and ``baseten_deployment_url`` to XCom; returns the deployment id.

    :param environment: ``"production"`` (the default: the production environment), ``"development"`` (the
        development deployment) or a custom environment's name.
    :param deployment_id: One deployment's id (give this or ``environment``, not both).
        ``deployment_id="production"`` / ``"development"`` is a deprecated alias of ``environment=``.
    :param model_id: The model (default: the connection's ``model_id``).
    :param wait_for_completion: Wait until the deployment is ACTIVE (or SCALED_TO_ZERO, which is a healthy,
        idle deployment). Fails fast if it ends BUILD_FAILED, DEPLOY_FAILED, FAILED, UNHEALTHY or
        BUILD_STOPPED. Default True.
    """

    _verb = "activate"
    _target_statuses = ("ACTIVE", "SCALED_TO_ZERO")


class DeactivateDeploymentOperator(_ActivationOperator):
    """Deactivate a deployment, or the deployment behind an environment, and by default wait until INACTIVE.

    Deactivating stops serving: this is an explicit, user-requested action (no operator in this provider
    ever deactivates anything on its own, e.g. on kill).

    :param environment: ``"production"`` (the default: the production environment), ``"development"`` (the
        development deployment) or a custom environment's name.
    :param deployment_id: One deployment's id (give this or ``environment``, not both).
        ``deployment_id="production"`` / ``"development"`` is a deprecated alias of ``environment=``.
    :param model_id: The model (default: the connection's ``model_id``).
    :param wait_for_completion: Wait until the deployment is INACTIVE. Default True.
    """

    _verb = "deactivate"
    _target_statuses = ("INACTIVE",)
    _failed_statuses = ()  # whatever state it was in, only INACTIVE ends the wait (bounded by timeout)


class UpdateAutoscalingOperator(BasetenBaseOperator):
    """Change the autoscaling settings of a deployment or an environment; only the fields given change.

    Every setting is range-checked before any request is sent (``min_replica`` 0-1000, ``max_replica``
    1-1000, ``min_replica <= max_replica``, ``autoscaling_window`` 10-3600 s, ``scale_down_delay``
    0-86400 s, ``concurrency_target`` >= 1, ``target_utilization_percentage`` 1-100,
    ``max_scale_down_rate`` 1-50). Returns Baseten's answer ``{"status": ACCEPTED | QUEUED | UNCHANGED,
    "message": ...}`` and logs it.

    :param autoscaling_settings: The fields to change, e.g. ``{"min_replica": 0, "max_replica": 4}``.
        Templated (rendered values such as ``"4"`` are coerced to integers).
    :param environment: ``"production"`` (the default: the production environment), ``"development"`` (the
        development deployment) or a custom environment's name.
    :param deployment_id: One deployment's id (give this or ``environment``, not both).
        ``deployment_id="production"`` / ``"development"`` is a deprecated alias of ``environment=``.
    :param model_id: The model (default: the connection's ``model_id``).
    """

    template_fields: Sequence[str] = (
        "autoscaling_settings",
        "deployment_id",
        "environment",
        "model_id",
        "baseten_conn_id",
    )
    template_fields_renderers = {"autoscaling_settings": "json"}
    operator_extra_links = (BasetenModelLink(), BasetenDeploymentLink())

    def __init__(
        self,
        *,
        autoscaling_settings: dict[str, Any],
        deployment_id: str | None = None,
        environment: str | None = None,
        model_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment, self.deployment_id = check_target(
            environment, deployment_id, who="UpdateAutoscalingOperator", templates_ok=True
        )
        self.autoscaling_settings = autoscaling_settings
        self.model_id = model_id

    def validate(self) -> dict[str, Any]:
        """Check the settings (after templating); return the body that would be sent. Sends nothing."""
        from airflow_provider_baseten import models as m
        from airflow_provider_baseten.exceptions import BasetenValidationError

        settings = self.autoscaling_settings
        if not isinstance(settings, dict) or not settings:
            raise BasetenValidationError(
                f"autoscaling_settings must be a non-empty dict of fields to change, got {settings!r}."[:300],
                field="autoscaling_settings",
            )
        return m.options(m.AutoscalingSettingsUpdate, settings).body()

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, send, log and return ``{"status", "message"}``."""
        target = rendered_target(self)
        body = self.validate()  # before anything touches the network
        hook = self.hook
        model = resolve_model(hook, self.model_id)
        kind, name = _addressed(target)
        what = f"{kind} {name}"
        where = {"environment": name} if kind == "environment" else {"deployment_id": name}
        result = hook.update_autoscaling_settings(body, model_id=model, **where)
        push_deployment(context, model, self._deployment_behind(model, target))
        self.log.info(
            "Autoscaling update of %s of model %s: %s%s (sent %s)",
            what,
            model,
            result.status,
            f" ({result.message})" if result.message else "",
            body,
        )
        return {"status": result.status, "message": result.message}

    def _deployment_behind(self, model: str, target: dict[str, str | None]) -> str | None:
        """The deployment the settings apply to (for the extra link); ``None`` if it cannot be told."""
        try:
            return deployment_behind(self.hook, model, **target)
        except Exception as exc:  # only the link needs it: the update itself has succeeded
            self.log.warning("Could not tell which deployment the settings apply to: %s", exc)
            return None
