"""Every operation of Baseten's official specs that ``routes.ENDPOINTS`` does not cover, and why.

Baseten's management spec (``emulator/specs/openapi-management.json``) and inference spec
(``openapi-inference.json``) list every operation of the API. Each one is either covered by a row of
:data:`~airflow_provider_baseten.client.routes.ENDPOINTS` (a typed hook method, sync and async), or listed here:

* :data:`EXCLUDED`: left out on purpose, with a one-line reason. Interactive or IDE features (SSH signing,
  interactive sessions, Loops, live patching), the model library's listings and the gateway admin API qualify;
  anything an orchestrator would script does not.
* :data:`PENDING`: in scope, not built yet (reason ``not yet built``). An entry leaves this list when its
  route lands.

``tests/unit/test_spec_coverage.py`` fails on an operation in neither place, and on an entry (or a route) naming an
operation the specs no longer have: updating the spec files shows the gap at once. ``python
scripts/spec_coverage.py`` prints the counts. Each key is ``"METHOD /path"`` with the spec's own path template
(management paths start with ``/v1``; the inference spec's regional routes are bare).
"""

from __future__ import annotations

_LOOPS = "Loops: interactive training sessions driven from a notebook or the CLI, not a scheduled pipeline"
_LIBRARY = "model library listings: publishing a model to Baseten's public catalogue, done once by hand"
_GATEWAY = "Baseten's own API gateway admin (endpoints, groups, keys): account setup, not orchestration"
_SSH = "SSH certificate signing: an interactive shell into a container, not something a DAG does"
_DEPRECATED = "deprecated POST twin of a GET the hook covers (Baseten says: use GET)"
_PATCHES = "live patching of a development deployment (`truss watch`): an IDE loop"
_BLOBS = "short-lived storage credentials for the truss CLI's own uploads; the provider never hands out keys"
_SNAPSHOTS = (
    "Model API weight snapshots: which weights back one of Baseten's own shared Model APIs (a URI and a time, no "
    "state to wait on); Baseten maintains those models, a customer's pipeline does not"
)

EXCLUDED: dict[str, str] = {
    "GET /v1/loops/user_config": _LOOPS,
    "PATCH /v1/loops/user_config": _LOOPS,
    "GET /v1/loops/capabilities": _LOOPS,
    "POST /v1/loops/sessions": _LOOPS,
    "GET /v1/loops/sessions/{session_id}": _LOOPS,
    "GET /v1/loops/runs": _LOOPS,
    "POST /v1/loops/runs": _LOOPS,
    "GET /v1/loops/runs/{run_id}": _LOOPS,
    "GET /v1/loops/samplers": _LOOPS,
    "POST /v1/loops/samplers": _LOOPS,
    "GET /v1/loops/samplers/{sampler_id}": _LOOPS,
    "GET /v1/loops/checkpoints": _LOOPS,
    "POST /v1/loops/checkpoints/validate": _LOOPS,
    "GET /v1/loops/checkpoints/{checkpoint_id}/files": _LOOPS,
    "GET /v1/loops/deployments": _LOOPS,
    "POST /v1/loops/deployments/{deployment_id}/deactivate": _LOOPS,
    "GET /v1/loops/deployments/{deployment_id}": _LOOPS,
    "POST /v1/loops/deployments/{deployment_id}/metrics": _LOOPS,
    "GET /v1/loops/deployments/{deployment_id}/logs": _LOOPS,
    "GET /v1/library_listings": _LIBRARY,
    "POST /v1/library_listings": _LIBRARY,
    "DELETE /v1/library_listings/{user_defined_listing_id}": _LIBRARY,
    "GET /v1/library_listings/{user_defined_listing_id}": _LIBRARY,
    "PATCH /v1/library_listings/{user_defined_listing_id}": _LIBRARY,
    "GET /v1/library_listings/{user_defined_listing_id}/versions": _LIBRARY,
    "POST /v1/library_listings/{user_defined_listing_id}/versions": _LIBRARY,
    "DELETE /v1/library_listings/{user_defined_listing_id}/versions/{version_tag}": _LIBRARY,
    "GET /v1/library_listings/{user_defined_listing_id}/versions/{version_tag}": _LIBRARY,
    "PATCH /v1/library_listings/{user_defined_listing_id}/versions/{version_tag}": _LIBRARY,
    "GET /v1/gateway/endpoints": _GATEWAY,
    "POST /v1/gateway/endpoints": _GATEWAY,
    "DELETE /v1/gateway/endpoints/{endpoint_id}": _GATEWAY,
    "GET /v1/gateway/endpoints/{endpoint_id}": _GATEWAY,
    "PATCH /v1/gateway/endpoints/{endpoint_id}": _GATEWAY,
    "GET /v1/gateway/groups": _GATEWAY,
    "POST /v1/gateway/groups": _GATEWAY,
    "GET /v1/gateway/groups/{group_id}": _GATEWAY,
    "PATCH /v1/gateway/groups/{group_id}": _GATEWAY,
    "GET /v1/gateway/groups/{group_id}/api_keys": _GATEWAY,
    "POST /v1/gateway/groups/{group_id}/api_keys": _GATEWAY,
    "POST /v1/gateway/groups/{group_id}/api_keys/register": _GATEWAY,
    "GET /v1/gateway/groups/{group_id}/api_keys/{api_key_prefix}": _GATEWAY,
    "POST /v1/models/{model_id}/deployments/{deployment_id}/ssh/sign": _SSH,
    "POST /v1/training_projects/{training_project_id}/jobs/{training_job_id}/ssh/sign": _SSH,
    "PATCH /v1/training_projects/{training_project_id}/jobs/{training_job_id}/interactive_sessions/{session_id}": (
        "interactive sessions (a live shell or notebook in a training container)"
    ),
    "GET /v1/training_projects/{training_project_id}/jobs/{training_job_id}/auth_codes": (
        "login codes for a training job's interactive session (an IDE tunnel)"
    ),
    "POST /v1/models/{model_id}/deployments/{deployment_id}/logs": _DEPRECATED,
    "POST /v1/training_projects/{training_project_id}/jobs/{training_job_id}/logs": _DEPRECATED,
    "POST /v1/training_projects/{training_project_id}/jobs/{training_job_id}/metrics": _DEPRECATED,
    "POST /v1/models/{model_id}/deployments/{deployment_id}/patches": _PATCHES,
    "GET /v1/models/{model_id}/deployments/{deployment_id}/patches/state": _PATCHES,
    "POST /v1/models/{model_id}/deployments/{deployment_id}/patches/sync": _PATCHES,
    "GET /v1/blobs/credentials/model": _BLOBS,
    "GET /v1/blobs/credentials/train": _BLOBS,
    "GET /v1/model_apis/snapshots": _SNAPSHOTS,
    "POST /v1/model_apis/snapshots": _SNAPSHOTS,
    "GET /v1/model_apis/snapshots/{model_id}": _SNAPSHOTS,
    "POST /v1/model_apis/snapshots/{model_id}": _SNAPSHOTS,
}

#: In scope, not built yet (reason ``not yet built``). Empty: every operation is covered or excluded.
PENDING: dict[str, str] = {}

__all__ = ["EXCLUDED", "PENDING"]
