"""The ``[baseten]`` config section (issue 17): declared in the provider info, and its values take effect.

``poll_interval`` becomes the default ``poke_interval`` of every waiting operator (and so the trigger's
``poll_interval``); ``status_budget_rps`` becomes the default status budget of ``AsyncPredictTrigger``,
measured here from the emulator's request log, not from the client.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_baseten import get_provider_info
from airflow_provider_baseten._conf import CONFIG, SECTION
from airflow_provider_baseten.emulator.config import Durations
from airflow_provider_baseten.operators.deployment import PromoteDeploymentOperator
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from airflow_provider_baseten.operators.training import CreateTrainingJobOperator
from airflow_provider_baseten.triggers.baseten import STATUS_BUDGET_RPS, AsyncPredictTrigger
from tests.chaos.test_triggerer_load import _peak_per_second, _status_times


def test_provider_info_declares_the_section() -> None:
    section = get_provider_info()["config"][SECTION]
    assert section is CONFIG[SECTION]
    assert set(section["options"]) == {"poll_interval", "status_budget_rps", "default_timeout"}
    assert float(section["options"]["status_budget_rps"]["default"]) == STATUS_BUDGET_RPS


def test_every_option_is_declared_as_airflows_schema_asks() -> None:
    """Each option has what ``airflow config list`` prints: a description, type, example and default, valid
    against Airflow's own provider-info schema. Covers every declared option, present and future."""
    import importlib.resources
    import json

    import jsonschema

    schema = json.loads(importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    options = CONFIG[SECTION]["options"]
    assert options
    for name, option in options.items():
        assert {"description", "version_added", "type", "example", "default"} <= set(option), name
        assert option["description"].strip() and option["example"] is not None, name
        # The CLI prints each line as a comment, as for Airflow's own options: wrapped, not one 230-char line.
        long_lines = [line for line in option["description"].splitlines() if len(f"# {line}") > 100]
        assert not long_lines, (name, long_lines)
        if option["default"] is None:  # printed as `# name = `: the description must say what unset means
            assert "Unset (the default)" in option["description"], name


def test_airflow_conf_knows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow >= 3.2 loads provider sections lazily in every process; 3.1 only in its CLI and components
    (see the CLI test below). Either way the code's fallback is the declared default."""
    from airflow import __version__ as airflow_version
    from airflow.providers.common.compat.sdk import conf
    from packaging.version import Version

    from airflow_provider_baseten import _conf

    monkeypatch.delenv("AIRFLOW__BASETEN__STATUS_BUDGET_RPS", raising=False)
    assert _conf.status_budget_rps(STATUS_BUDGET_RPS) == STATUS_BUDGET_RPS
    if Version(airflow_version) >= Version("3.2"):
        assert conf.getfloat("baseten", "status_budget_rps") == STATUS_BUDGET_RPS


def _promote(**kw: Any) -> PromoteDeploymentOperator:
    return PromoteDeploymentOperator(task_id="p", deployment_id="d1", model_id="m1", **kw)


def test_poll_interval_unset_keeps_each_operators_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__BASETEN__POLL_INTERVAL", raising=False)
    assert _promote().poke_interval == 10.0
    assert CreateTrainingJobOperator(task_id="t", training_project_id="p1", training_job={}).poke_interval == 30.0


def test_poll_interval_config_is_the_default_and_reaches_the_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__BASETEN__POLL_INTERVAL", "2.5")
    op = AsyncPredictOperator(task_id="a", model_inputs=[{"x": 1}], model_id="m1")
    assert op.poke_interval == 2.5
    assert CreateTrainingJobOperator(task_id="t", training_project_id="p1", training_job={}).poke_interval == 2.5
    _, kwargs = op._trigger(["r1"]).serialize()
    assert kwargs["poll_interval"] == 2.5  # what the triggerer polls with
    assert _promote(poke_interval=7).poke_interval == 7  # an argument wins


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "inf"])
def test_bad_config_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AIRFLOW__BASETEN__POLL_INTERVAL", raw)
    with pytest.raises(ValueError, match=r"\[baseten\] poll_interval \(AIRFLOW__BASETEN__POLL_INTERVAL\)"):
        _promote()


def test_status_budget_config_is_the_triggers_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__BASETEN__STATUS_BUDGET_RPS", raising=False)
    assert AsyncPredictTrigger(conn_id="c", request_ids=["r"]).max_status_rps == STATUS_BUDGET_RPS
    monkeypatch.setenv("AIRFLOW__BASETEN__STATUS_BUDGET_RPS", "4")
    trigger = AsyncPredictTrigger(conn_id="c", request_ids=["r"])
    assert trigger.serialize()[1]["max_status_rps"] == 4.0  # serialized: the triggerer uses the worker's value
    assert AsyncPredictTrigger(conn_id="c", request_ids=["r"], max_status_rps=9).max_status_rps == 9.0


