"""Every JSON answer of the emulator's direct surface validates against Baseten's official OpenAPI specs.

Each endpoint of ``_routes.ENDPOINTS`` is called over HTTP (raw httpx, no hook in between) and its body
checked with ``jsonschema`` against the response schema the spec declares for that path, method and status.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from airflow_provider_baseten.client.routes import ENDPOINTS, Endpoint, endpoint
from airflow_provider_baseten.emulator.server import BasetenEmulator
from tests.conftest import SPECS

_PARAM = re.compile(r"\{[^}]+\}")


@cache
def _spec(surface: str) -> dict[str, Any]:
    return json.loads((SPECS / f"openapi-{surface}.json").read_text())


def spec_operation(ep: Endpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec, operation) for ``ep``: the spec path with the same shape (parameter names may differ)."""
    spec = _spec("inference" if ep.surface == "chain" else ep.surface)  # chains are in the inference spec
    shape = _PARAM.sub("{}", ep.path)
    for path, ops in spec["paths"].items():
        if _PARAM.sub("{}", path) == shape and ep.method.lower() in ops:
            return spec, ops[ep.method.lower()]
    raise AssertionError(f"{ep.name}: {ep.method} {ep.path} is not in Baseten's {ep.surface} spec")


def _resolve(spec: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj and obj["$ref"].startswith("#/components/responses/"):
        obj = spec["components"]["responses"][obj["$ref"].rsplit("/", 1)[1]]
    return obj


def check(ep: Endpoint, response: httpx.Response) -> None:
    """Validate ``response`` against the spec's schema for ``ep`` and its status."""
    spec, op = spec_operation(ep)
    declared = op["responses"].get(str(response.status_code))
    if declared is None:
        assert response.status_code >= 400, f"{ep.name}: undeclared success status {response.status_code}"
        declared = spec["components"]["responses"]["Error"] if ep.surface in ("inference", "chain") else None
    if declared is None:  # the management spec declares no error bodies
        return
    content = _resolve(spec, declared).get("content", {}).get("application/json")
    if content is None:
        assert response.content == b"", f"{ep.name}: the spec declares no body for {response.status_code}"
        return
    schema = {**content["schema"], "components": spec["components"]}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.path))
    assert not errors, f"{ep.name} ({response.status_code}): " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
    )


