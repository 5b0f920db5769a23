"""scale_for_batch: raise min_replica for a batch, restore it on success, failure and kill; overlapping leases.

Every setting is read back from the emulator (the deployment's autoscaling settings over HTTP), and the
number of autoscaling updates is the emulator's own request counter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.operators._scale import ScaleForBatch, check_min_replica

from .conftest import make_hook

DEP = "dep1prod"
UPDATES = "update_deployment_autoscaling_settings"


class FileStore:
    """A lease store that several processes share (a JSON file), like Airflow Variables do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str) -> str | None:
        return self._all().get(key)

    def set(self, key: str, value: str | None) -> None:
        data = self._all()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # writers never share one
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    warning = info


def settings(hook: Any) -> tuple[int, int]:
    s = hook.get_deployment(DEP).autoscaling_settings
    return s.min_replica, s.max_replica


def updates(emulator: Any) -> int:
    return int(emulator.counters()["requests"].get(UPDATES, 0))


def scaler(hook: Any, store: Any, lease: str, n: int, **kw: Any) -> ScaleForBatch:
    kw.setdefault("until", None)
    kw.setdefault("settle", 0.02)
    return ScaleForBatch(
        hook,
        model_id=None,
        environment="production",
        deployment_id=None,
        min_replica=n,
        lease_id=lease,
        log=Log(),
        store=store,
        **kw,
    )


@pytest.fixture
def hook(emulator: Any) -> Any:
    h = make_hook(emulator)
    yield h
    h.close()


def test_raised_for_the_batch_and_restored_after_success(emulator: Any, hook: Any, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "vars.json")
    assert settings(hook) == (0, 1)
    with scaler(hook, store, "run/a", 3).held():
        assert settings(hook) == (3, 3)  # max_replica raised with it: Baseten refuses min > max
        assert emulator.counters()["requests"]["deployment_wake"] == 1  # woken, so the batch skips the cold start
    assert settings(hook) == (0, 1)
    assert updates(emulator) == 2  # one raise, one restore
    assert store._all() == {}  # the last lease out deletes the record


def test_restored_when_the_batch_fails(emulator: Any, hook: Any, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "vars.json")
    with pytest.raises(RuntimeError, match="batch failed"), scaler(hook, store, "run/a", 2).held():
        assert settings(hook) == (2, 2)
        raise RuntimeError("batch failed")
    assert settings(hook) == (0, 1)
    assert updates(emulator) == 2


@pytest.mark.parametrize(("first", "second"), [(3, 5), (5, 3)])
def test_overlapping_batches_keep_the_highest_and_the_last_one_restores(
    emulator: Any, hook: Any, tmp_path: Path, first: int, second: int
) -> None:
    store = FileStore(tmp_path / "vars.json")
    a, b = scaler(hook, store, "run/a", first), scaler(hook, store, "run/b", second)
    a.acquire()
    b.acquire()
    top = max(first, second)
    assert settings(hook)[0] == top
    a.release()  # A ends first: B still runs, so nothing drops below what B asked for
    assert settings(hook)[0] == second
    b.release()
    assert settings(hook) == (0, 1)
    # 3 to 5: raise, raise, (A's release changes nothing), restore. 5 to 3: raise, lower to B's 3, restore.
    assert updates(emulator) == 3


