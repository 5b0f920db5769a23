"""Serving configs for training checkpoints: pick the checkpoint(s), render a Truss ``config.yaml`` as a dict.

Two routes, as Baseten documents them (``BEYOND-SEED.md`` 2.2, 2.3):

``engine_builder`` (default): Engine-Builder-LLM / BEI / BIS-LLM, built by Baseten from the config alone::

    model_name: <model_name>
    resources: {accelerator: "H100:1", use_gpu: true}
    secrets: {hf_access_token: null}
    trt_llm:
      build:
        base_model: decoder
        checkpoint_repository: {source: BASETEN_TRAINING, repo: <project name>, revision: <job_id>/<checkpoint_id>}

``vllm``: a vLLM server with ``training_checkpoints`` (LoRA: one or more adapters on ``base_model``; full: the
checkpoint itself is served; the full-checkpoint command is not published by Baseten: UNVERIFIED)::

    model_name: <model_name>
    base_image: {image: vllm/vllm-openai:latest}
    docker_server: {start_command: "sh -c \"... vllm serve ...\"", server_port: 8000,
                    predict_endpoint: /v1/chat/completions, readiness_endpoint: /health, liveness_endpoint: /health}
    training_checkpoints: {download_folder: /tmp/training_checkpoints,
                           artifact_references: [{training_job_id: <job_id>, paths: ["rank-0/<checkpoint_id>/"]}]}
    resources: {accelerator: "H100:1", use_gpu: true}
    runtime: {predict_concurrency: 256}
    secrets: {hf_access_token: null}

Override any of it with ``config_overrides`` (deep-merged: a dict merges into a dict, anything else replaces),
or give a whole ``config_template`` whose strings may use ``{model_name}``, ``{project_name}``, ``{job_id}``,
``{checkpoint_id}``, ``{base_model}`` and ``{download_folder}``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from airflow_provider_baseten.exceptions import BasetenValidationError

Route = Literal["engine_builder", "vllm"]
ROUTES: tuple[str, ...] = ("engine_builder", "vllm")
DEFAULT_ACCELERATOR = "H100:1"
DOWNLOAD_FOLDER = "/tmp/training_checkpoints"
SINGLE_CHECKPOINT_TYPES = ("full", "whisper")


def _when(checkpoint: Any) -> float:
    """When the checkpoint was made, as epoch seconds: times compared, not their text (zones, fractions)."""
    from airflow_provider_baseten.models import created_epoch

    return created_epoch(checkpoint)


def select_checkpoints(checkpoints: list[Any], wanted: str | list[str] | None) -> list[Any]:
    """The checkpoints to deploy: the latest (``None`` / ``"latest"``) or the ones named, checked.

    FULL and WHISPER checkpoints deploy alone; LoRA checkpoints may go together when they share a base model.
    """
    if not checkpoints:
        raise BasetenValidationError("The training job has no checkpoints to deploy.", field="checkpoint_id")
    if wanted is None or wanted == "latest":
        return [max(checkpoints, key=_when)]
    chosen = _named(checkpoints, _checkpoint_names(wanted))
    _check_together(chosen)
    return chosen


def _checkpoint_names(wanted: str | list[str]) -> list[str]:
    """The ids ``checkpoint_id`` names: non-empty strings, each once."""
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise BasetenValidationError(f"checkpoint_id must be 'latest', an id or a list of ids, got {wanted!r}.")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BasetenValidationError(f"checkpoint_id names {twice} more than once.", field="checkpoint_id")
    return names


def _named(checkpoints: list[Any], names: list[str]) -> list[Any]:
    """The checkpoints with these ids, in the order named; an error naming the ones the job lacks."""
    by_id = {c.checkpoint_id: c for c in checkpoints}
    missing = [n for n in names if n not in by_id]
    if missing:
        raise BasetenValidationError(
            f"No checkpoint {missing} in this job; it has {sorted(by_id)}.", field="checkpoint_id"
        )
    return [by_id[n] for n in names]


def _check_together(chosen: list[Any]) -> None:
    """Several checkpoints deploy together only as LoRA adapters of one base model."""
    if len(chosen) < 2:
        return
    kinds = {str(c.checkpoint_type or "").lower() for c in chosen}
    if kinds & set(SINGLE_CHECKPOINT_TYPES):
        raise BasetenValidationError(
            f"A {'/'.join(sorted(kinds))} checkpoint deploys alone; got {len(chosen)} checkpoints.",
            field="checkpoint_id",
        )
    if len(kinds) > 1 or len({c.base_model for c in chosen}) > 1:
        raise BasetenValidationError(
            "LoRA checkpoints deployed together must be LoRA on the same base model.", field="checkpoint_id"
        )


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` deep-merged with ``overrides`` (a new dict; dicts merge, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        try:
            return node.format(**values)
        except (KeyError, IndexError, ValueError):
            return node  # a string with other braces (a shell command) stays as written
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    return node


def render_config(
    route: str,
    *,
    model_name: str,
    project_name: str,
    job_id: str,
    checkpoints: list[Any],
    base_model: str | None = None,
    template: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.yaml`` dict that serves ``checkpoints`` of job ``job_id`` by ``route``."""
    if route not in ROUTES:
        raise BasetenValidationError(f"route must be one of {ROUTES}, got {route!r}.", field="route")
    first = checkpoints[0]
    base = base_model or first.base_model
    values = {
        "model_name": model_name,
        "project_name": project_name,
        "job_id": job_id,
        "checkpoint_id": first.checkpoint_id,
        "base_model": str(base or ""),
        "download_folder": DOWNLOAD_FOLDER,
    }
    if template is not None:
        if not isinstance(template, dict):
            raise BasetenValidationError("config_template must be a dict.", field="config_template")
        config = _fill(template, values)
    elif route == "engine_builder":
        if len(checkpoints) > 1:
            raise BasetenValidationError(
                "The engine_builder route deploys one checkpoint; use route='vllm' for several LoRA adapters.",
                field="checkpoint_id",
            )
        config = _engine_builder(values)
    else:
        config = _vllm(values, checkpoints, base)
    return merge(config, overrides) if overrides else config


