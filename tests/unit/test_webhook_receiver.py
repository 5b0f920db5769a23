"""The webhook receiver, in process over ASGI: signatures, rotation, limits, shapes, idempotence, no leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from airflow_provider_baseten.webhooks.app import create_app, sign, verify_signature
from airflow_provider_baseten.webhooks.settings import ReceiverSettings, SecretSource

OLD = "whsec-old-0123456789"
NEW = "whsec-new-9876543210"


def body(request_id: str = "req1", **over: object) -> bytes:
    doc: dict[str, object] = {
        "request_id": request_id,
        "model_id": "m1",
        "deployment_id": "d1",
        "type": "async_request_completed",
        "time": "2025-01-01T00:00:00Z",
        "data": {"text": "hi"},
        "errors": [],
    }
    doc.update(over)
    return json.dumps(doc).encode()


def client(store: Path, secrets: tuple[str, ...] = (NEW,), client_host: str = "203.0.113.7", **kw: object):
    app = create_app(ReceiverSettings(store=store, secrets=SecretSource.static(secrets), **kw))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=(client_host, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://receiver")


async def post(c: httpx.AsyncClient, raw: bytes, signature: str | None, path: str = "/") -> httpx.Response:
    headers = {"X-BASETEN-SIGNATURE": signature} if signature is not None else {}
    return await c.post(path, content=raw, headers=headers)


def stored(store: Path) -> list[str]:
    return sorted(os.listdir(store)) if store.exists() else []


async def test_a_signed_delivery_is_stored_byte_for_byte(tmp_path: Path) -> None:
    raw = body()
    async with client(tmp_path) as c:
        r = await post(c, raw, sign(raw, NEW), path="/deliveries")
    assert r.status_code == 200 and r.json() == {"request_id": "req1", "stored": True, "duplicate": False}
    assert (tmp_path / "req1.json").read_bytes() == raw


@pytest.mark.parametrize("signature", [None, "", "v1=" + "0" * 64, "v2=abc", "garbage"])
async def test_a_missing_or_bad_signature_is_401_and_stores_nothing(tmp_path: Path, signature: str | None) -> None:
    async with client(tmp_path) as c:
        r = await post(c, body(), signature)
    assert r.status_code == 401
    assert stored(tmp_path) == []


async def test_a_signature_under_another_secret_or_of_another_body_is_401(tmp_path: Path) -> None:
    raw = body()
    async with client(tmp_path) as c:
        assert (await post(c, raw, sign(raw, "some-other-secret"))).status_code == 401
        assert (await post(c, raw, sign(body("req2"), NEW))).status_code == 401
        assert (await post(c, raw + b" ", sign(raw, NEW))).status_code == 401  # one byte changed
    assert stored(tmp_path) == []


async def test_a_replayed_body_is_stored_once(tmp_path: Path) -> None:
    raw = body()
    async with client(tmp_path) as c:
        first = await post(c, raw, sign(raw, NEW))
        again = [await post(c, raw, sign(raw, NEW)) for _ in range(3)]
    assert first.json()["stored"] is True
    assert all(r.status_code == 200 and r.json()["duplicate"] is True for r in again)
    assert stored(tmp_path) == ["req1.json"]


async def test_during_rotation_either_secret_and_a_double_header_are_accepted(tmp_path: Path) -> None:
    async with client(tmp_path, secrets=(NEW, OLD)) as c:
        a, b, both = body("a"), body("b"), body("both")
        assert (await post(c, a, sign(a, OLD))).status_code == 200
        assert (await post(c, b, sign(b, NEW))).status_code == 200
        header = f"{sign(both, 'retired-secret')}, {sign(both, NEW)}"  # several v1= values, one valid
        assert (await post(c, both, header)).status_code == 200
    assert stored(tmp_path) == ["a.json", "b.json", "both.json"]
    # After the rotation window the old secret is dropped: its signature no longer passes.
    async with client(tmp_path / "after", secrets=(NEW,)) as c:
        assert (await post(c, a, sign(a, OLD))).status_code == 401
    assert stored(tmp_path / "after") == []


async def test_secrets_reload_so_a_rotation_needs_no_restart(tmp_path: Path) -> None:
    current = [OLD]
    source = SecretSource(lambda: list(current), ttl=0.001)
    app = create_app(ReceiverSettings(store=tmp_path, secrets=source))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        a = body("a")
        assert (await post(c, a, sign(a, NEW))).status_code == 401
        current[:] = [NEW, OLD]
        await asyncio.sleep(0.01)  # past the 1 ms TTL, not waiting for luck
        assert (await post(c, a, sign(a, NEW))).status_code == 200


async def test_an_oversize_body_is_413_and_reading_stops_at_the_limit(tmp_path: Path) -> None:
    limit, chunk = 64 * 1024, b"x" * 16 * 1024
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):  # 160 MiB if the receiver kept reading
            sent += len(chunk)
            yield chunk

    async with client(tmp_path, max_body_bytes=limit) as c:
        r = await c.post("/", content=endless(), headers={"X-BASETEN-SIGNATURE": "v1=00"})
    assert r.status_code == 413
    assert sent <= limit + 2 * len(chunk)  # memory bounded by the limit, not by what the client sends
    assert stored(tmp_path) == []


async def test_a_declared_oversize_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    sent = 0

    async def parts() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += 1
        yield b"x" * 10

    async with client(tmp_path, max_body_bytes=1000) as c:
        r = await c.post("/", content=parts(), headers={"Content-Length": "5000000"})
    assert r.status_code == 413 and sent == 0
    assert stored(tmp_path) == []


async def test_a_slow_body_client_is_cut_off_after_the_body_timeout(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b'{"request_id": '
        await never.wait()  # the client stalls mid-body
        yield b"}"

    async with client(tmp_path, body_timeout=0.2) as c:
        r = await asyncio.wait_for(c.post("/", content=slow()), timeout=5)
    assert r.status_code == 408
    assert stored(tmp_path) == []


@pytest.mark.parametrize("raw", [b"not json", b'{"request_id": ', b"\xff\xfe"])
async def test_a_signed_body_that_is_not_json_is_400(tmp_path: Path, raw: bytes) -> None:
    async with client(tmp_path) as c:
        r = await post(c, raw, sign(raw, NEW))
    assert r.status_code == 400
    assert stored(tmp_path) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",
        b'{"request_id": "r1"}',
        body("../../etc/passwd"),
        body(".hidden"),
        body("a/b"),
        body("r1", errors="boom"),
        body("r1", model_id=None),
    ],
)
async def test_a_signed_body_of_the_wrong_shape_is_422(tmp_path: Path, raw: bytes) -> None:
    async with client(tmp_path / "s") as c:
        r = await post(c, raw, sign(raw, NEW))
    assert r.status_code == 422
    assert stored(tmp_path / "s") == [] and sorted(os.listdir(tmp_path)) == ["s"]


async def test_a_failed_request_with_errors_and_null_data_is_stored(tmp_path: Path) -> None:
    raw = body("failed1", data=None, errors=[{"code": "MODEL_ERROR", "message": "oom"}])
    async with client(tmp_path) as c:
        assert (await post(c, raw, sign(raw, NEW))).status_code == 200
    assert json.loads((tmp_path / "failed1.json").read_bytes())["errors"][0]["code"] == "MODEL_ERROR"


async def test_unsigned_is_accepted_only_when_allowed_and_from_loopback(tmp_path: Path) -> None:
    raw = body()
    async with client(tmp_path / "a", secrets=(), allow_unsigned=True, client_host="127.0.0.1") as c:
        assert (await post(c, raw, None)).status_code == 200
    async with client(tmp_path / "b", secrets=(), allow_unsigned=True, client_host="203.0.113.7") as c:
        assert (await post(c, raw, None)).status_code == 401
    async with client(tmp_path / "c", secrets=(NEW,), allow_unsigned=False, client_host="127.0.0.1") as c:
        assert (await post(c, raw, None)).status_code == 401
    async with client(tmp_path / "d", secrets=(NEW,), allow_unsigned=True, client_host="::1") as c:
        assert (await post(c, raw, sign(raw, "wrong"))).status_code == 401  # a signature present is verified
    assert stored(tmp_path / "a") == ["req1.json"]
    assert stored(tmp_path / "b") == stored(tmp_path / "c") == stored(tmp_path / "d") == []


async def test_no_secret_configured_is_503_so_baseten_retries(tmp_path: Path) -> None:
    raw = body()
    async with client(tmp_path, secrets=()) as c:
        assert (await post(c, raw, sign(raw, NEW))).status_code == 503
    assert stored(tmp_path) == []


async def test_a_store_failure_is_500_so_baseten_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int) -> None:
        raise OSError("disk full")

    raw = body()
    async with client(tmp_path) as c:
        monkeypatch.setattr(os, "fsync", disk_full)
        assert (await post(c, raw, sign(raw, NEW))).status_code == 500
        monkeypatch.undo()
        assert (await post(c, raw, sign(raw, NEW))).json()["stored"] is True
    assert stored(tmp_path) == ["req1.json"]


async def test_health(tmp_path: Path) -> None:
    async with client(tmp_path) as c:
        assert (await c.get("/health")).json() == {"status": "ok"}


async def test_secrets_never_reach_logs_responses_or_reprs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ReceiverSettings(store=tmp_path, secrets=SecretSource.static([NEW, OLD]))
    app = create_app(settings)
    texts = [repr(settings), repr(settings.secrets)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        raw = body()
        for signature in (None, "v1=bad", sign(raw, NEW), sign(raw, NEW)):
            texts.append((await post(c, raw, signature)).text)
        texts.append((await post(c, b"nope", sign(b"nope", NEW))).text)
        texts.append((await c.get("/health")).text)
    texts += [r.getMessage() for r in caplog.records]
    assert any("req1" in t for t in texts)  # the check reads what was really produced
    for text in texts:
        assert NEW not in text and OLD not in text
        assert sign(raw, NEW)[3:] not in text  # nor the valid signature


def test_verify_signature_edge_cases() -> None:
    raw = b"{}"
    assert verify_signature(raw, sign(raw, NEW), (NEW,))
    assert verify_signature(raw, sign(raw, NEW).upper().replace("V1=", "v1="), (NEW,))
    assert not verify_signature(raw, sign(raw, NEW), ())
    assert not verify_signature(raw, None, (NEW,))
    assert not verify_signature(raw, "v1=", (NEW,))


async def test_with_a_retention_old_bodies_are_pruned_after_a_delivery_at_most_once_an_hour(tmp_path: Path) -> None:
    from airflow_provider_baseten.webhooks.store import ResultStore

    ResultStore(tmp_path).put(body("ancient"))
    week_ago = os.path.getmtime(tmp_path / "ancient.json") - 7 * 86400
    os.utime(tmp_path / "ancient.json", (week_ago, week_ago))
    app = create_app(ReceiverSettings(store=tmp_path, secrets=SecretSource.static((NEW,)), retention_days=3))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as c:
        raw = body("fresh")
        assert (await post(c, raw, sign(raw, NEW))).status_code == 200
        app.state.pruner.join(10)
        assert stored(tmp_path) == ["fresh.json"] and app.state.pruner.removed == 1
        # Aged now, but the next run is not due for an hour: a second delivery prunes nothing.
        os.utime(tmp_path / "fresh.json", (week_ago, week_ago))
        raw2 = body("second")
        assert (await post(c, raw2, sign(raw2, NEW))).status_code == 200
        app.state.pruner.join(10)
    assert stored(tmp_path) == ["fresh.json", "second.json"] and app.state.pruner.removed == 1


async def test_without_a_retention_nothing_is_pruned(tmp_path: Path) -> None:
    from airflow_provider_baseten.webhooks.store import ResultStore

    ResultStore(tmp_path).put(body("ancient"))
    os.utime(tmp_path / "ancient.json", (1, 1))
    app = create_app(ReceiverSettings(store=tmp_path, secrets=SecretSource.static((NEW,))))
    assert app.state.pruner is None
    async with client(tmp_path) as c:
        raw = body("fresh")
        assert (await post(c, raw, sign(raw, NEW))).status_code == 200
    assert stored(tmp_path) == ["ancient.json", "fresh.json"]


@pytest.mark.parametrize("days", [0, -1, float("inf"), "7", True])
def test_a_bad_retention_is_a_configuration_error(tmp_path: Path, days: object) -> None:
    from airflow_provider_baseten.exceptions import BasetenConfigurationError

    with pytest.raises(BasetenConfigurationError, match="retention_days"):
        ReceiverSettings(store=tmp_path, retention_days=days)  # type: ignore[arg-type]
