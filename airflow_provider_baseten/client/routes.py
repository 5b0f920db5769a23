"""The one table of Baseten endpoints the provider speaks to.

Everything that needs to know a path reads it from here: the hook (to build requests), the emulator
(to serve them), and the tests (to prove both gateways and both LowCodeAPI URL formats are right).

Each :class:`Endpoint` holds the *new* (direct) path template. The LowCodeAPI *old* format is derived
from it by one rule from the gateway reference: every ``{param}`` in the path becomes its name without
underscores (``{env_name}`` -> ``envname``) and the value moves to a query parameter of the original
name (``?env_name=...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

#: ``inference``: a model host; ``chain``: a chain host (``chain-{chain_id}.api.baseten.co``, its id passed as
#: the call's ``model_id``); ``model_apis``: Baseten's shared Model APIs (``inference.baseten.co/v1``);
#: ``management``: ``api.baseten.co``.
Surface = Literal["inference", "management", "chain", "model_apis"]

# ``{name}`` is one path segment; ``{name:path}`` (the ``/sync/{route:path}`` passthrough) may hold slashes.
_PARAM = re.compile(r"\{([a-z_]+)(?::path)?\}")


#: Whether a request that may already have taken effect may be sent again (after a timeout, a dropped
#: connection, a 500/502/504):
#:
#: * ``creates``: each request makes a new object (a second GPU job, a second queued prediction). The transport
#:   retries it only when the attempt provably did nothing (a connect error before sending, a 429, a 503 that
#:   shows no sign of work); otherwise the error is marked ``maybe_created`` and the hook reconciles (finds the
#:   object by name) where the API allows it.
#: * ``upsert``: a create-or-update by name: one object however often it is sent.
#: * ``safe``: sending it twice has the effect of once (it creates nothing, or its state change converges).
#:
#: ``None`` only for ``GET`` rows (a read is always safe); every other row must say which it is.
Repeat = Literal["creates", "upsert", "safe"]


@dataclass(frozen=True)
class RateLimit:
    """One of Baseten's per-key rate limits: at most ``limit`` requests in any ``per`` seconds.

    :param bucket: The endpoints whose rows hold the same bucket share one budget (Baseten counts
        ``deployments/{development|production|id}/activate`` as one endpoint).
    """

    bucket: str
    limit: int
    per: float


@dataclass(frozen=True)
class Endpoint:
    """One Baseten endpoint: every fact the transport, the hook, the emulator and the tests need about it.

    :param name: Stable identifier, used by the hook, the emulator and the tests.
    :param method: HTTP method.
    :param path: Path template with ``{param}`` placeholders (the direct API's, and LowCodeAPI's new format).
    :param surface: ``inference`` (model host) or ``management`` (``api.baseten.co``).
    :param category: The gateway reference's table this row belongs to (``None``: direct API only).
    :param gateway_path: Where LowCodeAPI documents a different path; path params absent from it are
        sent as query parameters.
    :param body: Whether the request takes a JSON body. Baseten's spec defines none for wake, activate,
        deactivate, cancel_promotion, recreate ..., and a strict server answers 415 to one.
    :param repeat: Whether a request that may have taken effect may be sent again (:data:`Repeat`).
    :param rate_limit: Baseten's per-key limit below its general 100/s, if any.
    :param long_read: The answer may wait for a cold start or a long inference (predict, sync, chain runs,
        Model APIs): its read timeout is :attr:`Timeouts.predict_read` instead of ``management_read``.
    """

    name: str
    method: str
    path: str
    surface: Surface
    category: str | None
    gateway_path: str | None = None
    body: bool = False
    repeat: Repeat | None = None
    rate_limit: RateLimit | None = None
    long_read: bool = False

    @property
    def creates(self) -> bool:
        """Each request makes a new object: never repeated once it may have taken effect."""
        return self.repeat == "creates"

    @property
    def upsert(self) -> bool:
        """A create that is idempotent by name (Baseten updates the object of that name instead of making a
        second one), so resending it after an ambiguous failure is safe."""
        return self.repeat == "upsert"

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the path parameters, in order."""
        return tuple(_PARAM.findall(self.path))

    @property
    def in_gateway_reference(self) -> bool:
        """Whether the LowCodeAPI reference lists this endpoint."""
        return self.category is not None

    def direct_path(self, params: dict[str, str]) -> str:
        """The direct API path with ``params`` filled in (each value percent-encoded)."""
        return _fill(self.path, params)

    def gateway_request(self, params: dict[str, str], url_format: Literal["new", "old"]) -> tuple[str, dict[str, str]]:
        """The LowCodeAPI path and extra query parameters for ``url_format``."""
        template = self.gateway_path or self.path
        in_path = set(_PARAM.findall(template))
        query = {k: params[k] for k in self.params if k not in in_path}
        if url_format == "new":
            return _fill(template, params), query
        old = _PARAM.sub(lambda m: m.group(1).replace("_", ""), template)
        return old, {**{k: params[k] for k in _PARAM.findall(template)}, **query}

    @property
    def has_old_format(self) -> bool:
        """Whether the old LowCodeAPI format differs from the new (only with path parameters)."""
        return bool(_PARAM.search(self.gateway_path or self.path))


