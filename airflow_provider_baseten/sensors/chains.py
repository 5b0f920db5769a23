"""ChainDeploymentSensor: wait for a chain deployment to be ACTIVE, in poke or deferrable mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.sensors._base import BasetenTriggerSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_baseten.triggers.chains import ChainDeploymentTrigger


class ChainDeploymentSensor(BasetenTriggerSensor):
    """Wait until a chain deployment is ACTIVE (every chainlet is).

    Fails at once when it is BUILD_FAILED, DEPLOY_FAILED, FAILED, UNHEALTHY, BUILD_STOPPED or deactivated,
    with the failed chainlets' names and statuses in the message and their last ERROR log lines in the task
    log. Returns the deployment's final status.

    :param chain_id: The chain.
    :param chain_deployment_id: The chain deployment to watch (e.g. the id ``truss chains push`` printed).
    :param error_lines: How many ERROR lines of each failed chainlet to report (default 20).
    :param deferrable: Wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("chain_id", "chain_deployment_id", "baseten_conn_id")
    event_keys = ("chain_deployment_id",)

    def __init__(self, *, chain_id: str, chain_deployment_id: str, error_lines: int = 20, **kwargs: Any) -> None:
        from airflow_provider_baseten.exceptions import BasetenValidationError

        super().__init__(**kwargs)
        for name, value in (("chain_id", chain_id), ("chain_deployment_id", chain_deployment_id)):
            if not value or not isinstance(value, str):
                raise BasetenValidationError(f"{name} is required (a non-empty string), got {value!r}.", field=name)
        self.chain_id = chain_id
        self.chain_deployment_id = chain_deployment_id
        self.error_lines = int(error_lines)

    def make_trigger(self, context: Context, end_time: float | None) -> ChainDeploymentTrigger:
        """The trigger that reads the chain deployment."""
        from airflow_provider_baseten.triggers.chains import ChainDeploymentTrigger

        return ChainDeploymentTrigger(
            conn_id=self.baseten_conn_id,
            chain_id=self.chain_id,
            chain_deployment_id=self.chain_deployment_id,
            error_lines=self.error_lines,
            poll_interval=self.poke_interval,
            end_time=end_time,
            hook_params=self.hook_params,
        )

    def finish(self, event: BasetenTriggerEvent) -> str | None:
        """Fail unless it is ACTIVE; return the status."""
        super().finish(event)
        return event.get("deployment_status")
