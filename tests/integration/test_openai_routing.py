"""Where an OpenAI-compatible call goes: a deployment or Baseten's shared Model APIs, never a guess.

Model APIs only with ``model_apis=True``. ``model="bge"`` alone could mean a deployment (whose served name is
``bge``) or the Model APIs model ``bge``: a wrong guess reaches another model (or bills one), so it is refused
before anything is sent, the same way on every connection (direct, with or without a default ``model_id``, or
through the LowCodeAPI gateway). Every route is counted at the emulator (its request log), never in the
client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.links import model_url
from airflow_provider_baseten.operators.openai import ChatCompletionsOperator, EmbeddingsOperator
from airflow_provider_baseten.xcom import MODEL_URL
from tests.dag_support import run_dag, task_states
from tests.integration.conftest import FAST_RETRY, MODES, make_hook

MESSAGES = [{"role": "user", "content": "hello"}]
CHATS = [{"messages": MESSAGES}, {"messages": [{"role": "user", "content": "again"}]}]

#: Every public method that routes with ``model`` / ``model_apis``, sync and async; the route (the part after
#: ``/sync/`` on a deployment) and how many requests one call sends.
METHODS: dict[str, tuple[Callable[..., Any], str, int]] = {
    "embeddings": (lambda h, **kw: h.embeddings(["a b", "c"], **kw), "v1/embeddings", 1),
    "aembeddings": (lambda h, **kw: asyncio.run(h.aembeddings("a b", **kw)), "v1/embeddings", 1),
    "chat_completions": (lambda h, **kw: h.chat_completions(MESSAGES, **kw), "v1/chat/completions", 1),
    "achat_completions": (lambda h, **kw: asyncio.run(h.achat_completions(MESSAGES, **kw)), "v1/chat/completions", 1),
    "rerank": (lambda h, **kw: h.rerank("red", ["red car", "pear"], **kw), "rerank", 1),
    "arerank": (lambda h, **kw: asyncio.run(h.arerank("red", ["red car"], **kw)), "rerank", 1),
    "embed_batch": (lambda h, **kw: h.embed_batch(["a", "b", "c"], batch_size=2, **kw), "v1/embeddings", 2),
    "aembed_batch": (
        lambda h, **kw: asyncio.run(h.aembed_batch(["a", "b", "c"], batch_size=2, **kw)),
        "v1/embeddings",
        2,
    ),
    "chat_completions_batch": (lambda h, **kw: h.chat_completions_batch(CHATS, **kw), "v1/chat/completions", 2),
    "achat_completions_batch": (
        lambda h, **kw: asyncio.run(h.achat_completions_batch(CHATS, **kw)),
        "v1/chat/completions",
        2,
    ),
}


@pytest.fixture
def hook(emulator: BasetenEmulator) -> Any:
    h = make_hook(emulator)
    yield h
    h.close()


def _no_default_model(emulator: BasetenEmulator) -> BasetenHook:
    """A hook on a connection without a default ``model_id`` (the emulator's own always has one)."""
    return BasetenHook(settings=dataclasses.replace(emulator.settings(retry=FAST_RETRY), model_id=None))


def _seen(emulator: BasetenEmulator) -> list[tuple[str, str]]:
    """(endpoint, path) of each inference request the emulator received (management calls left out)."""
    inference = ("model_apis_request", "environment_sync", "development_sync", "deployment_sync")
    return [(r["endpoint"], r["path"]) for r in emulator.requests() if r["endpoint"] in inference]


# -- refused before anything is sent -----------------------------------------------------------------------
#: Every kind of connection: direct with the emulator's default model_id, direct without one, and each
#: LowCodeAPI gateway format. ``model=`` alone must mean the same on all of them.
CONNECTIONS = ["direct-no-model-id", *(m[0] for m in MODES)]


def _connection_hook(emulator: BasetenEmulator, connection: str) -> BasetenHook:
    if connection == "direct-no-model-id":
        return _no_default_model(emulator)
    _, settings, new_format = next(m for m in MODES if m[0] == connection)
    emulator.set_gateway_new_format(new_format)
    return make_hook(emulator, **settings)


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_model_alone_is_refused_unsent_on_every_connection(
    emulator: BasetenEmulator, method: str, connection: str
) -> None:
    call, _, _ = METHODS[method]
    hook = _connection_hook(emulator, connection)
    with pytest.raises(BasetenValidationError) as refused:
        call(hook, model="bge")
    hook.close()
    message = str(refused.value)
    for says in ("model='bge' alone", "model_apis=True", "model_id="):
        assert says in message, (says, message)  # what to pass, for either meaning
    assert refused.value.field == "model_apis"
    assert emulator.api_key not in message
    assert emulator.requests() == []  # nothing reached any host


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"model": "bge", "model_apis": True, "environment": "production"}, "no environment"),
        (
            {"model": "bge", "model_apis": True, "deployment_id": "dep1", "model_id": "abcd1234"},
            "model_id=, deployment_id=",
        ),
        ({"model_apis": True}, "needs model="),
        ({"model": "", "model_apis": True}, "needs model="),
        ({"model": "bge", "model_apis": "yes"}, "True, False or None"),
        ({"model": "bge", "model_apis": 1}, "True, False or None"),
    ],
    ids=["with-environment", "with-deployment", "no-model", "empty-model", "not-a-bool", "one"],
)
def test_contradictory_routing_is_refused_unsent(
    emulator: BasetenEmulator, hook: Any, method: str, kwargs: dict[str, Any], says: str
) -> None:
    call, _, _ = METHODS[method]
    with pytest.raises(BasetenValidationError, match=says):
        call(hook, **kwargs)
    assert emulator.requests() == []


