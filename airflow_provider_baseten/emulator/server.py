"""Run the emulator: :class:`BasetenEmulator` serves it from a background thread on a free port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from airflow_provider_baseten.emulator.config import EmulatorConfig, FaultRule

if TYPE_CHECKING:
    from airflow_provider_baseten.client.transport import Settings
    from airflow_provider_baseten.emulator.app import EmulatorCore
    from airflow_provider_baseten.hooks.baseten import BasetenHook

Gateway = Literal["baseten", "lowcodeapi"]
#: The ``gateway=`` values every connection helper takes.
GATEWAYS: tuple[Gateway, ...] = ("baseten", "lowcodeapi")


def _checked_gateway(gateway: object) -> Gateway:
    """``gateway`` if it names one; a ``TypeError`` otherwise (an unknown value would silently mean direct)."""
    if gateway not in GATEWAYS:
        raise TypeError(f"gateway={gateway!r}: use gateway='baseten' (direct) or gateway='lowcodeapi'.")
    return gateway


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``0``: a free port).

    It listens at once, so clients told the URL can connect (and wait in the backlog) before uvicorn starts.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, **kw: Any) -> Any:
    """uvicorn settings for the emulator: quiet, large backlog for batch benchmarks."""
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=kw.pop("log_level", "warning"),
        access_log=False,
        lifespan="on",
        backlog=4096,
        timeout_keep_alive=30,
        **kw,
    )


class BasetenEmulator:
    """A local Baseten (direct API and LowCodeAPI gateway) for tests and demos.

    Use it as a context manager::

        with BasetenEmulator(api_key="test-key") as emu:
            hook = emu.hook()                      # a BasetenHook wired to the emulator
            hook.predict({"text": "hi"})
            os.environ.update(emu.connection_env())  # AIRFLOW_CONN_BASETEN_DEFAULT for DAGs

    :param api_key: The only API key the emulator accepts.
    :param config: A full :class:`EmulatorConfig`; keyword ``overrides`` (e.g. ``time_scale=0``) win over it.
    :param host: Interface to listen on (loopback by default).
    :param port: Port (``0``: any free port).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **overrides: Any,
    ) -> None:
        from airflow_provider_baseten.emulator.app import EmulatorCore, create_app

        data = {f.name: getattr(config, f.name) for f in fields(EmulatorConfig)} if config else {}
        if api_key is not None:
            data["api_key"] = api_key
        data.update(overrides)
        self.config = EmulatorConfig.from_dict(data)
        self.core: EmulatorCore = EmulatorCore(self.config)
        self.app = create_app(self.core)
        self.host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"BasetenEmulator(url={self.url if self._server else None!r})"

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> BasetenEmulator:
        """Start serving in a daemon thread; returns once it accepts connections."""
        import uvicorn

        if self._server is not None:
            return self
        sock = self.bind()
        self._server = uvicorn.Server(uvicorn_config(self.app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="baseten-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The Baseten emulator did not start")
            time.sleep(0.01)
        return self

    def bind(self) -> socket.socket:
        """Listen on ``host:port`` (``0``: a free port) and fix :attr:`url`; :meth:`start` serves the socket."""
        sock = bind_socket(self.host, self._port)
        self._port = sock.getsockname()[1]
        self.core.set_base_url(self.url)
        return sock

    def serve_forever(self, sock: socket.socket, log_level: str = "warning") -> None:
        """Serve ``sock`` (from :meth:`bind`) in this thread until interrupted: the command line's way."""
        import uvicorn

        uvicorn.Server(uvicorn_config(self.app, log_level=log_level)).run(sockets=[sock])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> BasetenEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses and connections -------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL: the direct management API (``/v1/...``) lives here."""
        return f"http://{self.host}:{self._port}"

    @property
    def gateway_url(self) -> str:
        """The LowCodeAPI base URL (``.../baseten``)."""
        return self.url + "/baseten"

    @property
    def inference_url(self) -> str:
        """The connection's ``inference_url`` template for the direct inference API."""
        return self.url + "/model/{model_id}"

    @property
    def chain_url(self) -> str:
        """The connection's ``chain_url`` template for chain inference."""
        return self.url + "/chain/{chain_id}"

    @property
    def model_apis_url(self) -> str:
        """The connection's ``model_apis_url`` (Baseten's Model APIs)."""
        return self.url + "/model_apis/v1"

    @property
    def api_key(self) -> str:
        """The accepted API key."""
        return self.config.api_key

    @property
    def model_id(self) -> str | None:
        """The default model (the first seeded; LowCodeAPI inference reaches this one)."""
        return self.core.state.default_model_id()

    def connection(
        self,
        *,
        gateway: Gateway = "baseten",
        model_id: str | None = None,
        url_format: str = "auto",
        auth_scheme: str | None = None,
    ) -> dict[str, Any]:
        """An Airflow connection (JSON form) for this emulator; ``password`` is the API key.

        :param gateway: ``"baseten"`` (direct, the default) or ``"lowcodeapi"``; keyword-only in every
            helper (``connection``, ``connection_json``, ``connection_uri``, ``connection_env``, ``settings``,
            ``hook``), so no positional argument can silently pick the direct API.
        """
        extra: dict[str, Any] = {
            "gateway": _checked_gateway(gateway),
            "model_id": model_id or self.model_id,
            "inference_url": self.inference_url,
            "chain_url": self.chain_url,
            "model_apis_url": self.model_apis_url,
        }
        if gateway == "lowcodeapi":
            extra["url_format"] = url_format
        if auth_scheme:
            extra["auth_scheme"] = auth_scheme
        extra["upload_endpoint_url"] = self.upload_url  # archives go to S3 directly, whichever the gateway
        host = self.gateway_url if gateway == "lowcodeapi" else self.url
        return {"conn_type": "baseten", "password": self.api_key, "host": host, "extra": extra}

    def connection_json(self, *, gateway: Gateway = "baseten", **kw: Any) -> str:
        """:meth:`connection` as the JSON string ``AIRFLOW_CONN_<ID>`` accepts (``gateway=`` keyword-only)."""
        return json.dumps(self.connection(gateway=gateway, **kw))

    def connection_uri(self, *, gateway: Gateway = "baseten", **kw: Any) -> str:
        """:meth:`connection` as an Airflow connection URI (the host is a URL, so it is percent-encoded)."""
        conn = self.connection(gateway=gateway, **kw)
        query = urlencode({k: v for k, v in conn["extra"].items() if v is not None})
        return f"baseten://:{quote(conn['password'], safe='')}@{quote(conn['host'], safe='')}/?{query}"

    def connection_env(
        self, conn_id: str = "baseten_default", *, gateway: Gateway = "baseten", **kw: Any
    ) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": <json>}``, ready for ``os.environ.update`` or ``monkeypatch.setenv``.

        :param conn_id: The Airflow connection id (the only positional argument of any connection helper).
        :param gateway: ``"baseten"`` (direct, the default) or ``"lowcodeapi"``, keyword-only. A gateway name
            given as the connection id (``connection_env("lowcodeapi")``, the argument order of the old
            ``hook(gateway)``) is a ``TypeError`` rather than a direct connection named ``lowcodeapi``.
        """
        if conn_id in GATEWAYS:
            raise TypeError(
                f"connection_env({conn_id!r}): the positional argument is the connection id, and {conn_id!r} is a "
                f"gateway. Write connection_env(conn_id, gateway={conn_id!r})."
            )
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(gateway=gateway, **kw)}

    def settings(
        self,
        *,
        gateway: Gateway = "baseten",
        model_id: str | None = None,
        url_format: Literal["auto", "new", "old"] = "auto",
        auth_scheme: Literal["Bearer", "Api-Key"] = "Bearer",
        **kw: Any,
    ) -> Settings:
        """Transport :class:`~airflow_provider_baseten.config.Settings` for this emulator."""
        from airflow_provider_baseten.client.transport import Settings

        kw.setdefault("upload_endpoint_url", self.upload_url)
        return Settings(
            api_key=self.api_key,
            gateway=_checked_gateway(gateway),
            management_url=self.url,
            inference_url=self.inference_url,
            chain_url=self.chain_url,
            model_apis_url=self.model_apis_url,
            gateway_url=self.gateway_url,
            model_id=model_id or self.model_id,
            url_format=url_format,
            auth_scheme=auth_scheme,
            **kw,
        )

    def hook(self, *, gateway: Gateway = "baseten", **kw: Any) -> BasetenHook:
        """A :class:`BasetenHook` talking to this emulator (no Airflow connection needed).

        :param gateway: ``"baseten"`` (direct, the default) or ``"lowcodeapi"``, keyword-only
            (``emu.hook(gateway="lowcodeapi")``); ``kw`` go to :meth:`settings`.
        """
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        return BasetenHook(settings=self.settings(gateway=gateway, **kw))

    # -- control (the same as the /__admin endpoints) ------------------------------------------------
    @property
    def state(self) -> Any:
        """The live :class:`~airflow_provider_baseten.emulator.state.EmulatorState`."""
        return self.core.state

    def reset(self) -> None:
        """Back to the seed state, start-up faults and clock speed; counters and request log cleared."""
        self.core.reset()

    def advance(self, seconds: float) -> None:
        """Move the emulated clock ``seconds`` ahead."""
        self.core.clock.advance(seconds)

    def set_time_scale(self, time_scale: float) -> None:
        """Emulated seconds per real second from now on (``0`` freezes the clock)."""
        self.core.clock.set_time_scale(time_scale)

    def set_faults(self, rules: list[FaultRule | dict[str, Any]], seed: int | None = None) -> None:
        """Replace the fault rules (``FaultRule`` or dicts of its fields)."""
        parsed = [r if isinstance(r, FaultRule) else FaultRule(**r) for r in rules]
        self.core.faults.configure(parsed, self.core.faults.seed if seed is None else seed)

    def clear_faults(self) -> None:
        """Stop injecting faults."""
        self.core.faults.configure([], self.core.faults.seed)

    def set_gateway_new_format(self, enabled: bool) -> None:
        """``False``: LowCodeAPI new-format URLs answer 404 (forcing the old-format fallback)."""
        self.core.gateway_new_format = enabled

    def set_strict(self, strict: bool) -> None:
        """``False``: stop validating requests against Baseten's specs (``True``, the default: validate)."""
        self.core.strict = bool(strict)

    @contextmanager
    def lenient(self) -> Iterator[BasetenEmulator]:
        """``with emu.lenient():`` accepts requests the spec forbids, for a client you do not control."""
        before = self.core.strict
        self.core.strict = False
        try:
            yield self
        finally:
            self.core.strict = before

    def set_predict_latency(self, seconds: float) -> None:
        """Real seconds each sync predict takes."""
        self.core.predict_latency = seconds

    def set_predict_capacity(self, capacity: int | None) -> None:
        """Sync predicts served at once; more are refused with a 503 (``None``: no limit). Counts in
        ``counters()["capacity"]``: ``rejected`` and ``peak_inflight``."""
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1):
            raise ValueError(f"predict_capacity must be a positive integer or None, got {capacity!r}")
        self.core.predict_capacity = capacity

    def counters(self) -> dict[str, dict[str, int]]:
        """Requests per endpoint name, submissions, cancellations, webhooks, faults, responses per status.

        ``counters()["reset"]``: ``epoch`` (resets so far) and ``dropped`` (work from before a reset, dropped
        uncounted: a request a slow fault held, answered by closing the connection; a request answered after
        the reset, e.g. a sync predict's latency spanning it, answered but not logged (what it did to emulated
        objects after the reset, such as a Model API call's token usage, is kept); a webhook delivery, not
        attempted again). They belong to what ran before the reset. Neither is reset.
        """
        return self.core.counters()

    def requests(self) -> list[dict[str, Any]]:
        """The redacted request log."""
        return list(self.core.request_log)

    def create_deployment(
        self,
        model_id: str,
        name: str | None = None,
        status: str = "BUILDING",
        *,
        fail: str | None = None,
        fail_times: int = 1,
    ) -> dict[str, Any]:
        """Push a new deployment to ``model_id``; ``fail=`` makes its builds fail (see the state's method)."""
        return self.core.state.create_deployment(model_id, name, status, fail=fail, fail_times=fail_times)

    def add_logs(self, model_id: str, deployment_id: str, lines: list[dict[str, Any]]) -> int:
        """Append log lines ``{"timestamp": <epoch ns>, "message", "level", "replica"}`` to a deployment."""
        return self.core.state.add_logs(model_id, deployment_id, lines)

    def set_billing_access(self, enabled: bool) -> None:
        """``False``: the API key has no billing access (the usage summary answers 403, as Baseten does)."""
        with self.core.state.lock:
            self.core.state.billing_access = enabled

    def set_gateway_unlisted(self, enabled: bool) -> None:
        """``False``: the endpoints LowCodeAPI's reference does not list answer 404 on the gateway surface."""
        self.core.gateway_unlisted = enabled

    @property
    def upload_url(self) -> str:
        """The S3-compatible endpoint model archives are uploaded to (the connection's ``upload_endpoint_url``)."""
        return self.url + "/__s3"

    def set_deploy_fail(self, status: str | None) -> None:
        """Deployments created from an upload from now on end ``status`` (``BUILD_FAILED``, ``DEPLOY_FAILED``,
        ``UNHEALTHY``) with ERROR lines in their logs; ``None``: they become ACTIVE."""
        with self.core.state.lock:
            self.core.state.deploy_fail = status

    def set_promotion_fail(self, enabled: bool) -> None:
        """``True``: promotions started from now on end FAILED (the candidate fails its release)."""
        with self.core.state.lock:
            self.core.state.promotion_fail = enabled

    def scale_to_zero(self, model_id: str, deployment_id: str) -> dict[str, Any]:
        """Scale a deployment to zero."""
        return self.core.state.scale_to_zero(model_id, deployment_id)