def _fill(template: str, params: dict[str, str]) -> str:
    return _PARAM.sub(
        lambda m: quote(str(params[m.group(1)]), safe="/" if m.group(0).endswith(":path}") else ""), template
    )


def _ep(name: str, method: str, path: str, surface: Surface, category: str | None, **kw: Any) -> Endpoint:
    return Endpoint(name, method, path, surface, category, **kw)


_M = "/v1/models/{model_id}"
_D = _M + "/deployments"
_E = _M + "/environments"
_T = "/v1/training_projects/{training_project_id}/jobs"
_J = _T + "/{training_job_id}"
_C = "/v1/chains/{chain_id}"

# Baseten's per-key limits below the general 100/s (docs.baseten.co/reference/management-api/rate-limits).
# Environment activate/deactivate are not in Baseten's table; they share the deployment buckets, the safe guess.
_ACTIVATE = RateLimit("activate", 20, 60.0)
_DEACTIVATE = RateLimit("deactivate", 20, 60.0)
_RETRY = RateLimit("retry", 10, 60.0)

# Why each write may or may not be repeated is said once per group below; ``body=True`` where Baseten's spec
# defines a request body (tests/unit/test_spec_bodies.py checks every row against the spec).
# One line per endpoint, so a row reads (and diffs) as one fact set.
# fmt: off
ENDPOINTS: tuple[Endpoint, ...] = (
    # Inference: the 14 rows of the gateway reference ... Sync inference and wake create nothing; an async
    # predict queues a new request each time it is sent.
    _ep("environment_predict", "POST", "/environments/{env_name}/predict", "inference", "inference", body=True, repeat="safe", long_read=True),
    _ep("development_predict", "POST", "/development/predict", "inference", "inference", body=True, repeat="safe", long_read=True),
    _ep("deployment_predict", "POST", "/deployment/{deployment_id}/predict", "inference", "inference", body=True, repeat="safe", long_read=True),
    _ep("environment_async_predict", "POST", "/environments/{env_name}/async_predict", "inference", "inference", body=True, repeat="creates", long_read=True),
    _ep("development_async_predict", "POST", "/development/async_predict", "inference", "inference", body=True, repeat="creates", long_read=True),
    _ep("deployment_async_predict", "POST", "/deployment/{deployment_id}/async_predict", "inference", "inference", body=True, repeat="creates", long_read=True),
    _ep("get_async_request", "GET", "/async_request/{request_id}", "inference", "inference"),
    _ep("cancel_async_request", "DELETE", "/async_request/{request_id}", "inference", "inference", repeat="safe"),
    _ep("environment_async_queue_status", "GET", "/environments/{env_name}/async_queue_status", "inference", "inference"),
    _ep("development_async_queue_status", "GET", "/development/async_queue_status", "inference", "inference"),
    _ep("deployment_async_queue_status", "GET", "/deployment/{deployment_id}/async_queue_status", "inference", "inference"),
    _ep("production_wake", "POST", "/production/wake", "inference", "inference", repeat="safe"),
    _ep("development_wake", "POST", "/development/wake", "inference", "inference", repeat="safe"),
    _ep("deployment_wake", "POST", "/deployment/{deployment_id}/wake", "inference", "inference", repeat="safe"),
    # ... and the direct API's production/environment shortcuts the reference does not list.
    _ep("production_predict", "POST", "/production/predict", "inference", None, body=True, repeat="safe", long_read=True),
    _ep("production_async_predict", "POST", "/production/async_predict", "inference", None, body=True, repeat="creates", long_read=True),
    _ep("production_async_queue_status", "GET", "/production/async_queue_status", "inference", None),
    _ep("environment_wake", "POST", "/environments/{env_name}/wake", "inference", None, repeat="safe"),
    # OpenAI-compatible and other passthrough routes (``/sync/v1/embeddings`` -> the container's
    # ``/v1/embeddings``); production is the ``production`` environment. Not in Baseten's spec nor the gateway's.
    # Sync inference and Model APIs completions or embeddings create nothing.
    _ep("environment_sync", "POST", "/environments/{env_name}/sync/{route:path}", "inference", None, body=True, repeat="safe", long_read=True),
    _ep("development_sync", "POST", "/development/sync/{route:path}", "inference", None, body=True, repeat="safe", long_read=True),
    _ep("deployment_sync", "POST", "/deployment/{deployment_id}/sync/{route:path}", "inference", None, body=True, repeat="safe", long_read=True),
    # Baseten's shared Model APIs (OpenAI format; base ``https://inference.baseten.co/v1``).
    _ep("model_apis_request", "POST", "/{route:path}", "model_apis", None, body=True, repeat="safe", long_read=True),
    # Chains, on the chain host (Baseten's inference spec; not in the gateway reference). A sync chain call
    # creates nothing (as sync predict); an async one queues a new request each time.
    _ep("chain_production_run_remote", "POST", "/production/run_remote", "chain", None, body=True, repeat="safe", long_read=True),
    _ep("chain_production_async_run_remote", "POST", "/production/async_run_remote", "chain", None, body=True, repeat="creates", long_read=True),
    _ep("chain_development_run_remote", "POST", "/development/run_remote", "chain", None, body=True, repeat="safe", long_read=True),
    _ep("chain_development_async_run_remote", "POST", "/development/async_run_remote", "chain", None, body=True, repeat="creates", long_read=True),
    _ep("chain_environment_run_remote", "POST", "/environments/{env_name}/run_remote", "chain", None, body=True, repeat="safe", long_read=True),
    _ep("chain_environment_async_run_remote", "POST", "/environments/{env_name}/async_run_remote", "chain", None, body=True, repeat="creates", long_read=True),
    _ep("chain_deployment_run_remote", "POST", "/deployment/{deployment_id}/run_remote", "chain", None, body=True, repeat="safe", long_read=True),
    _ep("chain_deployment_async_run_remote", "POST", "/deployment/{deployment_id}/async_run_remote", "chain", None, body=True, repeat="creates", long_read=True),
    # Regional environments (Baseten's inference spec, tag "Regional"): the environment is in the host,
    # ``model-{model_id}-{env_name}`` / ``chain-{chain_id}-{env_name}``, and the path is bare. The hook gives the
    # call ``{id}-{env_name}`` as its host id (hooks/_core.py regional_host_id), so the connection's
    # inference_url / chain_url templates name the regional host too. Not in the gateway reference.
    _ep("regional_predict", "POST", "/predict", "inference", None, body=True, repeat="safe", long_read=True),
    _ep("regional_async_predict", "POST", "/async_predict", "inference", None, body=True, repeat="creates", long_read=True),
    _ep("regional_async_queue_status", "GET", "/async_queue_status", "inference", None),
    _ep("regional_wake", "POST", "/wake", "inference", None, repeat="safe"),
    _ep("chain_regional_run_remote", "POST", "/run_remote", "chain", None, body=True, repeat="safe", long_read=True),
    _ep("chain_regional_async_run_remote", "POST", "/async_run_remote", "chain", None, body=True, repeat="creates", long_read=True),
    _ep("chain_get_async_request", "GET", "/async_request/{request_id}", "chain", None),
    _ep("chain_cancel_async_request", "DELETE", "/async_request/{request_id}", "chain", None, repeat="safe"),
    # Models (deleting twice deletes one object; the second answers 404)
    _ep("list_models", "GET", "/v1/models", "management", "models"),
    _ep("get_model", "GET", _M, "management", "models"),
    _ep("delete_model", "DELETE", _M, "management", "models", repeat="safe"),
    # Chains
    _ep("list_chains", "GET", "/v1/chains", "management", "chains"),
    _ep("get_chain", "GET", "/v1/chains/{chain_id}", "management", "chains"),
    _ep("delete_chain", "DELETE", "/v1/chains/{chain_id}", "management", "chains", repeat="safe"),
    # Chain deployments and environments (Baseten's spec; not in the gateway reference). Deleting or deactivating
    # twice, promoting the deployment that already serves, and autoscaling updates converge as the model rows do;
    # an environment create is reconciled by name; an instance-type update may build and promote a new deployment.
    _ep("list_chain_deployments", "GET", _C + "/deployments", "management", None),
    _ep("get_chain_deployment", "GET", _C + "/deployments/{chain_deployment_id}", "management", None),
    _ep("delete_chain_deployment", "DELETE", _C + "/deployments/{chain_deployment_id}", "management", None, repeat="safe"),
    _ep("deactivate_chain_deployment", "POST", _C + "/deployments/{chain_deployment_id}/deactivate", "management", None, repeat="safe", rate_limit=_DEACTIVATE),
    _ep("get_chainlet_logs", "GET", _C + "/deployments/{chain_deployment_id}/chainlets/{chainlet_id}/logs", "management", None),
    _ep("list_chain_environments", "GET", _C + "/environments", "management", None),
    _ep("create_chain_environment", "POST", _C + "/environments", "management", None, body=True, repeat="creates"),
    _ep("get_chain_environment", "GET", _C + "/environments/{env_name}", "management", None),
    _ep("update_chain_environment", "PATCH", _C + "/environments/{env_name}", "management", None, body=True, repeat="safe"),
    _ep("promote_to_chain_environment", "POST", _C + "/environments/{env_name}/promote", "management", None, body=True, repeat="safe"),
    _ep("update_chainlet_autoscaling_settings", "PATCH", _C + "/environments/{env_name}/chainlet_settings/autoscaling_settings", "management", None, body=True, repeat="safe"),
    _ep("update_chainlet_instance_types", "POST", _C + "/environments/{env_name}/chainlet_settings/instance_types/update", "management", None, body=True, repeat="creates"),
    # Deployments (the reference's deactivate rows repeat /activate: a slip; the real path is /deactivate).
    # Activate, deactivate, promote and autoscaling updates are state changes that converge; promoting the
    # deployment that already serves, or cancelling a promotion twice, changes nothing.
    _ep("activate_environment", "POST", _E + "/{env_name}/activate", "management", "deployments", repeat="safe", rate_limit=_ACTIVATE),
    _ep("activate_development_deployment", "POST", _D + "/development/activate", "management", "deployments", repeat="safe", rate_limit=_ACTIVATE),
    _ep("activate_production_deployment", "POST", _D + "/production/activate", "management", None, repeat="safe", rate_limit=_ACTIVATE),
    _ep("activate_deployment", "POST", _D + "/{deployment_id}/activate", "management", "deployments", repeat="safe", rate_limit=_ACTIVATE),
    _ep("deactivate_environment", "POST", _E + "/{env_name}/deactivate", "management", "deployments", repeat="safe", rate_limit=_DEACTIVATE),
    _ep("deactivate_development_deployment", "POST", _D + "/development/deactivate", "management", "deployments", repeat="safe", rate_limit=_DEACTIVATE),
    _ep("deactivate_production_deployment", "POST", _D + "/production/deactivate", "management", None, repeat="safe", rate_limit=_DEACTIVATE),
    _ep("deactivate_deployment", "POST", _D + "/{deployment_id}/deactivate", "management", "deployments", repeat="safe", rate_limit=_DEACTIVATE),
    _ep("promote_to_environment", "POST", _E + "/{env_name}/promote", "management", "deployments", body=True, repeat="safe"),
    _ep("cancel_promotion", "POST", _E + "/{env_name}/cancel_promotion", "management", "deployments", repeat="safe"),
    _ep("promote_development_deployment", "POST", _D + "/development/promote", "management", "deployments", body=True, repeat="safe"),
    _ep("promote_deployment", "POST", _D + "/{deployment_id}/promote", "management", "deployments", body=True, repeat="safe"),
    _ep("update_development_autoscaling_settings", "PATCH", _D + "/development/autoscaling_settings", "management", "deployments", body=True, repeat="safe"),
    _ep("update_production_autoscaling_settings", "PATCH", _D + "/production/autoscaling_settings", "management", None, body=True, repeat="safe"),
    _ep("update_deployment_autoscaling_settings", "PATCH", _D + "/{deployment_id}/autoscaling_settings", "management", "deployments", body=True, repeat="safe"),
    _ep("list_deployments", "GET", _D, "management", "deployments"),
    _ep("get_production_deployment", "GET", _D + "/production", "management", "deployments"),
    _ep("get_development_deployment", "GET", _D + "/development", "management", "deployments"),
    _ep("get_deployment", "GET", _D + "/{deployment_id}", "management", "deployments"),
    _ep("delete_deployment", "DELETE", _D + "/{deployment_id}", "management", "deployments", repeat="safe"),
    # Environments (a second create of the same name would fail or make a second: reconciled by name instead)
    _ep("create_environment", "POST", _E, "management", "environments", body=True, repeat="creates"),
    _ep("list_environments", "GET", _E, "management", "environments"),
    _ep("get_environment", "GET", _E + "/{env_name}", "management", "environments"),
    _ep("update_environment", "PATCH", _E + "/{env_name}", "management", "environments", body=True, repeat="safe"),
    # Secrets (an upsert by name: sending it twice leaves one secret with the same value)
    _ep("list_secrets", "GET", "/v1/secrets", "management", "secrets"),
    _ep("upsert_secret", "POST", "/v1/secrets", "management", "secrets", body=True, repeat="upsert"),
    # Not in the gateway reference. Deleting twice deletes one secret (the second answers 404).
    _ep("delete_secret", "DELETE", "/v1/secrets/{secret_name}", "management", None, repeat="safe"),
    # API keys (LowCodeAPI deletes with ?prefix=, the direct API with a path segment; each create is a new key)
    _ep("list_api_keys", "GET", "/v1/api_keys", "management", "api_keys"),
    _ep("create_api_key", "POST", "/v1/api_keys", "management", "api_keys", body=True, repeat="creates"),
    _ep("delete_api_key", "DELETE", "/v1/api_keys/{prefix}", "management", "api_keys", gateway_path="/v1/api_keys", repeat="safe"),
    # Training (search is a read; stopping a stopped job changes nothing; each (re)create starts a GPU job)
    _ep("list_training_jobs", "GET", _T, "management", "training"),
    _ep("get_training_job", "GET", _J, "management", "training"),
    _ep("search_training_jobs", "POST", "/v1/training_jobs/search", "management", "training", body=True, repeat="safe"),
    _ep("stop_training_job", "POST", _J + "/stop", "management", "training", body=True, repeat="safe"),
    _ep("recreate_training_job", "POST", _J + "/recreate", "management", "training", repeat="creates"),
    _ep("get_training_job_checkpoints", "GET", _J + "/checkpoints", "management", "training"),
    _ep("get_training_job_checkpoint_files", "GET", _J + "/checkpoint_files", "management", "training"),
    _ep("get_training_job_logs", "GET", _J + "/logs", "management", "training"),
    _ep("get_training_job_metrics", "GET", _J + "/metrics", "management", "training"),
    _ep("download_training_job", "GET", _J + "/download", "management", "training"),
    # From Baseten's spec (not in the gateway reference): create a job in a training project.
    _ep("create_training_job", "POST", _T, "management", None, body=True, repeat="creates"),
    # Beyond the gateway reference (direct API; through LowCodeAPI only in the new format, if it has them).
    _ep("list_training_projects", "GET", "/v1/training_projects", "management", None),
    _ep("get_training_project", "GET", "/v1/training_projects/{training_project_id}", "management", None),
    _ep("create_training_project", "POST", "/v1/training_projects", "management", None, body=True, repeat="upsert"),
    # Deleting twice deletes one job or project (the second answers 404); a priority update converges.
    _ep("delete_training_job", "DELETE", _J, "management", None, repeat="safe"),
    _ep("update_training_job", "PATCH", _J, "management", None, body=True, repeat="safe"),
    _ep("delete_training_project", "DELETE", "/v1/training_projects/{training_project_id}", "management", None, repeat="safe"),
    _ep("get_training_project_cache_summary", "GET", "/v1/training_projects/{training_project_id}/cache/summary", "management", None),
    # Promotion signals: pausing a paused promotion, resuming a running one, cancelling twice or rolling
    # forward twice each act on one promotion.
    _ep("pause_promotion", "POST", _E + "/{env_name}/pause_promotion", "management", None, repeat="safe"),
    _ep("resume_promotion", "POST", _E + "/{env_name}/resume_promotion", "management", None, repeat="safe"),
    _ep("force_cancel_promotion", "POST", _E + "/{env_name}/force_cancel_promotion", "management", None, repeat="safe"),
    _ep("force_roll_forward_promotion", "POST", _E + "/{env_name}/force_roll_forward_promotion", "management", None, repeat="safe"),
    # A second retry of a deployment being rebuilt answers retried: false.
    _ep("retry_production_deployment", "POST", _D + "/production/retry", "management", None, repeat="safe", rate_limit=_RETRY),
    _ep("retry_development_deployment", "POST", _D + "/development/retry", "management", None, repeat="safe", rate_limit=_RETRY),
    _ep("retry_deployment", "POST", _D + "/{deployment_id}/retry", "management", None, repeat="safe", rate_limit=_RETRY),
    _ep("get_deployment_logs", "GET", _D + "/{deployment_id}/logs", "management", None),
    _ep("get_environment_logs", "GET", _E + "/{env_name}/logs", "management", None),
    _ep("get_deployment_metrics", "GET", _D + "/{deployment_id}/metrics", "management", None),
    _ep("get_deployment_config", "GET", _D + "/{deployment_id}/config", "management", None),
    _ep("get_deployment_download_url", "GET", _D + "/{deployment_id}/download", "management", None),
    # Terminating a replica twice ends one replica (the second answers 404); Baseten starts a fresh one.
    _ep("terminate_replica", "DELETE", _D + "/{deployment_id}/replicas/{replica_id}", "management", None, repeat="safe"),
    # Deploying over REST: an upload slot (credentials + S3 key), then the commit of a new model or deployment.
    # The slot builds nothing (only the commit does), so it may be asked for again; each commit builds anew.
    _ep("prepare_model_upload", "POST", "/v1/prepare_model_upload", "management", None, body=True, repeat="safe"),
    _ep("create_model", "POST", "/v1/models", "management", None, body=True, repeat="creates"),
    _ep("create_model_deployment", "POST", _D, "management", None, body=True, repeat="creates"),
    # BIS-LLM deploys (an engine config, no archive): each request builds a new model or deployment.
    _ep("create_llm_model", "POST", "/v1/llm_models", "management", None, body=True, repeat="creates"),
    _ep("create_team_llm_model", "POST", "/v1/teams/{team_id}/llm_models", "management", None, body=True, repeat="creates"),
    _ep("create_llm_model_deployment", "POST", "/v1/llm_models/{model_id}/deployments", "management", None, body=True, repeat="creates"),
    # The caller, cost and capacity (reads; not in the gateway reference). The usage summary needs a key with
    # billing access.
    _ep("get_current_user", "GET", "/v1/users/me", "management", None),
    _ep("list_instance_types", "GET", "/v1/instance_types", "management", None),
    _ep("list_instance_type_prices", "GET", "/v1/instance_type_prices", "management", None),
    _ep("get_usage_summary", "GET", "/v1/billing/usage_summary", "management", None),
    _ep("get_training_capacity", "GET", "/v1/training/capacity", "management", None),
    _ep("get_training_job_queue_context", "GET", "/v1/training/jobs/{training_job_id}/queue_context", "management", None),
    # The Model APIs catalogue and the workspace's users (paged reads; not in the gateway reference).
    _ep("list_model_apis", "GET", "/v1/model_apis", "management", None),
    _ep("get_model_api", "GET", "/v1/model_apis/{model_api_name}", "management", None),
    _ep("list_users", "GET", "/v1/users", "management", None),
    _ep("get_user", "GET", "/v1/users/{user_id}", "management", None),
    # Teams, and the team-scoped twins of workspace calls (TEAM_TWIN; a hook method's ``team_id=`` picks them).
    # Each twin repeats like its workspace row.
    _ep("list_teams", "GET", "/v1/teams", "management", None),
    _ep("get_team", "GET", "/v1/teams/{team_id}", "management", None),
    _ep("list_team_secrets", "GET", "/v1/teams/{team_id}/secrets", "management", None),
    _ep("upsert_team_secret", "POST", "/v1/teams/{team_id}/secrets", "management", None, body=True, repeat="upsert"),
    _ep("delete_team_secret", "DELETE", "/v1/teams/{team_id}/secrets/{secret_name}", "management", None, repeat="safe"),
    _ep("list_team_models", "GET", "/v1/teams/{team_id}/models", "management", None),
    _ep("create_team_training_project", "POST", "/v1/teams/{team_id}/training_projects", "management", None, body=True, repeat="upsert"),
    _ep("create_team_api_key", "POST", "/v1/teams/{team_id}/api_keys", "management", None, body=True, repeat="creates"),
    _ep("create_team_model", "POST", "/v1/teams/{team_id}/models", "management", None, body=True, repeat="creates"),
    # Environment groups: who may manage the environment of a name across the team's models and chains. Setting
    # the restriction twice leaves the same restriction.
    _ep("list_environment_groups", "GET", "/v1/environment_groups", "management", None),
    _ep("get_environment_group", "GET", "/v1/environment_groups/{env_name}", "management", None),
    _ep("update_environment_group", "PATCH", "/v1/environment_groups/{env_name}", "management", None, body=True, repeat="safe"),
    _ep("list_team_environment_groups", "GET", "/v1/teams/{team_id}/environment_groups", "management", None),
    _ep("get_team_environment_group", "GET", "/v1/teams/{team_id}/environment_groups/{env_name}", "management", None),
    _ep("update_team_environment_group", "PATCH", "/v1/teams/{team_id}/environment_groups/{env_name}", "management", None, body=True, repeat="safe"),
)
# fmt: on

