"""Helpers shared by the chaos cases."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_provider_baseten.client.transport import RetryPolicy
from airflow_provider_baseten.emulator import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.dag_support import context as context

# Retries as in production, only with the waits scaled down (for the cases that run in `make test`).
FAST_POLICY = RetryPolicy(max_attempts=6, backoff_base=0.002, max_backoff=0.02, max_retry_after=0.05, total_timeout=60)


def batch_faults(retry_after: float) -> list[FaultRule]:
    """The issue's fault mix on sync predict: 10% 429, 5% 503, 2% 502, 1% dropped, 1% truncated JSON."""
    where = ["production_predict"]
    return [
        FaultRule("429", rate=0.10, endpoints=where, retry_after=retry_after),
        FaultRule("503", rate=0.05, endpoints=where),
        FaultRule("502", rate=0.02, endpoints=where),
        FaultRule("drop", rate=0.01, endpoints=where),
        FaultRule("truncate", rate=0.01, endpoints=where),
    ]


def hook_for(emu: BasetenEmulator, policy: RetryPolicy | None = None, **settings: Any) -> BasetenHook:
    """A hook on ``emu`` (with ``policy`` when given, else the production default)."""
    if policy is not None:
        settings["retry"] = policy
    return BasetenHook(settings=emu.settings(**settings))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a result file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_ordered_once(lines: list[dict[str, Any]], total: int) -> tuple[int, int, int]:
    """(missing, duplicated, out of order-or-wrong) items of a result file of ``total`` echo predictions."""
    indices = [rec["index"] for rec in lines]
    missing = total - len(set(indices) & set(range(total)))
    duplicated = len(indices) - len(set(indices))
    wrong = sum(
        1
        for pos, rec in enumerate(lines)
        if rec["index"] != pos or "output" not in rec or rec["output"]["output"]["i"] != rec["index"]
    )
    return missing, duplicated, wrong


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(...)`` and its wall time."""
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t0


class Outage:
    """A sustained outage: every sync predict answers 503 from the ``after``-th request on, for ``seconds`` of
    the emulator's clock. Deterministic: the server decides by request count and emulated time, not by luck.
    """

    def __init__(self, emu: BasetenEmulator, *, after: int, seconds: float, endpoint: str = "production_predict"):
        from airflow_provider_baseten.emulator.faults import FaultInjector

        self.emu = emu
        self.after = after
        self.seconds = seconds
        self.started: float | None = None  # emulated time of the first 503
        self.seen = 0
        self.errors = 0
        rule = FaultRule("503", endpoints=[endpoint])
        outage = self
        base = FaultInjector([rule], seed=0)

        class _Injector(FaultInjector):
            def pick(self, name: str, surface: str) -> FaultRule | None:
                if name != endpoint:
                    return None
                with base._lock:
                    outage.seen += 1
                    if outage.seen <= outage.after:
                        return None
                    now = emu.core.clock.now()
                    if outage.started is None:
                        outage.started = now
                    if now - outage.started >= outage.seconds:
                        return None
                    outage.errors += 1
                    return rule

        self.injector = _Injector([rule], seed=0)

    def __enter__(self) -> Outage:
        self._saved = self.emu.core.faults
        self.emu.core.faults = self.injector
        return self

    def __exit__(self, *exc: object) -> None:
        self.emu.core.faults = self._saved

    @property
    def over(self) -> bool:
        """Whether the outage has started and ended."""
        return self.started is not None and self.emu.core.clock.now() - self.started >= self.seconds

    def real_seconds_left(self) -> float:
        """Real seconds until the outage ends (at the emulator's current clock speed)."""
        if self.started is None:
            return self.seconds
        left = self.seconds - (self.emu.core.clock.now() - self.started)
        scale = self.emu.core.clock.time_scale
        return max(0.0, left / scale) if scale > 0 else float("inf")


def until(what: str, check: Callable[[], Any], timeout: float, components: list[Any], step: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy (bounded; fails early if a component died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in components:
            assert c.alive(), f"{c.name} exited:\n{c.tail()}"
        got = check()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}:\n"
        + "\n".join(f"--- {c.name}\n{c.tail(25)}" for c in components)
    )


def start_batch_child(
    emu: BasetenEmulator, src: Path, output: str, total: int, concurrency: int, **extra: Any
) -> ForkedChild:
    """Run ``tests.chaos._batch_child`` on ``src`` against ``emu`` in its own process (to be SIGKILLed);
    ``extra`` goes into its spec (e.g. ``kind="embed", batch_size=8``)."""
    spec = {
        "api_key": emu.api_key,
        "url": emu.url,
        "inference_url": emu.inference_url,
        "model_id": emu.model_id,
        "inputs": str(src),
        "output": output,
        "total": total,
        "max_concurrency": concurrency,
        **extra,
    }
    return ForkedChild(spec, src.parent)


# The batch children are forked from one server process per pytest process that has already imported the hook,
# and so Airflow: a fresh interpreter spent ~3.5 s of CPU on those imports per child, several children per case.
# The child is still a process of its own, with its own memory, file descriptors and pid to SIGKILL.
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["tests.chaos._batch_child"])
_children = itertools.count()


class ForkedChild:
    """The batch child as ``subprocess.Popen`` shows it to the cases: ``pid``, ``poll()``, ``wait()``,
    ``communicate()`` (its stdout and stderr, text) and ``returncode`` (``-9`` after a SIGKILL)."""

    def __init__(self, spec: dict[str, Any], folder: Path) -> None:
        n = next(_children)
        self._out, self._err = folder / f"batch-child-{n}.stdout", folder / f"batch-child-{n}.stderr"
        self._process = _FORKS.Process(
            target=_run_batch_child, args=(spec, dict(os.environ), str(self._out), str(self._err)), daemon=True
        )
        self._process.start()
        assert self._process.pid is not None
        self.pid: int = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("tests.chaos._batch_child", timeout or 0)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self._out.read_text(), self._err.read_text()


def _run_batch_child(spec: dict[str, Any], environ: dict[str, str], stdout: str, stderr: str) -> None:
    """In the forked child: the caller's environment, stdout and stderr to files, then the batch."""
    from tests.chaos import _batch_child

    os.environ.clear()
    os.environ.update(environ)
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - fd 1 itself, flushed below
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    try:
        _batch_child.main(spec)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
