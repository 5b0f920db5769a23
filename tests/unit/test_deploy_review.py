"""Hostile review of the checkpoint choice and the sync wait (issue 14): each test failed before its fix."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_baseten.client.serving import select_checkpoints
from airflow_provider_baseten.exceptions import BasetenValidationError
from tests.unit.test_deploy_parts import ckpt


def test_latest_compares_times_not_strings() -> None:
    """10:00 at +02:00 is 08:00 UTC: older than 09:00Z, though its text sorts later."""
    older = ckpt("checkpoint-1", "2026-01-01T10:00:00+02:00")
    newer = ckpt("checkpoint-2", "2026-01-01T09:00:00Z")
    assert [c.checkpoint_id for c in select_checkpoints([newer, older], "latest")] == ["checkpoint-2"]
    fraction = ckpt("checkpoint-3", "2026-01-01T09:00:00.5Z")  # "." sorts before "Z", but it is later
    assert [c.checkpoint_id for c in select_checkpoints([fraction, newer], None)] == ["checkpoint-3"]


def test_a_checkpoint_named_twice_is_refused() -> None:
    """Two identical LoRA modules would only fail on the GPU, at vLLM's start: refuse before deploying."""
    cps = [ckpt("checkpoint-1", "2026-01-01T00:01:00Z"), ckpt("checkpoint-2", "2026-01-01T00:02:00Z")]
    with pytest.raises(BasetenValidationError, match="more than once"):
        select_checkpoints(cps, ["checkpoint-1", "checkpoint-1"])


class _Hook:
    def __init__(self, **job: Any) -> None:
        self.job = SimpleNamespace(id="j1", error_message=None, **job)

    async def aget_training_job(self, *_: Any) -> Any:
        return self.job


@pytest.mark.parametrize("sync", ["FAILED", "ERROR"])
def test_a_checkpoint_sync_that_ended_badly_fails_the_wait_at_once(sync: str) -> None:
    """A completed job whose sync is neither SYNCING nor COMPLETED will never sync: fail now, not at timeout."""
    from airflow_provider_baseten.triggers.checkpoint import CheckpointSyncTrigger

    trigger = CheckpointSyncTrigger(conn_id="baseten_default", training_project_id="p", training_job_id="j1")
    hook = _Hook(current_status="TRAINING_JOB_COMPLETED", checkpoint_sync_status=sync)
    got = asyncio.run(trigger.check(hook))  # type: ignore[arg-type]
    assert got is not None and got["status"] == "failed" and sync in got["message"]
    still = _Hook(current_status="TRAINING_JOB_COMPLETED", checkpoint_sync_status="SYNCING")
    assert asyncio.run(trigger.check(still)) is None  # type: ignore[arg-type]
