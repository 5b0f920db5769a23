"""The AssetWatcher triggers against the emulator on 127.0.0.1: edge-triggered, seeded, durable cursor.

Every change is made from outside the trigger (the emulator's own hook, or its clock); every poll is counted
on the emulator's request log, never in the trigger.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_baseten.triggers import watchers
from airflow_provider_baseten.triggers.watchers import (
    ChainEnvironmentChangedTrigger,
    DeploymentActiveTrigger,
    EnvironmentChangedTrigger,
    TrainingJobFinishedTrigger,
    WatcherTrigger,
)

MODEL = "echo1234"  # seeded: production dep1prod, staging dep3stag (ACTIVE), development dep2devl (SCALED_TO_ZERO)
POLL = 0.05
IMAGE = {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}


class Store:
    """An asset state store accessor (``aget`` / ``aset``), kept across "triggerer restarts" like the DB row."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = value


@pytest.fixture
def emu(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(0)  # the test moves the clock
    watchers._MEMORY.clear()  # each test starts as a fresh triggerer process
    yield emulator
    watchers._MEMORY.clear()


def polls(emu: Any, endpoint: str) -> int:
    """How many requests the emulator answered for ``endpoint``."""
    return sum(1 for r in emu.requests() if r["endpoint"] == endpoint)


class Running:
    """A watcher's ``run()`` consumed in a task, as the triggerer does; its events in order."""

    def __init__(self, trigger: WatcherTrigger, emu: Any, endpoint: str) -> None:
        self.trigger, self.emu, self.endpoint = trigger, emu, endpoint
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._consume())

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def until(self, what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not check():
            assert not self.task.done(), f"the watcher ended: {self.task}"
            assert loop.time() < end, f"timed out waiting for {what}; events {self.events}"
            await asyncio.sleep(0.01)

    async def more_polls(self, n: int) -> None:
        """Until the emulator has answered ``n`` more polls of this watcher."""
        start = polls(self.emu, self.endpoint)
        await self.until(f"{n} more polls", lambda: polls(self.emu, self.endpoint) >= start + n)

    async def stop(self) -> None:
        """A SIGKILLed triggerer: the task is gone, whatever it was doing."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())


def env_watcher(store: Store | None = None, environment: str | None = "production") -> EnvironmentChangedTrigger:
    trigger = EnvironmentChangedTrigger(model_id=MODEL, environment=environment, poll_interval=POLL)
    trigger.asset_state_store = store  # what the 3.3 triggerer injects (None: 3.1-3.2)
    return trigger


def test_environment_watcher_fires_once_per_promotion_and_survives_restarts(emu: Any) -> None:
    hook = emu.hook()
    store = Store()

    async def body() -> None:
        first = Running(env_watcher(store), emu, "get_environment")
        await first.more_polls(3)
        assert first.events == []  # the first poll seeds; a state that stays true never fires
        assert list(store.data.values()) == [{"production": "dep1prod"}]

        await hook.apromote_deployment("dep3stag", environment="production")  # from outside the watcher
        emu.advance(60)
        await first.until("one event", lambda: len(first.events) >= 1)
        await first.more_polls(5)
        assert [(e["deployment_id"], e["previous_deployment_id"]) for e in first.events] == [("dep3stag", "dep1prod")]
        assert first.events[0]["kind"] == "environment_changed" and first.events[0]["environment"] == "production"
        await first.stop()

        # A new triggerer process (nothing in memory) with the same asset state store: nothing is repeated.
        watchers._MEMORY.clear()
        second = Running(env_watcher(store), emu, "get_environment")
        await second.more_polls(5)
        assert second.events == []
        await second.stop()

        # A change made while no triggerer runs is reported by the next one, once.
        watchers._MEMORY.clear()
        await hook.apromote_deployment("dep1prod", environment="production")
        emu.advance(60)
        third = Running(env_watcher(store), emu, "get_environment")
        await third.until("the missed change", lambda: len(third.events) >= 1)
        await third.more_polls(5)
        await third.stop()
        assert [(e["deployment_id"], e["previous_deployment_id"]) for e in third.events] == [("dep1prod", "dep3stag")]

    run(body)


def test_without_a_state_store_a_restart_reseeds_and_repeats_nothing(emu: Any) -> None:
    hook = emu.hook()

    async def body() -> None:
        first = Running(env_watcher(None), emu, "get_environment")
        await first.more_polls(2)
        await hook.apromote_deployment("dep3stag", environment="production")
        emu.advance(60)
        await first.until("one event", lambda: len(first.events) == 1)
        await first.stop()

        watchers._MEMORY.clear()  # 3.1-3.2: a restarted triggerer has no cursor
        second = Running(env_watcher(None), emu, "get_environment")
        await second.more_polls(5)
        await second.stop()
        assert second.events == []  # re-seeded: no repeat (a change while down would be missed: documented)

    run(body)


def test_any_environment_watcher_names_the_environment_that_changed(emu: Any) -> None:
    hook = emu.hook()

    async def body() -> None:
        watch = Running(env_watcher(Store(), environment=None), emu, "list_environments")
        await watch.more_polls(2)
        new = emu.create_deployment(MODEL, name="v3", status="ACTIVE")["id"]
        await hook.apromote_deployment(new, environment="staging")
        emu.advance(60)
        await watch.until("one event", lambda: len(watch.events) >= 1)
        await watch.more_polls(5)
        await watch.stop()
        assert [(e["environment"], e["deployment_id"], e["previous_deployment_id"]) for e in watch.events] == [
            ("staging", new, "dep3stag")
        ]

    run(body)


def test_deployment_active_fires_for_a_new_deployment_not_for_a_wake(emu: Any) -> None:
    hook = emu.hook()

    async def body() -> None:
        trigger = DeploymentActiveTrigger(model_id=MODEL, poll_interval=POLL)
        trigger.asset_state_store = Store()
        watch = Running(trigger, emu, "list_deployments")
        await watch.more_polls(2)
        new = emu.create_deployment(MODEL, name="v3")["id"]  # BUILDING
        await watch.more_polls(2)
        emu.advance(60)  # built, deployed: ACTIVE
        await watch.until("one event", lambda: len(watch.events) >= 1)
        await hook.awake(model_id=MODEL, deployment_id="dep2devl")  # SCALED_TO_ZERO -> WAKING_UP -> ACTIVE
        await watch.more_polls(2)
        emu.advance(60)
        await watch.more_polls(5)
        await watch.stop()
        assert (await hook.aget_deployment("dep2devl", model_id=MODEL)).status == "ACTIVE"
        assert [(e["deployment_id"], e["previous_status"]) for e in watch.events] == [(new, "BUILDING")]

    run(body)


def test_training_watcher_fires_once_per_finished_job(emu: Any) -> None:
    hook = emu.hook()
    project = next(iter(emu.state.projects))

    async def body() -> None:
        done = TrainingJobFinishedTrigger(training_project_id=project, poll_interval=POLL)
        ok_only = TrainingJobFinishedTrigger(
            training_project_id=project, statuses=["TRAINING_JOB_COMPLETED"], poll_interval=POLL
        )
        watch = Running(done, emu, "list_training_jobs")
        watch_ok = Running(ok_only, emu, "list_training_jobs")
        await watch.more_polls(4)
        good = (await hook.acreate_training_job(project, {"image": IMAGE, "name": "good"})).id
        bad = (await hook.acreate_training_job(project, {"image": IMAGE, "name": "bad"})).id
        await watch.more_polls(4)
        await hook.astop_training_job(project, bad)
        emu.advance(3600)
        await watch.until("two events", lambda: len(watch.events) >= 2)
        await watch.more_polls(6)
        await watch.stop()
        await watch_ok.stop()
        assert sorted((e["training_job_id"], e["status"]) for e in watch.events) == sorted(
            [(good, "TRAINING_JOB_COMPLETED"), (bad, "TRAINING_JOB_STOPPED")]
        )
        assert [(e["training_job_id"], e["status"]) for e in watch_ok.events] == [(good, "TRAINING_JOB_COMPLETED")]

    run(body)


def test_serialize_is_deterministic_and_carries_no_secret(emu: Any) -> None:
    a, b = env_watcher(), env_watcher()
    assert a.serialize() == b.serialize()
    path, kwargs = a.serialize()
    assert path == "airflow_provider_baseten.triggers.watchers.EnvironmentChangedTrigger"
    assert kwargs == {
        "model_id": MODEL,
        "environment": "production",
        "conn_id": "baseten_default",
        "poll_interval": POLL,
        "max_status_rps": 20.0,
    }
    assert emu.api_key not in repr(kwargs)
    assert EnvironmentChangedTrigger(**kwargs).serialize() == a.serialize()  # what the triggerer rebuilds
    slower = EnvironmentChangedTrigger(model_id=MODEL, poll_interval=60)
    assert slower.cursor_key == a.cursor_key  # the cursor does not depend on the poll interval


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EnvironmentChangedTrigger(model_id=""), "needs model_id"),
        (lambda: DeploymentActiveTrigger(model_id="m", poll_interval=0), "poll_interval"),
        (lambda: TrainingJobFinishedTrigger(training_project_id="p", statuses=["TRAINING_JOB_RUNNING"]), "end states"),
        (lambda: TrainingJobFinishedTrigger(training_project_id="p", statuses=[]), "end states"),
        (lambda: EnvironmentChangedTrigger(model_id="{{ params.model }}"), "it is not rendered here"),
        (lambda: EnvironmentChangedTrigger(model_id="m", environment="prod/../x"), "Invalid Baseten environment"),
        (lambda: DeploymentActiveTrigger(model_id="a b"), "Invalid Baseten model id"),
        (lambda: TrainingJobFinishedTrigger(training_project_id="p?x=1"), "Invalid Baseten training project id"),
        (lambda: EnvironmentChangedTrigger(model_id="m", max_status_rps=0), "max_status_rps"),
    ],
)
def test_bad_watcher_arguments_fail_before_any_request(emu: Any, make: Callable[[], Any], message: str) -> None:
    before = len(emu.requests())
    with pytest.raises(ValueError, match=message):
        make()
    assert len(emu.requests()) == before


def test_polls_that_fail_neither_fire_nor_end_the_watcher(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_baseten.emulator.config import FaultRule
    from tests.integration.conftest import FAST_RETRY, make_hook

    monkeypatch.setattr(WatcherTrigger, "make_hook", lambda self: make_hook(emu))  # retries in ms, not s
    hook = emu.hook()

    async def body() -> None:
        watch = Running(env_watcher(Store()), emu, "get_environment")
        await watch.more_polls(2)
        # Every answer a 502 for two whole polls (the hook's retries included): the polls fail, the watcher
        # logs them and goes on.
        faults = 2 * FAST_RETRY.max_attempts
        emu.set_faults([FaultRule("html502", endpoints=["get_environment"], times=faults)])
        await watch.until("the faults to be used up", lambda: emu.counters()["faults"].get("html502", 0) >= faults)
        assert watch.events == []
        await hook.apromote_deployment("dep3stag", environment="production")
        emu.advance(60)
        await watch.until("one event", lambda: len(watch.events) >= 1)
        await watch.more_polls(5)
        await watch.stop()
        assert [e["deployment_id"] for e in watch.events] == ["dep3stag"]

    run(body)


class Gate:
    """Holds a watcher between two polls (``close``), so changes happen between polls, not by luck."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = asyncio.Event()
        self.open.set()
        original = WatcherTrigger.poll

        async def gated(trigger: WatcherTrigger, hook: Any) -> Any:
            await self.open.wait()
            return await original(trigger, hook)

        monkeypatch.setattr(WatcherTrigger, "poll", gated)


def test_a_change_undone_between_two_polls_fires_nothing(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Documented: a watcher compares snapshots, so production A -> B -> A between two polls is not seen."""
    hook = emu.hook()
    gate = Gate(monkeypatch)

    async def body() -> None:
        watch = Running(env_watcher(Store()), emu, "get_environment")
        await watch.more_polls(2)
        gate.open.clear()  # the watcher now waits before its next poll
        await hook.apromote_deployment("dep3stag", environment="production")
        emu.advance(60)
        assert (await hook.aget_environment("production", model_id=MODEL)).current_deployment.id == "dep3stag"
        await hook.apromote_deployment("dep1prod", environment="production")
        emu.advance(60)
        assert (await hook.aget_environment("production", model_id=MODEL)).current_deployment.id == "dep1prod"
        gate.open.set()
        await watch.more_polls(5)
        assert watch.events == []
        # ...while a change that stays until the next poll fires once.
        gate.open.clear()
        await hook.apromote_deployment("dep3stag", environment="production")
        emu.advance(60)
        gate.open.set()
        await watch.until("one event", lambda: len(watch.events) >= 1)
        await watch.more_polls(3)
        await watch.stop()
        assert [e["deployment_id"] for e in watch.events] == ["dep3stag"]

    run(body)


def test_polls_keep_to_the_configured_status_budget(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[baseten] status_budget_rps`` spaces the polls (timed on the emulator's answers, 4 per second here)."""
    import time

    from airflow_provider_baseten.client.ratelimit import StatusBudget

    monkeypatch.setenv("AIRFLOW__BASETEN__STATUS_BUDGET_RPS", "4")
    trigger = EnvironmentChangedTrigger(model_id=MODEL, poll_interval=0.001)
    assert trigger.max_status_rps == 4.0 and trigger.serialize()[1]["max_status_rps"] == 4.0
    trigger.asset_state_store = Store()
    # When each poll was let through, taken where the budget grants it: a test that noticed the polls later
    # (a loaded machine) would measure its own lag, not the spacing.
    granted: list[float] = []
    turn = StatusBudget.turn

    async def timed_turn(self: StatusBudget) -> None:
        await turn(self)
        granted.append(time.monotonic())

    monkeypatch.setattr(StatusBudget, "turn", timed_turn)

    async def body() -> None:
        watch = Running(trigger, emu, "get_environment")
        await watch.more_polls(7)
        await watch.stop()

    run(body)
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    # Every request the emulator answered went through the budget (a grant at the stop may not have sent yet).
    answered = polls(emu, "get_environment")
    assert answered >= 7 and answered <= len(granted) <= answered + 1, (answered, granted)
    assert min(gaps) >= 0.25 - 1e-3, gaps  # 4 per second, however fast the loop asks


def test_a_deleted_environment_fires_nothing_until_it_serves_again(emu: Any) -> None:
    """Deleted from outside (404 on every poll): logged, no event, the watcher goes on; recreated serving
    another deployment: one event. A model whose environments are all gone seeds an empty cursor."""
    from airflow_provider_baseten.emulator.objects import Environment

    model = emu.state.models[MODEL]
    staging = model.environments["staging"]

    async def body() -> None:
        one = Running(env_watcher(Store(), environment="staging"), emu, "get_environment")
        await one.more_polls(2)
        del model.environments["staging"]
        await one.more_polls(4)  # 404s (BasetenNotFoundError): logged, polling goes on
        assert one.events == [] and emu.requests()[-1]["status"] == 404
        model.environments["staging"] = Environment("staging", MODEL, staging.created, "dep1prod")
        await one.until("one event", lambda: len(one.events) >= 1)
        await one.more_polls(3)
        await one.stop()
        assert [(e["deployment_id"], e["previous_deployment_id"]) for e in one.events] == [("dep1prod", "dep3stag")]

        saved = dict(model.environments)
        model.environments.clear()
        try:
            store = Store()
            every = Running(env_watcher(store, environment=None), emu, "list_environments")
            await every.more_polls(3)
            assert every.events == [] and list(store.data.values()) == [{}]
        finally:
            model.environments.update(saved)
        serving = sorted(name for name, env in saved.items() if env.current_deployment_id)
        await every.until("the environments back", lambda: len(every.events) >= len(serving))
        await every.more_polls(2)
        await every.stop()
        assert sorted(e["environment"] for e in every.events) == serving and "production" in serving
        assert {e["previous_deployment_id"] for e in every.events} == {None}

    run(body)


def test_one_trigger_row_on_two_assets_keeps_the_cursor_on_both(emu: Any) -> None:
    """Identical watchers on two assets are one trigger row; its store has an accessor per asset (the
    shorthand ``aget`` raises there): the cursor is kept on each, so losing one asset's state repeats nothing."""

    class TwoAssets:
        def __init__(self) -> None:
            self._by_name = {"a": Store(), "b": Store()}
            self._by_uri: dict[str, Store] = {}

        async def aget(self, key: str, default: Any = None) -> Any:
            raise ValueError("Task has 2 concrete inlets and outlets")

        aset = aget

    hook = emu.hook()
    store = TwoAssets()

    async def body() -> None:
        first = Running(env_watcher(store), emu, "get_environment")  # type: ignore[arg-type]
        await first.more_polls(2)
        await hook.apromote_deployment("dep3stag", environment="production")
        emu.advance(60)
        await first.until("one event", lambda: len(first.events) >= 1)
        await first.stop()
        assert [s.data for s in store._by_name.values()] == [{first.trigger.cursor_key: {"production": "dep3stag"}}] * 2

        watchers._MEMORY.clear()
        store._by_name["a"].data.clear()  # one asset's state lost (the asset was re-created)
        second = Running(env_watcher(store), emu, "get_environment")  # type: ignore[arg-type]
        await second.more_polls(4)
        await second.stop()
        assert first.events and second.events == []

    run(body)


def test_chain_environment_watcher_fires_once_per_chain_promotion(emu: Any) -> None:
    hook = emu.hook()
    store = Store()
    new = emu.state.create_chain_deployment("chain123")["id"]

    async def body() -> None:
        trigger = ChainEnvironmentChangedTrigger(chain_id="chain123", environment="staging", poll_interval=POLL)
        trigger.asset_state_store = store
        watching = Running(trigger, emu, "get_chain_environment")
        await watching.more_polls(3)
        assert watching.events == [] and list(store.data.values()) == [{"staging": "chain123dep"}]
        emu.advance(60)  # built
        await hook.apromote_to_chain_environment("chain123", "staging", new)  # from outside the watcher
        await watching.more_polls(3)
        assert watching.events == []  # still the candidate: nothing serves it yet
        emu.advance(60)
        await watching.until("one event", lambda: len(watching.events) >= 1)
        await watching.more_polls(5)
        await watching.stop()
        assert [
            (e["kind"], e["chain_id"], e["environment"], e["deployment_id"], e["previous_deployment_id"])
            for e in watching.events
        ] == [("chain_environment_changed", "chain123", "staging", new, "chain123dep")]

    run(body)
