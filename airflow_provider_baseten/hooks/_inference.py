"""Inference: sync predict (one input or a batch), async predict and its requests, wake."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_baseten.hooks._api import (
    _api,
    _Call,
    _m,
    _params_of,
    _twin,
    _v,
)
from airflow_provider_baseten.hooks._core import _HookCore

if TYPE_CHECKING:
    from airflow_provider_baseten._batch import BatchResult
    from airflow_provider_baseten.models import (
        AsyncCancelResult,
        AsyncPredictResult,
        AsyncQueueStatus,
        AsyncRequest,
    )


class _InferenceApi(_HookCore):
    """Inference methods of :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook`."""

    @_api
    def predict(
        self,
        input: Any,
        *,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
    ) -> _Call[Any]:
        """Run one synchronous prediction and return the model's output as it answered.

        :param input: The model input, sent as the JSON body (must be JSON-serialisable).
        """
        from airflow_provider_baseten._transport import encode_json

        encode_json(input, "input")
        call = self._inference("predict", model_id, environment, deployment_id)
        call.body = input
        return call

    apredict = _twin(predict)

    def predict_batch(
        self,
        inputs: Iterable[Any],
        *,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
        max_concurrency: int | Literal["auto"] = 32,
        on_error: str = "fail",
        output_path: Any = None,
        resume: bool = False,
        progress_interval: float = 5.0,
        total: int | None = None,
        log: Any = None,
        max_failures: int | None = None,
        max_error_rate: float | None = None,
        input_fingerprint: dict[str, Any] | None = None,
    ) -> BatchResult:
        """Predict many inputs concurrently; results keep input order and nothing that succeeded is lost.

        :param inputs: Any iterable of inputs (a list, ``batch_io.read_records(path)``, ...). A path or a
            string is refused before anything is sent (it would be sent character by character): the
            operators read files, the hook does not.
        :param max_concurrency: Requests in flight at once (1-1024); each worker has its own connection.
            ``"auto"`` finds the deployment's capacity as the batch runs: it starts at 8, grows while
            latency holds (doubling per round trip at first, then one per round trip) and backs off to 90%
            of the load in flight on a 429 or 503 (AIMD), between 4 and 512.
        :param on_error: ``fail`` attempts every item then raises :class:`BasetenBatchError` naming the failed
            indices; ``record`` keeps ``{"index", "error"}`` entries in the results instead. An item whose
            retries run out on a transient error (5xx, 429, timeout, dropped connection) is given up to
            three retry sequences before it counts as failed; a run of such failures (an outage) stops the
            batch early, keeping what succeeded. A model's own error (a 4xx, or a 500 Baseten marks as the
            model's) is tried at most twice and is not an outage. If the first 10 completed items all fail
            with the same error that every input would get (401/403, 404 model or deployment not found,
            400/413/422), the batch stops early and raises it.
        :param output_path: Write JSONL lines ``{"index", "output"|"error"}`` here (a path or
            ``ObjectStoragePath``) instead of keeping outputs in memory. Results are journalled as they
            arrive and merged into the file when the batch ends (an atomic replace): a ``kill -9`` at any
            moment loses only the requests in flight, and never what the file held before. A name ending in
            ``.parquet`` writes Parquet (the journal stays JSONL; the final merge writes the Parquet file).
        :param resume: With ``output_path``: keep the lines already there and skip those indices. Refused
            (:class:`BasetenValidationError`, ``field="resume"``, nothing sent) when the file's results were
            written for other inputs: the fingerprint of the inputs (count, size, hash) is kept beside the
            file (``<output_path>.inputs.json``) and in its journal. Results of inputs given as an iterator
            are not checked (a warning says so) unless ``input_fingerprint`` is given.
        :param input_fingerprint: What the inputs are, for the resume check, when they are not a list (the
            operators pass a file's); a list's own is taken when it is not given.
        :param max_failures: Error budget: fail (and stop as soon as it is certain) when more than this many
            items failed.
        :param max_error_rate: Error budget as a share of all items (0.0-1.0). With ``on_error="record"`` and
            neither limit given, 0.1 (10%); ``1.0`` accepts any failures. Within budget the task succeeds
            and logs the failures at WARNING.
        :param total: The number of inputs, when ``inputs`` has no ``len()`` (for progress and ETA).
        :returns: :class:`~airflow_provider_baseten.batch.BatchResult`.
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
            max_failures=max_failures,
            max_error_rate=max_error_rate,
            input_fingerprint=input_fingerprint,
        )

    @_params_of(predict_batch)
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
    ) -> _Call[AsyncPredictResult]:
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

    aasync_predict = _twin(async_predict)

    def _async_request_target(self, name: str, model_id: str | None, chain_id: str | None) -> _Call[Any]:
        """A model's async request (model host, or LowCodeAPI) or, with ``chain_id``, a chain's (chain host)."""
        if chain_id is None:
            return _Call(name, model_id=self._inference_model(model_id))
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if model_id is not None:
            raise BasetenValidationError("Give model_id or chain_id, not both.", field="chain_id")
        self._direct_only(f"{name} for a chain")
        return _Call(f"chain_{name}", model_id=_v("chain_id", chain_id))

    @_api
    def get_async_request(
        self, request_id: str, *, model_id: str | None = None, chain_id: str | None = None
    ) -> _Call[AsyncRequest]:
        """Status of an async request (never its output: that goes to the webhook).

        :param chain_id: For a chain's request (``async_run_chain``): asked on the chain's host.
        """
        m = _m()
        call = self._async_request_target("get_async_request", model_id, chain_id)
        call.params = {"request_id": request_id}
        call.parse = lambda d: m.parse(m.AsyncRequest, d, "get_async_request")
        return call

    aget_async_request = _twin(get_async_request)

    @_api
    def cancel_async_request(
        self, request_id: str, *, model_id: str | None = None, chain_id: str | None = None
    ) -> _Call[AsyncCancelResult]:
        """Cancel an async request. Only QUEUED requests can be cancelled (``canceled`` says if it was).

        :param chain_id: For a chain's request (``async_run_chain``): asked on the chain's host.
        """
        m = _m()
        call = self._async_request_target("cancel_async_request", model_id, chain_id)
        call.params = {"request_id": request_id}
        call.parse = lambda d: m.parse(m.AsyncCancelResult, d, "cancel_async_request")
        return call

    acancel_async_request = _twin(cancel_async_request)

    @_api
    def get_async_queue_status(
        self, *, model_id: str | None = None, environment: str | None = None, deployment_id: str | None = None
    ) -> _Call[AsyncQueueStatus]:
        """How many async requests are queued and in progress for the target deployment."""
        m = _m()
        call = self._inference("async_queue_status", model_id, environment, deployment_id)
        call.parse = lambda d: m.parse(m.AsyncQueueStatus, d, "async_queue_status")
        return call

    aget_async_queue_status = _twin(get_async_queue_status)

    @_api
    def wake(
        self, *, model_id: str | None = None, environment: str | None = None, deployment_id: str | None = None
    ) -> _Call[None]:
        """Wake a scaled-to-zero deployment (Baseten answers 202 at once; the deployment then warms up)."""
        call = self._inference("wake", model_id, environment, deployment_id)
        call.parse = lambda d: None
        return call

    awake = _twin(wake)
