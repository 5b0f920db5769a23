"""Peak memory and speed of ``embed_batch`` with ``output_path``, against an emulator in another process.

``.venv/bin/python scripts/embed_batch_memory.py 100000`` prints one JSON line: texts, lines written,
texts/s, the peak Python heap (tracemalloc) and the growth of the process's max RSS during the batch.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc


def main(n: int) -> None:
    """Embed ``n`` texts, 32 per request, concurrency 32, into a JSONL file; print the figures."""
    emulator = [sys.executable, "-m", "airflow_provider_baseten.emulator", "--port", "0", "--api-key", "k"]
    emu = subprocess.Popen(emulator, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert emu.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+", emu.stdout.readline())
        assert found, "the emulator did not start"
        url = found.group(0)
        from airflow_provider_baseten.client.transport import Settings
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        settings = Settings(
            api_key="k", management_url=url, inference_url=url + "/model/{model_id}", model_id="echo1234"
        )
        hook = BasetenHook(settings=settings)
        out = os.path.join(tempfile.mkdtemp(), "vectors.jsonl")
        hook.embed_batch(["warm up"])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        started = time.monotonic()
        texts = (f"passage number {i} of the corpus" for i in range(n))
        result = hook.embed_batch(
            texts, total=n, batch_size=32, max_concurrency=32, output_path=out, progress_interval=3600
        )
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(out, "rb") as fh:
            lines = sum(1 for _ in fh)
        figures = {
            "texts": n,
            "succeeded": result.succeeded,
            "lines": lines,
            "texts_per_s": round(n / elapsed),
            "peak_heap_MB": round(peak / 2**20, 1),
            "max_rss_growth_MB": round((rss_after - rss_before) / 1024, 1),
            "usage": result.usage,
        }
        print(json.dumps(figures))
    finally:
        emu.kill()
        emu.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
