"""Unit tests of the management surface beyond the seed: input checks, wire format, pacing, paging."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from airflow_provider_baseten.client import ratelimit as _ratelimit
from airflow_provider_baseten.client.logs import LogPager
from airflow_provider_baseten.client.routes import ENDPOINTS, endpoint
from airflow_provider_baseten.exceptions import (
    BasetenError,
    BasetenGatewayUnsupportedError,
    BasetenNotFoundError,
    BasetenValidationError,
)
from airflow_provider_baseten.models import LogLine
from tests.conftest import SPECS as SPECS_DIR
from tests.unit._support import DEP, KEY, Recorder, make_hook

NEW = [
    "list_training_projects",
    "get_training_project",
    "create_training_project",
    "pause_promotion",
    "resume_promotion",
    "force_cancel_promotion",
    "force_roll_forward_promotion",
    "retry_production_deployment",
    "retry_development_deployment",
    "retry_deployment",
    "get_deployment_logs",
    "get_environment_logs",
    "get_deployment_metrics",
]


def _spec_has_body(ep_name: str) -> bool:
    spec = json.loads((SPECS_DIR / "openapi-management.json").read_text())
    ep = endpoint(ep_name)
    shape = ep.path.replace("{training_project_id}", "{}").replace("{deployment_id}", "{}")
    for path, ops in spec["paths"].items():
        normalised = path.replace("{training_project_id}", "{}").replace("{deployment_id}", "{}")
        if normalised == shape and ep.method.lower() in ops:
            return "requestBody" in ops[ep.method.lower()]
    raise AssertionError(f"{ep_name} is not in Baseten's spec")


def test_the_upserts_are_by_name_and_the_limited_endpoints_are_rate_limited() -> None:
    upserts = {"upsert_secret", "create_training_project", "upsert_team_secret", "create_team_training_project"}
    assert {ep.name for ep in ENDPOINTS if ep.upsert} == upserts  # the team twins repeat like their rows
    limited = {ep.name for ep in ENDPOINTS if ep.rate_limit}
    assert limited >= {"activate_deployment", "deactivate_environment", "retry_deployment"}
    assert limited >= {"activate_production_deployment", "deactivate_production_deployment"}  # same buckets


BAD_CALLS = [
    ("get_deployment_logs", (DEP,), {"limit": 0}, "limit"),
    ("get_deployment_logs", (DEP,), {"limit": 1001}, "limit"),
    ("get_deployment_logs", (DEP,), {"min_level": "FATAL"}, "min_level"),
    ("get_deployment_logs", (DEP,), {"direction": "up"}, "direction"),
    ("get_deployment_logs", (DEP,), {"start_epoch_millis": 2, "end_epoch_millis": 1}, "start_epoch_millis"),
    ("get_deployment_logs", (DEP,), {"start_epoch_millis": 0, "end_epoch_millis": 8 * 86400_000}, "start_epoch_millis"),
    ("get_deployment_logs", (DEP,), {"start_epoch_millis": "yesterday"}, "start_epoch_millis"),
    ("get_deployment_logs", (DEP,), {"includes": ["x"] * 9}, "includes"),
    ("get_deployment_logs", (DEP,), {"includes": "x"}, "includes"),
    ("get_deployment_logs", (DEP,), {"grep": "x"}, "grep"),
    ("get_environment_logs", ("staging",), {"search_pattern": "x" * 300}, "search_pattern"),
    ("get_deployment_logs", ("bad/id",), {}, "deployment_id"),
    ("iter_deployment_logs", (DEP,), {"page_size": 0}, "page_size"),
    ("iter_deployment_logs", (DEP,), {"limit": -1}, "limit"),
    ("get_deployment_metrics", (DEP,), {"start_epoch_millis": 1}, "mode"),
    ("get_deployment_metrics", (DEP,), {"mode": "HOURLY"}, "mode"),
    ("get_deployment_metrics", (DEP,), {"mode": "SERIES", "metrics": "baseten_replicas_active"}, "metrics"),
    ("get_deployment_metrics", (DEP,), {"mode": "SERIES", "metrics": []}, "metrics"),
    ("create_training_project", ("",), {}, "name"),
    ("create_training_project", (None,), {}, "name"),
    ("get_or_create_training_project", ("  ",), {}, "name"),
    ("retry_deployment", ("../x",), {}, "deployment_id"),
    ("pause_promotion", ("",), {}, "environment"),
    ("get_training_job_logs", ("tp", "tj"), {"min_level": "LOUD"}, "min_level"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "field"), BAD_CALLS)
def test_bad_input_is_a_typed_error_before_any_request(method: str, args: tuple, kwargs: dict, field: str) -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={}))
    hook = make_hook(rec)
    with pytest.raises(BasetenValidationError) as err:
        result = getattr(hook, method)(*args, **kwargs)
        if method.startswith("iter_"):
            next(iter(result))
    assert err.value.field == field and err.value.status_code is None
    assert rec.count == 0


def test_get_or_create_refuses_an_ambiguous_name() -> None:
    projects = {"training_projects": [{"id": "a1", "name": "sft"}, {"id": "b2", "name": "sft"}]}
    rec = Recorder(lambda r: httpx.Response(200, json=projects))
    with pytest.raises(BasetenError, match=r"2 training projects are named 'sft' \(ids \['a1', 'b2'\]\)"):
        make_hook(rec).get_or_create_training_project("sft")
    assert [r.method for r in rec.requests] == ["GET"]  # nothing created


def test_get_or_create_creates_only_when_missing() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"training_projects": [{"id": "a1", "name": "other"}]})
        return httpx.Response(
            200, json={"training_project": {"id": "n3", **json.loads(request.content)["training_project"]}}
        )

    rec = Recorder(respond)
    project = make_hook(rec).get_or_create_training_project("sft")
    assert project.id == "n3" and [r.method for r in rec.requests] == ["GET", "POST"]
    assert json.loads(rec.requests[1].content) == {"training_project": {"name": "sft"}}


def test_gateway_refuses_an_unlisted_endpoint_before_sending() -> None:
    rec = Recorder(lambda r: httpx.Response(404, json={"data": None, "error": "Not Found"}))
    for url_format in ("new", "old", "auto"):
        with pytest.raises(BasetenGatewayUnsupportedError, match="does not list that endpoint") as err:
            make_hook(rec, gateway="lowcodeapi", url_format=url_format).get_training_project("proj1234")
        assert KEY not in str(err.value) and isinstance(err.value, BasetenNotFoundError)
    assert rec.requests == []  # nothing sent
    # An endpoint the gateway documents keeps the plain not-found error.
    with pytest.raises(BasetenNotFoundError) as plain:
        make_hook(rec, gateway="lowcodeapi", url_format="new").get_model("nope1234")
    assert not isinstance(plain.value, BasetenGatewayUnsupportedError)


def test_pacing_reserves_a_sliding_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(_ratelimit.time, "monotonic", lambda: clock[0])
    limiter = _ratelimit.WindowLimiter(3, 60.0)
    waits = [limiter.reserve() for _ in range(5)]
    per = 60.0 + _ratelimit.MARGIN
    assert waits == [0.0, 0.0, 0.0, per, per]  # the 4th and 5th wait for the 1st and 2nd to leave the window
    clock[0] += per + 1
    assert limiter.reserve() == 0.0  # slots 4 and 5 (at +per) are in the window, slot 1 is not


def test_rate_limited_endpoints_wait_for_their_slot_sync_and_async() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"success": True}))
    hook = make_hook(rec)
    for _ in range(22):
        hook.activate_deployment(DEP)
    assert rec.count == 22 and len(hook.sleeps) == 2 and all(s > 55 for s in hook.sleeps)
    for _ in range(5):
        hook.deactivate_deployment(DEP)  # another bucket: no wait
    assert len(hook.sleeps) == 2

    async def retries() -> None:
        for _ in range(11):
            await retry_hook.aretry_deployment(DEP)

    retry_rec = Recorder(lambda r: httpx.Response(200, json={"retried": False, "deployment": {"id": DEP}}))
    retry_hook = make_hook(retry_rec)
    asyncio.run(retries())
    assert retry_rec.count == 11 and len(retry_hook.sleeps) == 1 and retry_hook.sleeps[0] > 55  # 10 a minute


T0 = 1_780_000_000_000  # an epoch millisecond


def _line(ms: int, i: int, replica: str = "r1") -> LogLine:
    return LogLine(timestamp=str((T0 + ms) * 1_000_000 + i), message=f"m{ms}-{i}", replica=replica)


def test_pager_moves_back_to_the_oldest_millisecond_and_drops_repeats() -> None:
    pager = LogPager(None, None, None, 3, None)
    assert pager.query() == {"start_epoch_millis": None, "end_epoch_millis": None, "limit": 3, "direction": "desc"}
    first = pager.accept([_line(9, 0), _line(8, 1), _line(8, 0)])
    assert len(first) == 3 and pager.end == T0 + 8 and pager.start == T0 + 9 - 30 * 60 * 1000
    second = pager.accept([_line(8, 1), _line(8, 0), _line(7, 0)])  # the boundary comes back
    assert [x.message for x in second] == ["m7-0"] and pager.end == T0 + 7
    third = pager.accept([_line(7, 0)])
    assert third == [] and pager.done


def test_pager_keeps_only_the_boundary_keys() -> None:
    pager = LogPager(T0, None, None, 2, None)
    pager.accept([_line(50, 0), _line(40, 0)])
    pager.accept([_line(40, 0), _line(30, 0)])
    assert {k[0] for k in pager.seen} == {T0 + 30}  # memory stays flat over any window


def test_error_lines_are_redacted_before_they_reach_an_event() -> None:
    from airflow_provider_baseten.client.logs import format_lines
    from airflow_provider_baseten.client.redact import register_secret

    register_secret("hf-secret-9d8c7b6a5f4e")
    lines = format_lines([_line(2, 0), LogLine(timestamp="1", message="token=hf-secret-9d8c7b6a5f4e", level="ERROR")])
    assert len(lines) == 2 and "hf-secret-9d8c7b6a5f4e" not in " ".join(lines)
    assert lines[0].endswith("token=***") and lines[1].endswith("m2-0")  # oldest first
