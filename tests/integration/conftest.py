"""Shared helpers for the emulator-backed integration tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_baseten.client.transport import RetryPolicy
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.hooks.baseten import BasetenHook

FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, max_backoff=0.05, max_retry_after=0.1, total_timeout=30)

# Every way the hook reaches Baseten: (id, hook settings, whether the gateway's new format answers).
MODES: list[tuple[str, dict[str, Any], bool]] = [
    ("direct-bearer", {"gateway": "baseten"}, True),
    ("direct-api-key", {"gateway": "baseten", "auth_scheme": "Api-Key"}, True),
    ("lowcodeapi-new", {"gateway": "lowcodeapi", "url_format": "new"}, True),
    ("lowcodeapi-old", {"gateway": "lowcodeapi", "url_format": "old"}, True),
    ("lowcodeapi-auto-fallback", {"gateway": "lowcodeapi", "url_format": "auto"}, False),
]


def make_hook(emu: BasetenEmulator, **settings: Any) -> BasetenHook:
    """A hook on the emulator with fast retries."""
    settings.setdefault("retry", FAST_RETRY)
    return BasetenHook(settings=emu.settings(**settings))


@pytest.fixture(params=MODES, ids=[m[0] for m in MODES])
def mode_hook(request: pytest.FixtureRequest, emulator: BasetenEmulator) -> Iterator[BasetenHook]:
    """A hook for each gateway / URL format, on a freshly reset emulator."""
    _, settings, new_format = request.param
    emulator.set_gateway_new_format(new_format)
    hook = make_hook(emulator, **settings)
    yield hook
    hook.close()


class Receiver:
    """A tiny webhook receiver on 127.0.0.1 that records JSON bodies (and can answer with an error)."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = status
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.event.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` webhooks arrived (bounded by ``timeout``)."""
        while len(self.bodies) < count:
            assert self.event.wait(timeout), f"webhook not delivered within {timeout}s"
            self.event.clear()
        return self.bodies

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook receiver answering 200."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def failures() -> Iterator[tuple[dict[str, BaseException], Any]]:
    """``{task_id: exception}`` and the ``on_failure_callback`` that fills it (``dag.test()`` runs it in process).

    Airflow 3.1 gives callbacks no exception, so Airflow's task listener (which gets the error on 3.1 and 3.3
    alike) fills it too; it is unregistered after the test, so it never sees another test's tasks.
    """
    failed: dict[str, BaseException] = {}

    def keep(context: Any) -> None:
        if context.get("exception") is not None:
            failed[context["ti"].task_id] = context["exception"]

    class Listener:
        from airflow.listeners import hookimpl

        @hookimpl
        def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
            if isinstance(error, BaseException):
                failed[task_instance.task_id] = error

    from airflow.listeners.listener import get_listener_manager

    listener = Listener()
    manager = get_listener_manager()
    manager.add_listener(listener)
    yield failed, keep
    manager.pm.unregister(listener)