def test_two_batches_starting_at_once_both_hold_their_lease(emulator: Any, hook: Any, tmp_path: Path) -> None:
    """Variables have no compare-and-set: a lease lost to a simultaneous write is written again."""
    store = FileStore(tmp_path / "vars.json")
    barrier = threading.Barrier(2)
    hooks = [make_hook(emulator), make_hook(emulator)]
    scalers = [scaler(h, store, f"run/{i}", 2 + i) for i, h in enumerate(hooks)]

    def start(s: ScaleForBatch) -> None:
        barrier.wait()
        s.acquire()

    threads = [threading.Thread(target=start, args=(s,)) for s in scalers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    record = json.loads(next(iter(store._all().values())))
    assert sorted(record["leases"]) == ["run/0", "run/1"]
    assert record["baseline"] == {"min_replica": 0, "max_replica": 1}
    assert settings(hook)[0] == 3
    for s in scalers:
        s.release()
    assert settings(hook) == (0, 1)
    for h in hooks:
        h.close()


def test_a_setting_changed_by_hand_meanwhile_is_left_alone(emulator: Any, hook: Any, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "vars.json")
    s = scaler(hook, store, "run/a", 2)
    s.acquire()
    hook.update_autoscaling_settings(deployment_id=DEP, min_replica=1)  # an operator's own change
    s.release()
    assert settings(hook)[0] == 1
    assert any("changed meanwhile" in line for line in s.log.lines)


def test_a_retry_after_sigkill_reuses_its_lease_and_restores(emulator: Any, hook: Any, tmp_path: Path) -> None:
    """A worker SIGKILLed mid-batch never releases; its retry (same lease id) restores the baseline."""
    store_path = tmp_path / "vars.json"
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(store_path), str(ready), _settings_json(emulator)],
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the child died before acquiring"
            assert time.monotonic() < deadline, "the child did not acquire in 60 s"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert settings(hook) == (4, 4)  # the killed try left it raised
    store = FileStore(store_path)
    retry = scaler(hook, store, "dag/run/predict/3", 4)
    with retry.held():
        assert settings(hook) == (4, 4)
    assert settings(hook) == (0, 1)
    assert store._all() == {}
    assert updates(emulator) == 2  # the killed try's raise and the retry's restore; nothing more


