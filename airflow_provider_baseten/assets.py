"""Baseten assets: the ``baseten://`` URI scheme, factories, and the events the operators emit.

URIs (each id is Baseten's; an environment is its name)::

    baseten://model/{model_id}                                  a model (any of its environments)
    baseten://model/{model_id}/environments/{environment}       what one environment serves
    baseten://model/{model_id}/deployments/{deployment_id}      one deployment
    baseten://chain/{chain_id}                                  a chain (any of its environments)
    baseten://chain/{chain_id}/environments/{environment}       what one chain environment serves
    baseten://training_project/{project_id}                     a training project (any of its jobs)
    baseten://training_project/{project_id}/jobs/{job_id}       one training job

Build them with the factories (:func:`environment_asset`, :func:`model_asset`, :func:`deployment_asset`,
:func:`training_project_asset`, :func:`training_job_asset`) rather than by hand: an asset's identity is its
``(name, uri)``, and the factories give producer outlets and consumer schedules the same pair.

The scheme is registered in the provider's ``asset-uris``; :func:`sanitize_uri` runs at DAG-parse time and
rejects a malformed URI with a ``ValueError`` that says what is expected. This module imports nothing heavy
at the top (the DAG processor calls the handler for every ``baseten://`` asset it parses).

Events: :func:`emit_asset_event` attaches an event extra to an asset the running task declared as an
outlet, or adds the asset through a declared :class:`~airflow.sdk.AssetAlias` (ids known only at run
time). :func:`emit_environment_event` is the one for "environment E of model M now serves deployment D";
the promote operator calls it, and so can any operator that deploys into an environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias

    from airflow_provider_baseten.cost import CostReport

__all__ = [
    "CHAIN_ENVIRONMENT_ALIAS",
    "ENVIRONMENT_ALIAS",
    "OUTPUT_ALIAS",
    "SCHEME",
    "TRAINING_JOB_ALIAS",
    "chain_environment_asset",
    "chain_environment_event_extra",
    "cost_extra",
    "create_asset",
    "default_outlets",
    "default_output_outlets",
    "deployment_asset",
    "emit_asset_event",
    "emit_chain_environment_event",
    "emit_environment_event",
    "environment_asset",
    "environment_event_extra",
    "model_asset",
    "output_asset",
    "sanitize_uri",
    "training_job_asset",
    "training_project_asset",
]

SCHEME = "baseten"
#: The default outlet of a promotion whose model or environment is templated (resolved at run time).
ENVIRONMENT_ALIAS = "baseten:environment"
#: The default outlet of a training job operator (the job id is known only at run time).
TRAINING_JOB_ALIAS = "baseten:training_job"
#: Opt-in (``outlets=[AssetAlias(OUTPUT_ALIAS)]``): one asset per rendered batch output path, as before 0.2.
#: Not a default: a templated path makes a new asset every run, and ``airflow assets list`` grows for ever.
OUTPUT_ALIAS = "baseten:batch_output"
#: The URI scheme of a batch output path pattern (an ``x-`` scheme: Airflow keeps it as written).
OUTPUT_PATTERN_SCHEME = "x-baseten-output"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_KINDS = {
    "model": "model",
    "chain": "chain",
    "training_project": "training_project",
    "training-project": "training_project",
}
_CHILDREN = {"model": ("environments", "deployments"), "chain": ("environments",), "training_project": ("jobs",)}
_EXPECTED = (
    "expected baseten://model/{model_id}[/environments/{environment} | /deployments/{deployment_id}], "
    "baseten://chain/{chain_id}[/environments/{environment}] or baseten://training_project/{project_id}[/jobs/{job_id}]"
)
#: The default outlet of a chain promotion whose chain or environment is templated (resolved at run time).
CHAIN_ENVIRONMENT_ALIAS = "baseten:chain_environment"


def _check_id(what: str, value: object, where: str = "an asset URI") -> str:
    if not isinstance(value, str) or not _ID.match(value):
        templated = "{{" in str(value)
        hint = " (a Jinja template? use an AssetAlias for ids known only at run time)" if templated else ""
        if templated and where != "an asset URI":
            hint = " (a Jinja template? it is not rendered here: give the id itself)"
        raise ValueError(
            f"Invalid Baseten {what} {value!r} in {where}: letters, digits, '_', '.', '-' only (at most 128){hint}."
        )
    return value


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check and normalize a ``baseten://`` URI (the ``asset-uris`` handler); ``ValueError`` when malformed.

    Normalizes the kind (``MODEL``, ``training-project``) to ``model`` / ``training_project``; ids keep their
    case and are never percent-decoded. Airflow has already lower-cased the scheme, sorted the query, dropped
    the fragment and any trailing ``/``.
    """
    kind = _KINDS.get(uri.netloc.lower())  # the kind is the URI's host: case-insensitive
    if kind is None:
        raise ValueError(f"Unknown Baseten asset kind {uri.netloc!r} in {uri.geturl()!r}: {_EXPECTED}.")
    if uri.query:
        raise ValueError(f"A Baseten asset URI takes no query ({uri.geturl()!r}): {_EXPECTED}.")
    parts = uri.path.split("/")[1:] if uri.path not in ("", "/") else []
    if len(parts) not in (1, 3):
        raise ValueError(f"Malformed Baseten asset URI {uri.geturl()!r}: {_EXPECTED}.")
    _check_id({"model": "model id", "chain": "chain id"}.get(kind, "training project id"), parts[0])
    if len(parts) == 3:
        child, ident = parts[1], parts[2]
        if child not in _CHILDREN[kind]:
            raise ValueError(
                f"Malformed Baseten asset URI {uri.geturl()!r}: {child!r} is not one of {_CHILDREN[kind]}; {_EXPECTED}."
            )
        _check_id(child[:-1].replace("_", " "), ident)
    return uri._replace(netloc=kind)


