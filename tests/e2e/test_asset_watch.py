"""Event-driven scheduling in a real Airflow (api-server, dag-processor, scheduler, triggerer:
tests/e2e/_support.py) on the emulator: tests/e2e/dags/asset_watch.py's consumer DAG is scheduled on
production of model echo1234, watched by an :class:`EnvironmentChangedTrigger`.

1. The watcher seeds its cursor: no run.
2. A promotion made in the emulator from outside Airflow: exactly one asset-triggered run, carrying the new
   deployment id; no second run after five more polls.
3. The triggerer is SIGKILLed; while none runs, production is promoted again; a new triggerer is started. It
   loads the cursor from the asset state store (Airflow 3.3), so the change made while it was down gives
   exactly one more run (not missed: a re-seeded cursor would give none), with that deployment, and the first
   promotion does not fire again (no spurious run: that would give three). Five more polls: still two runs.

Polls are counted on the emulator's request log; runs and XComs are read from Airflow's REST API.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator
from tests.chaos._support import until
from tests.chaos.test_real_airflow import Airflow
from tests.e2e._support import Component, airflow_env, free_port, migrate, start_airflow

pytestmark = pytest.mark.airflow_e2e

KEY = "e2e-asset-watch-key-not-a-secret"
DAG_ID = "baseten_on_new_production"
MODEL = "echo1234"
STARTUP = 300.0
PHASE = 240.0


class World(Airflow):
    """The emulator, Airflow's REST API, and what the test reads from both."""

    def __init__(self, emu: BasetenEmulator, api: httpx.Client, home: Path, components: list[Component], **kw: Any):
        super().__init__(api, components, home)
        self.emu = emu
        self.env: dict[str, str] = kw["env"]
        self.logs: Path = kw["logs"]
        self.killed: list[Component] = []

    def polls(self) -> int:
        """The watcher's polls: GETs of production of the model, as the emulator logged them."""
        return sum(
            1
            for r in self.emu.requests()
            if r["endpoint"] == "get_environment" and MODEL in r["path"] and r["path"].endswith("/production")
        )

    def runs(self) -> list[dict[str, Any]]:
        r = self.api.get(f"/dags/{DAG_ID}/dagRuns")
        assert r.status_code == 200, r.text
        return sorted(r.json()["dag_runs"], key=lambda run: str(run["run_after"]))

    def promote(self, deployment_id: str) -> None:
        """Promote from outside Airflow, and let the emulator's promotion finish."""
        self.emu.hook().promote_deployment(deployment_id, environment="production", model_id=MODEL)
        self.emu.advance(120)
        assert self.emu.hook().get_environment("production", model_id=MODEL).current_deployment.id == deployment_id

    def more_polls(self, n: int, what: str) -> int:
        start = self.polls()
        until(what, lambda: self.polls() >= start + n, PHASE, self.components)
        return self.polls()

    def finished_run(self, count: int) -> dict[str, Any]:
        """Wait until the consumer has ``count`` runs and the last one ended; return it."""

        def done() -> dict[str, Any] | None:
            runs = self.runs()
            if len(runs) >= count and runs[-1]["state"] in ("success", "failed"):
                return runs[-1]
            return None

        return dict(until(f"asset-triggered run #{count}", done, PHASE, self.components))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("asset_watch")
    home, dags = tmp / "home", tmp / "dags"
    home.mkdir()
    dags.mkdir()
    shutil.copy(Path(__file__).parent / "dags" / "asset_watch.py", dags)
    with BasetenEmulator(api_key=KEY, time_scale=1.0) as emu:
        port = free_port()
        env = airflow_env(
            home,
            port,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW_CONN_BASETEN_DEFAULT=emu.connection_json(),
            # A SIGKILLed triggerer's triggers go to the new one once its heartbeat is this old.
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="10",
        )
        migrate(env)
        components: list[Component] = []
        world: World | None = None
        try:
            base = start_airflow(env, port, tmp, components, (DAG_ID,), STARTUP)
            api = httpx.Client(base_url=f"{base}/api/v2", timeout=30)
            world = World(emu, api, home, components, env=env, logs=tmp)
            yield world
        finally:
            for c in reversed(components):
                c.stop()
            if world is not None:
                for c in world.killed:
                    c.stop()
    for c in components:
        assert not c.alive()


def test_a_promotion_outside_airflow_triggers_exactly_one_run(world: World) -> None:
    w = world
    r = w.api.patch(f"/dags/{DAG_ID}", json={"is_paused": False})  # a watcher polls only for an active consumer
    assert r.status_code == 200, r.text
    w.more_polls(3, "the watcher to poll (seeding its cursor)")
    assert w.runs() == []  # seeding fires nothing: production serving dep1prod is a state, not a change

    w.promote("dep3stag")
    run = w.finished_run(1)
    assert run["state"] == "success" and run["run_type"] == "asset_triggered", run
    assert w.xcom(DAG_ID, run["dag_run_id"], "new_deployment", "return_value") == "dep3stag"

    w.more_polls(5, "five more polls")
    assert len(w.runs()) == 1  # the change fired once; the state that stays true does not fire again

    old = next(c for c in w.components if c.name == "triggerer")
    os.killpg(os.getpgid(old.proc.pid), signal.SIGKILL)  # the triggerer and its trigger runner
    old.proc.wait(10)
    w.components.remove(old)  # dead on purpose: the liveness checks skip it; the fixture still closes it
    w.killed.append(old)
    before = w.polls()
    w.promote("dep1prod")  # while no triggerer runs
    w.components.append(Component("triggerer-2", ["triggerer", "--skip-serve-logs"], w.env, w.logs))
    # The new triggerer takes the watcher over once the dead one's heartbeat is stale, and polls.
    second = w.finished_run(2)
    assert w.polls() > before  # the new triggerer's polls found it
    assert second["state"] == "success" and second["run_type"] == "asset_triggered", second
    assert w.xcom(DAG_ID, second["dag_run_id"], "new_deployment", "return_value") == "dep1prod"
    w.more_polls(5, "five more polls after the restart")
    assert len(w.runs()) == 2  # not missed, not repeated, nothing spurious
    seeded = (w.logs / "triggerer-2.log").read_text(errors="replace").count("seeded the cursor")
    assert seeded == 0  # the cursor came from the asset state store
    print(f"\nAsset watch: 2 promotions -> {len(w.runs())} runs; {w.polls()} polls; triggerer SIGKILLed once")
