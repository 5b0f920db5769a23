"""Shared helpers of the unit tests: a recording MockTransport, a hook factory, and the endpoint cases.

``CASES`` maps every endpoint name of ``_routes.ENDPOINTS`` (the code's single source of truth) to one hook
call that must reach it, with the JSON body and extra query parameters that call must send. Tests assert
that ``CASES`` covers the table exactly, so a new endpoint without a test case fails the suite.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_baseten.client.transport import RetryPolicy, Settings, Transport
from airflow_provider_baseten.hooks.baseten import BasetenHook

# Random per run, so no test passes because a fixed key happens to be hard-coded somewhere.
KEY = f"sk-unit-{secrets.token_hex(12)}"  # the connection's API key: must never show up anywhere
NEW_KEY = f"bt-created-{secrets.token_hex(12)}"  # what create_api_key returns: must never show up either
MODEL = "mdl1abc"
DEP = "dep2xyz"
ENV = "staging"
REQ = "req3qrs"
CHAIN = "chn4tuv"
PROJ = "tp5wxy"
JOB = "tj6zab"
PREFIX = "pfx7cd"

MANAGEMENT_HOST = "api.baseten.co"
GATEWAY_BASE = "https://api.lowcodeapi.com/baseten"

DEPLOYMENT = {"id": DEP, "model_id": MODEL, "name": "v1", "status": "ACTIVE", "is_production": True}
ENVIRONMENT = {"name": ENV, "model_id": MODEL, "current_deployment": DEPLOYMENT}
CHAIN_DEPLOYMENT = {"id": DEP, "chain_id": CHAIN, "status": "ACTIVE", "chainlets": [{"id": "cl1", "name": "RandInt"}]}
CHAIN_ENVIRONMENT = {"name": ENV, "chain_id": CHAIN, "current_deployment": CHAIN_DEPLOYMENT}
TRAINING_JOB = {"id": JOB, "training_project_id": PROJ, "current_status": "TRAINING_JOB_RUNNING"}
ASYNC_OPTIONS = {
    "webhook_endpoint": "https://example.com/hook",
    "priority": 1,
    "max_time_in_queue_seconds": 600,
    "inference_retry_config": {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 5000},
}


@dataclass
class Case:
    """One hook call and what it must put on the wire.

    :param method: Hook method name (the async twin is ``"a" + method``).
    :param params: The endpoint's path parameters, as the call fills them.
    :param body: The JSON body expected; ``None`` means no body at all.
    :param query: Query parameters expected besides path parameters and ``api_token``.
    :param response: What Baseten answers (LowCodeAPI wraps it in ``{"data": ...}``).
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)
    response: Any = None
    status: int = 200

    def call(self, hook: BasetenHook) -> Any:
        return getattr(hook, self.method)(*self.args, **self.kwargs)

    async def acall(self, hook: BasetenHook) -> Any:
        return await getattr(hook, "a" + self.method)(*self.args, **self.kwargs)


def direct_only(name: str) -> bool:
    """Endpoints LowCodeAPI has no route for: the hook refuses them through the gateway before sending.

    The production shortcut rows are the exception: through the gateway the hook sends those calls to a row
    the reference lists (the ``production`` environment's for inference, ``deployment_id="production"`` for
    activate, deactivate and autoscaling).
    """
    from airflow_provider_baseten.client.routes import endpoint

    return not endpoint(name).in_gateway_reference and name not in GATEWAY_REWRITES


#: Rows the hook does not send through the gateway, sending the same call to a row its reference lists instead.
GATEWAY_REWRITES = frozenset(
    {
        "production_predict",
        "production_async_predict",
        "production_async_queue_status",
        "activate_production_deployment",
        "deactivate_production_deployment",
        "update_production_autoscaling_settings",
    }
)


def _c(method: str, *args: Any, **kw: Any) -> Case:
    spec = {k: kw.pop(k) for k in ("params", "body", "query", "response", "status") if k in kw}
    return Case(method, args, kw, **spec)


_M = {"model_id": MODEL}
_CH = {"chain_id": CHAIN}
_CHD = {"chain_id": CHAIN, "chain_deployment_id": DEP}
_CHE = {"chain_id": CHAIN, "env_name": ENV}
_MD = {"model_id": MODEL, "deployment_id": DEP}
_ME = {"model_id": MODEL, "env_name": ENV}
_PJ = {"training_project_id": PROJ, "training_job_id": JOB}
_ACT = {"success": True}
_QUEUE = {"model_id": MODEL, "deployment_id": DEP, "num_queued_requests": 2, "num_in_progress_requests": 1}
_ASYNC = {"request_id": REQ}
_IN = {"prompt": "hello"}
PROJECT = {"id": PROJ, "name": "fine-tune", "created_at": "2026-01-01T00:00:00Z", "latest_job": None}
_RETRIED = {"retried": True, "reason": None, "deployment": DEPLOYMENT}
_DEPLOY = {"config": {"model_name": "my-model"}, "deployment_name": "v2"}
_KEY = "models/abc/model.tgz"
_CREDS = {"aws_access_key_id": "ASIAEXAMPLE", "aws_secret_access_key": "s" * 40, "aws_session_token": "t" * 64}
_CREATED = {"model": {"id": MODEL, "name": "my-model"}, "deployment": DEPLOYMENT}
_LOGS = {"logs": [{"timestamp": "1500000000", "message": "boom", "replica": "abcde", "level": "ERROR"}]}

