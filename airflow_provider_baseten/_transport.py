"""Routing, authentication, envelopes, retries and redaction: the one place that talks HTTP.

The sync (:meth:`Transport.request`) and async (:meth:`Transport.arequest`) paths share everything but
the two lines that send and sleep: :meth:`Transport.build` makes the request, :func:`interpret` reads
the answer, and :class:`RetryPolicy` decides whether and how long to wait.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from airflow_provider_baseten import __version__
from airflow_provider_baseten._ratelimit import WindowLimiter, limiter_for
from airflow_provider_baseten._redact import install_log_filters, redact, register_secret
from airflow_provider_baseten._routes import Endpoint, endpoint
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenConfigurationError,
    BasetenError,
    BasetenGatewayUnsupportedError,
    BasetenModelError,
    BasetenNotFoundError,
    BasetenRateLimitError,
    BasetenResponseError,
    BasetenServerError,
    BasetenTimeoutError,
    BasetenTransportError,
    BasetenValidationError,
)

log = logging.getLogger("airflow_provider_baseten")

Gateway = Literal["baseten", "lowcodeapi"]
UrlFormat = Literal["new", "old"]

DIRECT_MANAGEMENT_URL = "https://api.baseten.co"
DIRECT_INFERENCE_URL = "https://model-{model_id}.api.baseten.co"
LOWCODEAPI_URL = "https://api.lowcodeapi.com/baseten"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Endpoints that create something. Once such a request may have taken effect, repeating it could create a
# second one (a second GPU job, a second queued prediction). They are retried only when the attempt
# provably did nothing: a connect error before sending, a 429, or a 503 whose body shows no sign of work.
# After a 500, 502 or 504, a read timeout or a connection dropped after sending, the error is marked
# ``maybe_created`` and the hook reconciles (looks the object up by name) where the API allows it.
NOT_IDEMPOTENT = frozenset(
    {
        "environment_async_predict",
        "development_async_predict",
        "deployment_async_predict",
        "production_async_predict",
        "create_training_job",
        "recreate_training_job",
        "create_api_key",
        "create_environment",
    }
)
SNIPPET_CHARS = 300
_RETRIED = " It was retried; try again later or check the deployment's status."
# How to check by hand, per create, when its outcome is unknown.
_CHECK_HINT = {
    "create_training_job": "look for it with list_training_jobs(project) (a job 'name' lets the provider find "
    "it by itself)",
    "recreate_training_job": "look for a new job with list_training_jobs(project)",
    "create_api_key": "look for it with list_api_keys() and delete it if unwanted (its plaintext cannot be "
    "shown again)",
    "create_environment": "look for it with get_environment(name)",
}
_ASYNC_HINT = (
    "it may be queued on Baseten under a request id we never received; check the deployment's async queue "
    "(get_async_queue_status) or your webhook receiver before submitting it again"
)
# A model that raised on an input is not an outage: one retry (for a flaky model), then the error.
MODEL_ERROR_ATTEMPTS = 2
# How Baseten marks an error as the model's own (not the platform's): the inference error body's
# ``error_code`` (openapi-inference.json ``ErrorResponse``), and the headers the Truss server adds when
# the model's code raised (basetenlabs/truss: templates/server/_truss_common/errors.py, ``UserCodeError``:
# source 04 = truss server, code 600 = downstream error, with the body "Internal Server Error (in
# model/chainlet).").
MODEL_ERROR_CODES = frozenset({"application_error"})
_TRUSS_MODEL_ERROR_TEXT = "(in model/chainlet)"
# A 500 "model_not_ready": Baseten held the request for a cold start and gave up. Retry, but not at once
# (API-FACTS: retry after ~30 s); capped by the policy's max_retry_after.
COLD_START_WAIT = 30.0


@functools.cache  # reading package metadata parses files: once per process, not once per hook
def _user_agent() -> str:
    try:
        from importlib.metadata import version

        airflow_version = version("apache-airflow")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        airflow_version = "unknown"
    return f"airflow-provider-baseten/{__version__} apache-airflow/{airflow_version}"


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Connect errors, timeouts, dropped connections, 429 and 500/502/503/504 are retried with exponential
    backoff and full jitter (``uniform(0, min(max_backoff, base * 2**(n-1)))``). A ``Retry-After`` header
    or ``retry_after`` body field wins over the backoff, capped at ``max_retry_after``. Retrying stops after
    ``max_attempts`` attempts or once ``total_timeout`` seconds have passed since the first.
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    total_timeout: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise BasetenValidationError("max_attempts must be at least 1", field="max_attempts")
        if self.backoff_base < 0 or self.max_backoff < 0 or self.total_timeout <= 0:
            raise BasetenValidationError("retry timings must be positive", field="retry_policy")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Timeouts:
    """Per-request timeouts in seconds. Sync predict reads wait for cold starts (Baseten's own cap is 1200 s)."""

    connect: float = 10.0
    management_read: float = 60.0
    predict_read: float = 1260.0

    def for_endpoint(self, ep: Endpoint) -> httpx.Timeout:
        """The httpx timeout for ``ep``: long reads for predict, short for everything else."""
        read = self.predict_read if ep.name.endswith("_predict") else self.management_read
        return httpx.Timeout(connect=self.connect, read=read, write=max(read, 60.0), pool=self.connect + read)


@dataclass(frozen=True, repr=False)
class Settings:
    """Where and how to reach Baseten; built from an Airflow connection by :meth:`from_extra`."""

    api_key: str
    gateway: Gateway = "baseten"
    management_url: str = DIRECT_MANAGEMENT_URL
    inference_url: str = DIRECT_INFERENCE_URL
    gateway_url: str = LOWCODEAPI_URL
    auth_scheme: Literal["Bearer", "Api-Key"] = "Bearer"
    url_format: Literal["auto", "new", "old"] = "auto"
    model_id: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __repr__(self) -> str:
        return (
            f"Settings(gateway={self.gateway!r}, base_url={self.base_url!r}, model_id={self.model_id!r}, "
            f"auth_scheme={self.auth_scheme!r}, url_format={self.url_format!r}, api_key='***')"
        )

    @property
    def base_url(self) -> str:
        """The management (direct) or gateway (LowCodeAPI) base URL."""
        return self.gateway_url if self.gateway == "lowcodeapi" else self.management_url

    @classmethod
    def from_extra(
        cls, *, api_key: str | None, host: str | None, extra: dict[str, Any], register_key: bool = True, **kw: Any
    ) -> Settings:
        """Validate a connection's fields and build settings. Raises :class:`BasetenConfigurationError`.

        ``register_key=False`` leaves masking the key to the caller (the async path masks it with
        :func:`~airflow_provider_baseten._redact.aregister_secret`, which does not block the event loop).
        """
        if not api_key or not str(api_key).strip():
            raise BasetenConfigurationError(
                "The Baseten connection has no API key. Put your Baseten API key (or LowCodeAPI api_token) "
                "in the connection's password field ('API Key' in the UI).",
                field="password",
            )
        api_key = str(api_key).strip()
        if register_key:
            register_secret(api_key)
        # Extra is user-typed JSON: a number or boolean where a string belongs is a config error, not a crash.
        gateway = str(extra.get("gateway") or "baseten").strip().lower()
        if gateway not in ("baseten", "lowcodeapi"):
            raise BasetenConfigurationError(
                f"Unknown gateway {gateway!r} in the connection extra. Use 'baseten' (direct) or 'lowcodeapi'.",
                field="gateway",
            )
        scheme = str(extra.get("auth_scheme") or "Bearer").strip()
        schemes = {"bearer": "Bearer", "api-key": "Api-Key", "apikey": "Api-Key"}
        if scheme.lower() not in schemes:
            raise BasetenConfigurationError(
                f"Unknown auth_scheme {scheme!r}. Use 'Bearer' (default) or 'Api-Key'.", field="auth_scheme"
            )
        url_format = str(extra.get("url_format") or "auto").strip().lower()
        if url_format not in ("auto", "new", "old"):
            raise BasetenConfigurationError(
                f"Unknown url_format {url_format!r}. Use 'auto' (default), 'new' or 'old'.",
                field="url_format",
            )
        inference_url = str(extra.get("inference_url") or DIRECT_INFERENCE_URL)
        _check_url(inference_url.replace("{model_id}", "m"), "inference_url")
        if "{" in inference_url.replace("{model_id}", ""):
            raise BasetenConfigurationError(
                f"inference_url {inference_url!r} has a placeholder other than {{model_id}}. Use only {{model_id}}, "
                "e.g. https://model-{model_id}.api.baseten.co",
                field="inference_url",
            )
        base = _normalise_host(host) if host else None
        model_id = extra.get("model_id") or None
        if model_id is not None:
            validate_id("model_id", model_id)
        return cls(
            api_key=api_key,
            gateway=gateway,  # type: ignore[arg-type]
            management_url=base if base and gateway == "baseten" else DIRECT_MANAGEMENT_URL,
            gateway_url=base if base and gateway == "lowcodeapi" else LOWCODEAPI_URL,
            inference_url=inference_url.rstrip("/"),
            auth_scheme=schemes[scheme.lower()],  # type: ignore[arg-type]
            url_format=url_format,  # type: ignore[arg-type]
            model_id=model_id,
            **kw,
        )


def _normalise_host(host: str) -> str:
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "https://" + host
    _check_url(host, "host")
    return host


def _check_url(url: str, field_name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        raise BasetenConfigurationError(
            f"{field_name} {redact(url)!r} is not a valid http(s) URL, e.g. https://model-{{model_id}}.api.baseten.co",
            field=field_name,
        )


_MAX_ID = 128


def validate_id(name: str, value: Any) -> str:
    """Check an id that goes into a URL path. Raises :class:`BasetenValidationError` naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise BasetenValidationError(f"{name} must be a non-empty string, got {value!r}.", field=name)
    bad = [c for c in ("/", "?", "#", "..", " ", "\\", "%") if c in value]
    if bad or len(value) > _MAX_ID or not value.isprintable():
        why = f"contains {bad[0]!r}" if bad else ("is too long" if len(value) > _MAX_ID else "is not printable")
        raise BasetenValidationError(
            f"{name} {value[:40]!r} {why}; Baseten ids are short alphanumeric strings (e.g. 'abcd1234').",
            field=name,
        )
    return value


def encode_json(body: Any, field_name: str = "body") -> bytes:
    """Serialise a request body, turning a non-JSON value into a :class:`BasetenValidationError`."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise BasetenValidationError(
            f"{field_name} is not JSON-serialisable ({exc}). Convert it to dicts, lists, strings and numbers.",
            field=field_name,
        ) from None


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


_ssl_lock = threading.Lock()
_ssl_context: Any = None


def shared_ssl_context() -> Any:
    """The process's one SSL context, shared by every client (sync, async, batch workers).

    Building one loads the CA bundle: 15-40 ms of CPU, which on the triggerer's event loop blocks every
    other trigger, once per trigger run and per sensor poke when each client builds its own. It honours
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as httpx does, read when it is first built.
    """
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


async def ashared_ssl_context() -> Any:
    """:func:`shared_ssl_context` from an event loop: the first build runs in a thread, off the loop."""
    if _ssl_context is not None:
        return _ssl_context
    return await asyncio.to_thread(shared_ssl_context)


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
        self._mock_transport = transport
        self._mock_async_transport = async_transport
        self._sleep = sleep
        self._asleep = asleep
        self._headers = {"User-Agent": _user_agent(), "Accept": "application/json"}
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
        """The pooled async client (created on first use, bound to the loop it is first used on)."""
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(
                headers=self._headers,
                transport=self._mock_async_transport,
                verify=shared_ssl_context(),  # built off the loop by the hook's aget_transport
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._async_client

    def new_async_client(self, max_connections: int = 1) -> httpx.AsyncClient:
        """A separate small async client, e.g. one per batch worker (see ``predict_batch``).

        All of them share the process's SSL context (:func:`shared_ssl_context`): building one per client
        cost 64 batch workers 2.5 s before the first request.
        """
        ssl_context = shared_ssl_context()
        transport = self._mock_async_transport
        if transport is None and max_connections == 1:
            from airflow_provider_baseten import _h1

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
            return (s.url_format,)  # type: ignore[return-value]
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
                base = s.inference_url.replace("{model_id}", model_id)
            else:
                base = s.management_url
            url = base.rstrip("/") + ep.direct_path(params)
            headers["Authorization"] = f"{s.auth_scheme} {s.api_key}"
        # No body and no Content-Type unless the call has one: Baseten's spec defines no request body for
        # wake, activate, deactivate, cancel_promotion, recreate ..., and a strict server answers 415 to one.
        content = None
        if body is not None:
            content = encode_json(body)
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
            if out.fallback and fmt == "new" and len(self.formats(ep)) > 1:
                continue
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
            if out.fallback and fmt == "new" and len(self.formats(ep)) > 1:
                continue
            return self._finish(ep, fmt, out, parse)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempts(
        self, ep: Endpoint, params: dict[str, str], query: Any, body: Any, model_id: str | None
    ) -> Iterator[tuple[UrlFormat, httpx.Request]]:
        for key in ep.params:
            if key not in params:
                raise BasetenValidationError(f"{key} is required for {ep.name}.", field=key)
            validate_id(key, params[key])
        formats = self.formats(ep) if self.settings.gateway == "lowcodeapi" else ("new",)
        # Build every format up front so a bad body fails before anything is sent.
        built = [
            (fmt, self.build(ep, params, query=query, body=body, model_id=model_id, url_format=fmt)) for fmt in formats
        ]
        yield from built

    def _finish(self, ep: Endpoint, fmt: UrlFormat, out: Outcome, parse: Callable[[Any], Any] | None = None) -> Any:
        s = self.settings
        auto = s.gateway == "lowcodeapi" and ep.has_old_format and s.url_format == "auto"
        if auto and not isinstance(out.error, BasetenNotFoundError):
            _remember_format(s.gateway_url, ep, fmt)
        if isinstance(out.error, BasetenNotFoundError) and s.gateway == "lowcodeapi" and not ep.in_gateway_reference:
            raise _gateway_unsupported(ep, out.error)
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

    def _send_with_retries(self, client: httpx.Client, ep: Endpoint, req: httpx.Request) -> Outcome:
        started = time.monotonic()
        attempt = 0
        limiter = limiter_for(self.settings.api_key, ep.name)
        while True:
            attempt += 1
            wait = _pace(limiter, ep)
            if wait:
                self._sleep(wait)
            t0 = time.monotonic()
            try:
                response = client.send(req)
                try:
                    response.read()
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                out = self._from_exception(ep, req, exc)
            else:
                out = self._from_response(ep, req, response, time.monotonic() - t0)
            delay = self._next_delay(ep, out, attempt, started)
            if delay is None:
                return out
            self._sleep(delay)

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
        started = time.monotonic()
        attempt = 0
        limiter = limiter_for(self.settings.api_key, ep.name)
        while True:
            attempt += 1
            wait = _pace(limiter, ep)
            if wait:
                await self._asleep(wait)
            t0 = time.monotonic()
            try:
                response = await send(req)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                out = self._from_exception(ep, req, exc)
            else:
                out = self._from_response(ep, req, response, time.monotonic() - t0)
            delay = self._next_delay(ep, out, attempt, started)
            if delay is None:
                return out
            await self._asleep(delay)

    def _next_delay(self, ep: Endpoint, out: Outcome, attempt: int, started: float) -> float | None:
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
        err = out.error
        self.retry_counts[_retry_kind(err)] += 1
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
        may_retry = unsent or ep.name not in NOT_IDEMPOTENT
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
            body = _json_or_none(response)
            err = error_from_response(
                status, body, response.text, request_id, gateway=gateway, where=ep.name, headers=response.headers
            )
            retry = status in RETRY_STATUSES
            if retry and ep.name in NOT_IDEMPOTENT and not _provably_not_done(status, body):
                retry = False
                mark_maybe_created(err, ep.name)
            retry_after = _retry_after(response, body) if retry else None
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
                body_snippet=_snippet(response.text),
            )
            # A damaged answer to an idempotent call is worth another try; a create must not be repeated.
            if ep.name in NOT_IDEMPOTENT:
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
                    body_snippet=_snippet(text),
                )
            )
        if payload.get("error"):
            return Outcome(error=error_from_response(status, payload, text, request_id, gateway=True, where=ep.name))
        return Outcome(value=payload.get("data"), status=status, request_id=request_id)


