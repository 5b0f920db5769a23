"""OpenAI-compatible inference (``/sync/...`` passthrough, Model APIs) and chains (``run_remote``).

Where a call goes (``model_apis`` is an argument of every method here and of the operators; nothing is
guessed, and an ambiguous call is refused before anything is sent):

* ``model_apis=True``: Baseten's shared **Model APIs** (``https://inference.baseten.co/v1``, connection extra
  ``model_apis_url``); ``model`` (required) names the LLM or embedder there (e.g.
  ``"deepseek-ai/DeepSeek-V4-Pro"``). ``model_id`` / ``environment`` / ``deployment_id`` are refused with it.
* ``model_id``, ``environment`` or ``deployment_id`` given, or ``model_apis=False``: a **model deployment**,
  ``https://model-{model_id}.api.baseten.co/environments/{env}/sync/...`` (production by default) or
  ``/deployment/{id}/sync/...``, on the connection's default ``model_id`` unless one is given; ``model`` is
  then only sent in the body (the served model name that vLLM and other OpenAI servers check; BEI accepts any).
* ``model=`` alone (no ``model_id``, ``environment`` or ``deployment_id``, and ``model_apis=None``) is refused
  with :class:`~airflow_provider_baseten.exceptions.BasetenValidationError` naming what to pass
  (``model_apis=True`` or ``model_id=``), on every connection: it could mean Model APIs or your deployment, and a
  route that depended on the connection would make the same DAG reach another model (or bill one) elsewhere.
* no ``model`` and no target: the connection's model, production environment.
* chains: ``https://chain-{chain_id}.api.baseten.co`` (connection extra ``chain_url``).

The LowCodeAPI gateway has none of these routes (its reference lists model predict and async routes only):
through it, every method here raises :class:`~airflow_provider_baseten.exceptions.BasetenGatewayUnsupportedError`
before sending anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.checks import check_packing, model_apis_route
from airflow_provider_baseten.hooks._api import _Batch, _Call, _m, _v
from airflow_provider_baseten.hooks._core import _HookCore, inference_target, regional_host_id

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_baseten.client.batch.options import BatchOptions
    from airflow_provider_baseten.models import (
        AsyncPredictResult,
        ChatCompletion,
        EmbeddingsResponse,
        RerankResponse,
    )


def _many(inputs: Any, field: str, each: str) -> None:
    """Refuse one input (a path, a text, a dict) given where a batch is expected, before anything is sent."""
    from airflow_provider_baseten.client.batch.engine import check_inputs

    check_inputs(inputs, field, each)


# -- Builders: what each endpoint sends. BasetenHook's methods (hooks/_endpoints.py, generated) send them. --


def _sync_call(
    hook: _HookCore,
    /,
    route: str,
    model: str | None,
    model_id: str | None,
    environment: str | None,
    deployment_id: str | None,
    model_apis: bool | None = None,
) -> _Call[Any]:
    """The call for ``route`` (``v1/embeddings``...) on Model APIs or a deployment's ``/sync`` passthrough."""
    from airflow_provider_baseten.exceptions import BasetenValidationError

    # The arguments first: a call that is wrong on every connection says so on every connection.
    on_model_apis = model_apis_route(model, model_apis, model_id, environment, deployment_id)
    hook._direct_only(f"/sync/{route}")
    if not isinstance(route, str) or not route.strip("/"):
        raise BasetenValidationError(f"route must be a non-empty path such as 'v1/embeddings', got {route!r}.")
    route = route.strip("/")
    if any(c in route for c in ("?", "#", "\\", " ")) or ".." in route.split("/") or "//" in route:
        raise BasetenValidationError(f"route {route[:60]!r} is not a plain path (e.g. 'v1/embeddings').")
    if on_model_apis:
        return _Call("model_apis_request", {"route": route.removeprefix("v1/")})
    from airflow_provider_baseten.client.routes import BY_TARGET

    target, params = inference_target(environment, deployment_id)
    model_host = hook._model(model_id)
    if target == "production":  # there is no /production/sync: production is an environment here
        target, params = "environment", {"env_name": "production"}
    return _Call(BY_TARGET["sync", target], {**params, "route": route}, model_id=model_host)


