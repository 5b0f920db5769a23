"""How to reach Baseten: :class:`Settings` (from an Airflow connection or built directly), :class:`RetryPolicy`,
:class:`Timeouts`, and the check on what goes into a request body (:func:`encode_json`; an id in a URL is
checked by :func:`~airflow_provider_baseten.client.checks.validate_id`). Nothing here sends a request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import httpx

from airflow_provider_baseten.client.checks import hook_param_group, validate_id
from airflow_provider_baseten.client.redact import aregister_secret, redact, register_secret
from airflow_provider_baseten.client.routes import Endpoint
from airflow_provider_baseten.exceptions import (
    BasetenConfigurationError,
    BasetenValidationError,
)

Gateway = Literal["baseten", "lowcodeapi"]

UrlFormat = Literal["new", "old"]

DIRECT_MANAGEMENT_URL = "https://api.baseten.co"

DIRECT_INFERENCE_URL = "https://model-{model_id}.api.baseten.co"
#: A chain's inference host (``run_remote``, ``async_run_remote``, its async requests).
DIRECT_CHAIN_URL = "https://chain-{chain_id}.api.baseten.co"
#: Baseten's shared Model APIs (OpenAI-compatible LLMs and embedders).
MODEL_APIS_URL = "https://inference.baseten.co/v1"

LOWCODEAPI_URL = "https://api.lowcodeapi.com/baseten"

#: The URL extras that default to a host in Baseten's cloud, with that default.
CLOUD_URL_DEFAULTS: dict[str, str] = {
    "inference_url": DIRECT_INFERENCE_URL,
    "chain_url": DIRECT_CHAIN_URL,
    "model_apis_url": MODEL_APIS_URL,
}


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
        """The httpx timeout for ``ep``: long reads where its row says so (predict...), short elsewhere."""
        read = self.predict_read if ep.long_read else self.management_read
        return httpx.Timeout(connect=self.connect, read=read, write=max(read, 60.0), pool=self.connect + read)


@dataclass(frozen=True, repr=False)
class Settings:
    """Where and how to reach Baseten; built from an Airflow connection by :meth:`from_extra`, or directly.

    The API key is registered with the provider's redaction and Airflow's secrets masker when the settings
    are built, however they are built (see :func:`mask_api_key`).
    """

    api_key: str
    gateway: Gateway = "baseten"
    management_url: str = DIRECT_MANAGEMENT_URL
    inference_url: str = DIRECT_INFERENCE_URL
    chain_url: str = DIRECT_CHAIN_URL
    model_apis_url: str = MODEL_APIS_URL
    gateway_url: str = LOWCODEAPI_URL
    auth_scheme: Literal["Bearer", "Api-Key"] = "Bearer"
    url_format: Literal["auto", "new", "old"] = "auto"
    model_id: str | None = None
    #: Where model archives are uploaded (an S3-compatible endpoint) instead of AWS's own S3 host: for tests
    #: (the emulator) and private endpoints. ``None``: the bucket's region on AWS, as Baseten hands it out.
    upload_endpoint_url: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The URL extras (names in :data:`CLOUD_URL_DEFAULTS`) that a connection on a local host left unset. A
    #: call that needs one is refused by :meth:`url_template` instead of going to Baseten's cloud with what
    #: is most likely an emulator's key. Set by :meth:`from_extra`.
    unset_urls: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not _caller_masks_key.get():
            mask_api_key(self.api_key)

    def __repr__(self) -> str:
        return (
            f"Settings(gateway={self.gateway!r}, base_url={self.base_url!r}, model_id={self.model_id!r}, "
            f"auth_scheme={self.auth_scheme!r}, url_format={self.url_format!r}, api_key='***')"
        )

    @property
    def base_url(self) -> str:
        """The management (direct) or gateway (LowCodeAPI) base URL."""
        return self.gateway_url if self.gateway == "lowcodeapi" else self.management_url

    def url_template(self, name: str) -> str:
        """The URL template called ``name`` (``inference_url``, ``chain_url`` or ``model_apis_url``).

        Raises :class:`BasetenConfigurationError` (nothing is sent) when the connection's host is local and
        this URL was not set: the default is in Baseten's cloud, and this connection's key is not for it.
        """
        if name in self.unset_urls:
            raise BasetenConfigurationError(
                f"The connection's host {redact(self.base_url)} is on this machine (an emulator or a local proxy), but "
                f"its extra has no {name}, so this call would go to Baseten's cloud ({CLOUD_URL_DEFAULTS[name]}) "
                f"with this connection's key. Nothing was sent. Set {name} in the connection extra "
                "(`python -m airflow_provider_baseten.emulator` prints a complete connection).",
                field=name,
            )
        url: str = getattr(self, name)
        return url

    @classmethod
    def from_extra(
        cls, *, api_key: str | None, host: str | None, extra: dict[str, Any], register_key: bool = True, **kw: Any
    ) -> Settings:
        """Validate a connection's fields and build settings. Raises :class:`BasetenConfigurationError`.

        ``timeouts`` and ``retry`` (in ``kw``): a :class:`Timeouts` / :class:`RetryPolicy` is used as it is; a
        dict (``hook_params``) overrides the connection extra's ``timeouts`` / ``retry`` key by key, and what
        neither gives keeps the default. So: ``hook_params`` > connection extra > defaults.

        ``register_key=False`` leaves masking the key to the caller (the async path masks it with
        :func:`~airflow_provider_baseten.client.redact.aregister_secret`, which does not block the event loop).
        """
        api_key = _api_key(api_key)
        if register_key:
            register_secret(api_key)
        # Extra is user-typed JSON: a number or boolean where a string belongs is a config error, not a crash.
        # Checked in this order, so a connection with several mistakes is told about the same one first.
        gateway = _gateway(extra)
        auth_scheme = _auth_scheme(extra)
        url_format = _url_format(extra)
        inference_url, chain_url, model_apis_url = _url_templates(extra)
        base = _normalise_host(host) if host else None
        unset_urls = _unset_urls(base, extra)
        upload_endpoint_url = _upload_endpoint_url(extra)
        model_id = _model_id(extra)
        timeouts = _merged(Timeouts, "timeouts", extra, kw.pop("timeouts", None))
        retry = _merged(RetryPolicy, "retry", extra, kw.pop("retry", None))
        token = _caller_masks_key.set(True)  # masked above, or by the caller (register_key=False)
        try:
            return cls(
                api_key=api_key,
                gateway=gateway,
                management_url=base if base and gateway == "baseten" else DIRECT_MANAGEMENT_URL,
                gateway_url=base if base and gateway == "lowcodeapi" else LOWCODEAPI_URL,
                inference_url=inference_url,
                chain_url=chain_url,
                model_apis_url=model_apis_url,
                auth_scheme=auth_scheme,
                url_format=url_format,
                model_id=model_id,
                upload_endpoint_url=upload_endpoint_url,
                unset_urls=unset_urls,
                timeouts=timeouts,
                retry=retry,
                **kw,
            )
        finally:
            _caller_masks_key.reset(token)


# -- the connection's fields, one check each (Settings.from_extra) ------------------------------------------
def _api_key(api_key: str | None) -> str:
    if not api_key or not str(api_key).strip():
        raise BasetenConfigurationError(
            "The Baseten connection has no API key. Put your Baseten API key (or LowCodeAPI api_token) "
            "in the connection's password field ('API Key' in the UI).",
            field="password",
        )
    return str(api_key).strip()


def _gateway(extra: dict[str, Any]) -> Gateway:
    gateway = str(extra.get("gateway") or "baseten").strip().lower()
    if gateway not in ("baseten", "lowcodeapi"):
        raise BasetenConfigurationError(
            f"Unknown gateway {gateway!r} in the connection extra. Use 'baseten' (direct) or 'lowcodeapi'.",
            field="gateway",
        )
    return cast(Gateway, gateway)


_AUTH_SCHEMES: dict[str, Literal["Bearer", "Api-Key"]] = {"bearer": "Bearer", "api-key": "Api-Key", "apikey": "Api-Key"}


def _auth_scheme(extra: dict[str, Any]) -> Literal["Bearer", "Api-Key"]:
    scheme = str(extra.get("auth_scheme") or "Bearer").strip()
    if scheme.lower() not in _AUTH_SCHEMES:
        raise BasetenConfigurationError(
            f"Unknown auth_scheme {scheme!r}. Use 'Bearer' (default) or 'Api-Key'.", field="auth_scheme"
        )
    return _AUTH_SCHEMES[scheme.lower()]


def _url_format(extra: dict[str, Any]) -> Literal["auto", "new", "old"]:
    url_format = str(extra.get("url_format") or "auto").strip().lower()
    if url_format not in ("auto", "new", "old"):
        raise BasetenConfigurationError(
            f"Unknown url_format {url_format!r}. Use 'auto' (default), 'new' or 'old'.",
            field="url_format",
        )
    return cast(Literal["auto", "new", "old"], url_format)


def _url_templates(extra: dict[str, Any]) -> tuple[str, str, str]:
    """The inference, chain and Model APIs URL templates, checked, without a trailing slash."""
    inference_url = str(extra.get("inference_url") or DIRECT_INFERENCE_URL)
    _check_url(inference_url.replace("{model_id}", "m"), "inference_url")
    if "{" in inference_url.replace("{model_id}", ""):
        raise BasetenConfigurationError(
            f"inference_url {inference_url!r} has a placeholder other than {{model_id}}. Use only {{model_id}}, "
            "e.g. https://model-{model_id}.api.baseten.co",
            field="inference_url",
        )
    chain_url = str(extra.get("chain_url") or DIRECT_CHAIN_URL)
    _check_url(chain_url.replace("{chain_id}", "c"), "chain_url")
    model_apis_url = str(extra.get("model_apis_url") or MODEL_APIS_URL)
    _check_url(model_apis_url, "model_apis_url")
    return inference_url.rstrip("/"), chain_url.rstrip("/"), model_apis_url.rstrip("/")


def _unset_urls(base: str | None, extra: dict[str, Any]) -> frozenset[str]:
    """A local host means an emulator (or a local proxy): never fill in Baseten's cloud hosts for it."""
    if base and is_local(base):
        return frozenset(n for n in CLOUD_URL_DEFAULTS if not extra.get(n))
    return frozenset()