_ITYPE = {
    "id": "A10Gx4x16",
    "name": "A10G",
    "memory_limit_mib": 16384,
    "millicpu_limit": 4000,
    "gpu_count": 1,
    "gpu_type": "A10G",
    "gpu_memory_limit_mib": 24576,
}

_MODEL_API = {
    "name": "deepseek-v3",
    "display_name": "DeepSeek V3",
    "description": "d",
    "release_date": "2026-01-15",
    "invoke_url": "https://inference.baseten.co/v1",
    "context_length": 131072,
    "cost_per_million_input_tokens": 0.5,
    "cost_per_million_output_tokens": "1.5",
    "rate_limits": [{"type": "REQUEST", "unit": "MINUTE", "threshold": 600}],
}

TEAM_ID = "team1234"
_TEAM = {"id": TEAM_ID, "name": "ml", "default": True, "created_at": "2026-01-01T00:00:00Z"}

_GROUP = {
    "name": "production",
    "team_id": TEAM_ID,
    "team_name": "ml",
    "manage_access": {"is_restricted": True, "users": [{"user_id": "u1"}]},
}

_LLM = {"model_id": MODEL, "version_id": DEP, "hostname": f"model-{MODEL}.api.baseten.co"}

_NEW_MODEL = {
    "source": {
        "kind": "model_archive",
        "name": "my-model",
        "s3_key": _KEY,
        "deployment": _DEPLOY,
        "disable_archive_download": False,
    }
}