def sync_request(
    hook: _HookCore,
    /,
    route: str,
    body: Any,
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis: bool | None = None,
    cache: Any = None,
) -> _Call[Any]:
    """POST ``body`` to a deployment's ``/sync/{route}`` passthrough and return its JSON answer as is.

    Baseten forwards ``/sync/{route}`` to ``/{route}`` in the model's container (``v1/chat/completions``,
    ``rerank``, a custom server's own routes). Safe to repeat: sync inference creates nothing.

    :param route: The container path, e.g. ``"v1/completions"`` (no leading slash needed).
    :param body: The JSON body.
    :param model_apis: ``True``: POST to Baseten's Model APIs instead (``route`` ``"v1/completions"`` goes to
        ``{model_apis_url}/completions``; ``body`` must name its ``model``). Otherwise the deployment.
    :param cache: Opt in to the result cache for a deterministic route (e.g. a classifier's ``predict``): see
        :meth:`predict`. Keyed on the deployment that serves the call (on Model APIs: the body's ``model``),
        the route and the whole body.
    """
    from airflow_provider_baseten.client.transport import encode_json

    encode_json(body, "body")
    named = body.get("model") if model_apis is True and isinstance(body, dict) else None
    on_apis = False if model_apis is None else model_apis
    call = _sync_call(hook, route, named, model_id, environment, deployment_id, on_apis)
    call.body = body
    where = (model_id, environment, deployment_id, on_apis)
    call.cached = _cached(hook, cache, route.strip("/"), named, *where)
    return call


def _cached(
    hook: _HookCore,
    cache: Any,
    route: str,
    model: str | None,
    model_id: str | None,
    environment: str | None,
    deployment_id: str | None,
    model_apis: bool | None,
) -> Any:
    """The call's cache (``None`` without ``cache=``): on Model APIs keyed on ``model``, else the deployment."""
    if cache is None:
        return None
    from airflow_provider_baseten.hooks._cache import cache_for

    on_model_apis = model_apis_route(model, model_apis, model_id, environment, deployment_id)
    where = {"model_id": model_id, "environment": environment, "deployment_id": deployment_id}
    return cache_for(hook, cache, route, **where, model_apis_model=model if on_model_apis else None)


def embeddings(
    hook: _HookCore,
    /,
    input: str | list[str],
    *,
    model: str | None = None,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis: bool | None = None,
    encoding_format: str | None = None,
    dimensions: int | None = None,
    user: str | None = None,
    cache: Any = None,
) -> _Call[EmbeddingsResponse]:
    """Embed one text or a list of texts (OpenAI ``/v1/embeddings``); ``.vectors()`` keeps input order.

    :param model: On Model APIs: the model there. On a deployment: the served model name.
    :param model_apis: ``True``: Baseten's Model APIs; ``False``: the deployment; ``None``: see the module
        docstring (``model=`` alone is refused, not guessed).
    :param encoding_format: ``"float"`` (default) or ``"base64"``.
    :param cache: Opt in to the result cache (see :meth:`predict`): keyed on the deployment that serves the
        call (on Model APIs: ``model``'s name), the route and the whole body, options included.
    """
    m = _m()
    body = {"input": input, "model": model, "encoding_format": encoding_format, "dimensions": dimensions}
    body = {k: v for k, v in {**body, "user": user}.items() if v is not None}
    m.options(m.EmbeddingsRequest, body)
    call = _sync_call(hook, "v1/embeddings", model, model_id, environment, deployment_id, model_apis)
    call.body = body
    call.parse = lambda d: m.parse(m.EmbeddingsResponse, d, "embeddings")
    call.cached = _cached(hook, cache, "v1/embeddings", model, model_id, environment, deployment_id, model_apis)
    return call


