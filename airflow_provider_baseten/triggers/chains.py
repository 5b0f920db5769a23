"""Waits on chains: a chain deployment becoming ACTIVE, and a promotion into a chain environment.

Baseten's chain API reports a promotion only through the environment: ``candidate_deployment`` is the
deployment being promoted, ``current_deployment`` what serves. There is no promotion status and no cancel, so
a promotion has ended when the candidate is gone; it succeeded if the deployment then serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.logs import error_window, format_lines
from airflow_provider_baseten.models import DEPLOYMENT_FAILED_STATES
from airflow_provider_baseten.triggers._poll import BasetenPollTrigger, event

if TYPE_CHECKING:
    from airflow_provider_baseten.events import BasetenTriggerEvent
    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.models import ChainDeployment

#: A chain deployment in one of these will not become ACTIVE by itself.
CHAIN_FAILED_STATES = frozenset({*DEPLOYMENT_FAILED_STATES, "INACTIVE", "DEACTIVATING"})
#: What a promoted chain deployment may be once it serves (scaled to zero still serves: it wakes on traffic).
CHAIN_SERVING_STATES = frozenset({"ACTIVE", "SCALED_TO_ZERO"})


async def chainlet_error_tail(hook: BasetenHook, chain_id: str, dep: ChainDeployment, count: int = 20) -> list[str]:
    """The last ``count`` ERROR lines of each failed chainlet of ``dep`` (of every chainlet when none is
    marked failed), each prefixed with the chainlet's name, oldest first.

    Never raises: a failure to read the logs becomes one line saying so (the failure matters more).
    """
    if count <= 0:
        return []
    failed = [c for c in dep.chainlets if c.status in CHAIN_FAILED_STATES] or dep.chainlets
    out: list[str] = []
    for chainlet in failed:
        try:
            lines = await hook.aget_chainlet_logs(
                chain_id,
                dep.id,
                chainlet.id,
                min_level="ERROR",
                direction="desc",
                limit=count,
                start_epoch_millis=error_window(dep.created_at),
            )
        except Exception as exc:  # the caller is already reporting a failure: never raise here
            from airflow_provider_baseten.client.redact import redact

            out.append(f"[{chainlet.name}] (could not fetch its logs: {redact(str(exc))[:300]})")
            continue
        out.extend(f"[{chainlet.name}] {line}" for line in format_lines(lines))
    return out


class ChainDeploymentTrigger(BasetenPollTrigger):
    """Wait for a chain deployment to be ACTIVE; fail when it (one of its chainlets) failed or was deactivated,
    with the failed chainlets' last ERROR log lines.
    """

    def __init__(self, *, chain_id: str, chain_deployment_id: str, error_lines: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chain_id = chain_id
        self.chain_deployment_id = chain_deployment_id
        self.error_lines = int(error_lines)
        self._status: str | None = None

    def _kwargs(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "chain_deployment_id": self.chain_deployment_id,
            "error_lines": self.error_lines,
        }

    def _ids(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "chain_deployment_id": self.chain_deployment_id}

    def _describe(self) -> str:
        return f"chain deployment {self.chain_deployment_id} of chain {self.chain_id} to be ACTIVE"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Read the chain deployment once."""
        dep = await hook.aget_chain_deployment(self.chain_id, self.chain_deployment_id)
        status = dep.status or "UNKNOWN"
        if status != self._status:
            self._status = status
            chainlets = ", ".join(f"{c.name}: {c.status}" for c in dep.chainlets)
            self.log.info("Chain deployment %s is %s (%s).", dep.id, status, chainlets)
        if status == "ACTIVE":
            return event("success", f"Chain deployment {dep.id} is ACTIVE.", deployment_status=status, **self._ids())
        if status in CHAIN_FAILED_STATES:
            errors = await chainlet_error_tail(hook, self.chain_id, dep, self.error_lines)
            failed = [f"{c.name} ({c.status})" for c in dep.chainlets if c.status in CHAIN_FAILED_STATES]
            return event(
                "failed",
                f"Chain deployment {dep.id} is {status}; chainlets: {', '.join(failed) or 'none marked failed'}.",
                deployment_status=status,
                error_lines=errors,
                **self._ids(),
            )
        return None


