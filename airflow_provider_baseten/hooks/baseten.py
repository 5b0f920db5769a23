"""``BasetenHook``: every Baseten endpoint, direct or through LowCodeAPI, sync and async.

Each endpoint method is written once, as a *builder* that validates its arguments and says which endpoint
to call with what. :func:`_api` turns a builder into the public sync method and :func:`_async_twins` adds
its ``a``-prefixed async twin, so the two paths cannot drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    import httpx

    from airflow_provider_baseten._batch import BatchResult
    from airflow_provider_baseten._transport import RetryPolicy, Settings, Timeouts, Transport
    from airflow_provider_baseten.models import (
        ActivationResult,
        ApiKey,
        AsyncCancelResult,
        AsyncPredictResult,
        AsyncQueueStatus,
        AsyncRequest,
        Chain,
        CreatedApiKey,
        Deployment,
        Environment,
        Model,
        Secret,
        StatusMessage,
        Tombstone,
        TrainingCheckpoint,
        TrainingCheckpointFiles,
        TrainingDownload,
        TrainingJob,
        TrainingLogLine,
        TrainingMetrics,
    )


@dataclass
class _Call:
    """What a builder asks for: an endpoint, its parameters, and how to read the answer."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] | None = None
    body: Any = None
    model_id: str | None = None
    parse: Callable[[Any], Any] = lambda data: data


def _api(builder: Callable[..., _Call]) -> Callable[..., Any]:
    """Make the public sync method from ``builder``; :func:`_async_twins` adds the async one."""

    @functools.wraps(builder)
    def sync(self: BasetenHook, *args: Any, **kwargs: Any) -> Any:
        transport = self.get_transport()
        call = builder(self, *args, **kwargs)
        return transport.request(
            call.name, call.params, query=call.query, body=call.body, model_id=call.model_id, parse=call.parse
        )

    async def asynchronous(self: BasetenHook, *args: Any, **kwargs: Any) -> Any:
        transport = await self.aget_transport()
        call = builder(self, *args, **kwargs)
        return await transport.arequest(
            call.name, call.params, query=call.query, body=call.body, model_id=call.model_id, parse=call.parse
        )

    asynchronous.__name__ = asynchronous.__qualname__ = "a" + builder.__name__
    asynchronous.__doc__ = f"Async twin of :meth:`{builder.__name__}` (same arguments, awaitable)."
    sync._async_twin = asynchronous  # type: ignore[attr-defined]
    return sync


def _async_twins(cls: type) -> type:
    for name, value in list(vars(cls).items()):
        twin = getattr(value, "_async_twin", None)
        if twin is not None:
            setattr(cls, "a" + name, twin)
    return cls


def _m() -> Any:  # lazy import keeps DAG parsing cheap
    from airflow_provider_baseten import models

    return models


def _v(name: str, value: Any) -> str:
    from airflow_provider_baseten._transport import validate_id

    return validate_id(name, value)