def chat_completions(
    hook: _HookCore,
    /,
    messages: list[dict[str, Any]],
    *,
    model: str | None = None,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis: bool | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    options: dict[str, Any] | None = None,
) -> _Call[ChatCompletion]:
    """One chat completion (OpenAI ``/v1/chat/completions``); the reply is ``.text``, tokens in ``.usage``.

    :param messages: ``[{"role": "user", "content": "..."}, ...]``.
    :param model: On Model APIs: the model there. On a deployment: the served model name.
    :param model_apis: ``True``: Baseten's Model APIs; ``False``: the deployment; ``None``: as :meth:`embeddings`.
    :param options: Other OpenAI fields sent as they are (``top_p``, ``stop``, ``seed``...). ``stream`` is
        refused: the provider reads whole answers.
    """
    m = _m()
    given = {"model": model, "max_tokens": max_tokens, "temperature": temperature}
    body = {**(options or {}), "messages": messages, **{k: v for k, v in given.items() if v is not None}}
    body = {k: v for k, v in body.items() if v is not None}  # an argument left None keeps options' value
    m.options(m.ChatCompletionRequest, body)
    call = _sync_call(hook, "v1/chat/completions", model, model_id, environment, deployment_id, model_apis)
    call.body = body
    call.parse = lambda d: m.parse(m.ChatCompletion, d, "chat_completions")
    return call


def rerank(
    hook: _HookCore,
    /,
    query: str,
    texts: list[str],
    *,
    model: str | None = None,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis: bool | None = None,
    raw_scores: bool = False,
    return_text: bool = False,
    truncate: bool = False,
    truncation_direction: str = "Right",
    cache: Any = None,
) -> _Call[RerankResponse]:
    """Score ``texts`` against ``query`` (BEI ``/rerank``); ``.data`` holds ``{index, score, text?}``.

    :param model_apis: ``True``: Baseten's Model APIs; ``False``: the deployment; ``None``: as :meth:`embeddings`.
    :param cache: Opt in to the result cache (see :meth:`predict`): keyed on the deployment that serves the
        call (on Model APIs: ``model``'s name), the route and the whole body, options included.
    """
    m = _m()
    body: dict[str, Any] = {"query": query, "texts": texts, "raw_scores": raw_scores, "return_text": return_text}
    body.update({"truncate": truncate, "truncation_direction": truncation_direction})
    if model is not None:
        body["model"] = model
    m.options(m.RerankRequest, body)
    call = _sync_call(hook, "rerank", model, model_id, environment, deployment_id, model_apis)
    call.body = body
    call.parse = lambda d: m.parse(m.RerankResponse, d, "rerank")
    call.cached = _cached(hook, cache, "rerank", model, model_id, environment, deployment_id, model_apis)
    return call


def _chain_call(
    hook: _HookCore,
    /,
    action: str,
    chain_id: str,
    environment: str | None,
    deployment_id: str | None,
    regional: bool = False,
) -> _Call[Any]:
    from airflow_provider_baseten.client.routes import BY_TARGET

    hook._direct_only(f"Chain {action}")
    chain = _v("chain_id", chain_id)
    # A chain's targets follow a model's rule; a regional environment is in the host (chain-{id}-{env}).
    target, params = inference_target(environment, deployment_id, regional=regional)
    if target == "regional":
        chain = regional_host_id(chain, params.pop("env_name"))
    return _Call(BY_TARGET[action, target], params, model_id=chain)


def _chain_input(input: Any) -> None:
    from airflow_provider_baseten.client.transport import encode_json
    from airflow_provider_baseten.exceptions import BasetenValidationError

    if not isinstance(input, dict):
        raise BasetenValidationError(
            "A chain's input must be a dict keyed by its entrypoint's run_remote argument names, got "
            f"{type(input).__name__}.",
            field="input",
        )
    encode_json(input, "input")


def run_chain(
    hook: _HookCore,
    /,
    input: dict[str, Any],
    *,
    chain_id: str,
    environment: str | None = None,
    deployment_id: str | None = None,
    regional: bool = False,
) -> _Call[Any]:
    """Call a chain synchronously (``run_remote``) and return its output as it answered.

    :param input: The entrypoint's ``run_remote`` arguments by name, e.g. ``{"names": ["a", "b"]}``.
    :param regional: Call the regional environment named by ``environment`` on its own host
        (``chain-{chain_id}-{environment}.api.baseten.co``, bare path), which keeps the traffic in its region.
        Needs ``environment=``; not through LowCodeAPI.
    """
    _chain_input(input)
    call = _chain_call(hook, "run_remote", chain_id, environment, deployment_id, regional)
    call.body = input
    return call


