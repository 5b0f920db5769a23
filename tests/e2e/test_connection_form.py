"""The Baseten connection form, as Airflow's API server and UI show it (``make ui-check``).

1. The API server's form metadata (``/ui/connections/hook_meta``, what the UI renders the form from) lists
   ``baseten`` with our extra fields, relabelled "API Key" and hidden login/schema/port.
2. Headless Chromium (Debian's ``chromium``, driven by ``playwright-core``: scripts/connection-form.mjs)
   opens "Add Connection", picks Baseten, and screenshots the dialog with each section open; every field
   the provider declares is inside its screenshot. Next to each PNG goes a sidecar ``*.fields.json`` with
   the labels seen, which ``make test`` compares with the declarations (tests/connection_form.py).

The browser half needs node, chromium and playwright-core; ``scripts/ui-check.sh`` installs them and sets
``BASETEN_UI_CHECK=1``, which turns a missing tool into a failure instead of a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_provider_baseten import get_provider_info
from tests.connection_form import declared_labels, write_sidecar
from tests.e2e._support import ROOT, Component, airflow_env, free_port, migrate, wait_http

pytestmark = pytest.mark.airflow_e2e

#: Field name -> label, as the provider declares them (``conn-fields``); Airflow must serve exactly these.
EXTRA_FIELDS = {
    name: field["label"] for name, field in get_provider_info()["connection-types"][0]["conn-fields"].items()
}
PLAYWRIGHT_DIR = ROOT / "build" / "ui-check" / "node_modules"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``airflow api-server`` on 127.0.0.1 with a private home; every user is an admin (no login)."""
    home = tmp_path_factory.mktemp("airflow-home")
    port = free_port()
    env = airflow_env(home, port)
    migrate(env)
    server = Component("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)], env, home)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v2/monitor/health", 180, [server])
        yield base
    finally:
        server.stop()


def test_hook_meta_lists_baseten_with_our_fields(api_server: str) -> None:
    answer = httpx.get(f"{api_server}/ui/connections/hook_meta", timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    baseten = [h for h in answer.json() if h["connection_type"] == "baseten"]
    assert len(baseten) == 1, [h["connection_type"] for h in answer.json()]
    meta = baseten[0]
    assert meta["hook_name"] == "Baseten"
    assert meta["hook_class_name"] == "airflow_provider_baseten.hooks.baseten.BasetenHook"
    extra = meta["extra_fields"]
    assert set(extra) == set(EXTRA_FIELDS)
    assert {name: field["schema"]["title"] for name, field in extra.items()} == EXTRA_FIELDS
    assert extra["gateway"]["schema"]["enum"] == ["baseten", "lowcodeapi"]
    assert extra["gateway"]["value"] == "baseten"
    assert extra["auth_scheme"]["schema"]["enum"] == ["Bearer", "Api-Key"]
    assert extra["url_format"]["schema"]["enum"] == ["auto", "new", "old"]
    standard = meta["standard_fields"]
    assert standard["password"] == {
        "hidden": False,
        "title": "API Key",
        "placeholder": "Baseten API key (or LowCodeAPI api_token)",
    }
    assert standard["host"]["title"] == "Base URL (optional)"
    assert all(standard[f]["hidden"] for f in ("login", "port", "url_schema"))


def _browser_tools() -> str | None:
    """What is missing to drive the browser, or ``None``."""
    if not shutil.which("node"):
        return "node"
    if not Path(CHROMIUM).exists():
        return CHROMIUM
    if not (PLAYWRIGHT_DIR / "playwright-core" / "package.json").exists():
        return f"playwright-core in {PLAYWRIGHT_DIR}"
    return None


def test_add_connection_form_in_headless_chromium(api_server: str, tmp_path: Path) -> None:
    missing = _browser_tools()
    if missing:
        if os.environ.get("BASETEN_UI_CHECK"):
            pytest.fail(f"{missing} is missing: scripts/ui-check.sh should have installed it")
        pytest.skip(f"{missing} is missing; run `make ui-check`")
    # make ui-check writes the screenshot the README shows; a plain test run keeps it in tmp_path.
    shot = Path(os.environ.get("BASETEN_UI_SCREENSHOT") or tmp_path / "connection-form.png").resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", str(ROOT / "scripts" / "connection-form.mjs"), api_server, str(shot)],
        env={**os.environ, "PLAYWRIGHT_CORE_DIR": str(PLAYWRIGHT_DIR), "CHROMIUM": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    page = json.loads(proc.stdout.strip().splitlines()[-1])
    # "Standard Fields": host and the key, relabelled; login and port are hidden.
    assert {"Connection ID", "Connection Type", "Base URL (optional)", "API Key"} <= set(page["standard"])
    assert not {"Login", "Port", "Schema"} & set(page["standard"])
    inputs = {i["name"]: i["placeholder"] for i in page["standardInputs"] if i["name"]}
    assert inputs["password"] == "Baseten API key (or LowCodeAPI api_token)"
    assert inputs["host"].startswith("https://api.baseten.co")
    # "Extra Fields": ours, with their labels, defaults and help texts.
    assert set(EXTRA_FIELDS.values()) <= set(page["extra"])
    assert "Reach Baseten directly (baseten) or through the LowCodeAPI gateway." in page["text"]
    # Each screenshot holds every field declared for it, in order, wholly inside the picture; its sidecar
    # records what it shows (make test checks the committed ones against the declarations).
    for image, section in ((shot, "extra"), (shot.with_name(shot.stem + "-standard.png"), "standard")):
        assert page[section] == declared_labels(section), (image, page[section])
        data = image.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, image
        write_sidecar(image, page[section])