CASES: dict[str, Case] = {
    # -- inference (model host) --
    "environment_predict": _c("predict", _IN, environment=ENV, params={"env_name": ENV}, body=_IN, response={"o": 1}),
    "development_predict": _c("predict", _IN, environment="development", body=_IN, response={"o": 1}),
    "deployment_predict": _c("predict", _IN, deployment_id=DEP, params={"deployment_id": DEP}, body=_IN, response=[1]),
    "production_predict": _c("predict", _IN, body=_IN, response="plain output"),
    "environment_async_predict": _c(
        "async_predict",
        _IN,
        environment=ENV,
        **ASYNC_OPTIONS,
        params={"env_name": ENV},
        body={"model_input": _IN, **ASYNC_OPTIONS},
        response=_ASYNC,
        status=201,
    ),
    "development_async_predict": _c(
        "async_predict", _IN, environment="development", body={"model_input": _IN}, response=_ASYNC, status=201
    ),
    "deployment_async_predict": _c(
        "async_predict",
        _IN,
        deployment_id=DEP,
        priority=0,
        params={"deployment_id": DEP},
        body={"model_input": _IN, "priority": 0},
        response=_ASYNC,
        status=202,
    ),
    "production_async_predict": _c(
        "async_predict",
        _IN,
        max_time_in_queue_seconds=10,
        body={"model_input": _IN, "max_time_in_queue_seconds": 10},
        response=_ASYNC,
        status=201,
    ),
    "get_async_request": _c(
        "get_async_request",
        REQ,
        params={"request_id": REQ},
        response={"request_id": REQ, "status": "QUEUED", "webhook_status": "PENDING", "errors": []},
    ),
    "cancel_async_request": _c(
        "cancel_async_request",
        REQ,
        params={"request_id": REQ},
        response={"request_id": REQ, "canceled": True, "message": "canceled"},
    ),
    "environment_async_queue_status": _c(
        "get_async_queue_status", environment=ENV, params={"env_name": ENV}, response=_QUEUE
    ),
    "development_async_queue_status": _c("get_async_queue_status", environment="development", response=_QUEUE),
    "deployment_async_queue_status": _c(
        "get_async_queue_status", deployment_id=DEP, params={"deployment_id": DEP}, response=_QUEUE
    ),
    "production_async_queue_status": _c("get_async_queue_status", response=_QUEUE),
    "production_wake": _c("wake", status=202),
    "development_wake": _c("wake", environment="development", status=202),
    "deployment_wake": _c("wake", deployment_id=DEP, params={"deployment_id": DEP}, status=202),
    "environment_wake": _c("wake", environment=ENV, params={"env_name": ENV}, status=202),
    # -- regional environments (the environment in the host, model-{MODEL}-{ENV}; bare paths) --
    "regional_predict": _c("predict", _IN, environment=ENV, regional=True, body=_IN, response={"o": 1}),
    "regional_async_predict": _c(
        "async_predict", _IN, environment=ENV, regional=True, body={"model_input": _IN}, response=_ASYNC, status=201
    ),
    "regional_async_queue_status": _c("get_async_queue_status", environment=ENV, regional=True, response=_QUEUE),
    "regional_wake": _c("wake", environment=ENV, regional=True, status=202),
    "chain_regional_run_remote": _c(
        "run_chain",
        {"names": ["x"]},
        chain_id=CHAIN,
        environment=ENV,
        regional=True,
        body={"names": ["x"]},
        response={"out": 1},
    ),
    "chain_regional_async_run_remote": _c(
        "async_run_chain",
        {"names": ["x"]},
        chain_id=CHAIN,
        environment=ENV,
        regional=True,
        body={"names": ["x"]},
        response=_ASYNC,
        status=201,
    ),
    # -- OpenAI-compatible (/sync passthrough on the model host, Model APIs) --
    "environment_sync": _c(
        "embeddings",
        ["a", "b"],
        environment=ENV,
        params={"env_name": ENV, "route": "v1/embeddings"},
        body={"input": ["a", "b"]},
        response={"data": [{"index": 0, "embedding": [0.5]}, {"index": 1, "embedding": [1.0]}]},
    ),
    "development_sync": _c(
        "chat_completions",
        [{"role": "user", "content": "hi"}],
        environment="development",
        max_tokens=5,
        params={"route": "v1/chat/completions"},
        body={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        response={"choices": [{"message": {"role": "assistant", "content": "yo"}}]},
    ),
    "deployment_sync": _c(
        "sync_request",
        "v1/completions",
        {"prompt": "p"},
        deployment_id=DEP,
        params={"deployment_id": DEP, "route": "v1/completions"},
        body={"prompt": "p"},
        response={"choices": []},
    ),
    "model_apis_request": _c(
        "rerank",
        "q",
        ["t"],
        model="reranker",
        model_apis=True,  # model= alone on a connection with a model_id is refused, not guessed
        params={"route": "rerank"},
        body={
            "query": "q",
            "texts": ["t"],
            "raw_scores": False,
            "return_text": False,
            "truncate": False,
            "truncation_direction": "Right",
            "model": "reranker",
        },
        response={"data": [{"index": 0, "score": 0.5}]},
    ),
    # -- chains (chain host) --
    **{
        f"chain_{target}_{action}": _c(
            f"{'async_' if action.startswith('async') else ''}run_chain",
            {"names": ["x"]},
            chain_id=CHAIN,
            **kw,
            params=params,
            body={"names": ["x"]},
            response=_ASYNC if action.startswith("async") else {"out": 1},
            status=201 if action.startswith("async") else 200,
        )
        for target, kw, params in (
            ("production", {}, {}),
            ("development", {"environment": "development"}, {}),
            ("environment", {"environment": ENV}, {"env_name": ENV}),
            ("deployment", {"deployment_id": DEP}, {"deployment_id": DEP}),
        )
        for action in ("run_remote", "async_run_remote")
    },
    "chain_get_async_request": _c(
        "get_async_request",
        REQ,
        chain_id=CHAIN,
        params={"request_id": REQ},
        response={"request_id": REQ, "chain_id": CHAIN, "status": "QUEUED", "errors": []},
    ),
    "chain_cancel_async_request": _c(
        "cancel_async_request", REQ, chain_id=CHAIN, params={"request_id": REQ}, response={"canceled": True}
    ),
    # -- models and chains --
    "list_models": _c("list_models", response={"models": [{"id": MODEL, "name": "m"}]}),
    "get_model": _c("get_model", MODEL, params=_M, response={"id": MODEL, "name": "m"}),
    "delete_model": _c("delete_model", MODEL, params=_M, response={"id": MODEL, "deleted": True}),
    "list_chains": _c("list_chains", response={"chains": [{"id": CHAIN}]}),
    "get_chain": _c("get_chain", CHAIN, params={"chain_id": CHAIN}, response={"id": CHAIN}),
    "delete_chain": _c("delete_chain", CHAIN, params={"chain_id": CHAIN}, response={"id": CHAIN, "deleted": True}),
    # -- chain deployments and environments --
    "list_chain_deployments": _c(
        "list_chain_deployments", CHAIN, params=_CH, response={"deployments": [CHAIN_DEPLOYMENT]}
    ),
    "get_chain_deployment": _c("get_chain_deployment", CHAIN, DEP, params=_CHD, response=CHAIN_DEPLOYMENT),
    "delete_chain_deployment": _c(
        "delete_chain_deployment", CHAIN, DEP, params=_CHD, response={"id": DEP, "deleted": True, "chain_id": CHAIN}
    ),
    "deactivate_chain_deployment": _c("deactivate_chain_deployment", CHAIN, DEP, params=_CHD, response=_ACT),
    "get_chainlet_logs": _c(
        "get_chainlet_logs",
        CHAIN,
        DEP,
        "cl1",
        min_level="ERROR",
        limit=10,
        params={**_CHD, "chainlet_id": "cl1"},
        query={"min_level": "ERROR", "limit": "10"},
        response=_LOGS,
    ),
    "list_chain_environments": _c(
        "list_chain_environments", CHAIN, params=_CH, response={"environments": [CHAIN_ENVIRONMENT]}
    ),
    "create_chain_environment": _c(
        "create_chain_environment",
        CHAIN,
        ENV,
        promotion_settings={"ramp_up_while_promoting": True},
        chainlet_settings={"RandInt": {"autoscaling_settings": {"min_replica": 1}, "instance_type_id": "2x8"}},
        params=_CH,
        body={
            "name": ENV,
            "promotion_settings": {"ramp_up_while_promoting": True},
            "chainlet_settings": [
                {"chainlet_name": "RandInt", "autoscaling_settings": {"min_replica": 1}, "instance_type_id": "2x8"}
            ],
        },
        response=CHAIN_ENVIRONMENT,
    ),
    "get_chain_environment": _c("get_chain_environment", CHAIN, ENV, params=_CHE, response=CHAIN_ENVIRONMENT),
    "update_chain_environment": _c(
        "update_chain_environment",
        CHAIN,
        ENV,
        promotion_settings={"rolling_deploy": True},
        params=_CHE,
        body={"promotion_settings": {"rolling_deploy": True}},
        response={"ok": True},
    ),
    "promote_to_chain_environment": _c(
        "promote_to_chain_environment",
        CHAIN,
        ENV,
        DEP,
        params=_CHE,
        body={"deployment_id": DEP, "scale_down_previous_deployment": True},
        response=CHAIN_DEPLOYMENT,
    ),
    "update_chainlet_autoscaling_settings": _c(
        "update_chainlet_autoscaling_settings",
        CHAIN,
        ENV,
        {"RandInt": {"max_replica": 3}},
        params=_CHE,
        body={"updates": [{"chainlet_name": "RandInt", "autoscaling_settings": {"max_replica": 3}}]},
        response={"status": "ACCEPTED", "message": "ok"},
    ),
    "update_chainlet_instance_types": _c(
        "update_chainlet_instance_types",
        CHAIN,
        ENV,
        {"RandInt": "2x8"},
        params=_CHE,
        body={"updates": [{"chainlet_name": "RandInt", "instance_type_id": "2x8"}]},
        response={"requires_redeployment": False, "chain_deployment": None, "chainlet_environment_settings": []},
    ),
    # -- deployments --
    "activate_environment": _c("activate_environment", ENV, params=_ME, response=_ACT),
    "activate_development_deployment": _c("activate_deployment", "development", params=_M, response=_ACT),
    "activate_deployment": _c("activate_deployment", DEP, params=_MD, response=_ACT),
    "deactivate_environment": _c("deactivate_environment", ENV, params=_ME, response=_ACT),
    "deactivate_development_deployment": _c("deactivate_deployment", "development", params=_M, response=_ACT),
    "deactivate_deployment": _c("deactivate_deployment", DEP, params=_MD, response=_ACT),
    "promote_to_environment": _c(
        "promote_deployment",
        DEP,
        environment=ENV,
        params=_ME,
        body={"deployment_id": DEP, "scale_down_previous_deployment": True, "preserve_env_instance_type": True},
        response=DEPLOYMENT,
    ),
    "cancel_promotion": _c("cancel_promotion", ENV, params=_ME, response={"status": "CANCELED", "message": "canceled"}),
    "promote_development_deployment": _c(
        "promote_deployment",
        "development",
        params=_M,
        body={"scale_down_previous_production": True, "preserve_env_instance_type": True},
        response=DEPLOYMENT,
    ),
    "promote_deployment": _c(
        "promote_deployment",
        DEP,
        scale_down_previous=False,
        preserve_env_instance_type=False,
        params=_MD,
        body={"scale_down_previous_production": False, "preserve_env_instance_type": False},
        response=DEPLOYMENT,
    ),
    "update_development_autoscaling_settings": _c(
        "update_autoscaling_settings",
        deployment_id="development",
        min_replica=0,
        max_replica=2,
        params=_M,
        body={"min_replica": 0, "max_replica": 2},
        response={"status": "ACCEPTED", "message": "ok"},
    ),
    "update_deployment_autoscaling_settings": _c(
        "update_autoscaling_settings",
        {"concurrency_target": 4, "scale_down_delay": 900},
        deployment_id=DEP,
        max_scale_down_rate=50,
        params=_MD,
        body={"concurrency_target": 4, "scale_down_delay": 900, "max_scale_down_rate": 50},
        response={"status": "QUEUED", "message": "ok"},
    ),
    "list_deployments": _c("list_deployments", params=_M, response={"deployments": [DEPLOYMENT]}),
    "get_production_deployment": _c("get_deployment", "production", params=_M, response=DEPLOYMENT),
    "get_development_deployment": _c("get_deployment", "development", params=_M, response=DEPLOYMENT),
    "get_deployment": _c("get_deployment", DEP, params=_MD, response=DEPLOYMENT),
    "delete_deployment": _c("delete_deployment", DEP, params=_MD, response={"id": DEP, "deleted": True}),
    # -- environments --
    "create_environment": _c(
        "create_environment",
        ENV,
        autoscaling_settings={"min_replica": 1, "max_replica": 3},
        promotion_settings={"redeploy_on_promotion": True},
        params=_M,
        body={
            "name": ENV,
            "autoscaling_settings": {"min_replica": 1, "max_replica": 3},
            "promotion_settings": {"redeploy_on_promotion": True},
        },
        response=ENVIRONMENT,
    ),
    "list_environments": _c("list_environments", params=_M, response={"environments": [ENVIRONMENT]}),
    "get_environment": _c("get_environment", ENV, params=_ME, response=ENVIRONMENT),
    "update_environment": _c(
        "update_environment",
        ENV,
        autoscaling_settings={"max_replica": 5},
        promotion_settings={"rolling_deploy": True},
        params=_ME,
        body={"autoscaling_settings": {"max_replica": 5}, "promotion_settings": {"rolling_deploy": True}},
        response={"status": "ACCEPTED", "message": "ok"},
    ),
    # -- secrets and API keys --
    "list_secrets": _c("list_secrets", response={"secrets": [{"id": "s1", "name": "hf_token"}]}),
    "upsert_secret": _c(
        "upsert_secret",
        "hf_token",
        "hf-secret-value-123",
        body={"name": "hf_token", "value": "hf-secret-value-123"},
        response={"id": "s1", "name": "hf_token"},
    ),
    "delete_secret": _c("delete_secret", "hf_token", params={"secret_name": "hf_token"}, response={"name": "hf_token"}),
    "list_api_keys": _c("list_api_keys", response={"keys": [{"prefix": PREFIX, "name": "ci", "type": "PERSONAL"}]}),
    "create_api_key": _c(
        "create_api_key",
        "WORKSPACE_INVOKE",
        name="ci",
        model_ids=[MODEL],
        body={"type": "WORKSPACE_INVOKE", "name": "ci", "model_ids": [MODEL]},
        response={"api_key": NEW_KEY},
    ),
    "delete_api_key": _c("delete_api_key", PREFIX, params={"prefix": PREFIX}, response={"prefix": PREFIX}),
    # -- training --
    "create_training_job": _c(
        "create_training_job",
        PROJ,
        {"image": {"base_image": "python:3.11"}, "name": "job"},
        params={"training_project_id": PROJ},
        body={"training_job": {"image": {"base_image": "python:3.11"}, "name": "job"}},
        response={"training_project": {"id": PROJ}, "training_job": TRAINING_JOB},
    ),
    "list_training_jobs": _c(
        "list_training_jobs",
        PROJ,
        params={"training_project_id": PROJ},
        response={"training_project": {"id": PROJ}, "training_jobs": [TRAINING_JOB]},
    ),
    "get_training_job": _c(
        "get_training_job",
        PROJ,
        JOB,
        params=_PJ,
        response={"training_project": {"id": PROJ}, "training_job": TRAINING_JOB},
    ),
    "search_training_jobs": _c(
        "search_training_jobs",
        project_id=PROJ,
        statuses=["TRAINING_JOB_RUNNING"],
        body={"project_id": PROJ, "statuses": ["TRAINING_JOB_RUNNING"]},
        response={"training_jobs": [TRAINING_JOB]},
    ),
    "stop_training_job": _c(
        "stop_training_job", PROJ, JOB, params=_PJ, body={}, response={"training_job": TRAINING_JOB}
    ),
    "recreate_training_job": _c(
        "recreate_training_job", PROJ, JOB, params=_PJ, response={"training_job": TRAINING_JOB}
    ),
    "get_training_job_checkpoints": _c(
        "get_training_job_checkpoints",
        PROJ,
        JOB,
        params=_PJ,
        response={"checkpoints": [{"checkpoint_id": "ck1", "size_bytes": 10}]},
    ),
    "get_training_job_checkpoint_files": _c(
        "get_training_job_checkpoint_files",
        PROJ,
        JOB,
        page_token=0,
        page_size=50,
        params=_PJ,
        query={"page_token": "0", "page_size": "50"},
        response={"presigned_urls": [], "next_page_token": None, "total_count": 0},
    ),
    "get_training_job_logs": _c(
        "get_training_job_logs",
        PROJ,
        JOB,
        start_epoch_millis=1000,
        end_epoch_millis=2000,
        limit=100,
        params=_PJ,
        query={"start_epoch_millis": "1000", "end_epoch_millis": "2000", "limit": "100"},
        response={"logs": [{"timestamp": "1500", "message": "step 1"}]},
    ),
    "get_training_job_metrics": _c(
        "get_training_job_metrics",
        PROJ,
        JOB,
        start_epoch_millis=1000,
        params=_PJ,
        query={"start_epoch_millis": "1000"},
        response={"cpu_usage": [], "gpu_utilization": {}},
    ),
    "download_training_job": _c(
        "download_training_job", PROJ, JOB, params=_PJ, response={"artifact_presigned_urls": ["https://s3/x"]}
    ),
    # -- beyond the gateway reference --
    "list_training_projects": _c("list_training_projects", response={"training_projects": [PROJECT]}),
    "get_training_project": _c(
        "get_training_project", PROJ, params={"training_project_id": PROJ}, response={"training_project": PROJECT}
    ),
    "create_training_project": _c(
        "create_training_project",
        "fine-tune",
        body={"training_project": {"name": "fine-tune"}},
        response={"training_project": PROJECT},
    ),
    "pause_promotion": _c("pause_promotion", ENV, params=_ME, response=_ACT),
    "resume_promotion": _c("resume_promotion", ENV, params=_ME, response=_ACT),
    "force_cancel_promotion": _c("force_cancel_promotion", ENV, params=_ME, response=_ACT),
    "force_roll_forward_promotion": _c("force_roll_forward_promotion", ENV, params=_ME, response=_ACT),
    "retry_production_deployment": _c("retry_deployment", "production", params=_M, response=_RETRIED),
    "retry_development_deployment": _c("retry_deployment", "development", params=_M, response=_RETRIED),
    "retry_deployment": _c("retry_deployment", DEP, params=_MD, response=_RETRIED),
    "get_deployment_logs": _c(
        "get_deployment_logs",
        DEP,
        start_epoch_millis=1000,
        end_epoch_millis=2000,
        min_level="ERROR",
        limit=100,
        direction="desc",
        includes=["CUDA", "OOM"],
        params=_MD,
        query={
            "start_epoch_millis": "1000",
            "end_epoch_millis": "2000",
            "min_level": "ERROR",
            "limit": "100",
            "direction": "desc",
            "includes": ["CUDA", "OOM"],
        },
        response=_LOGS,
    ),
    "get_environment_logs": _c(
        "get_environment_logs", ENV, replica="abcde", params=_ME, query={"replica": "abcde"}, response=_LOGS
    ),
    "get_deployment_metrics": _c(
        "get_deployment_metrics",
        DEP,
        mode="SERIES",
        start_epoch_millis=1000,
        metrics=["baseten_replicas_active"],
        params=_MD,
        query={"mode": "SERIES", "start_epoch_millis": "1000", "metrics": "baseten_replicas_active"},
        response={
            "mode": "SERIES",
            "start_epoch_millis": 1000,
            "end_epoch_millis": 2000,
            "step_seconds": 1,
            "metric_descriptors": [
                {"name": "baseten_replicas_active", "unit_hint": "COUNT", "kind": "GAUGE", "label_sets": [{}]}
            ],
            "metric_values": [{"start_epoch_millis": 1000, "values": [[1.0]]}],
        },
    ),
    # -- deploying over REST --
    "prepare_model_upload": _c(
        "prepare_model_upload",
        _DEPLOY,
        name="my-model",
        body={"deployment": _DEPLOY, "dry_run": False, "name": "my-model"},
        response={"creds": _CREDS, "s3_bucket": "b", "s3_key": _KEY, "s3_region": "us-west-2"},
    ),
    "create_model": _c(
        "create_model",
        "my-model",
        _KEY,
        _DEPLOY,
        body=_NEW_MODEL,
        response=_CREATED,
    ),
    "create_model_deployment": _c(
        "create_model_deployment",
        _KEY,
        _DEPLOY,
        params=_M,
        body={"source": {"kind": "model_archive", "s3_key": _KEY, "deployment": _DEPLOY}},
        response=_CREATED,
    ),
    # -- the caller, cost and capacity --
    "get_current_user": _c("get_current_user", response={"user_id": "u1", "email": "a@example.com"}),
    "list_instance_types": _c("list_instance_types", response={"instance_types": [_ITYPE]}),
    "list_instance_type_prices": _c(
        "list_instance_type_prices", response={"instance_types": [{"instance_type": _ITYPE, "price": 0.02012}]}
    ),
    "get_usage_summary": _c(
        "get_usage_summary",
        "2026-07-01",
        "2026-07-31T12:00:00Z",
        query={"start_date": "2026-07-01T00:00:00Z", "end_date": "2026-07-31T12:00:00Z"},
        response={"dedicated_usage": None, "training_usage": None, "model_apis_usage": None},
    ),
    "get_training_capacity": _c(
        "get_training_capacity",
        response={"gpu_capacities": [{"gpu_type": "A10G", "baseline": 4, "limit": 8, "usage_count": 1}]},
    ),
    # -- production shortcuts, deployment config / download / replicas --
    "activate_production_deployment": _c("activate_deployment", "production", params=_M, response=_ACT),
    "deactivate_production_deployment": _c("deactivate_deployment", "production", params=_M, response=_ACT),
    "update_production_autoscaling_settings": _c(
        "update_autoscaling_settings",
        deployment_id="production",
        max_replica=3,
        params=_M,
        body={"max_replica": 3},
        response={"status": "ACCEPTED", "message": "ok"},
    ),
    "get_deployment_config": _c(
        "get_deployment_config",
        DEP,
        output_format="parsed",
        params=_MD,
        query={"output_format": "parsed"},
        response={"config": {"model_name": "m"}, "raw_config": None},
    ),
    "get_deployment_download_url": _c(
        "get_deployment_download_url", DEP, params=_MD, response={"download_url": "https://s3.example/t.tgz?sig=1"}
    ),
    "terminate_replica": _c(
        "terminate_replica", DEP, "rabcd", params={**_MD, "replica_id": "rabcd"}, response={"success": True}
    ),
    # -- training: delete / update jobs, delete projects, cache --
    "delete_training_job": _c(
        "delete_training_job", PROJ, JOB, params=_PJ, response={"id": JOB, "deleted": True, "training_project_id": PROJ}
    ),
    "update_training_job": _c(
        "update_training_job",
        PROJ,
        JOB,
        priority=2,
        params=_PJ,
        body={"priority": 2},
        response={"training_job": TRAINING_JOB},
    ),
    "delete_training_project": _c(
        "delete_training_project",
        PROJ,
        params={"training_project_id": PROJ},
        response={"id": PROJ, "deleted": True},
    ),
    "get_training_project_cache_summary": _c(
        "get_training_project_cache_summary",
        PROJ,
        params={"training_project_id": PROJ},
        response={"timestamp": "2026-01-01T00:00:00Z", "project_id": PROJ, "file_summaries": []},
    ),
    # -- Model APIs catalogue and users (paged) --
    "list_model_apis": _c(
        "list_model_apis",
        limit=2,
        added_only=True,
        query={"limit": "2", "added_only": "true"},
        response={"items": [_MODEL_API], "pagination": {"has_more": True, "cursor": "2"}},
    ),
    "get_model_api": _c("get_model_api", "deepseek-v3", params={"model_api_name": "deepseek-v3"}, response=_MODEL_API),
    "list_users": _c(
        "list_users",
        cursor="c1",
        query={"cursor": "c1"},
        response={"items": [{"user_id": "u1"}], "pagination": {"has_more": False}},
    ),
    "get_user": _c("get_user", "u1", params={"user_id": "u1"}, response={"user_id": "u1", "email": None}),
    # -- teams and the team-scoped twins (team_id=) --
    "list_teams": _c("list_teams", response={"teams": [_TEAM]}),
    "get_team": _c("get_team", TEAM_ID, params={"team_id": TEAM_ID}, response=_TEAM),
    "list_team_secrets": _c(
        "list_secrets", team_id=TEAM_ID, params={"team_id": TEAM_ID}, response={"secrets": [{"name": "hf_token"}]}
    ),
    "upsert_team_secret": _c(
        "upsert_secret",
        "hf_token",
        "hf-secret-value-123",
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID},
        body={"name": "hf_token", "value": "hf-secret-value-123"},
        response={"id": "s1", "name": "hf_token"},
    ),
    "delete_team_secret": _c(
        "delete_secret",
        "hf_token",
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID, "secret_name": "hf_token"},
        response={"name": "hf_token"},
    ),
    "list_team_models": _c(
        "list_models", team_id=TEAM_ID, params={"team_id": TEAM_ID}, response={"models": [{"id": MODEL}]}
    ),
    "create_team_training_project": _c(
        "create_training_project",
        "fine-tune",
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID},
        body={"training_project": {"name": "fine-tune"}},
        response={"training_project": PROJECT},
    ),
    "create_team_api_key": _c(
        "create_api_key",
        "WORKSPACE_INVOKE",
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID},
        body={"type": "WORKSPACE_INVOKE"},
        response={"api_key": NEW_KEY},
    ),
    "get_training_job_queue_context": _c(
        "get_training_job_queue_context",
        JOB,
        params={"training_job_id": JOB},
        response={
            "target_job_id": JOB,
            "gpu_type": "H100",
            "requested_gpus": 8,
            "submitted_at": "2026-01-01T00:00:00Z",
            "active_at_submit": [],
            "pending_ahead_at_submit": [],
            "events": [],
            "events_window_end": "2026-01-01T00:05:00Z",
        },
    ),
    # -- environment groups (and their team twins) --
    "list_environment_groups": _c(
        "list_environment_groups", response={"items": [_GROUP], "pagination": {"has_more": False}}
    ),
    "get_environment_group": _c(
        "get_environment_group", "production", params={"env_name": "production"}, response=_GROUP
    ),
    "update_environment_group": _c(
        "update_environment_group",
        "production",
        is_restricted=True,
        user_ids=["u1"],
        params={"env_name": "production"},
        body={"manage_access": {"is_restricted": True, "user_ids": ["u1"]}},
        response=_GROUP,
    ),
    "list_team_environment_groups": _c(
        "list_environment_groups",
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID},
        response={"items": [_GROUP], "pagination": {"has_more": False}},
    ),
    "get_team_environment_group": _c(
        "get_environment_group",
        "production",
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID, "env_name": "production"},
        response=_GROUP,
    ),
    "update_team_environment_group": _c(
        "update_environment_group",
        "production",
        is_restricted=False,
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID, "env_name": "production"},
        body={"manage_access": {"is_restricted": False}},
        response=_GROUP,
    ),
    # -- BIS-LLM deploys --
    "create_llm_model": _c(
        "create_llm_model",
        "my-llm",
        {"accelerator": "H100"},
        llm_config={"build": {"checkpoint_repository": {"repo": "org/model"}}},
        body={
            "name": "my-llm",
            "resources": {"accelerator": "H100"},
            "llm_config": {"build": {"checkpoint_repository": {"repo": "org/model"}}},
        },
        response=_LLM,
    ),
    "create_team_llm_model": _c(
        "create_llm_model",
        "my-llm",
        {"accelerator": "H100"},
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID},
        body={"name": "my-llm", "resources": {"accelerator": "H100"}},
        response=_LLM,
    ),
    "create_llm_model_deployment": _c(
        "create_llm_model_deployment",
        {"accelerator": "H100"},
        llm_version="v2",
        params=_M,
        body={"resources": {"accelerator": "H100"}, "llm_version": "v2"},
        response=_LLM,
    ),
    "create_team_model": _c(
        "create_model",
        "my-model",
        _KEY,
        _DEPLOY,
        team_id=TEAM_ID,
        params={"team_id": TEAM_ID},
        body=_NEW_MODEL,
        response=_CREATED,
    ),
}


