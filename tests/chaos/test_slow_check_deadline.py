"""The slow-check deadline in a real Airflow (issue 21 §2): a deferred ``AsyncPredictOperator`` with
``timeout=20`` whose status reads turn slow (150 s each) shortly before the deadline, in a real scheduler
and triggerer (tests/e2e/_support.py), the DAG in tests/chaos/dags/slow_check.py.

Airflow's own deferral timeout (``defer_backstop``: deadline + 2 x ``trigger_timeout_check_interval`` + 60 s,
here deadline + 70 s) fails the task without ``execute_complete`` and without the undo. Before the fix the
trigger sat in the slow read, the backstop fired first and the task's three queued requests were never
cancelled (0 cancels on the emulator). Now the trigger cuts the read at the deadline, cancels the three
(counted on the emulator) and ``execute_complete`` fails the task with the timeout.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from airflow_provider_baseten.emulator.config import Durations, FaultRule
from tests.chaos._support import until
from tests.chaos.report import Row
from tests.chaos.test_real_airflow import Airflow
from tests.e2e._support import Component, emulator_airflow, start_airflow

pytestmark = [pytest.mark.chaos, pytest.mark.airflow_e2e]

KEY = "chaos-slow-check-key-not-a-secret"
STARTUP = 300.0
CHECK_INTERVAL = 5  # [scheduler] trigger_timeout_check_interval: the backstop is the deadline + 70 s
SLOW = 150.0  # seconds each slow status read takes: longer than the backstop's slack
DAG, TASK = "slow_check", "async_slow_check"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_a_slow_check_at_the_deadline_still_times_out_and_cancels(
    tmp_path: Path, chaos_row: Row, capsys: pytest.CaptureFixture[str]
) -> None:
    chaos_row.case = "the slow-check deadline"
    # The worker's first check reads the 3 ids, then each trigger round reads them again: from the third
    # round on (about 8 s into the 20 s wait) every status read hangs 150 s, across the deadline.
    slow = FaultRule("slow", delay=SLOW, endpoints=["get_async_request"], skip=3 + 3 * 2)
    durations = Durations(async_queued=3600.0)  # the requests stay QUEUED
    with BasetenEmulator(api_key=KEY, time_scale=1.0, durations=durations, faults=[slow]) as emu:
        home, port, env = emulator_airflow(
            tmp_path,
            Path(__file__).parent / "dags" / "slow_check.py",
            emu.connection_json(),
            AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL=str(CHECK_INTERVAL),
        )
        components: list[Component] = []
        try:
            base = start_airflow(env, port, tmp_path, components, (DAG,), STARTUP)
            af = Airflow(httpx.Client(base_url=f"{base}/api/v2", timeout=30), components, home)
            af.trigger(DAG, "s1")

            def ended() -> dict[str, Any] | None:
                ti = af.tis(DAG, "s1").get(TASK, {})
                return ti if ti.get("state") in ("failed", "success") else None

            ti = until("the task to end", ended, 300, components)
            ids = af.xcom(DAG, "s1", TASK, "request_ids") or []
        finally:
            for c in reversed(components):
                c.stop()
        log = (home / "logs" / f"dag_id={DAG}" / "run_id=s1" / f"task_id={TASK}" / "attempt=1.log").read_text(
            errors="replace"
        )
        match = re.search(r"Deadline: (\S+) \(in", log)
        assert match, log[-2000:]
        deadline = _ts(match.group(1))
        cancels = [r for r in emu.requests() if r["endpoint"] == "cancel_async_request"]
        slow_reads = emu.counters()["faults"].get("slow", 0)
    ended_at = _ts(ti["end_date"])
    cancel_after = [round(_ts(r["time"]) - deadline, 1) for r in cancels]
    chaos_row.tried = (
        "deferred AsyncPredictOperator(timeout=20, 3 queued requests); from ~8 s on every status read takes 150 s; "
        f"Airflow's deferral backstop at deadline + {2 * CHECK_INTERVAL + 60} s"
    )
    chaos_row.happened = (
        f"{slow_reads} slow read(s); task {ti['state']} {ended_at - deadline:.1f} s after the deadline; "
        f"cancels on the emulator {len(cancels)} at deadline + {cancel_after} s"
    )
    chaos_row.lost = f"{3 - len(cancels)} of the task's requests left queued"
    with capsys.disabled():
        print(f"\nSlow-check deadline: {chaos_row.happened}")
    assert slow_reads >= 1  # the check was slow at the deadline
    assert ti["state"] == "failed" and ti["try_number"] == 1, ti
    assert "Timed out waiting" in log and "Stopped what this task started" in log, log[-3000:]  # execute_complete ran
    assert len(cancels) == 3 and sorted(r["path"].rsplit("/", 1)[-1] for r in cancels) == sorted(ids), cancels
    assert all(0 <= t < 5 for t in cancel_after), cancel_after  # the undo at the deadline, not after the slow read
    assert ended_at - deadline < 2 * CHECK_INTERVAL + 60, ended_at - deadline  # before the backstop
    assert emu.counters()["cancellations"].get("async_request", 0) == 3