def async_run_chain(
    hook: _HookCore,
    /,
    input: dict[str, Any],
    *,
    chain_id: str,
    environment: str | None = None,
    deployment_id: str | None = None,
    regional: bool = False,
) -> _Call[AsyncPredictResult]:
    """Submit a chain asynchronously (``async_run_remote``); returns the ``request_id``.

    Follow it with ``get_async_request(request_id, chain_id=...)`` / ``cancel_async_request`` or
    ``AsyncPredictSensor(chain_id=...)``. Not idempotent: never sent twice when its outcome is unknown.
    The body is the bare argument object, as Baseten's inference spec has it.

    :param regional: Call the regional environment named by ``environment`` on its own host
        (``chain-{chain_id}-{environment}.api.baseten.co``, bare path), which keeps the traffic in its region.
        Needs ``environment=``; not through LowCodeAPI.
    """
    m = _m()
    _chain_input(input)
    call = _chain_call(hook, "async_run_remote", chain_id, environment, deployment_id, regional)
    call.body = input
    call.parse = lambda d: m.parse(m.AsyncPredictResult, d, "async_run_remote")
    return call


# -- batches: one request per input (chains, chat) or per packed group of texts (embeddings) ------------------


def run_chain_batch(
    hook: _HookCore,
    /,
    inputs: Iterable[dict[str, Any]],
    *,
    chain_id: str,
    environment: str | None = None,
    deployment_id: str | None = None,
    **options: Unpack[BatchOptions],
) -> _Batch:
    """Call a chain (``run_remote``) once per input, with :meth:`predict_batch`'s guarantees and options
    (:class:`~airflow_provider_baseten.batch.BatchOptions`)."""
    import functools

    from airflow_provider_baseten.client.batch.openai import ChainRun

    _many(inputs, "inputs", "dicts (each chain input)")
    route = _chain_call(hook, "run_remote", chain_id, environment, deployment_id)
    run_factory = functools.partial(ChainRun, check=_chain_input)  # a non-dict fails unsent
    return _Batch(route, inputs, {**options, "run_factory": run_factory})


