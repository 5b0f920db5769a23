"""Client-side pacing of Baseten's limits: per-key endpoint windows (activate/deactivate 20/min, retry 10/min:
:class:`WindowLimiter`) and the triggers' per-model async status budget (20 rps: :class:`StatusBudget`).

The two stay two classes: a window lets a short burst through at once (one activate never waits), while the
status budget spaces every call evenly and queues again after a late wake (hundreds of triggers on one
event loop would otherwise all wake together).

Baseten answers a burst past these limits with 429 and ``{"retry_after": N}``; pacing here keeps one
process under them instead of paying for the 429s. Like the triggers' status budget, a caller *reserves* the
next free slot under a lock and then sleeps (with the sync or async sleep of its own path) until it; no
lock is held while sleeping, so the same limiter serves threads and event loops alike.

The window is a sliding one: at most ``limit`` slots in any ``per`` seconds, so a DAG that activates one
deployment never waits, and the 21st activate in a minute waits for the first to leave the window. A 429
that still comes (other processes share the key) is retried after its ``retry_after`` by the transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque

from airflow_provider_baseten.client.routes import RateLimit

#: Added to each window: Baseten's clock and ours do not start the minute at the same instant.
MARGIN = 1.0


class WindowLimiter:
    """At most ``limit`` calls in any ``per`` seconds (plus :data:`MARGIN`)."""

    def __init__(self, limit: int, per: float) -> None:
        self.limit = limit
        self.per = per + MARGIN
        self._slots: deque[float] = deque()  # reserved send times, ascending
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next free slot; return how many seconds the caller must wait before sending."""
        with self._lock:
            now = time.monotonic()
            while self._slots and self._slots[0] <= now - self.per:
                self._slots.popleft()
            slot = now
            if self._slots:
                slot = max(slot, self._slots[-1])
            if len(self._slots) >= self.limit:
                slot = max(slot, self._slots[-self.limit] + self.per)
            self._slots.append(slot)
            return slot - now


_limiters: dict[tuple[str, str], WindowLimiter] = {}
_lock = threading.Lock()


def limiter_for(api_key: str, rule: RateLimit | None) -> WindowLimiter | None:
    """The process-wide limiter of ``rule``'s bucket (an endpoint row's ``rate_limit``) for this API key.

    ``None``: the endpoint has no limit of its own.
    """
    if rule is None:
        return None
    key = (hashlib.sha256(api_key.encode()).hexdigest()[:16], rule.bucket)  # never keep the key itself
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = WindowLimiter(rule.limit, rule.per)
        return limiter


def reset_rate_limits() -> None:
    """Forget every reservation (for tests)."""
    with _lock:
        _limiters.clear()


# -- the triggers' status budget ----------------------------------------------------------------------
STATUS_BUDGET_RPS = 20.0  # Baseten's async status/cancel/queue budget per model (spec: 20 rps)


class StatusBudget:
    """Spaces calls so that all of them together stay under ``rps`` per second.

    One triggerer runs hundreds of triggers in one process: spacing each trigger's own calls keeps none of
    them under Baseten's per-model budget once there are more than a few. Every trigger (and sensor poke)
    in the process that polls the same model through the same connection takes its turn from one
    budget. Each caller reserves the next free slot and sleeps until it; there is no asyncio lock, so the
    budget works across event loops (the triggerer's, and the ``asyncio.run`` of each inline wait).
    """

    def __init__(self, rps: float) -> None:
        self.spacing = 1.0 / rps
        self._next = 0.0  # the next free slot to reserve
        self._granted = float("-inf")  # when the last caller was let through
        self._lock = threading.Lock()

    async def turn(self) -> None:
        """Wait for this caller's slot."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.spacing
        while True:
            if slot > now:
                await asyncio.sleep(slot - now)
            with self._lock:
                now = time.monotonic()
                if now >= self._granted + self.spacing:
                    self._granted = now
                    return
                # A busy event loop wakes sleepers late and together: queue again, one spacing apart.
                slot = max(self._next, self._granted + self.spacing)
                self._next = slot + self.spacing


_budgets: dict[tuple[str, str | None, float], StatusBudget] = {}
_budgets_lock = threading.Lock()


def status_budget(conn_id: str, model_id: str | None, rps: float = STATUS_BUDGET_RPS) -> StatusBudget:
    """The process-wide :class:`StatusBudget` of one model (``None``: the connection's default model)."""
    key = (conn_id, model_id, rps)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = StatusBudget(rps)
        return budget
