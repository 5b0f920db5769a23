"""``max_concurrency="auto"``: a concurrency limit that finds the deployment's capacity as the batch runs.

AIMD with slow start, on the answers to each attempt (not each item, so a retried item's wait is no signal):

* **Grow while latency holds.** While an answer comes back within ``tolerance`` x the lowest latency seen
  (plus ``slack``), the limit grows: by one per answer at first (slow start: it doubles every round trip).
  After the first back-off it remembers the load that was refused (``w_max``) and grows back fast (four per
  round trip) to just below it, then probes past it slowly (one per ``probe_rounds`` round trips), and once
  clear of it by a margin grows by one per round trip again (the capacity has grown). It grows only while
  it is in use (the batch is not held back by something else), and never past ``ceiling``.
* **Back off on 429 and 503.** The first overload answer to an attempt sent after the last cut sets the limit
  to ``backoff`` x the requests in flight at that moment (the load the server just refused; half of it when
  in slow start, which may have overshot by up to twice), and ends slow start. Answers to attempts sent before the cut do not cut again: one cut per round trip at most.

So against a deployment of fixed capacity the limit sits at the capacity most of the time, with one
refused request per probe (every ``probe_rounds`` + 3 round trips or so), which the retry policy resends.
* **Retry the refused request soon, once.** The cut is the back-off, so a 429/503 without ``Retry-After``
  is retried after about two round trips (by then the workers above the new limit have stopped taking
  items), not after the retry policy's random backoff of up to seconds, which would leave one item
  straggling at the end of the batch. A second refusal of the same request waits the policy's backoff, so
  an outage (everything refused) is paced and stopped by the circuit breaker as before.
* Connection errors, timeouts and other statuses are left to the retry policy and the circuit breaker.

The limit is enforced by the batch workers: worker ``slot`` takes new items only while ``slot`` is below
:attr:`AdaptiveLimit.active`; the others wait in :meth:`AdaptiveLimit.admit` (without a connection) until
the limit grows past them or the batch ends. A worker finishes the item it holds (retries included) before
it waits, so nothing in flight is dropped when the limit falls.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Awaitable, Callable

import httpx

AUTO = "auto"
#: Workers (connections) an ``auto`` batch may grow to, where it starts, and the least it falls to. The
#: floor keeps an outage's circuit breaker quick: a batch held at one worker would need many minutes of
#: retries to see the run of failures that stops it.
AUTO_CEILING = 512
AUTO_START = 8
AUTO_FLOOR = 4
OVERLOAD_STATUSES = frozenset({429, 503})

_Send = Callable[[httpx.Request], Awaitable[httpx.Response]]


class AdaptiveLimit:
    """An AIMD concurrency limit (see the module docstring), shared by one batch's workers.

    :ivar limit: The current limit (fractional: congestion avoidance adds ``1 / limit`` per answer).
    :ivar overloads: 429/503 answers seen.
    :ivar cuts: Times the limit was cut.
    :ivar peak: The highest limit reached.
    """

    def __init__(
        self,
        *,
        start: int = AUTO_START,
        floor: int = AUTO_FLOOR,
        ceiling: int = AUTO_CEILING,
        backoff: float = 0.9,
        tolerance: float = 2.0,
        slack: float = 0.005,
        probe_rounds: float = 8.0,
    ) -> None:
        if not 1 <= floor <= start <= ceiling:
            raise ValueError("AdaptiveLimit needs 1 <= floor <= start <= ceiling")
        self.limit = float(start)
        self.floor, self.ceiling = float(floor), float(ceiling)
        self.backoff, self.tolerance, self.slack, self.probe_rounds = backoff, tolerance, slack, probe_rounds
        self.w_max = math.inf  # the load last refused (429/503)
        self.slow_start = True
        self.inflight = 0
        self.sent = 0  # attempts sent so far: a sequence number
        self.cut_at = 0  # ``sent`` when the limit was last cut
        self.base = math.inf  # the lowest latency seen (s)
        self.overloads = 0
        self.cuts = 0
        self.peak = self.limit
        self.active = int(self.limit)
        self._parked: dict[int, asyncio.Future[bool]] = {}
        self._retried_soon: weakref.WeakSet[httpx.Request] = weakref.WeakSet()
        self._closed = False

    # -- the signal --------------------------------------------------------------------------------------
    def wrap(self, send: _Send) -> _Send:
        """``send`` that reports each attempt's answer and latency to this limit."""

        async def measured(request: httpx.Request) -> httpx.Response:
            self.sent += 1
            seq = self.sent
            self.inflight += 1
            started = time.monotonic()
            try:
                response = await send(request)
            finally:
                self.inflight -= 1
            status = response.status_code
            self.observe(seq, status, time.monotonic() - started)
            overload = status in OVERLOAD_STATUSES and "retry-after" not in response.headers
            if overload and request not in self._retried_soon:
                self._retried_soon.add(request)
                response.headers["Retry-After"] = f"{self.retry_soon():.3f}"
            return response

        return measured

    def retry_soon(self) -> float:
        """Seconds before a refused request is sent again: two of the shortest round trips (10 ms-1 s)."""
        return min(1.0, max(0.01, 2 * self.base)) if self.base < math.inf else 0.1

    def observe(self, seq: int, status: int, latency: float) -> None:
        """Adjust the limit for the answer ``status`` to attempt number ``seq``, ``latency`` seconds after it."""
        if status in OVERLOAD_STATUSES:
            self.overloads += 1
            if seq > self.cut_at:  # the first refusal of this round trip: the server's capacity is about here
                self.w_max = min(self.limit, self.inflight + 1.0)
                # Slow start may overshoot the capacity by up to twice before the first refusal comes back.
                self.limit = max(self.floor, self.w_max * (0.5 if self.slow_start else self.backoff))
                self.cut_at = self.sent
                self.slow_start = False
                self.cuts += 1
                self._changed()
            return
        if status >= 400:
            return
        self.base = min(self.base, latency)
        if latency > self.base * self.tolerance + self.slack:
            self.slow_start = False  # latency no longer holds: the server (or this client) is queueing
            return
        if self.inflight + 1 < (self.limit - 1 if self.slow_start else 0.8 * self.limit):
            return  # the limit is not what holds the batch back (yet): growing it would mean nothing
        if self.slow_start:
            step = 1.0
        elif self.limit < self.w_max - 1.0:
            step = 4.0 / self.limit  # back to just below the load last refused: four per round trip
        elif self.limit < self.w_max + 2.0:
            step = 1.0 / (self.probe_rounds * self.limit)  # around it: probe slowly
        else:
            step = 1.0 / self.limit  # well past it without a refusal: the capacity grew; one per round trip
        self.limit = min(self.ceiling, self.limit + step)
        self.peak = max(self.peak, self.limit)
        self._changed()

    # -- the gate ----------------------------------------------------------------------------------------
    def _changed(self) -> None:
        active = max(1, int(self.limit))
        if active > self.active:
            for slot in range(self.active, active):
                waiter = self._parked.pop(slot, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(True)
        self.active = active

    async def admit(self, slot: int) -> bool:
        """Wait until worker ``slot`` may take items (``True``) or the batch is over (``False``)."""
        while not self._closed and slot >= self.active:
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._parked[slot] = waiter
            if not await waiter:
                return False
        return not self._closed

    def close(self) -> None:
        """The batch is over (no inputs left, or it stopped): release every waiting worker."""
        self._closed = True
        for waiter in self._parked.values():
            if not waiter.done():
                waiter.set_result(False)
        self._parked.clear()

    def summary(self) -> dict[str, float | int]:
        """The limit now, its peak, the overload answers and cuts (for the batch's final log line)."""
        return {
            "limit": round(self.limit, 1),
            "peak": round(self.peak, 1),
            "overloads": self.overloads,
            "cuts": self.cuts,
        }