def test_status_budget_config_paces_the_status_calls_the_server_sees(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``status_budget_rps = 10``, 20 triggers polling every 50 ms send at most 10 status calls a second."""
    emu = emulator_factory(time_scale=1.0, durations=Durations(async_queued=0.2, async_in_progress=1.0))
    ids = [emu.hook().async_predict({"i": i}).request_id for i in range(20)]
    for key, value in emu.connection_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW__BASETEN__STATUS_BUDGET_RPS", "10")
    triggers = [
        AsyncPredictTrigger(conn_id="baseten_default", request_ids=[rid], poll_interval=0.05, end_time=time.time() + 60)
        for rid in ids
    ]

    async def run() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(t.wait() for t in triggers)))

    events = asyncio.run(run())
    assert [e["status"] for e in events] == ["success"] * 20
    times = _status_times(emu)
    assert len(times) >= 20
    assert _peak_per_second(times) <= 10 + 1, _peak_per_second(times)  # one window may straddle two slots


def _airflow_cli_output(*args: str, **env: str) -> str:
    """The whole stdout of ``airflow *args`` (this virtualenv's), which must succeed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run(
        [str(airflow), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _airflow_cli(*args: str, **env: str) -> str:
    return _airflow_cli_output(*args, **env).strip().splitlines()[-1]  # the answer; log lines come before it


@pytest.mark.airflow_e2e  # the airflow CLI, a process of its own (5-10 s): make e2e
def test_airflow_cli_shows_the_connection_type_asset_uris_and_config() -> None:
    """``airflow providers get airflow-provider-baseten --full -o json``: what Airflow registered."""
    import json

    (shown,) = json.loads(_airflow_cli("providers", "get", "airflow-provider-baseten", "--full", "-o", "json"))
    ours = get_provider_info()
    assert shown["package-name"] == "airflow-provider-baseten"
    assert [c["connection-type"] for c in shown["connection-types"]] == ["baseten"]
    assert shown["config"] == json.loads(json.dumps(CONFIG))
    # The asset URI scheme (issue 17 §1) is shown exactly as declared, once declared.
    assert shown.get("asset-uris") == ours.get("asset-uris")


@pytest.mark.airflow_e2e  # the airflow CLI, a process of its own (5-10 s): make e2e
def test_airflow_cli_reads_the_option_from_the_environment() -> None:
    out = _airflow_cli("config", "get-value", "baseten", "poll_interval", AIRFLOW__BASETEN__POLL_INTERVAL="3")
    assert out.strip() == "3"
    assert float(_airflow_cli("config", "get-value", "baseten", "status_budget_rps").strip()) == STATUS_BUDGET_RPS


@pytest.mark.airflow_e2e  # the airflow CLI, a process of its own (3-10 s): make e2e
def test_airflow_config_list_shows_each_options_description_and_default(tmp_path: Any) -> None:
    """``airflow config list --section baseten --defaults --show-values`` (Airflow hides values and
    descriptions without these flags, for every section): for EVERY declared option, its whole description,
    its example, its environment variable and its default, in the option's own block."""
    out = _airflow_cli_output(
        "config", "list", "--section", SECTION, "--defaults", "--show-values", "--color", "off",
        AIRFLOW_HOME=str(tmp_path),
    )  # fmt: skip
    assert f"[{SECTION}]\n" in out, out[:2000]
    blocks = out[out.index(f"[{SECTION}]\n") :].split("\n\n")  # log lines (if any) come before it
    for line in CONFIG[SECTION]["description"].splitlines():
        assert f"# {line}" in blocks[0].splitlines(), (line, out[:2000])
    options = CONFIG[SECTION]["options"]
    assert options
    for name, option in options.items():
        default = "" if option["default"] is None else str(option["default"])
        (block,) = [b for b in blocks if f"# {name} = " in b.splitlines()[-1] + " "]
        lines = block.strip().splitlines()
        assert lines[-1].rstrip() == f"# {name} = {default}".rstrip(), block
        for line in option["description"].splitlines():
            assert f"# {line}" in lines, (name, line, block)
        assert f"# Example: {name} = {option['example']}" in lines, block
        assert f"# Variable: AIRFLOW__{SECTION.upper()}__{name.upper()}" in lines, block