class Client:
    """Calls endpoints by name on the direct surface and validates every answer."""

    def __init__(self, emu: BasetenEmulator) -> None:
        self.emu = emu
        self.http = httpx.Client(headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10)
        self.checked: set[str] = set()

    def __call__(
        self,
        name: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        query: dict[str, Any] | None = None,
        *,
        model: str = "echo1234",
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        ep = endpoint(name)
        all_params = {"model_id": model, **(params or {})} if "model_id" in ep.params else dict(params or {})
        bases = {"inference": self.emu.inference_url.replace("{model_id}", model)}
        bases["chain"] = self.emu.chain_url.replace("{chain_id}", model)  # ``model`` is then the chain id
        base = bases.get(ep.surface, self.emu.url)
        response = self.http.request(
            ep.method,
            base + ep.direct_path(all_params),
            json=body,
            params=query,
            headers=headers,
        )
        if status is not None:
            assert response.status_code == status, (name, response.status_code, response.text)
        else:
            assert response.is_success, (name, response.status_code, response.text)
        check(ep, response)
        if response.is_success:
            self.checked.add(name)
        return response.json() if response.content else None


@pytest.fixture
def api(emulator: BasetenEmulator) -> Client:
    emulator.set_time_scale(0)
    client = Client(emulator)
    yield client
    client.http.close()


def test_every_endpoint_matches_the_official_spec(api: Client, emulator: BasetenEmulator) -> None:
    dep, env = {"deployment_id": "dep3stag"}, {"env_name": "staging"}
    # Models, chains, deployments
    api("list_models")
    api("get_model")
    api("list_chains")
    api("get_chain", {"chain_id": "chain123"})
    api("list_deployments")
    api("get_production_deployment")
    api("get_development_deployment")
    api("get_deployment", dep)
    api("update_deployment_autoscaling_settings", dep, {"max_replica": 2})
    api("update_development_autoscaling_settings", body={"max_replica": 2})
    # Environments
    api("list_environments")
    api("get_environment", {"env_name": "production"})
    api("create_environment", body={"name": "canary", "autoscaling_settings": {"max_replica": 2}})
    api("update_environment", {"env_name": "canary"}, {"promotion_settings": {"rolling_deploy": True}})
    api("deactivate_environment", env)
    api("activate_environment", env)
    api("deactivate_deployment", dep)
    api("activate_deployment", dep)
    api("deactivate_development_deployment")
    api("activate_development_deployment")
    emulator.advance(5)
    # Inference
    for target, p in (("production", {}), ("development", {}), ("environment", env), ("deployment", dep)):
        api(f"{target}_predict", p, {"text": "x"})
        api(f"{target}_wake", p, status=202)
        api(f"{target}_async_predict", p, {"model_input": {"n": 1}}, status=201)
        api(f"{target}_async_queue_status", p)
    request_id = api("production_async_predict", body={"model_input": {"n": 2}}, status=201)["request_id"]
    api("get_async_request", {"request_id": request_id})
    api("cancel_async_request", {"request_id": request_id})
    # Inference errors have Baseten's error shape too
    api("production_predict", body={}, headers={"Authorization": "Bearer nope"}, status=401)
    api("get_async_request", {"request_id": "0" * 32}, status=404)
    api("production_predict", model="nope1234", body={}, status=404)
    # Regional environments: the environment in the host (model-{id}-{env}), bare paths
    api("regional_predict", body={"text": "x"}, model="echo1234-staging")
    api("regional_wake", model="echo1234-staging", status=202)
    api("regional_async_predict", body={"model_input": {"n": 1}}, model="echo1234-staging", status=201)
    api("regional_async_queue_status", model="echo1234-staging")
    api("regional_predict", body={}, model="echo1234", status=404)  # a bare path on the model's own host
    api("regional_async_predict", body={"model_input": 1}, model="echo1234-staging", status=422)  # not an object
    api("regional_wake", body={}, model="echo1234-staging", status=415)  # the spec defines no body
    # Promotion
    api("promote_to_environment", env, {"deployment_id": "dep2devl"})
    api("cancel_promotion", env)
    new = emulator.create_deployment("echo1234", "v3")["id"]
    emulator.advance(5)
    api("promote_deployment", {"deployment_id": new}, {"scale_down_previous_production": True})
    emulator.advance(10)
    api("promote_development_deployment", body={})
    emulator.advance(10)
    api("delete_deployment", {"deployment_id": new})
    # Secrets and API keys
    api("list_secrets")
    api("upsert_secret", body={"name": "token", "value": "v"})
    api("list_api_keys")
    prefix = api("create_api_key", body={"type": "PERSONAL", "name": "n"})["api_key"].split(".")[0]
    api("delete_api_key", {"prefix": prefix})
    # Production shortcuts, deployment config, download URL, replicas
    api("deactivate_production_deployment")
    api("activate_production_deployment")
    api("update_production_autoscaling_settings", body={"max_replica": 2})
    api("get_deployment_config", dep)
    api("get_deployment_config", dep, query={"output_format": "raw"})
    api("get_deployment_config", dep, query={"output_format": "yaml"}, status=422)
    api("get_deployment_download_url", dep)
    api("terminate_replica", {**dep, "replica_id": ("r" + dep["deployment_id"])[:5]})
    api("terminate_replica", {**dep, "replica_id": "zzzzz"}, status=404)
    api("delete_secret", {"secret_name": "token"})
    api("delete_secret", {"secret_name": "token"}, status=404)
    # The caller, cost and capacity
    api("get_current_user")
    api("list_instance_types")
    api("list_instance_type_prices")
    api("get_training_capacity")
    api("list_model_apis", query={"limit": 2, "added_only": "true"})
    api("list_model_apis", query={"limit": 0}, status=422)
    api("get_model_api", {"model_api_name": "deepseek-v3"})
    api("list_users", query={"limit": 1})
    api("get_user", {"user_id": "user5678"})
    # Teams and the team-scoped twins
    team = {"team_id": api("list_teams")["teams"][0]["id"]}
    api("get_team", team)
    api("list_team_secrets", team)
    api("upsert_team_secret", team, {"name": "team_token", "value": "v"})
    api("delete_team_secret", {**team, "secret_name": "team_token"})
    api("list_team_models", team)
    api("create_team_training_project", team, {"training_project": {"name": "team-sft"}})
    api("create_team_api_key", team, {"type": "PERSONAL"})
    api("list_team_secrets", {"team_id": "other123"}, status=404)
    api("list_environment_groups")
    api("get_environment_group", {"env_name": "production"})
    api(
        "update_environment_group",
        {"env_name": "production"},
        {"manage_access": {"is_restricted": True, "user_ids": ["user1234"]}},
    )
    api("update_environment_group", {"env_name": "production"}, {"manage_access": {"user_ids": []}}, status=422)
    api("list_team_environment_groups", team)
    api("get_team_environment_group", {**team, "env_name": "staging"})
    api("update_team_environment_group", {**team, "env_name": "staging"}, {"manage_access": {"is_restricted": False}})
    api("get_usage_summary", query={"start_date": "2026-07-01T00:00:00Z", "end_date": "2026-07-31T00:00:00Z"})
    api("get_usage_summary", query={"start_date": "2026-07-01T00:00:00Z"}, status=422)  # end_date is required
    api(
        "get_usage_summary",
        query={"start_date": "2026-07-01T00:00:00Z", "end_date": "2026-09-01T00:00:00Z"},
        status=400,
    )
    # Training
    job = {"training_project_id": "proj1234"}
    created = api("create_training_job", job, {"training_job": {"image": {"base_image": "python:3.11"}}})
    job["training_job_id"] = created["training_job"]["id"]
    api("list_training_jobs", {"training_project_id": "proj1234"})
    api("get_training_job", job)
    api("search_training_jobs", body={"project_id": "proj1234"})
    emulator.advance(10)
    api("get_training_job_checkpoints", job)
    api("get_training_job_checkpoint_files", job, query={"page_size": 2})
    api("get_training_job_logs", job, query={"limit": 5})
    api("get_training_job_metrics", job)
    api("download_training_job", job)
    again = api("recreate_training_job", job)["training_job"]["id"]
    api("stop_training_job", {**job, "training_job_id": again}, {})
    api("get_training_job_queue_context", {"training_job_id": job["training_job_id"]})
    api("get_training_job_queue_context", {"training_job_id": "nosuchjob"}, status=404)
    api("update_training_job", job, {"priority": 1})
    api("update_training_job", job, {}, status=422)
    api("get_training_project_cache_summary", {"training_project_id": "proj1234"})
    api("delete_training_job", job)
    # Training projects (create upserts by name)
    api("list_training_projects")
    api("get_training_project", {"training_project_id": "proj1234"})
    api("create_training_project", body={"training_project": {"name": "fine-tune-demo"}})
    # Deploying over REST: an upload slot (dry run and real), the archive PUT, both commits
    payload = {"config": {"model_name": "spec-model"}, "deployment_name": "v1"}
    api("prepare_model_upload", body={"deployment": payload, "name": "spec-model", "dry_run": True})
    api("prepare_model_upload", body={"deployment": payload}, status=400)  # neither name nor model_id
    api("create_model", body={"source": {"kind": "model_archive", "name": "x"}}, status=422)  # no s3_key
    for target in ({"name": "spec-model"}, {"model_id": "echo1234"}):
        slot = api("prepare_model_upload", body={"deployment": payload, **target})
        archive = emulator.state.uploads[slot["s3_key"]]
        emulator.state.receive_upload(slot["s3_key"], 1, ["config.yaml"], archive["config"])  # the PUT: test_deploy
        source = {"kind": "model_archive", "s3_key": slot["s3_key"], "deployment": payload}
        if "name" in target:
            api("create_model", body={"source": {**source, "name": "spec-model"}})
        else:
            api("create_model_deployment", body={"source": source})
    slot = api("prepare_model_upload", body={"deployment": payload, "name": "team-model"})
    emulator.state.receive_upload(slot["s3_key"], 1, ["config.yaml"], emulator.state.uploads[slot["s3_key"]]["config"])
    source = {"kind": "model_archive", "s3_key": slot["s3_key"], "deployment": payload, "name": "team-model"}
    api("create_team_model", {"team_id": "team1234"}, {"source": source})
    # BIS-LLM deploys
    llm = api("create_llm_model", body={"name": "spec-llm", "resources": {"accelerator": "H100"}})
    api("create_llm_model_deployment", {"model_id": llm["model_id"]}, {"resources": {"accelerator": "H100"}})
    api("create_llm_model", body={"name": "spec-llm"}, status=422)  # resources is required
    api("create_team_llm_model", {"team_id": "team1234"}, {"name": "team-llm", "resources": {}})
    # Promotion control, on a promotion the emulator fails, pauses and rolls forward
    emulator.set_promotion_fail(True)
    api("promote_to_environment", env, {"deployment_id": "dep1prod"})
    emulator.advance(5)
    assert api("get_environment", env)["in_progress_promotion"]["status"] == "FAILED"
    emulator.set_promotion_fail(False)
    api("promote_to_environment", env, {"deployment_id": "dep1prod"})
    api("pause_promotion", env)
    assert api("get_environment", env)["in_progress_promotion"]["status"] == "PAUSED"
    api("resume_promotion", env)
    api("force_roll_forward_promotion", env)
    api("promote_to_environment", env, {"deployment_id": "dep3stag"})
    api("force_cancel_promotion", env)
    api("pause_promotion", env, status=400)  # nothing in progress
    # Deployment retry, logs and metrics
    broken = emulator.create_deployment("echo1234", "v4", fail="BUILD_FAILED")["id"]
    emulator.advance(10)
    logs = api("get_deployment_logs", {"deployment_id": broken}, query={"min_level": "ERROR", "direction": "desc"})
    assert logs["logs"] and {line["level"] for line in logs["logs"]} == {"ERROR"}
    assert api("retry_deployment", {"deployment_id": broken})["retried"] is True
    assert api("retry_production_deployment")["retried"] is False
    api("retry_development_deployment")
    api("get_environment_logs", {"env_name": "production"}, query={"limit": 10})
    api("get_deployment_metrics", dep)
    api("get_deployment_metrics", dep, query={"mode": "SERIES", "metrics": ["baseten_replicas_active"]})
    api("get_deployment_metrics", dep, query={"mode": "SUMMARY", "start_epoch_millis": 0}, status=400)  # > 7 days
    # Chains, on the chain host
    chain_dep = {"deployment_id": "chain123dep"}
    for target, p in (("production", {}), ("development", {}), ("environment", env), ("deployment", chain_dep)):
        api(f"chain_{target}_run_remote", p, {"names": ["x"]}, model="chain123")
        api(f"chain_{target}_async_run_remote", p, {"names": ["x"]}, model="chain123", status=201)
    api("chain_regional_run_remote", body={"names": ["x"]}, model="chain123-staging")
    api("chain_regional_async_run_remote", body={"names": ["x"]}, model="chain123-staging", status=201)
    api("chain_regional_run_remote", body={"names": ["x"]}, model="chain123-nowhere", status=404)
    chain_request = api("chain_production_async_run_remote", body={"n": 1}, model="chain123", status=201)
    api("chain_get_async_request", chain_request, model="chain123")
    api("chain_cancel_async_request", chain_request, model="chain123")
    api("chain_get_async_request", chain_request, model="other123", status=404)  # not that chain's request
    api("chain_production_run_remote", body=[1], model="chain123", status=422)  # the spec wants an object
    # Chain management: deployments with chainlets, environments, promotions, chainlet settings
    ch, chd = {"chain_id": "chain123"}, {"chain_id": "chain123", "chain_deployment_id": "chain123dep"}
    api("list_chain_deployments", ch)
    api("get_chain_deployment", chd)
    api("get_chainlet_logs", {**chd, "chainlet_id": "chain123depc0"}, query={"min_level": "INFO"})
    api("get_chainlet_logs", {**chd, "chainlet_id": "nope"}, status=404)
    api("create_chain_environment", ch, {"name": "canary", "chainlet_settings": [{"chainlet_name": "Retriever"}]})
    api("create_chain_environment", ch, {"chainlet_settings": []}, status=422)  # name is required
    api("get_chain_environment", {**ch, "env_name": "canary"})
    api("update_chain_environment", {**ch, "env_name": "canary"}, {"promotion_settings": {"rolling_deploy": True}})
    api("promote_to_chain_environment", {**ch, "env_name": "canary"}, {"deployment_id": "chain123dep"})
    api("promote_to_chain_environment", {**ch, "env_name": "canary"}, {}, status=422)  # deployment_id required
    updates = {"updates": [{"chainlet_name": "Retriever", "autoscaling_settings": {"max_replica": 2}}]}
    api("update_chainlet_autoscaling_settings", {**ch, "env_name": "staging"}, updates)
    api("update_chainlet_autoscaling_settings", {**ch, "env_name": "staging"}, {"updates": [{}]}, status=422)
    kinds = {"updates": [{"chainlet_name": "Retriever", "instance_type_id": "2x8"}]}
    api("update_chainlet_instance_types", {**ch, "env_name": "staging"}, kinds)
    # The spec declares the list's items as model environments (EnvironmentV1, which needs model_id and a model
    # deployment): a slip, the emulator answers chain environments. Checked against ChainEnvironmentV1 here.
    listed = api.http.get(api.emu.url + endpoint("list_chain_environments").direct_path(ch)).json()
    spec = _spec("management")
    schema = {"$ref": "#/components/schemas/ChainEnvironmentV1", "components": spec["components"]}
    for item in listed["environments"]:
        assert not list(Draft202012Validator(schema).iter_errors(item))
    api.checked.add("list_chain_environments")
    spare = api.emu.state.create_chain_deployment("chain123", status="ACTIVE")["id"]
    api("deactivate_chain_deployment", {**ch, "chain_deployment_id": spare})
    api("delete_chain_deployment", {**ch, "chain_deployment_id": spare})
    api("delete_chain_deployment", {**ch, "chain_deployment_id": spare}, status=404)
    # Deletions last
    doomed = api("create_training_project", body={"training_project": {"name": "doomed"}})["training_project"]["id"]
    api("delete_training_project", {"training_project_id": doomed})
    api("delete_chain", {"chain_id": "chain123"})
    api("delete_model", model="sleepy12")

    outside_specs = {e.name for e in ENDPOINTS if e.name.endswith("_sync") or e.surface == "model_apis"}
    missing = {e.name for e in ENDPOINTS} - api.checked - outside_specs
    assert not missing, f"endpoints never validated against the spec: {sorted(missing)}"


def test_snapshot_states_are_in_the_spec_enums(api: Client, emulator: BasetenEmulator) -> None:
    # Intermediate states (WAKING_UP, BUILDING, RELEASING, RAMPING_UP, PENDING...) validate too.
    api("development_wake", status=202)
    new = emulator.create_deployment("echo1234")["id"]
    api("get_deployment", {"deployment_id": new})
    api("get_development_deployment")
    api("promote_to_environment", {"env_name": "staging"}, {"deployment_id": "dep1prod"})
    api("get_environment", {"env_name": "staging"})
    emulator.advance(2.5)
    api("get_environment", {"env_name": "staging"})
    api("list_environments")
