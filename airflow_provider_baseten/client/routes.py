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


@dataclass(frozen=True)
class Endpoint:
    """One Baseten endpoint.

    :param name: Stable identifier, used by the hook, the emulator and the tests.
    :param method: HTTP method.
    :param path: Path template with ``{param}`` placeholders (the direct API's, and LowCodeAPI's new format).
    :param surface: ``inference`` (model host) or ``management`` (``api.baseten.co``).
    :param category: The gateway reference's table this row belongs to (``None``: direct API only).
    :param gateway_path: Where LowCodeAPI documents a different path; path params absent from it are
        sent as query parameters.
    :param upsert: A create that is idempotent by name (Baseten updates the object of that name instead of
        making a second one), so resending it after an ambiguous failure is safe.
    """

    name: str
    method: str
    path: str
    surface: Surface
    category: str | None
    gateway_path: str | None = None
    upsert: bool = False

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

ENDPOINTS: tuple[Endpoint, ...] = (
    # Inference: the 14 rows of the gateway reference ...
    _ep("environment_predict", "POST", "/environments/{env_name}/predict", "inference", "inference"),
    _ep("development_predict", "POST", "/development/predict", "inference", "inference"),
    _ep("deployment_predict", "POST", "/deployment/{deployment_id}/predict", "inference", "inference"),
    _ep(
        "environment_async_predict",
        "POST",
        "/environments/{env_name}/async_predict",
        "inference",
        "inference",
    ),
    _ep("development_async_predict", "POST", "/development/async_predict", "inference", "inference"),
    _ep(
        "deployment_async_predict",
        "POST",
        "/deployment/{deployment_id}/async_predict",
        "inference",
        "inference",
    ),
    _ep("get_async_request", "GET", "/async_request/{request_id}", "inference", "inference"),
    _ep("cancel_async_request", "DELETE", "/async_request/{request_id}", "inference", "inference"),
    _ep(
        "environment_async_queue_status",
        "GET",
        "/environments/{env_name}/async_queue_status",
        "inference",
        "inference",
    ),
    _ep("development_async_queue_status", "GET", "/development/async_queue_status", "inference", "inference"),
    _ep(
        "deployment_async_queue_status",
        "GET",
        "/deployment/{deployment_id}/async_queue_status",
        "inference",
        "inference",
    ),
    _ep("production_wake", "POST", "/production/wake", "inference", "inference"),
    _ep("development_wake", "POST", "/development/wake", "inference", "inference"),
    _ep("deployment_wake", "POST", "/deployment/{deployment_id}/wake", "inference", "inference"),
    # ... and the direct API's production/environment shortcuts the reference does not list.
    _ep("production_predict", "POST", "/production/predict", "inference", None),
    _ep("production_async_predict", "POST", "/production/async_predict", "inference", None),
    _ep("production_async_queue_status", "GET", "/production/async_queue_status", "inference", None),
    _ep("environment_wake", "POST", "/environments/{env_name}/wake", "inference", None),
    # OpenAI-compatible and other passthrough routes (``/sync/v1/embeddings`` -> the container's
    # ``/v1/embeddings``); production is the ``production`` environment. Not in Baseten's spec nor the gateway's.
    _ep("environment_sync", "POST", "/environments/{env_name}/sync/{route:path}", "inference", None),
    _ep("development_sync", "POST", "/development/sync/{route:path}", "inference", None),
    _ep("deployment_sync", "POST", "/deployment/{deployment_id}/sync/{route:path}", "inference", None),
    # Baseten's shared Model APIs (OpenAI format; base ``https://inference.baseten.co/v1``).
    _ep("model_apis_request", "POST", "/{route:path}", "model_apis", None),
    # Chains, on the chain host (Baseten's inference spec; not in the gateway reference).
    *(
        _ep(f"chain_{target}_{action}", "POST", f"{prefix}/{action}", "chain", None)
        for target, prefix in (
            ("production", "/production"),
            ("development", "/development"),
            ("environment", "/environments/{env_name}"),
            ("deployment", "/deployment/{deployment_id}"),
        )
        for action in ("run_remote", "async_run_remote")
    ),
    _ep("chain_get_async_request", "GET", "/async_request/{request_id}", "chain", None),
    _ep("chain_cancel_async_request", "DELETE", "/async_request/{request_id}", "chain", None),
    # Models
    _ep("list_models", "GET", "/v1/models", "management", "models"),
    _ep("get_model", "GET", _M, "management", "models"),
    _ep("delete_model", "DELETE", _M, "management", "models"),
    # Chains
    _ep("list_chains", "GET", "/v1/chains", "management", "chains"),
    _ep("get_chain", "GET", "/v1/chains/{chain_id}", "management", "chains"),
    _ep("delete_chain", "DELETE", "/v1/chains/{chain_id}", "management", "chains"),
    # Deployments (the reference's deactivate rows repeat /activate: a slip; the real path is /deactivate)
    _ep("activate_environment", "POST", _E + "/{env_name}/activate", "management", "deployments"),
    _ep("activate_development_deployment", "POST", _D + "/development/activate", "management", "deployments"),
    _ep("activate_deployment", "POST", _D + "/{deployment_id}/activate", "management", "deployments"),
    _ep("deactivate_environment", "POST", _E + "/{env_name}/deactivate", "management", "deployments"),
    _ep(
        "deactivate_development_deployment",
        "POST",
        _D + "/development/deactivate",
        "management",
        "deployments",
    ),
    _ep("deactivate_deployment", "POST", _D + "/{deployment_id}/deactivate", "management", "deployments"),
    _ep("promote_to_environment", "POST", _E + "/{env_name}/promote", "management", "deployments"),
    _ep("cancel_promotion", "POST", _E + "/{env_name}/cancel_promotion", "management", "deployments"),
    _ep("promote_development_deployment", "POST", _D + "/development/promote", "management", "deployments"),
    _ep("promote_deployment", "POST", _D + "/{deployment_id}/promote", "management", "deployments"),
    _ep(
        "update_development_autoscaling_settings",
        "PATCH",
        _D + "/development/autoscaling_settings",
        "management",
        "deployments",
    ),
    _ep(
        "update_deployment_autoscaling_settings",
        "PATCH",
        _D + "/{deployment_id}/autoscaling_settings",
        "management",
        "deployments",
    ),
    _ep("list_deployments", "GET", _D, "management", "deployments"),
    _ep("get_production_deployment", "GET", _D + "/production", "management", "deployments"),
    _ep("get_development_deployment", "GET", _D + "/development", "management", "deployments"),
    _ep("get_deployment", "GET", _D + "/{deployment_id}", "management", "deployments"),
    _ep("delete_deployment", "DELETE", _D + "/{deployment_id}", "management", "deployments"),
    # Environments
    _ep("create_environment", "POST", _E, "management", "environments"),
    _ep("list_environments", "GET", _E, "management", "environments"),
    _ep("get_environment", "GET", _E + "/{env_name}", "management", "environments"),
    _ep("update_environment", "PATCH", _E + "/{env_name}", "management", "environments"),
    # Secrets
    _ep("list_secrets", "GET", "/v1/secrets", "management", "secrets"),
    _ep("upsert_secret", "POST", "/v1/secrets", "management", "secrets"),
    # API keys (LowCodeAPI deletes with ?prefix=, the direct API with a path segment)
    _ep("list_api_keys", "GET", "/v1/api_keys", "management", "api_keys"),
    _ep("create_api_key", "POST", "/v1/api_keys", "management", "api_keys"),
    _ep(
        "delete_api_key",
        "DELETE",
        "/v1/api_keys/{prefix}",
        "management",
        "api_keys",
        gateway_path="/v1/api_keys",
    ),
    # Training
    _ep("list_training_jobs", "GET", _T, "management", "training"),
    _ep("get_training_job", "GET", _J, "management", "training"),
    _ep("search_training_jobs", "POST", "/v1/training_jobs/search", "management", "training"),
    _ep("stop_training_job", "POST", _J + "/stop", "management", "training"),
    _ep("recreate_training_job", "POST", _J + "/recreate", "management", "training"),
    _ep("get_training_job_checkpoints", "GET", _J + "/checkpoints", "management", "training"),
    _ep("get_training_job_checkpoint_files", "GET", _J + "/checkpoint_files", "management", "training"),
    _ep("get_training_job_logs", "GET", _J + "/logs", "management", "training"),
    _ep("get_training_job_metrics", "GET", _J + "/metrics", "management", "training"),
    _ep("download_training_job", "GET", _J + "/download", "management", "training"),
    # From Baseten's spec (not in the gateway reference): create a job in a training project.
    _ep("create_training_job", "POST", _T, "management", None),
    # Beyond the gateway reference (direct API; through LowCodeAPI only in the new format, if it has them).
    _ep("list_training_projects", "GET", "/v1/training_projects", "management", None),
    _ep("get_training_project", "GET", "/v1/training_projects/{training_project_id}", "management", None),
    _ep("create_training_project", "POST", "/v1/training_projects", "management", None, upsert=True),
    *(
        _ep(f"{action}_promotion", "POST", _E + f"/{{env_name}}/{action}_promotion", "management", None)
        for action in ("pause", "resume", "force_cancel", "force_roll_forward")
    ),
    _ep("retry_production_deployment", "POST", _D + "/production/retry", "management", None),
    _ep("retry_development_deployment", "POST", _D + "/development/retry", "management", None),
    _ep("retry_deployment", "POST", _D + "/{deployment_id}/retry", "management", None),
    _ep("get_deployment_logs", "GET", _D + "/{deployment_id}/logs", "management", None),
    _ep("get_environment_logs", "GET", _E + "/{env_name}/logs", "management", None),
    _ep("get_deployment_metrics", "GET", _D + "/{deployment_id}/metrics", "management", None),
    # Deploying over REST: an upload slot (credentials + S3 key), then the commit of a new model or deployment.
    _ep("prepare_model_upload", "POST", "/v1/prepare_model_upload", "management", None),
    _ep("create_model", "POST", "/v1/models", "management", None),
    _ep("create_model_deployment", "POST", _D, "management", None),
)

#: Baseten's per-key rate limits below the general 100/s (docs.baseten.co/reference/management-api/rate-limits):
#: endpoint name -> (bucket, requests, per seconds). The endpoints of one bucket share its budget (Baseten
#: counts ``deployments/{development|production|id}/activate`` as one endpoint). Environment
#: activate/deactivate are not in Baseten's table; they share the deployment buckets here, the safe guess.
RATE_LIMITS: dict[str, tuple[str, int, float]] = {
    **{
        f"{verb}_{target}": (verb, 20, 60.0)
        for verb in ("activate", "deactivate")
        for target in ("deployment", "development_deployment", "environment")
    },
    **{
        name: ("retry", 10, 60.0)
        for name in ("retry_deployment", "retry_production_deployment", "retry_development_deployment")
    },
}

BY_NAME: dict[str, Endpoint] = {e.name: e for e in ENDPOINTS}


def endpoint(name: str) -> Endpoint:
    """The endpoint called ``name``; ``KeyError`` if there is none."""
    return BY_NAME[name]
