"""``make bench``: batch-predict throughput against Baseten's Rust client, peak memory, and import cost.

1. Throughput. N = 5,000 predictions at concurrency 64 against a local server (``benchmarks/server.py``, its
   own process) that answers each POST after 20 ms, so the latency limit is N / 64 * 20 ms = 1.5625 s.
   Three clients, in rounds (one run of each per round, so machine noise hits all of them alike):
   our ``BasetenHook.predict_batch``, ``baseten_performance_client.PerformanceClient.batch_post`` (Rust)
   and a plain ``httpx.AsyncClient`` with one shared pool and an ``asyncio.Semaphore(64)``. Every run's
   answers are checked (all present, in input order).
2. Memory. N = 100,000 inputs from a JSONL file to a JSONL file through ``predict_batch(read_jsonl(...),
   output_path=..., total=N)`` in a fresh subprocess against a 0 ms server; peak RSS is ``ru_maxrss``.
3. Import cost. In fresh subprocesses, the time to ``import airflow.sdk`` versus ``import airflow.sdk``
   plus the provider's hook, operators and sensors; the median difference over many runs.

Options: ``--rounds`` (default 3), ``--n``, ``--plain-rounds`` (the plain httpx loop is slow; default 1),
``--skip-memory``, ``--skip-imports``, ``--import-reps``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONCURRENCY = 64
DELAY_MS = 20.0
API_KEY = "bench-key"
MODEL_ID = "benchmodel"

_HOME = tempfile.mkdtemp(prefix="baseten-bench-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


# -- the server ----------------------------------------------------------------------------------------
@contextmanager
def serve(delay_ms: float):
    """Start ``server.py`` in its own process on 127.0.0.1; yield its port; stop it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def inference_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/model/{{model_id}}"


def make_inputs(n: int) -> list[dict[str, Any]]:
    return [{"i": i, "text": f"item {i}"} for i in range(n)]


def check(outputs: list[Any], inputs: list[dict[str, Any]], who: str) -> None:
    """Every answer present and in input order (the server echoes each request body)."""
    if len(outputs) != len(inputs):
        raise AssertionError(f"{who}: {len(outputs)} answers for {len(inputs)} inputs")
    for i, (out, inp) in enumerate(zip(outputs, inputs, strict=True)):
        if not isinstance(out, dict) or out.get("echo") != inp:
            raise AssertionError(f"{who}: answer {i} is {out!r}, expected the echo of {inp!r}")


# -- the three clients ---------------------------------------------------------------------------------
def make_ours(port: int) -> Any:
    from airflow_provider_baseten._transport import Settings
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    hook = BasetenHook(settings=Settings(api_key=API_KEY, model_id=MODEL_ID, inference_url=inference_url(port)))

    def run(inputs: list[Any]) -> list[Any]:
        result = hook.predict_batch(inputs, max_concurrency=CONCURRENCY)
        assert result.failed == 0, result.failures
        return result.results  # type: ignore[return-value]

    return run


def make_rust(port: int) -> Any:
    from baseten_performance_client import PerformanceClient, RequestProcessingPreference

    client = PerformanceClient(base_url=f"http://127.0.0.1:{port}/model/{MODEL_ID}", api_key=API_KEY)
    pref = RequestProcessingPreference(max_concurrent_requests=CONCURRENCY, timeout_s=60.0)

    def run(inputs: list[Any]) -> list[Any]:
        return client.batch_post("/production/predict", inputs, preference=pref).data

    return run


def make_plain_httpx(port: int) -> Any:
    import httpx

    url = f"http://127.0.0.1:{port}/model/{MODEL_ID}/production/predict"
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def batch(inputs: list[Any]) -> list[Any]:
        sem = asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=60.0) as client:

            async def one(item: Any) -> Any:
                async with sem:
                    r = await client.post(url, json=item)
                    r.raise_for_status()
                    return r.json()

            return await asyncio.gather(*(one(x) for x in inputs))

    def run(inputs: list[Any]) -> list[Any]:
        return asyncio.run(batch(inputs))

    return run


