"""A multi-hundred-MB Truss directory deploys in bounded memory (``make chaos``; about a minute).

The deploy runs in a child process (packing to a temporary file, SigV4 upload streamed from it, commit) against
the emulator in this process, which also streams the body to disk and verifies the signature over all of it.
The child's peak RSS must stay far below the directory's size; the server counts one upload of the full size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.chaos

SIZE_MB = int(os.environ.get("BASETEN_DEPLOY_MEMORY_MB", "300"))
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from airflow_provider_baseten.client.settings import Settings
    from airflow_provider_baseten.hooks.baseten import BasetenHook
    settings = Settings(**json.loads(sys.argv[2]))
    hook = BasetenHook(settings=settings)
    hook.list_models()  # every import and the client made before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = hook.deploy_model(sys.argv[1], deployment_name="big")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kb": base, "peak_kb": peak, "uploaded": result.uploaded_bytes, "s3_key": result.s3_key}))
    """
)


def test_a_300_mb_truss_directory_uploads_in_bounded_memory(emulator: Any, tmp_path: Path) -> None:
    root = tmp_path / "big-truss"
    (root / "model").mkdir(parents=True)
    (root / "config.yaml").write_text("model_name: big-model\n")
    chunk = os.urandom(1 << 20)  # incompressible: the archive is as big as the directory
    for i in range(SIZE_MB // 50):
        with (root / "model" / f"weights-{i}.bin").open("wb") as fh:
            for _ in range(50):
                fh.write(chunk)
    settings = {
        "api_key": emulator.api_key,
        "management_url": emulator.url,
        "inference_url": emulator.inference_url,
        "upload_endpoint_url": emulator.upload_url,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    grown_mb = (out["peak_kb"] - out["base_kb"]) / 1024
    print(f"\n{SIZE_MB} MB Truss directory: peak RSS grew {grown_mb:.1f} MB during deploy_model ({out})")
    slot = emulator.state.uploads[out["s3_key"]]
    assert slot["uploaded"] and slot["size"] == out["uploaded"] >= SIZE_MB * (1 << 20)
    assert grown_mb < 64, f"deploy_model grew RSS by {grown_mb:.0f} MB for a {SIZE_MB} MB directory"
