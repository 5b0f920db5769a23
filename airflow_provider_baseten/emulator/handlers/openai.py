"""OpenAI-compatible routes and chains in the emulated API.

* ``/sync/{route}`` on a model deployment (the container's routes): ``v1/embeddings`` answers deterministic
  vectors derived from each text, ``v1/chat/completions`` an echo of the last user message with ``usage``,
  ``rerank`` scores by shared words; any other route echoes ``{"route", "input"}``.
* Model APIs (``/v1/embeddings``, ``/v1/chat/completions``, ``/v1/rerank``): the same models, by ``model`` name.
* Chains: ``run_remote`` echoes its input; ``async_run_remote`` queues an async request on the chain, which
  ``/async_request/{id}`` on the chain host reports and cancels like a model's.

Baseten's specs do not cover the OpenAI shapes, so they are validated with the provider's pydantic request
models (``models.EmbeddingsRequest``...): a body they refuse is a 422. Chain routes are in the inference spec
and validated against it by the app. A text or message ``"__fail__"`` makes the model raise (500, a model
error); ``"__fail_<status>__"`` answers that status.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from airflow_provider_baseten.emulator.core import StateCore
from airflow_provider_baseten.emulator.objects import ApiError, AsyncRequest

#: Vector length when the request gives no ``dimensions``.
EMBED_DIM = 8
_FAIL = re.compile(r"__fail(?:_(\d{3}))?__")


def _maybe_fail(text: Any) -> None:
    m = _FAIL.fullmatch(text) if isinstance(text, str) else None
    if m:
        status = int(m.group(1) or 500)
        raise ApiError(status, "The model raised an exception (emulated).", "application_error")


def _validate(model: Any, body: Any) -> Any:
    from airflow_provider_baseten import models
    from airflow_provider_baseten.exceptions import BasetenValidationError

    try:
        return models.options(model, body if isinstance(body, dict) else {"body": body})
    except BasetenValidationError as exc:
        raise ApiError(422, exc.message, "client_error") from None


def _tokens(text: Any) -> int:
    return len(str(text).split()) or 1


def embed(text: str, dimensions: int = EMBED_DIM) -> list[float]:
    """The emulated embedder: ``dimensions`` floats in [-1, 1) derived from the text's SHA-256."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend(round(b / 128 - 1, 6) for b in digest)
        counter += 1
    return out[:dimensions]


def embeddings(body: Any, model: str) -> dict[str, Any]:
    """An OpenAI embeddings answer for ``body``."""
    from airflow_provider_baseten.models import EmbeddingsRequest

    req = _validate(EmbeddingsRequest, body)
    texts = [req.input] if isinstance(req.input, str) else req.input
    for text in texts:
        _maybe_fail(text)
    dim = req.dimensions or EMBED_DIM
    data = [{"object": "embedding", "index": i, "embedding": embed(t, dim)} for i, t in enumerate(texts)]
    used = sum(_tokens(t) for t in texts)
    usage = {"prompt_tokens": used, "total_tokens": used}
    return {"object": "list", "data": data, "model": req.model or model, "usage": usage}


