"""The webhook receiver's settings, and where its secrets come from (no web framework imported here).

From Airflow, one connection (default id ``baseten_webhooks``) configures the receiver:

- ``password``: the webhook secret; several may be given comma-separated (a rotation's old and new secret);
- extra ``secrets``: more secrets (a list), e.g. the old one during a 24 h rotation;
- extra ``secrets_variable``: the name of an Airflow Variable holding one secret or a JSON list of them;
- extra ``store``: where bodies are stored (a local folder or an ``ObjectStoragePath`` URL such as ``s3://...``);
- extra ``max_body_bytes``, ``body_timeout``;
- extra ``retention_days``: bodies stored longer ago are removed (checked at most once an hour, after a
  delivery); unset, the store keeps everything. A receiver configured by a connection always requires signatures:
  it may sit behind a proxy on the same host, where every client looks like loopback (``allow_unsigned`` is
  refused there; the standalone command's ``--allow-unsigned`` is for a loopback development set-up only).

The connection and the Variable are read through Airflow's secrets backends (environment, metastore, or a
configured backend such as Vault), and again every ``reload_seconds``, so a rotated secret takes effect without
a restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_baseten.client.checks import is_int, is_number
from airflow_provider_baseten.exceptions import BasetenConfigurationError

__all__ = ["DEFAULT_CONN_ID", "ReceiverSettings", "SecretSource", "settings_from_connection"]

DEFAULT_CONN_ID = "baseten_webhooks"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


class SecretSource:
    """The current webhook secrets, from ``load`` and cached for ``ttl`` seconds.

    The secrets never appear in this object's repr, nor in any message it raises.

    :param load: returns the secrets; called at most once per ``ttl`` seconds.
    :param ttl: how long a loaded set stays current (``0``: load once, never again).
    """

    def __init__(self, load: Callable[[], Sequence[str]], ttl: float = 60.0) -> None:
        self._load = load
        self._ttl = ttl
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] | None = None
        self._loaded_at = 0.0

    @classmethod
    def static(cls, secrets: Sequence[str]) -> SecretSource:
        """A source with fixed secrets.

        :param secrets: the secrets.
        """
        fixed = _clean(secrets)
        return cls(lambda: fixed, ttl=0)

    def stale(self) -> bool:
        """Whether :meth:`current` would load again (so a caller on an event loop can do that in a thread)."""
        return self._secrets is None or (self._ttl > 0 and time.monotonic() - self._loaded_at > self._ttl)

    def current(self) -> tuple[str, ...]:
        """The secrets now valid (reloaded when older than ``ttl``; the last good set is kept if a reload fails)."""
        with self._lock:
            if self.stale():
                try:
                    self._secrets = _clean(self._load())
                except Exception:
                    if self._secrets is None:
                        raise
                    # Keep serving with the last good secrets: a backend blip must not refuse every delivery.
                self._loaded_at = time.monotonic()
            assert self._secrets is not None
            return self._secrets

    def __repr__(self) -> str:
        return "SecretSource(***)"


def _clean(secrets: Sequence[str]) -> tuple[str, ...]:
    out = []
    for secret in secrets:
        if not isinstance(secret, str):
            raise BasetenConfigurationError("a webhook secret must be a string")
        out += [s.strip() for s in secret.split(",") if s.strip()]
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class ReceiverSettings:
    """How the webhook receiver verifies and stores deliveries.

    :param store: a local folder or an ``ObjectStoragePath`` (or a URL string such as ``s3://bucket/hooks``).
    :param secrets: where the webhook secrets come from (:meth:`SecretSource.static` for fixed ones).
    :param max_body_bytes: a larger body is refused with 413, after reading at most this many bytes.
    :param body_timeout: seconds a client has to send the whole body (a slower one gets 408).
    :param allow_unsigned: accept deliveries with no signature header, from a loopback client only (a local
        development set-up). A delivery that carries a signature is still verified.
    :param retention_days: remove bodies stored more than this many days ago (at most once an hour, in the
        background after a delivery); ``None``: keep everything. Keep it well above the longest async wait: a
        body pruned before its wait gathered it is lost (Baseten keeps no output), reported as a per-item error.
    """

    store: Any
    secrets: SecretSource = field(default_factory=lambda: SecretSource.static(()))
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout: float = 10.0
    allow_unsigned: bool = False
    retention_days: float | None = None

    def __post_init__(self) -> None:
        if not (is_int(self.max_body_bytes) and self.max_body_bytes >= 1):
            raise BasetenConfigurationError("max_body_bytes must be a positive integer", field="max_body_bytes")
        if not self.body_timeout > 0:
            raise BasetenConfigurationError("body_timeout must be > 0", field="body_timeout")
        days = self.retention_days
        if days is not None and not (is_number(days) and 0 < days < float("inf")):
            raise BasetenConfigurationError(
                "retention_days must be a positive number of days (or unset, to keep everything)",
                field="retention_days",
            )

    def __repr__(self) -> str:
        return (
            f"ReceiverSettings(store={str(self.store)!r}, secrets=***, max_body_bytes={self.max_body_bytes}, "
            f"body_timeout={self.body_timeout}, allow_unsigned={self.allow_unsigned}, "
            f"retention_days={self.retention_days})"
        )


def _connection_secrets(conn_id: str) -> list[str]:
    from airflow.sdk import BaseHook, Variable

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    secrets: list[str] = [conn.password] if conn.password else []
    listed = extra.get("secrets") or []
    secrets += [listed] if isinstance(listed, str) else list(listed)
    variable = extra.get("secrets_variable")
    if variable:
        value = Variable.get(variable, default=None)
        if value is None:
            raise BasetenConfigurationError("the webhook secrets Variable does not exist", field="secrets_variable")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        secrets += [parsed] if isinstance(parsed, str) else list(parsed)
    return secrets


def _days(value: Any) -> float | None:
    """``retention_days`` from a connection extra, where the UI may have typed it as a string (``"7"``)."""
    if value is None or isinstance(value, bool):
        return value  # None; a bool is refused by ReceiverSettings
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BasetenConfigurationError(
            f"retention_days must be a positive number of days, got {value!r}", field="retention_days"
        ) from None


def settings_from_connection(
    conn_id: str = DEFAULT_CONN_ID, *, reload_seconds: float = 60.0, store: Any = None
) -> ReceiverSettings:
    """Receiver settings from an Airflow connection (see the module docstring for its fields).

    :param conn_id: the connection id.
    :param reload_seconds: how often the secrets are read again (so a rotation needs no restart).
    :param store: a store that replaces the extra's (then the extra need not name one).
    :raises BasetenConfigurationError: the connection has no ``store`` extra (and none is given) or a bad value.
    """
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(conn_id).extra_dejson
    if extra.get("allow_unsigned") not in (None, False):
        raise BasetenConfigurationError(
            f"connection {conn_id!r}: allow_unsigned is refused on a receiver configured by a connection (behind a "
            "proxy every client looks like loopback); sign deliveries with a webhook secret",
            field="allow_unsigned",
        )
    store = store or extra.get("store")
    if not store:
        raise BasetenConfigurationError(f"connection {conn_id!r} needs a 'store' extra", field="store")
    try:
        max_body_bytes = int(extra.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        body_timeout = float(extra.get("body_timeout", 10.0))
    except (TypeError, ValueError):
        raise BasetenConfigurationError(
            f"connection {conn_id!r}: max_body_bytes must be an integer and body_timeout a number of seconds",
            field="max_body_bytes",
        ) from None
    return ReceiverSettings(
        store=store,
        secrets=SecretSource(lambda: _connection_secrets(conn_id), ttl=reload_seconds),
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
        retention_days=_days(extra.get("retention_days")),
    )
