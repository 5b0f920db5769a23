"""Creates that a killed worker cannot make twice: one mechanism for every operator that creates something.

A create is not idempotent (a second training job or deployment runs on a second GPU). The
``ResumableJobMixin`` stores the new object's ids after ``submit_job`` returns; a worker killed *during* the
create (Baseten has committed the object, its answer never arrived) leaves no ids, and the retry would create
again. So, on Airflow 3.3+ (a ``task_state_store`` in the context):

1. :meth:`CreateMarker.start` writes a marker *before* the create: when it started and, where the operator
   takes one, the ids that existed before it;
2. a retry that finds the marker looks for what the earlier try made (:func:`made_by_earlier_try`): objects
   created since the marker, not there before, with the run-unique name (:func:`run_unique_name`) when the
   object has one, and still live or done;
3. :meth:`CreateMarker.clear` removes the marker only once the ids are stored (the operator's
   ``poll_until_complete``, which the mixin calls after storing them).

Without a store (Airflow 3.1) there is no marker: the operators behave as before.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context


def run_unique_name(context: Context, prefix: str) -> str:
    """A name unique to this task run (the same on every try): ``<prefix>-<8 hex>``."""
    ti = context.get("ti")
    parts = [getattr(ti, k, "") for k in ("dag_id", "task_id", "run_id", "map_index")]
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', prefix)[:40]}-{digest}"


class CreateMarker:
    """The "a create started and its ids are not stored yet" marker of one operator, in ``task_state_store``.

    :param context: The task context (its ``task_state_store``; ``None`` before Airflow 3.3: a no-op).
    :param key: The operator's store key (stable: a rename breaks retries in flight).
    """

    def __init__(self, context: Context, key: str) -> None:
        self.store = context.get("task_state_store")
        self.key = key

    def earlier(self) -> dict[str, Any] | None:
        """What an earlier try's unfinished create left (``{"since": epoch, "before": [ids]}``), or ``None``."""
        value = self.store.get(self.key) if self.store is not None else None
        return value if isinstance(value, dict) and value else None

    def start(self, before: list[str] | None = None) -> None:
        """Write the marker, right before the create is sent (``before``: the ids that exist now)."""
        if self.store is not None:
            self.store.set(self.key, {"since": time.time(), "before": list(before or [])})

    def clear(self) -> None:
        """Remove the marker: the ids are stored now, so no retry needs to look for the object."""
        if self.store is not None and self.store.get(self.key):
            self.store.set(self.key, {})


def made_by_earlier_try(
    op: Any,
    found: list[Any],
    earlier: dict[str, Any],
    *,
    name: str | None,
    status: Callable[[Any], str],
    what: str,
) -> Any:
    """The one object an earlier try of ``op`` made (``None`` when there is none).

    ``found`` is what exists now; ``earlier`` the marker (a missing ``since`` means any time). A candidate was
    not in ``earlier["before"]``, was created since ``earlier["since"]`` (less the clock-skew margin), has
    ``name`` (when given), and is live or done by ``op``'s own rules (``is_job_active`` / ``is_job_succeeded``):
    an object that failed or was deactivated is not reconnected to, so the retry creates afresh. Several
    candidates are an error: creating one more would not help, and which one is this run's is unknown.
    """
    from airflow_provider_baseten.exceptions import BasetenError
    from airflow_provider_baseten.hooks._api import _made_since

    since = float(earlier.get("since", float("-inf")))
    new = [o for o in _made_since(found, set(earlier.get("before", [])), since) if name is None or o.name == name]
    mine = [o for o in new if op.is_job_active(status(o)) or op.is_job_succeeded(status(o))]
    for o in new:
        if o not in mine:
            op.log.warning("%s %s from an earlier try is %s: not reconnecting to it.", what, o.id, status(o))
    if len(mine) > 1:
        raise BasetenError(
            f"{len(mine)} live {what}s were made since an earlier try of this task started a create "
            f"({[o.id for o in mine][:10]}); not creating another. Stop or delete the ones you do not want, "
            "then clear this task."
        )
    if mine:
        op.log.warning("%s %s was made by an earlier try of this task: reconnecting to it.", what, mine[0].id)
        return mine[0]
    return None