def _upload_endpoint_url(extra: dict[str, Any]) -> str | None:
    url = extra.get("upload_endpoint_url") or None
    if url is None:
        return None
    url = str(url).rstrip("/")
    _check_url(url, "upload_endpoint_url")
    return url


def _model_id(extra: dict[str, Any]) -> str | None:
    model_id = extra.get("model_id") or None
    if model_id is not None:
        validate_id("model_id", model_id)
    return model_id


_Group = TypeVar("_Group", Timeouts, RetryPolicy)


def _merged(cls: type[_Group], group: str, extra: dict[str, Any], override: _Group | dict[str, float] | None) -> _Group:
    """The connection extra's ``timeouts`` or ``retry`` (e.g. ``{"predict_read": 300}``) under ``override``:
    an instance of ``cls`` replaces it, a dict (already checked, from ``hook_params``) overrides it key by key."""
    if override is not None and not isinstance(override, dict):
        return override
    try:
        given = hook_param_group(group, extra.get(group), where="extra")
    except BasetenValidationError as exc:  # the connection's mistake: say so
        raise BasetenConfigurationError(f"The Baseten connection: {exc.message}", field=exc.field) from None
    fields: dict[str, Any] = {**given, **(override or {})}
    return cls(**fields)


# Set while ``from_extra`` builds settings whose key is already masked, or masked by its caller.
_caller_masks_key: ContextVar[bool] = ContextVar("_caller_masks_key", default=False)
# Masking tasks started on an event loop, referenced until they finish (the loop keeps only weak ones).
_masking: set[asyncio.Task[None]] = set()


