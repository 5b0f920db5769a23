"""Models, chains and deployments: lifecycle, autoscaling, retry, logs and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.checks import optional_int_in
from airflow_provider_baseten.hooks._api import (
    _Call,
    _for_team,
    _m,
    _v,
)
from airflow_provider_baseten.hooks._core import _HookCore

if TYPE_CHECKING:
    from airflow_provider_baseten.models import (
        ActivationResult,
        Chain,
        Deployment,
        DeploymentConfig,
        DeploymentDownload,
        DeploymentMetrics,
        LogLine,
        Model,
        RetryDeploymentResult,
        StatusMessage,
        Tombstone,
    )


_WEEK_MS = 7 * 24 * 3600 * 1000


_LOG_FILTERS = {"replica", "request_id", "component", "search_pattern", "includes", "excludes"}


def _window(start: int | None, end: int | None) -> None:
    """Check an epoch-millisecond window: integers, start before end, at most Baseten's 7 days."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    optional_int_in("start_epoch_millis", start, 0, what="epoch milliseconds (an integer)")
    optional_int_in("end_epoch_millis", end, 0, what="epoch milliseconds (an integer)")
    if start is not None and end is not None:
        if start > end:
            raise BasetenValidationError(
                f"start_epoch_millis ({start}) is after end_epoch_millis ({end}).", field="start_epoch_millis"
            )
        if end - start > _WEEK_MS:
            raise BasetenValidationError("Baseten serves windows of at most 7 days.", field="start_epoch_millis")


