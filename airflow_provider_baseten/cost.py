"""What a task cost: instance prices (cached per process), cost reports, and budget guards.

Baseten bills instance-minutes: an instance type's price is in USD **per minute**
(``GET /v1/instance_type_prices``). A task's cost is estimated as the instance-minutes it held times that
price; where Baseten's usage summary lists the object (a training job or a deployment), the billed figure
is reported too (:class:`CostReport` ``source="billed"``).

Prices change rarely and every poll of a guarded wait needs one, so :func:`price_per_minute` keeps the price
list per process for :data:`PRICE_TTL_SECONDS`. Statuses are never cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.models import Deployment, InstanceTypePrice, TrainingJob

__all__ = [
    "PRICE_TTL_SECONDS",
    "BudgetGuard",
    "BudgetVerdict",
    "CostReport",
    "LeaseMeter",
    "aprice_per_minute",
    "billed_cost",
    "check_cap",
    "clear_price_cache",
    "deployment_estimate",
    "estimate",
    "job_minutes",
    "price_per_minute",
    "training_job_estimate",
    "with_billed",
]

#: How long a process keeps the instance price list (seconds): prices change rarely, a DAG polls often.
PRICE_TTL_SECONDS = 600.0

CostSource = Literal["estimate", "billed"]


@dataclass(frozen=True)
class CostReport:
    """What a task cost, in USD.

    :param usd: The cost in US dollars.
    :param estimated: ``True`` when computed here (instance-minutes x price), ``False`` when Baseten billed it.
    :param minutes: The instance-minutes paid for (nodes or replicas x wall minutes).
    :param instance_type: The instance type id (e.g. ``H100x26x234``), when known.
    :param source: ``"estimate"`` or ``"billed"`` (from the usage summary).
    """

    usd: float
    estimated: bool
    minutes: float
    instance_type: str | None
    source: CostSource

    def as_xcom(self) -> dict[str, Any]:
        """The XCom ``baseten_cost`` value: ``{usd, estimated, minutes, instance_type, source}``."""
        return {
            "usd": self.usd,
            "estimated": self.estimated,
            "minutes": self.minutes,
            "instance_type": self.instance_type,
            "source": self.source,
        }

    def describe(self) -> str:
        """One line for a task log, e.g. ``$1.2345 (estimate: 61.50 instance-minutes of A10Gx4x16)``."""
        what = f"{self.minutes:.2f} instance-minutes" + (f" of {self.instance_type}" if self.instance_type else "")
        return f"${self.usd:.4f} ({self.source}: {what})"


# -- prices ----------------------------------------------------------------------------------------------
_lock = threading.Lock()
_prices: dict[str, tuple[float, dict[str, float]]] = {}  # connection id -> (fetched at, {instance type: USD/min})


def clear_price_cache() -> None:
    """Forget every cached price list (tests; or after the workspace's prices changed)."""
    with _lock:
        _prices.clear()


def _cached(conn_id: str) -> dict[str, float] | None:
    with _lock:
        entry = _prices.get(conn_id)
    if entry is None or time.monotonic() - entry[0] > PRICE_TTL_SECONDS:
        return None
    return entry[1]


def _store(conn_id: str, items: list[InstanceTypePrice]) -> dict[str, float]:
    # By id and by display name: a deployment's instance_type_name may be either (the spec says "name").
    table = {p.instance_type.name: float(p.price) for p in items}
    table.update({p.instance_type.id: float(p.price) for p in items})
    with _lock:
        _prices[conn_id] = (time.monotonic(), table)
    return table


def _lookup(table: dict[str, float], instance_type: str) -> float:
    from airflow_provider_baseten.exceptions import BasetenUnpricedError

    if instance_type not in table:
        known = ", ".join(sorted(table)[:20])
        raise BasetenUnpricedError(
            f"Baseten lists no price for instance type {instance_type!r} (known: {known}).",
            instance_type=instance_type,
        )
    return table[instance_type]


def price_per_minute(hook: BasetenHook, instance_type: str) -> float:
    """The price of ``instance_type`` in USD per minute (the price list is cached per process and connection
    for :data:`PRICE_TTL_SECONDS`).

    :param hook: The hook whose connection's prices to read.
    :param instance_type: The instance type id (``InstanceTypeV1.id``, e.g. ``A10Gx4x16``) or its name.
    :raises BasetenUnpricedError: Baseten lists no price for it, in a list read fresh (a cached list that lacks
        it is read again first: the type may be newer than the cache).
    """
    table = _cached(hook.baseten_conn_id)
    if table is None or instance_type not in table:
        table = _store(hook.baseten_conn_id, hook.list_instance_type_prices())
    return _lookup(table, instance_type)


async def aprice_per_minute(hook: BasetenHook, instance_type: str) -> float:
    """Async :func:`price_per_minute` (the same cache).

    :param hook: The hook whose connection's prices to read.
    :param instance_type: The instance type id.
    """
    table = _cached(hook.baseten_conn_id)
    if table is None or instance_type not in table:
        table = _store(hook.baseten_conn_id, await hook.alist_instance_type_prices())
    return _lookup(table, instance_type)


# -- estimates and billed figures ------------------------------------------------------------------------
def _now() -> float:
    """The wall clock in epoch seconds (one seam: tests put the emulator's clock here)."""
    return time.time()


def _epoch(value: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (naive is UTC); ``None`` when missing or unreadable."""
    from datetime import datetime, timezone

    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def job_minutes(job: TrainingJob, now: float | None = None) -> float:
    """Wall minutes a training job has held its nodes: from ``created_at`` until it ended (a terminal job's
    ``updated_at``) or ``now``. Like Baseten's usage (and the emulator's), the count starts at creation."""
    from airflow_provider_baseten.models import TRAINING_TERMINAL_STATES

    start = _epoch(job.created_at)
    if start is None:
        return 0.0
    ended = job.current_status in TRAINING_TERMINAL_STATES
    end = _epoch(job.updated_at) if ended else None
    return max(0.0, ((end if end is not None else _now() if now is None else now) - start) / 60.0)


def _instance(job: TrainingJob) -> tuple[str | None, int]:
    """``(instance type id, GPUs per node)`` of a training job (Baseten's ``TrainingJobV1.instance_type``)."""
    itype = job.instance_type or {}
    ident = itype.get("id")
    return (str(ident) if ident else None), int(itype.get("gpu_count") or 0)


def estimate(minutes: float, price: float, instance_type: str | None, count: int = 1) -> CostReport:
    """The estimate of ``count`` instances (nodes, replicas) held ``minutes`` wall minutes at ``price`` USD/min.

    :param minutes: Wall minutes held.
    :param price: USD per instance-minute.
    :param instance_type: The instance type id.
    :param count: How many instances were held.
    """
    held = minutes * count
    return CostReport(usd=held * price, estimated=True, minutes=held, instance_type=instance_type, source="estimate")


def training_job_estimate(hook: BasetenHook, job: TrainingJob, nodes: int = 1) -> CostReport:
    """A training job's cost so far: ``nodes`` x its instance type's price x :func:`job_minutes`.

    :param hook: The hook (for the price list).
    :param job: The job as Baseten returned it.
    :param nodes: ``compute.node_count`` of the job (Baseten's job object does not carry it).
    """
    ident, _gpus = _instance(job)
    price = price_per_minute(hook, ident) if ident else 0.0
    return estimate(job_minutes(job), price, ident, nodes)


def deployment_estimate(hook: BasetenHook, deployment: Deployment) -> CostReport:
    """A deployment's replica-minutes since it was created (its active replicas, at least one: a deploy holds
    one while it builds and loads) x its instance type's price: the cost of waiting for a deploy.

    :param hook: The hook (for the price list).
    :param deployment: The deployment as Baseten returned it.
    """
    itype = deployment.instance_type_name
    price = price_per_minute(hook, itype) if itype else 0.0
    start = _epoch(deployment.created_at)
    minutes = max(0.0, (_now() - start) / 60.0) if start is not None else 0.0
    return estimate(minutes, price, itype, max(1, deployment.active_replica_count or 0))


def billed_cost(hook: BasetenHook, resource_id: str, since: str | None) -> CostReport | None:
    """What Baseten's usage summary bills ``resource_id`` (a training job or deployment id) since ``since``;
    ``None`` when the summary does not list it (yet: usage may appear with some delay).

    :param hook: The hook.
    :param resource_id: ``billable_resource.id`` to look for.
    :param since: When the object was created (ISO 8601); the range asked is its UTC day until tomorrow, at
        most 31 days (Baseten's limit).
    :raises BasetenBillingAccessError: The key has no billing access (403).
    """
    from datetime import datetime, timedelta, timezone

    start = datetime.fromtimestamp(_epoch(since) or _now(), timezone.utc).replace(hour=0, minute=0, second=0)
    start = start.replace(microsecond=0)
    end = datetime.fromtimestamp(_now(), timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    end = min(end + timedelta(days=1), start + timedelta(days=31))
    summary = hook.get_usage_summary(start, end)
    items: list[Any] = []
    for part in (summary.training_usage, summary.dedicated_usage):
        items += part.breakdown if part is not None else []
    item = next((i for i in items if i.billable_resource.id == resource_id), None)
    if item is None:
        return None
    return CostReport(
        usd=float(item.subtotal),
        estimated=False,
        minutes=float(item.minutes),
        instance_type=item.billable_resource.instance_type,
        source="billed",
    )


def with_billed(hook: BasetenHook, log: Any, guess: CostReport, resource_id: str, since: str | None) -> CostReport:
    """The billed figure when the usage summary has ``resource_id``, else ``guess`` (the estimate).

    A key without billing access (403) falls back to the estimate with one WARNING; any other failure to
    read the summary falls back too (cost reporting must never fail a task).

    :param hook: The hook.
    :param log: The task's logger.
    :param guess: The estimate.
    :param resource_id: The training job or deployment id.
    :param since: When the object was created (ISO 8601).
    """
    from airflow_provider_baseten.exceptions import BasetenBillingAccessError, BasetenError

    try:
        billed = billed_cost(hook, resource_id, since)
    except BasetenBillingAccessError:
        log.warning("No billing access with this API key (403 on the usage summary): the cost is an estimate.")
        return guess
    except BasetenError as exc:
        log.info("Could not read Baseten's usage summary (%s): the cost is an estimate.", exc)
        return guess
    return billed if billed is not None else guess


# -- budget guards ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetVerdict:
    """A guard fired: the next poll would pass ``cap``; ``spent`` had been spent (both in ``unit``).

    :param cap: The cap.
    :param spent: What was spent when the guard fired.
    :param unit: ``"usd"`` or ``"gpu_minutes"``.
    """

    cap: float
    spent: float
    unit: Literal["usd", "gpu_minutes"]

    def describe(self) -> str:
        """E.g. ``max_cost_usd=5.00 would be exceeded at the next poll (spent $4.8300)``."""
        if self.unit == "usd":
            return f"max_cost_usd={self.cap:g} would be exceeded at the next poll (spent ${self.spent:.4f})"
        return f"max_gpu_minutes={self.cap:g} would be exceeded at the next poll (spent {self.spent:.2f} GPU-minutes)"

    def as_event(self, stopped: bool) -> dict[str, Any]:
        """The trigger event's ``budget`` value."""
        return {"cap": self.cap, "spent": self.spent, "unit": self.unit, "stopped": stopped}


def check_cap(name: str, value: Any) -> float | None:
    """``value`` as a positive number (``None`` stays ``None``); anything else is a typed error at parse time.

    :param name: The parameter's name (for the message).
    :param value: What the user gave.
    """
    from airflow_provider_baseten.client.checks import positive_number

    return None if value is None else positive_number(name, value, also="None")


@dataclass(frozen=True)
class BudgetGuard:
    """Caps on what one wait may spend, checked at every poll: the guard fires when the spend projected to the
    *next* poll would pass a cap, so the work is stopped before it does.

    :param max_cost_usd: Cap in USD (instance-minutes x price).
    :param max_gpu_minutes: Cap in GPU-minutes (instances x GPUs per instance x minutes).
    :param count: Instances held (a training job's ``node_count``, a lease's replicas).
    """

    max_cost_usd: float | None = None
    max_gpu_minutes: float | None = None
    count: int = 1

    def __post_init__(self) -> None:
        check_cap("max_cost_usd", self.max_cost_usd)
        check_cap("max_gpu_minutes", self.max_gpu_minutes)

    def check(
        self, elapsed_minutes: float, *, price: float, gpus: int, next_poll_minutes: float
    ) -> BudgetVerdict | None:
        """The verdict when the spend at ``elapsed_minutes + next_poll_minutes`` passes a cap, else ``None``.

        :param elapsed_minutes: Wall minutes held so far.
        :param price: USD per instance-minute.
        :param gpus: GPUs per instance.
        :param next_poll_minutes: Minutes until the next poll.
        """
        later = elapsed_minutes + next_poll_minutes
        if self.max_cost_usd is not None and later * self.count * price > self.max_cost_usd:
            return BudgetVerdict(self.max_cost_usd, elapsed_minutes * self.count * price, "usd")
        if self.max_gpu_minutes is not None and later * self.count * gpus > self.max_gpu_minutes:
            return BudgetVerdict(self.max_gpu_minutes, elapsed_minutes * self.count * gpus, "gpu_minutes")
        return None

    async def acheck_job(self, hook: BasetenHook, job: TrainingJob, poll_seconds: float) -> BudgetVerdict | None:
        """:meth:`check` for a running training job: the one projection every training wait uses (inline and
        deferred run the same trigger).

        :param hook: The hook (for the price, cached).
        :param job: The job as just read.
        :param poll_seconds: Seconds until the next poll.
        """
        from airflow_provider_baseten.exceptions import BasetenUnpricedError

        ident, gpus = _instance(job)
        if self.max_cost_usd is not None and not ident:
            raise BasetenUnpricedError(f"Training job {job.id} names no instance type to price.")
        price = await aprice_per_minute(hook, ident) if ident and self.max_cost_usd is not None else 0.0
        return self.check(job_minutes(job), price=price, gpus=gpus, next_poll_minutes=poll_seconds / 60.0)

    def as_kwargs(self) -> dict[str, Any]:
        """JSON kwargs (a trigger serializes them)."""
        return {"max_cost_usd": self.max_cost_usd, "max_gpu_minutes": self.max_gpu_minutes, "count": self.count}


class LeaseMeter:
    """The replica-minutes a ``scale_for_batch`` lease holds: the batch's cost, and its budget guard.

    A batch that holds replicas of its own (its lease's ``min_replica``) is charged those replicas for the
    batch's wall time at the deployment's price. (A batch without a lease is charged nothing: the replicas it
    used are the deployment's, billed to the deployment whether or not the batch ran.)

    :param price: USD per replica-minute.
    :param instance_type: The deployment's instance type.
    :param replicas: The lease's ``min_replica``.
    :param max_cost_usd: Stop taking inputs when the spend at the next check would pass this.
    """

    def __init__(self, price: float, instance_type: str | None, replicas: int, max_cost_usd: float | None) -> None:
        self.price = price
        self.instance_type = instance_type
        self.guard = BudgetGuard(max_cost_usd=max_cost_usd, count=replicas) if max_cost_usd is not None else None
        self.replicas = replicas
        self.started = self.last = _now()
        self.verdict: BudgetVerdict | None = None

    def over(self) -> BudgetVerdict | None:
        """Check the guard (before each input is sent): the verdict once the spend projected to the next check
        (as far off as the last one was) passes the cap."""
        now = _now()
        gap, self.last = now - self.last, now
        if self.guard is not None and self.verdict is None:
            elapsed = (now - self.started) / 60.0
            self.verdict = self.guard.check(elapsed, price=self.price, gpus=0, next_poll_minutes=gap / 60.0)
        return self.verdict

    def guarded(self, inputs: Iterable[Any]) -> Iterator[Any]:
        """``inputs``, until the guard fires: then no more are sent (those sent are kept)."""
        for item in inputs:
            if self.over() is not None:
                return
            yield item

    def report(self) -> CostReport:
        """What the lease has cost so far."""
        return estimate((_now() - self.started) / 60.0, self.price, self.instance_type, self.replicas)
