"""Peak memory of split -> per-shard outputs -> merge, JSONL and Parquet, at two sizes (flat = streaming).

``.venv/bin/python benchmarks/batch_io_memory.py [ROWS ...]``: each size and format runs in its own process
(``ru_maxrss`` is per process) and prints the input size, the peak RSS and the time.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time


def one(rows: int, fmt: str, folder: str) -> None:
    from airflow_provider_baseten.batch_io import merge_outputs, read_records, split_input, write_records

    src = os.path.join(folder, f"in.{fmt}")
    text = "the delivery was quick and the product works"
    write_records(src, ({"text": f"review {i}: {text}", "n": i} for i in range(rows)))
    started = time.monotonic()
    shards = split_input(src, os.path.join(folder, "shards"), rows_per_shard=rows // 4)
    for s in shards:  # what each shard's predict would write: one result per input
        write_records(s.output_path, ({"index": i, "output": r} for i, r in enumerate(read_records(s.path))))
    merge_outputs(shards, os.path.join(folder, f"merged.{fmt}"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{rows:>9,} rows {fmt:<8} input {os.path.getsize(src) / 1e6:5.0f} MB   peak RSS {peak:4.0f} MB   "
        f"{time.monotonic() - started:5.1f} s"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        with tempfile.TemporaryDirectory(prefix="batch-io-") as folder:
            one(int(sys.argv[2]), sys.argv[3], folder)
        return
    for rows in [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]:
        for fmt in ("jsonl", "parquet"):
            subprocess.run([sys.executable, __file__, "--one", str(rows), fmt], check=True)


if __name__ == "__main__":
    main()