def test_sync_request_to_model_apis_needs_the_model_in_its_body(emulator: BasetenEmulator, hook: Any) -> None:
    with pytest.raises(BasetenValidationError, match="needs model="):
        hook.sync_request("v1/embeddings", {"input": "x"}, model_apis=True)
    with pytest.raises(BasetenValidationError, match="no environment"):
        hook.sync_request("v1/embeddings", {"input": "x", "model": "bge"}, model_apis=True, environment="production")
    assert emulator.requests() == []


# -- each route reached as intended ------------------------------------------------------------------------
@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"model": "bge", "model_apis": True}, "model_apis"),
        ({"model": "bge", "environment": "production"}, "production"),
        ({"model": "bge", "model_apis": False}, "production"),  # the connection's model, production
        ({"model": "bge", "environment": "development"}, "development"),
        ({"model": "bge", "deployment_id": None}, "deployment"),  # filled with a real deployment id below
        ({}, "production"),  # no model, no target: the connection's model
    ],
    ids=["model_apis", "environment", "model_apis-false", "development", "deployment_id", "nothing"],
)
def test_each_route_is_reached_as_asked(
    emulator: BasetenEmulator, hook: Any, method: str, kwargs: dict[str, Any], where: str
) -> None:
    call, route, requests = METHODS[method]
    mid = emulator.model_id
    if "deployment_id" in kwargs:
        kwargs = {**kwargs, "deployment_id": hook.list_deployments()[0].id}
    result = call(hook, **kwargs)
    expected = {
        "model_apis": ("model_apis_request", "/model_apis/v1/" + route.removeprefix("v1/")),
        "production": ("environment_sync", f"/model/{mid}/environments/production/sync/{route}"),
        "development": ("development_sync", f"/model/{mid}/development/sync/{route}"),
        "deployment": ("deployment_sync", f"/model/{mid}/deployment/{kwargs.get('deployment_id')}/sync/{route}"),
    }[where]
    assert _seen(emulator) == [expected] * requests  # that host and route only, each request once
    if kwargs.get("model") and method in ("embeddings", "chat_completions"):
        assert result.model == "bge"  # sent in the body: Model APIs' model, or the deployment's served name


def test_sync_request_reaches_model_apis_only_when_asked(emulator: BasetenEmulator, hook: Any) -> None:
    body = {"input": "x", "model": "bge"}
    assert hook.sync_request("v1/embeddings", body, model_apis=True)["model"] == "bge"
    hook.sync_request("v1/embeddings", body)  # a model in the body alone never leaves the deployment
    hook.sync_request("v1/embeddings", body, model_apis=False)
    on_model = f"/model/{emulator.model_id}/environments/production/sync/v1/embeddings"
    assert _seen(emulator) == [
        ("model_apis_request", "/model_apis/v1/embeddings"),
        ("environment_sync", on_model),
        ("environment_sync", on_model),
    ]


