"""The webhook receiver: an ASGI app that verifies Baseten's signed deliveries and stores them durably.

Used two ways, the same app: mounted on Airflow's API server by the provider's plugin (at
``/baseten-webhooks``), or run on its own with ``python -m airflow_provider_baseten.webhooks``.

Authentication is Baseten's signature, not an Airflow login: Baseten cannot log in to Airflow, so this is the
provider's one deliberately unauthenticated route. Every delivery must carry
``X-BASETEN-SIGNATURE: v1=<hex hmac-sha256 of the raw body>`` under one of the configured secrets (several
``v1=`` values, comma-separated, are each tried, for a rotation). What each refusal answers, and stores:

- no or bad signature: 401 (nothing is parsed before the signature is checked);
- a body over ``max_body_bytes``: 413, after reading at most that many bytes;
- a body not sent within ``body_timeout`` seconds: 408;
- not JSON: 400; the wrong shape: 422;
- no secret configured (and unsigned deliveries not allowed): 503, so Baseten retries once an operator fixes it;
- the store fails: 500, so Baseten retries.

None of these stores anything. With ``retention_days`` set, bodies stored longer ago are removed in the
background, at most once every :data:`PRUNE_EVERY_SECONDS`, after a delivery. A 200 is sent only after the body is durable in the
:class:`~airflow_provider_baseten.webhooks.store.ResultStore`; a duplicate answers 200 too (``"duplicate":
true``), since the first copy is already stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from airflow_provider_baseten.webhooks.settings import ReceiverSettings
from airflow_provider_baseten.webhooks.store import REQUEST_ID_PATTERN, ResultStore

__all__ = [
    "PRUNE_EVERY_SECONDS",
    "SIGNATURE_HEADER",
    "Pruner",
    "WebhookBody",
    "WebhookError",
    "create_app",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-baseten-signature"
#: How often, at most, a receiver with ``retention_days`` prunes its store.
PRUNE_EVERY_SECONDS = 3600.0


class WebhookError(BaseModel):
    """One error of a failed async request.

    :param code: Baseten's error code.
    :param message: what went wrong.
    """

    model_config = ConfigDict(extra="allow")
    code: str | None = None
    message: str | None = None


class WebhookBody(BaseModel):
    """The shape of Baseten's async webhook body (unknown extra fields are kept, for forward compatibility).

    :param request_id: the async request's id (a safe file name: the store's key).
    :param model_id: the model's id.
    :param deployment_id: the deployment's id.
    :param type: ``async_request_completed``.
    :param time: when the request ended.
    :param data: the model's output; ``None`` when the request failed.
    :param errors: the errors of a failed request.
    """

    model_config = ConfigDict(extra="allow")
    request_id: str = Field(pattern=f"^{REQUEST_ID_PATTERN.pattern}$")
    model_id: str
    deployment_id: str
    type: str
    time: str
    data: Any
    errors: list[WebhookError] | None


def sign(body: bytes, secret: str) -> str:
    """The ``X-BASETEN-SIGNATURE`` value for ``body`` under ``secret``: ``v1=<hex hmac-sha256>``.

    :param body: the raw body.
    :param secret: the webhook secret.
    """
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: tuple[str, ...]) -> bool:
    """Whether any ``v1=`` signature in ``header`` matches ``body`` under any of ``secrets`` (constant time).

    :param body: the raw body, exactly as received.
    :param header: the ``X-BASETEN-SIGNATURE`` value (``v1=<hex>``, possibly several, comma-separated).
    :param secrets: the secrets now valid.
    """
    if not header or not secrets:
        return False
    given = [part.strip()[3:].lower() for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [sign(body, secret)[3:] for secret in secrets]
    matched = False
    for candidate in given:
        for digest in expected:
            # No early exit: the time taken does not depend on which pair (if any) matches.
            matched |= hmac.compare_digest(candidate.encode(), digest.encode())
    return matched


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`_TooLarge` as soon as more than ``limit`` bytes are declared or sent."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class Pruner:
    """Removes a store's bodies older than the retention, in a background thread, at most once per ``every``
    seconds (one run at a time; the first delivery starts the first run). A failed run is logged and tried
    again when the next run is due: it never fails a delivery.

    :param store: the store to prune.
    :param retention_days: the age in days past which a body is removed.
    :param every: the least number of seconds between two runs.
    """

    def __init__(self, store: ResultStore, retention_days: float, every: float = PRUNE_EVERY_SECONDS) -> None:
        self.store = store
        self.older_than = retention_days * 86400.0
        self.every = every
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._thread: threading.Thread | None = None
        #: bodies removed so far, by every run
        self.removed = 0

    def maybe_start(self) -> threading.Thread | None:
        """Start a run if one is due and none is running; the run's thread, or ``None``."""
        with self._lock:
            now = time.monotonic()
            running = self._thread is not None and self._thread.is_alive()
            if running or (self._started_at is not None and now - self._started_at < self.every):
                return None
            self._started_at = now
            self._thread = threading.Thread(target=self._run, name="baseten-webhook-prune", daemon=True)
            self._thread.start()
            return self._thread

    def join(self, timeout: float | None = None) -> None:
        """Wait for the current run, if any, to end.

        :param timeout: seconds to wait at most.
        """
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            removed = self.store.prune(self.older_than)
        except Exception:
            log.exception("webhook store prune failed; tried again in %.0f s", self.every)
            return
        self.removed += removed
        if removed:
            log.info("webhook store: removed %d bodies older than %g days", removed, self.older_than / 86400)