_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, ".")
from airflow_provider_baseten.client.transport import Settings
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.integration.test_scale_for_batch import FileStore, scaler
hook = BasetenHook(settings=Settings(**json.loads(sys.argv[3])))
scaler(hook, FileStore(Path(sys.argv[1])), "dag/run/predict/3", 4).acquire()
Path(sys.argv[2]).write_text("ok")
time.sleep(600)
"""


def test_an_expired_lease_is_dropped(emulator: Any, hook: Any, tmp_path: Path) -> None:
    """A task killed with no retry left cannot release; its lease ends at its deadline, and the next batch
    converges the deployment to the live leases (here: lowers it), then restores the baseline."""
    store = FileStore(tmp_path / "vars.json")
    killed = {"min_replica": 5, "until": time.time() - 1}  # what the killed task left, deadline passed
    key = f"baseten_scale_leases.{hook.settings.model_id}.{DEP}"
    store.set(key, json.dumps({"baseline": {"min_replica": 0, "max_replica": 1}, "leases": {"run/killed": killed}}))
    hook.update_autoscaling_settings(deployment_id=DEP, min_replica=5, max_replica=5)
    with scaler(hook, store, "run/b", 2).held():
        assert settings(hook) == (2, 2)
    assert settings(hook) == (0, 1)
    assert store._all() == {}


def test_bad_values_fail_before_any_request(emulator: Any) -> None:
    for bad in (0, -1, 101, 2.5, True, "3"):
        with pytest.raises(BasetenValidationError, match="scale_for_batch"):
            check_min_replica(bad)
    assert check_min_replica(None) is None
    assert emulator.counters()["requests"] == {}


def _settings_json(emulator: Any) -> str:
    s = emulator.settings()
    return json.dumps(
        {
            "api_key": emulator.api_key,
            "management_url": s.management_url,
            "inference_url": s.inference_url,
            "gateway_url": s.gateway_url,
            "model_id": s.model_id,
        }
    )


# -- PredictOperator(scale_for_batch=...) ---------------------------------------------------------------
def test_operator_restores_after_a_failed_batch_in_a_real_dag_run(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dag.test(): the batch fails (the model fails on every input), the task fails, and the setting is
    given back; the lease lived in a real Airflow Variable."""
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_provider_baseten.operators.inference import PredictOperator
    from tests.dag_support import run_dag, task_states

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    with DAG("t_scale_fail", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        PredictOperator(task_id="p", model_inputs=[{"fail": True}] * 3, scale_for_batch=3, max_failures=0)
    run = run_dag(dag)
    assert task_states(run) == {"p": "failed"}
    hook = make_hook(emulator)
    try:
        assert settings(hook) == (0, 1)
    finally:
        hook.close()
    assert updates(emulator) == 2  # raised, then given back


def test_operator_on_kill_gives_the_setting_back_mid_batch(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow calls on_kill on SIGTERM (a user marking the task failed, a timeout): the lease is released then."""
    from airflow_provider_baseten.operators import _scale
    from airflow_provider_baseten.operators.inference import PredictOperator
    from tests.dag_support import context

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(_scale, "VariableStore", lambda: FileStore(tmp_path / "vars.json"))
    emulator.set_predict_latency(0.2)
    # 16 inputs at 0.2 s, two at a time: the batch runs ~1.6 s, long enough to be killed mid-way (40 took 4 s)
    op = PredictOperator(task_id="p", model_inputs=[{"i": i} for i in range(16)], max_concurrency=2, scale_for_batch=2)
    ctx = context()
    ctx["ti"].dag_id, ctx["ti"].run_id, ctx["ti"].task_id, ctx["ti"].map_index = "d", "r", "p", -1
    worker = threading.Thread(target=op.execute, args=(ctx,))
    worker.start()
    hook = make_hook(emulator)
    try:
        deadline = time.monotonic() + 30
        while emulator.counters()["requests"].get("production_predict", 0) < 2:  # the batch is running
            assert time.monotonic() < deadline, "the batch never started"
            time.sleep(0.05)
        assert settings(hook) == (2, 2)
        op.on_kill()
        assert settings(hook) == (0, 1)  # given back at once, while the batch is still going
        assert worker.is_alive()
        worker.join(60)
        assert updates(emulator) == 2  # the end of execute does not restore twice
    finally:
        emulator.set_predict_latency(0)
        hook.close()


# -- hostile review (issue 16r) ------------------------------------------------------------------------
def test_a_max_replica_changed_by_hand_meanwhile_is_left_alone(emulator: Any, hook: Any, tmp_path: Path) -> None:
    """Someone raises max_replica by hand mid-batch (min_replica untouched): the restore gives back only
    min_replica, and the hand-set max_replica stays (was: overwritten with the baseline's 1)."""
    store = FileStore(tmp_path / "vars.json")
    s = scaler(hook, store, "run/a", 2)
    s.acquire()
    assert settings(hook) == (2, 2)
    hook.update_autoscaling_settings(deployment_id=DEP, max_replica=10)  # an operator's own change
    s.release()
    assert settings(hook) == (0, 10)


def test_a_min_replica_changed_by_hand_still_gives_back_the_max_replica_it_raised(
    emulator: Any, hook: Any, tmp_path: Path
) -> None:
    """min_replica changed by hand is left alone; the max_replica the lease raised (and nobody touched) is
    lowered again, but never below the hand-set min_replica (Baseten refuses min > max)."""
    store = FileStore(tmp_path / "vars.json")
    s = scaler(hook, store, "run/a", 4)
    s.acquire()
    hook.update_autoscaling_settings(deployment_id=DEP, min_replica=2)
    s.release()
    assert settings(hook) == (2, 2)


def test_a_restore_answered_502_after_it_was_applied_restores_once(emulator: Any, hook: Any, tmp_path: Path) -> None:
    """The restore's PATCH is applied by the server, then the client gets a 502: it is sent again (a PATCH of
    absolute values is idempotent), the settings end at the baseline and the record is gone."""
    from airflow_provider_baseten.emulator import FaultRule

    store = FileStore(tmp_path / "vars.json")
    s = scaler(hook, store, "run/a", 3)
    s.acquire()
    emulator.set_faults([FaultRule("502", endpoints=[UPDATES], times=1, after=True)])
    s.release()
    assert settings(hook) == (0, 1)
    assert updates(emulator) == 3  # the raise, the restore the client never heard of, and its resend
    assert store._all() == {}


@pytest.mark.parametrize("next_batch", ["the retry", "another batch"])
def test_a_restore_that_keeps_failing_keeps_the_baseline_for_the_next_batch(
    emulator: Any, hook: Any, tmp_path: Path, next_batch: str
) -> None:
    """Every restore attempt fails (the API is down): the baseline must stay recorded, so the next batch on
    the deployment (the task's retry, or any other) gives it back (was: the record was deleted before the
    restore, the next batch took the raised 3 as the baseline and the deployment stayed at 3 for ever)."""
    from airflow_provider_baseten.emulator import FaultRule

    store = FileStore(tmp_path / "vars.json")
    s = scaler(hook, store, "dag/run/p/-1", 3)
    s.acquire()
    emulator.set_faults([FaultRule("503", endpoints=[UPDATES])])
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises once its retries are spent
        s.release()
    emulator.set_faults([])
    assert settings(hook) == (3, 3)
    record = json.loads(next(iter(store._all().values())))
    assert record["baseline"] == {"min_replica": 0, "max_replica": 1}
    lease, n = ("dag/run/p/-1", 3) if next_batch == "the retry" else ("other/run/p/-1", 2)
    with scaler(hook, store, lease, n).held():
        assert settings(hook) == (n, n)
    assert settings(hook) == (0, 1)
    assert store._all() == {}


def test_a_batch_whose_raise_fails_leaves_nothing_behind(emulator: Any, hook: Any, tmp_path: Path) -> None:
    """The raise itself fails (refused before the server acted): the batch never runs, the lease is
    dropped, nothing was changed and nothing is 'restored'; the settings are the deployment's own."""
    from airflow_provider_baseten.emulator import FaultRule

    store = FileStore(tmp_path / "vars.json")
    emulator.set_faults([FaultRule("503", endpoints=[UPDATES])])
    ran = False
    with pytest.raises(Exception), scaler(hook, store, "run/a", 3).held():  # noqa: B017
        ran = True
    emulator.set_faults([])
    assert not ran
    assert settings(hook) == (0, 1)
    assert store._all() == {}


def test_a_sigkill_between_dropping_the_lease_and_restoring_is_repaired_by_the_next_batch(
    emulator: Any, hook: Any, tmp_path: Path
) -> None:
    """The last lease is dropped from the record, then the worker is SIGKILLed before its restore is sent:
    the baseline stays recorded and the next batch (a different task) converges, then restores it."""
    store_path = tmp_path / "vars.json"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD_RELEASE, str(store_path), _settings_json(emulator)],
        cwd=str(Path(__file__).resolve().parents[2]),
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL
    assert settings(hook) == (4, 4)  # raised, never restored
    assert updates(emulator) == 1
    record = json.loads(next(iter(FileStore(store_path)._all().values())))
    assert record == {"baseline": {"min_replica": 0, "max_replica": 1}, "leases": {}}
    with scaler(hook, FileStore(store_path), "other/run/p/-1", 2).held():
        assert settings(hook) == (2, 2)  # the killed release's 4 is not kept
    assert settings(hook) == (0, 1)
    assert FileStore(store_path)._all() == {}
    assert updates(emulator) == 3  # the raise, the next batch's convergence, its restore


_CHILD_RELEASE = """
import json, os, signal, sys
from pathlib import Path
sys.path.insert(0, ".")
from airflow_provider_baseten.client.transport import Settings
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.integration.test_scale_for_batch import FileStore, scaler
hook = BasetenHook(settings=Settings(**json.loads(sys.argv[2])))
s = scaler(hook, FileStore(Path(sys.argv[1])), "dag/run/predict/3", 4)
s.acquire()
hook.update_autoscaling_settings = lambda **kw: os.kill(os.getpid(), signal.SIGKILL)  # killed as it restores
s.release()
"""


def test_a_batch_starting_as_the_last_one_ends_records_the_true_baseline(
    emulator: Any, hook: Any, tmp_path: Path
) -> None:
    """B starts while A, the last lease, ends: A restores and deletes the record between B's first look at
    the deployment and B's lease being written. B must record the deployment's own 0, not A's 3 (was: B read
    the settings first, so the baseline became 3 and the deployment stayed at 3 after both batches)."""
    store = FileStore(tmp_path / "vars.json")
    a = scaler(hook, store, "run/a", 3)
    a.acquire()
    assert settings(hook) == (3, 3)

    class EndsAOnFirstRead(FileStore):
        first = True

        def get(self, key: str) -> str | None:
            if self.first:
                self.first = False
                a.release()  # A's release runs to the end right here
            return super().get(key)

    b = scaler(hook, EndsAOnFirstRead(tmp_path / "vars.json"), "run/b", 2)
    with b.held():
        assert settings(hook) == (2, 2)
    assert settings(hook) == (0, 1)
    assert store._all() == {}