# -- throughput ----------------------------------------------------------------------------------------
def throughput(n: int, rounds: int, plain_rounds: int) -> list[dict[str, Any]]:
    inputs = make_inputs(n)
    limit = n / CONCURRENCY * DELAY_MS / 1000
    names = {
        "ours": "airflow-provider-baseten predict_batch",
        "rust": "baseten-performance-client batch_post (Rust)",
        "plain": "plain httpx.AsyncClient + Semaphore(64)",
    }
    times: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    with serve(DELAY_MS) as port:
        clients = {"ours": make_ours(port), "rust": make_rust(port), "plain": make_plain_httpx(port)}
        for run in (clients["ours"], clients["rust"]):  # warm up: imports, first connections
            check(run(inputs[:256]), inputs[:256], "warm-up")
        for r in range(max(rounds, plain_rounds)):
            for key, run in clients.items():
                if r >= (plain_rounds if key == "plain" else rounds):
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                out = run(inputs)
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                check(out, inputs, names[key])
                times[key].append(elapsed)
                cpus[key].append(cpu)
                print(f"  round {r + 1}: {names[key]:<46} {elapsed:6.3f} s wall, {cpu:6.3f} s CPU", flush=True)
    rust_best = min(times["rust"])
    rows = []
    for key, label in names.items():
        best, median = min(times[key]), statistics.median(times[key])
        rows.append(
            {
                "client": label,
                "runs": len(times[key]),
                "best": best,
                "median": median,
                "rps": n / best,
                "x_limit": best / limit,
                "x_rust": best / rust_best,
                "cpu_us": min(cpus[key]) / n * 1e6,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]], n: int) -> None:
    limit = n / CONCURRENCY * DELAY_MS / 1000
    print()
    print(
        f"N = {n:,} predictions, concurrency {CONCURRENCY}, server latency {DELAY_MS:.0f} ms "
        f"(latency limit {limit:.4f} s); wall time = best of the runs (median beside it); client CPU = least\n"
        "process CPU time (user+sys, all threads; the server is another process) per request over the runs"
    )
    print()
    header = "| client | runs | wall time, best (median) | requests/s | × latency limit | × Rust client | client CPU/request |"  # noqa: RUF001
    print(header)
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['client']} | {row['runs']} | {row['best']:.3f} s ({row['median']:.3f} s) | "
            f"{row['rps']:,.0f} | {row['x_limit']:.2f}× | {row['x_rust']:.2f}× | {row['cpu_us']:.0f} µs |"  # noqa: RUF001
        )
    print()


# -- memory --------------------------------------------------------------------------------------------
def memory_child(port: int, in_path: str, out_path: str, n: int) -> None:
    """Runs in a fresh interpreter: one file-to-file batch; prints peak RSS as JSON."""
    from airflow_provider_baseten._batch import read_jsonl
    from airflow_provider_baseten._transport import Settings
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    logging.getLogger().setLevel(logging.WARNING)
    hook = BasetenHook(settings=Settings(api_key=API_KEY, model_id=MODEL_ID, inference_url=inference_url(port)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = hook.predict_batch(
        read_jsonl(in_path), output_path=out_path, total=n, max_concurrency=CONCURRENCY, progress_interval=3600
    )
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kb": before, "peak_kb": peak, "elapsed": elapsed, "succeeded": result.succeeded}))


def memory(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="baseten-bench-") as tmp:
        in_path, out_path = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
        with open(in_path, "w", encoding="utf-8") as fh:
            for item in make_inputs(n):
                fh.write(json.dumps(item) + "\n")
        with serve(0) as port:
            proc = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(port), in_path, out_path, str(n)],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"memory run failed:\n{proc.stderr[-3000:]}")
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        lines = 0
        with open(out_path, encoding="utf-8") as fh:
            for lines, line in enumerate(fh, 1):
                rec = json.loads(line)
                if rec.get("index") != lines - 1 or rec["output"]["echo"]["i"] != lines - 1:
                    raise AssertionError(f"output line {lines} is out of order or wrong: {line[:200]}")
        if lines != n:
            raise AssertionError(f"{lines} output lines for {n} inputs")
        stats["lines"] = lines
        return stats


# -- import cost ---------------------------------------------------------------------------------------
OUR_MODULES = [
    "airflow_provider_baseten.hooks.baseten",
    "airflow_provider_baseten.operators.inference",
    "airflow_provider_baseten.operators.deployment",
    "airflow_provider_baseten.operators.training",
    "airflow_provider_baseten.sensors.inference",
    "airflow_provider_baseten.sensors.deployment",
    "airflow_provider_baseten.sensors.training",
]


