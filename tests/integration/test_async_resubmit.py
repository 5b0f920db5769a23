"""AsyncPredictOperator retries submit only what is missing; a request Baseten forgot is not resubmitted by default.

Submissions are counted by the emulator. The task state store is the in-memory stand-in for Airflow 3.3's.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_baseten.emulator.config import FaultRule
from airflow_provider_baseten.exceptions import BasetenError, BasetenValidationError
from airflow_provider_baseten.operators.inference import AsyncPredictOperator
from tests.dag_support import FakeTI, StateStore

INPUTS = [{"i": i} for i in range(5)]


@pytest.fixture
def conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    emulator.set_time_scale(0)  # requests stay QUEUED until a test moves the clock
    return emulator


def _run(store: StateStore, inputs: list[dict[str, Any]] = INPUTS, **kwargs: Any) -> tuple[Any, FakeTI]:
    """One try of the task: returns (result or the exception, its TI)."""
    ti = FakeTI()
    op = AsyncPredictOperator(task_id="a", model_inputs=inputs, wait_for_completion=False, **kwargs)
    try:
        return op.execute({"ti": ti, "task_state_store": store}), ti
    except BasetenError as exc:
        return exc, ti


def _submitted(emu: Any) -> int:
    return emu.counters()["submissions"].get("async_predict", 0)


def test_error_at_input_k_then_retry_submits_only_the_rest(conn: Any) -> None:
    store = StateStore()
    # 429s until the retries run out: refused before any work, so input 2 provably has no request.
    conn.set_faults([FaultRule("429", endpoints=["inference"], times=6, skip=2, retry_after=0.01)])
    first, ti = _run(store)
    assert isinstance(first, BasetenError) and "2 of 5 input(s) have a request" in str(first)
    assert _submitted(conn) == 2
    done = ti.xcoms["request_ids"]
    again, _ = _run(store)
    assert again[:2] == done and len(set(again)) == 5
    assert _submitted(conn) == 5  # each input paid for once


def test_ambiguous_submit_is_not_repeated_by_a_retry_unless_asked(conn: Any) -> None:
    store = StateStore()
    conn.set_faults([FaultRule("502", endpoints=["inference"], times=1, skip=2, after=True)])
    first, _ = _run(store)
    assert isinstance(first, BasetenError) and first.maybe_created
    assert _submitted(conn) == 3  # the third was queued, its id never reached us: not sent again in this try
    again, _ = _run(store)
    # The third may be queued under an id that never arrived: the retry sends only inputs 3 and 4.
    assert len(again) == 4 and _submitted(conn) == 5
    opted, _ = _run(store, resubmit_unknown_outcome=True)  # the user asks for the unknown one to be sent
    assert len(opted) == 5 and _submitted(conn) == 6


def test_changed_inputs_start_afresh(conn: Any) -> None:
    store = StateStore()
    _run(store)
    other = [{"i": i, "v": 2} for i in range(5)]
    _run(store, other)
    assert _submitted(conn) == 10


def test_failed_request_is_resubmitted_succeeded_ones_are_not(conn: Any) -> None:
    store = StateStore()
    inputs = [{"i": 0}, {"i": 1, "fail": True}, {"i": 2}]
    ids, _ = _run(store, inputs)
    conn.advance(60)  # every request ran: the second FAILED
    again, _ = _run(store, inputs)
    assert again[0] == ids[0] and again[2] == ids[2] and again[1] != ids[1]
    assert _submitted(conn) == 4


def test_status_gone_is_finished_with_unknown_outcome(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")  # the reconnect path: Airflow 3.3+
    store = StateStore()
    ids, _ = _run(store)
    conn.advance(2 * 3600)  # finished, and past the 1 h Baseten keeps the status: every status call is a 404
    again, _ = _run(store)
    assert again == ids and _submitted(conn) == 5
    assert conn.counters()["responses"].get("404", 0) >= 5


def test_status_gone_resubmits_when_asked(conn: Any) -> None:
    pytest.importorskip("airflow.sdk.bases.resumablejobmixin")
    store = StateStore()
    ids, _ = _run(store)
    conn.advance(2 * 3600)
    again, _ = _run(store, resubmit_unknown_outcome=True)
    assert not set(again) & set(ids) and _submitted(conn) == 10


def test_wait_on_forgotten_requests_succeeds_with_an_unknown_outcome(conn: Any) -> None:
    hook = conn.hook()
    ids = [hook.async_predict({"i": 1}).request_id]
    conn.advance(2 * 3600)
    from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger, wait_inline

    event = wait_inline(AsyncPredictTrigger(request_ids=ids, conn_id="baseten_default", poll_interval=0.1))
    assert event["status"] == "success" and event["unknown"] == ids and "unknown outcome" in event["message"]


def _warnings(capsys: pytest.CaptureFixture[str], text: str) -> int:
    """Airflow's task loggers write structlog lines to stdout: count the WARNING lines that hold ``text``."""
    return sum("warning" in line and text in line for line in capsys.readouterr().out.splitlines())


def test_no_webhook_warns_that_outputs_go_nowhere(conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _run(StateStore(), [{"i": 1}])
    assert _warnings(capsys, "No webhook_endpoint") == 1
    _run(StateStore(), [{"i": 1}], webhook_endpoint="https://example.invalid/hook")
    assert _warnings(capsys, "No webhook_endpoint") == 0


def test_gateway_refuses_an_explicit_model_id_for_inference(emulator: Any) -> None:
    hook = emulator.hook(gateway="lowcodeapi")
    before = sum(emulator.counters()["requests"].values())
    for call in (
        lambda: hook.predict({"x": 1}, model_id="other123"),
        lambda: hook.async_predict({"x": 1}, model_id="other123"),
        lambda: hook.get_async_request("r1", model_id="other123"),
    ):
        with pytest.raises(BasetenValidationError, match="LowCodeAPI gateway") as info:
            call()
        assert info.value.field == "model_id"
    assert sum(emulator.counters()["requests"].values()) == before  # refused before anything was sent
    assert hook.predict({"x": 1})  # without model_id it works: the token picks the model
    assert hook.predict({"x": 1}, model_id=emulator.model_id)  # the connection's own id is no surprise


def test_gateway_wake_and_wait_with_the_connection_model(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Operators pass the connection's model id on: through LowCodeAPI that must not be refused."""
    from airflow_provider_baseten.operators.inference import WakeDeploymentOperator
    from tests.dag_support import context

    for key, value in emulator.connection_env(gateway="lowcodeapi").items():
        monkeypatch.setenv(key, value)
    prod = emulator.hook().get_deployment("production")
    emulator.scale_to_zero(emulator.model_id, prod.id)
    op = WakeDeploymentOperator(task_id="w", poke_interval=0.1, timeout=60, deferrable=False)
    assert op.execute(context()) == prod.id


def test_gateway_connection_model_id_is_warned_about_once(emulator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_provider_baseten.hooks import baseten

    baseten._warned_gateway_model.discard("baseten_default")
    hook = emulator.hook(gateway="lowcodeapi")
    hook.predict({"x": 1})
    hook.predict({"x": 2})
    assert _warnings(capsys, "routes inference by the api_token") == 1


def test_async_twins_work_across_event_loops(emulator: Any) -> None:
    """Each asyncio.run makes a new loop; the hook's pooled async client must follow (it used to stay on the
    first, closed loop: 'Event loop is closed')."""
    import asyncio

    hook = emulator.hook()
    assert asyncio.run(hook.aget_model()).id == emulator.model_id
    assert asyncio.run(hook.aget_model()).id == emulator.model_id
