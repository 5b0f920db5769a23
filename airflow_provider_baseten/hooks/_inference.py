"""Inference: sync predict (one input or a batch), async predict and its requests, wake."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_baseten.hooks._api import (
    _Batch,
    _Call,
    _m,
    _v,
)
from airflow_provider_baseten.hooks._core import _HookCore

if TYPE_CHECKING:
    from pydantic import BaseModel
    from typing_extensions import Unpack

    from airflow_provider_baseten.client.batch.options import BatchOptions
    from airflow_provider_baseten.models import (
        AsyncCancelResult,
        AsyncPredictResult,
        AsyncQueueStatus,
        AsyncRequest,
    )


M = TypeVar("M", bound="BaseModel")

# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def predict(
    hook: _HookCore,
    /,
    model_input: Any = ...,
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    input: Any = ...,
    regional: bool = False,
    cache: Any = None,
) -> _Call[Any]:
    """Run one synchronous prediction and return the model's output as it answered.

    :param model_input: The model input, sent as the JSON body (must be JSON-serialisable).
    :param input: Deprecated old name of ``model_input``.
    :param regional: Call the regional environment named by ``environment`` on its own host
        (``model-{model_id}-{environment}.api.baseten.co``, bare path), which keeps the traffic in its region.
        Needs ``environment=``; not through LowCodeAPI.
    :param cache: Opt in to the result cache for a deterministic model: a
        :class:`~airflow_provider_baseten.cache.ResultCache` or a folder (path, ``file://``,
        ``ObjectStoragePath``). Keyed on the deployment that serves the call (an environment is resolved once),
        the route and the input; a hit sends nothing.
    """
    from airflow_provider_baseten.client.transport import encode_json
    from airflow_provider_baseten.exceptions import BasetenValidationError

    # ``...`` marks "not given" (it is no JSON value, so never a model input).
    if input is not ...:
        if model_input is not ...:
            raise BasetenValidationError(
                "predict: give model_input= only; input= is its deprecated old name. Got both.", field="input"
            )
        import warnings

        from airflow.exceptions import AirflowProviderDeprecationWarning

        warnings.warn(
            "BasetenHook.predict: the parameter input= is deprecated; use model_input= instead.",
            AirflowProviderDeprecationWarning,
            stacklevel=4,  # the caller of BasetenHook.predict (through _send)
        )
        model_input = input
    if model_input is ...:
        raise BasetenValidationError("predict needs model_input= (the model input).", field="model_input")
    encode_json(model_input, "model_input")
    call = hook._inference("predict", model_id, environment, deployment_id, regional)
    call.body = model_input
    call.cached = _cached(hook, cache, "predict", model_id, environment, deployment_id)
    return call


def _cached(
    hook: _HookCore, cache: Any, route: str, model_id: str | None, environment: str | None, deployment_id: str | None
) -> Any:
    from airflow_provider_baseten.hooks._cache import cache_for

    where = {"model_id": model_id, "environment": environment, "deployment_id": deployment_id}
    return cache_for(hook, cache, route, **where)


def async_predict(
    hook: _HookCore,
    /,
    model_input: dict[str, Any],
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    webhook_endpoint: str | None = None,
    priority: int | None = None,
    max_time_in_queue_seconds: int | None = None,
    inference_retry_config: dict[str, Any] | None = None,
    regional: bool = False,
) -> _Call[AsyncPredictResult]:
    """Submit an async prediction; returns the ``request_id``. Outputs go to ``webhook_endpoint``.

    Options are checked against Baseten's ranges (priority 0-2, queue time 10-259200 s, retry config)
    and the payload against the 256 KiB limit before anything is sent.

    :param regional: Call the regional environment named by ``environment`` on its own host
        (``model-{model_id}-{environment}.api.baseten.co``, bare path), which keeps the traffic in its region.
        Needs ``environment=``; not through LowCodeAPI.
    """
    from airflow_provider_baseten.client.transport import encode_json
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
    call = hook._inference("async_predict", model_id, environment, deployment_id, regional)
    call.body = body
    call.parse = lambda d: m.parse(m.AsyncPredictResult, d, "async_predict")
    return call


def _async_request(
    hook: _HookCore, /, name: str, request_id: str, model_id: str | None, chain_id: str | None, model: type[M]
) -> _Call[M]:
    """A call about a model's async request (model host, or LowCodeAPI) or, with ``chain_id``, a chain's
    (chain host), its answer read as ``model``."""
    m = _m()
    if chain_id is None:
        call: _Call[M] = _Call(name, model_id=hook._inference_model(model_id))
    else:
        from airflow_provider_baseten.client.routes import CHAIN_TWIN
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if model_id is not None:
            raise BasetenValidationError("Give model_id or chain_id, not both.", field="chain_id")
        hook._direct_only(f"{name} for a chain")
        call = _Call(CHAIN_TWIN[name], model_id=_v("chain_id", chain_id))
    call.params = {"request_id": request_id}
    call.parse = lambda d: m.parse(model, d, name)
    return call


def get_async_request(
    hook: _HookCore, /, request_id: str, *, model_id: str | None = None, chain_id: str | None = None
) -> _Call[AsyncRequest]:
    """Status of an async request (never its output: that goes to the webhook).

    :param chain_id: For a chain's request (``async_run_chain``): asked on the chain's host.
    """
    return _async_request(hook, "get_async_request", request_id, model_id, chain_id, _m().AsyncRequest)


def cancel_async_request(
    hook: _HookCore, /, request_id: str, *, model_id: str | None = None, chain_id: str | None = None
) -> _Call[AsyncCancelResult]:
    """Cancel an async request. Only QUEUED requests can be cancelled (``canceled`` says if it was).

    :param chain_id: For a chain's request (``async_run_chain``): asked on the chain's host.
    """
    return _async_request(hook, "cancel_async_request", request_id, model_id, chain_id, _m().AsyncCancelResult)


def get_async_queue_status(
    hook: _HookCore,
    /,
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    regional: bool = False,
) -> _Call[AsyncQueueStatus]:
    """How many async requests are queued and in progress for the target deployment.

    :param regional: Call the regional environment named by ``environment`` on its own host
        (``model-{model_id}-{environment}.api.baseten.co``, bare path), which keeps the traffic in its region.
        Needs ``environment=``; not through LowCodeAPI.
    """
    m = _m()
    call = hook._inference("async_queue_status", model_id, environment, deployment_id, regional)
    call.parse = lambda d: m.parse(m.AsyncQueueStatus, d, "async_queue_status")
    return call


def wake(
    hook: _HookCore,
    /,
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    regional: bool = False,
) -> _Call[None]:
    """Wake a scaled-to-zero deployment (Baseten answers 202 at once; the deployment then warms up).

    :param regional: Call the regional environment named by ``environment`` on its own host
        (``model-{model_id}-{environment}.api.baseten.co``, bare path), which keeps the traffic in its region.
        Needs ``environment=``; not through LowCodeAPI.
    """
    call = hook._inference("wake", model_id, environment, deployment_id, regional)
    call.parse = lambda d: None
    return call


def predict_batch(
    hook: _HookCore,
    /,
    inputs: Iterable[Any],
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    cache: Any = None,
    **options: Unpack[BatchOptions],
) -> _Batch:
    """Predict many inputs concurrently; results keep input order and nothing that succeeded is lost.

    :param inputs: Any iterable of inputs (a list, ``batch_io.read_records(path)``, ...). A path or a string is
        refused before anything is sent (it would be sent character by character): the operators read files,
        the hook does not.
    :param options: :class:`~airflow_provider_baseten.batch.BatchOptions`: ``max_concurrency`` (or ``"auto"``),
        ``on_error``, ``output_path``, ``resume``, the error budget (``max_failures``, ``max_error_rate``), ...
    :param cache: As :meth:`predict`'s, per input: an input answered from the cache is not sent, and the
        result's ``cached`` and the log say how many were.
    :returns: :class:`~airflow_provider_baseten.batch.BatchResult`.
    """
    route = hook._inference("predict", model_id, environment, deployment_id)
    return _Batch(route, inputs, dict(options), _cached(hook, cache, "predict", model_id, environment, deployment_id))