def _asset(uri: str, extra: Mapping[str, Any] | None, group: str, watchers: Any = None) -> Asset:
    from airflow.sdk import Asset

    return Asset(uri=uri, name=uri, group=group, extra=dict(extra or {}), watchers=list(watchers or []))


def model_asset(model_id: str, *, extra: Mapping[str, Any] | None = None, watchers: Any = None) -> Asset:
    """The asset of a model as a whole (``baseten://model/{model_id}``).

    ``watchers``: ``AssetWatcher`` s that fire it (e.g. with a
    :class:`~airflow_provider_baseten.triggers.watchers.DeploymentActiveTrigger`).
    """
    return _asset(f"{SCHEME}://model/{_check_id('model id', model_id)}", extra, "model", watchers)


def environment_asset(
    model_id: str, environment: str = "production", *, extra: Mapping[str, Any] | None = None, watchers: Any = None
) -> Asset:
    """What ``environment`` of ``model_id`` serves (``baseten://model/{model_id}/environments/{environment}``).

    A promotion (or a deploy into the environment) emits an event on it; see :func:`environment_event_extra`.
    ``watchers``: ``AssetWatcher`` s that fire it from outside Airflow (e.g. with an
    :class:`~airflow_provider_baseten.triggers.watchers.EnvironmentChangedTrigger`).
    """
    model = _check_id("model id", model_id)
    uri = f"{SCHEME}://model/{model}/environments/{_check_id('environment', environment)}"
    return _asset(uri, extra, "model", watchers)


def chain_environment_asset(
    chain_id: str, environment: str = "production", *, extra: Mapping[str, Any] | None = None, watchers: Any = None
) -> Asset:
    """What ``environment`` of a chain serves (``baseten://chain/{chain_id}/environments/{environment}``).

    :class:`~airflow_provider_baseten.operators.chains.PromoteChainOperator` emits an event on it, with the
    extra of :func:`chain_environment_event_extra`.
    """
    chain = _check_id("chain id", chain_id)
    uri = f"{SCHEME}://chain/{chain}/environments/{_check_id('environment', environment)}"
    return _asset(uri, extra, "chain", watchers)


def deployment_asset(model_id: str, deployment_id: str, *, extra: Mapping[str, Any] | None = None) -> Asset:
    """One deployment (``baseten://model/{model_id}/deployments/{deployment_id}``)."""
    model = _check_id("model id", model_id)
    return _asset(f"{SCHEME}://model/{model}/deployments/{_check_id('deployment id', deployment_id)}", extra, "model")


def training_project_asset(
    training_project_id: str, *, extra: Mapping[str, Any] | None = None, watchers: Any = None
) -> Asset:
    """A training project as a whole (``baseten://training_project/{project_id}``).

    ``watchers``: ``AssetWatcher`` s that fire it (e.g. with a
    :class:`~airflow_provider_baseten.triggers.watchers.TrainingJobFinishedTrigger`).
    """
    uri = f"{SCHEME}://training_project/{_check_id('training project id', training_project_id)}"
    return _asset(uri, extra, "model", watchers)


def training_job_asset(
    training_project_id: str, training_job_id: str, *, extra: Mapping[str, Any] | None = None
) -> Asset:
    """One training job (``baseten://training_project/{project_id}/jobs/{job_id}``); emitted when it COMPLETES."""
    project = _check_id("training project id", training_project_id)
    job = _check_id("job id", training_job_id)
    return _asset(f"{SCHEME}://training_project/{project}/jobs/{job}", extra, "model")