def embed_batch(
    hook: _HookCore,
    /,
    texts: Iterable[str],
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis: bool | None = None,
    model: str | None = None,
    batch_size: int = 32,
    max_chars_per_request: int | None = None,
    dimensions: int | None = None,
    encoding_format: str | None = None,
    user: str | None = None,
    text_column: str | None = None,
    cache: Any = None,
    **options: Unpack[BatchOptions],
) -> _Batch:
    """Embed many texts, ``batch_size`` per request (as Baseten's performance client packs them).

    ``.results`` holds one vector per text, in input order (or ``{"index", "error"}`` with
    ``on_error="record"``); ``output_path`` gets one JSONL line per text. A request that fails fails each of its
    texts; counts, ``failures``, the error budget, progress and ``resume`` are per text, with the same guarantees
    as :meth:`predict_batch`. ``.usage`` sums the answers' token usage.

    :param model: On Model APIs: the model there. On a deployment: the served model name.
    :param model_apis: ``True``: Baseten's Model APIs; ``False``: the deployment; ``None``: as :meth:`embeddings`
        (``model=`` alone is refused before any request).
    :param batch_size: Texts per request (1-1024).
    :param max_chars_per_request: Also start a new request before this many characters (a longer text goes
        alone).
    :param dimensions: Vector length, for models that can shorten theirs; sent in every request.
    :param encoding_format: ``"float"`` (default) or ``"base64"`` (each result is then a base64 string).
    :param user: OpenAI's end-user id, sent in every request.
    :param text_column: Each input is a row (a dict) and its text is this key's value (a row without it fails
        alone, unsent); with ``passthrough_columns`` (e.g. ``["id"]``) the row's other keys go to its result.
        An ``output_path`` ending in ``.parquet`` holds the vectors as a ``list<float>`` (float32) column.
    :param cache: Opt in to the result cache, per text (see :meth:`predict`): each text is keyed on the
        deployment that serves the batch (on Model APIs: ``model``'s name), ``model`` and the options sent
        (``dimensions``, ``encoding_format``, ``user``); only the texts not in the cache are packed and sent,
        and the result's ``cached`` and the log say how many came from it ("9,500 of 10,000 texts from cache,
        500 sent").
    :param options: :class:`~airflow_provider_baseten.batch.BatchOptions` (``max_concurrency``, ``on_error``,
        ``output_path``, ``resume``, the error budget, ...).
    """
    import functools

    from airflow_provider_baseten.client.batch.openai import EmbedRun

    _many(texts, "texts", "strings")
    route = _sync_call(hook, "v1/embeddings", model, model_id, environment, deployment_id, model_apis)
    check_packing(batch_size, max_chars_per_request)
    fields = {"encoding_format": encoding_format, "dimensions": dimensions, "user": user}
    extra = {k: v for k, v in fields.items() if v is not None}
    _m().options(_m().EmbeddingsRequest, {"input": ["x"], **extra})  # a bad field fails before any request
    if text_column is not None and (not isinstance(text_column, str) or not text_column):
        from airflow_provider_baseten.exceptions import BasetenValidationError

        raise BasetenValidationError(f"text_column must be a key name, got {text_column!r}.", field="text_column")
    run_factory = functools.partial(
        EmbedRun,
        batch_size=batch_size,
        max_chars=max_chars_per_request,
        model=model,
        extra=extra,
        text_column=text_column,
    )
    cached = _cached(hook, cache, EMBED_TEXT_ROUTE, model, model_id, environment, deployment_id, model_apis)
    return _Batch(route, texts, {**options, "run_factory": run_factory, "vectors": True}, cached)


#: What an embed batch's per-text entries are keyed on as their route: not ``v1/embeddings``, whose entries
#: (from :meth:`embeddings`) hold a whole answer, where these hold one vector.
EMBED_TEXT_ROUTE = "v1/embeddings:text"


def chat_completions_batch(
    hook: _HookCore,
    /,
    requests: Iterable[dict[str, Any]],
    *,
    model_id: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    model_apis: bool | None = None,
    model: str | None = None,
    options: dict[str, Any] | None = None,
    **batch: Unpack[BatchOptions],
) -> _Batch:
    """One chat completion per request dict (``{"messages": [...], ...}``), with :meth:`predict_batch`'s
    guarantees; ``.results`` keeps each whole answer in input order and ``.usage`` sums token usage.

    :param model: On Model APIs: the model there. On a deployment: the served model name. An item's own
        ``model`` wins in its body (the route is chosen once, from the arguments).
    :param model_apis: ``True``: Baseten's Model APIs; ``False``: the deployment; ``None``: as :meth:`embeddings`
        (``model=`` alone is refused before any request).
    :param options: OpenAI fields added to every request (``max_tokens``, ``temperature``...); an item's own
        fields win.
    :param batch: :class:`~airflow_provider_baseten.batch.BatchOptions` (``max_concurrency``, ``on_error``,
        ``output_path``, ``resume``, the error budget, ...).
    """
    import functools

    from airflow_provider_baseten.client.batch.openai import ChatRun
    from airflow_provider_baseten.exceptions import BasetenValidationError

    _many(requests, "requests", "chat request dicts")
    route = _sync_call(hook, "v1/chat/completions", model, model_id, environment, deployment_id, model_apis)
    if options is not None and not isinstance(options, dict):
        raise BasetenValidationError(f"options must be a dict, got {type(options).__name__}.", field="options")
    probe = {**(options or {}), "messages": [{"role": "user", "content": "x"}]}
    _m().options(_m().ChatCompletionRequest, probe)  # shared by every request: checked once, up front
    run_factory = functools.partial(ChatRun, model=model, extra=options)
    return _Batch(route, requests, {**batch, "run_factory": run_factory})