# -- the wire ----------------------------------------------------------------------------------------------
class Recorder:
    """An ``httpx.MockTransport`` handler that records every request and answers with ``responder``."""

    def __init__(self, responder: Callable[[httpx.Request], httpx.Response]) -> None:
        self.responder = responder
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responder(request)

    @property
    def count(self) -> int:
        return len(self.requests)


def answer(case: Case, *, gateway: bool) -> Callable[[httpx.Request], httpx.Response]:
    """A responder giving ``case``'s answer (enveloped for the gateway; wake answers 202 with no body)."""

    def respond(request: httpx.Request) -> httpx.Response:
        if case.response is None and not gateway:
            return httpx.Response(case.status)
        payload = {"data": case.response} if gateway else case.response
        return httpx.Response(case.status, json=payload)

    return respond


def settings(
    *,
    gateway: str = "baseten",
    url_format: str = "auto",
    auth_scheme: str = "Bearer",
    model_id: str | None = MODEL,
    retry: RetryPolicy | None = None,
) -> Settings:
    extra: dict[str, Any] = {"gateway": gateway, "url_format": url_format, "auth_scheme": auth_scheme}
    if model_id:
        extra["model_id"] = model_id
    kw = {"retry": retry} if retry is not None else {}
    return Settings.from_extra(api_key=KEY, host=None, extra=extra, **kw)