def create_asset(
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    training_project_id: str | None = None,
    training_job_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Asset:
    """The ``asset-uris`` factory: the asset named by the given ids (see the module docstring for the forms)."""
    if model_id is not None and training_project_id is None and training_job_id is None:
        if environment is not None and deployment_id is not None:
            raise ValueError("create_asset: give environment= or deployment_id=, not both.")
        if environment is not None:
            return environment_asset(model_id, environment, extra=extra)
        if deployment_id is not None:
            return deployment_asset(model_id, deployment_id, extra=extra)
        return model_asset(model_id, extra=extra)
    if training_project_id is not None and model_id is None and environment is None and deployment_id is None:
        if training_job_id is not None:
            return training_job_asset(training_project_id, training_job_id, extra=extra)
        return training_project_asset(training_project_id, extra=extra)
    raise ValueError(
        "create_asset needs model_id= (optionally with environment= or deployment_id=) or training_project_id= "
        "(optionally with training_job_id=)."
    )


def to_openlineage(asset: Any, lineage_context: Any = None) -> Any:
    """The ``asset-uris`` OpenLineage converter: a ``baseten://`` asset as the dataset the operators report.

    Namespace ``baseten``, name the URI without ``baseten://`` (``model/{id}/environments/{env}``, ...): the
    names :mod:`airflow_provider_baseten._lineage` gives the same objects, so both views of lineage meet.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from airflow_provider_baseten._lineage import NAMESPACE

    prefix = f"{SCHEME}://"
    uri = str(asset.uri)
    if not uri.startswith(prefix):
        raise ValueError(f"not a {prefix} asset: {uri!r}")
    return Dataset(namespace=NAMESPACE, name=uri[len(prefix) :])


def output_asset(path: Any) -> Asset:
    """The asset of a batch's output, for the producer's outlet and a consumer's schedule alike.

    A path known at parse time is its file's URI (``s3://bucket/key``, ``file:///abs/path.jsonl``). A
    templated path (a string with ``{{``) is one asset for the pattern, named by the template as written
    (``/data/out/{{ ds }}.jsonl``; URI ``x-baseten-output:`` + the template): every run's file is an event on
    it, and the event's extra ``path`` says which file. A consumer schedules on ``output_asset(<the same
    template>)`` and reads ``path`` from its triggering event.
    """
    from airflow.sdk import Asset

    from airflow_provider_baseten._lineage import file_uri

    if isinstance(path, str) and "{{" in path:
        return Asset(name=path, uri=f"{OUTPUT_PATTERN_SCHEME}:{path}", group="asset")
    text = file_uri(path)
    return Asset(uri=text, name=text, group="asset")


def default_output_outlets(kwargs: dict[str, Any], output_path: Any) -> None:
    """A batch's default outlet, unless the user passed ``outlets=``: :func:`output_asset` of ``output_path``.

    One asset per path as written in the DAG (a file, or a templated pattern), so the assets of a DAG stay as
    many as its tasks however often it runs. A path known only at run time (an ``XComArg``) gets no default
    outlet: its asset would be new every run. ``outlets=[AssetAlias(OUTPUT_ALIAS)]`` opts in to one asset per
    rendered path.
    """
    if "outlets" in kwargs or output_path is None:
        return
    if isinstance(output_path, str) or not is_templated(output_path):  # a str, a path or an ObjectStoragePath
        kwargs["outlets"] = [output_asset(output_path)]


def is_templated(*values: Any) -> bool:
    """Whether any value is unknown at parse time: ``None``, a string holding a Jinja template, or anything
    that is not a string or a path (an ``XComArg``, say)."""
    import os

    return any(
        v is None
        or (isinstance(v, str) and "{{" in v)
        or not (isinstance(v, (str, os.PathLike)) or hasattr(v, "protocol"))  # ObjectStoragePath has a protocol
        for v in values
    )


def alias(name: str) -> AssetAlias:
    """An :class:`~airflow.sdk.AssetAlias` (imported lazily)."""
    from airflow.sdk import AssetAlias

    return AssetAlias(name=name)


def default_outlets(kwargs: dict[str, Any], ids: tuple[Any, ...], make: Any, alias_name: str) -> None:
    """Give an operator its default outlets unless the user passed ``outlets=`` (``[]`` turns them off).

    The asset ``make(*ids)`` when every id is known at parse time, else ``AssetAlias(alias_name)`` (the
    asset is then added at run time with the rendered ids).
    """
    if "outlets" in kwargs:
        return
    kwargs["outlets"] = [alias(alias_name) if is_templated(*ids) else make(*ids)]


def emit_asset_event(context: Any, asset: Asset, extra: Mapping[str, Any]) -> bool:
    """Attach ``extra`` to this task's event on ``asset``; return whether the task declares a way to emit it.

    ``asset`` is emitted with ``extra`` when it is one of the task's outlets (same URI), and through every
    :class:`~airflow.sdk.AssetAlias` among the outlets (the alias resolves to it). An event exists only when
    the task succeeds; nothing here is sent before that. Event extras are stored in cleartext: ids and
    timestamps only, never a key or a signed URL.
    """
    from airflow.sdk import Asset, AssetAlias

    task = context.get("task") if hasattr(context, "get") else None
    outlets = [
        o
        for o in getattr(task, "outlets", None) or []
        if isinstance(o, AssetAlias) or (isinstance(o, Asset) and o.uri == asset.uri)
    ]
    events = context.get("outlet_events") if outlets else None
    if events is None:  # no matching outlet (or called outside a task run): nothing to emit
        return False
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            events[outlet].add(asset, extra=dict(extra))
        else:
            events[outlet].extra = dict(extra)
    emitted = True
    return emitted


def cost_extra(cost: CostReport | None) -> dict[str, Any]:
    """The event extra entry ``baseten_cost`` (``{usd, estimated, minutes, instance_type, source}``) of a task
    that knows its cost; ``{}`` when it does not.

    :param cost: The task's :class:`~airflow_provider_baseten.cost.CostReport`.
    """
    from airflow_provider_baseten.xcom import BASETEN_COST

    return {BASETEN_COST: cost.as_xcom()} if cost is not None else {}


def environment_event_extra(
    *,
    model_id: str,
    environment: str,
    deployment_id: str,
    previous_deployment_id: str | None,
    promoted_at: datetime | str | None = None,
    noop: bool = False,
    serving: bool = True,
) -> dict[str, Any]:
    """The event extra of an environment asset: ``{deployment_id, previous_deployment_id, environment,
    promoted_at, model_id, noop, serving}``.

    ``promoted_at`` is an ISO-8601 UTC time (default: now). ``noop`` is True when the deployment already served
    the environment (nothing was promoted; then ``previous_deployment_id == deployment_id``). ``serving`` is
    False when the task only requested the promotion and did not wait for it.
    """
    when = promoted_at or datetime.now(timezone.utc)
    return {
        "model_id": model_id,
        "environment": environment,
        "deployment_id": deployment_id,
        "previous_deployment_id": previous_deployment_id,
        "promoted_at": when.isoformat() if isinstance(when, datetime) else str(when),
        "noop": bool(noop),
        "serving": bool(serving),
    }


def emit_environment_event(context: Any, *, model_id: str, environment: str, **fields: Any) -> dict[str, Any]:
    """Emit "``environment`` of ``model_id`` now serves ``deployment_id``" from the running task; return the extra.

    ``fields`` are those of :func:`environment_event_extra` (``deployment_id``, ``previous_deployment_id``,
    ``promoted_at``, ``noop``, ``serving``). For any operator that promotes or deploys into an environment:
    declare ``outlets=[environment_asset(model, env)]`` (or ``[AssetAlias(ENVIRONMENT_ALIAS)]`` when the ids
    are templated) and call this once the deployment serves.
    """
    extra = environment_event_extra(model_id=model_id, environment=environment, **fields)
    emit_asset_event(context, environment_asset(model_id, environment), extra)
    return extra


def chain_environment_event_extra(*, chain_id: str, environment: str, **fields: Any) -> dict[str, Any]:
    """The event extra of a chain environment asset: a model environment's (:func:`environment_event_extra`:
    ``deployment_id``, ``previous_deployment_id``, ``environment``, ``promoted_at``, ``noop``, ``serving``) with
    ``chain_id`` in place of ``model_id``; the deployment ids are chain deployment ids."""
    extra = environment_event_extra(model_id=chain_id, environment=environment, **fields)
    extra["chain_id"] = extra.pop("model_id")
    return extra


def emit_chain_environment_event(context: Any, *, chain_id: str, environment: str, **fields: Any) -> dict[str, Any]:
    """Emit "``environment`` of chain ``chain_id`` now serves ``deployment_id``" from the running task; return
    the extra (:func:`chain_environment_event_extra`)."""
    extra = chain_environment_event_extra(chain_id=chain_id, environment=environment, **fields)
    emit_asset_event(context, chain_environment_asset(chain_id, environment), extra)
    return extra
