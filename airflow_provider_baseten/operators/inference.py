"""Inference operators: sync predict (one input or a large batch), async predict, wake.

Why one module of about 550 lines: the three operators share their target arguments, the model URL they
push and the input checks, and their class paths are the public names users import (and that serialized
DAGs record); the durable async submit log lives apart, in :mod:`._submit_log`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_baseten import _lineage, xcom
from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.links import BasetenDeploymentLink, BasetenModelLink
from airflow_provider_baseten.operators._base import (
    BasetenBaseOperator,
    BasetenWaitingOperator,
    ResumableJobMixin,
    renamed_param,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import JsonValue

    from airflow_provider_baseten.batch import BatchOptions, BatchResult
    from airflow_provider_baseten.cost import CostReport, LeaseMeter
    from airflow_provider_baseten.operators._submit_log import SubmitLog

_NOTSET: Any = object()

#: The template fields every predicting operator has besides its inputs.
PREDICT_FIELDS = ("model_id", "environment", "deployment_id", "output_path", "baseten_conn_id", "cache")


def _push_model_url(context: Context, hook: Any, model_id: str | None, log: Any = None) -> None:
    from airflow_provider_baseten.links import log_link, model_url

    """Push the model page's URL for the extra link; ``""`` when the task calls no model (a chain, Model APIs),
    so the link is empty instead of Airflow logging an "XCom not found" error for it."""
    model = model_id if model_id is not None else hook.settings.model_id  # the hook's rule: "" is not "default"
    context["ti"].xcom_push(key=xcom.MODEL_URL, value=model_url(model) if model else "")
    if model and log is not None:
        log_link(log, f"the async requests' model {model}", model_url(model))


class PredictOperator(BasetenBaseOperator):
    """Run synchronous predictions: one ``model_input``, or a batch of ``model_inputs``.

    :param model_input: One model input; the model's output is returned (and so pushed to XCom).
    :param model_inputs: Many inputs: a list, an ``XComArg``, or a JSONL file (a path string or an
        ``ObjectStoragePath``), one input per line. Every line is checked before anything is sent. A file
        whose name ends in ``.parquet`` is read as Parquet, one input (a dict of its columns) per row,
        streamed by row group (needs ``pip install 'airflow-provider-baseten[parquet]'``).
    :param input: Deprecated old name of ``model_input``. :param inputs: Deprecated old name of
        ``model_inputs``.
    :param model_id: The model (default: the connection's ``model_id``).
    :param environment: ``"production"`` (the default: the production environment), ``"development"`` (the
        development deployment), or a custom environment's name.
    :param deployment_id: One deployment's id (give this or ``environment``, not both).
        ``deployment_id="production"`` / ``"development"`` is a deprecated alias of ``environment=``.
    :param max_concurrency: Batch requests in flight at once (1-1024), or ``"auto"``: start low, grow while
        latency holds and back off on 429/503 answers (AIMD), up to 512 (see ``BasetenHook.predict_batch``).
    :param on_error: ``fail`` (default): attempt every item, then fail naming the failed indices and their
        errors. ``record``: succeed, with ``{"index", "error"}`` in place of each failed output.
    :param output_path: Write JSONL results (``{"index", "output"}`` or ``{"index", "error"}``, input
        order) here instead of XCom; the task returns a summary. For large batches. A name ending in
        ``.parquet`` writes Parquet: columns ``index``, the ``passthrough_columns``, ``output`` (JSON text; for
        ``EmbeddingsOperator`` a ``list<float>`` vector column) and ``error``.
    :param resume: With ``output_path``: keep results already in the file and only run the rest. A task
        killed mid-batch (even ``kill -9``) loses only its requests in flight; the file is never damaged.
        Results written for other inputs are never kept: ``True`` over them fails before anything is sent.
        Default (``None``): a retry (``try_number > 1``) resumes when the file holds this task's inputs'
        results (their fingerprint matches), so a retried task never pays twice; a first try, or a retry
        whose inputs changed, starts afresh. ``False``: always send every input again.
        The output is the task's default outlet, one asset per path as written, so repeated runs never add
        assets: a fixed path is its file's asset (its URI, ``file://`` for a local path); a templated path
        (``/data/out/{{ ds }}.jsonl``) is one asset for the pattern
        (:func:`~airflow_provider_baseten.assets.output_asset` of the template), each run's file an event on it. The event extra is ``{total,
        succeeded, failed, skipped, model_id, path}`` (``path``: the file written, without credentials or
        query). A path known only at run time (an ``XComArg``) has no default outlet. Pass ``outlets=[]`` for
        no event, or ``outlets=[AssetAlias("baseten:batch_output")]`` for one asset per rendered path (the
        old default: ``airflow assets list`` then grows by one every run).
    :param max_failures: Error budget: the task fails, stopping the batch as soon as that is certain, when
        more than this many items failed.
    :param max_error_rate: Error budget as a share of all items (0.0-1.0). Default with
        ``on_error="record"``: 0.1; ``1.0`` accepts any number of failures. Within budget the task succeeds
        and logs the failed items at WARNING.
    :param wake_first: Wake the deployment before the batch (saves the first requests a cold start).
    :param progress_interval: Seconds between progress log lines (done/total, rate, ETA, errors).
    :param passthrough_columns: Input columns (e.g. ``["id"]``) copied into each result row, so the output can
        be joined back to the inputs: JSONL keys, Parquet columns, or (without ``output_path``) keys of each
        result dict, which is then ``{"index", "output"|"error", <columns>}``. Each input must be a dict (a
        Parquet row, a JSONL object) holding them; one that lacks a column fails the task before any request,
        naming the column and the row (a Parquet file's schema, a JSONL file's lines and a list are all checked
        first). See ``BatchOptions``.
    :param scale_for_batch: A ``min_replica`` to hold the deployment at while the batch runs (it is woken
        too), restored afterwards on success, failure and kill. Overlapping batches on one deployment share
        it through leases: ``min_replica`` is the largest any running batch asked for, and the last one out
        restores the deployment's own setting, unless someone changed it meanwhile. See
        :mod:`airflow_provider_baseten.operators._scale` for the exact rule. The lease's cost (its replicas x
        the batch's wall time x the deployment's price) is reported: task log, XCom ``baseten_cost``.
    :param max_cost_usd: Budget guard of a ``scale_for_batch`` lease: stop sending once the lease's cost
        projected to the next input would pass this many USD; what succeeded is kept (written), the lease is
        given back, and the task fails with
        :class:`~airflow_provider_baseten.exceptions.BasetenBudgetExceeded` (not retried).
    :param cache: Opt in to the result cache for a deterministic model: a
        :class:`~airflow_provider_baseten.cache.ResultCache` (with ``ttl`` / ``max_bytes``) or a folder
        (a path, ``"file:///..."``, an ``ObjectStoragePath``). An input (a text, for embeddings) whose output
        is there is not sent; the key is the deployment that serves the call (an environment is resolved
        when the task runs, so a promotion misses), the route and the request body with its options. The
        batch's summary and log say how many came from the cache. See the how-to's "Caching" section.
    """

    template_fields: Sequence[str] = ("model_input", "model_inputs", *PREDICT_FIELDS)
    template_fields_renderers = {"model_input": "json", "model_inputs": "json"}
    operator_extra_links = (BasetenModelLink(),)
    ui_color = "#e8f0fe"
    #: The names the one input and the batch are given, stored and templated under. A subclass that calls them
    #: otherwise (``text`` / ``texts``) names its own, and aliases ``model_input`` / ``model_inputs`` to them.
    input_names: tuple[str, str] = ("model_input", "model_inputs")
    #: What one input is called in the log (the batch engine's unit for this kind of call).
    input_unit: str = "inputs"
    #: Whether ``cache=`` applies: only to deterministic calls (not chat completions, not chains).
    cacheable: bool = True

    def __init__(
        self,
        *,
        model_input: Any = _NOTSET,
        model_inputs: Any = None,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
        max_concurrency: int | Literal["auto"] = 32,
        on_error: str = "fail",
        output_path: Any = None,
        resume: bool | None = None,
        wake_first: bool = False,
        progress_interval: float = 5.0,
        max_failures: int | None = None,
        max_error_rate: float | None = None,
        input: Any = _NOTSET,
        inputs: Any = None,
        scale_for_batch: int | None = None,
        passthrough_columns: Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        cache: Any = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.assets import default_output_outlets
        from airflow_provider_baseten.client.batch.options import check_batch_options
        from airflow_provider_baseten.client.checks import check_target, flag
        from airflow_provider_baseten.operators._scale import check_min_replica

        default_output_outlets(kwargs, output_path)
        super().__init__(**kwargs)
        # The path as written (before rendering): a templated one names the output's pattern asset.
        self._output_pattern = output_path if isinstance(output_path, str) and "{{" in output_path else None
        model_input = renamed_param("PredictOperator", "model_input", model_input, "input", input, unset=_NOTSET)
        model_inputs = renamed_param("PredictOperator", "model_inputs", model_inputs, "inputs", inputs)
        one, many = self.input_names
        if (model_input is _NOTSET) == (model_inputs is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of {one}= (one input) or {many}= (a batch).")
        self.model_input = None if model_input is _NOTSET else model_input  # a subclass stores it as its own name
        self.single = model_input is not _NOTSET
        self.model_inputs = model_inputs
        self.model_id = model_id
        self.environment, self.deployment_id = check_target(
            environment, deployment_id, who=type(self).__name__, templates_ok=True
        )
        self.max_concurrency = max_concurrency
        self.on_error = on_error
        self.output_path = output_path
        self.resume = resume
        self.wake_first = wake_first
        self.progress_interval = progress_interval
        self.max_failures = max_failures
        self.max_error_rate = max_error_rate
        self.passthrough_columns = passthrough_columns
        flag("resume", resume, none_ok=True)  # None: decided per try (see _resume)
        check_batch_options(self._batch_options())  # the hook's check, when the DAG is parsed
        self._result: BatchResult | None = None  # the batch's counts, for get_openlineage_facets_on_complete
        self._input_fingerprint: dict[str, Any] | None = None  # what the batch's inputs are (_batch_inputs)
        self.scale_for_batch = check_min_replica(scale_for_batch)
        self._scale: Any = None
        from airflow_provider_baseten.cost import check_cap
        from airflow_provider_baseten.exceptions import BasetenValidationError

        self.max_cost_usd = check_cap("max_cost_usd", max_cost_usd)
        if self.max_cost_usd is not None and self.scale_for_batch is None:
            raise BasetenValidationError(
                "max_cost_usd guards the replicas a batch holds with scale_for_batch: give scale_for_batch too "
                "(without a lease the batch holds no replicas of its own, and costs nothing of its own).",
                field="max_cost_usd",
            )
        self._cost: CostReport | None = None
        self.cache = self._checked_cache(cache)

    def _checked_cache(self, cache: Any) -> Any:
        """``cache=`` checked when the DAG is parsed: a cache or a folder, on a call that may be cached."""
        if cache is None:
            return None
        from airflow_provider_baseten.client.cache import as_cache
        from airflow_provider_baseten.exceptions import BasetenValidationError

        if not self.cacheable:
            raise BasetenValidationError(
                f"{type(self).__name__} does not take cache=: its calls are not deterministic (a chat completion "
                "samples; a chain may do anything), so a cached answer could differ from a new one.",
                field="cache",
            )
        as_cache(cache)  # a bad value fails now; the folder itself is opened when the task runs
        return cache

    def _cached(self) -> dict[str, Any]:
        """``{"cache": ...}`` for the hook call when one was given (else nothing, as before)."""
        return {"cache": self.cache} if self.cache is not None else {}

    @property
    def input(self) -> Any:
        """Deprecated: :attr:`model_input`."""
        return self.model_input

    @property
    def inputs(self) -> Any:
        """Deprecated: :attr:`model_inputs`."""
        return self.model_inputs

    def _target(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "environment": self.environment, "deployment_id": self.deployment_id}

    def execute(self, context: Context) -> Any:
        """Predict; return the output (single), the outputs (batch), or a summary (``output_path``)."""
        from airflow_provider_baseten._tasks import rendered_target

        rendered_target(self)  # before anything is sent
        hook = self.hook
        _push_model_url(context, hook, self.model_id if self._calls_a_model() else "")  # "": a chain, Model APIs
        if self.wake_first:
            self.log.info("Waking the deployment before predicting.")
            hook.wake(**self._target())
        if self.single:
            return self._one(hook)
        inputs, total = self._batch_inputs()
        output = _as_path(self.output_path) if self.output_path else None
        if self.scale_for_batch is None:
            return self._run_batch(context, hook, inputs, total, output)
        from airflow_provider_baseten._tasks import report_cost, task_start
        from airflow_provider_baseten.exceptions import BasetenBudgetExceeded
        from airflow_provider_baseten.operators._scale import ScaleForBatch, lease_id

        limit = self.execution_timeout.total_seconds() if self.execution_timeout else None
        self._scale = ScaleForBatch(
            hook,
            **self._target(),
            min_replica=self.scale_for_batch,
            lease_id=lease_id(context),
            until=task_start(context) + limit + 60 if limit else None,
            log=self.log,
            state_store=context.get("task_state_store"),
        )
        with self._scale.held():
            meter = self._lease_meter(hook)
            if self.max_cost_usd is not None:  # the guard sits between the inputs and the batch
                if isinstance(inputs, (list, tuple)) and self._input_fingerprint is None:
                    from airflow_provider_baseten.client.batch.fingerprint import of_values

                    self._input_fingerprint = of_values(inputs)  # what the engine takes of a list itself
                inputs = meter.guarded(inputs)
            try:
                result = self._run_batch(context, hook, inputs, total, output)
            finally:
                self._cost = meter.report()
                report_cost(
                    context, self.log, f"the scale_for_batch lease ({self.scale_for_batch} replicas)", self._cost
                )
        if meter.verdict is not None:  # the lease is given back by now; what succeeded is kept
            raise BasetenBudgetExceeded(
                f"Budget guard: {meter.verdict.describe()}; stopped sending, kept what succeeded"
                + (f" (in {output})" if output is not None else "")
                + ", and gave the lease back.",
                cap=meter.verdict.cap,
                spent=meter.verdict.spent,
                unit=meter.verdict.unit,
            )
        return result

    def _lease_meter(self, hook: Any) -> LeaseMeter:
        """The lease's meter, priced at the deployment's instance type (taken right after the lease)."""
        from airflow_provider_baseten.cost import LeaseMeter, price_per_minute

        dep = hook.get_deployment(self._scale.deployment, model_id=self._scale.model_id)
        itype = dep.instance_type_name
        price = price_per_minute(hook, itype) if itype else 0.0
        return LeaseMeter(price, itype, int(self.scale_for_batch or 0), self.max_cost_usd)

    def on_kill(self) -> None:
        """Give back what ``scale_for_batch`` raised (a SIGKILLed task's retry does it instead)."""
        if self._scale is not None:
            self._scale.release()

    def _batch_options(self) -> BatchOptions:
        """The batch options given to this operator, as every batch method of the hook takes them.

        ``output_path`` (templated, and opened as a path at run time) and ``resume`` (decided per try) are
        added by :meth:`_run_batch`.
        """
        return {
            "max_concurrency": self.max_concurrency,
            "on_error": self.on_error,
            "progress_interval": self.progress_interval,
            "max_failures": self.max_failures,
            "max_error_rate": self.max_error_rate,
            "passthrough_columns": self.passthrough_columns,
        }

    def _run_batch(self, context: Context, hook: Any, inputs: Any, total: int, output: Any) -> Any:
        result = self._many(
            hook,
            inputs,
            **self._batch_options(),
            output_path=output,
            resume=self._resume(context, output),
            log=self.log,
            total=total,
            input_fingerprint=self._input_fingerprint,
        )
        self._result = result
        self.log.info(
            "%d %s: %d succeeded, %d failed, %d skipped (resume) in %.1fs",
            result.total,
            result.unit,
            result.succeeded,
            result.failed,
            result.skipped,
            result.elapsed,
        )
        if output is None:
            return result.results
        self._emit_output(context, output, result.summary())
        return result.summary()

    def _resume(self, context: Context, output: Any) -> bool:
        """``resume`` as given, or by default: on a retry, when the file holds results of these same inputs."""
        from airflow_provider_baseten._tasks import decide_resume

        return decide_resume(self.resume, context, output, self._input_fingerprint, self.log)

    def _emit_output(self, context: Context, output: Any, summary: dict[str, Any]) -> None:
        """The output's asset event: counts and the file's path (no data, no credentials, no signed URL).

        On the path pattern's asset when the task declares it (the default for a templated path), else on the
        file's own asset (a fixed path, or through an ``AssetAlias`` the user opted in to).
        """
        from airflow_provider_baseten._lineage import file_uri
        from airflow_provider_baseten.assets import emit_asset_event, output_asset

        keys = ("total", "succeeded", "failed", "skipped")
        extra = {**{k: summary.get(k) for k in keys}, "model_id": self.model_id or self.hook.settings.model_id}
        extra["path"] = file_uri(output)
        asset = output_asset(output)
        if self._output_pattern is not None:
            pattern = output_asset(self._output_pattern)
            if any(getattr(outlet, "uri", None) == pattern.uri for outlet in self.outlets or []):
                asset = pattern
        emit_asset_event(context, asset, extra)

    def _calls_a_model(self) -> bool:
        """Whether the calls go to a model, whose page is then the task's link (not to a chain or Model APIs)."""
        return True

    def _one(self, hook: Any) -> Any:
        """The single call (a subclass calls another hook method)."""
        return hook.predict(self.model_input, **self._target(), **self._cached())

    def _many(self, hook: Any, inputs: Any, **batch: Any) -> Any:
        """The batch call, with the batch options every batch method shares."""
        return hook.predict_batch(inputs, **self._target(), **self._cached(), **batch)

    @_lineage.never_raises
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the input file and the model in, the output file out, with row counts (``[openlineage]``)."""
        result = self._result
        src = self.model_inputs
        return _lineage.predict_lineage(
            (self.model_id or self.hook.settings.model_id) if self._calls_a_model() else None,
            environment=self.environment,
            deployment_id=self.deployment_id,
            input_path=src if _is_path(src) else None,
            input_rows=result.total if result is not None else None,
            output_path=self.output_path,
            output_rows=result.total - result.not_attempted if result is not None and self.output_path else None,
        )

    def _batch_inputs(self) -> tuple[Any, int]:
        """The inputs (a list, or a file's records streamed) and their number; sets ``_input_fingerprint``."""
        from airflow_provider_baseten.client.batch import read_jsonl
        from airflow_provider_baseten.client.batch.fingerprint import of_file_ends, of_values
        from airflow_provider_baseten.client.batch.sinks import fingerprint_jsonl
        from airflow_provider_baseten.client.transport import encode_json
        from airflow_provider_baseten.exceptions import BasetenValidationError

        src, many = self.model_inputs, self.input_names[1]
        if _is_path(src) and str(src).lower().endswith(".parquet"):
            from airflow_provider_baseten.batch_io import count_records, read_records

            total = count_records(src)  # from the footer; rows are read one row group at a time
            if total == 0:
                raise BasetenValidationError(f"{src}: the Parquet file has no rows.", field=many)
            if self.passthrough_columns:
                _check_parquet_passthrough(src, list(self.passthrough_columns))
            if self.output_path:
                with _open_binary(src) as fh:
                    self._input_fingerprint = of_file_ends(fh, total)
            self.log.info("Reading %d %s from %s", total, self.input_unit, src)
            return read_records(src), total
        if _is_path(src):
            path = _as_path(src)
            # every line checked (and its passthrough columns) before any request goes out
            self._input_fingerprint = fingerprint_jsonl(path, list(self.passthrough_columns or ()))
            total = self._input_fingerprint["count"]
            if total == 0:
                raise BasetenValidationError(f"{src}: the JSONL file has no inputs.", field=many)
            self.log.info("Reading %d %s from %s", total, self.input_unit, src)
            return read_jsonl(path), total
        if isinstance(src, dict) or not hasattr(src, "__iter__"):
            raise BasetenValidationError(
                f"{many} must be a list, an XComArg or a JSONL path, got {type(src).__name__}.", field=many
            )
        items = list(src)
        if not items:
            raise BasetenValidationError(f"{many} is empty: give at least one input.", field=many)
        for i, item in enumerate(items):
            encode_json(item, f"{many}[{i}]")
        if self.output_path:
            self._input_fingerprint = of_values(items)
        return items, len(items)


def _check_parquet_passthrough(src: Any, columns: list[str]) -> None:
    """Refuse, from the Parquet file's schema (no row read), passthrough columns it lacks or cannot carry."""
    from airflow_provider_baseten.batch_io import parquet_schema
    from airflow_provider_baseten.client.batch.parquet import pyarrow_modules
    from airflow_provider_baseten.exceptions import BasetenValidationError

    pa, _ = pyarrow_modules()
    schema = parquet_schema(src)
    for column in columns:
        if column not in schema.names:
            raise BasetenValidationError(
                f"passthrough_columns: {src} has no column {column!r}, so input 0 (and every row) lacks it; its "
                f"columns are {schema.names}.",
                field="passthrough_columns",
            )
        kind = schema.field(column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)) and not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
        ):
            raise BasetenValidationError(
                f"passthrough_columns: column {column!r} of {src} is {kind}; results carry numbers, booleans and "
                "strings. Cast it in the input (e.g. to string).",
                field="passthrough_columns",
            )


