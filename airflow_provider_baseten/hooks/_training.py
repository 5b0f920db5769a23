"""Training: projects, jobs, their checkpoints, logs, metrics and artifacts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_baseten.hooks._api import (
    _Call,
    _for_team,
    _m,
    _name,
    _newest_named,
    _one_named,
    _Reconcile,
    _v,
    _wrapped,
)
from airflow_provider_baseten.hooks._core import _HookCore
from airflow_provider_baseten.hooks._deployments import _log_query

if TYPE_CHECKING:
    from airflow_provider_baseten.models import (
        Tombstone,
        TrainingCacheSummary,
        TrainingCheckpoint,
        TrainingCheckpointFiles,
        TrainingDownload,
        TrainingJob,
        TrainingLogLine,
        TrainingMetrics,
        TrainingProject,
    )


def _project_name(name: Any) -> str:
    return _name("training project", name, "name")


def _pick_project(projects: list[TrainingProject], name: str) -> TrainingProject | None:
    hint = "pass the id of the one you mean."
    return cast("TrainingProject | None", _one_named(projects, name, "training projects", hint))


# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def _job_params(training_project_id: str, training_job_id: str) -> dict[str, str]:
    return {"training_project_id": training_project_id, "training_job_id": training_job_id}


def _job(where: str) -> Callable[[Any], TrainingJob]:
    return _wrapped("training_job", "TrainingJob", where)


def create_training_job(
    hook: _HookCore, /, training_project_id: str, training_job: dict[str, Any]
) -> _Call[TrainingJob]:
    """Create a training job (body: Baseten's ``CreateTrainingJobV1``: image, compute, runtime, name)."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if not isinstance(training_job, dict) or "image" not in training_job:
        raise BasetenValidationError(
            "training_job must be a dict with at least 'image' (see Baseten's CreateTrainingJobV1).",
            field="training_job",
        )
    name = training_job.get("name")
    reconcile = None
    if isinstance(name, str) and name:
        jobs = list_training_jobs(hook, training_project_id)
        reconcile = _Reconcile(jobs, jobs, _newest_named(name, time.time()), f"training job named {name!r}")
    return _Call(
        "create_training_job",
        {"training_project_id": training_project_id},
        body={"training_job": training_job},
        parse=_job("create_training_job"),
        reconcile=reconcile,
    )


def list_training_jobs(hook: _HookCore, /, training_project_id: str) -> _Call[list[TrainingJob]]:
    """All jobs of a training project."""
    m = _m()
    return _Call(
        "list_training_jobs",
        {"training_project_id": training_project_id},
        parse=lambda d: m.parse_list(m.TrainingJob, d, "training_jobs", "list_training_jobs"),
    )


def get_training_job(hook: _HookCore, /, training_project_id: str, training_job_id: str) -> _Call[TrainingJob]:
    """One training job (``current_status``, ``error_message``, ...)."""
    return _Call(
        "get_training_job",
        _job_params(training_project_id, training_job_id),
        parse=_job("get_training_job"),
    )


def search_training_jobs(
    hook: _HookCore,
    /,
    *,
    project_id: str | None = None,
    job_id: str | None = None,
    statuses: list[str] | None = None,
    order_by: list[dict[str, str]] | None = None,
) -> _Call[list[TrainingJob]]:
    """Search training jobs across projects.

    :param statuses: e.g. ``["TRAINING_JOB_RUNNING"]``.
    :param order_by: e.g. ``[{"field": "created_at", "order": "desc"}]`` (Baseten's default).
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    m = _m()
    body: dict[str, Any] = {}
    for key, value in (("project_id", project_id), ("job_id", job_id)):
        if value is not None:
            body[key] = _v(key, value)
    # The spec types these strictly (a list of strings; a list of {field, order} strings): check before sending.
    if statuses is not None:
        if isinstance(statuses, str) or not all(isinstance(x, str) for x in statuses):
            raise BasetenValidationError(
                f"statuses must be a list of strings, e.g. ['TRAINING_JOB_RUNNING'], got {statuses!r}.",
                field="statuses",
            )
        body["statuses"] = list(statuses)
    if order_by is not None:
        if isinstance(order_by, dict) or not all(
            isinstance(o, dict) and isinstance(o.get("field"), str) and isinstance(o.get("order"), str)
            for o in order_by
        ):
            raise BasetenValidationError(
                "order_by must be a list of {'field': str, 'order': str}, "
                f"e.g. [{{'field': 'created_at', 'order': 'desc'}}], got {order_by!r}.",
                field="order_by",
            )
        body["order_by"] = [dict(o) for o in order_by]
    return _Call(
        "search_training_jobs",
        body=body,
        parse=lambda d: m.parse_list(m.TrainingJob, d, "training_jobs", "search_training_jobs"),
    )


def stop_training_job(hook: _HookCore, /, training_project_id: str, training_job_id: str) -> _Call[TrainingJob]:
    """Stop a training job."""
    return _Call(
        "stop_training_job",
        _job_params(training_project_id, training_job_id),
        body={},
        parse=_job("stop_training_job"),
    )


def recreate_training_job(hook: _HookCore, /, training_project_id: str, training_job_id: str) -> _Call[TrainingJob]:
    """Start a new job with the same configuration; returns the new job."""
    return _Call(
        "recreate_training_job",
        _job_params(training_project_id, training_job_id),
        parse=_job("recreate_training_job"),
    )


def get_training_job_checkpoints(
    hook: _HookCore, /, training_project_id: str, training_job_id: str
) -> _Call[list[TrainingCheckpoint]]:
    """The job's checkpoints, as Baseten lists them."""
    m = _m()
    return _Call(
        "get_training_job_checkpoints",
        _job_params(training_project_id, training_job_id),
        parse=lambda d: m.parse_list(m.TrainingCheckpoint, d, "checkpoints", "get_training_job_checkpoints"),
    )


def get_training_job_checkpoint_files(
    hook: _HookCore,
    /,
    training_project_id: str,
    training_job_id: str,
    *,
    page_token: int | None = None,
    page_size: int | None = None,
) -> _Call[TrainingCheckpointFiles]:
    """One page of presigned URLs of the job's checkpoint files."""
    m = _m()
    return _Call(
        "get_training_job_checkpoint_files",
        _job_params(training_project_id, training_job_id),
        query={"page_token": page_token, "page_size": page_size},
        parse=lambda d: m.parse(m.TrainingCheckpointFiles, d, "get_training_job_checkpoint_files"),
    )


def get_training_job_logs(
    hook: _HookCore,
    /,
    training_project_id: str,
    training_job_id: str,
    *,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    limit: int | None = None,
    min_level: str | None = None,
    direction: str | None = None,
) -> _Call[list[TrainingLogLine]]:
    """Log lines of the job: at most ``limit`` (Baseten: 1-1000, default 500) per call.

    ``min_level`` is ``DEBUG``/``INFO``/``WARNING``/``ERROR``; ``direction="desc"`` returns the newest
    lines first (with ``limit``: the job's last lines). Checked before anything is sent.
    """
    m = _m()
    query = {"start_epoch_millis": start_epoch_millis, "end_epoch_millis": end_epoch_millis}
    checked = _log_query(None, None, min_level, limit, direction, {})
    query.update({k: v for k, v in checked.items() if v is not None})
    return _Call(
        "get_training_job_logs",
        _job_params(training_project_id, training_job_id),
        query=query,
        parse=lambda d: m.parse_list(m.TrainingLogLine, d, "logs", "get_training_job_logs"),
    )


def get_training_job_metrics(
    hook: _HookCore,
    /,
    training_project_id: str,
    training_job_id: str,
    *,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
) -> _Call[TrainingMetrics]:
    """Resource and training metrics of the job."""
    m = _m()
    return _Call(
        "get_training_job_metrics",
        _job_params(training_project_id, training_job_id),
        query={"start_epoch_millis": start_epoch_millis, "end_epoch_millis": end_epoch_millis},
        parse=lambda d: m.parse(m.TrainingMetrics, d, "get_training_job_metrics"),
    )


def download_training_job(
    hook: _HookCore, /, training_project_id: str, training_job_id: str
) -> _Call[TrainingDownload]:
    """Presigned URLs of the job's artifacts."""
    m = _m()
    return _Call(
        "download_training_job",
        _job_params(training_project_id, training_job_id),
        parse=lambda d: m.parse(m.TrainingDownload, d, "download_training_job"),
    )


def _project(where: str) -> Callable[[Any], TrainingProject]:
    return _wrapped("training_project", "TrainingProject", where)


def list_training_projects(hook: _HookCore, /) -> _Call[list[TrainingProject]]:
    """All training projects of the workspace (each with its ``latest_job``, when Baseten includes it)."""
    m = _m()
    return _Call(
        "list_training_projects",
        parse=lambda d: m.parse_list(m.TrainingProject, d, "training_projects", "list_training_projects"),
    )


def get_training_project(hook: _HookCore, /, training_project_id: str) -> _Call[TrainingProject]:
    """One training project."""
    return _Call(
        "get_training_project",
        {"training_project_id": training_project_id},
        parse=_project("get_training_project"),
    )


def create_training_project(hook: _HookCore, /, name: str, *, team_id: str | None = None) -> _Call[TrainingProject]:
    """Create the training project called ``name``, or return the existing one: Baseten upserts by name.

    Being idempotent by name, it is safe to resend after a failure whose outcome is unknown.

    :param team_id: A team's id: the project is that team's instead of the workspace's default team.
    """
    call = _Call(
        "create_training_project",
        body={"training_project": {"name": _project_name(name)}},
        parse=_project("create_training_project"),
    )
    return _for_team(call, team_id)


class _TrainingApi(_HookCore):
    """Training methods of :class:`~airflow_provider_baseten.hooks.baseten.BasetenHook`."""

    def _project_key(self, name: str) -> tuple[str, ...]:
        return (self.baseten_conn_id, self.settings.base_url, "training_project", name)

    def get_or_create_training_project(self, name: str) -> TrainingProject:
        """The training project called ``name``, created if there is none, so DAGs can name projects.

        Looks the name up first (Baseten has no lookup by name: the project list is searched), and creates
        the project only when it is missing. Raises :class:`BasetenValidationError` for an empty name and
        :class:`BasetenError` when several projects (e.g. of different teams) share the name. The name's id
        is kept per process for a few minutes (:mod:`~airflow_provider_baseten.client.lookups`): a repeated
        lookup fetches that one project instead of listing them all.
        """
        from airflow_provider_baseten.client.lookups import NAMES
        from airflow_provider_baseten.exceptions import BasetenNotFoundError

        name = _project_name(name)
        key = self._project_key(name)
        known = NAMES.get(key)
        if known is not None:
            try:
                project = self._send(get_training_project, known)
            except BasetenNotFoundError:
                project = None
            if project is not None and project.name == name:
                return project
            NAMES.drop(key)  # deleted or renamed since: look the name up afresh
        found = _pick_project(self._send(list_training_projects), name)
        if found is None:
            self.log.info("No training project named %r; creating it.", name)
            found = self._send(create_training_project, name)
        NAMES.put(key, found.id)
        return found

    async def aget_or_create_training_project(self, name: str) -> TrainingProject:
        """Async twin of :meth:`get_or_create_training_project` (same arguments, awaitable)."""
        from airflow_provider_baseten.client.lookups import NAMES
        from airflow_provider_baseten.exceptions import BasetenNotFoundError

        name = _project_name(name)
        await self.aget_transport()
        key = self._project_key(name)
        known = NAMES.get(key)
        if known is not None:
            try:
                project = await self._asend(get_training_project, known)
            except BasetenNotFoundError:
                project = None
            if project is not None and project.name == name:
                return project
            NAMES.drop(key)  # deleted or renamed since: look the name up afresh
        found = _pick_project(await self._asend(list_training_projects), name)
        if found is None:
            self.log.info("No training project named %r; creating it.", name)
            found = await self._asend(create_training_project, name)
        NAMES.put(key, found.id)
        return found


def delete_training_job(hook: _HookCore, /, training_project_id: str, training_job_id: str) -> _Call[Tombstone]:
    """Delete a training job (``Tombstone.deleted``). Deleting twice answers 404 the second time."""
    m = _m()
    return _Call(
        "delete_training_job",
        _job_params(training_project_id, training_job_id),
        parse=lambda d: m.parse(m.Tombstone, d, "delete_training_job"),
    )


def update_training_job(
    hook: _HookCore, /, training_project_id: str, training_job_id: str, *, priority: int
) -> _Call[TrainingJob]:
    """Change a training job's queue priority (the one setting Baseten lets you change on a job)."""
    from airflow_provider_baseten.client.checks import int_in

    return _Call(
        "update_training_job",
        _job_params(training_project_id, training_job_id),
        body={"priority": int_in("priority", priority)},
        parse=_job("update_training_job"),
    )


def delete_training_project(hook: _HookCore, /, training_project_id: str) -> _Call[Tombstone]:
    """Delete a training project (``Tombstone.deleted``). Deleting twice answers 404 the second time."""
    m = _m()
    return _Call(
        "delete_training_project",
        {"training_project_id": _v("training_project_id", training_project_id)},
        parse=lambda d: m.parse(m.Tombstone, d, "delete_training_project"),
    )


def get_training_project_cache_summary(hook: _HookCore, /, training_project_id: str) -> _Call[TrainingCacheSummary]:
    """What a training project's cache holds (files and sizes)."""
    m = _m()
    return _Call(
        "get_training_project_cache_summary",
        {"training_project_id": _v("training_project_id", training_project_id)},
        parse=lambda d: m.parse(m.TrainingCacheSummary, d, "get_training_project_cache_summary"),
    )
