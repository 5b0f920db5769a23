"""What an error answer means: the :class:`~airflow_provider_baseten.exceptions.BasetenError` subclass for it
(:func:`error_from_response`), a model's own failure versus an outage (:func:`model_failed`), how long to
wait (``Retry-After``, cold starts) and how a create whose outcome is unknown is flagged
(:func:`mark_maybe_created`).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from airflow_provider_baseten.client.redact import redact
from airflow_provider_baseten.client.routes import Endpoint
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenBillingAccessError,
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


def provably_not_done(status: int, body: Any) -> bool:
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


def gateway_unsupported(ep: Endpoint) -> BasetenGatewayUnsupportedError:
    """The refusal, before sending, of an endpoint the LowCodeAPI gateway's Baseten reference does not list.

    Sending it anyway only ever earned a 404 (twice with ``url_format=auto``, once per URL format), which
    also read like "the object does not exist"; refusing says what is wrong and what to use instead.
    """
    return BasetenGatewayUnsupportedError(
        f"{ep.name} ({ep.method} {ep.path}) is not available through the LowCodeAPI gateway: its Baseten "
        "reference does not list that endpoint, so nothing was sent. Use a direct Baseten connection (extra "
        "gateway=baseten) for it."
    )


def retry_kind(err: BasetenError | None) -> str:
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


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def snippet_of(text: str) -> str:
    text = " ".join(text.split())
    return redact(text[:SNIPPET_CHARS] + ("..." if len(text) > SNIPPET_CHARS else ""))


def retry_after_of(response: httpx.Response, body: Any) -> float | None:
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


#: Endpoints that need a key with billing access: their 403 means exactly that.
BILLING_ENDPOINTS = frozenset({"get_usage_summary"})


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
    snippet = snippet_of(text)
    kw: dict[str, Any] = {
        "status_code": status,
        "error_code": code,
        "request_id": request_id,
        "body_snippet": snippet,
    }
    said = f": {detail}" if detail else (f": {snippet}" if snippet else "")
    if said.endswith(".") and not said.endswith("..."):  # Baseten's sentence ends where ours goes on: one period
        said = said[:-1]
    if status == 403 and where in BILLING_ENDPOINTS:
        return BasetenBillingAccessError(
            f"Baseten refused {where} (403){said}: this API key has no billing access. Use the key of a user "
            "allowed to see billing (a workspace admin) in the Airflow connection.",
            **kw,
        )
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
