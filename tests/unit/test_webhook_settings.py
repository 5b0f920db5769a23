"""Receiver settings from an Airflow connection and Variable; the plugin mount; the standalone command line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from airflow_provider_baseten.exceptions import BasetenConfigurationError
from airflow_provider_baseten.webhooks.__main__ import parse_settings
from airflow_provider_baseten.webhooks.app import sign
from airflow_provider_baseten.webhooks.settings import SecretSource, settings_from_connection

BODY = json.dumps(
    {"request_id": "r1", "model_id": "m", "deployment_id": "d", "type": "t", "time": "x", "data": 1, "errors": []}
).encode()


def set_conn(monkeypatch: pytest.MonkeyPatch, password: str | None, **extra: object) -> None:
    conn = {"conn_type": "generic", "password": password, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BASETEN_WEBHOOKS", json.dumps(conn))


def test_secrets_from_the_password_the_extra_and_a_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch, "pw-secret-1,pw-secret-2", store=str(tmp_path), secrets=["extra-secret"], secrets_variable="whs"
    )
    monkeypatch.setenv("AIRFLOW_VAR_WHS", json.dumps(["var-secret"]))
    settings = settings_from_connection()
    assert settings.secrets.current() == ("pw-secret-1", "pw-secret-2", "extra-secret", "var-secret")
    assert settings.store == str(tmp_path)
    assert not any(s in repr(settings) for s in ("pw-secret", "extra-secret", "var-secret"))


def test_a_connection_without_a_store_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "pw-secret-1")
    with pytest.raises(BasetenConfigurationError, match="store"):
        settings_from_connection()


@pytest.mark.parametrize("value", [True, "false", "true", 1])
def test_a_connection_may_not_allow_unsigned_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    """Behind a proxy on the same host every client is loopback, so the mounted receiver must always verify (was:
    ``bool(extra["allow_unsigned"])``, which read the string "false" as True)."""
    set_conn(monkeypatch, "pw-secret-1", store=str(tmp_path), allow_unsigned=value)
    with pytest.raises(BasetenConfigurationError, match="allow_unsigned"):
        settings_from_connection()


def test_a_missing_variable_is_a_clear_error_naming_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "pw-secret-1", store=str(tmp_path), secrets_variable="absent_var")
    with pytest.raises(BasetenConfigurationError, match="Variable") as info:
        settings_from_connection().secrets.current()
    assert "pw-secret-1" not in str(info.value)


def test_a_failed_reload_keeps_the_last_good_secrets() -> None:
    calls = []

    def load() -> list[str]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("backend down")
        return ["good-secret"]

    source = SecretSource(load, ttl=1e-9)
    assert source.current() == ("good-secret",)
    assert source.current() == ("good-secret",) and len(calls) == 2
    assert repr(source) == "SecretSource(***)"


async def test_the_plugin_mounts_the_receiver_configured_by_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_baseten.plugin import BasetenPlugin

    entries = [e for e in BasetenPlugin.fastapi_apps if e["url_prefix"] == "/baseten-webhooks"]
    assert len(entries) == 1
    set_conn(monkeypatch, "plugin-secret-1", store=str(tmp_path))
    app = entries[0]["app"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        bad = await c.post("/", content=BODY, headers={"X-BASETEN-SIGNATURE": sign(BODY, "nope")})
        good = await c.post("/", content=BODY, headers={"X-BASETEN-SIGNATURE": sign(BODY, "plugin-secret-1")})
    assert (bad.status_code, good.status_code) == (401, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1.json"]


def test_the_command_line_reads_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_SECRETS", "cli-new,cli-old")
    args, settings = parse_settings(["--store", str(tmp_path), "--secret-env", "WH_SECRETS", "--port", "9999"])
    assert args.port == 9999 and settings.secrets.current() == ("cli-new", "cli-old")


@pytest.mark.parametrize(
    "argv",
    [
        ["--store", "x", "--secret-env", "NOT_SET_ANYWHERE_42"],
        ["--secret-env", "WH_SECRETS"],
        ["--store", "x", "--allow-unsigned", "--host", "0.0.0.0"],
    ],
)
def test_the_command_line_refuses_unsafe_or_incomplete_set_ups(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WH_SECRETS", "s")
    with pytest.raises(SystemExit):
        parse_settings(argv)


def test_retention_from_the_connection_and_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "s1", store=str(tmp_path), retention_days=14)
    assert settings_from_connection().retention_days == 14
    _, from_conn = parse_settings(["--conn-id", "baseten_webhooks"])
    assert from_conn.retention_days == 14
    _, overridden = parse_settings(["--conn-id", "baseten_webhooks", "--retention-days", "2.5"])
    assert overridden.retention_days == 2.5
    monkeypatch.setenv("WH_SECRETS", "s")
    _, standalone = parse_settings(["--store", str(tmp_path), "--secret-env", "WH_SECRETS"])
    assert standalone.retention_days is None  # keep everything unless asked
    set_conn(monkeypatch, "s1", store=str(tmp_path), retention_days="7")  # typed as text in the UI
    assert settings_from_connection().retention_days == 7.0
    set_conn(monkeypatch, "s1", store=str(tmp_path), retention_days="a week")
    with pytest.raises(BasetenConfigurationError, match="retention_days"):
        settings_from_connection()


def test_the_command_line_takes_the_connections_limits_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_conn(monkeypatch, "s1", store=str(tmp_path), max_body_bytes=1000, body_timeout=3)
    _, from_conn = parse_settings(["--conn-id", "baseten_webhooks"])
    assert (from_conn.max_body_bytes, from_conn.body_timeout) == (1000, 3.0)
    _, flags = parse_settings(["--conn-id", "baseten_webhooks", "--max-body-bytes", "2000", "--body-timeout", "5"])
    assert (flags.max_body_bytes, flags.body_timeout, flags.store) == (2000, 5.0, str(tmp_path))
    monkeypatch.setenv("WH_SECRETS", "s")
    _, standalone = parse_settings(["--store", str(tmp_path), "--secret-env", "WH_SECRETS"])
    assert (standalone.max_body_bytes, standalone.body_timeout) == (8 * 1024 * 1024, 10.0)


@pytest.mark.parametrize("days", ["0", "-1", "nan", "inf"])
def test_a_bad_retention_on_the_command_line_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    monkeypatch.setenv("WH_SECRETS", "s")
    with pytest.raises(SystemExit) as exit_:
        parse_settings(["--store", str(tmp_path), "--secret-env", "WH_SECRETS", "--retention-days", days])
    assert exit_.value.code == 2 and "retention_days" in capsys.readouterr().err


def test_the_command_line_with_a_connection_refuses_what_would_be_ignored_or_unsafe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WH_SECRETS", "s")
    set_conn(monkeypatch, "s1", store=str(tmp_path), max_body_bytes="8MiB")
    for argv, says in [
        (["--conn-id", "baseten_webhooks", "--store", ""], "--store is empty"),  # an unset $STORE
        (["--conn-id", "baseten_webhooks", "--secret-env", "WH_SECRETS"], "cannot be combined"),
        (["--conn-id", "baseten_webhooks", "--allow-unsigned"], "cannot be combined"),
        (["--conn-id", "baseten_webhooks"], "max_body_bytes must be an integer"),  # a usage error, no traceback
    ]:
        with pytest.raises(SystemExit) as exit_:
            parse_settings(argv)
        assert exit_.value.code == 2 and says in capsys.readouterr().err, argv
    set_conn(monkeypatch, "s1")  # no store in the connection: --store gives it
    _, settings = parse_settings(["--conn-id", "baseten_webhooks", "--store", str(tmp_path / "s")])
    assert settings.store == str(tmp_path / "s") and settings.secrets.current() == ("s1",)
