"""Routing, authentication, envelopes and retries: the one place that talks HTTP.

The sync (:meth:`Transport.request`) and async (:meth:`Transport.arequest`) paths share everything but
the lines that send and sleep: :meth:`Transport.build` makes the request, ``Transport._retrying`` runs the
retry loop without I/O (the sync and async senders only carry out its steps), ``Transport._from_response``
reads the answer, and :class:`RetryPolicy` decides whether and how long to wait.

Settings and input checks live in :mod:`._settings`, the meaning of error answers in :mod:`._errors`; this
module re-exports their names (``__all__``) so ``from airflow_provider_baseten.client.transport import Settings``
keeps working. (Over 500 lines on purpose: what is left is one class, the sync and async twins of one
retry loop with the building and reading they share; splitting it would pull the twins apart.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_baseten.client.checks import validate_id
from airflow_provider_baseten.client.errors import (
    COLD_START_WAIT,
    MODEL_ERROR_ATTEMPTS,
    MODEL_ERROR_CODES,
    SNIPPET_CHARS,
    cold_start_wait,
    error_from_response,
    gateway_unsupported,
    json_or_none,
    mark_maybe_created,
    model_failed,
    provably_not_done,
    retry_after_of,
    retry_kind,
    snippet_of,
)
from airflow_provider_baseten.client.http import ashared_ssl_context, shared_ssl_context, user_agent
from airflow_provider_baseten.client.ratelimit import WindowLimiter, limiter_for
from airflow_provider_baseten.client.redact import install_log_filters, redact
from airflow_provider_baseten.client.routes import Endpoint, endpoint
from airflow_provider_baseten.client.settings import (
    DIRECT_INFERENCE_URL,
    DIRECT_MANAGEMENT_URL,
    LOWCODEAPI_URL,
    Gateway,
    RetryPolicy,
    Settings,
    Timeouts,
    UrlFormat,
    encode_json,
)
from airflow_provider_baseten.exceptions import (
    BasetenError,
    BasetenModelError,
    BasetenNotFoundError,
    BasetenResponseError,
    BasetenTimeoutError,
    BasetenTransportError,
    BasetenValidationError,
)

__all__ = [
    "COLD_START_WAIT",
    "DIRECT_INFERENCE_URL",
    "DIRECT_MANAGEMENT_URL",
    "LOWCODEAPI_URL",
    "MODEL_ERROR_ATTEMPTS",
    "MODEL_ERROR_CODES",
    "RETRY_STATUSES",
    "SNIPPET_CHARS",
    "Gateway",
    "Outcome",
    "RetryPolicy",
    "Settings",
    "Timeouts",
    "Transport",
    "UrlFormat",
    "ashared_ssl_context",
    "cold_start_wait",
    "encode_json",
    "error_from_response",
    "mark_maybe_created",
    "model_failed",
    "reset_format_memory",
    "shared_ssl_context",
    "until",
    "validate_id",
]

log = logging.getLogger("airflow_provider_baseten")

#: A step of :meth:`Transport._retrying` that is not a sleep: send the request now.
SEND = -1.0
#: What a sender hands back to :meth:`Transport._retrying`: the answer, the error, or nothing (after a sleep).
Answer = httpx.Response | httpx.HTTPError | None

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: The absolute deadline (epoch seconds) the requests sent in this context must end by: set by :func:`until`.
_DEADLINE: ContextVar[float | None] = ContextVar("baseten_deadline", default=None)


@contextmanager
def until(deadline: float | None) -> Iterator[None]:
    """Bound every request sent inside the block (in this task, and tasks it starts) by ``deadline``.

    Each attempt's timeouts are cut to the time left, no retry is scheduled past it, and once it has passed
    nothing more is sent (a :class:`BasetenTimeoutError` instead). A trigger sets it around each check so a
    slow answer or a retry sequence cannot outlive the wait's deadline. ``None``: no bound.
    """
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


# LowCodeAPI: which URL format each endpoint answered to, per process ("remember which worked").
_format_memory: dict[tuple[str, str], UrlFormat] = {}

_format_lock = threading.Lock()


def _remember_format(base: str, ep: Endpoint, fmt: UrlFormat) -> None:
    key = (base, ep.name)
    with _format_lock:
        if _format_memory.get(key) == fmt:
            return
        _format_memory[key] = fmt
    log.info("LowCodeAPI: %s %s uses the %s URL format", ep.method, ep.name, fmt)


def reset_format_memory() -> None:
    """Forget which LowCodeAPI URL format each endpoint uses (for tests)."""
    with _format_lock:
        _format_memory.clear()


@dataclass
class Outcome:
    """What one attempt produced: a value, or an error plus whether and when to retry."""

    value: Any = None
    error: BasetenError | None = None
    retry: bool = False
    retry_after: float | None = None
    fallback: bool = False  # a 404 on LowCodeAPI's new format: try the old one
    status: int | None = None  # of the answer, so errors found while parsing it can name it
    request_id: str | None = None


class Transport:
    """Sends requests for :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook`.

    One pooled sync client and one async client per transport, created on first use and reused.
    ``sleep``/``asleep`` are injectable so retry tests assert the requested waits, not the clock.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        install_log_filters()
        self.settings = settings
        self._client = client
        self._async_client = async_client
        self._async_owned = False  # a client passed in is the caller's: never replaced
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._mock_transport = transport
        self._mock_async_transport = async_transport
        self._sleep = sleep
        self._asleep = asleep
        self._headers = {"User-Agent": user_agent(), "Accept": "application/json"}
        #: Retries made so far, by cause ("429", "503", "RemoteProtocolError", ...): for reports.
        self.retry_counts: Counter[str] = Counter()
        #: Log each retry at DEBUG instead of WARNING (batch predict reports totals instead).
        self.quiet_retries = False

    def __repr__(self) -> str:
        return f"Transport({self.settings!r})"

    # -- clients ---------------------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        """The pooled sync client (created on first use)."""
        if self._client is None:
            self._client = httpx.Client(
                headers=self._headers,
                transport=self._mock_transport,
                verify=shared_ssl_context(),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._client

    @property
    def async_client(self) -> httpx.AsyncClient:
        """The pooled async client of the running event loop (a new one when another loop runs: each
        ``asyncio.run`` makes a loop, and a client's connections belong to the loop that opened them)."""
        loop = _running_loop()
        if self._async_client is not None and self._async_owned and self._async_loop is not loop:
            self._async_client = None  # its loop has ended (or is another): its connections are unusable
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(
                headers=self._headers,
                transport=self._mock_async_transport,
                verify=shared_ssl_context(),  # built off the loop by the hook's aget_transport
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            self._async_owned, self._async_loop = True, loop
        return self._async_client

    def new_async_client(self, max_connections: int = 1) -> httpx.AsyncClient:
        """A separate small async client, e.g. one per batch worker (see ``predict_batch``).

        All of them share the process's SSL context (:func:`shared_ssl_context`): building one per client
        cost 64 batch workers 2.5 s before the first request.
        """
        ssl_context = shared_ssl_context()
        transport = self._mock_async_transport
        if transport is None and max_connections == 1:
            from airflow_provider_baseten.client import h1 as _h1

            if _h1.AVAILABLE:  # a worker's single connection: the lean HTTP/1.1 path (see _h1)
                transport = _h1.H1Transport(ssl_context)
        return httpx.AsyncClient(
            headers=self._headers,
            transport=transport,
            verify=ssl_context,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def close(self) -> None:
        """Close the sync client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client."""
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    # -- building --------------------------------------------------------------------------------------
    def formats(self, ep: Endpoint) -> tuple[UrlFormat, ...]:
        """The LowCodeAPI URL formats to try for ``ep``, in order."""
        s = self.settings
        if s.url_format != "auto":
            return (s.url_format,)
        if not ep.has_old_format:
            return ("new",)
        remembered = _format_memory.get((s.gateway_url, ep.name))
        return (remembered,) if remembered else ("new", "old")

    def build(
        self,
        ep: Endpoint,
        params: dict[str, str],
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        model_id: str | None = None,
        url_format: UrlFormat = "new",
    ) -> httpx.Request:
        """Build the request for ``ep``: URL for the gateway and format, auth, query and JSON body."""
        s = self.settings
        q = {k: v for k, v in (query or {}).items() if v is not None}
        headers = dict(self._headers)
        if s.gateway == "lowcodeapi":
            self._refuse_unlisted(ep)  # here too, so no path (batch, fallback, probe) can send it
            path, extra_q = ep.gateway_request(params, url_format)
            url = s.gateway_url.rstrip("/") + path
            q = {**extra_q, **q, "api_token": s.api_key}
        else:
            if ep.surface == "inference":
                if not model_id:
                    raise BasetenValidationError(
                        "No model_id: pass model_id= or set model_id in the connection extra.",
                        field="model_id",
                    )
                base = s.url_template("inference_url").replace("{model_id}", model_id)
            elif ep.surface == "chain":
                if not model_id:
                    raise BasetenValidationError("No chain_id: pass chain_id=.", field="chain_id")
                base = s.url_template("chain_url").replace("{chain_id}", model_id)
            elif ep.surface == "model_apis":
                base = s.url_template("model_apis_url")
            else:
                base = s.management_url
            url = base.rstrip("/") + ep.direct_path(params)
            headers["Authorization"] = f"{s.auth_scheme} {s.api_key}"
        # No body and no Content-Type unless the call has one: Baseten's spec defines no request body for
        # wake, activate, deactivate, cancel_promotion, recreate ..., and a strict server answers 415 to one.
        content = _content(ep, body)
        if content is not None:
            headers["Content-Type"] = "application/json"
        q = {k: [_query_value(x) for x in v] if isinstance(v, list) else _query_value(v) for k, v in q.items()}
        timeout = s.timeouts.for_endpoint(ep)
        return httpx.Request(
            ep.method,
            url,
            params=q,
            headers=headers,
            content=content,
            extensions={"timeout": timeout.as_dict()},
        )

    # -- sending ---------------------------------------------------------------------------------------
    def refuse_unlisted(self, name: str) -> None:
        """Raise :class:`BasetenGatewayUnsupportedError` if endpoint ``name`` cannot go through this connection's
        gateway (LowCodeAPI lists only part of Baseten's API). The hook asks before a call's first step, so a
        create refused here sends nothing at all, not even its reconcile snapshot."""
        self._refuse_unlisted(endpoint(name))

    def _refuse_unlisted(self, ep: Endpoint) -> None:
        if self.settings.gateway == "lowcodeapi" and not ep.in_gateway_reference:
            raise gateway_unsupported(ep)

    def request(
        self,
        name: str,
        params: dict[str, str] | None = None,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        model_id: str | None = None,
        client: httpx.Client | None = None,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send a request to endpoint ``name`` with retries and LowCodeAPI fallback; return the parsed body.

        :param parse: Turns the (unwrapped) JSON into the result; a :class:`BasetenResponseError` it raises
            gets the answer's status and request id.
        """
        ep = endpoint(name)
        for fmt, req in self._attempts(ep, params or {}, query, body, model_id):
            out = self._send_with_retries(client or self.client, ep, req)
            if not self._falls_back(ep, fmt, out):
                return self._finish(ep, fmt, out, parse)
        raise AssertionError("unreachable")  # pragma: no cover

    async def arequest(
        self,
        name: str,
        params: dict[str, str] | None = None,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        model_id: str | None = None,
        client: httpx.AsyncClient | None = None,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Async twin of :meth:`request`."""
        ep = endpoint(name)
        for fmt, req in self._attempts(ep, params or {}, query, body, model_id):
            out = await self.asend_with_retries(client or self.async_client, ep, req)
            if not self._falls_back(ep, fmt, out):
                return self._finish(ep, fmt, out, parse)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempts(
        self, ep: Endpoint, params: dict[str, str], query: Any, body: Any, model_id: str | None
    ) -> Iterator[tuple[UrlFormat, httpx.Request]]:
        for key in ep.params:
            if key not in params:
                raise BasetenValidationError(f"{key} is required for {ep.name}.", field=key)
            if key != "route":  # a /sync/{route:path} passthrough path, checked by the hook
                validate_id(key, params[key])
        formats = self.formats(ep) if self.settings.gateway == "lowcodeapi" else ("new",)
        # Build every format up front so a bad body fails before anything is sent.
        built = [
            (fmt, self.build(ep, params, query=query, body=body, model_id=model_id, url_format=fmt)) for fmt in formats
        ]
        yield from built

    def _falls_back(self, ep: Endpoint, fmt: UrlFormat, out: Outcome) -> bool:
        """Whether a 404 to LowCodeAPI's new URL format should be tried again in the old one."""
        return out.fallback and fmt == "new" and len(self.formats(ep)) > 1

    def _finish(self, ep: Endpoint, fmt: UrlFormat, out: Outcome, parse: Callable[[Any], Any] | None = None) -> Any:
        s = self.settings
        auto = s.gateway == "lowcodeapi" and ep.has_old_format and s.url_format == "auto"
        if auto and not isinstance(out.error, BasetenNotFoundError):
            _remember_format(s.gateway_url, ep, fmt)
        if out.error is not None:
            raise out.error
        if parse is None:
            return out.value
        try:
            return parse(out.value)
        except BasetenResponseError as exc:
            exc.status_code = exc.status_code if exc.status_code is not None else out.status
            exc.request_id = exc.request_id or out.request_id
            raise

    def _retrying(self, ep: Endpoint, req: httpx.Request) -> Generator[float, Answer, Outcome]:
        """The retry loop for ``req``, without I/O: the sync and async senders below only carry it out.

        Yields seconds to sleep, or :data:`SEND`: send ``req`` and send back the (read and closed) response
        or the :class:`httpx.HTTPError`. Returns the final :class:`Outcome`.
        """
        started = time.monotonic()
        attempt = 0
        limiter = limiter_for(self.settings.api_key, ep.rate_limit)
        deadline = _DEADLINE.get()
        timeouts = dict(req.extensions.get("timeout") or httpx.Timeout(None).as_dict())
        while True:
            attempt += 1
            wait = _pace(limiter, ep)
            if wait:
                yield wait
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:
                    where = f"{req.method} {redact(_path_only(req.url))}"
                    return Outcome(error=BasetenTimeoutError(f"The wait's deadline passed before {where} was sent."))
                # This attempt may take only the time left: cut each timeout to it.
                req.extensions["timeout"] = {k: left if v is None else min(v, left) for k, v in timeouts.items()}
            t0 = time.monotonic()
            answer = yield SEND
            if isinstance(answer, httpx.Response):
                out = self._from_response(ep, req, answer, time.monotonic() - t0)
            else:
                assert answer is not None, "a sender answers SEND with the response or the error"
                out = self._from_exception(ep, req, answer)
            delay = self._next_delay(ep, out, attempt, started, deadline)
            if delay is None:
                return out
            yield delay

    def _send_with_retries(self, client: httpx.Client, ep: Endpoint, req: httpx.Request) -> Outcome:
        steps = self._retrying(ep, req)
        step = _advance(steps, None)  # a deadline already past ends it before any step
        while not isinstance(step, Outcome):
            if step != SEND:
                self._sleep(step)
                step = _advance(steps, None)
                continue
            try:
                response = client.send(req)
                try:
                    response.read()
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                step = _advance(steps, exc)
            else:
                step = _advance(steps, response)
        return step

    async def asend_with_retries(
        self,
        client: httpx.AsyncClient,
        ep: Endpoint,
        req: httpx.Request,
        send: Callable[[httpx.Request], Awaitable[httpx.Response]] | None = None,
    ) -> Outcome:
        """Send ``req`` (from :meth:`build`) until it succeeds or the policy gives up; return the outcome.

        The seam the batch engine sends its prepared requests through: ``send`` replaces ``client.send``.
        Errors are returned in the :class:`Outcome`, not raised.
        """
        send = send or client.send
        steps = self._retrying(ep, req)
        step = _advance(steps, None)  # a deadline already past ends it before any step
        while not isinstance(step, Outcome):
            if step != SEND:
                await self._asleep(step)
                step = _advance(steps, None)
                continue
            try:
                response = await send(req)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                step = _advance(steps, exc)
            else:
                step = _advance(steps, response)
        return step

    def _next_delay(
        self, ep: Endpoint, out: Outcome, attempt: int, started: float, deadline: float | None = None
    ) -> float | None:
        if not out.retry:
            return None
        policy = self.settings.retry
        if attempt >= policy.max_attempts:
            return None
        if isinstance(out.error, BasetenModelError) and attempt >= MODEL_ERROR_ATTEMPTS:
            return None
        delay = policy.delay(attempt, out.retry_after if out.retry_after is not None else cold_start_wait(out.error))
        if time.monotonic() - started + delay > policy.total_timeout:
            return None
        if deadline is not None and time.time() + delay >= deadline:  # the retry could not finish in time
            return None
        err = out.error
        self.retry_counts[retry_kind(err)] += 1
        log.log(
            logging.DEBUG if self.quiet_retries else logging.WARNING,
            "Baseten %s failed (%s); retry %d/%d in %.1fs",
            ep.name,
            redact(out.error.message if out.error else "?"),
            attempt,
            policy.max_attempts - 1,
            delay,
        )
        return delay

    def _from_exception(self, ep: Endpoint, req: httpx.Request, exc: httpx.HTTPError) -> Outcome:
        where = f"{req.method} {redact(_path_only(req.url))}"
        unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        may_retry = unsent or not ep.creates
        detail = redact(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            err: BasetenError = BasetenTimeoutError(f"Baseten did not answer in time: {where} ({type(exc).__name__}).")
        elif isinstance(exc, httpx.TransportError):
            err = BasetenTransportError(f"Connection to Baseten failed: {where}: {detail}")
        else:  # pragma: no cover - httpx.HTTPError subclasses we do not expect (e.g. decoding errors)
            err = BasetenTransportError(f"HTTP error talking to Baseten: {where}: {detail}")
        if not may_retry:
            mark_maybe_created(err, ep.name)
        log.debug("Baseten %s: %s", where, err.message)
        return Outcome(error=err, retry=may_retry)

    def _from_response(self, ep: Endpoint, req: httpx.Request, response: httpx.Response, elapsed: float) -> Outcome:
        status = response.status_code
        request_id = response.headers.get("x-baseten-request-id")
        if log.isEnabledFor(logging.DEBUG):  # the redacted path costs more than the rest of this method
            log.debug("Baseten %s %s -> %d in %.0f ms", req.method, redact(_path_only(req.url)), status, elapsed * 1000)
        gateway = self.settings.gateway == "lowcodeapi"
        if status >= 400:
            body = json_or_none(response)
            err = error_from_response(
                status, body, response.text, request_id, gateway=gateway, where=ep.name, headers=response.headers
            )
            retry = status in RETRY_STATUSES
            if retry and ep.creates and not provably_not_done(status, body):
                retry = False
                mark_maybe_created(err, ep.name)
            retry_after = retry_after_of(response, body) if retry else None
            return Outcome(
                error=err,
                retry=retry,
                retry_after=retry_after,
                fallback=status == 404 and gateway,
            )
        if status == 204 or not response.content.strip():
            return Outcome(value=None, status=status, request_id=request_id)
        try:
            payload = response.json()
        except ValueError:
            err = BasetenResponseError(
                f"Baseten answered {ep.name} with a body that is not valid JSON (truncated or HTML?).",
                status_code=status,
                request_id=request_id,
                body_snippet=snippet_of(response.text),
            )
            # A damaged answer to an idempotent call is worth another try; a create must not be repeated.
            if ep.creates:
                mark_maybe_created(err, ep.name)
                return Outcome(error=err)
            return Outcome(error=err, retry=True)
        if gateway:
            return self._unwrap(ep, status, payload, response.text, request_id)
        return Outcome(value=payload, status=status, request_id=request_id)

    def _unwrap(self, ep: Endpoint, status: int, payload: Any, text: str, request_id: str | None) -> Outcome:
        if not isinstance(payload, dict) or ("data" not in payload and "error" not in payload):
            return Outcome(
                error=BasetenResponseError(
                    f"LowCodeAPI answered {ep.name} without the {{'data': ...}} envelope.",
                    status_code=status,
                    request_id=request_id,
                    body_snippet=snippet_of(text),
                )
            )
        if payload.get("error"):
            return Outcome(error=error_from_response(status, payload, text, request_id, gateway=True, where=ep.name))
        return Outcome(value=payload.get("data"), status=status, request_id=request_id)


def _advance(steps: Generator[float, Answer, Outcome], answer: Answer) -> float | Outcome:
    """The next step of :meth:`Transport._retrying` after ``answer``, or its final outcome."""
    try:
        return steps.send(answer)
    except StopIteration as done:
        outcome: Outcome = done.value
        return outcome


def _pace(limiter: WindowLimiter | None, ep: Endpoint) -> float:
    """Seconds to wait for ``ep``'s rate-limit slot (logged when there is a wait); 0 for unpaced endpoints."""
    if limiter is None:
        return 0.0
    wait = limiter.reserve()
    if wait > 0:
        log.info("Baseten allows %d %s per minute per key; waiting %.1fs for a slot", limiter.limit, ep.name, wait)
    return max(0.0, wait)


def _content(ep: Endpoint, body: Any) -> bytes | None:
    """``body`` as JSON, or ``None`` when there is none; a body for a row without one is refused before sending."""
    if body is None:
        return None
    if not ep.body:
        raise BasetenValidationError(f"{ep.name} takes no request body; do not pass one.", field="body")
    return encode_json(body)


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _path_only(url: httpx.URL) -> str:
    """The URL with its query string dropped (it may hold ``api_token``); redacted again by callers."""
    return str(url.copy_with(query=None))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