def mask_api_key(api_key: str) -> None:
    """Register ``api_key`` with :func:`~airflow_provider_baseten.client.redact.redact` and Airflow's masker.

    Off an event loop: :func:`~airflow_provider_baseten.client.redact.register_secret`, at once. On one (settings
    built inside a trigger): :func:`~airflow_provider_baseten.client.redact.aregister_secret` as a task on that
    loop, because the sync masker's round trip to the supervisor would block every other trigger; the key
    is masked from the loop's next step on.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        register_secret(api_key)
        return
    task = loop.create_task(aregister_secret(api_key))
    _masking.add(task)
    task.add_done_callback(_masking.discard)


def _normalise_host(host: str) -> str:
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "https://" + host
    _check_url(host, "host")
    return host


def is_local(url: str) -> bool:
    """Whether ``url``'s host is this machine: ``localhost``, a loopback address (127.0.0.0/8, ``::1``) or the
    unspecified address (``0.0.0.0``, ``::``; connecting to it reaches this machine)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
    return any(a.is_loopback or a.is_unspecified for a in (addr, mapped) if a is not None)


def _check_url(url: str, field_name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        raise BasetenConfigurationError(
            f"{field_name} {redact(url)!r} is not a valid http(s) URL, e.g. https://model-{{model_id}}.api.baseten.co",
            field=field_name,
        )


def encode_json(body: Any, field_name: str = "body") -> bytes:
    """Serialise a request body, turning a non-JSON value into a :class:`BasetenValidationError`."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise BasetenValidationError(
            f"{field_name} is not JSON-serialisable ({exc}). Convert it to dicts, lists, strings and numbers.",
            field=field_name,
        ) from None