@_async_twins
class BasetenHook(BaseHook):
    """Talk to Baseten from Airflow: inference, deployments, environments, secrets, API keys, training.

    :param baseten_conn_id: The Airflow connection (type ``baseten``). Its password is the API key.
    :param timeouts: Override connect/read timeouts (:class:`~airflow_provider_baseten._transport.Timeouts`).
    :param retry: Override the retry policy (:class:`~airflow_provider_baseten._transport.RetryPolicy`).
    :param settings: Use these settings instead of reading a connection (tests, scripts).
    :param http_transport: An httpx transport to send through (``httpx.MockTransport`` in unit tests).

    Inference methods take the target as ``model_id`` (default: the connection's), ``environment``
    (default production; ``"development"`` is the development deployment) or ``deployment_id``.
    """

    conn_name_attr = "baseten_conn_id"
    default_conn_name = "baseten_default"
    conn_type = "baseten"
    hook_name = "Baseten"
    _inference_actions: ClassVar[tuple[str, ...]] = ("predict", "async_predict", "async_queue_status", "wake")

    def __init__(
        self,
        baseten_conn_id: str = default_conn_name,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        settings: Settings | None = None,
        http_transport: httpx.BaseTransport | None = None,
        async_http_transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.baseten_conn_id = baseten_conn_id
        self._timeouts = timeouts
        self._retry = retry
        self._settings = settings
        self._http_transport = http_transport
        self._async_http_transport = async_http_transport
        self._transport: Transport | None = None

    def __repr__(self) -> str:
        return f"BasetenHook(baseten_conn_id={self.baseten_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: hide unused fields and relabel the password as the API key."""
        from airflow_provider_baseten import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    # -- settings and transport ------------------------------------------------------------------------
    def _settings_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self._timeouts is not None:
            kw["timeouts"] = self._timeouts
        if self._retry is not None:
            kw["retry"] = self._retry
        return kw

    def _make_transport(self, settings: Settings) -> Transport:
        from airflow_provider_baseten._transport import Transport

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
                from airflow_provider_baseten._transport import Settings

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

                from airflow_provider_baseten._redact import aregister_secret
                from airflow_provider_baseten._transport import Settings

                conn = await get_async_connection(self.baseten_conn_id, self)
                extra = await get_async_extra_dejson(conn)
                settings = Settings.from_extra(
                    api_key=conn.password, host=conn.host, extra=extra, register_key=False, **self._settings_kwargs()
                )
                await aregister_secret(settings.api_key)  # the sync mask_secret would block the loop
            from airflow_provider_baseten._transport import ashared_ssl_context

            await ashared_ssl_context()  # so the async client does not build one on the loop
            self._transport = self._make_transport(settings)
        return self._transport

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

        # Only a missing model_id falls back to the connection's: an explicit "" is an error, not "default".
        chosen = model_id if model_id is not None else (self._transport.settings.model_id if self._transport else None)
        if not chosen:
            raise BasetenValidationError(
                "No model_id given and the connection has no default model_id (extra 'model_id').",
                field="model_id",
            )
        return _v("model_id", chosen)

    @property
    def _gateway(self) -> bool:
        return self._transport is not None and self._transport.settings.gateway == "lowcodeapi"

    def _inference(
        self, action: str, model_id: str | None, environment: str | None, deployment_id: str | None
    ) -> _Call:
        """Route an inference action to the deployment, development, production or environment endpoint."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if environment is not None and deployment_id is not None:
            raise BasetenValidationError(
                f"Give environment or deployment_id, not both (got environment={environment!r}, "
                f"deployment_id={deployment_id!r}).",
                field="deployment_id",
            )
        # LowCodeAPI routes by token, not by model host; the direct API needs a model id.
        model = None if self._gateway and not model_id else self._model(model_id)
        if deployment_id is not None:
            return _Call(f"deployment_{action}", {"deployment_id": _v("deployment_id", deployment_id)}, model_id=model)
        env = _v("environment", environment) if environment is not None else "production"
        if env == "development":
            return _Call(f"development_{action}", model_id=model)
        if env == "production" and (action == "wake" or not self._gateway):
            # The gateway reference has /production/wake but reaches production predict via /environments.
            return _Call(f"production_{action}", model_id=model)
        return _Call(f"environment_{action}", {"env_name": env}, model_id=model)

    # -- inference -------------------------------------------------------------------------------------
    @_api
    def predict(
        self,
        input: Any,
        *,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
    ) -> Any:
        """Run one synchronous prediction and return the model's output as it answered.

        :param input: The model input, sent as the JSON body (must be JSON-serialisable).
        """
        from airflow_provider_baseten._transport import encode_json

        encode_json(input, "input")
        call = self._inference("predict", model_id, environment, deployment_id)
        call.body = input
        return call

    def predict_batch(
        self,
        inputs: Iterable[Any],
        *,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
        max_concurrency: int = 32,
        on_error: str = "fail",
        output_path: Any = None,
        resume: bool = False,
        progress_interval: float = 5.0,
        total: int | None = None,
        log: Any = None,
    ) -> BatchResult:
        """Predict many inputs concurrently; results keep input order and nothing that succeeded is lost.

        :param inputs: Any iterable of inputs (a list, a generator reading JSONL, ...).
        :param max_concurrency: Requests in flight at once; each worker has its own connection.
        :param on_error: ``fail`` attempts every item then raises :class:`BasetenBatchError` naming the failed
            indices; ``record`` keeps ``{"index", "error"}`` entries in the results instead. An item whose
            retries run out on a transient error (5xx, 429, timeout, dropped connection) is given up to
            three retry sequences before it counts as failed; a run of such failures (an outage) stops the
            batch early, keeping what succeeded.
        :param output_path: Write JSONL lines ``{"index", "output"|"error"}`` here (a path or
            ``ObjectStoragePath``) instead of keeping outputs in memory.
        :param resume: With ``output_path``: keep the lines already there and skip those indices.
        :param total: The number of inputs, when ``inputs`` has no ``len()`` (for progress and ETA).
        :returns: :class:`~airflow_provider_baseten._batch.BatchResult`.
        """
        from airflow_provider_baseten._batch import run_batch_sync

        transport = self.get_transport()  # loads the connection; routing below needs it
        route = self._inference("predict", model_id, environment, deployment_id)
        return run_batch_sync(
            transport,
            route,
            inputs,
            max_concurrency=max_concurrency,
            on_error=on_error,
            output_path=output_path,
            resume=resume,
            progress_interval=progress_interval,
            total=total,
            log=log or self.log,
        )

    async def apredict_batch(self, inputs: Iterable[Any], **kwargs: Any) -> BatchResult:
        """Async twin of :meth:`predict_batch` (same arguments)."""
        from airflow_provider_baseten._batch import run_batch

        transport = await self.aget_transport()
        route = self._inference(
            "predict", kwargs.pop("model_id", None), kwargs.pop("environment", None), kwargs.pop("deployment_id", None)
        )
        kwargs.setdefault("log", self.log)
        return await run_batch(transport, route, inputs, **kwargs)

    @_api
    def async_predict(
        self,
        model_input: dict[str, Any],
        *,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
        webhook_endpoint: str | None = None,
        priority: int | None = None,
        max_time_in_queue_seconds: int | None = None,
        inference_retry_config: dict[str, Any] | None = None,
    ) -> AsyncPredictResult:
        """Submit an async prediction; returns the ``request_id``. Outputs go to ``webhook_endpoint``.

        Options are checked against Baseten's ranges (priority 0-2, queue time 10-259200 s, retry config)
        and the payload against the 256 KiB limit before anything is sent.
        """
        from airflow_provider_baseten._transport import encode_json
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        if not isinstance(model_input, dict):
            raise BasetenValidationError(
                f"model_input must be a JSON object (dict), got {type(model_input).__name__}.", field="model_input"
            )
        opts = m.options(
            m.AsyncPredictOptions,
            {
                "webhook_endpoint": webhook_endpoint,
                "priority": priority,
                "max_time_in_queue_seconds": max_time_in_queue_seconds,
                "inference_retry_config": inference_retry_config,
            },
        )
        body = {"model_input": model_input, **opts.body()}
        size = len(encode_json(body, "model_input"))
        if size > m.ASYNC_PAYLOAD_LIMIT:
            raise BasetenValidationError(
                f"Async payload is {size} bytes; Baseten accepts at most {m.ASYNC_PAYLOAD_LIMIT} (256 KiB). "
                "Store large inputs elsewhere and pass a reference.",
                field="model_input",
            )
        call = self._inference("async_predict", model_id, environment, deployment_id)
        call.body = body
        call.parse = lambda d: m.parse(m.AsyncPredictResult, d, "async_predict")
        return call

    @_api
    def get_async_request(self, request_id: str, *, model_id: str | None = None) -> AsyncRequest:
        """Status of an async request (never its output: that goes to the webhook)."""
        m = _m()
        model = None if self._gateway and not model_id else self._model(model_id)
        return _Call(
            "get_async_request",
            {"request_id": request_id},
            model_id=model,
            parse=lambda d: m.parse(m.AsyncRequest, d, "get_async_request"),
        )

    @_api
    def cancel_async_request(self, request_id: str, *, model_id: str | None = None) -> AsyncCancelResult:
        """Cancel an async request. Only QUEUED requests can be cancelled (``canceled`` says if it was)."""
        m = _m()
        model = None if self._gateway and not model_id else self._model(model_id)
        return _Call(
            "cancel_async_request",
            {"request_id": request_id},
            model_id=model,
            parse=lambda d: m.parse(m.AsyncCancelResult, d, "cancel_async_request"),
        )

    @_api
    def get_async_queue_status(
        self, *, model_id: str | None = None, environment: str | None = None, deployment_id: str | None = None
    ) -> AsyncQueueStatus:
        """How many async requests are queued and in progress for the target deployment."""
        m = _m()
        call = self._inference("async_queue_status", model_id, environment, deployment_id)
        call.parse = lambda d: m.parse(m.AsyncQueueStatus, d, "async_queue_status")
        return call

    @_api
    def wake(
        self, *, model_id: str | None = None, environment: str | None = None, deployment_id: str | None = None
    ) -> None:
        """Wake a scaled-to-zero deployment (Baseten answers 202 at once; the deployment then warms up)."""
        call = self._inference("wake", model_id, environment, deployment_id)
        call.parse = lambda d: None
        return call

    # -- models and chains -----------------------------------------------------------------------------
    @_api
    def list_models(self) -> list[Model]:
        """All models in the workspace."""
        m = _m()
        return _Call("list_models", parse=lambda d: m.parse_list(m.Model, d, "models", "list_models"))

    @_api
    def get_model(self, model_id: str | None = None) -> Model:
        """One model (default: the connection's ``model_id``)."""
        m = _m()
        return _Call("get_model", {"model_id": self._model(model_id)}, parse=lambda d: m.parse(m.Model, d, "get_model"))

    @_api
    def delete_model(self, model_id: str) -> Tombstone:
        """Delete a model and all its deployments. The id must be given explicitly."""
        m = _m()
        return _Call(
            "delete_model", {"model_id": _v("model_id", model_id)}, parse=lambda d: m.parse(m.Tombstone, d, "delete")
        )

    @_api
    def list_chains(self) -> list[Chain]:
        """All chains in the workspace."""
        m = _m()
        return _Call("list_chains", parse=lambda d: m.parse_list(m.Chain, d, "chains", "list_chains"))

    @_api
    def get_chain(self, chain_id: str) -> Chain:
        """One chain."""
        m = _m()
        return _Call("get_chain", {"chain_id": chain_id}, parse=lambda d: m.parse(m.Chain, d, "get_chain"))

    @_api
    def delete_chain(self, chain_id: str) -> Tombstone:
        """Delete a chain."""
        m = _m()
        return _Call("delete_chain", {"chain_id": chain_id}, parse=lambda d: m.parse(m.Tombstone, d, "delete"))

    # -- deployments -----------------------------------------------------------------------------------
    @_api
    def list_deployments(self, model_id: str | None = None) -> list[Deployment]:
        """All deployments of a model."""
        m = _m()
        return _Call(
            "list_deployments",
            {"model_id": self._model(model_id)},
            parse=lambda d: m.parse_list(m.Deployment, d, "deployments", "list_deployments"),
        )

    @_api
    def get_deployment(self, deployment_id: str, *, model_id: str | None = None) -> Deployment:
        """One deployment; ``deployment_id`` may be ``"production"`` or ``"development"``."""
        m = _m()
        params = {"model_id": self._model(model_id)}
        if deployment_id in ("production", "development"):
            name = f"get_{deployment_id}_deployment"
        else:
            name, params["deployment_id"] = "get_deployment", _v("deployment_id", deployment_id)
        return _Call(name, params, parse=lambda d: m.parse(m.Deployment, d, "get_deployment"))

    @_api
    def delete_deployment(self, deployment_id: str, *, model_id: str | None = None) -> Tombstone:
        """Delete a deployment (Baseten refuses to delete the production deployment)."""
        m = _m()
        return _Call(
            "delete_deployment",
            {"model_id": self._model(model_id), "deployment_id": _v("deployment_id", deployment_id)},
            parse=lambda d: m.parse(m.Tombstone, d, "delete_deployment"),
        )

    def _deployment_call(self, verb: str, deployment_id: str, model_id: str | None) -> _Call:
        m = _m()
        params = {"model_id": self._model(model_id)}
        if deployment_id == "development":
            name = f"{verb}_development_deployment"
        else:
            name, params["deployment_id"] = f"{verb}_deployment", _v("deployment_id", deployment_id)
        return _Call(name, params, parse=lambda d: m.parse(m.ActivationResult, d or {}, verb))

    @_api
    def activate_deployment(self, deployment_id: str, *, model_id: str | None = None) -> ActivationResult:
        """Activate a deployment (``"development"`` for the development deployment)."""
        return self._deployment_call("activate", deployment_id, model_id)

    @_api
    def deactivate_deployment(self, deployment_id: str, *, model_id: str | None = None) -> ActivationResult:
        """Deactivate a deployment (``"development"`` for the development deployment)."""
        return self._deployment_call("deactivate", deployment_id, model_id)

    @_api
    def promote_deployment(
        self,
        deployment_id: str,
        *,
        model_id: str | None = None,
        environment: str | None = None,
        scale_down_previous: bool = True,
        preserve_env_instance_type: bool = True,
    ) -> Deployment:
        """Promote a deployment to production, or into ``environment``; returns the promoted deployment.

        :param deployment_id: The deployment's id, or ``"development"`` (to production only).
        :param scale_down_previous: Scale down what the target served before.
        """
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        for name, flag in (
            ("scale_down_previous", scale_down_previous),
            ("preserve_env_instance_type", preserve_env_instance_type),
        ):
            if not isinstance(flag, bool):
                raise BasetenValidationError(f"{name} must be true or false, got {flag!r}.", field=name)
        model = self._model(model_id)
        parse = lambda d: m.parse(m.Deployment, d, "promote_deployment")  # noqa: E731
        if environment in (None, "production"):
            body = {
                "scale_down_previous_production": scale_down_previous,
                "preserve_env_instance_type": preserve_env_instance_type,
            }
            if deployment_id == "development":
                return _Call("promote_development_deployment", {"model_id": model}, body=body, parse=parse)
            params = {"model_id": model, "deployment_id": _v("deployment_id", deployment_id)}
            return _Call("promote_deployment", params, body=body, parse=parse)
        if deployment_id == "development":
            raise BasetenValidationError(
                "Promoting into an environment needs the deployment's id; get it with "
                "get_deployment('development').id.",
                field="deployment_id",
            )
        return _Call(
            "promote_to_environment",
            {"model_id": model, "env_name": _v("environment", environment)},
            body={
                "deployment_id": _v("deployment_id", deployment_id),
                "scale_down_previous_deployment": scale_down_previous,
                "preserve_env_instance_type": preserve_env_instance_type,
            },
            parse=parse,
        )

    @_api
    def cancel_promotion(self, environment: str = "production", *, model_id: str | None = None) -> StatusMessage:
        """Cancel the in-progress promotion into ``environment`` (``CANCELED`` or ``RAMPING_DOWN``)."""
        m = _m()
        return _Call(
            "cancel_promotion",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.StatusMessage, d, "cancel_promotion"),
        )

    @_api
    def update_autoscaling_settings(
        self,
        settings: dict[str, Any] | None = None,
        *,
        model_id: str | None = None,
        deployment_id: str | None = None,
        environment: str | None = None,
        **fields: Any,
    ) -> StatusMessage:
        """Change autoscaling of a deployment or an environment; only the fields given change.

        Settings come as a dict and/or keywords (``min_replica=0, max_replica=4``) and are range-checked
        first. Returns ``{status: ACCEPTED|QUEUED|UNCHANGED, message}``.
        """
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        values = {**(settings or {}), **fields}
        if not values:
            raise BasetenValidationError("Give at least one autoscaling setting to change.", field="settings")
        body = m.options(m.AutoscalingSettingsUpdate, values).body()
        model = self._model(model_id)
        parse = lambda d: m.parse(m.StatusMessage, d, "update_autoscaling_settings")  # noqa: E731
        if (deployment_id is None) == (environment is None):
            raise BasetenValidationError(
                "Give exactly one of deployment_id or environment for update_autoscaling_settings.",
                field="deployment_id",
            )
        if environment is not None:
            params = {"model_id": model, "env_name": _v("environment", environment)}
            return _Call("update_environment", params, body={"autoscaling_settings": body}, parse=parse)
        if deployment_id == "development":
            return _Call("update_development_autoscaling_settings", {"model_id": model}, body=body, parse=parse)
        params = {"model_id": model, "deployment_id": _v("deployment_id", deployment_id)}
        return _Call("update_deployment_autoscaling_settings", params, body=body, parse=parse)

    # -- environments ----------------------------------------------------------------------------------
    @_api
    def list_environments(self, model_id: str | None = None) -> list[Environment]:
        """All environments of a model."""
        m = _m()
        return _Call(
            "list_environments",
            {"model_id": self._model(model_id)},
            parse=lambda d: m.parse_list(m.Environment, d, "environments", "list_environments"),
        )

    @_api
    def get_environment(self, environment: str, *, model_id: str | None = None) -> Environment:
        """One environment, with its current and candidate deployments and any in-progress promotion."""
        m = _m()
        return _Call(
            "get_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.Environment, d, "get_environment"),
        )

    @_api
    def create_environment(
        self,
        name: str,
        *,
        model_id: str | None = None,
        autoscaling_settings: dict[str, Any] | None = None,
        promotion_settings: dict[str, Any] | None = None,
    ) -> Environment:
        """Create an environment."""
        m = _m()
        body: dict[str, Any] = {"name": _v("name", name)}
        if autoscaling_settings:
            body["autoscaling_settings"] = m.options(m.AutoscalingSettingsUpdate, autoscaling_settings).body()
        if promotion_settings:
            body["promotion_settings"] = dict(promotion_settings)
        return _Call(
            "create_environment",
            {"model_id": self._model(model_id)},
            body=body,
            parse=lambda d: m.parse(m.Environment, d, "create_environment"),
        )

    @_api
    def update_environment(
        self,
        environment: str,
        *,
        model_id: str | None = None,
        autoscaling_settings: dict[str, Any] | None = None,
        promotion_settings: dict[str, Any] | None = None,
    ) -> StatusMessage:
        """Update an environment's autoscaling and/or promotion settings."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        body: dict[str, Any] = {}
        if autoscaling_settings:
            body["autoscaling_settings"] = m.options(m.AutoscalingSettingsUpdate, autoscaling_settings).body()
        if promotion_settings:
            body["promotion_settings"] = dict(promotion_settings)
        if not body:
            raise BasetenValidationError(
                "Give autoscaling_settings and/or promotion_settings to update.", field="autoscaling_settings"
            )
        return _Call(
            "update_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            body=body,
            parse=lambda d: m.parse(m.StatusMessage, d, "update_environment"),
        )

    @_api
    def activate_environment(self, environment: str, *, model_id: str | None = None) -> ActivationResult:
        """Activate the deployment behind an environment."""
        m = _m()
        return _Call(
            "activate_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.ActivationResult, d or {}, "activate_environment"),
        )

    @_api
    def deactivate_environment(self, environment: str, *, model_id: str | None = None) -> ActivationResult:
        """Deactivate the deployment behind an environment."""
        m = _m()
        return _Call(
            "deactivate_environment",
            {"model_id": self._model(model_id), "env_name": _v("environment", environment)},
            parse=lambda d: m.parse(m.ActivationResult, d or {}, "deactivate_environment"),
        )

    # -- secrets and API keys --------------------------------------------------------------------------
    @_api
    def list_secrets(self) -> list[Secret]:
        """Secret names in the workspace (never their values)."""
        m = _m()
        return _Call("list_secrets", parse=lambda d: m.parse_list(m.Secret, d, "secrets", "list_secrets"))

    @_api
    def upsert_secret(self, name: str, value: str) -> Secret:
        """Create or update a workspace secret. The value is masked in Airflow's logs."""
        from airflow_provider_baseten._redact import register_secret
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        if not isinstance(value, str) or not value:
            raise BasetenValidationError("value must be a non-empty string.", field="value")
        register_secret(value)
        return _Call(
            "upsert_secret",
            body={"name": _v("name", name), "value": value},
            parse=lambda d: m.parse(m.Secret, d, "upsert_secret"),
        )

    @_api
    def list_api_keys(self) -> list[ApiKey]:
        """API keys' metadata (prefix, name, type)."""
        m = _m()
        return _Call("list_api_keys", parse=lambda d: m.parse_list(m.ApiKey, d, "keys", "list_api_keys"))

    @_api
    def create_api_key(
        self, type: str = "WORKSPACE_INVOKE", *, name: str | None = None, model_ids: list[str] | None = None
    ) -> CreatedApiKey:
        """Create an API key. The plaintext is returned once; it is masked in logs at once."""
        from airflow_provider_baseten._redact import register_secret
        from airflow_provider_baseten.exceptions import BasetenValidationError

        m = _m()
        allowed = {t.value for t in m.ApiKeyType}
        if type not in allowed:
            raise BasetenValidationError(f"type must be one of {sorted(allowed)}, got {type!r}.", field="type")
        body: dict[str, Any] = {"type": type}
        if name is not None:
            body["name"] = name
        if model_ids is not None:
            body["model_ids"] = [_v("model_ids", x) for x in model_ids]

        def parse(d: Any) -> Any:
            if isinstance(d, dict) and isinstance(d.get("api_key"), str):
                register_secret(d["api_key"])
            return m.parse(m.CreatedApiKey, d, "create_api_key")

        return _Call("create_api_key", body=body, parse=parse)

    @_api
    def delete_api_key(self, prefix: str) -> Tombstone:
        """Delete an API key by its prefix."""
        m = _m()
        return _Call("delete_api_key", {"prefix": prefix}, parse=lambda d: m.parse(m.Tombstone, d or {}, "delete"))

    # -- training --------------------------------------------------------------------------------------
    @staticmethod
    def _job_params(training_project_id: str, training_job_id: str) -> dict[str, str]:
        return {"training_project_id": training_project_id, "training_job_id": training_job_id}

    @staticmethod
    def _job(where: str) -> Callable[[Any], TrainingJob]:
        m = _m()

        def parse(d: Any) -> Any:
            job = d.get("training_job", d) if isinstance(d, dict) else d
            return m.parse(m.TrainingJob, job, where)

        return parse

    @_api
    def create_training_job(self, training_project_id: str, training_job: dict[str, Any]) -> TrainingJob:
        """Create a training job (body: Baseten's ``CreateTrainingJobV1``: image, compute, runtime, name)."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if not isinstance(training_job, dict) or "image" not in training_job:
            raise BasetenValidationError(
                "training_job must be a dict with at least 'image' (see Baseten's CreateTrainingJobV1).",
                field="training_job",
            )
        return _Call(
            "create_training_job",
            {"training_project_id": training_project_id},
            body={"training_job": training_job},
            parse=self._job("create_training_job"),
        )

    @_api
    def list_training_jobs(self, training_project_id: str) -> list[TrainingJob]:
        """All jobs of a training project."""
        m = _m()
        return _Call(
            "list_training_jobs",
            {"training_project_id": training_project_id},
            parse=lambda d: m.parse_list(m.TrainingJob, d, "training_jobs", "list_training_jobs"),
        )

    @_api
    def get_training_job(self, training_project_id: str, training_job_id: str) -> TrainingJob:
        """One training job (``current_status``, ``error_message``, ...)."""
        return _Call(
            "get_training_job",
            self._job_params(training_project_id, training_job_id),
            parse=self._job("get_training_job"),
        )

    @_api
    def search_training_jobs(
        self,
        *,
        project_id: str | None = None,
        job_id: str | None = None,
        statuses: list[str] | None = None,
        order_by: list[dict[str, str]] | None = None,
    ) -> list[TrainingJob]:
        """Search training jobs across projects."""
        m = _m()
        body: dict[str, Any] = {}
        for key, value in (("project_id", project_id), ("job_id", job_id), ("statuses", statuses)):
            if value is not None:
                body[key] = value
        if order_by is not None:
            body["order_by"] = order_by
        return _Call(
            "search_training_jobs",
            body=body,
            parse=lambda d: m.parse_list(m.TrainingJob, d, "training_jobs", "search_training_jobs"),
        )

    @_api
    def stop_training_job(self, training_project_id: str, training_job_id: str) -> TrainingJob:
        """Stop a training job."""
        return _Call(
            "stop_training_job",
            self._job_params(training_project_id, training_job_id),
            body={},
            parse=self._job("stop_training_job"),
        )

    @_api
    def recreate_training_job(self, training_project_id: str, training_job_id: str) -> TrainingJob:
        """Start a new job with the same configuration; returns the new job."""
        return _Call(
            "recreate_training_job",
            self._job_params(training_project_id, training_job_id),
            parse=self._job("recreate_training_job"),
        )

    @_api
    def get_training_job_checkpoints(self, training_project_id: str, training_job_id: str) -> list[TrainingCheckpoint]:
        """The job's checkpoints, as Baseten lists them."""
        m = _m()
        return _Call(
            "get_training_job_checkpoints",
            self._job_params(training_project_id, training_job_id),
            parse=lambda d: m.parse_list(m.TrainingCheckpoint, d, "checkpoints", "get_training_job_checkpoints"),
        )

    @_api
    def get_training_job_checkpoint_files(
        self,
        training_project_id: str,
        training_job_id: str,
        *,
        page_token: int | None = None,
        page_size: int | None = None,
    ) -> TrainingCheckpointFiles:
        """One page of presigned URLs of the job's checkpoint files."""
        m = _m()
        return _Call(
            "get_training_job_checkpoint_files",
            self._job_params(training_project_id, training_job_id),
            query={"page_token": page_token, "page_size": page_size},
            parse=lambda d: m.parse(m.TrainingCheckpointFiles, d, "get_training_job_checkpoint_files"),
        )

    @_api
    def get_training_job_logs(
        self,
        training_project_id: str,
        training_job_id: str,
        *,
        start_epoch_millis: int | None = None,
        end_epoch_millis: int | None = None,
        limit: int | None = None,
        direction: str | None = None,
    ) -> list[TrainingLogLine]:
        """Log lines of the job: at most ``limit`` (Baseten: 1-1000, default 500) per call.

        ``direction="desc"`` returns the newest lines first (with ``limit``: the job's last lines).
        """
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if direction not in (None, "asc", "desc"):
            raise BasetenValidationError(f"direction must be 'asc' or 'desc', got {direction!r}.", field="direction")
        if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= 1000):
            raise BasetenValidationError(f"limit must be an integer from 1 to 1000, got {limit!r}.", field="limit")
        m = _m()
        return _Call(
            "get_training_job_logs",
            self._job_params(training_project_id, training_job_id),
            query={
                "start_epoch_millis": start_epoch_millis,
                "end_epoch_millis": end_epoch_millis,
                "limit": limit,
                "direction": direction,
            },
            parse=lambda d: m.parse_list(m.TrainingLogLine, d, "logs", "get_training_job_logs"),
        )

    @_api
    def get_training_job_metrics(
        self,
        training_project_id: str,
        training_job_id: str,
        *,
        start_epoch_millis: int | None = None,
        end_epoch_millis: int | None = None,
    ) -> TrainingMetrics:
        """Resource and training metrics of the job."""
        m = _m()
        return _Call(
            "get_training_job_metrics",
            self._job_params(training_project_id, training_job_id),
            query={"start_epoch_millis": start_epoch_millis, "end_epoch_millis": end_epoch_millis},
            parse=lambda d: m.parse(m.TrainingMetrics, d, "get_training_job_metrics"),
        )

    @_api
    def download_training_job(self, training_project_id: str, training_job_id: str) -> TrainingDownload:
        """Presigned URLs of the job's artifacts."""
        m = _m()
        return _Call(
            "download_training_job",
            self._job_params(training_project_id, training_job_id),
            parse=lambda d: m.parse(m.TrainingDownload, d, "download_training_job"),
        )

    # -- connection test -------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check the API key with one cheap authenticated call (list models). Never raises."""
        from airflow_provider_baseten.exceptions import BasetenError

        try:
            settings = self.settings
            models = self.list_models()
        except BasetenError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI wants a message, not a traceback
            from airflow_provider_baseten._redact import redact

            return False, redact(f"{type(exc).__name__}: {exc}")
        where = "LowCodeAPI" if settings.gateway == "lowcodeapi" else "Baseten"
        return True, f"Connected to {where} at {settings.base_url}: {len(models)} model(s) visible."
