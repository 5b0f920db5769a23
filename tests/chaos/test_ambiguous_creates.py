"""Case 10.1: creates that fail *after* the server acted (500/502/504, a dropped connection, a read timeout).

For every create endpoint the emulator commits the create and then fails the answer. The objects are counted
in the emulator's state, never in the client: each case must leave exactly one object, whether the hook then
finds it by name (named training job, environment) or raises an error that says it may exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_baseten.client.transport import Timeouts
from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenError
from tests.chaos._support import FAST_POLICY, hook_for
from tests.chaos.report import Row

PROJECT = "proj1234"
JOB = {"image": {"base_image": "pytorch:2.3"}}
FAULTS = ("500", "502", "504", "drop", "timeout")


def _count(emu: BasetenEmulator, what: str) -> int:
    st = emu.state
    with st.lock:
        if what == "job":
            return len(st.jobs)
        if what == "request":
            return len(st.async_requests)
        if what == "key":
            return len(st.api_keys)
        return sum(len(m.environments) for m in st.models.values())


# (label, endpoint, what to count, the call; n is unique per call)
CREATES: list[tuple[str, str, str, Callable[[Any, int], Any]]] = [
    (
        "training job (named)",
        "create_training_job",
        "job",
        lambda h, n: h.create_training_job(PROJECT, {**JOB, "name": f"j{n}"}),
    ),
    ("training job (no name)", "create_training_job", "job", lambda h, n: h.create_training_job(PROJECT, JOB)),
    ("async predict", "production_async_predict", "request", lambda h, n: h.async_predict({"n": n})),
    ("environment", "create_environment", "env", lambda h, n: h.create_environment(f"env{n}")),
    ("API key", "create_api_key", "key", lambda h, n: h.create_api_key(name=f"k{n}")),
]


def _rule(kind: str, endpoint: str) -> FaultRule:
    if kind == "timeout":  # the answer comes after the client's read timeout
        return FaultRule("slow", endpoints=[endpoint], times=1, after=True, delay=0.6)
    return FaultRule(kind, endpoints=[endpoint], times=1, after=True)


def test_ambiguous_creates_leave_exactly_one_object(emulator: BasetenEmulator, chaos_row: Row) -> None:
    chaos_row.case = "10.1 ambiguous creates"
    emulator.set_time_scale(0)
    hook = hook_for(emulator, FAST_POLICY, timeouts=Timeouts(management_read=0.3, predict_read=0.3))
    results: dict[str, dict[str, str]] = {}
    wrong: list[str] = []
    n = 0
    for label, endpoint, what, call in CREATES:
        results[label] = {}
        for kind in FAULTS:
            n += 1
            before, sent = _count(emulator, what), emulator.counters()["requests"].get(endpoint, 0)
            emulator.set_faults([_rule(kind, endpoint)])
            try:
                call(hook, n)
                outcome = "found"
            except BasetenError as exc:
                outcome = "error (may exist)" if exc.maybe_created else f"error {type(exc).__name__}"
            made = _count(emulator, what) - before
            posts = emulator.counters()["requests"].get(endpoint, 0) - sent
            results[label][kind] = f"{made} object(s), {posts} POST, {outcome}"
            if made != 1 or posts != 1 or outcome.startswith("error B"):
                wrong.append(f"{label} x {kind}: {results[label][kind]}")
            emulator.clear_faults()
    chaos_row.tried = (
        f"{len(CREATES)} creates x {len(FAULTS)} faults applied after the emulator committed the create "
        "(500, 502, 504, drop, answer after the client's 0.3 s read timeout)"
    )
    chaos_row.happened = "; ".join(
        f"{label}: objects per fault {[int(v.split()[0]) for v in r.values()]}, "
        + "/".join(sorted({v.split(", ")[-1] for v in r.values()}))
        for label, r in results.items()
    )
    chaos_row.lost = f"{len(wrong)} cases with a second object or a resend"
    chaos_row.metrics.update(results=results)
    assert not wrong, wrong
    # The hook found by name what it could, and said "may exist" for the rest.
    assert all(v.endswith("found") for v in results["training job (named)"].values())
    assert all(v.endswith("found") for v in results["environment"].values())
    assert all(v.endswith("error (may exist)") for v in results["async predict"].values())
