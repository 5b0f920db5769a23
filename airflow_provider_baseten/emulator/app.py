"""The emulator's HTTP surface: a FastAPI app whose API routes are generated from ``_routes.ENDPOINTS``.

Each endpoint is served three ways:

* direct: management at ``/v1/...``, inference at ``/model/{model_id}/...``, chains at ``/chain/{chain_id}/...``
  and Model APIs at ``/model_apis/v1/...`` (``Authorization`` header; chains and Model APIs are served
  direct only: LowCodeAPI has neither);
* LowCodeAPI new format: ``/baseten/<path with params>`` (``?api_token=``, ``{"data": ...}`` envelope);
* LowCodeAPI old format: ``/baseten/<sanitized path>?<param>=...`` (only where the two differ).

Every API request is first validated against Baseten's OpenAPI specs (:mod:`.validation`) unless the
emulator is lenient (``strict=False``). Admin endpoints live under ``/__admin`` (no auth: the emulator
listens on 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_baseten.client.routes import BY_TARGET, ENDPOINTS, Endpoint
from airflow_provider_baseten.emulator.clock import Clock
from airflow_provider_baseten.emulator.config import EmulatorConfig, FaultRule
from airflow_provider_baseten.emulator.faults import FaultInjector, FaultMiddleware
from airflow_provider_baseten.emulator.state import ApiError, EmulatorState, iso, model_output
from airflow_provider_baseten.emulator.validation import SpecValidator
from airflow_provider_baseten.emulator.wire import RouteTable, Scope, error_body, match_route

log = logging.getLogger("airflow_provider_baseten.emulator")

GATEWAY_PREFIX = "/baseten"
_LIST_PARAMS = frozenset({"includes", "excludes", "metrics"})  # repeated query parameters (?metrics=a&metrics=b)
INFERENCE_PREFIX = "/model/{model_id}"
CHAIN_PREFIX = "/chain/{chain_id}"
MODEL_APIS_PREFIX = "/model_apis/v1"
#: The regional rows (bare paths): served on ``/model/{model_id}-{env_name}/...`` and
#: ``/chain/{chain_id}-{env_name}/...``, the emulator's spelling of Baseten's ``model-{model_id}-{env_name}`` hosts.
_REGIONAL = frozenset(name for (_, target), name in BY_TARGET.items() if target == "regional")


class EmulatorCore:
    """Everything one running emulator holds: config, clock, state, faults, request log."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(config.time_scale)
        self.state = EmulatorState(config, self.clock)
        self.faults = FaultInjector(config.faults, config.seed)
        self.request_log: deque[dict[str, Any]] = deque(maxlen=config.request_log_size)
        self.gateway_new_format = config.gateway_new_format
        self.gateway_unlisted = config.gateway_unlisted
        self.predict_latency = config.predict_latency
        self.predict_capacity = config.predict_capacity
        self.predict_inflight = 0  # sync predicts being served now (for predict_capacity)
        self.capacity_counts: dict[str, int] = {"rejected": 0, "peak_inflight": 0}
        self.strict = config.strict
        self.validator = SpecValidator()
        self.base_url = ""
        # (route, endpoint, kind) for every generated API route; the fault middleware matches against it.
        self.api_routes: RouteTable = []
        self.epoch = 0  # bumped by each reset: a request delayed across one is dropped, not counted
        # Work from before a reset dropped uncounted (a request a slow fault held, a webhook delivery): kept
        # across resets, since it is what a reset left behind.
        self.dropped_after_reset = 0

    def set_base_url(self, url: str) -> None:
        """Tell the state its own URL (for the presigned URLs it hands out)."""
        self.base_url = url
        self.state.files_url = url + "/__files"

    def reset(self) -> None:
        """Back to the seed state: objects, counters, faults, request log, switches and clock speed."""
        self.epoch += 1
        self.state.reset()
        self.faults.configure(self.config.faults, self.config.seed)
        self.request_log.clear()
        self.gateway_new_format = self.config.gateway_new_format
        self.gateway_unlisted = self.config.gateway_unlisted
        self.predict_latency = self.config.predict_latency
        self.predict_capacity = self.config.predict_capacity
        self.capacity_counts = {"rejected": 0, "peak_inflight": 0}
        self.strict = self.config.strict
        self.clock.set_time_scale(self.config.time_scale)

    def stale(self, epoch: int) -> bool:
        """Whether work that started in ``epoch`` has outlived a reset; if so it is counted as dropped (the caller
        drops it: it belongs to what ran before the reset and must not act on, or be counted in, the fresh state).

        :param epoch: :attr:`epoch` when the work started.
        """
        if epoch == self.epoch:
            return False
        self.dropped_after_reset += 1
        return True

    def counters(self) -> dict[str, dict[str, int]]:
        """A JSON copy of every counter."""
        with self.state.lock:
            counts = {k: dict(v) for k, v in self.state.counters.items()}
        counts["capacity"] = dict(self.capacity_counts)
        counts["reset"] = {"epoch": self.epoch, "dropped": self.dropped_after_reset}
        return counts

    def redact(self, text: str) -> str:
        """``text`` without the configured API key."""
        key = self.config.api_key
        return text.replace(key, "***") if key and key in text else text

    def record(
        self,
        method: str,
        path: str,
        query: Any,
        endpoint: str | None,
        kind: str,
        status: int,
        auth: str | None,
        fault: str | None = None,
    ) -> None:
        """Append a redacted entry to the request log and count the response status (not for a request that
        started before a reset: a sync predict's latency, a cold start's wait, spanning it)."""
        started = _REQUEST_EPOCH.get()
        if started is not None and self.stale(started):
            return
        self.state.counters["responses"][str(status)] += 1
        self.request_log.append(
            {
                "time": iso(self.clock.now()),
                "method": method,
                "path": self.redact(path),
                # api_token is the key on LowCodeAPI; any value there is masked, right or wrong.
                "query": {k: ("***" if k == "api_token" else self.redact(v)) for k, v in query.items()},
                "endpoint": endpoint,
                "surface": kind,
                "status": status,
                "auth": auth,
                "fault": fault,
            }
        )


