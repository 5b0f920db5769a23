"""The standalone receiver's own bounds, on a real process on 127.0.0.1: clients that hold connections open with
slow headers cannot make it take more (the rest get 503, which Baseten retries), and an oversize request head
is refused. What a proxy's header timeout adds is documented, not emulated."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from dev.local_airflow import free_port


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One receiver process for the module (each start imports the provider: seconds of CPU)."""
    port = free_port()
    cmd = [sys.executable, "-m", "airflow_provider_baseten.webhooks", "--port", str(port), "--store",
           str(tmp_path_factory.mktemp("store")), "--secret-env", "WH_SECRET", "--max-connections", "3"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "WH_SECRET": "whsec-limits"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the receiver exited"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the receiver did not start in 60 s"
            time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait()


def _slow_header_client(url: str) -> socket.socket:
    """A connection that has sent part of its request head and then says nothing more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /deliveries HTTP/1.1\r\nHost: receiver\r\nX-Slow: ")
    return sock


def _health_until(url: str, status: int, why: str) -> None:
    deadline = time.monotonic() + 30
    while (last := httpx.get(url + "/health", timeout=5).status_code) != status:
        assert time.monotonic() < deadline, f"{why} (last {last})"
        time.sleep(0.05)


def test_slow_header_clients_cannot_take_more_than_max_connections(receiver: str) -> None:
    """--max-connections 3: three held connections and a fourth is refused; with two held, one more is served."""
    held = [_slow_header_client(receiver) for _ in range(3)]
    try:
        # The three held connections are counted once the server has accepted them.
        _health_until(receiver, 503, "never refused with 3 held connections")
        held.pop().close()
        _health_until(receiver, 200, "2 held + this one is 3 open: it must be served")
    finally:
        for sock in held:
            sock.close()
    _health_until(receiver, 200, "still refusing after the held connections closed")


def test_a_client_cannot_buffer_an_unfinished_request_head_past_16_kib(receiver: str) -> None:
    """A head still unfinished at 16 KiB is refused (h11's bound: httptools would keep buffering)."""
    sock = _slow_header_client(receiver)
    try:
        sock.settimeout(10)
        sock.sendall(b"a" * 20_000)  # never the blank line that ends the head
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"closed without an answer ({answer!r})"
            answer += chunk
    finally:
        sock.close()
    assert answer.split(b"\r\n")[0].split()[1] in (b"400", b"431"), answer[:80]
    assert httpx.get(receiver + "/health", timeout=5).status_code == 200  # and it still serves