def _log_query(
    start: int | None,
    end: int | None,
    min_level: str | None,
    limit: int | None,
    direction: str | None,
    filters: dict[str, Any],
) -> dict[str, Any]:
    """The query of a logs endpoint, every value checked against Baseten's spec before anything is sent."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    _window(start, end)
    if min_level is not None and min_level not in m.LOG_LEVELS:
        raise BasetenValidationError(f"min_level must be one of {m.LOG_LEVELS}, got {min_level!r}.", field="min_level")
    optional_int_in("limit", limit, 1, 1000)
    if direction is not None and direction not in ("asc", "desc"):
        raise BasetenValidationError(f"direction must be 'asc' or 'desc', got {direction!r}.", field="direction")
    unknown = set(filters) - _LOG_FILTERS
    if unknown:
        raise BasetenValidationError(
            f"Unknown log filter(s) {sorted(unknown)}; use {sorted(_LOG_FILTERS)}.", field=sorted(unknown)[0]
        )
    query: dict[str, Any] = {
        "start_epoch_millis": start,
        "end_epoch_millis": end,
        "direction": direction,
        "limit": limit,
        "min_level": min_level,
    }
    for key, value in filters.items():
        if value is None:
            continue
        if key in ("includes", "excludes"):
            if isinstance(value, str) or not all(isinstance(x, str) for x in value) or len(value) > 8:
                raise BasetenValidationError(f"{key} must be a list of at most 8 strings.", field=key)
            query[key] = list(value)
        elif not isinstance(value, str) or len(value) > 256:
            raise BasetenValidationError(f"{key} must be a string of at most 256 characters.", field=key)
        else:
            query[key] = value
    return query


# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def list_models(hook: _HookCore, /, *, team_id: str | None = None) -> _Call[list[Model]]:
    """All models in the workspace, or in a team.

    :param team_id: A team's id: that team's models only.
    """
    m = _m()
    return _for_team(_Call("list_models", parse=lambda d: m.parse_list(m.Model, d, "models", "list_models")), team_id)


def get_model(hook: _HookCore, /, model_id: str | None = None) -> _Call[Model]:
    """One model (default: the connection's ``model_id``)."""
    m = _m()
    return _Call("get_model", {"model_id": hook._model(model_id)}, parse=lambda d: m.parse(m.Model, d, "get_model"))


def delete_model(hook: _HookCore, /, model_id: str) -> _Call[Tombstone]:
    """Delete a model and all its deployments. The id must be given explicitly."""
    m = _m()
    return _Call(
        "delete_model", {"model_id": _v("model_id", model_id)}, parse=lambda d: m.parse(m.Tombstone, d, "delete")
    )


def list_chains(hook: _HookCore, /) -> _Call[list[Chain]]:
    """All chains in the workspace."""
    m = _m()
    return _Call("list_chains", parse=lambda d: m.parse_list(m.Chain, d, "chains", "list_chains"))


def get_chain(hook: _HookCore, /, chain_id: str) -> _Call[Chain]:
    """One chain."""
    m = _m()
    return _Call("get_chain", {"chain_id": chain_id}, parse=lambda d: m.parse(m.Chain, d, "get_chain"))


def delete_chain(hook: _HookCore, /, chain_id: str) -> _Call[Tombstone]:
    """Delete a chain."""
    m = _m()
    return _Call("delete_chain", {"chain_id": chain_id}, parse=lambda d: m.parse(m.Tombstone, d, "delete"))


def list_deployments(hook: _HookCore, /, model_id: str | None = None) -> _Call[list[Deployment]]:
    """All deployments of a model."""
    m = _m()
    return _Call(
        "list_deployments",
        {"model_id": hook._model(model_id)},
        parse=lambda d: m.parse_list(m.Deployment, d, "deployments", "list_deployments"),
    )


def get_deployment(hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None) -> _Call[Deployment]:
    """One deployment; ``deployment_id`` may be ``"production"`` or ``"development"``."""
    from airflow_provider_baseten.client.routes import BY_TARGET

    m = _m()
    params = {"model_id": hook._model(model_id)}
    if deployment_id in ("production", "development"):
        name = BY_TARGET["get_deployment", deployment_id]
    else:
        name, params["deployment_id"] = "get_deployment", _v("deployment_id", deployment_id)
    return _Call(name, params, parse=lambda d: m.parse(m.Deployment, d, "get_deployment"))


def delete_deployment(hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None) -> _Call[Tombstone]:
    """Delete a deployment (Baseten refuses to delete the production deployment)."""
    m = _m()
    return _Call(
        "delete_deployment",
        {"model_id": hook._model(model_id), "deployment_id": _v("deployment_id", deployment_id)},
        parse=lambda d: m.parse(m.Tombstone, d, "delete_deployment"),
    )


def _deployment_call(
    hook: _HookCore, /, action: str, deployment_id: str, model_id: str | None
) -> _Call[ActivationResult]:
    """``action`` (``activate_deployment`` or ``deactivate_deployment``) on a deployment id, ``"development"`` or
    ``"production"``."""
    from airflow_provider_baseten.client.routes import BY_TARGET

    m = _m()
    params = {"model_id": hook._model(model_id)}
    if deployment_id == "development" or (deployment_id == "production" and not hook._gateway):
        name = BY_TARGET[action, deployment_id]
    else:  # through LowCodeAPI, production is sent as the id "production" on the row its reference lists
        name, params["deployment_id"] = BY_TARGET[action, "deployment"], _v("deployment_id", deployment_id)
    return _Call(name, params, parse=lambda d: m.parse(m.ActivationResult, d or {}, action))


def activate_deployment(
    hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None
) -> _Call[ActivationResult]:
    """Activate a deployment (``"development"`` or ``"production"`` for those deployments)."""
    return _deployment_call(hook, "activate_deployment", deployment_id, model_id)


def deactivate_deployment(
    hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None
) -> _Call[ActivationResult]:
    """Deactivate a deployment (``"development"`` or ``"production"`` for those deployments)."""
    return _deployment_call(hook, "deactivate_deployment", deployment_id, model_id)


def update_autoscaling_settings(
    hook: _HookCore,
    /,
    settings: dict[str, Any] | None = None,
    *,
    model_id: str | None = None,
    deployment_id: str | None = None,
    environment: str | None = None,
    **fields: Any,
) -> _Call[StatusMessage]:
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
    model = hook._model(model_id)
    parse = lambda d: m.parse(m.StatusMessage, d, "update_autoscaling_settings")  # noqa: E731
    if (deployment_id is None) == (environment is None):
        raise BasetenValidationError(
            "Give exactly one of deployment_id or environment for update_autoscaling_settings.",
            field="deployment_id",
        )
    if environment is not None:
        params = {"model_id": model, "env_name": _v("environment", environment)}
        return _Call("update_environment", params, body={"autoscaling_settings": body}, parse=parse)
    from airflow_provider_baseten.client.routes import BY_TARGET

    if deployment_id == "development" or (deployment_id == "production" and not hook._gateway):
        return _Call(BY_TARGET["update_autoscaling", deployment_id], {"model_id": model}, body=body, parse=parse)
    # Through LowCodeAPI, production is sent as the id "production" on the row its reference lists.
    params = {"model_id": model, "deployment_id": _v("deployment_id", deployment_id)}
    return _Call(BY_TARGET["update_autoscaling", "deployment"], params, body=body, parse=parse)


def retry_deployment(
    hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None
) -> _Call[RetryDeploymentResult]:
    """Retry a failed deployment (an id, ``"production"`` or ``"development"``).

    Returns ``retried`` and, when Baseten did not retry, its ``reason``. Baseten allows 10 retries a
    minute per API key; calls are paced to stay under that.
    """
    from airflow_provider_baseten.client.routes import BY_TARGET

    m = _m()
    params = {"model_id": hook._model(model_id)}
    if deployment_id in ("production", "development"):
        name = BY_TARGET["retry_deployment", deployment_id]
    else:
        name, params["deployment_id"] = "retry_deployment", _v("deployment_id", deployment_id)
    return _Call(name, params, parse=lambda d: m.parse(m.RetryDeploymentResult, d, "retry_deployment"))


def _log_page(name: str, params: dict[str, str], query: dict[str, Any]) -> _Call[list[LogLine]]:
    """One page of a deployment's or an environment's logs (``name`` and ``params`` say which)."""
    m = _m()
    return _Call(name, params, query=query, parse=lambda d: m.parse_list(m.LogLine, d, "logs", name))


def get_deployment_logs(
    hook: _HookCore,
    /,
    deployment_id: str,
    *,
    model_id: str | None = None,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    min_level: str | None = None,
    limit: int | None = None,
    direction: str | None = None,
    **filters: Any,
) -> _Call[list[LogLine]]:
    """One page of a deployment's logs (:meth:`iter_deployment_logs` pages through a whole window).

    :param start_epoch_millis: Window start (Baseten's default: 30 minutes before the end; at most 7 days).
    :param end_epoch_millis: Window end (default: now).
    :param min_level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``; lines without a level are then dropped.
    :param limit: Lines per page, 1-1000 (Baseten's default 500).
    :param direction: ``asc`` or ``desc``.
    :param filters: ``replica``, ``request_id``, ``component``, ``search_pattern`` (RE2), ``includes`` and
        ``excludes`` (up to 8 substrings each).
    """
    query = _log_query(start_epoch_millis, end_epoch_millis, min_level, limit, direction, filters)
    params = {"model_id": hook._model(model_id), "deployment_id": _v("deployment_id", deployment_id)}
    return _log_page("get_deployment_logs", params, query)


def get_environment_logs(
    hook: _HookCore,
    /,
    environment: str,
    *,
    model_id: str | None = None,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    min_level: str | None = None,
    limit: int | None = None,
    direction: str | None = None,
    **filters: Any,
) -> _Call[list[LogLine]]:
    """One page of the logs of every deployment active on ``environment`` in the window.

    Takes the same window and filters as :meth:`get_deployment_logs`.
    """
    query = _log_query(start_epoch_millis, end_epoch_millis, min_level, limit, direction, filters)
    params = {"model_id": hook._model(model_id), "env_name": _v("environment", environment)}
    return _log_page("get_environment_logs", params, query)


def get_deployment_metrics(
    hook: _HookCore,
    /,
    deployment_id: str,
    *,
    model_id: str | None = None,
    mode: str | None = None,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    metrics: list[str] | None = None,
) -> _Call[DeploymentMetrics]:
    """A deployment's metrics: ``mode`` ``CURRENT`` (a snapshot now; no window), ``SUMMARY`` or ``SERIES``.

    :param metrics: Metric names (default: Baseten's ``baseten_replicas_active``,
        ``baseten_inference_requests_total``, ``baseten_end_to_end_response_time_seconds``).
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    if mode is not None and mode not in ("CURRENT", "SUMMARY", "SERIES"):
        raise BasetenValidationError(f"mode must be CURRENT, SUMMARY or SERIES, got {mode!r}.", field="mode")
    if mode in (None, "CURRENT") and (start_epoch_millis is not None or end_epoch_millis is not None):
        raise BasetenValidationError(
            "mode CURRENT (the default) is a snapshot: give no start/end, or use mode SUMMARY or SERIES.",
            field="mode",
        )
    _window(start_epoch_millis, end_epoch_millis)
    if metrics is not None and (
        isinstance(metrics, str) or not all(isinstance(x, str) and x for x in metrics) or not metrics
    ):
        raise BasetenValidationError("metrics must be a non-empty list of metric names.", field="metrics")
    return _Call(
        "get_deployment_metrics",
        {"model_id": hook._model(model_id), "deployment_id": _v("deployment_id", deployment_id)},
        query={
            "mode": mode,
            "start_epoch_millis": start_epoch_millis,
            "end_epoch_millis": end_epoch_millis,
            "metrics": list(metrics) if metrics is not None else None,
        },
        parse=lambda d: m.parse(m.DeploymentMetrics, d, "get_deployment_metrics"),
    )


class _DeploymentApi(_HookCore):
    """Model and deployment methods of :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook`."""

    def iter_deployment_logs(
        self,
        /,
        deployment_id: str,
        *,
        model_id: str | None = None,
        start_epoch_millis: int | None = None,
        end_epoch_millis: int | None = None,
        min_level: str | None = None,
        limit: int | None = None,
        page_size: int = 500,
        **filters: Any,
    ) -> Iterator[LogLine]:
        """Every log line of a deployment in the window, newest first, paged and de-duplicated.

        Pages as Baseten's CLI does: newest first; each older page ends at the oldest millisecond of the
        page before, and the lines of that millisecond that come back again are dropped (keyed by
        ``(timestamp, message, replica)``). ``limit`` caps the lines yielded (``None``: the whole window);
        ``page_size`` is the lines asked per request (1-1000). For an old or failed deployment, start the
        window at its ``created_at``.
        """
        from airflow_provider_baseten.client.logs import LogPager

        pager = LogPager(start_epoch_millis, end_epoch_millis, limit, page_size, self.log)
        _log_query(start_epoch_millis, end_epoch_millis, min_level, page_size, None, filters)  # fail before sending
        while not pager.done:
            page = self._send(
                get_deployment_logs, deployment_id, model_id=model_id, min_level=min_level, **pager.query(), **filters
            )
            yield from pager.accept(page)

    async def aiter_deployment_logs(
        self,
        /,
        deployment_id: str,
        *,
        model_id: str | None = None,
        start_epoch_millis: int | None = None,
        end_epoch_millis: int | None = None,
        min_level: str | None = None,
        limit: int | None = None,
        page_size: int = 500,
        **filters: Any,
    ) -> AsyncIterator[LogLine]:
        """Async :meth:`iter_deployment_logs` (the same arguments; an async iterator)."""
        from airflow_provider_baseten.client.logs import LogPager

        pager = LogPager(start_epoch_millis, end_epoch_millis, limit, page_size, self.log)
        _log_query(start_epoch_millis, end_epoch_millis, min_level, page_size, None, filters)  # fail before sending
        while not pager.done:
            page = await self._asend(
                get_deployment_logs, deployment_id, model_id=model_id, min_level=min_level, **pager.query(), **filters
            )
            for line in pager.accept(page):
                yield line


def get_deployment_config(
    hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None, output_format: str | None = None
) -> _Call[DeploymentConfig]:
    """A deployment's Truss config.

    :param output_format: ``"parsed"`` (``config``, a dict), ``"raw"`` (``raw_config``, the YAML text) or
        ``"both"`` (Baseten's default).
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if output_format not in (None, "parsed", "raw", "both"):
        raise BasetenValidationError(
            f"output_format must be 'parsed', 'raw' or 'both', got {output_format!r}.", field="output_format"
        )
    m = _m()
    params = {"model_id": hook._model(model_id), "deployment_id": _v("deployment_id", deployment_id)}
    return _Call(
        "get_deployment_config",
        params,
        query={"output_format": output_format} if output_format else None,
        parse=lambda d: m.parse(m.DeploymentConfig, d, "get_deployment_config"),
    )


def get_deployment_download_url(
    hook: _HookCore, /, deployment_id: str, *, model_id: str | None = None
) -> _Call[DeploymentDownload]:
    """A short-lived presigned URL of the deployment's Truss archive (masked in Airflow's logs)."""
    from airflow_provider_baseten.client.redact import register_secret

    m = _m()
    params = {"model_id": hook._model(model_id), "deployment_id": _v("deployment_id", deployment_id)}

    def parse(d: Any) -> Any:
        if isinstance(d, dict) and isinstance(d.get("download_url"), str):
            register_secret(d["download_url"])  # a presigned URL is a credential while it lasts
        return m.parse(m.DeploymentDownload, d, "get_deployment_download_url")

    return _Call("get_deployment_download_url", params, parse=parse)


def terminate_replica(
    hook: _HookCore, /, deployment_id: str, replica_id: str, *, model_id: str | None = None
) -> _Call[ActivationResult]:
    """Terminate one replica of a deployment (e.g. a stuck one; the autoscaler starts a fresh one).

    :param replica_id: The replica's id, as in the deployment's log lines (``LogLine.replica``).
    """
    m = _m()
    params = {
        "model_id": hook._model(model_id),
        "deployment_id": _v("deployment_id", deployment_id),
        "replica_id": _v("replica_id", replica_id),
    }
    return _Call("terminate_replica", params, parse=lambda d: m.parse(m.ActivationResult, d or {}, "terminate_replica"))