BY_NAME: dict[str, Endpoint] = {e.name: e for e in ENDPOINTS}


def endpoint(name: str) -> Endpoint:
    """The endpoint called ``name``; ``KeyError`` if there is none."""
    return BY_NAME[name]


# -- names chosen by target -------------------------------------------------------------------------------
# Some calls go to one of several rows depending on their target: a deployment id, the development
# deployment, production, or a named environment. The hook looks the row's name up here instead of building it
# with an f-string, so every name it can send is written out once and tests/unit/test_route_table.py proves
# that each names a row.

#: (action, target) -> endpoint name. ``target`` is ``deployment`` (an id), ``development``, ``production``,
#: ``environment`` (a named one) or ``regional`` (a named one on its regional host, bare path); chain actions
#: (``run_remote``...) go to the chain host.
BY_TARGET: dict[tuple[str, str], str] = {
    ("predict", "deployment"): "deployment_predict",
    ("predict", "development"): "development_predict",
    ("predict", "production"): "production_predict",
    ("predict", "environment"): "environment_predict",
    ("predict", "regional"): "regional_predict",
    ("async_predict", "deployment"): "deployment_async_predict",
    ("async_predict", "development"): "development_async_predict",
    ("async_predict", "production"): "production_async_predict",
    ("async_predict", "environment"): "environment_async_predict",
    ("async_predict", "regional"): "regional_async_predict",
    ("async_queue_status", "deployment"): "deployment_async_queue_status",
    ("async_queue_status", "development"): "development_async_queue_status",
    ("async_queue_status", "production"): "production_async_queue_status",
    ("async_queue_status", "environment"): "environment_async_queue_status",
    ("async_queue_status", "regional"): "regional_async_queue_status",
    ("wake", "deployment"): "deployment_wake",
    ("wake", "development"): "development_wake",
    ("wake", "production"): "production_wake",
    ("wake", "environment"): "environment_wake",
    ("wake", "regional"): "regional_wake",
    ("sync", "deployment"): "deployment_sync",  # no production_sync: production is an environment there
    ("sync", "development"): "development_sync",
    ("sync", "environment"): "environment_sync",
    ("run_remote", "deployment"): "chain_deployment_run_remote",
    ("run_remote", "development"): "chain_development_run_remote",
    ("run_remote", "production"): "chain_production_run_remote",
    ("run_remote", "environment"): "chain_environment_run_remote",
    ("run_remote", "regional"): "chain_regional_run_remote",
    ("async_run_remote", "deployment"): "chain_deployment_async_run_remote",
    ("async_run_remote", "development"): "chain_development_async_run_remote",
    ("async_run_remote", "production"): "chain_production_async_run_remote",
    ("async_run_remote", "environment"): "chain_environment_async_run_remote",
    ("async_run_remote", "regional"): "chain_regional_async_run_remote",
    ("get_deployment", "deployment"): "get_deployment",
    ("get_deployment", "development"): "get_development_deployment",
    ("get_deployment", "production"): "get_production_deployment",
    ("retry_deployment", "deployment"): "retry_deployment",
    ("retry_deployment", "development"): "retry_development_deployment",
    ("retry_deployment", "production"): "retry_production_deployment",
    ("activate_deployment", "deployment"): "activate_deployment",
    ("activate_deployment", "development"): "activate_development_deployment",
    ("activate_deployment", "production"): "activate_production_deployment",
    ("deactivate_deployment", "deployment"): "deactivate_deployment",
    ("deactivate_deployment", "development"): "deactivate_development_deployment",
    ("deactivate_deployment", "production"): "deactivate_production_deployment",
    ("update_autoscaling", "deployment"): "update_deployment_autoscaling_settings",
    ("update_autoscaling", "development"): "update_development_autoscaling_settings",
    ("update_autoscaling", "production"): "update_production_autoscaling_settings",
}

#: A model's async-request endpoint -> its chain twin (same path, on the chain host).
CHAIN_TWIN: dict[str, str] = {
    "get_async_request": "chain_get_async_request",
    "cancel_async_request": "chain_cancel_async_request",
}

#: A workspace endpoint -> its team-scoped twin (``/v1/teams/{team_id}/...``), sent when a call has ``team_id=``.
TEAM_TWIN: dict[str, str] = {
    "list_secrets": "list_team_secrets",
    "upsert_secret": "upsert_team_secret",
    "delete_secret": "delete_team_secret",
    "list_models": "list_team_models",
    "create_training_project": "create_team_training_project",
    "create_api_key": "create_team_api_key",
    "create_llm_model": "create_team_llm_model",
    "create_model": "create_team_model",
    "list_environment_groups": "list_team_environment_groups",
    "get_environment_group": "get_team_environment_group",
    "update_environment_group": "update_team_environment_group",
}