def _is_path(value: Any) -> bool:
    """Whether ``model_inputs`` names a JSONL file (a path string or an ``ObjectStoragePath``)."""
    return isinstance(value, str) or hasattr(value, "open")


def _open_binary(value: Any) -> Any:
    from airflow_provider_baseten.client.batch.sinks import _open

    return _open(_as_path(value), "rb")


def _as_path(value: Any) -> Any:
    if isinstance(value, str) and "://" in value:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(value)
    return value


def webhook_url(conn_id: str) -> str:
    """The webhook receiver's public URL, from the Airflow connection ``conn_id``.

    ``schema`` is the scheme (``https`` unless given; ``http`` only for a loopback host, as Baseten requires
    HTTPS elsewhere), then ``host``, ``port`` and the extra's ``path`` (default ``/baseten-webhooks/``, the
    plugin's mount on Airflow's API server). Login and password are never put in the URL.
    """
    from urllib.parse import urlsplit

    from airflow_provider_baseten.exceptions import BasetenValidationError
    from airflow_provider_baseten.hooks.baseten import BasetenHook

    conn = BasetenHook.get_connection(conn_id)
    host = (conn.host or "").strip()
    scheme = (conn.schema or "https").strip().lower()
    if "://" in host:  # a host written as a URL: its scheme wins
        scheme, host = host.split("://", 1)
    host = host.rstrip("/")
    path = str((conn.extra_dejson or {}).get("path") or WEBHOOK_MOUNT)
    url = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}/{path.lstrip('/')}"
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not host or parts.hostname is None or scheme not in ("https", "http") or (scheme == "http" and not loopback):
        raise BasetenValidationError(
            f"Connection {conn_id!r} does not give a webhook URL Baseten accepts (https://host[:port]/path; http "
            f"only for localhost): got scheme {scheme!r}, host {parts.hostname!r}.",
            field="webhook_conn_id",
        )
    return url