#: The reset epoch an API request started in (set by its handler; the same task answers it).
_REQUEST_EPOCH: ContextVar[int | None] = ContextVar("emulator_request_epoch", default=None)


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# What the Truss server adds to the answer when the model's own code raised (truss: _truss_common/errors.py).
MODEL_ERROR_HEADERS = {"X-BASETEN-ERROR-SOURCE": "04", "X-BASETEN-ERROR-CODE": "600"}


def _respond(
    core: EmulatorCore,
    request: Request,
    ep: Endpoint,
    kind: str,
    status: int,
    payload: Any,
    auth: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    core.record(request.method, request.url.path, request.query_params, ep.name, kind, status, auth)
    if kind != "direct" and status < 400:
        payload = {"data": payload}
    if payload is None:
        return Response(status_code=status, headers=headers)
    return Response(_json(payload), status_code=status, headers=headers, media_type="application/json")


def _authenticate(core: EmulatorCore, request: Request, kind: str) -> tuple[bool, str | None]:
    """Whether the request carries the configured key, and how it presented one (for the log)."""
    expected = core.config.api_key.encode()
    if kind == "direct":
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "api-key"):
            return False, None
        return hmac.compare_digest(token.strip().encode(), expected), scheme
    api_token = request.query_params.get("api_token")
    if api_token is None:
        return False, None
    return hmac.compare_digest(api_token.encode(), expected), "api_token"


