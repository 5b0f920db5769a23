"""Run N AsyncPredictTriggers concurrently in one event loop, as one triggerer process does, and report
peak RSS and CPU as JSON on stdout.

``python -m tests.chaos._trigger_load IDS_FILE POLL_INTERVAL TIMEOUT [debug]`` with ``AIRFLOW_CONN_BASETEN_DEFAULT``
set. Each trigger watches one request id (as one deferred AsyncPredictSensor does).

With ``debug`` the loop runs in asyncio debug mode with ``slow_callback_duration = 0.05``; the result counts the
slow callbacks asyncio reports (wall time), and, per callback, the CPU time this thread spent in it. A callback
that blocks the loop by computing (a CA bundle load) is slow in both; one that was only descheduled by the OS on
a busy machine, or paused by a full garbage collection, is slow in wall time only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
import sys
import time

SLOW = 0.05


class _Timings(logging.Handler):
    """asyncio's slow-callback warnings (wall time), and each callback's thread CPU time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.slow_wall = 0
        self.cpu: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if " took " in record.getMessage():
            self.slow_wall += 1

    def install(self) -> None:
        run = asyncio.events.Handle._run
        cpu = self.cpu

        def timed(handle: asyncio.events.Handle) -> None:
            t0 = time.thread_time()
            try:
                run(handle)
            finally:
                cpu.append(time.thread_time() - t0)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        logging.getLogger("asyncio").addHandler(self)


async def main(ids: list[str], poll: float, timeout: float, debug: bool = False) -> dict[str, object]:
    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger

    timings = _Timings()
    if debug:
        # First load what a running triggerer has already loaded (one-off imports are not a trigger's blocking),
        # and freeze those objects as Airflow's forked processes do, so full collections stay short.
        warm = BasetenHook("baseten_default")
        await warm.aget_async_request(ids[0])
        await warm.aclose()
        gc.freeze()
        timings.install()
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW
    end = time.time() + timeout
    triggers = [
        AsyncPredictTrigger(conn_id="baseten_default", request_ids=[rid], poll_interval=poll, end_time=end)
        for rid in ids
    ]

    async def one(t: AsyncPredictTrigger) -> dict[str, object]:
        async for ev in t.run():
            return ev.payload
        return {"status": "none"}

    t0 = time.monotonic()
    events = await asyncio.gather(*(one(t) for t in triggers))
    statuses: dict[str, int] = {}
    for ev in events:
        statuses[str(ev["status"])] = statuses.get(str(ev["status"]), 0) + 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "statuses": statuses,
        "elapsed": time.monotonic() - t0,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "slow_callbacks_wall": timings.slow_wall,
        "slow_callbacks_cpu": sum(c >= SLOW for c in timings.cpu),
        "worst_callback_cpu_ms": round(max(timings.cpu, default=0.0) * 1000, 1),
        "callbacks": len(timings.cpu),
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        ids = json.load(fh)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    out = asyncio.run(main(ids, float(sys.argv[2]), float(sys.argv[3]), "debug" in sys.argv[4:]))
    out["cpu_seconds_startup"] = cpu0.ru_utime + cpu0.ru_stime
    print("RESULT " + json.dumps(out))