def _provably_not_done(status: int, body: Any) -> bool:
    """Whether an error answer to a create proves nothing was created, so sending it again is safe.

    429 is refused before any work. A 503 ("no replica", "rolling out") is refused before the request is
    taken, unless its body carries something only work produces (an id, a job, a non-empty ``data``).
    500, 502 and 504 may come after the work was done (a proxy that timed out or lost the answer).
    """
    if status == 429:
        return True
    if status != 503:
        return False
    if not isinstance(body, dict):
        return True
    if body.get("data") not in (None, {}, []):
        return False
    return not any(key in body for key in ("request_id", "id", "training_job", "api_key"))


def mark_maybe_created(err: BasetenError, endpoint_name: str) -> None:
    """Flag ``err`` as "the create may have taken effect" and say, in its message, how to check."""
    hint = _ASYNC_HINT if endpoint_name.endswith("async_predict") else None
    hint = hint or _CHECK_HINT.get(endpoint_name, "check whether it exists")
    err.maybe_created = True
    err.message = err.message.replace(_RETRIED, "")  # it was not: do not invite a second one by hand
    err.message += f" {endpoint_name} was not repeated because the request may have taken effect: {hint}."
    err.args = (err.message,)


def _pace(limiter: WindowLimiter | None, ep: Endpoint) -> float:
    """Seconds to wait for ``ep``'s rate-limit slot (logged when there is a wait); 0 for unpaced endpoints."""
    if limiter is None:
        return 0.0
    wait = limiter.reserve()
    if wait > 0:
        log.info("Baseten allows %d %s per minute per key; waiting %.1fs for a slot", limiter.limit, ep.name, wait)
    return max(0.0, wait)