def _handler(core: EmulatorCore, ep: Endpoint, kind: str) -> Any:
    """The request handler for one endpoint in one surface."""
    inference = ep.surface != "management"
    guarded = kind == "new" and ep.has_old_format  # answers 404 when the new format is switched off
    unlisted = kind != "direct" and not ep.in_gateway_reference  # answers 404 when the gateway lacks them
    sync_predict = ep.name.endswith("_predict") and not ep.name.endswith("_async_predict")
    target = ep.name[: -len("_predict")] if sync_predict else ""
    sync_route = ep.name.endswith("_sync") or ep.surface == "model_apis"
    regional = ep.name in _REGIONAL

    async def handle(request: Request) -> Response:
        _REQUEST_EPOCH.set(core.epoch)
        state = core.state
        state.counters["requests"][ep.name] += 1
        if (guarded and not core.gateway_new_format) or (unlisted and not core.gateway_unlisted):
            return _respond(core, request, ep, kind, 404, error_body(kind, ep.surface, 404, "Not Found"), None)
        ok, auth = _authenticate(core, request, kind)
        if not ok:
            what = "api_token" if kind != "direct" else "API key"
            body = error_body(kind, ep.surface, 401, f"Invalid or missing {what}.", "unauthorized")
            return _respond(core, request, ep, kind, 401, body, auth)
        headers = {"X-BASETEN-REQUEST-ID": uuid.uuid4().hex} if inference else None
        try:
            qp = request.query_params
            pp = request.path_params
            given = {p: pp[p] if p in pp else qp.get(p) for p in ep.params}
            missing = [p for p, v in given.items() if not v]
            if missing:
                raise ApiError(404, f"Missing path parameter {missing[0]}")
            params: dict[str, str] = {p: str(v) for p, v in given.items()}
            model_id = (pp.get("model_id") if kind == "direct" else state.default_model_id()) if inference else None
            if ep.surface == "chain":
                model_id = pp.get("chain_id")
            body = await _read_body(core, request, ep, kind, params)
            if regional:
                model_id, params["env_name"] = _regional_host(model_id)
            if sync_predict:
                status, payload = await _predict(core, target, params, model_id, body)
            elif sync_route:
                status, payload = await _openai(core, ep, params, model_id, body)
            else:
                query = {k: qp.getlist(k) if k in _LIST_PARAMS else v for k, v in qp.items() if k != "api_token"}
                status, payload = state.handle(ep.name, params, query, body, model_id)
        except ApiError as exc:
            status = exc.status
            payload = {**error_body(kind, ep.surface, exc.status, exc.message, exc.error_code), **exc.extra}
            if headers is not None and exc.error_code == "application_error":
                headers.update(MODEL_ERROR_HEADERS)
        if status == 202 and kind == "direct":
            payload = None
        return _respond(core, request, ep, kind, status, payload, auth, headers)

    return handle


def _regional_host(host_id: str | None) -> tuple[str, str]:
    """``(model or chain id, environment)`` of a regional host's id part, ``{id}-{env_name}``.

    Baseten's ids are letters and digits, so the first hyphen ends the id. A bare path on a model's or chain's
    own host (no environment in it) is a 404, as Baseten serves bare paths on regional hosts only.
    """
    host_id = host_id or ""
    object_id, _, env = host_id.partition("-")
    if not object_id or not env:
        raise ApiError(
            404, "Bare inference paths are served on regional hosts ({id}-{env_name}) only.", "model_does_not_exist"
        )
    return object_id, env


async def _read_body(core: EmulatorCore, request: Request, ep: Endpoint, kind: str, params: dict[str, str]) -> Any:
    """The request's body, validated against Baseten's spec when the emulator is strict (the default).

    On the gateway the spec's rules apply to what LowCodeAPI forwards: the body, and the query less
    ``api_token`` and the path parameters that the old URL format moves into the query. A route the specs
    do not describe is read as the lenient emulator reads it.
    """
    raw = await request.body()
    rules = core.validator.rules(ep) if core.strict else None
    if rules is not None:
        qp = request.query_params
        skip = {"api_token", *ep.params} if kind != "direct" else ()
        query = {k: qp.getlist(k) for k in qp if k not in skip}
        return rules.check(params, query, request.headers.get("content-type"), raw)
    if not ep.body or not raw.strip():  # the row says whether the endpoint takes a body
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.", "client_error") from None


async def _predict(
    core: EmulatorCore, target: str, params: dict[str, str], model_id: str | None, body: Any
) -> tuple[int, Any]:
    """A sync predict: wait for a cold start, add the configured latency, run the echo model.

    With ``predict_capacity`` set, a predict that arrives while that many are being served is refused with
    a 503 at once (counted in ``capacity.rejected``).
    """
    capacity = core.predict_capacity
    if capacity is not None and core.predict_inflight >= capacity:
        core.capacity_counts["rejected"] += 1
        raise ApiError(503, "The deployment is at capacity; retry later.", "over_capacity")
    core.predict_inflight += 1
    core.capacity_counts["peak_inflight"] = max(core.capacity_counts["peak_inflight"], core.predict_inflight)
    try:
        return await _serve_predict(core, target, params, model_id, body)
    finally:
        core.predict_inflight -= 1


