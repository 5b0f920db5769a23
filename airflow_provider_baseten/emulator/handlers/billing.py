"""The caller, teams, cost and capacity in the emulated API: ``users/me``, users, teams, Model APIs, instance types
and prices, the billing usage summary and training GPU capacity. (The team-scoped twins of workspace calls are
dispatched by :meth:`.EmulatorState.handle` after :meth:`BillingHandlers._team` checks the team.)

Usage is computed from the emulator's clock and its own objects at fixed prices (``objects.INSTANCE_TYPES``,
``MODEL_API_TOKEN_PRICES``), so a test can assert exact dollars:

* a deployment bills one replica of ``INSTANCE_TYPE`` for every whole minute from its creation to now;
* a training job bills its instance type (from ``compute.accelerator``) times ``compute.node_count`` from its
  creation until it ends (or now): its ``minutes`` are instance-minutes (node count x whole minutes);
* a Model APIs call bills its prompt and completion tokens, on the day it was served.

Minutes are counted per UTC day (whole minutes of the part of the interval inside that day and inside the
asked range); an item's minutes are the sum of its days'. A key without billing access (``set_billing_access``)
gets 403 from the usage summary.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.objects import (
    INSTANCE_TYPE,
    INSTANCE_TYPES,
    MODEL_API_TOKEN_PRICES,
    MODEL_APIS,
    TEAM,
    TEAM_ID,
    TRAINING_GPU_CAPACITY,
    USER,
    USERS,
    ApiError,
    iso,
    price_of,
)

_DAY = 86400.0
_MAX_RANGE = timedelta(days=31)


def _when(name: str, value: Any) -> float:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"{name} must be an ISO 8601 date-time") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _days(lo: float, hi: float) -> list[tuple[str, int]]:
    """``(UTC date, whole minutes)`` of ``[lo, hi)`` in each day it touches (days with no whole minute left out)."""
    out = []
    day = datetime.fromtimestamp(lo, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    while day.timestamp() < hi:
        start = day.timestamp()
        minutes = int((min(hi, start + _DAY) - max(lo, start)) // 60)
        if minutes > 0:
            out.append((day.date().isoformat(), minutes))
        day += timedelta(days=1)
    return out


def _paged(items: list[dict[str, Any]], query: dict[str, Any]) -> dict[str, Any]:
    """``{items, pagination}``: ``limit`` items from the ``cursor`` (the emulator's cursor is an offset)."""
    cursor = str(query.get("cursor") or "0")
    if not cursor.isdigit():  # the emulator's cursors are offsets it handed out
        raise ApiError(400, f"Invalid cursor {cursor[:40]!r}: pass the cursor of the previous page.")
    start = int(cursor)
    limit = int(query.get("limit") or 100)
    more = start + limit < len(items)
    return {
        "items": items[start : start + limit],
        "pagination": {"has_more": more, "cursor": str(start + limit) if more else None},
    }


def _money(value: Decimal) -> str:
    return format(value.normalize(), "f")


class BillingHandlers(StateCore):
    """Users, instance types, prices, usage and training capacity. Handlers are ``_h_<endpoint name>``."""

    billing_access: bool
    model_api_usage: list[tuple[float, str, int, int]]  # (served at, model, input tokens, output tokens)
    env_group_access: dict[str, dict[str, Any]]  # environment name -> {is_restricted, user_ids}

    def _h_get_current_user(self, *_: Any) -> Any:
        return 200, dict(USER)

    def _h_list_users(self, params: Any, query: dict[str, Any], *_: Any) -> Any:
        return 200, _paged([dict(u) for u in USERS], query)

    def _h_get_user(self, params: dict[str, str], *_: Any) -> Any:
        found = next((u for u in USERS if u["user_id"] == params["user_id"]), None)
        if found is None:
            raise ApiError(404, f"User {params['user_id']} not found")
        return 200, dict(found)

    def _h_list_model_apis(self, params: Any, query: dict[str, Any], *_: Any) -> Any:
        added_only = str(query.get("added_only", "false")).lower() == "true"
        items = [dict(m) for m in MODEL_APIS if m["org_details"] or not added_only]
        return 200, _paged(items, query)

    def _h_get_model_api(self, params: dict[str, str], *_: Any) -> Any:
        found = next((m for m in MODEL_APIS if m["name"] == params["model_api_name"]), None)
        if found is None:
            raise ApiError(404, f"Model API {params['model_api_name']} not found")
        return 200, dict(found)

    def _team_json(self) -> dict[str, Any]:
        return {"id": TEAM_ID, "name": TEAM, "default": True, "created_at": "2026-01-01T00:00:00Z"}

    def _team(self, team_id: str) -> dict[str, Any]:
        if team_id != TEAM_ID:
            raise ApiError(404, f"Team {team_id} not found")
        return self._team_json()

    def _h_list_teams(self, *_: Any) -> Any:
        return 200, {"teams": [self._team_json()]}

    def _h_get_team(self, params: dict[str, str], *_: Any) -> Any:
        return 200, self._team(params["team_id"])

    # -- environment groups: one per environment name across the workspace's models --------------------
    def _group_json(self, name: str) -> dict[str, Any]:
        access = self.env_group_access.get(name, {"is_restricted": False, "user_ids": []})
        users = [dict(u) for u in USERS if u["user_id"] in access["user_ids"]]
        users = [{k: u[k] for k in ("user_id", "email", "name")} for u in users]
        manage = {"is_restricted": access["is_restricted"], "users": users}
        return {"name": name, "team_id": TEAM_ID, "team_name": TEAM, "manage_access": manage}

    def _group_names(self) -> list[str]:
        return sorted({env for model in self.models.values() for env in model.environments})

    def _h_list_environment_groups(self, *_: Any) -> Any:
        items = [self._group_json(n) for n in self._group_names()]
        return 200, {"items": items, "pagination": {"has_more": False, "cursor": None}}

    def _h_get_environment_group(self, params: dict[str, str], *_: Any) -> Any:
        if params["env_name"] not in self._group_names():
            raise ApiError(404, f"Environment group {params['env_name']} not found")
        return 200, self._group_json(params["env_name"])

    def _h_update_environment_group(self, params: dict[str, str], query: Any, body: Any, _: Any) -> Any:
        self._h_get_environment_group(params)
        access = (body or {}).get("manage_access") if isinstance(body, dict) else None
        if isinstance(access, dict):
            user_ids = list(access.get("user_ids") or [])
            unknown = sorted(set(user_ids) - {u["user_id"] for u in USERS})
            if unknown:
                raise ApiError(400, f"Unknown user ids: {', '.join(unknown)}")
            self.env_group_access[params["env_name"]] = {
                "is_restricted": bool(access["is_restricted"]),
                "user_ids": user_ids,
            }
        return 200, self._group_json(params["env_name"])

    def _h_list_instance_types(self, *_: Any) -> Any:
        return 200, {"instance_types": [dict(t) for t, _price in INSTANCE_TYPES]}

    def _h_list_instance_type_prices(self, *_: Any) -> Any:
        return 200, {"instance_types": [{"instance_type": dict(t), "price": float(p)} for t, p in INSTANCE_TYPES]}

    def _h_get_training_capacity(self, *_: Any) -> Any:
        now = self.clock.now()
        running = len([job for job in self.jobs.values() if job.status(now)[0] == "TRAINING_JOB_RUNNING"])
        items = [
            {"gpu_type": gpu, "baseline": base, "limit": limit, "usage_count": running if gpu == "A10G" else 0}
            for gpu, (base, limit) in TRAINING_GPU_CAPACITY.items()
        ]
        team = [{"team_id": TEAM_ID, "team_name": TEAM, **item} for item in items]
        return 200, {"gpu_capacities": items, "team_gpu_capacities": team}

    def _h_get_training_job_queue_context(self, params: dict[str, str], *_: Any) -> Any:
        job = self.jobs.get(params["training_job_id"])
        if job is None:
            raise ApiError(404, f"Training job {params['training_job_id']} not found")
        now = self.clock.now()
        released = job.created + job.durations.training_pending  # the emulator's PENDING lasts this long
        done = released <= now
        base, limit = TRAINING_GPU_CAPACITY["A10G"]
        capacity = {"gpu_type": "A10G", "max_gpus": limit, "min_gpus": base, "last_modified": iso(job.created - 86400)}
        return 200, {
            "target_job_id": job.id,
            "target_job_name": job.name,
            "gpu_type": "A10G",
            "requested_gpus": 1,
            "submitted_at": iso(job.created),
            "released_at": iso(released) if done else None,
            "pending_seconds": round(released - job.created) if done else None,
            "org_capacity": capacity,
            "team_capacity": None,
            "active_at_submit": [],  # the emulator does not reconstruct the pool's history
            "pending_ahead_at_submit": [],
            "events": [],
            "events_window_end": iso(released if done else now),
        }

    def record_model_api_usage(self, model: str, input_tokens: int, output_tokens: int) -> None:
        """Remember a served Model APIs call for the usage summary."""
        with self.lock:
            self.model_api_usage.append((self.clock.now(), model, input_tokens, output_tokens))

    def _h_get_usage_summary(self, params: Any, query: dict[str, Any], *_: Any) -> Any:
        if not self.billing_access:
            raise ApiError(403, "This API key does not have billing access.")
        start, end = _when("start_date", query.get("start_date")), _when("end_date", query.get("end_date"))
        if end <= start:
            raise ApiError(400, "end_date must be after start_date")
        if end - start > _MAX_RANGE.total_seconds():
            raise ApiError(400, "The date range may not exceed 31 days")
        now = self.clock.now()
        price = Decimal(price_of(INSTANCE_TYPE["id"]))
        dedicated = []
        for model in self.models.values():
            for dep in model.deployments.values():
                days = _days(max(dep.created, start), min(now, end))
                if days:
                    resource = {"id": dep.id, "kind": "MODEL_DEPLOYMENT", "name": dep.name, "model_name": model.name}
                    dedicated.append(self._minutes_item(resource, days, price, INSTANCE_TYPE["id"], requests=True))
        training = []
        for job in self.jobs.values():
            status, since = job.status(now)
            ended = since if not status.endswith(("_PENDING", "_QUEUED", "_CREATED", "_DEPLOYING", "_RUNNING")) else now
            itype, nodes = job.compute
            days = [(d, n * nodes) for d, n in _days(max(job.created, start), min(ended, end))]
            if days:
                billed = {"id": job.id, "kind": "TRAINING_JOB", "name": job.name}
                job_price = Decimal(price_of(itype["id"]))
                training.append(self._minutes_item(billed, days, job_price, itype["id"], requests=False))
        return 200, {
            "dedicated_usage": self._part(dedicated, minutes=True),
            "training_usage": self._part(training, minutes=True),
            "model_apis_usage": self._part(self._model_api_items(start, end), minutes=False),
        }

    @staticmethod
    def _minutes_item(
        resource: dict[str, Any], days: list[tuple[str, int]], price: Decimal, instance_type: str, requests: bool
    ) -> Any:
        extra = {"inference_requests": 0} if requests else {}  # the emulator does not count requests per day
        daily = [{"date": d, "subtotal": _money(price * n), "minutes": n, **extra} for d, n in days]
        minutes = sum(n for _d, n in days)
        resource = {**resource, "is_deleted": False, "instance_type": instance_type}
        return {
            "billable_resource": resource,
            "subtotal": _money(price * minutes),
            "minutes": minutes,
            **extra,
            "daily": daily,
        }

    def _model_api_items(self, start: float, end: float) -> list[dict[str, Any]]:
        p_in, p_out = (Decimal(p) for p in MODEL_API_TOKEN_PRICES)
        by_model: dict[str, dict[str, list[int]]] = {}
        for t, model, tokens_in, tokens_out in self.model_api_usage:
            if start <= t < end:
                day = datetime.fromtimestamp(t, timezone.utc).date().isoformat()
                counts = by_model.setdefault(model, {}).setdefault(day, [0, 0])
                counts[0] += tokens_in
                counts[1] += tokens_out
        items = []
        for model, days in by_model.items():
            daily = [
                {
                    "date": d,
                    "subtotal": _money(p_in * i + p_out * o),
                    "input_tokens": i,
                    "output_tokens": o,
                    "cached_input_tokens": 0,
                }
                for d, (i, o) in sorted(days.items())
            ]
            tokens_in = sum(i for i, _o in days.values())
            tokens_out = sum(o for _i, o in days.values())
            items.append(
                {
                    "model_name": model,
                    "model_family": None,
                    "subtotal": _money(p_in * tokens_in + p_out * tokens_out),
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cached_input_tokens": 0,
                    "daily": daily,
                }
            )
        return items

    @staticmethod
    def _part(items: list[dict[str, Any]], minutes: bool) -> dict[str, Any] | None:
        """A usage part (no credits: ``total`` is the ``subtotal``); ``None`` when nothing was used."""
        if not items:
            return None
        subtotal = _money(sum((Decimal(i["subtotal"]) for i in items), Decimal(0)))
        part: dict[str, Any] = {"subtotal": subtotal, "credits_used": "0", "total": subtotal, "breakdown": items}
        if minutes:
            part["minutes"] = sum(i["minutes"] for i in items)
        return part
