"""Fault injection: 429s, 5xx, dropped connections, slow answers, truncated JSON and HTML error pages.

:class:`FaultInjector` decides, with a seeded random generator, whether a request gets a fault;
:class:`FaultMiddleware` (the outermost ASGI layer) carries it out. Only API routes are affected, never
``/__admin``.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.emulator.wire import RouteTable, Scope, error_body, match_route

if TYPE_CHECKING:
    from airflow_provider_baseten.emulator.state import EmulatorState

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_MESSAGES = {
    "400": ("Bad request (injected)", "bad_request"),
    "403": ("Forbidden (injected): this API key may not use this endpoint", "forbidden"),
    "429": ("Rate limit exceeded; slow down", "rate_limited"),
    "500": ("Internal server error (injected)", "internal_baseten_error"),
    "502": ("The model replica crashed (injected)", "model_unavailable"),
    "503": ("No replica available during rollout (injected); retry", "model_unavailable"),
    "504": ("The request timed out (injected)", "timeout"),
}
# Returning a non-None value from the ASGI app makes uvicorn close the socket without an answer.
_DROP = "drop-connection"


class FaultInjector:
    """Seeded choice of which requests get which fault."""

    def __init__(self, rules: list[FaultRule], seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.configure(rules, seed)

    def configure(self, rules: list[FaultRule], seed: int = 0) -> None:
        """Replace the rules and restart the random sequence from ``seed``."""
        with self._lock:
            self.rules = [FaultRule(**asdict(r)) for r in rules]
            self.seed = seed
            self._rng = random.Random(seed)
            self._used = [0] * len(self.rules)
            self._seen = [0] * len(self.rules)

    @property
    def active(self) -> bool:
        """Whether any rule could still fire (the fast path skips everything otherwise)."""
        return bool(self.rules)

    def pick(self, endpoint: str, surface: str, *, named_only: bool = False) -> FaultRule | None:
        """The fault for one request to ``endpoint`` (a ``_routes`` name) on ``surface``, or ``None``.

        ``named_only``: only rules that name ``endpoint`` apply (webhook deliveries: a rule for "every API
        endpoint" must not also break the emulator's own outgoing calls).
        """
        with self._lock:
            for i, rule in enumerate(self.rules):
                if named_only and endpoint not in rule.endpoints:
                    continue
                if rule.endpoints and endpoint not in rule.endpoints and surface not in rule.endpoints:
                    continue
                if rule.times is not None and self._used[i] >= rule.times:
                    continue
                self._seen[i] += 1
                if self._seen[i] <= rule.skip:
                    continue
                if rule.rate >= 1.0 or self._rng.random() < rule.rate:
                    self._used[i] += 1
                    return rule
        return None

    def describe(self) -> dict[str, Any]:
        """The rules, with how often each has fired."""
        with self._lock:
            return {
                "seed": self.seed,
                "rules": [{**asdict(r), "fired": n} for r, n in zip(self.rules, self._used, strict=True)],
            }


class FaultTarget(Protocol):
    """What :class:`FaultMiddleware` needs of the emulator (``app.EmulatorCore``, without importing it)."""

    faults: FaultInjector
    state: EmulatorState
    api_routes: RouteTable
    epoch: int

    def stale(self, epoch: int) -> bool:
        """Whether work started in ``epoch`` outlived a reset (``EmulatorCore.stale``: counted as dropped)."""

    @property
    def record(self) -> Callable[..., None]:
        """Logs a request and counts its status (``EmulatorCore.record``)."""


class FaultMiddleware:
    """ASGI middleware applying :class:`FaultInjector` decisions to API requests."""

    def __init__(self, app: Any, core: FaultTarget) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        core = self.core
        if scope["type"] != "http" or not core.faults.active or scope["path"].startswith("/__"):
            await self.app(scope, receive, send)
            return None
        found = match_route(core.api_routes, scope)
        rule = core.faults.pick(found[0].name, found[0].surface) if found else None
        if rule is None or found is None:
            await self.app(scope, receive, send)
            return None
        ep, kind = found
        core.state.counters["faults"][rule.kind] += 1
        if rule.kind == "truncate":
            await self._truncated(scope, receive, send)
            return None
        if rule.after:
            # The API acts (and counts and logs the request itself); the client never sees its answer.
            await self.app(scope, receive, _discard)
            core.state.counters["faults"][rule.kind + "+after"] += 1
        if rule.kind == "slow":
            epoch = core.epoch
            await asyncio.sleep(rule.delay)
            if core.stale(epoch):
                # Reset while it waited: the request belongs to what ran before (an earlier test whose client
                # has gone). It must not act on, or be counted in, the fresh state.
                return _DROP
            if rule.after:
                # The real answer was thrown away: after the delay answer 504, as a gateway that gave up
                # waiting does (a client whose read timed out has gone by then).
                return await self._answer(scope, ep, kind, rule, send, status=504)
            await self.app(scope, receive, send)
            return None
        if not rule.after:
            # The request never reaches the API: count and log it here.
            core.state.counters["requests"][ep.name] += 1
            await _drain(receive)
        return await self._answer(scope, ep, kind, rule, send)

    async def _answer(self, scope: Scope, ep: Any, kind: str, rule: FaultRule, send: Send, status: int = 0) -> Any:
        """Send the fault's answer (or drop the connection), and log it."""
        core = self.core
        query = _query(scope)
        if rule.kind == "drop":
            core.record(scope["method"], scope["path"], query, ep.name, kind, 0, None, fault="drop")
            return _DROP
        headers = [(b"x-baseten-request-id", uuid.uuid4().hex.encode())]
        if rule.kind == "html502":
            status, body = 502, HTML_502
            headers.append((b"content-type", b"text/html"))
        else:
            status = status or int(rule.kind)
            message, code = _MESSAGES[str(status)]
            payload = error_body(kind, ep.surface, status, message, code)
            if status == 429:
                retry_after = rule.retry_after
                payload["retry_after"] = retry_after
                text = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
                headers.append((b"retry-after", text.encode()))
            body = json.dumps(payload).encode()
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(body)).encode()))
        core.record(scope["method"], scope["path"], query, ep.name, kind, status, None, fault=rule.kind)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return None

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: len(body) // 2] if len(body) > 1 else body
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": cut})


async def _discard(message: Message) -> None:
    """An ASGI ``send`` that throws the real answer away (for faults applied after the request acted)."""


async def _drain(receive: Receive) -> None:
    """Read the request body, so closing the socket sends a clean FIN rather than a reset."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
