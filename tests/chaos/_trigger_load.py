"""Run N AsyncPredictTriggers concurrently in one event loop, as one triggerer process does, and report
peak RSS and CPU as JSON on stdout.

``python -m tests.chaos._trigger_load IDS_FILE POLL_INTERVAL TIMEOUT`` with ``AIRFLOW_CONN_BASETEN_DEFAULT`` set.
Each trigger watches one request id (as one deferred AsyncPredictSensor does).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


async def main(ids: list[str], poll: float, timeout: float) -> dict[str, object]:
    from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger

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
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        ids = json.load(fh)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    out = asyncio.run(main(ids, float(sys.argv[2]), float(sys.argv[3])))
    out["cpu_seconds_startup"] = cpu0.ru_utime + cpu0.ru_stime
    print("RESULT " + json.dumps(out))
