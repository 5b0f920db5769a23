"""The hook's whole surface against Stoplight Prism serving Baseten's official specs (``make prism``).

Prism (the npm package ``@stoplight/prism-cli``) is a mock server that validates every request against an
OpenAPI document: a body where none is defined is a 415, a schema violation a 422. It is installed under
``build/prism`` on first use (``npm install``; needs ``node`` and ``npm``, e.g. Debian's ``nodejs``/``npm``),
started once per spec on 127.0.0.1, and every hook call of the endpoint cases and the option-heavy
variants (``tests/unit``) is made through it, sync and async, on the direct gateway: management calls to the
management spec's mock; model, chain and regional-environment calls to the inference spec's, which serves every
inference host's paths at its root. A call passes when Prism accepted each request it sent (2xx); Prism's mock
answers need not parse into our models, so a parse error is counted apart. Calls whose routes are in neither spec
(the OpenAI ``/sync`` passthrough, Model APIs) are counted apart as not judged. The LowCodeAPI gateway has no OpenAPI spec for Prism to serve: its
forwarded bodies are checked by the strict emulator instead (tests/integration/test_strict_emulator.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.client.transport import RetryPolicy, Settings
from airflow_provider_baseten.exceptions import BasetenError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.chaos.report import Row
from tests.conftest import SPECS
from tests.e2e._support import free_port
from tests.unit._support import CASES, Case
from tests.unit.test_spec_conformance import VARIANTS, match_operation

ROOT = Path(__file__).resolve().parents[2]
PRISM_DIR = ROOT / "build" / "prism"
PRISM_VERSION = "5.16.0"
PACKAGE = f"@stoplight/prism-cli@{PRISM_VERSION}"
PRISM = PRISM_DIR / "node_modules" / ".bin" / "prism"


def ensure_prism() -> Path:
    """Prism's executable, installed with npm under build/prism when missing (skips without node/npm)."""
    if PRISM.exists():
        return PRISM
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("Prism needs node and npm (apt-get install nodejs npm)")
    PRISM_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(PRISM_DIR), PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0 or not PRISM.exists():
        pytest.skip(f"could not install Prism: {proc.stderr[-500:]}")
    return PRISM


@contextlib.contextmanager
def prism_mock(spec: Path, logs: Path) -> Iterator[str]:
    """``prism mock`` of ``spec`` on a free 127.0.0.1 port, in its own process group; yields its URL."""
    port = free_port()
    log = (logs / f"prism-{spec.stem}.log").open("wb")
    proc = subprocess.Popen(
        [str(ensure_prism()), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec.resolve())],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"prism exited: {(logs / f'prism-{spec.stem}.log').read_text()[-2000:]}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "prism did not start in 120 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
        proc.wait(10)
        log.close()


class _Recording(httpx.HTTPTransport):
    def __init__(self, seen: list[tuple[str, str, int]]) -> None:
        super().__init__()
        self.seen = seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.seen.append((request.method, request.url.path, response.status_code))
        return response


class _AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self, seen: list[tuple[str, str, int]]) -> None:
        super().__init__()
        self.seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        await response.aread()
        self.seen.append((request.method, request.url.path, response.status_code))
        return response


def in_specs(method: str, path: str) -> bool:
    """Whether ``method path`` is an operation of Baseten's management or inference spec (Prism can judge it)."""
    surface = "management" if path.startswith("/v1/") else "inference"
    try:
        match_operation(surface, method, path)
    except AssertionError:
        return False
    return True


async def _acall(case: Case, hook: BasetenHook) -> str | None:
    try:
        await case.acall(hook)
    except BasetenError as exc:  # Prism's mock answer did not parse into our model
        return type(exc).__name__
    return None


def _call(case: Case, hook: BasetenHook) -> str | None:
    try:
        case.call(hook)
    except BasetenError as exc:
        return type(exc).__name__
    return None


@pytest.mark.chaos
def test_every_hook_call_passes_prism(tmp_path: Path, chaos_row: Row) -> None:
    chaos_row.case = "prism: official specs"
    ensure_prism()
    calls = {**{f"endpoint {k}": v for k, v in CASES.items()}, **{f"variant {k}": v for k, v in VARIANTS.items()}}
    chaos_row.tried = f"{len(calls)} hook calls (every endpoint + option variants) x sync/async against prism mock"
    seen: list[tuple[str, str, int]] = []
    rejected: list[str] = []
    unparsed: list[str] = []
    outside: list[str] = []
    with (
        prism_mock(SPECS / "openapi-management.json", tmp_path) as management,
        prism_mock(SPECS / "openapi-inference.json", tmp_path) as inference,
    ):
        settings = Settings(
            api_key="prism-test-key",
            management_url=management,
            # Prism serves every inference host's paths at its root: the model's, the chain's and a regional
            # environment's (model-{id}-{env}, whose id part the hook puts where {model_id} would be).
            inference_url=inference,
            chain_url=inference,
            # Model APIs are in neither spec: their calls reach Prism, 404, and are counted outside the specs.
            model_apis_url=inference,
            model_id="abcd1234",
            retry=RetryPolicy(max_attempts=1),
        )
        hook = BasetenHook(
            settings=settings, http_transport=_Recording(seen), async_http_transport=_AsyncRecording(seen)
        )

        def judge(label: str, before: int, error: str | None) -> None:
            sent = seen[before:]
            assert sent, f"{label} sent nothing"
            judged = [(m, p, status) for m, p, status in sent if in_specs(m, p)]
            if not judged:  # the OpenAI /sync passthrough and Model APIs: no spec for Prism to check
                outside.append(label)
            elif any(not 200 <= s < 300 for _, _, s in judged):
                rejected.append(f"{label}: {sent} {error or ''}")
            elif error:
                unparsed.append(f"{label}: {error}")

        for label, case in sorted(calls.items()):
            before = len(seen)
            judge(label + " (sync)", before, _call(case, hook))
        hook.close()

        async def all_async() -> None:  # one event loop for the hook's one async client
            for label, case in sorted(calls.items()):
                before = len(seen)
                judge(label + " (async)", before, await _acall(case, hook))
            await hook.aclose()

        asyncio.run(all_async())
    total = 2 * len(calls) - len(outside)
    chaos_row.happened = (
        f"{total - len(rejected)} of {total} calls accepted by Prism ({len(seen)} requests); "
        f"{len(unparsed)} mock answers did not parse into our models; "
        f"{len(outside)} calls outside both specs (OpenAI /sync passthrough, Model APIs) not judged"
    )
    chaos_row.lost = "none" if not rejected else f"{len(rejected)} rejected"
    chaos_row.metrics = {
        "calls": total,
        "rejected": len(rejected),
        "unparsed": len(unparsed),
        "outside_specs": len(outside),
    }
    print(f"\nPrism: {chaos_row.happened}")
    for line in unparsed:
        print("  unparsed:", line)
    assert not rejected, "Prism rejected:\n" + "\n".join(rejected)


@pytest.mark.chaos
def test_prism_finds_what_the_old_hook_sent(tmp_path: Any) -> None:
    """Guard: the check is not vacuous when Prism is installed (a {} body on wake is a 415)."""
    if not PRISM.exists():
        pytest.skip("Prism is not installed (make prism installs it)")
    with prism_mock(SPECS / "openapi-inference.json", tmp_path) as url:
        r = httpx.post(url + "/production/wake", json={}, headers={"Authorization": "Bearer k"})
        assert r.status_code == 415
        assert httpx.post(url + "/production/wake", headers={"Authorization": "Bearer k"}).status_code == 202
