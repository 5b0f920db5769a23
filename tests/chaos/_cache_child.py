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

from tests.chaos._batch_child import child_hook


def main(spec: dict) -> None:
    """Run the batch ``spec`` describes, once ``go`` exists."""
    texts = json.loads(Path(spec["texts"]).read_text())
    hook = child_hook(spec)
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