#: Where the provider's plugin mounts the webhook receiver on Airflow's API server.
WEBHOOK_MOUNT = "/baseten-webhooks/"


# In the submit log, for an input whose submit failed ambiguously: it may be queued, its id is unknown.
UNKNOWN_SUBMIT = "?"


class AsyncPredictOperator(ResumableJobMixin, BasetenWaitingOperator):
    """Submit async predictions (one or many) and optionally wait for them.

    The request ids are pushed to XCom (``request_ids``) right after submitting, before any waiting. On
    Airflow 3.3+ the ids are also kept in the task's state store, so a retried task reconnects to its
    requests instead of submitting them again.

    :param model_input: One input (a dict). Or ``model_inputs``: a list of dicts.
    :param webhook_endpoint: Where Baseten POSTs each result (outputs are never returned by polling).
    :param priority: 0 (soonest) to 2. :param max_time_in_queue_seconds: 10 to 259200.
    :param inference_retry_config: ``{max_attempts 1-10, initial_delay_ms, max_delay_ms}``.
    :param wait_for_completion: Wait until every request is terminal (default ``False``).
    :param fail_on_webhook_failed: Treat ``WEBHOOK_FAILED`` as failure (the output is lost). Default True.
    :param chain_id: Submit to this chain (``async_run_remote`` on ``chain-{chain_id}.api.baseten.co``, each
        input the entrypoint's arguments by name) instead of a model; ``environment`` / ``deployment_id``
        pick the chain's target. Status, waiting, reconnect and cancel work the same, on the chain's host.
    :param cancel_on_kill: Cancel this task's still-queued requests when the task is killed.
    :param webhook_conn_id: An Airflow connection whose ``schema`` (``https``, the default, or ``http`` for a
        loopback receiver), ``host``, ``port`` and extra ``{"path": ...}`` (default ``/baseten-webhooks/``, where
        the provider's plugin mounts the receiver on Airflow's API server) give the receiver's public URL; it
        becomes the ``webhook_endpoint`` (give one or the other). Its login and password are never part of the
        URL.
    :param results_path: The receiver's store (a local folder, or an ``ObjectStoragePath`` / ``s3://...`` URL;
        see :mod:`airflow_provider_baseten.webhooks`). With ``wait_for_completion=True`` the wait lists this
        store instead of polling Baseten's status API: no Baseten call while results arrive
        (:class:`~airflow_provider_baseten.triggers.webhooks.WebhookResultTrigger`).
    :param webhook_grace: Seconds the store may stay without a new result before the requests still missing
        are asked about on the status API (each at most once per grace period). Default 60: Baseten's two
        delivery attempts end within about 25 s of a request.
    :param output_path: Required with ``results_path``: gather the outputs, in input order, into this JSONL or Parquet
        file, exactly like a batch's (``{"index", "output"}`` or ``{"index", "error"}``); the task then returns
        the batch summary. A failed request (the webhook's ``errors``, or no stored result: ``WEBHOOK_FAILED``,
        ...) is a per-item error, under ``on_error`` / ``max_failures`` / ``max_error_rate``, and ``resume``
        works as on :class:`PredictOperator`.
    :param resubmit_unknown_outcome: On a retry, submit again the inputs whose outcome is unknown: a
        request Baseten no longer knows (it keeps a request's status one hour after completion, then
        answers 404), or a submit that failed ambiguously (a 5xx or timeout after sending, so it may be
        queued under an id that never arrived). Default ``False``: such an input is treated as finished
        with an unknown outcome and logged at WARNING, because it most likely ran and was paid for.

    Retries submit only what is missing (Airflow 3.3+): each request id is written to the task state
    store as soon as Baseten returns it, so a retry after a crash or an error at input *k* of *n* submits
    only the inputs that have no id, plus those whose request ended FAILED, EXPIRED or CANCELED (and
    WEBHOOK_FAILED when ``fail_on_webhook_failed``). A submit that failed ambiguously (a 5xx or a timeout
    after sending) is never repeated, in this try or a retry, unless ``resubmit_unknown_outcome``.
    """

    template_fields: Sequence[str] = (
        "model_input",
        "model_inputs",
        "model_id",
        "chain_id",
        "environment",
        "deployment_id",
        "webhook_endpoint",
        "webhook_conn_id",
        "results_path",
        "output_path",
        "baseten_conn_id",
    )
    template_fields_renderers = {"model_input": "json", "model_inputs": "json"}
    operator_extra_links = (BasetenModelLink(),)
    external_id_key = "baseten_async_request_ids"
    # A webhook wait's arguments (set and checked by _tasks.set_webhook_wait).
    results_path: Any
    webhook_grace: float | None
    output_path: Any
    resume: bool | None
    on_error: str
    max_failures: int | None
    max_error_rate: float | None

    def __init__(
        self,
        *,
        model_input: dict[str, Any] | None = None,
        model_inputs: Any = None,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
        webhook_endpoint: str | None = None,
        priority: int | None = None,
        max_time_in_queue_seconds: int | None = None,
        inference_retry_config: dict[str, Any] | None = None,
        wait_for_completion: bool = False,
        fail_on_webhook_failed: bool = True,
        resubmit_unknown_outcome: bool = False,
        chain_id: str | None = None,
        webhook_conn_id: str | None = None,
        results_path: Any = None,
        webhook_grace: float | None = None,
        output_path: Any = None,
        resume: bool | None = None,
        on_error: str = "fail",
        max_failures: int | None = None,
        max_error_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten._tasks import set_webhook_wait
        from airflow_provider_baseten.client.checks import check_target

        super().__init__(wait_for_completion=wait_for_completion, **kwargs)
        self.webhook_conn_id = webhook_conn_id
        set_webhook_wait(
            self,
            results_path=results_path,
            webhook_grace=webhook_grace,
            output_path=output_path,
            resume=resume,
            on_error=on_error,
            max_failures=max_failures,
            max_error_rate=max_error_rate,
        )
        if webhook_conn_id is not None and webhook_endpoint is not None:
            raise ValueError(
                "Give webhook_endpoint= or webhook_conn_id= (the receiver's URL from a connection), not both."
            )
        if results_path is not None and not wait_for_completion:
            raise ValueError(
                "results_path= is where the wait listens: it needs wait_for_completion=True (or give it to the "
                "AsyncPredictSensor that waits)."
            )
        if chain_id is not None and (
            model_id is not None or webhook_endpoint or webhook_conn_id or results_path or priority is not None
        ):
            raise ValueError(
                "chain_id= submits to a chain (async_run_remote with the bare input, as Baseten's spec has it): "
                "model_id, webhook_endpoint, webhook_conn_id, results_path and priority do not apply to it."
            )
        self.chain_id = chain_id
        self.resubmit_unknown_outcome = resubmit_unknown_outcome
        if (model_input is None) == (model_inputs is None):
            raise ValueError("AsyncPredictOperator needs exactly one of model_input= or model_inputs=.")
        self.model_input = model_input
        self.model_inputs = model_inputs
        self.model_id = model_id
        self.environment, self.deployment_id = check_target(
            environment, deployment_id, who="AsyncPredictOperator", templates_ok=True
        )
        self.webhook_endpoint = webhook_endpoint
        self.priority = priority
        self.max_time_in_queue_seconds = max_time_in_queue_seconds
        self.inference_retry_config = inference_retry_config
        self.fail_on_webhook_failed = fail_on_webhook_failed
        self._submitted: list[str] = []
        self._gathered: dict[str, Any] | None = None  # the summary, once the results are gathered (output_path)

    def execute(self, context: Context) -> Any:
        """Submit (or reconnect), push the ids, and wait if asked. Returns the request ids."""
        from airflow_provider_baseten._tasks import rendered_target

        rendered_target(self)  # before anything is sent
        if self.webhook_conn_id:
            self.webhook_endpoint = webhook_url(self.webhook_conn_id)
        # Its requests run on the model (Baseten's UI has no page per request); a chain's: no model page.
        _push_model_url(context, self.hook, self.model_id if self.chain_id is None else "", log=self.log)
        return self.execute_resumable(context)

    def _options(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "environment": self.environment,
            "deployment_id": self.deployment_id,
            "webhook_endpoint": self.webhook_endpoint,
            "priority": self.priority,
            "max_time_in_queue_seconds": self.max_time_in_queue_seconds,
            "inference_retry_config": self.inference_retry_config,
        }

    # -- ResumableJobMixin -----------------------------------------------------------------------------
    def submit_job(self, context: Context) -> JsonValue:
        """Validate every input, then submit each input that has no live request yet; push the ids to XCom."""
        from airflow_provider_baseten.operators._submit_log import SubmitLog

        inputs = self._checked_inputs()
        submit_log = SubmitLog(context.get("task_state_store"), inputs, self._fingerprint())
        submit_log.start()
        ids = self._still_useful(submit_log.load())
        self._submitted = [r for r in ids if r and r != UNKNOWN_SUBMIT]
        todo = [i for i, rid in enumerate(ids) if rid is None]
        if len(todo) < len(inputs):
            self.log.info(
                "%d of %d input(s) already have a request from an earlier try.", len(inputs) - len(todo), len(inputs)
            )
        self._submit_each(context, inputs, ids, todo, submit_log)
        final: list[JsonValue] = [r for r in ids if r and r != UNKNOWN_SUBMIT]
        self.log.info("Submitted %d async request(s): %s", len(todo), [ids[i] for i in todo][:20])
        context["ti"].xcom_push(key=xcom.REQUEST_IDS, value=final)
        return final

    def _checked_inputs(self) -> list[dict[str, Any]]:
        """The inputs, each a dict, with every option checked: all before the first request goes out."""
        from airflow_provider_baseten.exceptions import BasetenValidationError

        inputs = self._inputs()
        if not inputs:
            raise BasetenValidationError("model_inputs is empty: give at least one input.", field="model_inputs")
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise BasetenValidationError(
                    f"model_inputs[{i}] must be a dict (Baseten's model_input is a JSON object).", field="model_inputs"
                )
        self._check_options(inputs)
        if not self.webhook_endpoint and self.chain_id is None:
            self.log.warning(
                "No webhook_endpoint: Baseten never returns async outputs by polling, so the outputs of these "
                "requests are delivered nowhere unless the model stores them itself."
            )
        return inputs

    def _submit_each(
        self, context: Context, inputs: list[Any], ids: list[str | None], todo: list[int], submit_log: SubmitLog
    ) -> None:
        """Submit the inputs at ``todo``, recording each id as it arrives; on a failure, push the ids so far
        and say in the error which inputs have a request."""
        from airflow_provider_baseten.exceptions import BasetenError

        try:
            for i in todo:
                try:
                    ids[i] = self._submit(inputs[i])
                except BasetenError as exc:
                    if exc.maybe_created:  # it may be queued: a retry must not send it again unasked
                        ids[i] = UNKNOWN_SUBMIT
                        submit_log.record(ids, i)
                    raise
                self._submitted.append(ids[i])  # type: ignore[arg-type]
                submit_log.record(ids, i)
        except BasetenError as exc:
            done = [r for r in ids if r and r != UNKNOWN_SUBMIT]
            context["ti"].xcom_push(key=xcom.REQUEST_IDS, value=done)
            kept = " A retry submits only the inputs without an id." if submit_log.durable else ""
            exc.message = f"{exc.message} {len(done)} of {len(inputs)} input(s) have a request: {done[:20]}.{kept}"
            exc.args = (exc.message,)
            raise

    def _submit(self, item: dict[str, Any]) -> str:
        """Submit one input to the model (``async_predict``) or the chain (``async_run_chain``)."""
        if self.chain_id is not None:
            return self.hook.async_run_chain(
                item, chain_id=self.chain_id, environment=self.environment, deployment_id=self.deployment_id
            ).request_id
        return self.hook.async_predict(item, **self._options()).request_id

    def _fingerprint(self) -> dict[str, Any]:
        """What a retry must find unchanged to reconnect to the earlier try's requests."""
        return {**self._options(), **({"chain_id": self.chain_id} if self.chain_id is not None else {})}

    def _where(self) -> dict[str, Any]:
        """Where the requests' status lives: the chain's host, or the model's."""
        return {"chain_id": self.chain_id} if self.chain_id is not None else {"model_id": self.model_id}

    def _inputs(self) -> list[Any]:
        return [self.model_input] if self.model_input is not None else list(self.model_inputs or [])

    def _still_useful(self, ids: list[str | None]) -> list[str | None]:
        """Forget the ids of an earlier try whose request failed (so their inputs are submitted again).

        Each status check takes its turn from the model's status budget, the one the triggers and sensors
        polling it share (``[baseten] status_budget_rps``): a retry of thousands of inputs stays under it.
        """
        import asyncio

        from airflow_provider_baseten._conf import status_budget_rps
        from airflow_provider_baseten.client.ratelimit import STATUS_BUDGET_RPS, status_budget
        from airflow_provider_baseten.exceptions import BasetenNotFoundError

        budget = status_budget(
            self.baseten_conn_id, self.chain_id or self.model_id, status_budget_rps(STATUS_BUDGET_RPS)
        )
        bad = {"FAILED", "EXPIRED", "CANCELED"} | ({"WEBHOOK_FAILED"} if self.fail_on_webhook_failed else set())
        for i, rid in enumerate(ids):
            if rid is None:
                continue
            if rid == UNKNOWN_SUBMIT:
                if self.resubmit_unknown_outcome:
                    self.log.warning("Input %d: an earlier try's submit may have been queued; submitting it again.", i)
                    ids[i] = None
                else:
                    self.log.warning(
                        "Input %d: an earlier try's submit failed ambiguously and may be queued on Baseten (its "
                        "request id never arrived); not sending it again (resubmit_unknown_outcome=True does).",
                        i,
                    )
                continue
            asyncio.run(budget.turn())
            try:
                status = self.hook.get_async_request(rid, **self._where()).status
            except BasetenNotFoundError:
                status = "UNKNOWN"
            if status in bad or (status == "UNKNOWN" and self.resubmit_unknown_outcome):
                self.log.warning("Input %d: its earlier request %s is %s; submitting it again.", i, rid, status)
                ids[i] = None
            elif status == "UNKNOWN":
                self.log.warning(
                    "Input %d: Baseten no longer keeps the status of request %s (kept 1 h after completion); "
                    "treating it as finished, outcome unknown (resubmit_unknown_outcome=True submits it again).",
                    i,
                    rid,
                )
        return ids

    def _check_options(self, inputs: list[dict[str, Any]]) -> None:
        """Every input and option is checked before the first request goes out."""
        from airflow_provider_baseten import models as m
        from airflow_provider_baseten.client.transport import encode_json
        from airflow_provider_baseten.exceptions import BasetenValidationError

        opts = m.options(
            m.AsyncPredictOptions,
            {
                "webhook_endpoint": self.webhook_endpoint,
                "priority": self.priority,
                "max_time_in_queue_seconds": self.max_time_in_queue_seconds,
                "inference_retry_config": self.inference_retry_config,
            },
        ).body()
        for i, item in enumerate(inputs):
            size = len(encode_json({"model_input": item, **opts}, f"model_inputs[{i}]"))
            if size > m.ASYNC_PAYLOAD_LIMIT:
                raise BasetenValidationError(
                    f"model_inputs[{i}] is {size} bytes; Baseten's async limit is 256 KiB. Store large inputs "
                    "elsewhere and pass a reference.",
                    field="model_inputs",
                )

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """``ACTIVE`` while any request runs, else ``SUCCEEDED`` or ``FAILED``."""
        from airflow_provider_baseten.operators._submit_log import SubmitLog
        from airflow_provider_baseten.triggers.baseten import check_once

        submit_log = SubmitLog(context.get("task_state_store"), self._inputs(), self._fingerprint())
        if not submit_log.matches_earlier_try():
            self.log.warning(
                "The inputs changed since the earlier try: submitting them afresh (earlier requests are left alone)."
            )
            return "INPUTS_CHANGED"
        if self.resubmit_unknown_outcome and UNKNOWN_SUBMIT in submit_log.load():
            return "UNKNOWN_SUBMITS"  # the mixin then calls submit_job, which sends those inputs again
        event = check_once(self._trigger(list(external_id)))
        if event is None:
            return "ACTIVE"
        if event["status"] == "success" and not (event.get("unknown") and self.resubmit_unknown_outcome):
            return "SUCCEEDED"
        return "FAILED"  # the mixin then calls submit_job, which resubmits only the failed inputs

    def is_job_active(self, status: str) -> bool:
        """Reconnect while any request is still queued or running."""
        return status == "ACTIVE"

    def is_job_succeeded(self, status: str) -> bool:
        """Every request finished successfully."""
        return status == "SUCCEEDED"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        """Push the ids (again, on reconnect) and wait if ``wait_for_completion``.

        Returns the ids (with ``output_path``, the gathered results' summary): on reconnect the mixin returns
        this method's value as the task's result.
        """
        ids = list(external_id)
        if not self._submitted:
            self.log.info("Reconnected to %d async request(s) from an earlier try: %s", len(ids), ids[:20])
            self._submitted = ids  # a kill of this try may cancel them: this task submitted them
            context["ti"].xcom_push(key=xcom.REQUEST_IDS, value=ids)
        if self.wait_for_completion:
            self.wait(context, self._trigger(ids, submitted=ids, context=context))
        return self.get_job_result(ids, context)

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        """The request ids; with ``output_path``, the summary of the gathered results."""
        return self._gathered if self._gathered is not None else list(external_id)

    # -- waiting ---------------------------------------------------------------------------------------
    def _trigger(self, ids: list[str], submitted: list[str] | None = None, context: Context | None = None) -> Any:
        from airflow_provider_baseten._tasks import listen_kwargs
        from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger
        from airflow_provider_baseten.triggers.webhooks import WebhookResultTrigger

        listen = listen_kwargs(self)  # with results_path: wait on the receiver's store, not the status API
        return (WebhookResultTrigger if listen else AsyncPredictTrigger)(
            **listen,
            conn_id=self.baseten_conn_id,
            request_ids=ids,
            **self._where(),
            fail_on_webhook_failed=self.fail_on_webhook_failed,
            submitted_ids=submitted or [],
            poll_interval=self.poke_interval,
            end_time=self.end_time(context),
            hook_params=self.hook_params,
            cancel_on_kill=self.cancel_on_kill,
            # At the deadline: cancel this task's still-queued requests, unless a retry reconnects to them.
            cancel_on_timeout=bool(submitted) and self.undo_on_timeout(context),
        )

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> Any:
        """Fail on any failed request; warn about requests whose outcome Baseten no longer keeps; return the ids.

        With ``output_path``: gather the stored results into it and return the batch summary instead (a failed
        request is then a per-item error, under the error budget).
        """
        if self.output_path is not None and event["status"] in ("success", "failed"):
            from airflow_provider_baseten._tasks import gather_webhook_results
            from airflow_provider_baseten.client.batch.fingerprint import of_values

            if event["status"] == "failed":
                self.log.warning("%s", event["message"])
            self._gathered = gather_webhook_results(
                self, context, event, list(event["request_ids"]), of_values(self._inputs())
            )
            return self._gathered
        super().on_event(context, event)
        if event.get("unknown"):
            self.log.warning(
                "%d request(s) finished with an unknown outcome (Baseten no longer keeps their status): %s",
                len(event["unknown"]),
                event["unknown"][:20],
            )
        return list(event.get("request_ids", []))

    def on_kill(self) -> None:
        """Cancel the still-queued requests this task submitted (if ``cancel_on_kill``)."""
        if not self.cancel_on_kill:
            return
        for rid in self._submitted:
            try:
                result = self.hook.cancel_async_request(rid, **self._where())
                self.log.info("Cancel %s: %s", rid, "canceled" if result.canceled else result.message)
            except Exception as exc:
                self.log.warning("Could not cancel %s: %s", rid, exc)


class WakeDeploymentOperator(BasetenWaitingOperator):
    """Wake a scaled-to-zero deployment and, by default, wait until it is ACTIVE.

    :param model_id: The model (default: the connection's ``model_id``).
    :param environment: ``"production"`` (the default), ``"development"`` (the development deployment), or a
        custom environment's name.
    :param deployment_id: One deployment's id (give this or ``environment``, not both).
        ``deployment_id="production"`` / ``"development"`` is a deprecated alias of ``environment=``.
    :param wait_for_completion: Wait for ``ACTIVE`` (default True).
    """

    template_fields: Sequence[str] = ("model_id", "environment", "deployment_id", "baseten_conn_id")
    operator_extra_links = (BasetenModelLink(), BasetenDeploymentLink())
    default_poke_interval = 5.0

    def __init__(
        self,
        *,
        model_id: str | None = None,
        environment: str | None = None,
        deployment_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_baseten.client.checks import check_target

        super().__init__(**kwargs)
        self.model_id = model_id
        self.environment, self.deployment_id = check_target(
            environment, deployment_id, who="WakeDeploymentOperator", templates_ok=True
        )

    def execute(self, context: Context) -> str | None:
        """Wake; return the deployment id (when waiting) after it is ACTIVE."""
        from airflow_provider_baseten._tasks import deployment_behind, rendered_target
        from airflow_provider_baseten.links import deployment_url

        target = rendered_target(self)  # before anything is sent
        hook = self.hook
        hook.wake(model_id=self.model_id, environment=target["environment"], deployment_id=target["deployment_id"])
        model = self.model_id or hook.settings.model_id
        _push_model_url(context, hook, model)
        self.log.info("Wake requested.")
        if not self.wait_for_completion:
            return None
        dep_id = deployment_behind(hook, str(model), **target)
        if dep_id is None:
            self.log.warning("No deployment behind the target; nothing to wait for.")
            return None
        context["ti"].xcom_push(key=xcom.DEPLOYMENT_URL, value=deployment_url(str(model), dep_id))
        context["ti"].xcom_push(key=xcom.DEPLOYMENT_ID, value=dep_id)
        return self.wait_for_deployment(context, str(model), dep_id, ["ACTIVE"], wake=True)

    def on_event(self, context: Context, event: BasetenTriggerEvent) -> str | None:
        """Fail unless ACTIVE; return the deployment id."""
        super().on_event(context, event)
        return event.get("deployment_id")
