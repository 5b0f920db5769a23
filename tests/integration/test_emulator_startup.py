"""The three ways to start the emulator, the connection helpers, and the docs' examples as written."""

from __future__ import annotations

import inspect
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_baseten.emulator import BasetenEmulator, EmulatorConfig, load_config
from airflow_provider_baseten.hooks.baseten import BasetenHook

TESTING_GUIDE = Path(__file__).parents[2] / "docs" / "guides" / "testing.md"


class _Section:
    """The testing guide's "The emulator" section (the emulator's user docs)."""

    def read_text(self) -> str:
        text = TESTING_GUIDE.read_text()
        start = text.index("## The emulator\n")
        end = text.find("\n## ", start + 3)
        return text[start : end if end != -1 else len(text)]

    def __str__(self) -> str:
        return f"{TESTING_GUIDE}#the-emulator"


DOCS = _Section()


def test_cli_prints_its_url_and_serves(tmp_path: Path) -> None:
    config = tmp_path / "emulator.json"
    config.write_text(json.dumps({"time_scale": 10, "state": {"models": [{"id": "solo1234", "deployments": []}]}}))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "airflow_provider_baseten.emulator", "--port", "0", "--api-key", "cli-key-123"),
            *("--config", str(config), "--fault", "503=1@get_model"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.fullmatch(r"Baseten emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        headers = {"Authorization": "Api-Key cli-key-123"}
        assert [m["id"] for m in httpx.get(url + "/v1/models", headers=headers).json()["models"]] == ["solo1234"]
        assert httpx.get(url + "/v1/models/solo1234", headers=headers).status_code == 503
        assert httpx.get(url + "/__admin/clock").json()["time_scale"] == 10
        rest = proc.stdout.readline() + proc.stdout.readline()  # type: ignore[union-attr]
        assert "cli-key-123" not in line + rest  # the key is not printed
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"time_scal": 2}))
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_baseten.emulator", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "time_scal" in proc.stderr


def test_context_manager_and_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with BasetenEmulator(api_key=f"ctx-key-{secrets.token_hex(8)}") as emu:
        assert httpx.get(emu.url + "/__admin/health").json()["url"] == emu.url
        for gateway in ("baseten", "lowcodeapi"):
            for name, value in emu.connection_env("baseten_emu", gateway=gateway).items():
                monkeypatch.setenv(name, value)
            hook = BasetenHook("baseten_emu")
            assert hook.get_model().id == "echo1234"
            assert hook.predict({"q": gateway})["output"] == {"q": gateway}
            ok, message = hook.test_connection()
            assert ok, message
        url = emu.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/__admin/health")


def test_connection_uri_parses_in_airflow(emulator: BasetenEmulator) -> None:
    from airflow.models.connection import Connection

    for gateway in ("baseten", "lowcodeapi"):
        conn = Connection(conn_id="x", uri=emulator.connection_uri(gateway=gateway, url_format="old"))
        expected = emulator.connection(gateway=gateway, url_format="old")
        assert conn.conn_type == "baseten" and conn.password == emulator.api_key
        assert conn.host == expected["host"] and conn.extra_dejson == expected["extra"]


def test_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "api_key": "file-key-0001",
                "durations": {"wake": 1},
                "faults": {"seed": 3, "rules": [{"kind": "drop", "rate": 0.1, "endpoints": ["inference"]}]},
            }
        )
    )
    config = load_config(path, time_scale=5)
    assert config.durations.wake == 1 and config.seed == 3 and config.faults[0].kind == "drop"
    assert config.time_scale == 5 and "file-key-0001" not in repr(config) + json.dumps(config.to_dict())
    with pytest.raises(ValueError):
        EmulatorConfig.from_dict({"nope": 1})


@pytest.mark.parametrize("index", [0, 1, 2])
def test_docs_python_examples_run_as_written(
    index: int, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) == 3
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the example updates os.environ
    namespace: dict[str, Any] = {}
    exec(compile(blocks[index], f"{DOCS}:python[{index}]", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    for test in tests:  # a pytest test shown in the guide: run it with its fixtures, as pytest would
        test(**{arg: request.getfixturevalue(arg) for arg in inspect.signature(test).parameters})
    assert len(tests) == (1 if "pytest_plugins" in blocks[index] else 0)


def test_docs_cli_connection_example_is_valid_json() -> None:
    text = DOCS.read_text()
    block = re.search(r"AIRFLOW_CONN_BASETEN_DEFAULT='(.*?)'", text, re.S)
    assert block
    conn = json.loads(block.group(1))
    assert conn["extra"]["inference_url"].endswith("/model/{model_id}") and conn["conn_type"] == "baseten"
    assert conn["extra"]["upload_endpoint_url"] == conn["host"] + "/__s3"  # a deploy must not go to AWS
    # The same keys the CLI prints, every URL on the emulator: nothing falls back to Baseten's cloud.
    with BasetenEmulator(port=int(conn["host"].rsplit(":", 1)[1])) as emu:
        printed = emu.connection()
    assert conn["extra"] == printed["extra"] and conn["host"] == printed["host"]
