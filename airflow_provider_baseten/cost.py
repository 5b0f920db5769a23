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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.models import InstanceTypePrice

__all__ = [
    "PRICE_TTL_SECONDS",
    "CostReport",
    "aprice_per_minute",
    "clear_price_cache",
    "price_per_minute",
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
    table = {p.instance_type.id: float(p.price) for p in items}
    with _lock:
        _prices[conn_id] = (time.monotonic(), table)
    return table


def _lookup(table: dict[str, float], instance_type: str) -> float:
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if instance_type not in table:
        known = ", ".join(sorted(table)[:20])
        raise BasetenValidationError(
            f"Baseten lists no price for instance type {instance_type!r} (known: {known}).", field="instance_type"
        )
    return table[instance_type]


def price_per_minute(hook: BasetenHook, instance_type: str) -> float:
    """The price of ``instance_type`` in USD per minute (the price list is cached per process and connection
    for :data:`PRICE_TTL_SECONDS`).

    :param hook: The hook whose connection's prices to read.
    :param instance_type: The instance type id (``InstanceTypeV1.id``, e.g. ``A10Gx4x16``).
    :raises BasetenValidationError: Baseten lists no price for it.
    """
    table = _cached(hook.baseten_conn_id)
    if table is None:
        table = _store(hook.baseten_conn_id, hook.list_instance_type_prices())
    return _lookup(table, instance_type)


async def aprice_per_minute(hook: BasetenHook, instance_type: str) -> float:
    """Async :func:`price_per_minute` (the same cache).

    :param hook: The hook whose connection's prices to read.
    :param instance_type: The instance type id.
    """
    table = _cached(hook.baseten_conn_id)
    if table is None:
        table = _store(hook.baseten_conn_id, await hook.alist_instance_type_prices())
    return _lookup(table, instance_type)
