"""Event triggers for ``AssetWatcher``: schedule a DAG when something changes on Baseten.

- :class:`EnvironmentChangedTrigger`: environment E (or any environment) of model M now serves a different
  deployment;
- :class:`DeploymentActiveTrigger`: a deployment of model M became ACTIVE;
- :class:`TrainingJobFinishedTrigger`: a training job in project P finished (COMPLETED, or any end state).

Use one in an asset's watchers, and schedule the consumer DAG on that asset::

    from airflow.sdk import DAG, AssetWatcher
    from airflow_provider_baseten.assets import environment_asset
    from airflow_provider_baseten.triggers.watchers import EnvironmentChangedTrigger

    production = environment_asset("abcd1234", "production")
    production.watchers = [
        AssetWatcher(name="prod_changed", trigger=EnvironmentChangedTrigger(model_id="abcd1234", environment="production"))
    ]
    with DAG("evaluate_new_production", schedule=[production]): ...

They are **edge-triggered**: each polls, compares with a cursor (what it saw last), and fires one event per
change, never on a state that stays true. The first poll only seeds the cursor, so starting a watcher
fires nothing. The event payload (``triggering_asset_events[asset][0].extra["payload"]``) names the change,
e.g. ``{"kind": "environment_changed", "deployment_id": ..., "previous_deployment_id": ...}``.

Where the cursor lives:

- Airflow 3.3+: in the asset state store (``self.asset_state_store``, injected by the triggerer), so a
  triggerer restart neither misses a change that happened while it was down nor repeats one already
  fired. The event is yielded before the cursor is saved: a crash in that instant repeats the event
  rather than losing it.
- Airflow 3.1-3.2 (no asset state store), or a store that cannot be used: in the triggerer's memory, per
  process. A restarted triggerer seeds again: it never repeats an event, but a change made while no
  triggerer ran is not reported. A warning says so once.

Polling: every ``poll_interval`` seconds (default 30), one list/get call, taking its turn from the
process-wide status budget of the model or project (:func:`~airflow_provider_baseten.client.ratelimit.status_budget`,
``max_status_rps``: by default ``[baseten] status_budget_rps``, the budget the other triggers use).
A watcher compares snapshots, not histories: a change undone between two polls (production A -> B -> A)
is not seen and fires nothing; poll more often if such flaps matter.
Errors (Baseten down, 5xx after retries) are logged and polling goes on: a watcher has no end state.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_baseten.assets import _check_id
from airflow_provider_baseten.client.checks import positive_number
from airflow_provider_baseten.client.ratelimit import STATUS_BUDGET_RPS, status_budget
from airflow_provider_baseten.models import TRAINING_TERMINAL_STATES

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks.baseten import BasetenHook

__all__ = ["DeploymentActiveTrigger", "EnvironmentChangedTrigger", "TrainingJobFinishedTrigger", "WatcherTrigger"]

Snapshot = dict[str, "str | None"]

#: Cursors kept in memory when there is no asset state store (per triggerer process; keyed like the store).
_MEMORY: dict[str, Snapshot] = {}
#: A deployment in one of these states already serves (waking, scaling): reaching ACTIVE again is no news.
_SERVING = frozenset({"ACTIVE", "SCALED_TO_ZERO", "WAKING_UP", "UPDATING"})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class WatcherTrigger(BaseEventTrigger):
    """Base of the watchers: poll a snapshot, diff it with the cursor, fire one event per change.

    :param conn_id: The Baseten connection (never a secret in the kwargs: they are stored and hashed).
    :param poll_interval: Seconds between polls.
    :param max_status_rps: The status budget the polls share with the provider's other triggers (default:
        ``[baseten] status_budget_rps``, else 20), read where the watcher is built and serialized with it.
    """

    def __init__(
        self, *, conn_id: str = "baseten_default", poll_interval: float = 30.0, max_status_rps: float | None = None
    ) -> None:
        from airflow_provider_baseten._conf import status_budget_rps

        super().__init__()  # type: ignore[no-untyped-call]
        if not conn_id:
            raise ValueError("conn_id is required.")
        self.poll_interval = positive_number("poll_interval", poll_interval, what="a positive number of seconds")
        if max_status_rps is None:
            max_status_rps = status_budget_rps(STATUS_BUDGET_RPS)
        else:
            max_status_rps = positive_number(
                "max_status_rps", max_status_rps, what="a positive number of calls per second", also="None"
            )
        self.conn_id = conn_id
        self.max_status_rps = float(max_status_rps)
        self._warned_memory = False

    # -- what subclasses define -------------------------------------------------------------------------
    def source(self) -> dict[str, Any]:
        """What is watched (ids only): the trigger's identity for its cursor, without ``poll_interval``."""
        raise NotImplementedError

    def budget_key(self) -> str | None:
        """The status budget the polls take turns from (a model id, or ``training_project:<id>``)."""
        raise NotImplementedError

    async def snapshot(self, hook: BasetenHook) -> Snapshot:
        """One poll: ``{key: value}`` (e.g. environment name -> deployment id)."""
        raise NotImplementedError

    def changes(self, before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
        """The event payloads for what changed from ``before`` to ``after`` (empty: nothing to report)."""
        raise NotImplementedError

    # -- the loop ---------------------------------------------------------------------------------------
    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-primitive kwargs (deterministic: identical watchers share one trigger row).

        The cursor is keyed by the source alone (:attr:`cursor_key`): the same watcher with another
        ``poll_interval`` or budget is another trigger row, but it reads and writes the same cursor.
        """
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.source(),
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "max_status_rps": self.max_status_rps,
            },
        )

    @property
    def cursor_key(self) -> str:
        """The key of this watcher's cursor: a hash of its class and source (not of ``poll_interval``)."""
        ident = json.dumps([type(self).__qualname__, self.conn_id, self.source()], sort_keys=True)
        return "baseten-watch-" + hashlib.sha256(ident.encode()).hexdigest()[:24]

    def _accessors(self) -> list[Any]:
        """The asset state store accessors of this watcher's assets (empty: keep the cursor in memory)."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        # One trigger row can watch several assets (identical watchers merge): keep the cursor on each.
        found = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
        return found or [store]

    def _fallback(self, why: str) -> None:
        if not self._warned_memory:
            self._warned_memory = True
            self.log.warning(
                "%s: keeping the cursor in memory (%s). A triggerer restart seeds it again: nothing is repeated, "
                "but a change made while no triggerer runs is not reported.",
                type(self).__name__,
                why,
            )

    async def load_cursor(self) -> Snapshot | None:
        """The saved cursor (``None``: never seeded)."""
        accessors = self._accessors()
        if not accessors:
            self._fallback("no asset state store before Airflow 3.3")
        for acc in accessors:
            try:
                value = await acc.aget(self.cursor_key)
            except Exception as exc:  # the store may refuse (several assets, an old server): use memory
                self._fallback(f"the asset state store answered {type(exc).__name__}: {exc}")
                break
            if isinstance(value, dict):
                return {str(k): (None if v is None else str(v)) for k, v in value.items()}
        return _MEMORY.get(self.cursor_key)

    async def save_cursor(self, cursor: Snapshot) -> None:
        """Keep ``cursor`` in memory and in the asset state store (when there is one)."""
        _MEMORY[self.cursor_key] = dict(cursor)
        for acc in self._accessors():
            try:
                await acc.aset(self.cursor_key, dict(cursor))
            except Exception as exc:
                self._fallback(f"the asset state store answered {type(exc).__name__}: {exc}")
                return

    def make_hook(self) -> BasetenHook:
        """The hook this watcher polls with (one per :meth:`run`; its client is closed when the run ends)."""
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        return BasetenHook(self.conn_id)

    async def poll(self, hook: BasetenHook) -> Snapshot:
        """One snapshot, after this watcher's turn from the status budget."""
        await status_budget(self.conn_id, self.budget_key(), self.max_status_rps).turn()
        return await self.snapshot(hook)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield one event per change. The first poll seeds the cursor and fires nothing."""
        from airflow_provider_baseten.exceptions import BasetenError

        hook = self.make_hook()
        cursor = await self.load_cursor()
        last_error: str | None = None
        try:
            while True:
                try:
                    now = await self.poll(hook)
                except BasetenError as exc:  # keep watching: an outage is not a change
                    if str(exc) != last_error:
                        self.log.warning("%s: poll failed, will retry: %s", type(self).__name__, exc)
                    last_error = str(exc)
                    await asyncio.sleep(self.poll_interval)
                    continue
                last_error = None
                if cursor is None:
                    self.log.info(
                        "%s: seeded the cursor with %d item(s); firing nothing.", type(self).__name__, len(now)
                    )
                    await self.save_cursor(now)
                elif now != cursor:
                    for payload in self.changes(cursor, now):
                        self.log.info("%s: %s", type(self).__name__, payload)
                        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]
                    await self.save_cursor(now)
                cursor = now
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()


def _serving_changes(ids: dict[str, Any], before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """One payload (``ids`` plus the environment and both deployment ids) per environment of ``after`` that
    serves another deployment than in ``before``; one that stopped serving anything is not news."""
    return [
        {
            **ids,
            "environment": name,
            "deployment_id": dep,
            "previous_deployment_id": before.get(name),
            "observed_at": _now(),
        }
        for name, dep in sorted(after.items())
        if dep is not None and dep != before.get(name)
    ]


class EnvironmentChangedTrigger(WatcherTrigger):
    """Fires when ``environment`` of ``model_id`` (or, with ``environment=None``, any of its environments) starts
    serving a different deployment.

    Payload: ``{"kind": "environment_changed", "model_id", "environment", "deployment_id",
    "previous_deployment_id", "observed_at"}``. An environment that stops serving anything fires nothing;
    one that is created already serving a deployment fires (``previous_deployment_id`` None).

    :param model_id: The model.
    :param environment: An environment name (``"production"``), or ``None`` for every environment.
    """

    def __init__(self, *, model_id: str, environment: str | None = "production", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not model_id:
            raise ValueError("EnvironmentChangedTrigger needs model_id.")
        self.model_id = _check_id("model id", model_id, "a watcher")
        self.environment = None if environment is None else _check_id("environment", environment, "a watcher")

    def source(self) -> dict[str, Any]:
        """The model and environment."""
        return {"model_id": self.model_id, "environment": self.environment}

    def budget_key(self) -> str | None:
        """The model's status budget."""
        return self.model_id

    async def snapshot(self, hook: BasetenHook) -> Snapshot:
        """Environment name -> the id of the deployment it serves."""
        if self.environment is not None:
            env = await hook.aget_environment(self.environment, model_id=self.model_id)
            envs = [env]
        else:
            envs = await hook.alist_environments(model_id=self.model_id)
        return {e.name: (e.current_deployment.id if e.current_deployment else None) for e in envs}

    def changes(self, before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
        """One payload per environment now serving another deployment."""
        return _serving_changes({"kind": "environment_changed", "model_id": self.model_id}, before, after)


class ChainEnvironmentChangedTrigger(WatcherTrigger):
    """Fires when ``environment`` of chain ``chain_id`` (or, with ``environment=None``, any of its environments)
    starts serving a different chain deployment: :class:`EnvironmentChangedTrigger` for chains.

    Payload: ``{"kind": "chain_environment_changed", "chain_id", "environment", "deployment_id",
    "previous_deployment_id", "observed_at"}`` (the deployment ids are chain deployment ids).

    :param chain_id: The chain.
    :param environment: A chain environment name (``"production"``), or ``None`` for every environment.
    """

    def __init__(self, *, chain_id: str, environment: str | None = "production", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not chain_id:
            raise ValueError("ChainEnvironmentChangedTrigger needs chain_id.")
        self.chain_id = _check_id("chain id", chain_id, "a watcher")
        self.environment = None if environment is None else _check_id("environment", environment, "a watcher")

    def source(self) -> dict[str, Any]:
        """The chain and environment."""
        return {"chain_id": self.chain_id, "environment": self.environment}

    def budget_key(self) -> str | None:
        """The chain's status budget (its management calls share nothing with a model's)."""
        return f"chain:{self.chain_id}"

    async def snapshot(self, hook: BasetenHook) -> Snapshot:
        """Environment name -> the id of the chain deployment it serves."""
        if self.environment is not None:
            envs = [await hook.aget_chain_environment(self.chain_id, self.environment)]
        else:
            envs = await hook.alist_chain_environments(self.chain_id)
        return {e.name: (e.current_deployment.id if e.current_deployment else None) for e in envs}

    def changes(self, before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
        """One payload per environment now serving another chain deployment."""
        return _serving_changes({"kind": "chain_environment_changed", "chain_id": self.chain_id}, before, after)


class DeploymentActiveTrigger(WatcherTrigger):
    """Fires when a deployment of ``model_id`` becomes ACTIVE (built and deployed, or activated again).

    Waking from scale-to-zero and autoscaling updates are not news: a deployment that was ACTIVE,
    SCALED_TO_ZERO, WAKING_UP or UPDATING and is ACTIVE now fires nothing.

    Payload: ``{"kind": "deployment_active", "model_id", "deployment_id", "previous_status", "observed_at"}``.
    """

    def __init__(self, *, model_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not model_id:
            raise ValueError("DeploymentActiveTrigger needs model_id.")
        self.model_id = _check_id("model id", model_id, "a watcher")

    def source(self) -> dict[str, Any]:
        """The model."""
        return {"model_id": self.model_id}

    def budget_key(self) -> str | None:
        """The model's status budget."""
        return self.model_id

    async def snapshot(self, hook: BasetenHook) -> Snapshot:
        """Deployment id -> status."""
        return {d.id: d.status for d in await hook.alist_deployments(model_id=self.model_id)}

    def changes(self, before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
        """One payload per deployment newly ACTIVE."""
        return [
            {
                "kind": "deployment_active",
                "model_id": self.model_id,
                "deployment_id": dep,
                "previous_status": before.get(dep),
                "observed_at": _now(),
            }
            for dep, status in sorted(after.items())
            if status == "ACTIVE" and before.get(dep) not in _SERVING
        ]


class TrainingJobFinishedTrigger(WatcherTrigger):
    """Fires when a training job in ``training_project_id`` reaches one of ``statuses``.

    Payload: ``{"kind": "training_job_finished", "training_project_id", "training_job_id", "status",
    "previous_status", "observed_at"}``.

    :param training_project_id: The project.
    :param statuses: The end states to report (default: every end state, ``TRAINING_JOB_COMPLETED`` and the
        failed ones; pass ``["TRAINING_JOB_COMPLETED"]`` for successes only).
    """

    def __init__(self, *, training_project_id: str, statuses: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not training_project_id:
            raise ValueError("TrainingJobFinishedTrigger needs training_project_id.")
        wanted = sorted(statuses) if statuses is not None else sorted(TRAINING_TERMINAL_STATES)
        unknown = [s for s in wanted if s not in TRAINING_TERMINAL_STATES]
        if unknown or not wanted:
            raise ValueError(
                f"statuses must be end states of a training job, one or more of {sorted(TRAINING_TERMINAL_STATES)}; "
                f"got {statuses!r}."
            )
        self.training_project_id = _check_id("training project id", training_project_id, "a watcher")
        self.statuses = wanted

    def source(self) -> dict[str, Any]:
        """The project and the reported end states."""
        return {"training_project_id": self.training_project_id, "statuses": self.statuses}

    def budget_key(self) -> str | None:
        """The project's status budget."""
        return f"training_project:{self.training_project_id}"

    async def snapshot(self, hook: BasetenHook) -> Snapshot:
        """Job id -> status."""
        return {j.id: j.current_status for j in await hook.alist_training_jobs(self.training_project_id)}

    def changes(self, before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
        """One payload per job that newly reached a reported end state."""
        return [
            {
                "kind": "training_job_finished",
                "training_project_id": self.training_project_id,
                "training_job_id": job,
                "status": status,
                "previous_status": before.get(job),
                "observed_at": _now(),
            }
            for job, status in sorted(after.items())
            if status in self.statuses and before.get(job) != status
        ]