def chat_completion(body: Any, model: str) -> dict[str, Any]:
    """An OpenAI chat completion: ``"echo: "`` + the last user message, with token ``usage``."""
    from airflow_provider_baseten.models import ChatCompletionRequest

    req = _validate(ChatCompletionRequest, body)
    last = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
    _maybe_fail(last)
    reply = f"echo: {last}"
    if req.max_tokens is not None:
        reply = " ".join(reply.split()[: req.max_tokens])
    prompt = sum(_tokens(m.content) for m in req.messages)
    completion = _tokens(reply)
    digest = hashlib.sha256(repr(body).encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-{digest}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": req.model or model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def rerank(body: Any) -> dict[str, Any]:
    """Scores by the share of the query's words each text holds, best first."""
    from airflow_provider_baseten.models import RerankRequest

    req = _validate(RerankRequest, body)
    _maybe_fail(req.query)
    words = set(req.query.lower().split())
    scored = []
    for i, text in enumerate(req.texts):
        score = len(words & set(text.lower().split())) / (len(words) or 1)
        scored.append({"index": i, "score": score, **({"text": text} if req.return_text else {})})
    return {"object": "list", "data": sorted(scored, key=lambda d: (-d["score"], d["index"]))}


def answer(route: str, body: Any, model: str) -> Any:
    """What an OpenAI-compatible container answers at ``/{route}``."""
    route = route.strip("/")
    if route == "v1/embeddings":
        return embeddings(body, model)
    if route == "v1/chat/completions":
        return chat_completion(body, model)
    if route in ("rerank", "v1/rerank"):
        return rerank(body)
    return {"route": "/" + route, "input": body}


def model_apis(route: str, body: Any) -> Any:
    """Baseten's Model APIs: the same models by name (``model`` is required); unknown routes are 404."""
    if route.strip("/") not in ("embeddings", "chat/completions", "rerank"):
        raise ApiError(404, f"Model APIs have no route /v1/{route}", "not_found")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(422, "model is required: the Model APIs model to call.", "client_error")
    return answer("v1/" + route.strip("/"), body, body["model"])


class ChainHandlers(StateCore):
    """Chain inference: ``run_remote``, ``async_run_remote`` and the chain's async requests."""

    def _chain_target(self, target: str, params: dict[str, str], chain_id: str | None) -> tuple[str, str]:
        chain = self.chains.get(chain_id or "")
        if chain is None:
            raise ApiError(404, f"Chain {chain_id} not found", "model_does_not_exist")
        if target == "deployment":
            dep_id: str | None = params["deployment_id"]
        elif target == "development":
            dep_id = next((d.id for d in chain.deployments.values() if d.is_development), None)
        else:
            env = chain.environments.get("production" if target == "production" else params["env_name"])
            dep_id = env.current_deployment_id if env is not None else None
        if dep_id is None or dep_id not in chain.deployments:
            raise ApiError(404, f"Chain {chain.id} has no such deployment or environment", "model_does_not_exist")
        return chain.id, dep_id

    def chain_run(
        self, target: str, action: str, params: dict[str, str], body: Any, chain_id: str | None
    ) -> tuple[int, Any]:
        """``run_remote`` (echo) or ``async_run_remote`` (queued like a model's async request)."""
        chain, dep = self._chain_target(target, params, chain_id)
        if action == "run_remote":
            _maybe_fail(body.get("fail") if isinstance(body, dict) else None)
            self.submissions["run_remote"] += 1
            return 200, {"chain_id": chain, "deployment_id": dep, "output": body}
        now = self.clock.now()
        d = self.config.durations
        req = AsyncRequest(
            request_id=self.new_id(32),
            model_id="",
            deployment_id=dep,
            model_input=body,
            created=now,
            queue_end=now + d.async_queued,
            run_end=now + d.async_queued + d.async_in_progress,
            expire_at=now + 600,
            fail=bool(isinstance(body, dict) and body.get("fail")),
            webhook_endpoint=None,
            webhook_status="NO_WEBHOOK_PROVIDED",
            chain_id=chain,
        )
        self.async_requests[req.request_id] = req
        self.submissions["async_run_remote"] += 1
        return 201, {"request_id": req.request_id}

    def _chain_request(self, params: dict[str, str], chain_id: str | None) -> None:
        req = self.async_requests.get(params["request_id"])
        if req is not None and req.chain_id != chain_id:  # a model's request, or another chain's
            raise ApiError(404, f"Async request {params['request_id']} not found", "model_does_not_exist")

    def _h_chain_get_async_request(self, params: dict[str, str], query: Any, body: Any, chain_id: str | None) -> Any:
        self._chain_request(params, chain_id)
        return self._h_get_async_request(params, query, body, chain_id)  # type: ignore[attr-defined]

    def _h_chain_cancel_async_request(self, params: dict[str, str], query: Any, body: Any, chain_id: str | None) -> Any:
        self._chain_request(params, chain_id)
        return self._h_cancel_async_request(params, query, body, chain_id)  # type: ignore[attr-defined]