async def _serve_predict(
    core: EmulatorCore, target: str, params: dict[str, str], model_id: str | None, body: Any
) -> tuple[int, Any]:
    mid, did, ready = core.state.predict_target(target, params, model_id)
    if ready > core.clock.now() and not await core.clock.sleep_until(ready, core.config.cold_start_timeout):
        raise ApiError(500, "Timed out waiting for the deployment to wake up; retry.", "model_not_ready")
    if core.predict_latency > 0:
        await asyncio.sleep(core.predict_latency)
    if isinstance(body, bytes):  # a binary (octet-stream or multipart) input: the echo model reports its size
        body = {"binary_input_bytes": len(body)}
    if isinstance(body, dict) and body.get("fail"):
        status = body.get("status", 500)
        status = status if isinstance(status, int) and 400 <= status < 600 else 500
        raise ApiError(status, "The model raised an exception (emulated).", "application_error")
    return 200, model_output(mid, did, body)


async def _openai(
    core: EmulatorCore, ep: Endpoint, params: dict[str, str], model_id: str | None, body: Any
) -> tuple[int, Any]:
    """A ``/sync/{route}`` call on a deployment (which must be up, as for predict) or a Model APIs call."""
    from airflow_provider_baseten.emulator.handlers import openai

    _count_texts(core, params["route"], body)

    if ep.surface == "model_apis":
        with core.state.lock:
            core.state.submissions["model_apis"] += 1
        if core.predict_latency > 0:
            await asyncio.sleep(core.predict_latency)
        answer = openai.model_apis(params["route"], body)
        usage = answer.get("usage") or {}
        core.state.record_model_api_usage(
            body["model"], usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        )
        return 200, answer
    target = ep.name[: -len("_sync")]
    mid, did, ready = core.state.predict_target(target, params, model_id)
    if ready > core.clock.now() and not await core.clock.sleep_until(ready, core.config.cold_start_timeout):
        raise ApiError(500, "Timed out waiting for the deployment to wake up; retry.", "model_not_ready")
    if core.predict_latency > 0:
        await asyncio.sleep(core.predict_latency)
    return 200, openai.answer(params["route"], body, f"{mid}/{did}")


def _count_texts(core: EmulatorCore, route: str, body: Any) -> None:
    """Count the texts an embeddings request carries (``counters()["texts"]["embeddings"]``): what a client
    cache must not send again is counted here, on the server."""
    if route.strip("/").removeprefix("v1/") != "embeddings" or not isinstance(body, dict):
        return
    given = body.get("input")
    with core.state.lock:
        core.state.counters["texts"]["embeddings"] += len(given) if isinstance(given, list) else 1


def _route_variants(ep: Endpoint) -> list[tuple[str, str]]:
    """(path, kind) for every way ``ep`` is reachable."""
    if ep.surface in ("chain", "model_apis"):  # their own hosts; LowCodeAPI has neither
        return [((CHAIN_PREFIX if ep.surface == "chain" else MODEL_APIS_PREFIX) + ep.path, "direct")]
    direct = (INFERENCE_PREFIX + ep.path) if ep.surface == "inference" else ep.path
    new_path = GATEWAY_PREFIX + (ep.gateway_path or ep.path)
    variants = [(direct, "direct"), (new_path, "new")]
    if ep.has_old_format:
        old_path, _ = ep.gateway_request({p: p for p in ep.params}, "old")
        variants.append((GATEWAY_PREFIX + old_path, "old"))
    return variants


def _api_routes(core: EmulatorCore) -> list[Route]:
    routes: list[tuple[int, Route, Endpoint, str]] = []
    for ep in ENDPOINTS:
        for path, kind in _route_variants(ep):
            route = Route(path, _handler(core, ep, kind), methods=[ep.method], name=f"{ep.name}:{kind}")
            routes.append((path.count("{"), route, ep, kind))
    # Literal segments must win over parameters (``deployments/production`` before ``deployments/{id}``,
    # ``/baseten/v1/models/modelid`` before ``/baseten/v1/models/{model_id}``): fewest parameters first.
    routes.sort(key=lambda r: r[0])
    core.api_routes = [(r, ep, kind) for _, r, ep, kind in routes]
    return [r for _, r, _, _ in routes]


