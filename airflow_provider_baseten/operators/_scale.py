"""``scale_for_batch``: hold a deployment's ``min_replica`` up for the length of a batch, then give it back.

The rule (overlapping batches on one deployment):

* Every batch that asks holds a **lease** ``{lease id: min_replica}`` in one shared record per deployment,
  an Airflow Variable ``baseten_scale_leases.<model_id>.<deployment_id>`` that every worker reads. The lease
  id is the task instance (``dag/run/task/map_index``), so a retried task finds and reuses its own lease.
* The first lease records the deployment's own ``min_replica`` and ``max_replica`` as the **baseline**, read
  from Baseten once it finds no record (so after a last batch out has restored and deleted it). While leases are held, ``min_replica`` is ``max(baseline, every lease)``; a batch only raises,
  never lowers it.
* Releasing a lease sets ``min_replica`` to ``max(baseline, the leases left)``: the last batch out restores the
  baseline, and only once Baseten accepted that does it delete the record (a release killed or failing in
  between leaves the baseline recorded; the next acquire on the deployment, a retry or another batch, then
  converges to the baseline and its own lease). A batch never restores a value it did not set: each of
  ``min_replica`` and ``max_replica`` is restored only while Baseten's current value is the one the leases set;
  a value changed by hand meanwhile is left alone (``max_replica`` is never set below the ``min_replica`` kept).
* Only ``min_replica`` is touched, and ``max_replica`` when a lease asks for more replicas than it allows
  (Baseten refuses ``min_replica > max_replica``): it is raised to the same count and restored with the
  baseline. No other autoscaling setting is ever sent.
* A lease is released on success, on failure and on ``on_kill`` (SIGTERM). A SIGKILLed task cannot release:
  its retry reuses the lease and releases it at the end. A lease also ends at its task's deadline
  (``execution_timeout``) or after :data:`LEASE_TTL` without one, so a task killed with no retry left cannot
  hold a deployment up for ever: the next acquire or release drops it.
* Airflow Variables have no compare-and-set, so each change is written, then read back after a short pause
  and written again if another worker's change overwrote it (see :meth:`LeaseBook.update`).

What this task changed is also kept in Airflow 3.3's ``task_state_store`` (``baseten_scale_for_batch``), so a
retry logs that it continues an earlier try's lease.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from airflow_provider_baseten.client.checks import check_target, optional_int_in
from airflow_provider_baseten.exceptions import BasetenValidationError

LEASE_TTL = 24 * 3600.0  # seconds a lease lives when its task has no execution_timeout
STATE_KEY = "baseten_scale_for_batch"
VARIABLE_PREFIX = "baseten_scale_leases"


class Store(Protocol):
    """Where the shared lease records live (``airflow.sdk.Variable`` in a task; a dict-backed one in tests)."""

    def get(self, key: str) -> str | None:
        """The stored text, or ``None``."""

    def set(self, key: str, value: str | None) -> None:
        """Store ``value``; ``None`` deletes the key."""


class VariableStore:
    """Airflow Variables as a :class:`Store` (every worker of the deployment's DAGs sees the same ones)."""

    def get(self, key: str) -> str | None:
        """The Variable's value, or ``None`` when it does not exist."""
        from airflow.sdk import Variable

        value: Any = Variable.get(key, default=None)
        return None if value is None else str(value)

    def set(self, key: str, value: str | None) -> None:
        """Set the Variable, or delete it for ``None``."""
        from airflow.sdk import Variable

        if value is None:
            with contextlib.suppress(Exception):  # already gone
                Variable.delete(key)
        else:
            Variable.set(key, value)


def check_min_replica(value: Any) -> int | None:
    """``scale_for_batch`` as given to an operator: ``None`` or a ``min_replica`` from 1 to 100."""
    return optional_int_in("scale_for_batch", value, 1, 100, what="a min_replica count")


class LeaseBook:
    """One deployment's record: ``{"baseline": {"min_replica", "max_replica"}, "leases": {id: {"min_replica", "until"}}}``."""

    def __init__(self, store: Store, key: str, *, settle: float = 0.3, clock: Callable[[], float] = time.time):
        self.store = store
        self.key = key
        self.settle = settle
        self.clock = clock

    def raw(self) -> dict[str, Any]:
        """The record as stored, expired leases included (``{}`` when there is none)."""
        text = self.store.get(self.key)
        try:
            record = json.loads(text) if text else {}
        except ValueError:
            record = {}
        if not isinstance(record, dict) or not isinstance(record.get("leases"), dict):
            return {}
        return record

    def read(self) -> dict[str, Any]:
        """The record with expired leases dropped (its baseline stays: it is still the deployment's own)."""
        record = self.raw()
        if record:
            now = self.clock()
            record["leases"] = {k: v for k, v in record["leases"].items() if float(v.get("until", 0)) > now}
        return record

    def expired(self) -> list[str]:
        """The leases whose task's deadline has passed (killed with no retry left)."""
        now = self.clock()
        return [k for k, v in self.raw().get("leases", {}).items() if float(v.get("until", 0)) <= now]

    def update(
        self, change: Callable[[dict[str, Any]], dict[str, Any]], check: Callable[[dict[str, Any]], bool]
    ) -> bool:
        """Apply ``change`` to the record and write it; read it back and redo while ``check`` fails (lost update).

        Returns whether the change held (``False`` after 5 rounds lost to other writers).
        """
        for _ in range(5):
            new = change(self.read())
            self.store.set(self.key, json.dumps(new, sort_keys=True) if new.get("baseline") else None)
            time.sleep(self.settle * (1 + random.random()))  # another worker's write in the same instant shows now
            if check(self.read()):
                return True
        return False

    @staticmethod
    def wanted(record: dict[str, Any], leases: bool = True) -> tuple[int, int] | None:
        """``(min_replica, max_replica)`` the record asks for (the baseline with ``leases=False``); ``None``: no record."""
        base = record.get("baseline")
        if not isinstance(base, dict):
            return None
        low, high = int(base.get("min_replica") or 0), int(base.get("max_replica") or 0)
        if leases:
            if not record.get("leases"):
                return None
            low = max([low, *(int(v["min_replica"]) for v in record["leases"].values())])
        return low, max(high, low)


class ScaleForBatch:
    """Acquire on enter, release on exit (success or failure); :meth:`release` is also ``on_kill``'s."""

    def __init__(
        self,
        hook: Any,
        *,
        model_id: str | None,
        environment: str | None,
        deployment_id: str | None,
        min_replica: int,
        lease_id: str,
        until: float | None,
        log: Any,
        store: Store | None = None,
        state_store: Any = None,
        wake: bool = True,
        settle: float = 0.3,
    ) -> None:
        self.hook = hook
        self.model_id = model_id or hook.settings.model_id
        # The one target rule: the operator checked it already, a direct caller gets the same (and its aliases).
        env, dep = check_target(environment, deployment_id, who="ScaleForBatch")
        self.target = {"environment": env, "deployment_id": dep}
        self.min_replica = min_replica
        self.lease_id = lease_id
        self.until = until if until is not None else time.time() + LEASE_TTL
        self.log = log
        self.store = store or VariableStore()
        self.state_store = state_store
        self.wake = wake
        self.settle = settle
        self.deployment: str | None = None
        self.book: LeaseBook | None = None
        self.released = False

    def _resolve(self) -> str:
        from airflow_provider_baseten._tasks import deployment_behind

        dep = deployment_behind(self.hook, self.model_id, **self.target)
        if dep is None:
            env = self.target["environment"]
            raise BasetenValidationError(f"Environment {env!r} has no deployment to scale.", field="scale_for_batch")
        return str(dep)

    def _current(self) -> tuple[int, int]:
        assert self.deployment is not None
        settings = self.hook.get_deployment(self.deployment, model_id=self.model_id).autoscaling_settings
        low = int(getattr(settings, "min_replica", None) or 0)
        return low, int(getattr(settings, "max_replica", None) or low)

    def _apply(self, current: tuple[int, int], wanted: tuple[int, int], why: str) -> None:
        """Send the fields of ``wanted`` that differ from ``current``, in one request."""
        assert self.deployment is not None
        change = {k: w for k, c, w in zip(("min_replica", "max_replica"), current, wanted, strict=True) if c != w}
        if not change:
            return
        self.log.info("scale_for_batch: deployment %s autoscaling %s (%s).", self.deployment, change, why)
        self.hook.update_autoscaling_settings(model_id=self.model_id, deployment_id=self.deployment, **change)

    def acquire(self) -> None:
        """Take (or retake, on a retry) this task's lease and raise ``min_replica`` if it is below the leases'."""
        self.deployment = self._resolve()
        self.book = book = LeaseBook(
            self.store, f"{VARIABLE_PREFIX}.{self.model_id}.{self.deployment}", settle=self.settle
        )
        if self.state_store is not None:
            earlier = self.state_store.get(STATE_KEY)
            if earlier:
                self.log.info("scale_for_batch: an earlier try held lease %s; this try continues it.", earlier)
            self.state_store.set(
                STATE_KEY, {"lease": self.lease_id, "deployment": self.deployment, "min_replica": self.min_replica}
            )
        lease = {"min_replica": self.min_replica, "until": self.until}
        stale = book.expired()
        found = book.read()
        orphan = "baseline" in found and not found["leases"]  # a last release that did not get to restore
        # The deployment's own settings, for a first lease. Read only once there is no record (a last batch out
        # deletes it after its restore, so this is the deployment's own setting, not a lease's about to be given
        # back), and before update(): its read-change-write must take microseconds, not an HTTP round trip, or
        # a batch starting at the same instant can write over this lease after it was checked.
        own = self._current() if "baseline" not in found else None

        def add(record: dict[str, Any]) -> dict[str, Any]:
            if "baseline" not in record:
                low, high = own if own is not None else self._current()
                record = {"baseline": {"min_replica": low, "max_replica": high}, "leases": {}}
            record["leases"][self.lease_id] = lease
            return record

        if not book.update(add, lambda r: self.lease_id in r.get("leases", {})):
            self.log.warning("scale_for_batch: lease %s could not be recorded in %s.", self.lease_id, book.key)
        current = self._current()
        wanted = LeaseBook.wanted(book.read()) or (self.min_replica, max(current[1], self.min_replica))
        if stale or orphan:  # what ended leases had set is the leases' own: converge to the live ones, down too
            self.log.info("scale_for_batch: dropped ended lease(s) %s.", ", ".join(stale) or "(restore pending)")
            self._apply(current, wanted, "live leases only")
        elif current[0] < wanted[0]:
            self._apply(current, (wanted[0], max(current[1], wanted[1])), f"lease {self.lease_id}")
        else:
            self.log.info(
                "scale_for_batch: min_replica of %s is already %d >= %d.", self.deployment, current[0], wanted[0]
            )
        if self.wake:
            self.hook.wake(model_id=self.model_id, deployment_id=self.deployment)

    def release(self) -> None:
        """Drop this task's lease; set ``min_replica`` to what the remaining leases (or the baseline) ask."""
        if self.released or self.book is None:
            return
        self.released = True
        book = self.book
        before = book.read()
        held = LeaseBook.wanted(before)
        baseline = LeaseBook.wanted(before, leases=False)

        def drop(record: dict[str, Any]) -> dict[str, Any]:
            record.get("leases", {}).pop(self.lease_id, None)
            return record

        if not book.update(drop, lambda r: self.lease_id not in r.get("leases", {})):
            self.log.warning("scale_for_batch: lease %s could not be removed from %s.", self.lease_id, book.key)
        after = book.read()
        wanted = LeaseBook.wanted(after)
        if wanted is None:
            wanted = baseline
        current = self._current()
        if wanted is None:
            self.log.info("scale_for_batch: no lease record for %s; nothing to restore.", self.deployment)
        else:
            self._apply(
                current,
                self._restorable(current, held, wanted),
                "restored" if not after.get("leases") else "the remaining leases",
            )
            if not after.get("leases") and not book.read().get("leases"):
                book.store.set(book.key, None)  # restored: the record (and its baseline) can go
        if self.state_store is not None:
            with contextlib.suppress(Exception):
                self.state_store.delete(STATE_KEY)

    def _restorable(
        self, current: tuple[int, int], held: tuple[int, int] | None, wanted: tuple[int, int]
    ) -> tuple[int, int]:
        """``wanted``, except a field whose current value is not what the leases set (changed by hand): kept."""
        kept = list(wanted)
        for i, name in enumerate(("min_replica", "max_replica")):
            if held is not None and current[i] != held[i]:
                kept[i] = current[i]
                self.log.warning(
                    "scale_for_batch: %s of %s is %d, not the %d the batches set: it was changed meanwhile, "
                    "so it is left as it is.",
                    name,
                    self.deployment,
                    current[i],
                    held[i],
                )
        low, high = kept
        return low, max(high, low)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lease for the ``with`` block; release it however the block (or the acquire) ends."""
        try:
            self.acquire()
            yield
        finally:
            self.release()


def lease_id(context: Any) -> str:
    """The task instance, stable across its tries: ``dag_id/run_id/task_id/map_index``."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
