"""The caller, cost and capacity against the emulator, over HTTP: ``users/me``, instance type prices, the billing
usage summary in exact dollars (from the emulator's clock, objects and fixed prices), training GPU capacity, and
secret deletion."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_baseten.emulator.config import Durations
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenBillingAccessError,
    BasetenGatewayUnsupportedError,
    BasetenNotFoundError,
    BasetenValidationError,
)

from .conftest import make_hook

MODEL = "echo1234"
PRICE = Decimal("0.02012")  # the emulator's A10G, USD per minute
JOB = {"image": {"base_image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"}, "name": "ft-run"}


def served(emu: BasetenEmulator, endpoint: str) -> list[int]:
    return [r["status"] for r in emu.requests() if r["endpoint"] == endpoint]


def test_current_user_and_test_connection_use_users_me(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    me = hook.get_current_user()
    assert me.user_id == "user1234" and me.email == "airflow@example.com"
    assert asyncio.run(hook.aget_current_user()) == me
    ok, message = hook.test_connection()
    assert ok and message.endswith("as airflow@example.com, workspace emulator-team.")
    assert served(emulator, "get_current_user") == [200, 200, 200] and served(emulator, "list_models") == []
    # The gateway's reference has no users/me: test_connection lists models there instead.
    ok, message = make_hook(emulator, gateway="lowcodeapi").test_connection()
    assert ok and "model(s) visible" in message and served(emulator, "get_current_user") == [200, 200, 200]


def test_instance_types_and_prices_per_minute(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    types = {t.id: t for t in hook.list_instance_types()}
    assert types["A10Gx4x16"].gpu_type == "A10G" and types["CPUx1x2"].gpu_count == 0
    prices = {p.instance_type.id: p for p in asyncio.run(hook.alist_instance_type_prices())}
    assert prices["A10Gx4x16"].price == PRICE and prices["A10Gx4x16"].price_per_hour == Decimal("1.20720")
    assert set(prices) == set(types)


def test_usage_summary_in_exact_dollars_per_item_and_day(emulator_factory: Any) -> None:
    emu = emulator_factory(time_scale=0, durations=Durations(training_running=600))
    now = emu.state.clock.now()
    emu.advance((now // 86400 + 1) * 86400 + 570 - now)  # 00:09:30 UTC of a day D
    t0 = emu.state.clock.now()
    hook = make_hook(emu)
    dep = emu.create_deployment(MODEL, "v9", status="ACTIVE")["id"]
    job = hook.create_training_job("proj1234", JOB)
    chat = hook.chat_completions([{"role": "user", "content": "three little words"}], model="llm-x", model_apis=True)
    emu.advance(86400)  # to 00:09:30 of D+1: the deployment ran 1430.5 minutes on D and 9.5 on D+1
    day = datetime.fromtimestamp(t0, timezone.utc).date()

    summary = hook.get_usage_summary(day, day + timedelta(days=2))

    assert summary.dedicated_usage is not None and summary.training_usage is not None
    mine = next(i for i in summary.dedicated_usage.breakdown if i.billable_resource.id == dep)
    assert mine.billable_resource.kind == "MODEL_DEPLOYMENT" and mine.billable_resource.instance_type == "A10Gx4x16"
    assert [(d.date, d.minutes, d.subtotal) for d in mine.daily] == [
        (day.isoformat(), 1430, Decimal("28.7716")),
        ((day + timedelta(days=1)).isoformat(), 9, Decimal("0.18108")),
    ]
    assert mine.minutes == 1439 and mine.subtotal == Decimal("28.95268")
    items = summary.dedicated_usage.breakdown
    assert summary.dedicated_usage.subtotal == sum((i.subtotal for i in items), Decimal(0))
    assert summary.dedicated_usage.minutes == sum(i.minutes for i in items)
    # The training job ran 604 s (1 + 1 + 2 + 600): 10 whole minutes.
    trained = next(i for i in summary.training_usage.breakdown if i.billable_resource.id == job.id)
    assert trained.billable_resource.kind == "TRAINING_JOB" and (trained.minutes, trained.subtotal) == (
        10,
        Decimal("0.2012"),
    )
    # Model APIs bill tokens: $0.50 per million in, $1.50 per million out.
    assert summary.model_apis_usage is not None
    (api,) = summary.model_apis_usage.breakdown
    assert chat.usage is not None
    tokens_in, tokens_out = chat.usage.prompt_tokens, chat.usage.completion_tokens
    assert (api.model_name, api.input_tokens, api.output_tokens) == ("llm-x", tokens_in, tokens_out)
    assert api.subtotal == Decimal("0.0000005") * tokens_in + Decimal("0.0000015") * tokens_out
    parts = (summary.dedicated_usage, summary.training_usage, summary.model_apis_usage)
    assert summary.total == sum((p.total for p in parts), Decimal(0))
    # A range before anything ran has no usage at all.
    empty = asyncio.run(hook.aget_usage_summary(day - timedelta(days=40), day - timedelta(days=35)))
    assert empty.dedicated_usage is None and empty.training_usage is None and empty.total == 0


def test_a_key_without_billing_access_gets_a_typed_403(emulator: BasetenEmulator) -> None:
    emulator.set_billing_access(False)
    with pytest.raises(BasetenBillingAccessError, match="no billing access") as err:
        make_hook(emulator).get_usage_summary("2026-07-01", "2026-07-02")
    assert err.value.status_code == 403 and isinstance(err.value, BasetenAuthError)
    assert served(emulator, "get_usage_summary") == [403]  # not retried


@pytest.mark.parametrize(
    ("start", "end", "says"),
    [
        (date(2026, 7, 1), date(2026, 8, 2), "at most 31 days"),
        ("2026-07-02", "2026-07-01", "must be after start_date"),
        ("yesterday", "2026-07-01", "ISO 8601"),
    ],
)
def test_usage_summary_range_is_checked_before_sending(
    emulator: BasetenEmulator, start: Any, end: Any, says: str
) -> None:
    with pytest.raises(BasetenValidationError, match=says):
        make_hook(emulator).get_usage_summary(start, end)
    assert served(emulator, "get_usage_summary") == []
    make_hook(emulator).get_usage_summary(date(2026, 7, 1), date(2026, 8, 1))  # exactly 31 days is fine


def test_training_capacity_counts_running_jobs(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator)
    idle = {c.gpu_type: c for c in hook.get_training_capacity().gpu_capacities}
    assert (idle["A10G"].limit, idle["A10G"].usage_count, idle["A10G"].available) == (8, 0, 8)
    hook.create_training_job("proj1234", JOB)
    emulator.advance(5)  # pending 1 s, created 1 s, deploying 2 s: running
    busy = asyncio.run(hook.aget_training_capacity())
    a10g = {c.gpu_type: c for c in busy.gpu_capacities}["A10G"]
    assert (a10g.usage_count, a10g.available) == (1, 7)
    assert busy.team_gpu_capacities[0].team_name == "emulator-team"


def test_delete_secret_then_it_is_gone(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    hook.upsert_secret("wandb_key", "s3cr3t-value-xyz")
    assert hook.delete_secret("wandb_key").name == "wandb_key"
    assert "wandb_key" not in {s.name for s in hook.list_secrets()}
    with pytest.raises(BasetenNotFoundError):  # deleting twice deletes one secret; the second is a 404
        asyncio.run(hook.adelete_secret("wandb_key"))


def test_the_new_routes_are_refused_through_the_gateway(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator, gateway="lowcodeapi")
    for call in (hook.get_current_user, hook.list_instance_type_prices, hook.get_training_capacity):
        with pytest.raises(BasetenGatewayUnsupportedError):
            call()
    assert [r for r in emulator.requests() if r["surface"] != "direct"] == []


def test_model_apis_catalogue_pages_and_one_by_name(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    first = hook.list_model_apis(limit=2)
    assert [m.name for m in first.items] == ["deepseek-v3", "gpt-oss-120b"] and first.has_more
    rest = asyncio.run(hook.alist_model_apis(cursor=first.cursor, limit=2))
    assert [m.name for m in rest.items] == ["llama-4-maverick"] and not rest.has_more and rest.cursor is None
    added = hook.list_model_apis(added_only=True)
    assert [m.name for m in added.items] == ["deepseek-v3", "llama-4-maverick"]
    one = hook.get_model_api("deepseek-v3")
    assert one.cost_per_million_input_tokens == Decimal("0.5") and one.rate_limits[0].threshold == 600
    with pytest.raises(BasetenNotFoundError):
        asyncio.run(hook.aget_model_api("nope"))
    with pytest.raises(BasetenValidationError, match="limit"):
        hook.list_model_apis(limit=0)
    assert served(emulator, "list_model_apis") == [200, 200, 200]  # the bad limit was not sent


def test_users_page_and_one_by_id(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    page = hook.list_users(limit=2)
    assert [u.user_id for u in page.items] == ["user1234", "user5678"] and page.has_more
    last = asyncio.run(hook.alist_users(cursor=page.cursor))
    assert [u.user_id for u in last.items] == ["user9012"] and last.items[0].email is None
    assert hook.get_user("user5678").email == "ops@example.com"
    assert asyncio.run(hook.aget_user("user1234")) == hook.get_current_user()
    with pytest.raises(BasetenNotFoundError):
        hook.get_user("nobody12")


def test_teams_and_team_scoped_calls_through_team_id(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    (team,) = hook.list_teams()
    assert team.default and hook.get_team(team.id) == team
    hook.upsert_secret("team_token", "t3am-s3cret-value", team_id=team.id)
    assert "team_token" in {s.name for s in asyncio.run(hook.alist_secrets(team_id=team.id))}
    assert hook.delete_secret("team_token", team_id=team.id).name == "team_token"
    assert {m.id for m in hook.list_models(team_id=team.id)} == {m.id for m in hook.list_models()}
    project = hook.create_training_project("team-sft", team_id=team.id)
    assert hook.create_training_project("team-sft", team_id=team.id).id == project.id  # an upsert by name
    assert hook.create_api_key("WORKSPACE_INVOKE", team_id=team.id).api_key
    slot = hook.prepare_model_upload(name="team-model", deployment={"config": {"model_name": "team-model"}})
    emulator.state.receive_upload(slot.s3_key, 1, ["config.yaml"], {"model_name": "team-model"})
    created = hook.create_model("team-model", slot.s3_key, {"config": {"model_name": "team-model"}}, team_id=team.id)
    assert created.model.name == "team-model" and served(emulator, "create_team_model") == [200]
    for name in ("upsert_team_secret", "list_team_secrets", "delete_team_secret", "list_team_models"):
        assert served(emulator, name) == [200], name
    assert served(emulator, "create_team_training_project") == [200, 200]
    with pytest.raises(BasetenNotFoundError):  # another team's secrets
        hook.list_secrets(team_id="other123")
    with pytest.raises(BasetenValidationError, match="team_id"):
        hook.list_models(team_id="a/b")


def test_queue_context_says_how_long_a_job_waited_in_pending(emulator: BasetenEmulator) -> None:
    emulator.set_time_scale(0)
    hook = make_hook(emulator)
    job = hook.create_training_job("proj1234", JOB)
    waiting = hook.get_training_job_queue_context(job.id)
    assert waiting.target_job_id == job.id and waiting.released_at is None and waiting.pending_seconds is None
    emulator.advance(5)
    released = asyncio.run(hook.aget_training_job_queue_context(job.id))
    assert released.pending_seconds == 1 and released.gpu_type == "A10G"  # the emulator's PENDING lasts 1 s
    assert released.org_capacity is not None and released.org_capacity["max_gpus"] == 8


def test_restrict_who_manages_production_then_open_it_again(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    names = {g.name for g in hook.list_environment_groups()}
    assert {"production", "staging"} <= names
    group = hook.update_environment_group("production", is_restricted=True, user_ids=["user5678"])
    assert group.manage_access.is_restricted and [u.email for u in group.manage_access.users] == ["ops@example.com"]
    assert asyncio.run(hook.aget_environment_group("production")) == group
    team = hook.list_teams()[0].id
    opened = hook.update_environment_group("production", is_restricted=False, user_ids=[], team_id=team)
    assert not opened.manage_access.is_restricted and opened.manage_access.users == []
    assert served(emulator, "update_team_environment_group") == [200]
    with pytest.raises(BasetenValidationError, match="is_restricted"):
        hook.update_environment_group("production", is_restricted="yes")  # type: ignore[arg-type]
    with pytest.raises(BasetenNotFoundError):
        hook.get_environment_group("nosuchenv")
