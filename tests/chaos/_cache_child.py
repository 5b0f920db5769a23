"""One worker filling a shared result cache: ``python -m tests.chaos._cache_child '<json>'``.

The JSON names the emulator (``api_key``, ``url``, ``inference_url``, ``model_id``), the ``texts`` file
(JSON list), the ``cache`` folder and a ``go`` file: the worker says it is ready (``ready`` file), waits for
``go`` so that the workers start together, runs ``embed_batch(..., cache=cache)`` and prints its summary.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from airflow_provider_baseten.client.transport import RetryPolicy, Settings
from airflow_provider_baseten.hooks.baseten import BasetenHook


def main(spec: dict) -> None:
    """Run the batch ``spec`` describes, once ``go`` exists."""
    settings = Settings(
        api_key=spec["api_key"],
        management_url=spec["url"],
        inference_url=spec["inference_url"],
        model_id=spec["model_id"],
        retry=RetryPolicy(max_attempts=6, backoff_base=0.002, max_backoff=0.02, total_timeout=60),
    )
    texts = json.loads(Path(spec["texts"]).read_text())
    hook = BasetenHook(settings=settings)
    hook.get_transport()
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    deadline = time.monotonic() + 60
    while not go.exists():  # the parent creates it once every worker is ready: an event, not a guess
        if time.monotonic() > deadline:
            raise SystemExit("never told to start")
        time.sleep(0.005)
    result = hook.embed_batch(texts, batch_size=spec["batch_size"], max_concurrency=4, cache=spec["cache"])
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
