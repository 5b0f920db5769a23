"""The hook's core: the connection, its settings and transport, and the routing of inference calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from airflow.sdk import BaseHook

from airflow_provider_baseten.hooks._api import _Batch, _Cached, _Call, _exchange, _v

if TYPE_CHECKING:
    import httpx

    from airflow_provider_baseten.client.batch import BatchResult
    from airflow_provider_baseten.client.cache import ScopedCache
    from airflow_provider_baseten.client.transport import RetryPolicy, Settings, Timeouts, Transport


P = ParamSpec("P")
T = TypeVar("T")

_warned_gateway_model: set[str] = set()


class _HookCore(BaseHook):
    """What every part of :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook` stands on."""

    conn_name_attr = "baseten_conn_id"
    default_conn_name = "baseten_default"
    conn_type = "baseten"
    hook_name = "Baseten"

    def __init__(
        self,
        baseten_conn_id: str = default_conn_name,
        *,
        timeouts: Timeouts | dict[str, float] | None = None,
        retry: RetryPolicy | dict[str, float] | None = None,
        settings: Settings | None = None,
        http_transport: httpx.BaseTransport | None = None,
        async_http_transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.client.checks import hook_param_group

        super().__init__(**kwargs)
        self.baseten_conn_id = baseten_conn_id
        # A dict (``hook_params``) overrides the connection extra key by key: checked now, before any request.
        self._timeouts = (hook_param_group("timeouts", timeouts) or None) if isinstance(timeouts, dict) else timeouts
        self._retry = (hook_param_group("retry", retry) or None) if isinstance(retry, dict) else retry
        self._settings = settings
        self._http_transport = http_transport
        self._async_http_transport = async_http_transport
        self._transport: Transport | None = None
        #: ``cache=``: the deployment each (model, target) serves, resolved once for this hook (one task).
        self._cache_scopes: dict[tuple[str, ...], str] = {}

    def __repr__(self) -> str:
        return f"BasetenHook(baseten_conn_id={self.baseten_conn_id!r})"

    def _settings_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self._timeouts is not None:
            kw["timeouts"] = self._timeouts
        if self._retry is not None:
            kw["retry"] = self._retry
        return kw

    def _make_transport(self, settings: Settings) -> Transport:
        from airflow_provider_baseten.client.transport import Transport

        return Transport(settings, transport=self._http_transport, async_transport=self._async_http_transport)

    @property
    def settings(self) -> Settings:
        """The validated connection settings (read from the Airflow connection on first use)."""
        return self.get_transport().settings

    def get_transport(self) -> Transport:
        """The hook's transport, reading the connection synchronously on first use."""
        if self._transport is None:
            settings = self._settings
            if settings is None:
                from airflow_provider_baseten.client.transport import Settings

                conn = self.get_connection(self.baseten_conn_id)
                settings = Settings.from_extra(
                    api_key=conn.password, host=conn.host, extra=conn.extra_dejson, **self._settings_kwargs()
                )
            self._transport = self._make_transport(settings)
        return self._transport

    async def aget_transport(self) -> Transport:
        """The hook's transport, reading the connection with Airflow's async API (safe in triggers)."""
        if self._transport is None:
            settings = self._settings
            if settings is None:
                from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

                from airflow_provider_baseten.client.redact import aregister_secret
                from airflow_provider_baseten.client.transport import Settings

                conn = await get_async_connection(self.baseten_conn_id, self)
                extra = await get_async_extra_dejson(conn)
                settings = Settings.from_extra(
                    api_key=conn.password, host=conn.host, extra=extra, register_key=False, **self._settings_kwargs()
                )
                await aregister_secret(settings.api_key)  # the sync mask_secret would block the loop
            from airflow_provider_baseten.client.transport import ashared_ssl_context

            await ashared_ssl_context()  # so the async client does not build one on the loop
            self._transport = self._make_transport(settings)
        return self._transport

    def _send(self, build: Callable[Concatenate[_HookCore, P], _Call[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Build a call with ``build(self, *args, **kwargs)`` and send it; the answer, parsed.

        The transport (and so the connection's settings) exists before the builder runs: builders route by them.
        """
        transport = self.get_transport()
        built = build(self, *args, **kwargs)
        transport.refuse_unlisted(built.name)  # before any step: a create's snapshot is not sent either
        if built.cached is not None:
            self._cache_scope(built.cached)
        steps = _exchange(self, built)
        try:
            call = next(steps)
            while True:
                try:
                    answer = _request(transport, call)
                except Exception as exc:
                    call = steps.throw(exc)  # a create's failure may lead to a lookup of what it made
                else:
                    call = steps.send(answer)
        except StopIteration as done:  # the generator returned: the answer
            return cast("T", done.value)

    async def _asend(
        self, build: Callable[Concatenate[_HookCore, P], _Call[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """The async :meth:`_send`: the same steps (:func:`~airflow_provider_baseten.hooks._api._exchange`)."""
        transport = await self.aget_transport()
        built = build(self, *args, **kwargs)
        transport.refuse_unlisted(built.name)  # before any step: a create's snapshot is not sent either
        if built.cached is not None:
            await self._acache_scope(built.cached)
        steps = _exchange(self, built)
        try:
            call = next(steps)
            while True:
                try:
                    answer = await _arequest(transport, call)
                except Exception as exc:
                    call = steps.throw(exc)  # a create's failure may lead to a lookup of what it made
                else:
                    call = steps.send(answer)
        except StopIteration as done:  # the generator returned: the answer
            return cast("T", done.value)

    def _run_batch(
        self, build: Callable[Concatenate[_HookCore, P], _Batch], /, *args: P.args, **kwargs: P.kwargs
    ) -> BatchResult:
        """Build a batch with ``build(self, *args, **kwargs)`` and run it (on its own event loop)."""
        from airflow_provider_baseten.client.batch import run_batch_sync

        transport = self.get_transport()
        batch = build(self, *args, **kwargs)
        options = {**batch.options, "log": batch.options.get("log") or self.log}
        if batch.cached is not None:
            options["cache"] = self._cache_scope(batch.cached)
        return run_batch_sync(transport, batch.route, batch.inputs, **options)

    async def _arun_batch(
        self, build: Callable[Concatenate[_HookCore, P], _Batch], /, *args: P.args, **kwargs: P.kwargs
    ) -> BatchResult:
        """The async :meth:`_run_batch` (on the caller's event loop)."""
        from airflow_provider_baseten.client.batch import run_batch

        transport = await self.aget_transport()
        batch = build(self, *args, **kwargs)
        options = {**batch.options, "log": batch.options.get("log") or self.log}
        if batch.cached is not None:
            options["cache"] = await self._acache_scope(batch.cached)
        return await run_batch(transport, batch.route, batch.inputs, **options)

    def _cache_scope(self, cached: _Cached) -> ScopedCache:
        """Resolve ``cached``'s scope (once per hook for an environment: one request) and bind its cache."""
        if cached.scope is None:
            assert cached.resolve is not None
            if cached.memo not in self._cache_scopes:
                self._cache_scopes[cached.memo] = _request(self.get_transport(), cached.resolve)
            cached.scope = self._cache_scopes[cached.memo]
        return _bind(cached)

    async def _acache_scope(self, cached: _Cached) -> ScopedCache:
        """The async :meth:`_cache_scope`."""
        if cached.scope is None:
            assert cached.resolve is not None
            if cached.memo not in self._cache_scopes:
                self._cache_scopes[cached.memo] = await _arequest(await self.aget_transport(), cached.resolve)
            cached.scope = self._cache_scopes[cached.memo]
        return _bind(cached)

    def close(self) -> None:
        """Close the pooled sync client."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Close the pooled async client."""
        if self._transport is not None:
            await self._transport.aclose()

    def _model(self, model_id: str | None) -> str:
        from airflow_provider_baseten.exceptions import BasetenValidationError

        # Only a missing model_id falls back to the connection's: an explicit "" is an error, not "default", so
        # a task never silently acts on another model than the one it named.
        default = self._transport.settings.model_id if self._transport else None
        if model_id is not None and not model_id:
            shown = f" (the connection's is {default!r})" if default else ""
            raise BasetenValidationError(
                f"model_id is empty (a template that rendered to ''?): pass a model id, or leave model_id unset to "
                f"use the connection's default{shown}.",
                field="model_id",
            )
        chosen = model_id if model_id is not None else default
        if not chosen:
            raise BasetenValidationError(
                "No model_id given and the connection has no default model_id (extra 'model_id'): pass model_id=.",
                field="model_id",
            )
        return _v("model_id", chosen)

    def _inference_model(self, model_id: str | None) -> str | None:
        """The model id for an inference call; ``None`` through LowCodeAPI, which routes by the token.

        An explicit ``model_id`` through the gateway is an error: the gateway would send the request to
        the token's model whatever the id says, and the task would succeed on the wrong model.
        """
        if not self._gateway:
            return self._model(model_id)
        from airflow_provider_baseten.exceptions import BasetenValidationError

        default = self._transport.settings.model_id if self._transport else None
        if model_id is not None and model_id != default:  # the connection's own id is no surprise (warned below)
            raise BasetenValidationError(
                f"model_id={model_id!r} cannot be honoured through the LowCodeAPI gateway: it routes inference by "
                "the api_token, to the model that token serves, so the request would go there whatever model_id "
                "says. Drop model_id= for inference through LowCodeAPI, or use a direct Baseten connection "
                "(extra gateway='baseten') to choose the model.",
                field="model_id",
            )
        if default and self.baseten_conn_id not in _warned_gateway_model:
            _warned_gateway_model.add(self.baseten_conn_id)
            self.log.warning(
                "Connection %s sets model_id=%s, but LowCodeAPI routes inference by the api_token: inference goes "
                "to the token's model and this model_id is used for management calls only.",
                self.baseten_conn_id,
                default,
            )
        return None

    @property
    def _gateway(self) -> bool:
        return self._transport is not None and self._transport.settings.gateway == "lowcodeapi"

    def _direct_only(self, what: str) -> None:
        """Refuse, before sending, a call the LowCodeAPI gateway cannot route."""
        if self._gateway:
            from airflow_provider_baseten.exceptions import BasetenGatewayUnsupportedError

            raise BasetenGatewayUnsupportedError(
                f"{what} is not available through the LowCodeAPI gateway: its Baseten reference does not list "
                "/sync (OpenAI-compatible) routes, Model APIs or chain inference routes, so nothing was sent. Use "
                "a direct Baseten connection (extra gateway=baseten) for it."
            )

    def _inference(
        self,
        action: str,
        model_id: str | None,
        environment: str | None,
        deployment_id: str | None,
        regional: bool = False,
    ) -> _Call[Any]:
        """Route an inference action to the deployment, development, production or environment endpoint, or
        (``regional=True``) to the bare path on the environment's regional host."""
        from airflow_provider_baseten.client.routes import BY_TARGET

        target, params = inference_target(environment, deployment_id, regional=regional)
        # LowCodeAPI routes by token, not by model host; the direct API needs a model id.
        model = self._inference_model(model_id)
        if target == "regional":
            # Through LowCodeAPI (model None) the transport refuses the row, which the gateway does not list.
            host = regional_host_id(model, params.pop("env_name")) if model is not None else None
            return _Call(BY_TARGET[action, target], params, model_id=host)
        if target == "production" and action != "wake" and self._gateway:
            # The gateway reference has /production/wake but reaches production predict via /environments.
            target, params = "environment", {"env_name": "production"}
        return _Call(BY_TARGET[action, target], params, model_id=model)


def inference_target(
    environment: str | None, deployment_id: str | None, *, regional: bool = False
) -> tuple[str, dict[str, str]]:
    """``(target, path params)`` of an inference call: ``deployment`` (with ``deployment_id``), ``development``,
    ``production`` (the default) or ``environment`` (``env_name``), by the one target rule
    (:func:`~airflow_provider_baseten.client.checks.check_target`).

    With ``regional=True``: ``regional`` with ``env_name``, which goes into the host (:func:`regional_host_id`),
    not the path; it needs ``environment=`` and no ``deployment_id`` (a BasetenValidationError otherwise).
    """
    from airflow_provider_baseten.client.checks import check_target

    environment, deployment_id = check_target(environment, deployment_id, who="BasetenHook", regional=regional)
    if regional:
        return "regional", {"env_name": cast(str, environment)}
    if deployment_id is not None:
        return "deployment", {"deployment_id": deployment_id}
    env = environment if environment is not None else "production"
    if env in ("development", "production"):
        return env, {}
    return "environment", {"env_name": env}


def regional_host_id(host_id: str, env_name: str) -> str:
    """The id part of a regional environment's host: Baseten's regional host is the model's (chain's) host with
    ``-{env_name}`` after the id (``model-{model_id}-{env_name}.api.baseten.co``), so the connection's
    ``inference_url`` / ``chain_url`` template, given this as its id, names the regional host."""
    return f"{host_id}-{env_name}"


def _bind(cached: _Cached) -> ScopedCache:
    from airflow_provider_baseten.client.cache import ScopedCache

    assert cached.scope is not None
    return ScopedCache(cached.cache, cached.scope, cached.route)


def _request(transport: Transport, call: _Call[Any]) -> Any:
    return transport.request(
        call.name, call.params, query=call.query, body=call.body, model_id=call.model_id, parse=call.parse
    )


async def _arequest(transport: Transport, call: _Call[Any]) -> Any:
    return await transport.arequest(
        call.name, call.params, query=call.query, body=call.body, model_id=call.model_id, parse=call.parse
    )