def _gateway_unsupported(ep: Endpoint, err: BasetenError) -> BasetenGatewayUnsupportedError:
    return BasetenGatewayUnsupportedError(
        f"LowCodeAPI answered 404 for {ep.name} ({ep.method} {ep.path}), an endpoint its Baseten reference does "
        "not list: the gateway does not expose that endpoint. Use a direct Baseten connection (extra "
        "gateway=baseten) for it. (If the gateway does expose it, the 404 means the object does not exist: "
        f"{err.message})",
        status_code=err.status_code,
        error_code=err.error_code,
        request_id=err.request_id,
        body_snippet=err.body_snippet,
    )


def _retry_kind(err: BasetenError | None) -> str:
    """A short label of why an attempt is retried: the HTTP status, or the failure's kind."""
    if err is None:
        return "unknown"
    if err.status_code is not None and not isinstance(err, BasetenResponseError):
        return str(err.status_code)
    return {
        BasetenTimeoutError: "timeout",
        BasetenTransportError: "connection",
        BasetenResponseError: "bad_response",
    }.get(type(err), type(err).__name__)


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _path_only(url: httpx.URL) -> str:
    """The URL with its query string dropped (it may hold ``api_token``); redacted again by callers."""
    return str(url.copy_with(query=None))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return redact(text[:SNIPPET_CHARS] + ("..." if len(text) > SNIPPET_CHARS else ""))