def present_modules() -> list[str]:
    return [m for m in OUR_MODULES if importlib.util.find_spec(m) is not None]


def _timed_import(stmt: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def import_cost(reps: int) -> dict[str, Any]:
    mods = present_modules()
    with tempfile.TemporaryDirectory(prefix="baseten-bench-home-") as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        base_stmt = "import airflow.sdk"
        ours_stmt = "import airflow.sdk; import " + ", ".join(mods)
        _timed_import(ours_stmt, env)  # first run writes airflow.cfg and warms the page cache
        base, ours = [], []
        for _ in range(reps):  # interleaved, so drift hits both alike
            base.append(_timed_import(base_stmt, env))
            ours.append(_timed_import(ours_stmt, env))
        heaviest = importtime_top(mods, env)
    deltas = sorted(o - b for o, b in zip(ours, base, strict=True))
    return {
        "modules": mods,
        "reps": reps,
        "base_ms": statistics.median(base) * 1000,
        "ours_ms": statistics.median(ours) * 1000,
        "delta_ms": (statistics.median(ours) - statistics.median(base)) * 1000,
        "paired_delta_ms": statistics.median(deltas) * 1000,
        "heaviest": heaviest,
    }


def importtime_top(mods: list[str], env: dict[str, str], top: int = 6) -> list[tuple[str, float]]:
    """The slowest modules (self time, ms) that our imports add on top of ``airflow.sdk``."""
    code = "import airflow.sdk; import sys; print('---MARK---', file=sys.stderr); import " + ", ".join(mods)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env)
    after = proc.stderr.split("---MARK---", 1)[-1]
    rows = []
    for line in after.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        if len(parts) == 3:
            rows.append((parts[2].strip(), int(parts[0].split(":")[1]) / 1000))
    rows.sort(key=lambda r: -r[1])
    return [("(all modules the provider adds, summed)", sum(ms for _, ms in rows)), *rows[:top]]


# -- main ----------------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--plain-rounds", type=int, default=1)
    p.add_argument("--memory-n", type=int, default=100_000)
    p.add_argument("--import-reps", type=int, default=15)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-imports", action="store_true")
    p.add_argument("--memory-child", nargs=4, metavar=("PORT", "IN", "OUT", "N"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_child:
        port, in_path, out_path, n = a.memory_child
        memory_child(int(port), in_path, out_path, int(n))
        return

    started = time.perf_counter()
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.2f}")
    if not a.skip_throughput:
        print(f"\n## Throughput: {a.n:,} predictions, concurrency {CONCURRENCY}, {DELAY_MS:.0f} ms server latency")
        rows = throughput(a.n, a.rounds, a.plain_rounds)
        print_table(rows, a.n)
    if not a.skip_memory:
        print(f"## Memory: {a.memory_n:,} predictions JSONL -> JSONL, 0 ms server latency, fresh subprocess")
        m = memory(a.memory_n)
        verdict = "OK" if m["peak_kb"] < 300 * 1024 else "OVER the 300 MB target"
        print(
            f"peak RSS {m['peak_kb'] / 1024:.0f} MB (after imports, before the batch: {m['before_kb'] / 1024:.0f} MB); "
            f"{m['lines']:,} lines written in input order in {m['elapsed']:.1f} s "
            f"({a.memory_n / m['elapsed']:,.0f} req/s) -> {verdict} (target < 300 MB)\n"
        )
    if not a.skip_imports:
        print(f"## Import cost: fresh subprocesses, median of {a.import_reps} runs each, AIRFLOW_HOME a temp dir")
        c = import_cost(a.import_reps)
        verdict = "OK" if c["delta_ms"] <= 50 else "OVER the 50 ms target"
        print(f"import airflow.sdk: {c['base_ms']:.0f} ms; plus {', '.join(c['modules'])}: {c['ours_ms']:.0f} ms")
        print(
            f"provider adds {c['delta_ms']:.1f} ms (median of paired differences {c['paired_delta_ms']:.1f} ms) "
            f"-> {verdict} (target <= 50 ms)"
        )
        print("heaviest imports the provider adds (self time, one -X importtime run):")
        for mod, ms in c["heaviest"]:
            print(f"  {ms:7.1f} ms  {mod}")
        print()
    print(f"bench finished in {time.perf_counter() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