def _engine_builder(v: dict[str, str]) -> dict[str, Any]:
    return {
        "model_name": v["model_name"],
        "resources": {"accelerator": DEFAULT_ACCELERATOR, "use_gpu": True},
        "secrets": {"hf_access_token": None},
        "trt_llm": {
            "build": {
                "base_model": "decoder",
                "checkpoint_repository": {
                    "source": "BASETEN_TRAINING",
                    "repo": v["project_name"],
                    "revision": f"{v['job_id']}/{v['checkpoint_id']}",
                },
            }
        },
    }


def _vllm(v: dict[str, str], checkpoints: list[Any], base: str | None) -> dict[str, Any]:
    folder, job = v["download_folder"], v["job_id"]
    lora = str(checkpoints[0].checkpoint_type or "").lower() == "lora"
    if lora:
        if not base:
            raise BasetenValidationError("A LoRA checkpoint needs base_model= (its base_model is empty).")
        ranks = [int((c.lora_adapter_config or {}).get("r") or 16) for c in checkpoints]
        modules = " ".join(f"{c.checkpoint_id}={folder}/{job}/rank-0/{c.checkpoint_id}" for c in checkpoints)
        serve = f"vllm serve {base} --port 8000 --enable-lora --max-lora-rank {max(ranks)} --lora-modules {modules}"
    else:
        serve = f"vllm serve {folder}/{job}/rank-0/{checkpoints[0].checkpoint_id} --port 8000"
    return {
        "model_name": v["model_name"],
        "base_image": {"image": "vllm/vllm-openai:latest"},
        "docker_server": {
            "start_command": f'sh -c "HF_TOKEN=$(cat /secrets/hf_access_token) {serve}"',
            "server_port": 8000,
            "predict_endpoint": "/v1/chat/completions",
            "readiness_endpoint": "/health",
            "liveness_endpoint": "/health",
        },
        "training_checkpoints": {
            "download_folder": folder,
            "artifact_references": [
                {"training_job_id": job, "paths": [f"rank-0/{c.checkpoint_id}/" for c in checkpoints]}
            ],
        },
        "resources": {"accelerator": DEFAULT_ACCELERATOR, "use_gpu": True},
        "runtime": {"predict_concurrency": 256},
        "secrets": {"hf_access_token": None},
    }
