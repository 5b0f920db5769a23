"""Triggers that wait on Baseten from the triggerer, with ``httpx.AsyncClient`` and nothing blocking.

Each trigger's :meth:`~BasetenPollTrigger.check` does one round of polling and returns the terminal event
or ``None``. The same trigger also serves non-deferrable waits (run inline by :func:`wait_inline`) and
sensor pokes (one :meth:`check`), so the three ways of waiting cannot disagree about what "done" means.

Every trigger fires exactly one event: ``{"status": "success" | "failed" | "error" | "timeout",
"message": str, ...ids}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.logs import error_window, format_lines
from airflow_provider_baseten.cost import BudgetGuard, BudgetVerdict
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenError,
    BasetenNotFoundError,
    BasetenUnpricedError,
    BasetenValidationError,
)
from airflow_provider_baseten.loss import LossWatch
from airflow_provider_baseten.models import (
    ASYNC_STATUS_UNKNOWN,
    ASYNC_TERMINAL_STATES,
    DEPLOYMENT_FAILED_STATES,
    PROMOTION_ACTIVE_STATES,
    TRAINING_ACTIVE_STATES,
    TRAINING_FAILED_STATES,
    AsyncRequest,
    LogLine,
)

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks.baseten import BasetenHook

from airflow_provider_baseten.client.ratelimit import STATUS_BUDGET_RPS, StatusBudget, status_budget
from airflow_provider_baseten.events import EVENT_STATUSES, BasetenTriggerEvent
from airflow_provider_baseten.triggers._poll import BasetenPollTrigger, check_once, event, wait_inline

__all__ = [
    "EVENT_STATUSES",
    "STATUS_BUDGET_RPS",
    "AsyncPredictTrigger",
    "BasetenPollTrigger",
    "DeploymentStatusTrigger",
    "PromotionTrigger",
    "StatusBudget",
    "TrainingJobTrigger",
    "check_once",
    "event",
    "status_budget",
    "wait_inline",
]


class AsyncPredictTrigger(BasetenPollTrigger):
    """Wait for async requests to finish.

    ``SUCCEEDED`` succeeds. ``FAILED``, ``EXPIRED``, ``CANCELED`` fail with Baseten's error codes; so does
    ``WEBHOOK_FAILED`` (the output is lost) unless ``fail_on_webhook_failed=False``. Status and cancel calls
    take turns from one process-wide budget per model (:func:`status_budget`), so they stay within
    Baseten's 20 requests/s however many ids and triggers share the triggerer.

    :param request_ids: The requests to watch.
    :param submitted_ids: The subset this task submitted: the only ones a kill may cancel.
    :param chain_id: The requests are a chain's (``async_run_chain``): asked on the chain's host.
    :param max_status_rps: The model's status budget (default: ``[baseten] status_budget_rps``, else 20).
    """

    def __init__(
        self,
        *,
        request_ids: list[str],
        model_id: str | None = None,
        chain_id: str | None = None,
        fail_on_webhook_failed: bool = True,
        submitted_ids: list[str] | None = None,
        max_status_rps: float | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten._conf import status_budget_rps

        super().__init__(**kwargs)
        self.request_ids = list(request_ids)
        self.model_id = model_id
        self.chain_id = chain_id
        self.fail_on_webhook_failed = fail_on_webhook_failed
        self.submitted_ids = list(submitted_ids or [])
        # None: [baseten] status_budget_rps, read where the trigger is built (then serialized with it).
        self.max_status_rps = float(status_budget_rps(STATUS_BUDGET_RPS) if max_status_rps is None else max_status_rps)
        self._states: dict[str, str] = {}
        self._errors: dict[str, list[dict[str, Any]]] = {}

    def _kwargs(self) -> dict[str, Any]:
        return {
            "request_ids": self.request_ids,
            "model_id": self.model_id,
            **({"chain_id": self.chain_id} if self.chain_id else {}),
            "fail_on_webhook_failed": self.fail_on_webhook_failed,
            "submitted_ids": self.submitted_ids,
            "max_status_rps": self.max_status_rps,
        }

    def _ids(self) -> dict[str, Any]:
        return {"request_ids": self.request_ids, "states": dict(self._states)}

    def _target(self) -> dict[str, Any]:
        """Where the requests' status lives: the chain's host, or the model's."""
        return {"chain_id": self.chain_id} if self.chain_id else {"model_id": self.model_id}

    def _describe(self) -> str:
        left = [r for r in self.request_ids if self._states.get(r) not in ASYNC_TERMINAL_STATES]
        return f"{len(left)} of {len(self.request_ids)} async request(s) still running (e.g. {left[:3]})"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Poll every unfinished request once, taking turns from the model's status budget."""
        await self._poll_status(hook, [r for r in self.request_ids if self._states.get(r) not in ASYNC_TERMINAL_STATES])
        return self.verdict()

    async def _poll_status(self, hook: BasetenHook, request_ids: list[str]) -> dict[str, AsyncRequest | None]:
        """Ask Baseten the status of each of ``request_ids`` once, within the model's status budget.

        Records each state (and errors) and returns ``{request_id: the answer}``, ``None`` for a request
        Baseten no longer knows (its status is kept 1 h after completion: finished, outcome unknown).
        """
        budget = status_budget(self.conn_id, self.chain_id or self.model_id, self.max_status_rps)
        answers: dict[str, AsyncRequest | None] = {}
        for rid in request_ids:
            await budget.turn()
            try:
                status = await hook.aget_async_request(rid, **self._target())
            except BasetenNotFoundError:
                self._states[rid] = ASYNC_STATUS_UNKNOWN
                answers[rid] = None
                continue
            answers[rid] = status
            self._states[rid] = status.status
            if status.errors:
                self._errors[rid] = [e.model_dump() for e in status.errors]
        return answers

    def verdict(self) -> BasetenTriggerEvent | None:
        """The event once every request is terminal (``None`` before)."""
        if any(self._states.get(r) not in ASYNC_TERMINAL_STATES for r in self.request_ids):
            return None
        bad_states = {"FAILED", "EXPIRED", "CANCELED"} | ({"WEBHOOK_FAILED"} if self.fail_on_webhook_failed else set())
        bad = {r: s for r, s in self._states.items() if s in bad_states}
        if not bad:
            unknown = [r for r in self.request_ids if self._states.get(r) == ASYNC_STATUS_UNKNOWN]
            gone = f" ({len(unknown)} with an unknown outcome: Baseten no longer keeps their status)" if unknown else ""
            return event(
                "success", f"{len(self.request_ids)} async request(s) finished{gone}.", unknown=unknown, **self._ids()
            )
        details = []
        for rid, state in list(bad.items())[:10]:
            errs = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in self._errors.get(rid, []))
            details.append(f"{rid} {state}" + (f" ({errs})" if errs else ""))
        return event(
            "failed",
            f"{len(bad)} of {len(self.request_ids)} async request(s) did not succeed: " + ", ".join(details),
            errors={r: self._errors.get(r, []) for r in bad},
            **self._ids(),
        )

    async def kill(self, hook: BasetenHook) -> None:
        """Cancel the still-queued requests this task submitted (never anyone else's).

        Each one cancelled is marked ``CANCELED`` in the event's ``states``: an undo cut short by its time
        limit leaves the others' states as they were, so the event tells which are left.
        """
        budget = status_budget(self.conn_id, self.chain_id or self.model_id, self.max_status_rps)
        for rid in self.submitted_ids:
            if rid in self.request_ids and self._states.get(rid) not in ASYNC_TERMINAL_STATES:
                try:
                    await budget.turn()
                    if (await hook.acancel_async_request(rid, **self._target())).canceled:
                        self._states[rid] = "CANCELED"
                except Exception as exc:  # keep cancelling the others
                    self.log.warning("Could not cancel async request %s: %s", rid, exc)