def match_endpoint(core: EmulatorCore, scope: Scope) -> tuple[Endpoint, str] | None:
    """The endpoint and surface kind a request is for (``None``: not an API route)."""
    return match_route(core.api_routes, scope)


def _admin_router(core: EmulatorCore) -> APIRouter:
    r = APIRouter(prefix="/__admin", tags=["admin"])

    @r.get("/health")
    def health() -> dict[str, Any]:
        """Liveness."""
        return {"status": "ok", "url": core.base_url}

    @r.get("/state")
    def state() -> dict[str, Any]:
        """Every object the emulator holds (no secret values or API key plaintexts: it never keeps them)."""
        return core.state.snapshot()

    @r.post("/reset")
    def reset() -> dict[str, Any]:
        """Back to the seed state; clears counters, faults (to the start config) and the request log."""
        core.reset()
        return {"reset": True}

    @r.get("/counters")
    def counters() -> dict[str, Any]:
        """Requests per endpoint name, submissions, cancellations, webhooks, faults, responses per status."""
        return core.counters()

    @r.get("/requests")
    def requests(limit: int = 1000) -> dict[str, Any]:
        """The most recent requests, redacted (``api_token`` and the key never appear)."""
        items = list(core.request_log)[-limit:]
        return {"requests": items, "count": len(items)}

    @r.delete("/requests")
    def clear_requests() -> dict[str, Any]:
        """Empty the request log."""
        core.request_log.clear()
        return {"cleared": True}

    @r.get("/faults")
    def get_faults() -> dict[str, Any]:
        """The fault rules in force."""
        return core.faults.describe()

    @r.post("/faults")
    def set_faults(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Replace (or with ``"append": true`` extend) the fault rules: ``{"seed": 1, "rules": [...]}``."""
        unknown = set(body) - {"rules", "seed", "append"}
        if unknown or "rules" not in body:
            # A typo ({"faults": [...]}) must not silently clear every rule.
            raise ApiError(422, f"Give {{'rules': [...]}} (and optionally 'seed', 'append'); got keys {sorted(body)}.")
        try:
            rules = [FaultRule(**rule) for rule in body.get("rules", [])]
        except (TypeError, ValueError) as exc:
            raise ApiError(422, f"Bad fault rule: {exc}") from None
        if body.get("append"):
            rules = core.faults.rules + rules
        core.faults.configure(rules, body.get("seed", core.faults.seed))
        return core.faults.describe()

    @r.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        """Stop injecting faults."""
        core.faults.configure([], core.faults.seed)
        return core.faults.describe()

    @r.get("/clock")
    def get_clock() -> dict[str, Any]:
        """The emulated time and speed."""
        return {"now": iso(core.clock.now()), "epoch": core.clock.now(), "time_scale": core.clock.time_scale}

    @r.post("/clock")
    def set_clock(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """``{"time_scale": x}`` changes the speed; ``{"advance": seconds}`` jumps ahead."""
        try:
            if body.get("time_scale") is not None:
                core.clock.set_time_scale(float(body["time_scale"]))
            if body.get("advance"):
                core.clock.advance(float(body["advance"]))
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        return get_clock()

    @r.get("/gateway")
    def get_gateway() -> dict[str, Any]:
        """Whether LowCodeAPI's new URL format answers."""
        return {"new_format": core.gateway_new_format, "unlisted": core.gateway_unlisted}

    @r.post("/gateway")
    def set_gateway(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """``{"new_format": false}`` makes new-format URLs answer 404, so clients must fall back;
        ``{"unlisted": false}`` makes the endpoints the gateway's reference does not list answer 404."""
        core.gateway_new_format = bool(body.get("new_format", core.gateway_new_format))
        core.gateway_unlisted = bool(body.get("unlisted", core.gateway_unlisted))
        return get_gateway()

    @r.post("/config")
    def set_config(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Change ``predict_latency`` (real s), ``predict_capacity`` (int or null), ``training_fail``,
        ``promotion_fail``, ``deploy_fail`` (``BUILD_FAILED``, ``DEPLOY_FAILED``, ``UNHEALTHY`` or null),
        ``strict`` (bool) and/or ``webhook_secrets`` (a list; the answer says only how many sign)."""
        if "predict_latency" in body:
            core.predict_latency = float(body["predict_latency"])
        if "predict_capacity" in body:
            cap = body["predict_capacity"]
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
                raise ApiError(422, f"predict_capacity must be a positive integer or null, got {cap!r}")
            core.predict_capacity = cap
        if "training_fail" in body:
            core.state.training_fail = bool(body["training_fail"])
        if "promotion_fail" in body:
            core.state.promotion_fail = bool(body["promotion_fail"])
        if "deploy_fail" in body:
            core.state.deploy_fail = body["deploy_fail"] or None
        if "strict" in body:
            core.strict = bool(body["strict"])
        if "webhook_secrets" in body:  # a rotation: sign with these from now on
            core.config.webhook_secrets = [str(s) for s in body["webhook_secrets"] or []]
        return {
            "predict_latency": core.predict_latency,
            "predict_capacity": core.predict_capacity,
            "training_fail": core.state.training_fail,
            "promotion_fail": core.state.promotion_fail,
            "deploy_fail": core.state.deploy_fail,
            "strict": core.strict,
            "webhook_secrets": len(core.config.signing_secrets()),
        }

    @r.post("/models/{model_id}/deployments")
    def create_deployment(model_id: str, body: dict[str, Any] = Body(default={})) -> dict[str, Any]:  # noqa: B008
        """Push a new deployment (BUILDING -> DEPLOYING -> ACTIVE); ``{"name", "status", "fail", "fail_times"}``
        optional (``fail``: BUILD_FAILED, DEPLOY_FAILED or UNHEALTHY, with ERROR lines in its logs)."""
        return core.state.create_deployment(
            model_id,
            body.get("name"),
            body.get("status", "BUILDING"),
            fail=body.get("fail"),
            fail_times=int(body.get("fail_times", 1)),
        )

    @r.post("/models/{model_id}/deployments/{deployment_id}/logs")
    def add_logs(model_id: str, deployment_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Append log lines: ``{"logs": [{"timestamp": <epoch ns>, "message", "level", "replica"}]}``."""
        return {"count": core.state.add_logs(model_id, deployment_id, body.get("logs", []))}

    @r.post("/models/{model_id}/deployments/{deployment_id}/scale_to_zero")
    def scale_to_zero(model_id: str, deployment_id: str) -> dict[str, Any]:
        """Scale a deployment to zero (as Baseten does after its scale-down delay)."""
        return core.state.scale_to_zero(model_id, deployment_id)

    @r.get("/webhooks")
    def webhooks() -> dict[str, Any]:
        """Webhook deliveries so far."""
        with core.state.lock:
            return {"deliveries": list(core.state.webhook_log)}

    return r


WEBHOOK_DELIVERY = "webhook_delivery"  # the fault-rule endpoint name for the emulator's delivery attempts
_RETRIED = frozenset({500, 502, 503, 504})  # Baseten retries these (and timeouts, connection failures) only


def _signature(secrets: list[str], body: bytes) -> str:
    """``v1=<hex>`` per secret, comma-separated: during a rotation Baseten signs with the old and new secret.

    Written here, not imported from the receiver, so the receiver's tests check it against an independent signer.
    """
    return ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)


async def _attempt(core: EmulatorCore, client: httpx.AsyncClient, url: str, body: bytes, headers: Any) -> str:
    """One delivery attempt; its outcome as ``HTTP <status>`` or the name of the error (``ConnectError``)."""
    rule = core.faults.pick(WEBHOOK_DELIVERY, "webhook", named_only=True)
    if rule is not None:
        core.state.counters["faults"][WEBHOOK_DELIVERY + ":" + rule.kind] += 1
    timeout = core.config.webhook_timeout
    if rule is not None and rule.kind == "slow":
        # A slow receiver: the answer comes after ``delay``, or the attempt times out first.
        await asyncio.sleep(min(rule.delay, timeout))
        if rule.delay >= timeout:
            if rule.after:
                await _post(client, url, body, headers, timeout)
            return "ReadTimeout"
        rule = None
    if rule is None or (not rule.kind[-3:].isdigit() and rule.kind != "drop"):
        return await _post(client, url, body, headers, timeout)  # no fault, or one that means nothing here
    if not rule.after:
        return "ConnectError" if rule.kind == "drop" else f"HTTP {rule.kind[-3:]}"
    await _post(client, url, body, headers, timeout)
    # after: the receiver got the body, but its answer is lost (drop) or replaced by the fault's status.
    return "ReadError" if rule.kind == "drop" else f"HTTP {rule.kind[-3:]}"


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: Any, timeout: float) -> str:
    try:
        response = await client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return f"HTTP {response.status_code}"


def _retryable(outcome: str) -> bool:
    if outcome.startswith("HTTP "):
        return int(outcome[5:]) in _RETRIED
    return True  # a timeout or a connection failure


async def _deliver(core: EmulatorCore, client: httpx.AsyncClient, req: Any, payload: dict[str, Any]) -> None:
    """Deliver one async result as Baseten does: up to ``webhook_attempts`` POSTs, ``webhook_retry_delay``
    emulated seconds apart, each within ``webhook_timeout``; only timeouts, connection failures and 500, 502,
    503, 504 are retried. Signed with every configured secret."""
    body = _json(payload)
    headers = {"Content-Type": "application/json", "X-BASETEN-REQUEST-ID": req.request_id}
    secrets = core.config.signing_secrets()
    if secrets:
        headers["X-BASETEN-SIGNATURE"] = _signature(secrets, body)
    outcome = ""
    epoch = core.epoch  # a reset mid-delivery: the request is gone, so is this delivery (never counted anew)
    for attempt in range(max(1, core.config.webhook_attempts)):
        if attempt:
            clock = core.state.clock
            await clock.sleep_until(clock.now() + core.config.webhook_retry_delay, max_real=3600)
        if core.stale(epoch):
            return
        outcome = await _attempt(core, client, req.webhook_endpoint, body, headers)
        if core.stale(epoch):
            return
        core.state.webhook_attempted(req, outcome)
        if not _retryable(outcome):
            break
    ok = outcome.startswith("HTTP 2")
    core.state.webhook_done(req, ok, outcome)


class _DropNoise(logging.Filter):
    """Hide uvicorn's complaint about the deliberate connection drops of the ``drop`` fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ASGI callable should return None")


def create_app(core: EmulatorCore) -> Any:
    """The ASGI app for ``core``: FastAPI (API + admin) wrapped in the fault-injection middleware."""
    tasks: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # No connection cap: Baseten sends each webhook on its own, so one waiting for a pooled connection
        # would time out here where Baseten's would not.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        client = httpx.AsyncClient(timeout=core.config.webhook_timeout, limits=limits)

        async def ticker() -> None:
            # Async requests finish "by themselves": look for finished ones with a webhook to call.
            while True:
                try:
                    for req, payload in core.state.due_webhooks():
                        task = asyncio.create_task(_deliver(core, client, req, payload))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                except Exception:  # pragma: no cover - keep ticking whatever one delivery did
                    log.exception("emulator ticker failed")
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        try:
            yield
        finally:
            tick.cancel()
            for task in list(tasks):
                task.cancel()
            await client.aclose()

    app = FastAPI(
        title="Baseten emulator", lifespan=lifespan, docs_url="/__admin/docs", openapi_url="/__admin/openapi.json"
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    app.include_router(_admin_router(core))

    @app.get("/__files/{path:path}", include_in_schema=False)
    def files(path: str) -> Response:
        """Stand-in content for the presigned URLs the training endpoints hand out."""
        return Response(hashlib.sha256(path.encode()).hexdigest().encode() * 32, media_type="application/octet-stream")

    from airflow_provider_baseten.emulator.s3 import PREFIX, put_object

    app.router.routes.append(Route(PREFIX + "/{bucket}/{key:path}", put_object(core), methods=["PUT"]))
    app.router.routes.extend(_api_routes(core))
    logging.getLogger("uvicorn.error").addFilter(_DropNoise())
    return FaultMiddleware(app, core)


__all__ = ["EmulatorCore", "create_app", "error_body", "match_endpoint"]
