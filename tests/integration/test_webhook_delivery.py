"""The emulator delivers webhooks as Baseten does (signed, rotation, two attempts, retry on 5xx only), into the
provider's own receiver served by uvicorn on 127.0.0.1. Objects are counted in the receiver's store and in the
emulator's per-request attempt log, never in the client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from airflow_provider_baseten.emulator.server import BasetenEmulator, bind_socket, uvicorn_config
from airflow_provider_baseten.webhooks.app import create_app
from airflow_provider_baseten.webhooks.settings import ReceiverSettings, SecretSource
from airflow_provider_baseten.webhooks.store import ResultStore
from tests.integration.conftest import make_hook

OLD, NEW = "whsec-old-rotation", "whsec-new-rotation"
DELIVERY = ["webhook_delivery"]


class Served:
    """The webhook receiver app on 127.0.0.1 in a thread."""

    def __init__(self, store: Path, secrets: tuple[str, ...]) -> None:
        self.store = ResultStore(store)
        app = create_app(ReceiverSettings(store=store, secrets=SecretSource.static(secrets)))
        sock = bind_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/deliveries"
        self.server = uvicorn.Server(uvicorn_config(app))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def make(*secrets: str, name: str = "store") -> Served:
        started.append(Served(tmp_path / name, secrets))
        return started[-1]

    yield make
    for s in started:
        s.stop()


def finished(emu: BasetenEmulator, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The emulator's delivery record for ``request_id``, once its last attempt is done (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with emu.state.lock:
            for entry in emu.state.webhook_log:
                if entry["request_id"] == request_id:
                    return dict(entry)
        time.sleep(0.01)
    raise AssertionError(f"delivery of {request_id} did not finish in {timeout}s")


def submit(emu: BasetenEmulator, url: str) -> str:
    return make_hook(emu).async_predict({"q": 1}, webhook_endpoint=url).request_id


def test_rotation_signs_with_both_secrets_so_either_receiver_accepts(emulator_factory: Any, serve: Any) -> None:
    emu = emulator_factory(time_scale=100, webhook_secret=NEW, webhook_secrets=[OLD])
    only_old, only_new, neither = serve(OLD, name="old"), serve(NEW, name="new"), serve("other", name="x")
    ids = [submit(emu, r.url) for r in (only_old, only_new, neither)]
    outcomes = [finished(emu, rid) for rid in ids]
    assert [o["attempts"] for o in outcomes] == [["HTTP 200"], ["HTTP 200"], ["HTTP 401"]]  # a 401 is not retried
    assert only_old.store.list_ids() == {ids[0]} and only_new.store.list_ids() == {ids[1]}
    assert neither.store.list_ids() == set()
    assert make_hook(emu).get_async_request(ids[2]).status == "WEBHOOK_FAILED"


def test_a_rotation_at_run_time_changes_the_signing_secrets(emulator_factory: Any, serve: Any) -> None:
    emu = emulator_factory(time_scale=100, webhook_secret=OLD)
    receiver = serve(NEW)
    first = submit(emu, receiver.url)
    assert finished(emu, first)["attempts"] == ["HTTP 401"]
    emu.core.config.webhook_secret = None
    emu.core.config.webhook_secrets = [NEW, OLD]
    second = submit(emu, receiver.url)
    assert finished(emu, second)["attempts"] == ["HTTP 200"]
    assert receiver.store.list_ids() == {second}


@pytest.mark.parametrize(
    ("rule", "attempts", "stored"),
    [
        pytest.param({"kind": "500"}, ["HTTP 500", "HTTP 200"], True, id="500-retried"),
        # The receiver stored the body but its answer was lost: the retry is a duplicate, stored once.
        pytest.param({"kind": "503", "after": True}, ["HTTP 503", "HTTP 200"], True, id="lost-answer-duplicate"),
        pytest.param({"kind": "slow", "delay": 30}, ["ReadTimeout", "HTTP 200"], True, id="slow-timeout-retried"),
        pytest.param({"kind": "429"}, ["HTTP 429"], False, id="4xx-not-retried"),
    ],
)
def test_one_failed_attempt(
    emulator_factory: Any, serve: Any, rule: dict[str, Any], attempts: list[str], stored: bool
) -> None:
    # Only the slow case needs a short timeout (1 s against a 30 s answer); a 0.3 s timeout for every attempt made
    # an fsync under load look like a lost delivery.
    emu = emulator_factory(time_scale=100, webhook_secret=NEW, webhook_timeout=1.0 if rule["kind"] == "slow" else 10.0)
    receiver = serve(NEW)
    emu.set_faults([{**rule, "endpoints": DELIVERY, "times": 1}])
    rid = submit(emu, receiver.url)
    assert finished(emu, rid)["attempts"] == attempts
    assert receiver.store.list_ids() == ({rid} if stored else set())
    assert len(list(Path(receiver.store.root).iterdir())) == int(stored)  # one object, no temp file left
    assert emu.counters()["webhooks"] == {"attempts": len(attempts), "delivered" if stored else "failed": 1}


def test_a_receiver_down_for_both_attempts_loses_the_result_and_it_is_counted(
    emulator_factory: Any, serve: Any
) -> None:
    emu = emulator_factory(time_scale=100, webhook_secret=NEW)
    receiver = serve(NEW)
    emu.set_faults([{"kind": "drop", "endpoints": DELIVERY, "times": 2}])
    rid = submit(emu, receiver.url)
    entry = finished(emu, rid)
    assert entry["attempts"] == ["ConnectError", "ConnectError"] and entry["ok"] is False
    assert emu.counters()["webhooks"] == {"attempts": 2, "failed": 1}
    assert receiver.store.list_ids() == set()
    assert make_hook(emu).get_async_request(rid).status == "WEBHOOK_FAILED"


def test_the_retry_waits_about_two_seconds_on_the_emulated_clock(emulator_factory: Any, serve: Any) -> None:
    emu = emulator_factory(time_scale=0, webhook_secret=NEW)
    receiver = serve(NEW)
    emu.set_faults([{"kind": "500", "endpoints": DELIVERY, "times": 1}])
    rid = submit(emu, receiver.url)
    emu.advance(1.5)  # queued 0.5 s + running 1 s: done, the first attempt goes out
    deadline = time.monotonic() + 10
    while emu.counters()["webhooks"].get("attempts") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    emu.advance(1.9)  # not yet 2 s: no second attempt
    time.sleep(0.2)
    assert emu.counters()["webhooks"] == {"attempts": 1}
    emu.advance(0.1)
    assert finished(emu, rid)["attempts"] == ["HTTP 500", "HTTP 200"]
    assert receiver.store.list_ids() == {rid}


def test_an_api_wide_fault_rule_does_not_break_deliveries(emulator_factory: Any, serve: Any) -> None:
    emu = emulator_factory(time_scale=100, webhook_secret=NEW)
    receiver = serve(NEW)
    emu.set_faults([{"kind": "500", "endpoints": ["get_async_request"]}])
    rid = submit(emu, receiver.url)
    assert finished(emu, rid)["attempts"] == ["HTTP 200"]


def test_a_reset_mid_delivery_drops_the_retry_uncounted(emulator_factory: Any, serve: Any) -> None:
    """A delivery waiting for its retry when the emulator is reset (the next test starts) is dropped: it must not
    reach the receiver again nor be counted in the fresh state."""
    emu = emulator_factory(time_scale=0, webhook_secret=NEW)  # the retry waits on a frozen clock
    receiver = serve(NEW)
    emu.set_faults([{"kind": "500", "endpoints": DELIVERY, "times": 1}])
    submit(emu, receiver.url)
    emu.advance(30)  # the request ends; its retry will wait 2 s on the clock, stopped again
    deadline = time.monotonic() + 10
    while emu.counters()["webhooks"].get("attempts", 0) < 1:
        assert time.monotonic() < deadline, "the first attempt was never made"
        time.sleep(0.01)
    dropped = emu.counters()["reset"]["dropped"]
    emu.reset()
    emu.advance(60)  # the retry is due now
    while emu.counters()["reset"]["dropped"] == dropped:
        assert time.monotonic() < deadline + 10, "the delivery was neither dropped nor retried"
        time.sleep(0.01)
    assert emu.counters()["webhooks"] == {} and receiver.store.list_ids() == set()
