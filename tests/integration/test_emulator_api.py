"""The emulator's connection helpers take ``gateway=`` by keyword only (issue 23 §1).

``hook(gateway)`` and ``connection_env(conn_id, gateway)`` used to take their arguments in different orders,
so a swapped call silently made a direct connection. Now no positional or misspelt gateway reaches a helper:
every such call is a ``TypeError``, and the keyword calls give the gateway they name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_baseten.emulator.server import BasetenEmulator

# Each old positional form (or a swap of the two argument orders), which used to run as a direct connection.
POSITIONAL: dict[str, Callable[[BasetenEmulator], Any]] = {
    "hook(gateway)": lambda emu: emu.hook("lowcodeapi"),  # type: ignore[misc]
    "settings(gateway)": lambda emu: emu.settings("lowcodeapi"),  # type: ignore[misc]
    "connection(gateway)": lambda emu: emu.connection("lowcodeapi"),  # type: ignore[misc]
    "connection_json(gateway)": lambda emu: emu.connection_json("lowcodeapi"),  # type: ignore[misc]
    "connection_uri(gateway)": lambda emu: emu.connection_uri("lowcodeapi"),  # type: ignore[misc]
    "connection_env(conn_id, gateway)": lambda emu: emu.connection_env("x", "lowcodeapi"),  # type: ignore[misc]
    "connection_env(gateway) (hook's order)": lambda emu: emu.connection_env("lowcodeapi"),
    "connection_env(gateway, conn_id) (swapped)": lambda emu: emu.connection_env("lowcodeapi", "x"),  # type: ignore[misc]
    "hook(gateway=<unknown>)": lambda emu: emu.hook(gateway="gateway"),  # type: ignore[arg-type]
    "connection_env(gateway=True)": lambda emu: emu.connection_env("x", gateway=True),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", list(POSITIONAL.values()), ids=list(POSITIONAL))
def test_no_positional_or_unknown_gateway_gives_a_direct_connection(
    emulator: BasetenEmulator, call: Callable[[BasetenEmulator], Any]
) -> None:
    with pytest.raises(TypeError, match=r"positional|gateway"):
        call(emulator)


def test_every_helper_takes_gateway_by_keyword_and_gives_that_gateway(emulator: BasetenEmulator) -> None:
    gw = {"gateway": "lowcodeapi"}
    [env] = emulator.connection_env("baseten_gw", **gw).values()  # type: ignore[arg-type]
    assert json.loads(env)["host"] == emulator.gateway_url
    assert emulator.connection(**gw)["extra"]["gateway"] == "lowcodeapi"  # type: ignore[arg-type]
    assert json.loads(emulator.connection_json(**gw))["host"] == emulator.gateway_url  # type: ignore[arg-type]
    assert "gateway=lowcodeapi" in emulator.connection_uri(**gw)  # type: ignore[arg-type]
    assert emulator.settings(**gw).base_url == emulator.gateway_url  # type: ignore[arg-type]
    hook = emulator.hook(**gw)  # type: ignore[arg-type]
    assert hook.settings.base_url == emulator.gateway_url
    assert hook.predict({"q": 1})["output"] == {"q": 1}
    # The default stays direct, and a connection id that is not a gateway name is unchanged.
    [env] = emulator.connection_env("baseten_default").values()
    assert json.loads(env)["host"] == emulator.url and emulator.hook().settings.base_url == emulator.url
