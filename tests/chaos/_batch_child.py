"""A batch in a process of its own, for the kill -9 cases: ``python -m tests.chaos._batch_child '<json>'``.

The JSON names the emulator (``api_key``, ``url``, ``inference_url``, ``model_id``), the ``inputs`` JSONL,
the ``output`` (a path, or a URI for ``ObjectStoragePath``) and ``max_concurrency``. It runs
``predict_batch(..., resume=True, on_error="record", max_error_rate=1.0)`` (or ``embed_batch`` with
``"kind": "embed"`` and ``batch_size``) and prints the summary.
"""

from __future__ import annotations

import functools
import json
import logging
import sys

from airflow_provider_baseten.client.batch import read_jsonl
from airflow_provider_baseten.client.transport import RetryPolicy, Settings
from airflow_provider_baseten.hooks.baseten import BasetenHook


def child_hook(spec: dict) -> BasetenHook:
    """A hook on the emulator ``spec`` names (``api_key``, ``url``, ``inference_url``, ``model_id``), with fast
    retries: a child process of the chaos cases must not spend its time in backoff."""
    settings = Settings(
        api_key=spec["api_key"],
        management_url=spec["url"],
        inference_url=spec["inference_url"],
        model_id=spec["model_id"],
        retry=RetryPolicy(max_attempts=6, backoff_base=0.002, max_backoff=0.02, total_timeout=60),
    )
    return BasetenHook(settings=settings)


def main(spec: dict) -> None:
    """Run the batch ``spec`` describes."""
    logging.basicConfig(level=logging.WARNING)
    output = spec["output"]
    if "://" in output:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        output = ObjectStoragePath(output)
    hook = child_hook(spec)
    # "kind": "embed" runs embed_batch (texts packed batch_size per request) instead of predict_batch.
    run = hook.predict_batch
    if spec.get("kind") == "embed":
        run = functools.partial(hook.embed_batch, batch_size=spec["batch_size"], environment="production")
    result = run(
        read_jsonl(spec["inputs"]),
        total=spec["total"],
        output_path=output,
        resume=True,
        on_error="record",
        max_error_rate=1.0,
        max_concurrency=spec["max_concurrency"],
        progress_interval=3600,
    )
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
