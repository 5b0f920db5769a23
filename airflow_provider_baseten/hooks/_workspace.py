"""The caller, cost and capacity: who the key is, instance types and their prices, billing usage, training GPUs."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.hooks._api import _Call, _for_team, _m, _v
from airflow_provider_baseten.hooks._core import _HookCore

if TYPE_CHECKING:
    from airflow_provider_baseten.models import (
        EnvironmentGroup,
        InstanceType,
        InstanceTypePrice,
        ModelApi,
        ModelApiPage,
        Team,
        TrainingCapacity,
        TrainingQueueContext,
        UsageSummary,
        UserInfo,
        UserPage,
    )

#: Baseten's longest usage-summary range.
MAX_USAGE_RANGE = timedelta(days=31)


def get_current_user(hook: _HookCore, /) -> _Call[UserInfo]:
    """The user the connection's API key belongs to (``users/me``): the cheapest authenticated call."""
    m = _m()
    return _Call("get_current_user", parse=lambda d: m.parse(m.UserInfo, d, "get_current_user"))


def list_instance_types(hook: _HookCore, /) -> _Call[list[InstanceType]]:
    """The instance types the workspace can use (CPU, memory, GPU type and count)."""
    m = _m()
    return _Call(
        "list_instance_types",
        parse=lambda d: m.parse_list(m.InstanceType, d, "instance_types", "list_instance_types"),
    )


def list_instance_type_prices(hook: _HookCore, /) -> _Call[list[InstanceTypePrice]]:
    """Each instance type with its price in USD per minute (``InstanceTypePrice.price``, a ``Decimal``)."""
    m = _m()
    return _Call(
        "list_instance_type_prices",
        parse=lambda d: m.parse_list(m.InstanceTypePrice, d, "instance_types", "list_instance_type_prices"),
    )


def _instant(name: str, value: Any) -> datetime:
    """``value`` (a date, a datetime or an ISO 8601 string) as an aware UTC datetime; a date is its midnight UTC."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    when: Any = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
    elif isinstance(value, date) and not isinstance(value, datetime):
        when = datetime(value.year, value.month, value.day)
    if not isinstance(when, datetime):
        raise BasetenValidationError(
            f"{name} must be a date, a datetime or an ISO 8601 string (e.g. '2026-07-01'), got {value!r}.",
            field=name,
        )
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def get_usage_summary(hook: _HookCore, /, start_date: Any, end_date: Any) -> _Call[UsageSummary]:
    """Billing usage between two instants (at most 31 days apart): dedicated deployments, training jobs and Model
    APIs, each with a per-item breakdown and daily items; USD as ``Decimal``.

    The key must have billing access: without it Baseten answers 403, raised as
    :class:`~airflow_provider_baseten.exceptions.BasetenBillingAccessError`.

    :param start_date: Start of the range: a ``date`` (its midnight UTC), a ``datetime`` (naive is UTC) or an
        ISO 8601 string.
    :param end_date: End of the range, after ``start_date`` and at most 31 days later.
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    start, end = _instant("start_date", start_date), _instant("end_date", end_date)
    if end <= start:
        raise BasetenValidationError(
            f"end_date ({end.isoformat()}) must be after start_date ({start.isoformat()}).", field="end_date"
        )
    if end - start > MAX_USAGE_RANGE:
        raise BasetenValidationError(
            f"Baseten's usage summary covers at most 31 days; {start.date()} to {end.date()} is "
            f"{(end - start).days} days. Ask for several ranges and add them up.",
            field="end_date",
        )
    m = _m()
    query = {"start_date": start.isoformat().replace("+00:00", "Z"), "end_date": end.isoformat().replace("+00:00", "Z")}
    return _Call("get_usage_summary", query=query, parse=lambda d: m.parse(m.UsageSummary, d, "get_usage_summary"))


def get_training_capacity(hook: _HookCore, /) -> _Call[TrainingCapacity]:
    """Training GPU capacity per GPU type (limit and GPUs in use; also per team): why a job may wait in PENDING."""
    m = _m()
    return _Call("get_training_capacity", parse=lambda d: m.parse(m.TrainingCapacity, d, "get_training_capacity"))


def get_training_job_queue_context(hook: _HookCore, /, training_job_id: str) -> _Call[TrainingQueueContext]:
    """Why a training job waited in PENDING: its GPU pool's capacity and the jobs that held it (a diagnostic)."""
    m = _m()
    return _Call(
        "get_training_job_queue_context",
        {"training_job_id": _v("training_job_id", training_job_id)},
        parse=lambda d: m.parse(m.TrainingQueueContext, d, "get_training_job_queue_context"),
    )


def _page_query(cursor: str | None, limit: int | None) -> dict[str, Any]:
    """The ``cursor`` and ``limit`` (1 to 1000) of a paged list, checked before sending."""
    from airflow_provider_baseten.client.checks import optional_int_in

    return {"cursor": cursor, "limit": optional_int_in("limit", limit, 1, 1000)}


