"""A quick end-to-end check of the batch path against ``server.py`` (run after any change to the hot path).

Order kept, per-item errors recorded with their index, 503 + Retry-After retried, JSONL output in order,
resume skipping what is already there. ``python benchmarks/check.py``; exits non-zero on a failure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import API_KEY, MODEL_ID, inference_url, serve


def main() -> None:
    from airflow_provider_baseten.client.batch import read_jsonl
    from airflow_provider_baseten.client.transport import RetryPolicy, Settings
    from airflow_provider_baseten.exceptions import BasetenBatchError
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    n = 3000
    inputs = []
    for i in range(n):
        if i % 97 == 13:
            inputs.append({"i": i, "kind": "fail"})
        elif i % 89 == 7:
            inputs.append({"i": i, "kind": "flaky"})
        else:
            inputs.append({"i": i})
    bad = {i for i, x in enumerate(inputs) if x.get("kind") == "fail"}
    flaky = sum(1 for x in inputs if x.get("kind") == "flaky")
    with serve(2) as port:
        settings = Settings(
            api_key=API_KEY,
            model_id=MODEL_ID,
            inference_url=inference_url(port),
            retry=RetryPolicy(backoff_base=0.01, max_backoff=0.05),
        )
        hook = BasetenHook(settings=settings)
        t0 = time.perf_counter()
        res = hook.predict_batch(inputs, max_concurrency=64, on_error="record")
        took = time.perf_counter() - t0
        assert res.succeeded == n - len(bad) and res.failed == len(bad), (res.succeeded, res.failed)
        assert set(res.failures) == bad, sorted(set(res.failures) ^ bad)[:5]
        assert res.retries.get("503", 0) == flaky, res.retries
        for i, out in enumerate(res.results or []):
            if i in bad:
                assert out["index"] == i and "422" in out["error"], out
            else:
                assert out["echo"] == inputs[i], (i, out)
        print(f"memory sink: order kept, {len(bad)} errors recorded by index, {flaky} 503s retried ({took:.2f} s)")

        try:
            hook.predict_batch(inputs[:200], max_concurrency=16)
        except BasetenBatchError as exc:
            assert set(exc.failures) == {i for i in bad if i < 200}, exc.failures
            print("on_error=fail: raised BasetenBatchError naming", sorted(exc.failures))
        else:
            raise AssertionError("on_error=fail did not raise")

        with tempfile.TemporaryDirectory() as tmp:
            src, out = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
            with open(src, "w") as fh:
                fh.writelines(json.dumps(x) + "\n" for x in inputs)
            res = hook.predict_batch(read_jsonl(src), output_path=out, total=n, max_concurrency=64, on_error="record")
            lines = [json.loads(x) for x in Path(out).read_text().splitlines()]
            assert [x["index"] for x in lines] == list(range(n))
            assert all(("error" in x) == (x["index"] in bad) for x in lines)
            assert all(x["output"]["echo"] == inputs[x["index"]] for x in lines if "output" in x)
            # resume: keep the first 1000 successful lines only, then rerun
            with open(out, "w") as fh:
                fh.writelines(json.dumps(x) + "\n" for x in lines[:1000] if "output" in x)
            kept = sum(1 for x in lines[:1000] if "output" in x)
            res = hook.predict_batch(
                read_jsonl(src), output_path=out, total=n, max_concurrency=64, on_error="record", resume=True
            )
            assert res.skipped == kept, (res.skipped, kept)
            again = [json.loads(x) for x in Path(out).read_text().splitlines()]
            assert [x["index"] for x in again] == list(range(n))
            print(f"JSONL sink: {n} lines in order; resume skipped {kept} kept lines and redid the rest")
    print("OK")


if __name__ == "__main__":
    main()
