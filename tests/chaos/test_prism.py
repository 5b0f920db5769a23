"""The hook's whole surface against Stoplight Prism serving Baseten's official specs (``make prism``).

Prism (the npm package ``@stoplight/prism-cli``) is a mock server that validates every request against an
OpenAPI document: a body where none is defined is a 415, a schema violation a 422. It is installed under
``build/prism`` on first use (``npm install``; needs ``node`` and ``npm``, e.g. Debian's ``nodejs``/``npm``),
started once per spec on 127.0.0.1, and every hook call of the endpoint cases and the option-heavy
variants (``tests/unit``) is made through it, sync and async, on the direct gateway: management calls to the
management spec's mock; model, chain and regional-environment calls to the inference spec's, which serves every
inference host's paths at its root. A call passes when Prism accepted each request it sent (2xx); Prism's mock
answers need not parse into our models, so a parse error is counted apart. Calls whose routes are in neither spec
(the OpenAI ``/sync`` passthrough, Model APIs) are counted apart as not judged.

The LowCodeAPI gateway has no OpenAPI spec of its own. The same calls are made through it (both URL formats) with
:class:`_LowCodeApiToPrism` standing in for the gateway: it forwards each request as the gateway reference says
LowCodeAPI does (``api_token`` off, path parameters back into the path, the answer in ``{"data": ...}``), so
Prism judges what the gateway would ask Baseten for. The forwarding rule is our reading of that reference (the
same one ``client/routes.py`` encodes); calls the hook refuses on the gateway before sending are counted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.client.routes import ENDPOINTS, Endpoint
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
GATEWAY = "http://lowcodeapi.invalid/baseten"  # never resolved: the shim transport answers for it


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


_PARAM = re.compile(r"\{([a-z_]+)(?::path)?\}")


class _LowCodeApiToPrism(httpx.BaseTransport):
    """LowCodeAPI's forwarding, as its reference documents it, in front of Prism: a request to the gateway (new or
    old URL format, ``?api_token=``) is matched to its row, sent to Prism as the direct request it stands for
    (``Authorization`` header, path parameters back in the path), and the answer comes back in the gateway's
    ``{"data": ...}`` envelope. So Prism judges what each gateway call asks Baseten for."""

    def __init__(self, management: str, inference: str, seen: list[tuple[str, str, int]]) -> None:
        self.bases = {"management": management, "inference": inference}
        self.direct = _Recording(seen)
        self.rows: list[tuple[int, re.Pattern[str], Endpoint]] = []
        for ep in ENDPOINTS:
            if not ep.in_gateway_reference:
                continue
            template = ep.gateway_path or ep.path
            old = _PARAM.sub(lambda m: m.group(1).replace("_", ""), template)  # params move to the query
            for path in {template, old}:
                parts = re.split(r"(\{[a-z_]+\})", path)
                pattern = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
                self.rows.append((path.count("{"), re.compile(pattern), ep))
        self.rows.sort(key=lambda r: r[0])  # literal segments win, as on the gateway

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/baseten")
        query = dict(request.url.params)
        query.pop("api_token")
        for _, pattern, ep in self.rows:
            hit = pattern.fullmatch(path)
            if hit and request.method == ep.method and set(ep.params) <= set(hit.groupdict()) | set(query):
                break
        else:
            return httpx.Response(404, json={"message": f"no gateway row for {request.method} {path}"})
        params = {p: hit.groupdict().get(p) or query.pop(p) for p in ep.params}
        for p in ep.params:
            query.pop(p, None)
        direct = httpx.Request(
            request.method,
            self.bases[ep.surface] + ep.direct_path(params),
            params=query,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"}
            | {"Authorization": "Bearer prism-test-key"},
            content=request.content,
        )
        answer = self.direct.handle_request(direct)
        answer.read()
        if not answer.is_success:
            return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)
        data = answer.json() if answer.content else None
        return httpx.Response(answer.status_code, json={"data": data})


class _AsyncShim(httpx.AsyncBaseTransport):
    """The async hook's way into :class:`_LowCodeApiToPrism` (its sync client, in a thread)."""

    def __init__(self, shim: _LowCodeApiToPrism) -> None:
        self.shim = shim

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        answer = await asyncio.to_thread(self.shim.handle_request, request)
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)


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
    not_on_gateway: list[str] = []
    after_read: list[str] = []
    with (
        prism_mock(SPECS / "openapi-management.json", tmp_path) as management,
        prism_mock(SPECS / "openapi-inference.json", tmp_path) as inference,
    ):
        direct = Settings(
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
        shim = _LowCodeApiToPrism(management, inference, seen)
        gateways: list[tuple[str, BasetenHook]] = [
            (
                "direct",
                BasetenHook(
                    settings=direct, http_transport=_Recording(seen), async_http_transport=_AsyncRecording(seen)
                ),
            )
        ]
        for url_format in ("new", "old"):
            gateway = replace(direct, gateway="lowcodeapi", gateway_url=GATEWAY, url_format=url_format)
            hook = BasetenHook(settings=gateway, http_transport=shim, async_http_transport=_AsyncShim(shim))
            gateways.append((f"lowcodeapi {url_format}", hook))

        def judge(label: str, before: int, error: str | None, on_gateway: bool) -> None:
            sent = seen[before:]
            if not sent and on_gateway and error:  # refused before sending: the gateway has no such route
                not_on_gateway.append(label)
                return
            if on_gateway and error == "BasetenGatewayUnsupportedError":
                # A create the gateway does not list, refused after the read it makes first (the listing a
                # reconcile compares against): that read was judged like any other; the create was not sent.
                not_on_gateway.append(label)
                after_read.append(label)
                error = None
            assert sent, f"{label} sent nothing ({error})"
            judged = [(m, p, status) for m, p, status in sent if in_specs(m, p)]
            if label in after_read:
                if any(not 200 <= s < 300 for _, _, s in judged):
                    rejected.append(f"{label}: {sent}")
                return
            if not judged:  # the OpenAI /sync passthrough and Model APIs: no spec for Prism to check
                outside.append(label)
            elif any(not 200 <= s < 300 for _, _, s in judged):
                rejected.append(f"{label}: {sent} {error or ''}")
            elif error:
                unparsed.append(f"{label}: {error}")

        for name, hook in gateways:
            on_gateway = name != "direct"
            for label, case in sorted(calls.items()):
                before = len(seen)
                judge(f"{name} {label} (sync)", before, _call(case, hook), on_gateway)
            hook.close()

            async def all_async(name: str = name, hook: BasetenHook = hook, on_gateway: bool = on_gateway) -> None:
                for label, case in sorted(calls.items()):  # one event loop for the hook's one async client
                    before = len(seen)
                    judge(f"{name} {label} (async)", before, await _acall(case, hook), on_gateway)
                await hook.aclose()

            asyncio.run(all_async())
    total = 2 * len(calls) * 3 - len(outside) - len(not_on_gateway)
    chaos_row.happened = (
        f"{total - len(rejected)} of {total} calls accepted by Prism ({len(seen)} requests; direct, LowCodeAPI new "
        f"and old URL formats); {len(unparsed)} mock answers did not parse into our models; "
        f"{len(outside)} calls outside both specs (OpenAI /sync passthrough, Model APIs) not judged; "
        f"{len(not_on_gateway)} gateway calls refused before sending their route (LowCodeAPI does not list it; "
        f"{len(after_read)} of them after a read Prism accepted)"
    )
    chaos_row.lost = "none" if not rejected else f"{len(rejected)} rejected"
    chaos_row.metrics = {
        "calls": total,
        "rejected": len(rejected),
        "unparsed": len(unparsed),
        "outside_specs": len(outside),
        "not_on_gateway": len(not_on_gateway),
        "refused_after_read": len(after_read),
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
