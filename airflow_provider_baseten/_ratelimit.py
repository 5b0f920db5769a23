"""Client-side pacing of Baseten's per-key endpoint limits (activate/deactivate 20/min, retry 10/min).

Baseten answers a burst past these limits with 429 and ``{"retry_after": N}``; pacing here keeps one
process under them instead of paying for the 429s. Like the triggers' status budget, a caller *reserves* the
next free slot under a lock and then sleeps (with the sync or async sleep of its own path) until it; no
lock is held while sleeping, so the same limiter serves threads and event loops alike.

The window is a sliding one: at most ``limit`` slots in any ``per`` seconds, so a DAG that activates one
deployment never waits, and the 21st activate in a minute waits for the first to leave the window. A 429
that still comes (other processes share the key) is retried after its ``retry_after`` by the transport.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque

from airflow_provider_baseten._routes import RATE_LIMITS

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


def limiter_for(api_key: str, endpoint_name: str) -> WindowLimiter | None:
    """The process-wide limiter of ``endpoint_name``'s bucket for this API key (``None``: not limited)."""
    rule = RATE_LIMITS.get(endpoint_name)
    if rule is None:
        return None
    bucket, limit, per = rule
    key = (hashlib.sha256(api_key.encode()).hexdigest()[:16], bucket)  # never keep the key itself
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = WindowLimiter(limit, per)
        return limiter


def reset_rate_limits() -> None:
    """Forget every reservation (for tests)."""
    with _lock:
        _limiters.clear()