def _retry_after(response: httpx.Response, body: Any) -> float | None:
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
                return max(0.0, when.timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    if isinstance(body, dict):
        for container in (body, body.get("data") if isinstance(body.get("data"), dict) else None):
            if container and isinstance(container.get("retry_after"), (int, float)):
                return max(0.0, float(container["retry_after"]))
    return None


def _error_text(body: Any) -> tuple[str | None, str | None]:
    """(message, error_code) from any of Baseten's or LowCodeAPI's error shapes."""
    if not isinstance(body, dict):
        return None, None
    code = body.get("error_code") if isinstance(body.get("error_code"), str) else None
    for key in ("error", "message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value, code
        if isinstance(value, dict):
            inner, inner_code = _error_text(value)
            if inner:
                return inner, code or inner_code
        if isinstance(value, list) and value:
            return "; ".join(str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value[:5]), code
    return None, code


def error_from_response(
    status: int,
    body: Any,
    text: str,
    request_id: str | None,
    *,
    gateway: bool = False,
    where: str = "request",
    headers: Any = None,
) -> BasetenError:
    """The :class:`BasetenError` subclass for an error answer, with a redacted message and snippet.

    :param headers: The answer's headers (they carry the Truss server's mark of a model error).
    """
    detail, code = _error_text(body)
    detail = redact(detail) if detail else None
    snippet = _snippet(text)
    kw: dict[str, Any] = {
        "status_code": status,
        "error_code": code,
        "request_id": request_id,
        "body_snippet": snippet,
    }
    said = f": {detail}" if detail else (f": {snippet}" if snippet else "")
    if status in (401, 403):
        what = "LowCodeAPI api_token" if gateway else "API key"
        return BasetenAuthError(
            f"Baseten refused the {what} ({status}){said}. Check the API key in the Airflow connection "
            "(password field) and that it may access this model or workspace.",
            **kw,
        )
    if status == 404:
        return BasetenNotFoundError(f"Baseten found nothing for {where} (404){said}. Check the ids.", **kw)
    if status in (400, 413, 422):
        hint = " The payload is too large (async: 256 KiB, sync: 100 MB)." if status == 413 else ""
        if where.endswith("_predict") and status != 413:  # a model's 4xx is its own failure on this input
            return BasetenValidationError(
                f"The model (or Baseten) rejected this input: {where} answered {status}{said.rstrip('.')}. "
                "It was not retried.",
                **kw,
            )
        return BasetenValidationError(f"Baseten rejected {where} ({status}){said}.{hint}", **kw)
    if status == 429:
        return BasetenRateLimitError(
            f"Baseten rate-limited {where} (429){said}. Lower concurrency or retry later.",
            retry_after=_retry_after_from_body(body),
            **kw,
        )
    if status >= 500 and model_failed(status, body, headers):
        return BasetenModelError(
            f"The model failed on this input: {where} answered {status}{said.rstrip('.')}. This is the model's own error, "
            f"not a Baseten outage, so it was tried at most {MODEL_ERROR_ATTEMPTS} times; check the input and "
            "the model's logs.",
            **kw,
        )
    if status >= 500:
        return BasetenServerError(
            f"Baseten is unavailable for {where} ({status}){said}.{_RETRIED}",
            **kw,
        )
    if 200 <= status < 300:
        return BasetenError(f"LowCodeAPI reported an error for {where}{said}.", **kw)
    return BasetenError(f"Baseten answered {where} with HTTP {status}{said}.", **kw)


def model_failed(status: int, body: Any, headers: Any = None) -> bool:
    """Whether a 5xx answer says the model itself raised on the input (see ``MODEL_ERROR_CODES``).

    A 500 without such a mark (a cold start that timed out, a proxy error) is not one: it stays retryable.
    """
    if status != 500:
        return False
    message, code = _error_text(body)
    if code in MODEL_ERROR_CODES:
        return True
    truss = headers is not None and headers.get("x-baseten-error-source") == "04"
    if truss and headers.get("x-baseten-error-code") == "600":
        return True
    return bool(message) and _TRUSS_MODEL_ERROR_TEXT in message  # type: ignore[operator]


def cold_start_wait(err: BasetenError | None) -> float | None:
    """The wait before retrying a cold-start 500 (``model_not_ready``), else ``None`` (the usual backoff)."""
    if err is not None and err.status_code == 500 and err.error_code == "model_not_ready":
        return COLD_START_WAIT
    return None


def _retry_after_from_body(body: Any) -> float | None:
    if isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
        return float(body["retry_after"])
    return None
