"""Emulator configuration: the API key, the clock, state durations, faults and the seed state.

Everything has a default, so ``EmulatorConfig(api_key="k")`` is a working emulator. A JSON file with the
same keys (see :func:`load_config`) configures the command-line emulator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FAULT_KINDS = ("400", "403", "429", "500", "502", "503", "504", "drop", "slow", "truncate", "html502")


@dataclass
class Durations:
    """How long each state lasts, in *emulated* seconds (divide by ``time_scale`` for real seconds)."""

    wake: float = 2.0  # SCALED_TO_ZERO -> WAKING_UP -> ACTIVE
    build: float = 3.0  # new deployment: BUILDING
    deploy: float = 2.0  # new deployment: DEPLOYING (also activating an INACTIVE deployment)
    loading_model: float = 1.0  # an uploaded deployment: LOADING_MODEL after DEPLOYING
    not_found_after_create: float = 0.0  # an uploaded deployment answers 404 on GET this long after its create
    promotion_releasing: float = 2.0  # in_progress_promotion RELEASING
    promotion_ramping: float = 3.0  # in_progress_promotion RAMPING_UP
    training_pending: float = 1.0
    training_created: float = 1.0
    training_deploying: float = 2.0
    training_running: float = 5.0
    checkpoint_sync: float = 2.0  # after a job completes, its checkpoints sync (SYNCING) this long
    async_queued: float = 0.5
    async_in_progress: float = 1.0
    async_status_ttl: float = 3600.0  # async status answers 404 this long after completion


@dataclass
class FaultRule:
    """One kind of fault, injected into a fraction of API requests.

    A rule naming the endpoint ``webhook_delivery`` acts on the emulator's own webhook delivery attempts
    instead, as a receiver would misbehave: ``drop`` is a receiver that is down (connection refused), ``slow``
    one that answers after ``delay`` real seconds (a timeout once ``delay`` reaches ``webhook_timeout``), and
    ``500``/``502``/``503``/``504``/``429`` one that answers that status. With ``after`` the body really is
    delivered first, and then the attempt fails anyway (a receiver that stored it but whose answer was lost),
    so the retry is a duplicate.

    :param kind: ``400`` (a request refused as bad, e.g. by a gateway), ``403`` (refused: e.g. a key without billing access on the usage summary), ``429``, ``500``, ``502``, ``503``, ``504``, ``drop`` (close the socket without an answer),
        ``slow`` (answer after ``delay`` real seconds), ``truncate`` (cut the JSON body in half) or
        ``html502`` (a 502 with an HTML error page, as a load balancer sends).
    :param rate: Probability per matching request, 0..1.
    :param endpoints: Endpoint names from ``_routes`` (e.g. ``["production_predict"]``), or the surfaces
        ``inference`` / ``management``; empty means every API endpoint.
    :param times: Inject at most this many times (``None``: no limit). ``rate=1, times=2`` fails exactly the
        next two matching requests.
    :param retry_after: Seconds for the ``Retry-After`` header of a 429.
    :param delay: Real seconds a ``slow`` fault waits before answering.
    :param skip: Let this many matching requests through untouched before the rule starts firing
        (``rate=1, times=1, skip=2`` fails exactly the third matching request).
    :param after: Apply the fault *after* the request took effect: the API handles the request (a create
        commits, a job starts, an async request is queued) and only then does the client get the 5xx,
        the dropped connection or the slow answer instead of the real response. This is the ambiguous
        failure that must never make a client send a create twice. (``truncate`` always acts after.)
    """

    kind: str
    rate: float = 1.0
    endpoints: list[str] = field(default_factory=list)
    times: int | None = None
    retry_after: float = 1.0
    delay: float = 2.0
    skip: int = 0
    after: bool = False

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate!r}")
        self.rate = float(self.rate)
        self.endpoints = list(self.endpoints or [])
        self.after = bool(self.after)

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """Parse the CLI form ``KIND[=RATE][@endpoint,endpoint][+after]``, e.g. ``429=0.1@production_predict``.

        A ``+after`` suffix applies the fault after the request took effect (``502@create_training_job+after``).
        """
        after = spec.endswith("+after")
        spec = spec.removesuffix("+after")
        where = ""
        if "@" in spec:
            spec, where = spec.split("@", 1)
        kind, _, rate = spec.partition("=")
        endpoints = [e for e in where.split(",") if e]
        return cls(kind=kind, rate=float(rate) if rate else 1.0, endpoints=endpoints, after=after)


@dataclass
class EmulatorConfig:
    """Everything the emulator can be told at start (most of it can also change at run time).

    :param api_key: The only key accepted (``Authorization: Bearer``/``Api-Key`` or ``?api_token=``).
    :param time_scale: Emulated seconds per real second (``0`` freezes the clock; advance it by hand).
    :param durations: State durations in emulated seconds.
    :param predict_latency: Real seconds each sync predict takes (the emulated model's latency).
    :param predict_capacity: Sync predicts served at once; one that arrives while this many are in flight is
        answered 503 at once, as an overloaded deployment is (``None``: no limit). The admin counters'
        ``capacity`` entry counts the refusals (``rejected``) and the most served at once (``peak_inflight``).
    :param cold_start_timeout: Real seconds a predict waits for a waking deployment before a 500.
    :param gateway_new_format: Whether LowCodeAPI's new URL format answers (``False``: 404, forcing fallback).
    :param faults: Fault rules; ``seed`` makes their random draws (and generated ids) repeatable.
    :param training_fail: Make every new training job end FAILED.
    :param promotion_fail: Make every new promotion end FAILED (its candidate fails during release).
    :param deploy_fail: Make every deployment created from an upload (``create_model``,
        ``create_model_deployment``) end this way: ``BUILD_FAILED``, ``DEPLOY_FAILED`` or ``UNHEALTHY``, with
        ERROR lines in its logs. ``None``: they become ACTIVE.
    :param rate_limits: Enforce Baseten's per-key limits (activate/deactivate 20/min, retry 10/min) with a 429
        and ``{"retry_after": seconds}``, on the emulated clock.
    :param gateway_unlisted: Whether the LowCodeAPI surface serves the endpoints its reference does not list
        (``False``: they answer 404, as a gateway that does not expose them would).
    :param billing_access: Whether the API key has billing access (``False``: the usage summary answers 403).
    :param webhook_secret: Sign webhook bodies (``X-BASETEN-SIGNATURE: v1=<hmac-sha256>``) with this.
    :param webhook_secrets: More active secrets, as during a rotation (old and new both valid for 24 h): the
        body is signed with each, and the header carries every signature, comma-separated
        (``v1=<new>,v1=<old>``). Changeable at run time through ``POST /__admin/config``.
    :param webhook_timeout: Real seconds each delivery attempt may take (Baseten: 10).
    :param webhook_attempts: Delivery attempts in all (Baseten: 2). Only a timeout, a connection failure and
        500, 502, 503 or 504 are retried; any other answer ends the delivery.
    :param webhook_retry_delay: *Emulated* seconds between attempts (Baseten: about 2).
    :param state: The seed state (models, chains, training projects, secrets, API keys); ``None``: defaults.
    :param request_log_size: How many requests the admin request log keeps.
    :param strict: Validate every request against Baseten's OpenAPI specs and answer 400/415/422 as Baseten
        does (default). ``False`` tolerates a lenient client: no body where the spec wants one, a body where
        it takes none, fields of the wrong type.
    """

    api_key: str = "test-api-key"
    time_scale: float = 1.0
    durations: Durations = field(default_factory=Durations)
    predict_latency: float = 0.0
    predict_capacity: int | None = None
    cold_start_timeout: float = 30.0
    gateway_new_format: bool = True
    faults: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    training_fail: bool = False
    promotion_fail: bool = False
    deploy_fail: str | None = None
    rate_limits: bool = True
    gateway_unlisted: bool = True
    billing_access: bool = True
    webhook_secret: str | None = None
    webhook_secrets: list[str] = field(default_factory=list)
    webhook_timeout: float = 10.0
    webhook_attempts: int = 2
    webhook_retry_delay: float = 2.0
    state: dict[str, Any] | None = None
    request_log_size: int = 10000
    strict: bool = True

    def __repr__(self) -> str:  # the API key stays out of reprs and logs
        return (
            f"EmulatorConfig(time_scale={self.time_scale!r}, faults={len(self.faults)}, strict={self.strict!r}, "
            "api_key='***')"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorConfig:
        """Build a config from a JSON-like dict (unknown keys are an error, to catch typos)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown emulator config keys: {sorted(unknown)}")
        data = dict(data)
        if isinstance(data.get("durations"), dict):
            data["durations"] = Durations(**data["durations"])
        faults = data.get("faults")
        if isinstance(faults, dict):  # {"seed": 1, "rules": [...]}
            if "seed" in faults:
                data["seed"] = faults["seed"]
            faults = faults.get("rules", [])
        if faults is not None:
            data["faults"] = [r if isinstance(r, FaultRule) else FaultRule(**r) for r in faults]
        config = cls(**data)
        if config.predict_capacity is not None and (
            isinstance(config.predict_capacity, bool)
            or not isinstance(config.predict_capacity, int)
            or config.predict_capacity < 1
        ):
            raise ValueError(f"predict_capacity must be a positive integer or null, got {config.predict_capacity!r}")
        return config

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data, with the API key and webhook secret masked."""
        out = asdict(self)
        out["api_key"] = "***"
        if out.get("webhook_secret"):
            out["webhook_secret"] = "***"
        out["webhook_secrets"] = ["***" for _ in self.webhook_secrets]
        return out

    def signing_secrets(self) -> list[str]:
        """Every secret webhook bodies are signed with: ``webhook_secret`` first, then ``webhook_secrets``."""
        secrets = ([self.webhook_secret] if self.webhook_secret else []) + list(self.webhook_secrets)
        return list(dict.fromkeys(secrets))


def load_config(path: str | Path, **overrides: Any) -> EmulatorConfig:
    """Read an :class:`EmulatorConfig` from a JSON file; ``overrides`` (not ``None``) win over the file."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the emulator config must be a JSON object")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return EmulatorConfig.from_dict(data)
