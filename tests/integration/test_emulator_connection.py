"""A connection to the emulator never reaches Baseten's cloud (issue 21 §5).

The CLI prints (and ``--env-file`` writes) complete connections for both gateways, and every call made with
them lands on the emulator, counted in its request log. A connection on a local host that leaves a URL template
unset is refused before any request, naming the extra to set, instead of falling back to ``*.baseten.co``.
Host look-ups are recorded at ``socket.getaddrinfo``, which every connection the provider opens goes through.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow.sdk import DAG

from airflow_provider_baseten.client.settings import Settings
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenConfigurationError, BasetenGatewayUnsupportedError
from airflow_provider_baseten.hooks.baseten import BasetenHook
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from tests.dag_support import run_dag, task_states

CHAIN = "chain123"
KEY = "cli-conn-key-8d1f0c2a"
PLACEHOLDER = "<your --api-key>"


class _CloudLookup(Exception):
    """Raised instead of resolving a Baseten cloud host: the test fails at once, nothing leaves the machine."""


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name resolved during the test; resolving a ``baseten.co`` one raises :class:`_CloudLookup`."""
    hosts: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        hosts.append(str(host))
        if str(host).endswith("baseten.co"):
            raise _CloudLookup(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return hosts


class Cli:
    """The emulator's command line, run as a user runs it, with ``--env-file``."""

    def __init__(self, env_file: Path) -> None:
        self.env_file = env_file
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "airflow_provider_baseten.emulator", "--port", "0", "--api-key", KEY),
                *("--time-scale", "1000", "--env-file", str(env_file)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.printed = [self.proc.stdout.readline() for _ in range(5)]  # listening, gateway, 2 connections, key
        assert self.printed[0].startswith("Baseten emulator listening on http://127.0.0.1:"), self.printed
        self.url = self.printed[0].split()[-1]

    def printed_connections(self) -> dict[str, str]:
        """``{AIRFLOW_CONN_<ID>: json}`` from the printed lines."""
        return _env_lines(line.strip() for line in self.printed if "AIRFLOW_CONN_" in line)

    def file_connections(self) -> dict[str, str]:
        """``{AIRFLOW_CONN_<ID>: json}`` as a shell reads the env file."""
        return _env_lines(self.env_file.read_text().splitlines())

    def requests(self) -> list[dict[str, Any]]:
        """The CLI emulator's request log, read over HTTP."""
        entries: list[dict[str, Any]] = httpx.get(self.url + "/__admin/requests").json()["requests"]
        return entries

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _env_lines(lines: Any) -> dict[str, str]:
    out = {}
    for line in lines:
        (word,) = shlex.split(line)  # one shell word: NAME=value, the value quoted
        name, _, value = word.partition("=")
        out[name] = value
    return out


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    run = Cli(tmp_path_factory.mktemp("cli") / "emulator.env")
    yield run
    run.stop()


def test_env_file_is_private_and_matches_what_is_printed_without_the_key(cli: Cli) -> None:
    assert stat.S_IMODE(os.stat(cli.env_file).st_mode) == 0o600
    assert KEY not in "".join(cli.printed)
    printed, written = cli.printed_connections(), cli.file_connections()
    assert sorted(printed) == sorted(written) == ["AIRFLOW_CONN_BASETEN_DEFAULT", "AIRFLOW_CONN_BASETEN_LOWCODEAPI"]
    for name, value in written.items():
        conn = json.loads(value)
        assert conn["password"] == KEY and json.loads(printed[name]) == {**conn, "password": PLACEHOLDER}
        # Every URL template is set, and set to the emulator.
        urls = ("inference_url", "chain_url", "model_apis_url", "upload_endpoint_url")
        assert all(conn["extra"][u].startswith(cli.url + "/") for u in urls), conn["extra"]


def test_each_written_connection_is_a_working_airflow_connection(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cli.file_connections().items():
        monkeypatch.setenv(name, value)  # Airflow reads AIRFLOW_CONN_<ID> and parses the JSON
        hook = BasetenHook(name.removeprefix("AIRFLOW_CONN_").lower())
        ok, message = hook.test_connection()
        assert ok, message
        hook.close()


def _calls(hook: BasetenHook) -> dict[str, Callable[[], Any]]:
    """The calls whose hosts the CLI's connection used to leave to Baseten's defaults, and one that it had."""

    def async_operator_on_a_chain() -> None:
        with DAG("t_cli_chain", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            AsyncPredictOperator(task_id="submit", chain_id=CHAIN, model_inputs=[{"n": 1}], retries=0)
        assert task_states(run_dag(dag)) == {"submit": "success"}

    return {
        "chain_production_run_remote": lambda: hook.run_chain({"n": 1}, chain_id=CHAIN),
        "chain_production_async_run_remote": async_operator_on_a_chain,
        "model_apis_request": lambda: hook.embeddings("hi", model="bge-large", model_apis=True),
        "environment_sync": lambda: hook.chat_completions(
            [{"role": "user", "content": "hi"}], model="served", environment="production"
        ),
    }


def test_every_call_from_the_cli_connection_reaches_the_emulator_and_no_cloud_host(
    cli: Cli, looked_up: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in cli.file_connections().items():
        monkeypatch.setenv(name, value)
    hook = BasetenHook()  # baseten_default, as written by --env-file
    calls = _calls(hook)
    for endpoint, call in calls.items():
        before = len(cli.requests())
        call()
        served = [r["endpoint"] for r in cli.requests()[before:] if r["endpoint"] and r["status"] < 300]
        assert endpoint in served, (endpoint, served)
    hook.close()
    assert [h for h in looked_up if "baseten" in h] == [] and "127.0.0.1" in looked_up  # ("vm": Airflow's own)


def test_the_lowcodeapi_connection_stays_on_the_emulator_too(
    cli: Cli, looked_up: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BASETEN_LOWCODEAPI", cli.file_connections()["AIRFLOW_CONN_BASETEN_LOWCODEAPI"])
    hook = BasetenHook("baseten_lowcodeapi")
    before = len(cli.requests())
    assert hook.predict({"q": 1})["output"] == {"q": 1}
    with pytest.raises(BasetenGatewayUnsupportedError):  # LowCodeAPI has no chain routes: said, not leaked
        hook.run_chain({"n": 1}, chain_id=CHAIN)
    hook.close()
    assert all(r["path"].startswith("/baseten/") for r in cli.requests()[before:])
    assert set(looked_up) <= {"127.0.0.1"}


# -- a local connection that leaves a URL unset ------------------------------------------------------------
@pytest.mark.parametrize(
    ("missing", "call"),
    [
        ("chain_url", lambda h: h.run_chain({"n": 1}, chain_id=CHAIN)),
        ("chain_url", lambda h: h.async_run_chain({"n": 1}, chain_id=CHAIN)),
        ("model_apis_url", lambda h: h.embeddings("hi", model="bge-large", model_apis=True)),
        ("inference_url", lambda h: h.predict({"q": 1})),
    ],
)
@pytest.mark.parametrize("local", ["127.0.0.1", "localhost"])
def test_a_local_connection_without_a_url_is_refused_unsent(
    emulator: BasetenEmulator, looked_up: list[str], missing: str, call: Any, local: str
) -> None:
    conn = emulator.connection()
    del conn["extra"][missing]
    host = conn["host"].replace("127.0.0.1", local)
    hook = BasetenHook(settings=Settings.from_extra(api_key=emulator.api_key, host=host, extra=conn["extra"]))
    with pytest.raises(BasetenConfigurationError, match=f"Set {missing} in the connection extra") as info:
        call(hook)
    hook.close()
    assert info.value.field == missing
    assert emulator.requests() == [] and looked_up == []  # nothing sent, nothing even resolved


def test_a_url_set_explicitly_is_used_even_on_a_local_host() -> None:
    extra = {"chain_url": "https://chain-{chain_id}.api.baseten.co", "model_apis_url": "http://127.0.0.1:9/v1"}
    s = Settings.from_extra(api_key="k", host="http://127.0.0.1:8", extra=extra)
    assert s.url_template("chain_url") == extra["chain_url"]
    assert s.url_template("model_apis_url") == extra["model_apis_url"]
    with pytest.raises(BasetenConfigurationError, match="inference_url"):
        s.url_template("inference_url")
    remote = Settings.from_extra(api_key="k", host="https://proxy.example.com", extra={})
    assert remote.url_template("chain_url") == "https://chain-{chain_id}.api.baseten.co"  # the documented default


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8", True),
        ("http://127.9.8.7", True),
        ("http://localhost:8", True),
        ("http://LOCALHOST.:8", True),
        ("http://[::1]:8", True),
        ("http://[::ffff:127.0.0.1]:8", True),
        ("http://0.0.0.0:8", True),
        ("https://api.baseten.co", False),
        ("http://10.0.0.1", False),
        ("http://128.0.0.1", False),
        ("http://localhost.example.com", False),
    ],
)
def test_is_local(url: str, local: bool) -> None:
    from airflow_provider_baseten.client.settings import is_local

    assert is_local(url) is local
