"""Every fact about an endpoint lives in its row of ``client/routes.py``, and the code reads it from there.

A row says its method, path, gateway path, whether it takes a body, whether it may be repeated once it may
have taken effect, and its rate limit. These tests prove that each write row says whether it may be
repeated, that the transport's repeat and pacing decisions read the row (swap the row, the decision
follows), and that no endpoint name is built from an f-string: names are written out once, in a row or in
the routes' lookup tables, so a reader can grep every name the provider can send.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import httpx
import pytest

from airflow_provider_baseten.client import routes
from airflow_provider_baseten.client.ratelimit import reset_rate_limits
from airflow_provider_baseten.exceptions import BasetenServerError, BasetenValidationError
from tests.unit._support import Recorder, make_hook

PACKAGE = Path(routes.__file__).resolve().parents[1]
NAMES = {ep.name for ep in routes.ENDPOINTS}


def test_every_write_row_says_whether_it_may_be_repeated() -> None:
    unstated = [ep.name for ep in routes.ENDPOINTS if ep.method != "GET" and ep.repeat is None]
    assert not unstated, f"say repeat='creates', 'upsert' or 'safe' on these rows: {unstated}"
    reads = [ep.name for ep in routes.ENDPOINTS if ep.method == "GET" and ep.repeat is not None]
    assert not reads, f"a GET is always safe to repeat; drop repeat= from {reads}"
    assert {ep.method for ep in routes.ENDPOINTS} <= {"GET", "POST", "PUT", "PATCH", "DELETE"}
    # Not vacuous: the creates the hook reconciles are classified so.
    creates = {ep.name for ep in routes.ENDPOINTS if ep.creates}
    assert {"create_training_job", "create_model", "production_async_predict", "create_api_key"} <= creates


def test_no_row_without_a_body_is_sent_one() -> None:
    hook = make_hook(Recorder(lambda r: httpx.Response(202)))
    with pytest.raises(BasetenValidationError, match="production_wake takes no request body"):
        hook.get_transport().request("production_wake", body={"x": 1}, model_id="abc123")


def _swap(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    """Replace endpoint ``name``'s row (same name, same path) with one that differs in ``changes``."""
    monkeypatch.setitem(routes.BY_NAME, name, dataclasses.replace(routes.endpoint(name), **changes))


@pytest.mark.parametrize(
    ("name", "repeat", "sent"),
    [
        ("create_api_key", "creates", 1),  # as the table says: a 502 after sending may have made the key
        ("create_api_key", "safe", 2),  # the same endpoint, its row swapped: now retried
        ("search_training_jobs", "safe", 2),
        ("search_training_jobs", "creates", 1),
    ],
)
def test_the_transport_repeat_decision_reads_only_the_row(
    monkeypatch: pytest.MonkeyPatch, name: str, repeat: str, sent: int
) -> None:
    _swap(monkeypatch, name, repeat=repeat)
    rec = Recorder(lambda r: httpx.Response(502) if rec.count == 1 else httpx.Response(200, json={"ok": True}))
    transport = make_hook(rec).get_transport()
    if sent == 1:
        with pytest.raises(BasetenServerError) as err:
            transport.request(name, body={})
        assert err.value.maybe_created
    else:
        assert transport.request(name, body={}) == {"ok": True}
    assert rec.count == sent


def test_the_transport_paces_by_the_rows_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_rate_limits()
    _swap(monkeypatch, "list_models", rate_limit=routes.RateLimit("test-bucket", 1, 60.0))
    hook = make_hook(Recorder(lambda r: httpx.Response(200, json={"models": []})))
    hook.get_transport().request("list_models")
    hook.get_transport().request("list_models")
    reset_rate_limits()
    assert len(hook.sleeps) == 1 and hook.sleeps[0] > 59  # type: ignore[attr-defined]


def test_every_looked_up_name_names_a_row() -> None:
    looked_up = set(routes.BY_TARGET.values()) | set(routes.CHAIN_TWIN) | set(routes.CHAIN_TWIN.values())
    assert looked_up <= NAMES, sorted(looked_up - NAMES)
    for (action, target), name in routes.BY_TARGET.items():
        assert target in ("deployment", "development", "production", "environment", "regional"), (action, target)
        has_id = "deployment_id" in routes.endpoint(name).params
        assert has_id == (target == "deployment"), name
        # A regional row's environment is in the host, so its path is bare: no parameter at all.
        assert (target == "regional") == (routes.endpoint(name).path.count("/") == 1), name


def _names_an_endpoint(node: ast.JoinedStr) -> list[str]:
    """The endpoint names an f-string could produce (each placeholder standing for any identifier part)."""
    parts = node.values
    if not any(isinstance(p, ast.Constant) for p in parts):
        return []  # f"{x}" alone is no name-building
    pattern = "".join(re.escape(p.value) if isinstance(p, ast.Constant) else "[a-z_]+" for p in parts)
    return sorted(n for n in NAMES if re.fullmatch(pattern, n))


@pytest.mark.parametrize("layer", ["client", "hooks", "triggers", "emulator"])
def test_no_endpoint_name_is_built_from_an_f_string(layer: str) -> None:
    built = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.JoinedStr) and (names := _names_an_endpoint(node)):
                built.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)} -> {names[:3]}")
    assert not built, "write the name out (a row, or routes.BY_TARGET):\n" + "\n".join(built)


@pytest.mark.parametrize(("long_read", "read"), [(False, 60.0), (True, 1260.0)])
def test_the_read_timeout_follows_the_rows_long_read(
    monkeypatch: pytest.MonkeyPatch, long_read: bool, read: float
) -> None:
    assert routes.endpoint("production_predict").long_read and routes.endpoint("model_apis_request").long_read
    _swap(monkeypatch, "list_models", long_read=long_read)
    rec = Recorder(lambda r: httpx.Response(200, json={"models": []}))
    make_hook(rec).get_transport().request("list_models")
    assert rec.requests[0].extensions["timeout"]["read"] == read


def test_each_team_twin_repeats_and_takes_a_body_like_its_workspace_row() -> None:
    from airflow_provider_baseten.client.routes import BY_NAME, TEAM_TWIN

    for name, twin in TEAM_TWIN.items():
        row, team = BY_NAME[name], BY_NAME[twin]
        assert (team.method, team.repeat, team.body) == (row.method, row.repeat, row.body), twin
        assert team.path.startswith("/v1/teams/{team_id}/") and team.params[0] == "team_id", twin
