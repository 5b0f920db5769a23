"""Keep API keys out of every log line, exception message and URL string.

The LowCodeAPI gateway puts the key in the URL (``?api_token=...``), so any code that logs a URL can leak
it. Every secret the provider learns (the connection's key, keys that ``create_api_key`` returns) is
registered here; :func:`redact` scrubs them and any ``api_token`` query value from text, and
:func:`install_log_filters` applies the same scrub to httpx's and httpcore's own log records.
"""

from __future__ import annotations

import logging
import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_TOKEN_IN_URL = re.compile(r"(api_token=)[^&\s\"'#)<>,;]+", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"((?:Bearer|Api-Key)\s+)[A-Za-z0-9._\-]{6,}", re.IGNORECASE)
# A key in a JSON body (or a dict's repr) we could not parse (e.g. create_api_key's answer, truncated): the value is not
# registered yet, so scrub it by its field name. The closing quote may be missing.
_KEY_IN_JSON = re.compile(r"""(["'](?:api_key|api_token)["']\s*:\s*["'])[^"']*""", re.IGNORECASE)
MASK = "***"


def _remember(value: str | None) -> bool:
    """Add ``value`` to the provider's own list; True if it is new (and long enough to be a secret)."""
    if not value or len(value) < 4:
        return False
    with _lock:
        if value in _secrets:
            return False
        _secrets.add(value)
    return True


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret to scrub, and tell Airflow's secrets masker when it is running.

    Sync: for workers. On an event loop (a trigger) use :func:`aregister_secret`, whose supervisor round
    trip does not block the loop.
    """
    if not _remember(value):
        return
    try:  # Airflow's masker covers task logs, rendered fields and the UI.
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:  # pragma: no cover - outside a task runtime the masker may be absent
        pass


async def aregister_secret(value: str | None) -> None:
    """:func:`register_secret` for the triggerer's event loop: Airflow's async masking API (3.2+).

    Where ``amask_secret`` does not exist (Airflow 3.1), the secret is added to this process's masker
    only, with no blocking call to the supervisor.
    """
    if not _remember(value):
        return
    try:
        from airflow.sdk import log as sdk_log

        amask = getattr(sdk_log, "amask_secret", None)
        if amask is not None:
            await amask(value)
        else:  # pragma: no cover - Airflow 3.1 (Airflow's own connection read tells the supervisor there)
            from airflow.sdk._shared.secrets_masker import _secrets_masker

            _secrets_masker().add_mask(value, None)
    except Exception:  # pragma: no cover - outside a task runtime the masker may be absent
        pass


def redact(text: object) -> str:
    """``text`` as a string with every registered secret and ``api_token`` value replaced by ``***``."""
    s = str(text)
    if not s:
        return s
    s = _TOKEN_IN_URL.sub(r"\1" + MASK, s)
    s = _AUTH_HEADER.sub(r"\1" + MASK, s)
    s = _KEY_IN_JSON.sub(r"\1" + MASK, s)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in s:
            s = s.replace(secret, MASK)
    return s


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the fully formatted message of each record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix; leave it
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()
# Filters on a logger apply only to records logged on that exact logger, so name each one.
_THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "airflow_provider_baseten",
)


def install_log_filters() -> None:
    """Attach the redacting filter to the loggers that may print request URLs (idempotent)."""
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
