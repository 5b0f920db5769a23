"""The deploy's pure parts: checkpoint choice (LoRA/full rules), config rendering, ``.truss_ignore`` matching."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from airflow_provider_baseten.client.archive import build_archive, is_ignored
from airflow_provider_baseten.client.serving import merge, render_config, select_checkpoints
from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.models import TrainingCheckpoint


def ckpt(cid: str, when: str, kind: str = "lora", base: str = "Qwen/Qwen2.5-7B", r: int = 16) -> TrainingCheckpoint:
    return TrainingCheckpoint(
        checkpoint_id=cid, created_at=when, checkpoint_type=kind, base_model=base, lora_adapter_config={"r": r}
    )


CKPTS = [ckpt("checkpoint-20", "2026-01-01T00:02:00Z"), ckpt("checkpoint-10", "2026-01-01T00:01:00Z")]


def test_latest_is_by_created_at_not_list_order() -> None:
    assert [c.checkpoint_id for c in select_checkpoints(CKPTS, None)] == ["checkpoint-20"]
    assert [c.checkpoint_id for c in select_checkpoints(CKPTS, "latest")] == ["checkpoint-20"]


def test_named_checkpoints_and_their_rules() -> None:
    assert [c.checkpoint_id for c in select_checkpoints(CKPTS, ["checkpoint-10", "checkpoint-20"])] == [
        "checkpoint-10",
        "checkpoint-20",
    ]
    with pytest.raises(BasetenValidationError, match=r"No checkpoint \['checkpoint-99'\]"):
        select_checkpoints(CKPTS, "checkpoint-99")
    full = [ckpt("checkpoint-1", "2026-01-01T00:00:00Z", "full"), ckpt("checkpoint-2", "2026-01-01T00:01:00Z", "full")]
    with pytest.raises(BasetenValidationError, match="deploys alone"):
        select_checkpoints(full, ["checkpoint-1", "checkpoint-2"])
    mixed = [CKPTS[0], ckpt("checkpoint-5", "2026-01-01T00:00:00Z", base="meta-llama/Llama-3.1-8B")]
    with pytest.raises(BasetenValidationError, match="same base model"):
        select_checkpoints(mixed, ["checkpoint-20", "checkpoint-5"])
    with pytest.raises(BasetenValidationError, match="no checkpoints"):
        select_checkpoints([], None)


def test_engine_builder_config_points_at_the_training_checkpoint() -> None:
    config = render_config("engine_builder", model_name="m", project_name="p", job_id="j1", checkpoints=CKPTS[:1])
    assert config["trt_llm"]["build"]["checkpoint_repository"] == {
        "source": "BASETEN_TRAINING",
        "repo": "p",
        "revision": "j1/checkpoint-20",
    }
    with pytest.raises(BasetenValidationError, match="one checkpoint"):
        render_config("engine_builder", model_name="m", project_name="p", job_id="j1", checkpoints=CKPTS)


def test_vllm_serves_several_lora_adapters_and_full_checkpoints() -> None:
    lora = render_config("vllm", model_name="m", project_name="p", job_id="j1", checkpoints=CKPTS)
    command = lora["docker_server"]["start_command"]
    assert "vllm serve Qwen/Qwen2.5-7B" in command and "--max-lora-rank 16" in command
    assert "checkpoint-20=/tmp/training_checkpoints/j1/rank-0/checkpoint-20" in command
    assert lora["training_checkpoints"]["artifact_references"][0]["paths"] == [
        "rank-0/checkpoint-20/",
        "rank-0/checkpoint-10/",
    ]
    full = render_config(
        "vllm", model_name="m", project_name="p", job_id="j1", checkpoints=[ckpt("c-1", "", "full", base="")]
    )
    assert "vllm serve /tmp/training_checkpoints/j1/rank-0/c-1" in full["docker_server"]["start_command"]


def test_overrides_merge_and_templates_are_filled() -> None:
    config = render_config(
        "engine_builder",
        model_name="m",
        project_name="p",
        job_id="j1",
        checkpoints=CKPTS[:1],
        overrides={"resources": {"accelerator": "H100:2"}, "secrets": None},
    )
    assert config["resources"] == {"accelerator": "H100:2", "use_gpu": True} and config["secrets"] is None
    templated = render_config(
        "vllm",
        model_name="m",
        project_name="p",
        job_id="j1",
        checkpoints=CKPTS[:1],
        template={"model_name": "{model_name}-{checkpoint_id}", "cmd": "echo ${HOME} {job_id}", "n": 1},
    )
    assert templated == {"model_name": "m-checkpoint-20", "cmd": "echo ${HOME} {job_id}", "n": 1}
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


@pytest.mark.parametrize(
    ("path", "is_dir", "ignored"),
    [
        ("data", True, True),
        ("model/data", True, True),  # name/ matches a directory at any depth
        ("data", False, False),  # ... but not a file of that name
        ("model/weights.bin", False, True),
        ("checkpoints/step-1/w.pt", False, True),
        ("model/model.py", False, False),
        ("__pycache__", True, True),
    ],
)
def test_truss_ignore_patterns(path: str, is_dir: bool, ignored: bool) -> None:
    patterns = ["data/", "*.bin", "/checkpoints/*/*.pt", "__pycache__/"]
    assert is_ignored(path, is_dir, patterns) is ignored


def test_a_config_dict_packs_into_a_gzip_tar_with_only_config_yaml(tmp_path: Path) -> None:
    with build_archive({"model_name": "m", "resources": {"use_gpu": True}}, tmp_dir=str(tmp_path)) as archive:
        with tarfile.open(archive.path, "r:gz") as tar:
            assert tar.getnames() == ["config.yaml"]
        assert archive.config == {"model_name": "m", "resources": {"use_gpu": True}}
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