def create_app(settings: ReceiverSettings) -> FastAPI:
    """The receiver's ASGI app.

    :param settings: where to store bodies and how to verify them.
    """
    store = ResultStore(settings.store)
    app = FastAPI(title="Baseten webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    pruner = Pruner(store, settings.retention_days) if settings.retention_days is not None else None
    app.state.pruner = pruner

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness (says nothing about the configuration: the route is unauthenticated)."""
        return {"status": "ok"}

    async def deliver(request: Request) -> JSONResponse:
        """Verify, validate and durably store one delivery."""
        try:
            body = await asyncio.wait_for(_read_body(request, settings.max_body_bytes), settings.body_timeout)
        except _TooLarge:
            log.warning("webhook refused: body over %d bytes", settings.max_body_bytes)
            return _refuse(413, f"body over {settings.max_body_bytes} bytes")
        except asyncio.TimeoutError:
            log.warning("webhook refused: body not received within %ss", settings.body_timeout)
            return _refuse(408, "body not received in time")
        header = request.headers.get(SIGNATURE_HEADER)
        source = settings.secrets
        # Loading may read a connection (I/O): off the event loop, but only when due (once a minute).
        secrets = await run_in_threadpool(source.current) if source.stale() else source.current()
        if header is None and settings.allow_unsigned and _is_loopback(request):
            pass  # the explicit local development set-up
        elif not secrets and not settings.allow_unsigned:
            log.error("webhook refused: the receiver has no webhook secret configured")
            return _refuse(503, "the receiver has no webhook secret configured")
        elif not verify_signature(body, header, secrets):
            log.warning("webhook refused: %s signature", "missing" if header is None else "bad")
            return _refuse(401, "missing or bad signature")
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _refuse(400, "the body is not JSON")
        try:
            hook = WebhookBody.model_validate(parsed)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
            return _refuse(422, f"the body is not a Baseten webhook (check: {', '.join(fields)})")
        try:
            new = await run_in_threadpool(store.put, body)
        except Exception:
            log.exception("webhook %s: the store failed; answering 500 so Baseten retries", hook.request_id)
            return _refuse(500, "the store failed")
        # One line per delivery at 12,000 a minute would flood the API server's log: a duplicate is worth INFO.
        log.log(
            logging.DEBUG if new else logging.INFO,
            "webhook %s: %s",
            hook.request_id,
            "stored" if new else "duplicate, already stored",
        )
        if pruner is not None:
            try:
                pruner.maybe_start()
            except Exception:  # the body is stored: pruning must never fail the delivery
                log.exception("webhook store prune could not start")
        return JSONResponse({"request_id": hook.request_id, "stored": new, "duplicate": not new})

    app.add_api_route("/", deliver, methods=["POST"], include_in_schema=False)
    app.add_api_route("/deliveries", deliver, methods=["POST"], include_in_schema=False)
    return app