class ChainPromotionTrigger(BasetenPollTrigger):
    """Wait for a promotion of ``chain_deployment_id`` into a chain environment to finish with it serving.

    A kill or a timeout with ``cancel_on_kill`` / ``cancel_on_timeout`` (set by the operator only for a
    promotion it started) stops the promotion the one way Baseten's chain API allows: it deactivates the
    candidate, and only while it is still the candidate and serves no environment. What serves is never touched.
    """

    def __init__(
        self, *, chain_id: str, environment: str, chain_deployment_id: str, error_lines: int = 20, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.chain_id = chain_id
        self.environment = environment
        self.chain_deployment_id = chain_deployment_id
        self.error_lines = int(error_lines)
        self._phase: tuple[Any, ...] | None = None

    def _kwargs(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "environment": self.environment,
            "chain_deployment_id": self.chain_deployment_id,
            "error_lines": self.error_lines,
        }

    def _ids(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "environment": self.environment,
            "chain_deployment_id": self.chain_deployment_id,
        }

    def _describe(self) -> str:
        return f"promotion of chain deployment {self.chain_deployment_id} into {self.environment}"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Read the chain environment once."""
        env = await hook.aget_chain_environment(self.chain_id, self.environment)
        current, candidate = env.current_deployment, env.candidate_deployment
        phase = (
            current.id if current else None,
            current.status if current else None,
            candidate.id if candidate else None,
            candidate.status if candidate else None,
        )
        if phase != self._phase:
            self._phase = phase
            self.log.info("Chain environment %s: serving %s (%s); candidate %s (%s).", self.environment, *phase)
        if candidate is not None and candidate.id == self.chain_deployment_id:
            return None  # still promoting
        if current is not None and current.id == self.chain_deployment_id:
            status = current.status or "UNKNOWN"
            if status in CHAIN_SERVING_STATES:
                return event(
                    "success",
                    f"Chain deployment {current.id} serves {self.environment} ({status}).",
                    deployment_status=status,
                    **self._ids(),
                )
            if status in CHAIN_FAILED_STATES:
                errors = await chainlet_error_tail(hook, self.chain_id, current, self.error_lines)
                return event("failed", f"Chain deployment {current.id} is {status}.", error_lines=errors, **self._ids())
            return None
        # Neither serving nor the candidate: the promotion ended without it (failed, or replaced by another).
        dep = await hook.aget_chain_deployment(self.chain_id, self.chain_deployment_id)
        errors = await chainlet_error_tail(hook, self.chain_id, dep, self.error_lines)
        return event(
            "failed",
            f"The promotion of chain deployment {dep.id} into {self.environment} ended without it serving "
            f"(it is {dep.status}; {self.environment} serves {current.id if current else 'nothing'}).",
            deployment_status=dep.status,
            error_lines=errors,
            **self._ids(),
        )

    async def kill(self, hook: BasetenHook) -> None:
        """Stop this promotion: deactivate the candidate if it is still this one and serves no environment."""
        env = await hook.aget_chain_environment(self.chain_id, self.environment)
        candidate = env.candidate_deployment
        if candidate is None or candidate.id != self.chain_deployment_id:
            self.log.info(
                "No promotion of %s into %s in progress; nothing to stop.", self.chain_deployment_id, self.environment
            )
            return
        if candidate.environment is not None:
            self.log.warning(
                "Chain deployment %s also serves %s: not deactivating it; the promotion into %s continues.",
                candidate.id,
                candidate.environment,
                self.environment,
            )
            return
        await hook.adeactivate_chain_deployment(self.chain_id, candidate.id)
        self.log.info("Deactivated chain deployment %s: its promotion into %s stops.", candidate.id, self.environment)
