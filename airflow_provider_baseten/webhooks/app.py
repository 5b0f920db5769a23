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

None of these stores anything. A 200 is sent only after the body is durable in the
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
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from airflow_provider_baseten.webhooks.settings import ReceiverSettings
from airflow_provider_baseten.webhooks.store import REQUEST_ID_PATTERN, ResultStore

__all__ = ["SIGNATURE_HEADER", "WebhookBody", "WebhookError", "create_app", "sign", "verify_signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-baseten-signature"


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


def create_app(settings: ReceiverSettings) -> FastAPI:
    """The receiver's ASGI app.

    :param settings: where to store bodies and how to verify them.
    """
    store = ResultStore(settings.store)
    app = FastAPI(title="Baseten webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)

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
        log.info("webhook %s: %s", hook.request_id, "stored" if new else "duplicate, already stored")
        return JSONResponse({"request_id": hook.request_id, "stored": new, "duplicate": not new})

    app.add_api_route("/", deliver, methods=["POST"], include_in_schema=False)
    app.add_api_route("/deliveries", deliver, methods=["POST"], include_in_schema=False)
    return app
