"""Chain operators: promote a chain deployment into a chain environment, and change chainlets' autoscaling.

Chains get the train-then-promote treatment models have (:mod:`airflow_provider_baseten.operators.deployment`): the promotion is careful about
ownership (it stops only a promotion this task started, and never touches what serves) and a retry picks up
the promotion an earlier try started instead of promoting again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten import xcom
from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.operators._base import BasetenBaseOperator, BasetenWaitingOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The ``task_state_store`` key of "this task asked Baseten for this promotion" (stable: a rename breaks
#: retries in flight).
_MARKER = "baseten_chain_promotion"


class PromoteChainOperator(BasetenWaitingOperator):
    """Promote a chain deployment into a chain environment and wait until it serves.

    Phases, each logged: read the environment; promote (unless the deployment already serves it, or is already
    being promoted into it); wait while it is the environment's candidate; succeed once it serves and is
    ACTIVE (or scaled to zero). It fails when the promotion ends without it serving, with its chainlets' last
    ERROR log lines.

    Durable on retry: a retry that finds the deployment already being promoted into the environment waits for
    that promotion instead of sending another, and one that finds it serving succeeds as a no-op. A promote
    call whose answer was lost (the server acted, the client saw a 5xx) is retried once and refused with
    "already in progress": the task then continues with the promotion that exists. On Airflow 3.3+ a marker
    in ``task_state_store`` tells a retry that the promotion it finds is this task's, so its timeout may stop it.

    Stopping a promotion: Baseten's chain API has no cancel. With ``cancel_on_kill`` / ``cancel_on_timeout``,
    a promotion this task started is stopped by deactivating the candidate deployment, and only while it is
    still the candidate and serves no other environment. At a deadline with a retry left the promotion is
    kept for the retry (which reconnects to it).

    Returns the chain deployment id. Asset event: by default the task's outlet is
    ``baseten://chain/{chain_id}/environments/{environment}``
    (:func:`~airflow_provider_baseten.assets.chain_environment_asset`), or
    ``AssetAlias("baseten:chain_environment")`` when the chain or environment is templated. Its extra is a model
    promotion's (``deployment_id``, ``previous_deployment_id``, ``environment``, ``promoted_at``, ``noop``,
    ``serving``) with ``chain_id`` in place of ``model_id``. Pass ``outlets=[]`` for no event.

    :param chain_id: The chain.
    :param chain_deployment_id: The chain deployment to promote.
    :param environment: The chain environment (default ``"production"``).
    :param scale_down_previous: Scale down what the environment served before (default True).
    :param wait_for_completion: Wait until it serves (default True); otherwise the event says ``serving: false``.
    """

    template_fields: Sequence[str] = ("chain_id", "chain_deployment_id", "environment", "baseten_conn_id")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        chain_id: str,
        chain_deployment_id: str,
        environment: str = "production",
        scale_down_previous: bool = True,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.assets import CHAIN_ENVIRONMENT_ALIAS, chain_environment_asset, default_outlets
        from airflow_provider_baseten.exceptions import BasetenValidationError

        for name, value in (("chain_id", chain_id), ("chain_deployment_id", chain_deployment_id)):
            if not value or not isinstance(value, str):
                raise BasetenValidationError(f"{name} is required (a non-empty string), got {value!r}.", field=name)
        if not isinstance(scale_down_previous, bool):
            raise BasetenValidationError(
                f"scale_down_previous must be true or false, got {scale_down_previous!r}.", field="scale_down_previous"
            )
        env = environment or "production"
        default_outlets(kwargs, (chain_id, env), chain_environment_asset, CHAIN_ENVIRONMENT_ALIAS)
        super().__init__(**kwargs)
        self.chain_id = chain_id
        self.chain_deployment_id = chain_deployment_id
        self.environment = env
        self.scale_down_previous = scale_down_previous
        self._owned = False  # this task's promotion (started by this try, or by an earlier one per the marker)
        self._done = False

    @property
    def retry_reconnects(self) -> bool:
        """A retry waits for the promotion it finds in progress instead of promoting again."""
        return True

    def execute(self, context: Context) -> str:
        """Promote (unless already serving or promoting), then wait if asked."""
        from airflow_provider_baseten.exceptions import BasetenValidationError
        from airflow_provider_baseten.operators._durable import CreateMarker
        from airflow_provider_baseten.triggers.chains import ChainPromotionTrigger

        hook, chain, env_name, target = self.hook, self.chain_id, self.environment, self.chain_deployment_id
        marker = CreateMarker(context, _MARKER)
        env = hook.get_chain_environment(chain, env_name)
        current, candidate = env.current_deployment, env.candidate_deployment
        self.log.info(
            "Chain %s environment %s serves %s; candidate %s.",
            chain,
            env_name,
            current.id if current else None,
            candidate.id if candidate else None,
        )
        previous = current.id if current is not None else None
        if previous == target and candidate is None:
            self.log.info("Chain deployment %s already serves %s; nothing to promote.", target, env_name)
            marker.clear()
            self._emit(context, target, previous, noop=True)
            return target
        context["ti"].xcom_push(key=xcom.PREVIOUS_DEPLOYMENT_ID, value=previous)
        earlier = marker.earlier()
        owned = bool(earlier and target in earlier.get("before", []))
        if candidate is not None and candidate.id == target:
            self.log.info(
                "A promotion of chain deployment %s into %s is already in progress (%s); waiting for it instead "
                "of promoting again.",
                target,
                env_name,
                "started by an earlier try of this task" if owned else "not started by this task: it is not stopped",
            )
        else:
            self.log.info(
                "Promoting chain deployment %s of chain %s into %s (scale_down_previous=%s).",
                target,
                chain,
                env_name,
                self.scale_down_previous,
            )
            marker.start([target])
            try:
                hook.promote_to_chain_environment(chain, env_name, target, scale_down_previous=self.scale_down_previous)
            except BasetenValidationError:
                # A retry after an answer lost in transit is refused ("already in progress" / "already the
                # deployment"): the promotion exists, and it is this task's.
                after = hook.get_chain_environment(chain, env_name)
                ids = {d.id for d in (after.current_deployment, after.candidate_deployment) if d is not None}
                if target not in ids:
                    marker.clear()
                    raise
                self.log.warning(
                    "Baseten refused a retried promote call, but chain deployment %s is now promoted into %s: an "
                    "earlier attempt went through (its answer was lost). Continuing with that promotion.",
                    target,
                    env_name,
                )
            owned = True
            self.log.info("Promotion of chain deployment %s into %s started.", target, env_name)
        self._owned = owned
        if not self.wait_for_completion:
            self._emit(context, target, previous, serving=False)
            return target
        trigger = ChainPromotionTrigger(
            conn_id=self.baseten_conn_id,
            chain_id=chain,
            environment=env_name,
            chain_deployment_id=target,
            poll_interval=self.poke_interval,
            end_time=self.end_time(context),
            cancel_on_kill=self.cancel_on_kill and owned,
            cancel_on_timeout=self.undo_on_timeout(context) and owned,
            hook_params=self.hook_params,
        )
        return cast("str", self.wait(context, trigger))

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> str:
        """Fail unless the deployment serves the environment; clear the retry marker; emit; return its id."""
        from airflow_provider_baseten.operators._durable import CreateMarker

        self._done = True
        if event.get("status") in ("success", "failed"):
            CreateMarker(context, _MARKER).clear()  # it ended: a retry must not take it for its own
        super().on_event(context, event)
        ti = context["ti"]
        previous = ti.xcom_pull(task_ids=ti.task_id, key=xcom.PREVIOUS_DEPLOYMENT_ID, map_indexes=ti.map_index)
        self._emit(context, self.chain_deployment_id, previous)
        return self.chain_deployment_id

    def on_kill(self) -> None:
        """Stop this task's promotion if it is still in progress (``cancel_on_kill``; a non-deferred wait).

        As at a deadline: the candidate is deactivated only while it is still this promotion's candidate and
        serves no environment; nothing that serves is touched. A deferred wait is stopped by its trigger.
        """
        if not (self.cancel_on_kill and self._owned and not self._done):
            return
        import asyncio

        from airflow_provider_baseten.triggers.chains import ChainPromotionTrigger

        trigger = ChainPromotionTrigger(
            conn_id=self.baseten_conn_id,
            chain_id=self.chain_id,
            environment=self.environment,
            chain_deployment_id=self.chain_deployment_id,
            cancel_on_kill=True,
            hook_params=self.hook_params,
        )
        try:
            asyncio.run(trigger.undo())
        except Exception as exc:  # on_kill must not raise
            self.log.warning("Could not stop the promotion into %s: %s", self.environment, exc)

    def _emit(self, context: Context, deployment_id: str, previous: Any, **kw: Any) -> None:
        from airflow_provider_baseten.assets import emit_chain_environment_event

        extra = emit_chain_environment_event(
            context,
            chain_id=self.chain_id,
            environment=self.environment,
            deployment_id=deployment_id,
            previous_deployment_id=previous,
            **kw,
        )
        self.log.info("Asset event of chain %s environment %s: %s", self.chain_id, self.environment, extra)


class UpdateChainAutoscalingOperator(BasetenBaseOperator):
    """Change chainlets' autoscaling settings in a chain environment; only the fields given change.

    Every setting is range-checked before any request is sent (as
    :class:`~airflow_provider_baseten.operators.deployment.UpdateAutoscalingOperator`'s), and the error names
    the chainlet. Returns Baseten's answer ``{"status": ACCEPTED | QUEUED | UNCHANGED, "message": ...}``.

    :param chain_id: The chain.
    :param autoscaling_settings: Per chainlet name, the fields to change, e.g.
        ``{"Retriever": {"min_replica": 1, "max_replica": 4}}``. Templated.
    :param environment: The chain environment (default ``"production"``).
    """

    template_fields: Sequence[str] = ("chain_id", "autoscaling_settings", "environment", "baseten_conn_id")
    template_fields_renderers = {"autoscaling_settings": "json"}

    def __init__(
        self,
        *,
        chain_id: str,
        autoscaling_settings: dict[str, dict[str, Any]],
        environment: str = "production",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.chain_id = chain_id
        self.autoscaling_settings = autoscaling_settings
        self.environment = environment or "production"

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, send, log and return ``{"status", "message"}``."""
        from airflow_provider_baseten.hooks._chains import update_chainlet_autoscaling_settings

        # Built (every chainlet's settings range-checked) before anything touches the network.
        call = update_chainlet_autoscaling_settings(
            self.hook, self.chain_id, self.environment, self.autoscaling_settings
        )
        body = call.body
        result = self.hook.update_chainlet_autoscaling_settings(
            self.chain_id, self.environment, self.autoscaling_settings
        )
        self.log.info(
            "Chainlet autoscaling update of chain %s environment %s: %s%s (sent %s)",
            self.chain_id,
            self.environment,
            result.status,
            f" ({result.message})" if result.message else "",
            body,
        )
        return {"status": result.status, "message": result.message}