def make_hook(handler: Callable[[httpx.Request], Any], **kw: Any) -> BasetenHook:
    """A hook on a MockTransport; sleeps are recorded in ``hook.sleeps`` instead of taken."""
    s = settings(**kw)
    mock = httpx.MockTransport(handler)
    hook = BasetenHook(settings=s, http_transport=mock, async_http_transport=mock)
    sleeps: list[float] = []

    async def asleep(seconds: float) -> None:
        sleeps.append(seconds)

    # The hook builds its Transport lazily; give it one whose sleeps are recorded, not taken.
    hook._transport = Transport(s, transport=mock, async_transport=mock, sleep=sleeps.append, asleep=asleep)
    hook.sleeps = sleeps  # type: ignore[attr-defined]
    return hook


def query_of(request: httpx.Request) -> dict[str, Any]:
    """The request's query; a repeated parameter (``?includes=a&includes=b``) as the list of its values."""
    values: dict[str, list[str]] = {}
    for key, value in request.url.params.multi_items():
        values.setdefault(key, []).append(value)
    return {k: v if len(v) > 1 else v[0] for k, v in values.items()}


def body_of(request: httpx.Request) -> Any:
    """The request's JSON body, or ``None`` when it has none."""
    return json.loads(request.content) if request.content else None


_PARAM = re.compile(r"\{([a-z_]+)(?::path)?\}")


def fill(template: str, params: dict[str, str]) -> str:
    """A path template with ``params`` filled in (test-side, independent of the code under test)."""
    return _PARAM.sub(lambda m: params[m.group(1)], template)


def old_format(template: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The reference's old-format rule: each ``{param}`` becomes its name without underscores, the value
    moves to the query under the original name."""
    path = _PARAM.sub(lambda m: m.group(1).replace("_", ""), template)
    return path, {name: params[name] for name in _PARAM.findall(template)}


def main_request(rec: Recorder) -> httpx.Request:
    """The one request a hook call sends; a create that can be reconciled first sends one snapshot GET
    (what exists already, so an ambiguous failure is never answered with an object that was there before)."""
    reqs = rec.requests
    if len(reqs) == 2 and reqs[0].method == "GET" and reqs[1].method != "GET":
        return reqs[1]
    assert len(reqs) == 1, [f"{r.method} {r.url.path}" for r in reqs]
    return reqs[0]
