"""DeploymentStatusSensor: wait for a deployment to reach a status, in poke or deferrable mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.links import BasetenDeploymentLink, BasetenModelLink
from airflow_provider_baseten.sensors._base import BasetenTriggerSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.triggers.baseten import DeploymentStatusTrigger


class DeploymentStatusSensor(BasetenTriggerSensor):
    """Wait until a deployment is ACTIVE (or reaches any of ``target_statuses``).

    Fails at once when the deployment is BUILD_FAILED, DEPLOY_FAILED, FAILED, UNHEALTHY or BUILD_STOPPED
    (the status is in the error message), unless that status is one of ``target_statuses``. With
    ``wake=True`` a SCALED_TO_ZERO deployment is woken (once) instead of waiting for traffic to wake it.

    Pushes ``deployment_id`` and ``baseten_deployment_url`` to XCom; returns the deployment's final status.

    :param environment: ``"production"`` (the default: the production deployment), ``"development"`` (the
        development deployment), or a custom environment: the deployment that serves it when the sensor starts.
    :param deployment_id: One deployment's id (give this or ``environment``, not both).
        ``deployment_id="production"`` / ``"development"`` is a deprecated alias of ``environment=``.
    :param model_id: The model (default: the connection's ``model_id``).
    :param target_statuses: Statuses that end the wait successfully (default ``["ACTIVE"]``).
    :param failed_statuses: Statuses that fail the task (default: the five failed statuses above).
    :param wake: Wake a SCALED_TO_ZERO deployment.
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("deployment_id", "environment", "model_id", "baseten_conn_id")
    operator_extra_links = (BasetenModelLink(), BasetenDeploymentLink())
    event_keys = ("deployment_id",)

    def __init__(
        self,
        *,
        deployment_id: str | None = None,
        environment: str | None = None,
        model_id: str | None = None,
        target_statuses: Sequence[str] = ("ACTIVE",),
        failed_statuses: Sequence[str] | None = None,
        wake: bool = False,
        baseten_conn_id: str = "baseten_default",
        deferrable: bool | None = None,
        poke_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.client.checks import check_target

        super().__init__(baseten_conn_id=baseten_conn_id, deferrable=deferrable, poke_interval=poke_interval, **kwargs)
        self.environment, self.deployment_id = check_target(
            environment, deployment_id, who="DeploymentStatusSensor", templates_ok=True
        )
        if isinstance(target_statuses, str):
            target_statuses = [target_statuses]
        if not target_statuses:
            raise ValueError("target_statuses must name at least one status.")
        self.model_id = model_id
        self.target_statuses = [str(s).upper() for s in target_statuses]
        self.failed_statuses = None if failed_statuses is None else [str(s).upper() for s in failed_statuses]
        self.wake = wake

    def _hook(self) -> BasetenHook:
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        return BasetenHook(self.baseten_conn_id, **self.hook_params)

    def _failed(self) -> list[str]:
        from airflow_provider_baseten.models import DEPLOYMENT_FAILED_STATES

        failed = self.failed_statuses if self.failed_statuses is not None else sorted(DEPLOYMENT_FAILED_STATES)
        return [s for s in failed if s not in self.target_statuses]

    def make_trigger(self, context: Context, end_time: float | None) -> DeploymentStatusTrigger:
        """Resolve the model and deployment, push the links' XComs, and build the trigger."""
        from airflow_provider_baseten._tasks import deployment_behind, push_deployment, rendered_target, resolve_model
        from airflow_provider_baseten.triggers.baseten import DeploymentStatusTrigger

        target = rendered_target(self)  # before anything is sent
        hook = self._hook()
        try:
            model = resolve_model(hook, self.model_id)
            dep_id = deployment_behind(hook, model, **target)
        finally:
            hook.close()
        if dep_id is None:
            from airflow_provider_baseten.exceptions import BasetenRemoteStateError

            raise BasetenRemoteStateError(f"No deployment serves environment {self.environment} of {model}.")
        push_deployment(context, model, dep_id)
        return DeploymentStatusTrigger(
            conn_id=self.baseten_conn_id,
            model_id=model,
            deployment_id=dep_id,
            target_statuses=self.target_statuses,
            failed_statuses=self._failed(),
            wake=self.wake,
            poll_interval=self.poke_interval,
            end_time=end_time,
            hook_params=self.hook_params,
        )

    def finish(self, event: BasetenTriggerEvent) -> str | None:
        """Fail unless a target status was reached; return the status."""
        super().finish(event)
        return event.get("deployment_status")
