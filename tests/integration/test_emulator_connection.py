"""A connection to the emulator never reaches Baseten's cloud (issue 21 §5).

A connection on a local host that leaves a URL template
unset is refused before any request, naming the extra to set, instead of falling back to ``*.baseten.co``.
Host look-ups are recorded at ``socket.getaddrinfo``, which every connection the provider opens goes through.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from airflow_provider_baseten._settings import Settings
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.exceptions import BasetenConfigurationError
from airflow_provider_baseten.hooks.baseten import BasetenHook

CHAIN = "chain123"


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
    from airflow_provider_baseten._settings import is_local

    assert is_local(url) is local