def _page(model: str, where: str) -> Any:
    """A parser of ``{items, pagination: {has_more, cursor}}`` into the page model called ``model``."""
    m = _m()

    def parse(d: Any) -> Any:
        pagination = d.get("pagination") if isinstance(d, dict) else None
        flat = {**d, **pagination} if isinstance(pagination, dict) else d
        return m.parse(getattr(m, model), flat, where)

    return parse


def list_model_apis(
    hook: _HookCore, /, *, cursor: str | None = None, limit: int | None = None, added_only: bool | None = None
) -> _Call[ModelApiPage]:
    """One page of Baseten's Model APIs (name, invoke URL, context length, USD per million tokens).

    :param cursor: The previous page's ``cursor`` (``None``: the first page).
    :param limit: Items per page, 1 to 1000 (Baseten's default 100).
    :param added_only: Only the Model APIs this workspace has added.
    """
    query = {**_page_query(cursor, limit), "added_only": added_only}
    return _Call("list_model_apis", query=query, parse=_page("ModelApiPage", "list_model_apis"))


def get_model_api(hook: _HookCore, /, model_api_name: str) -> _Call[ModelApi]:
    """One Model API by name."""
    m = _m()
    return _Call(
        "get_model_api",
        {"model_api_name": _v("model_api_name", model_api_name)},
        parse=lambda d: m.parse(m.ModelApi, d, "get_model_api"),
    )


def list_users(hook: _HookCore, /, *, cursor: str | None = None, limit: int | None = None) -> _Call[UserPage]:
    """One page of the workspace's users.

    :param cursor: The previous page's ``cursor`` (``None``: the first page).
    :param limit: Items per page, 1 to 1000 (Baseten's default 100).
    """
    return _Call("list_users", query=_page_query(cursor, limit), parse=_page("UserPage", "list_users"))


def get_user(hook: _HookCore, /, user_id: str) -> _Call[UserInfo]:
    """One user of the workspace by id."""
    m = _m()
    return _Call("get_user", {"user_id": _v("user_id", user_id)}, parse=lambda d: m.parse(m.UserInfo, d, "get_user"))


def list_teams(hook: _HookCore, /) -> _Call[list[Team]]:
    """The workspace's teams (``default`` marks the one calls without ``team_id=`` apply to)."""
    m = _m()
    return _Call("list_teams", parse=lambda d: m.parse_list(m.Team, d, "teams", "list_teams"))


def get_team(hook: _HookCore, /, team_id: str) -> _Call[Team]:
    """One team by id."""
    m = _m()
    return _Call("get_team", {"team_id": _v("team_id", team_id)}, parse=lambda d: m.parse(m.Team, d, "get_team"))


def list_environment_groups(hook: _HookCore, /, *, team_id: str | None = None) -> _Call[list[EnvironmentGroup]]:
    """The environment groups (one per environment name) of the default team, or of ``team_id``'s team.

    :param team_id: A team's id: that team's groups instead of the default team's.
    """
    m = _m()
    call = _Call(
        "list_environment_groups",
        parse=lambda d: m.parse_list(m.EnvironmentGroup, d, "items", "list_environment_groups"),
    )
    return _for_team(call, team_id)


def get_environment_group(
    hook: _HookCore, /, environment: str, *, team_id: str | None = None
) -> _Call[EnvironmentGroup]:
    """The environment group of ``environment`` (e.g. ``"production"``): who may manage it.

    :param team_id: A team's id: that team's group instead of the default team's.
    """
    m = _m()
    call = _Call(
        "get_environment_group",
        {"env_name": _v("environment", environment)},
        parse=lambda d: m.parse(m.EnvironmentGroup, d, "get_environment_group"),
    )
    return _for_team(call, team_id)


def update_environment_group(
    hook: _HookCore,
    /,
    environment: str,
    *,
    is_restricted: bool,
    user_ids: list[str] | None = None,
    team_id: str | None = None,
) -> _Call[EnvironmentGroup]:
    """Restrict (or open) who may manage the environments called ``environment`` across the team's models.

    :param is_restricted: ``True``: only ``user_ids`` may manage them; ``False``: anyone in the team.
    :param user_ids: The users granted manage access (replaces the list; ``None`` leaves Baseten's default).
    :param team_id: A team's id: that team's group instead of the default team's.
    """
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if not isinstance(is_restricted, bool):
        raise BasetenValidationError(
            f"is_restricted must be True or False, got {is_restricted!r}.", field="is_restricted"
        )
    access: dict[str, Any] = {"is_restricted": is_restricted}
    if user_ids is not None:
        if isinstance(user_ids, str) or not all(isinstance(u, str) for u in user_ids):
            raise BasetenValidationError(f"user_ids must be a list of user ids, got {user_ids!r}.", field="user_ids")
        access["user_ids"] = list(user_ids)
    m = _m()
    call = _Call(
        "update_environment_group",
        {"env_name": _v("environment", environment)},
        body={"manage_access": access},
        parse=lambda d: m.parse(m.EnvironmentGroup, d, "update_environment_group"),
    )
    return _for_team(call, team_id)
