"""The methods beyond the seed against Stoplight Prism serving Baseten's official management spec.

Prism validates every request (path, query, body presence, content type, JSON schema) and answers with
responses generated from the spec, so this checks the hook from outside, with nothing of ours on the
server side. It needs Prism, which is not a Python dependency; the test is skipped without it::

    npm install --prefix build/prism @stoplight/prism-cli@5.16.0
    BASETEN_PRISM=build/prism/node_modules/.bin/prism .venv/bin/python -m pytest tests/integration/test_prism_beyond_seed.py
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.client.transport import RetryPolicy, Settings
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.conftest import SPECS

PRISM = os.environ.get("BASETEN_PRISM") or shutil.which("prism")
pytestmark = pytest.mark.skipif(not PRISM, reason="Stoplight Prism not installed (set BASETEN_PRISM)")

CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("list_training_projects", (), {}),
    ("get_training_project", ("tp1",), {}),
    ("create_training_project", ("nightly",), {}),
    ("get_or_create_training_project", ("nightly",), {}),
    ("pause_promotion", ("staging",), {}),
    ("resume_promotion", ("staging",), {}),
    ("force_cancel_promotion", ("staging",), {}),
    ("force_roll_forward_promotion", ("staging",), {}),
    ("retry_deployment", ("production",), {}),
    ("retry_deployment", ("development",), {}),
    ("retry_deployment", ("d1",), {}),
    (
        "get_deployment_logs",
        ("d1",),
        {
            "start_epoch_millis": 1,
            "end_epoch_millis": 2,
            "min_level": "ERROR",
            "limit": 5,
            "direction": "desc",
            "includes": ["a", "b"],
            "excludes": ["c"],
            "replica": "abcde",
            "request_id": "r",
            "component": "c",
            "search_pattern": "x.*",
        },
    ),
    ("get_environment_logs", ("staging",), {"min_level": "INFO"}),
    ("iter_deployment_logs", ("d1",), {"limit": 3, "page_size": 5}),
    ("get_deployment_metrics", ("d1",), {}),
    (
        "get_deployment_metrics",
        ("d1",),
        {"mode": "SERIES", "start_epoch_millis": 1, "end_epoch_millis": 2, "metrics": ["a", "b"]},
    ),
    ("get_environment", ("staging",), {}),
    ("get_training_job_logs", ("tp1", "tj1"), {"min_level": "ERROR", "direction": "desc", "limit": 3}),
]


@pytest.fixture(scope="module")
def prism() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = str(SPECS / "openapi-management.json")
    proc = subprocess.Popen(
        [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), spec],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "Prism did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("method", "args", "kwargs"), CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CALLS)])
def test_prism_accepts_every_request_and_the_hook_reads_every_answer(
    prism: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    settings = Settings.from_extra(
        api_key="prism-key", host=prism, extra={"model_id": "m1"}, retry=RetryPolicy(max_attempts=1)
    )
    result = getattr(BasetenHook(settings=settings), method)(*args, **kwargs)
    if method.startswith("iter_"):
        list(result)


def test_prism_rejects_what_baseten_rejects(prism: str) -> None:
    # The control: the checks above mean something only if Prism refuses a body where the spec has none.
    auth = {"Authorization": "Bearer prism-key"}
    url = f"{prism}/v1/models/m1/environments/staging/pause_promotion"
    assert httpx.post(url, json={}, headers=auth).status_code == 415
    assert httpx.post(url, headers=auth).status_code == 200
    logs = f"{prism}/v1/models/m1/deployments/d1/logs"
    assert httpx.get(logs, params={"min_level": "FATAL"}, headers=auth).status_code == 422