class DeploymentStatusTrigger(BasetenPollTrigger):
    """Wait for a deployment to reach one of ``target_statuses``; fail fast on a failed status.

    :param wake: Wake a ``SCALED_TO_ZERO`` deployment instead of waiting for traffic to do it.
    :param not_found_until: Epoch seconds until which a 404 means "not visible yet" and is waited through
        (a deployment just created may 404 for its first seconds); after it, a 404 is an error.
    """

    def __init__(
        self,
        *,
        model_id: str,
        deployment_id: str,
        target_statuses: list[str] | None = None,
        failed_statuses: list[str] | None = None,
        wake: bool = False,
        error_lines: int = 20,
        not_found_until: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.deployment_id = deployment_id
        self.not_found_until = not_found_until
        self.error_lines = int(error_lines)
        self.target_statuses = list(target_statuses or ["ACTIVE"])
        self.failed_statuses = list(
            failed_statuses if failed_statuses is not None else sorted(DEPLOYMENT_FAILED_STATES)
        )
        self.wake = wake
        self._woken = False

    def _kwargs(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "deployment_id": self.deployment_id,
            "target_statuses": self.target_statuses,
            "failed_statuses": self.failed_statuses,
            "wake": self.wake,
            "error_lines": self.error_lines,
            "not_found_until": self.not_found_until,
        }

    def _ids(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "deployment_id": self.deployment_id}

    def _describe(self) -> str:
        return f"deployment {self.deployment_id} of model {self.model_id} to reach {self.target_statuses}"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Read the deployment's status once (waking it once if asked)."""
        import time

        try:
            dep = await hook.aget_deployment(self.deployment_id, model_id=self.model_id)
        except BasetenNotFoundError:
            if self.not_found_until is None or time.time() >= self.not_found_until:
                raise
            self.log.info("Deployment %s is not visible yet (404); still waiting.", self.deployment_id)
            return None
        status = dep.status or "UNKNOWN"
        self.observe(status)
        ids = {**self._ids(), "deployment_id": dep.id, "deployment_status": status}
        if status in self.target_statuses:
            return event("success", f"Deployment {dep.id} is {status}.", **ids)
        if status in self.failed_statuses:
            errors = await deployment_error_tail(hook, self.model_id, dep.id, dep.created_at, self.error_lines)
            return event("failed", f"Deployment {dep.id} is {status}.", error_lines=errors, **ids)
        if self.wake and status == "SCALED_TO_ZERO" and not self._woken:
            self.log.info("Deployment %s is scaled to zero; waking it.", dep.id)
            await hook.awake(model_id=self.model_id, deployment_id=dep.id)
            self._woken = True
        return None


class PromotionTrigger(BasetenPollTrigger):
    """Wait for a promotion into ``environment`` to finish with ``deployment_id`` serving and ACTIVE.

    A kill cancels the promotion only when ``cancel_on_kill`` (the operator sets it only for a promotion
    it started). It never deactivates or scales down what is serving.
    """

    def __init__(
        self, *, model_id: str, environment: str, deployment_id: str, error_lines: int = 20, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.environment = environment
        self.deployment_id = deployment_id
        self.error_lines = int(error_lines)
        self._phase: tuple[str | None, Any] | None = None

    def _kwargs(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "environment": self.environment,
            "deployment_id": self.deployment_id,
            "error_lines": self.error_lines,
        }

    def _log_phase(self, env: Any) -> None:
        """Log the promotion's status and traffic share whenever either changes."""
        promo = env.in_progress_promotion
        phase = (promo.status, promo.percent_traffic_to_new_version) if promo else (None, None)
        if phase == self._phase:
            return
        self._phase = phase
        if promo is None:
            self.log.info("Promotion into %s: no promotion in progress.", self.environment)
            return
        self.log.info(
            "Promotion of deployment %s into %s: %s, %s%% of traffic on the new deployment.",
            self.deployment_id,
            self.environment,
            promo.status,
            promo.percent_traffic_to_new_version,
        )
        if promo.status == "PAUSED":
            self.log.warning(
                "The promotion into %s is paused; it waits for resume_promotion (or force_roll_forward_promotion / "
                "force_cancel_promotion).",
                self.environment,
            )

    def _ids(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "environment": self.environment, "deployment_id": self.deployment_id}

    def _describe(self) -> str:
        return f"promotion of deployment {self.deployment_id} into {self.environment}"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Read the environment once."""
        env = await hook.aget_environment(self.environment, model_id=self.model_id)
        self._log_phase(env)
        promo = env.in_progress_promotion
        promo_status = promo.status if promo else None
        current = env.current_deployment
        self.observe(
            promo_status or (f"SERVING {current.status}" if current and current.id == self.deployment_id else None),
            percent=promo.percent_traffic_to_new_version if promo else None,
        )
        serving = current is not None and current.id == self.deployment_id
        if promo_status in ("FAILED", "CANCELED") and not serving:
            why = f": {promo.error_message}" if promo and promo.error_message else ""
            errors: list[str] = []
            if promo_status == "FAILED":
                errors = await deployment_error_tail(hook, self.model_id, self.deployment_id, None, self.error_lines)
            return event(
                "failed",
                f"Promotion of deployment {self.deployment_id} into {self.environment} {promo_status}{why}",
                promotion_status=promo_status,
                error_message=promo.error_message if promo else None,
                error_lines=errors,
                **self._ids(),
            )
        if promo_status in PROMOTION_ACTIVE_STATES:
            return None
        if current is None or current.id != self.deployment_id:
            return None
        if current.status in ("ACTIVE", "SCALED_TO_ZERO"):
            return event(
                "success",
                f"Deployment {self.deployment_id} serves {self.environment} ({current.status}).",
                deployment_status=current.status,
                **self._ids(),
            )
        if current.status in DEPLOYMENT_FAILED_STATES:
            errors = await deployment_error_tail(
                hook, self.model_id, self.deployment_id, current.created_at, self.error_lines
            )
            return event(
                "failed", f"Deployment {self.deployment_id} is {current.status}.", error_lines=errors, **self._ids()
            )
        return None

    async def kill(self, hook: BasetenHook) -> None:
        """Cancel this promotion if it is still in progress (not a later promotion of another deployment)."""
        env = await hook.aget_environment(self.environment, model_id=self.model_id)
        promo = env.in_progress_promotion
        candidate = env.candidate_deployment
        if candidate is not None and candidate.id != self.deployment_id:
            self.log.info("The promotion into %s is not of %s; leaving it alone.", self.environment, self.deployment_id)
            return
        if promo and promo.status in ("RELEASING", "RAMPING_UP", "PAUSED"):
            try:
                await hook.acancel_promotion(self.environment, model_id=self.model_id)
            except BasetenError:
                # A cancel whose answer was lost is retried, and the retry finds nothing left to cancel (400):
                # look again before reporting a failed undo.
                after = (await hook.aget_environment(self.environment, model_id=self.model_id)).in_progress_promotion
                if after is not None and after.status in ("RELEASING", "RAMPING_UP", "PAUSED"):
                    raise


class TrainingJobTrigger(BasetenPollTrigger):
    """Wait for a training job: COMPLETED succeeds; FAILED, DEPLOY_FAILED, STOPPED, EXPIRED fail.

    An unknown status is logged and waited on (bounded by the timeout). On failure the event carries the
    job's ``error_message`` and the last ``log_tail`` log lines.

    :param loss_gate: A :meth:`~airflow_provider_baseten.loss.LossWatch.spec`: the training-quality gate reads
        the job's loss from its logs, and a stop rule that fires fails the wait (after stopping the job, if
        ``owns_job``).
    :param budget: A :class:`~airflow_provider_baseten.cost.BudgetGuard`'s kwargs: at each poll the spend is
        projected to the next poll, and past a cap the wait fails (event key ``budget``) after stopping the
        job, if ``owns_job``.
    :param owns_job: This task started the job, so a guard that fires (loss gate or budget) stops it. A job the
        task only watches is never stopped.
    """

    def __init__(
        self,
        *,
        training_project_id: str,
        training_job_id: str,
        log_tail: int = 20,
        loss_gate: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
        owns_job: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training_project_id = training_project_id
        self.training_job_id = training_job_id
        self.log_tail = int(log_tail)
        # One home for "this task started the job": both guards read it. (A loss gate serialized before it had
        # one carries its own stop_job: read once here, so a trigger deferred then still stops its job.)
        self.owns_job = owns_job or bool((loss_gate or {}).get("stop_job"))
        self.loss_gate = LossWatch.from_spec(training_project_id, training_job_id, loss_gate, stop_job=self.owns_job)
        self.budget = BudgetGuard(**budget) if budget else None
        self._unknown_logged: set[str] = set()

    def _kwargs(self) -> dict[str, Any]:
        return {
            "training_project_id": self.training_project_id,
            "training_job_id": self.training_job_id,
            "log_tail": self.log_tail,
            **({"loss_gate": self.loss_gate.spec()} if self.loss_gate else {}),
            **({"budget": self.budget.as_kwargs()} if self.budget else {}),
            **({"owns_job": True} if self.owns_job else {}),
        }

    def _ids(self) -> dict[str, Any]:
        ids: dict[str, Any] = {"training_project_id": self.training_project_id, "training_job_id": self.training_job_id}
        if self.loss_gate is not None:  # every event of a gated wait carries the loss summary (small: no series)
            ids["loss"] = self.loss_gate.tracker.summary()
        return ids

    def _describe(self) -> str:
        return f"training job {self.training_job_id} in project {self.training_project_id}"

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """Read the job once."""
        job = await hook.aget_training_job(self.training_project_id, self.training_job_id)
        status = job.current_status or "UNKNOWN"
        self.observe(status)
        gated = self.loss_gate and await self.loss_gate.acheck(hook, job)  # stop_on: reads the new log lines
        if gated:
            return event("failed", **gated, **self._ids())
        if status == "TRAINING_JOB_COMPLETED":
            return event("success", f"Training job {job.id} completed.", job_status=status, **self._ids())
        if status in TRAINING_FAILED_STATES:
            tail: list[str] = []
            errors: list[str] = []
            if self.log_tail > 0:
                ids = (self.training_project_id, self.training_job_id)
                try:  # the newest lines, then the newest ERROR lines (they may be older than the tail)
                    lines = await hook.aget_training_job_logs(
                        *ids, direction="desc", limit=min(max(self.log_tail, 1), 1000)
                    )
                    tail = [line.message for line in reversed(lines)]
                    bad = await hook.aget_training_job_logs(*ids, direction="desc", limit=20, min_level="ERROR")
                    errors = format_lines(list[LogLine](bad))  # format_lines takes a list[LogLine]
                except Exception as exc:  # the failure matters more than its logs
                    tail = [f"(could not fetch logs: {exc})"]
            why = f": {job.error_message}" if job.error_message else ""
            return event(
                "failed",
                f"Training job {job.id} ended {status}{why}",
                job_status=status,
                error_message=job.error_message,
                log_tail=tail,
                error_lines=errors,
                **self._ids(),
            )
        if self.budget is not None:
            try:
                over = await self.budget.acheck_job(hook, job, self.poll_interval)
            except BasetenUnpricedError as exc:  # no price for the job's instance type, in a fresh price list
                return await self._unpriced(hook, exc.message, status)
            except (BasetenValidationError, BasetenAuthError, BasetenNotFoundError) as exc:
                # Refused, not a blip (a 5xx or a timeout is an error of this wait, and its retry asks again).
                why = f"the price list cannot be read ({type(exc).__name__}: {exc.message})."
                return await self._unpriced(hook, why, status)
            if over is not None:
                return await self._over_budget(hook, over, status)
        if status not in TRAINING_ACTIVE_STATES and status not in self._unknown_logged:
            self._unknown_logged.add(status)
            self.log.warning("Training job %s has unknown status %s; still waiting.", job.id, status)
        return None

    async def _unpriced(self, hook: BasetenHook, why: str, status: str) -> BasetenTriggerEvent:
        """A dollar cap that cannot be priced cannot be enforced: fail closed, as if the cap were hit (a retry
        would find the same price list)."""
        assert self.budget is not None and self.budget.max_cost_usd is not None  # only a USD cap reads a price
        cap = self.budget.max_cost_usd
        what = f"max_cost_usd={cap:g} cannot be enforced: {why} Use max_gpu_minutes for an instance type Baseten does not price"
        return await self._budget_failed(hook, what, {"cap": cap, "spent": None, "unit": "usd"}, status)

    async def _over_budget(self, hook: BasetenHook, over: BudgetVerdict, status: str) -> BasetenTriggerEvent:
        """The cap would be passed at the next poll: fail with the cap and the spend."""
        return await self._budget_failed(hook, over.describe(), over.as_event(stopped=self.owns_job), status)

    async def _budget_failed(
        self, hook: BasetenHook, what: str, budget: dict[str, Any], status: str
    ) -> BasetenTriggerEvent:
        """Stop the job (only one this task started) and fail with what the guard found (event key ``budget``)."""
        if self.owns_job:
            await hook.astop_training_job(self.training_project_id, self.training_job_id)
            done = "stopped the job"
        else:
            done = "did NOT stop the job: this task did not start it"
        return event(
            "failed",
            f"Budget guard: training job {self.training_job_id}: {what}; {done}.",
            job_status="TRAINING_JOB_STOPPED" if self.owns_job else status,
            budget={**budget, "stopped": self.owns_job},
            **self._ids(),
        )

    async def kill(self, hook: BasetenHook) -> None:
        """Stop the job (the operator sets ``cancel_on_kill`` only for a job it started)."""
        await hook.astop_training_job(self.training_project_id, self.training_job_id)


async def deployment_error_tail(
    hook: BasetenHook, model_id: str, deployment_id: str, created_at: str | None = None, count: int = 20
) -> list[str]:
    """The last ``count`` ERROR lines of a deployment's logs, oldest first, formatted for a task log.

    Never raises: a failure to read the logs becomes one line saying so (the failure matters more).
    """
    if count <= 0:
        return []
    try:
        lines = [
            line
            async for line in hook.aiter_deployment_logs(
                deployment_id,
                model_id=model_id,
                min_level="ERROR",
                start_epoch_millis=error_window(created_at),
                limit=count,
                page_size=min(1000, max(count, 100)),
            )
        ]
    except Exception as exc:  # the caller is already reporting a failure: never raise here
        from airflow_provider_baseten.client.redact import redact

        return [f"(could not fetch the deployment's logs: {redact(str(exc))[:300]})"]
    return format_lines(lines)