# -- operators ---------------------------------------------------------------------------------------------
def test_operators_check_model_apis_at_parse_time() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": "bge", "model_apis": True, "environment": "production"}, "environment"),
        ({"model": "bge", "model_apis": True, "deployment_id": "dep1"}, "deployment_id"),
        ({"model": "bge", "model_apis": True, "wake_first": True}, "wake_first"),
        ({"model": "bge", "model_apis": True, "scale_for_batch": 1}, "scale_for_batch"),
        ({"model_apis": True}, "needs model="),
        ({"model": "bge", "model_apis": "true"}, "True, False or None"),
        ({"model": "bge"}, "pass model_apis=True"),  # alone: refused when the DAG is parsed
    ]
    for kwargs, says in cases:
        with pytest.raises(BasetenValidationError, match=says):
            EmbeddingsOperator(task_id="e", texts=["a"], **kwargs)
        with pytest.raises(BasetenValidationError, match=says):
            ChatCompletionsOperator(task_id="c", messages=MESSAGES, **kwargs)


def test_operators_route_as_the_hook_does(emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    with DAG("t_openai_routing", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        EmbeddingsOperator(task_id="served", texts=["a", "b"], model="bge", model_apis=False)
        ChatCompletionsOperator(task_id="apis", messages=MESSAGES, model="llm", model_apis=True)
    run = run_dag(dag)
    assert task_states(run) == {"served": "success", "apis": "success"}
    on_model = f"/model/{emulator.model_id}/environments/production/sync/v1/embeddings"
    assert sorted(_seen(emulator)) == [
        ("environment_sync", on_model),
        ("model_apis_request", "/model_apis/v1/chat/completions"),
    ]
    links = {t: run.get_task_instance(t).xcom_pull(task_ids=t, key=MODEL_URL) for t in ("served", "apis")}
    assert links == {"served": model_url(emulator.model_id), "apis": ""}  # Model APIs: no model of yours


@pytest.mark.parametrize("connection", ["direct", "direct-no-model-id", "lowcodeapi"])
def test_the_same_dag_routes_the_same_on_every_connection(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch, connection: str
) -> None:
    """``model=`` alone is refused when the DAG is parsed, whatever the connection; ``model_apis=True`` goes to
    Model APIs on both direct connections (it went there before only on one without a ``model_id``), and the
    gateway, which has no Model APIs route, says so with a typed error before sending anything."""
    conn = emulator.connection(gateway="lowcodeapi" if connection == "lowcodeapi" else "baseten")
    if connection == "direct-no-model-id":
        conn["extra"].pop("model_id")
    monkeypatch.setenv("AIRFLOW_CONN_BASETEN_DEFAULT", json.dumps(conn))
    with pytest.raises(BasetenValidationError, match="pass model_apis=True") as refused:
        EmbeddingsOperator(task_id="alone", text="a", model="bge")
    assert refused.value.field == "model_apis"
    with DAG(f"t_openai_routing_{connection}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        EmbeddingsOperator(task_id="apis", text="a", model="bge", model_apis=True)
    states = task_states(run_dag(dag))
    if connection == "lowcodeapi":
        assert states == {"apis": "failed"}
        assert emulator.requests() == []
    else:
        assert states == {"apis": "success"}
        assert _seen(emulator) == [("model_apis_request", "/model_apis/v1/embeddings")]


def test_lineage_names_the_model_only_when_the_task_called_it(
    emulator: BasetenEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model APIs and chains are not the connection's model: it is not reported as the task's input."""
    pytest.importorskip("airflow.providers.openlineage")
    from airflow_provider_baseten.operators.openai import RunChainOperator
    from tests.dag_support import context

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    ops = {
        "served": EmbeddingsOperator(task_id="served", texts=["a"], model="bge", environment="production"),
        "apis": EmbeddingsOperator(task_id="apis", texts=["a"], model="bge", model_apis=True),
        "chat": ChatCompletionsOperator(task_id="chat", requests=CHATS, model="llm", model_apis=True),
        "chain": RunChainOperator(task_id="chain", chain_id="chain123", chain_inputs=[{"n": 1}]),
    }
    inputs = {}
    for name, op in ops.items():
        op.execute(context())
        inputs[name] = [(d.namespace, d.name) for d in op.get_openlineage_facets_on_complete(None).inputs]
    assert inputs == {
        "served": [("baseten", f"model/{emulator.model_id}/environments/production")],
        "apis": [],
        "chat": [],
        "chain": [],
    }
    assert [r["endpoint"] for r in emulator.requests()].count("model_apis_request") == 3  # they did run
