"""The webhook result store: atomic, idempotent, keyed by a safe request_id."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.webhooks.store import ResultStore


def body(request_id: str = "abc123", data: object = None) -> bytes:
    doc = {
        "request_id": request_id,
        "model_id": "m1",
        "deployment_id": "d1",
        "type": "async_request_completed",
        "time": "2025-01-01T00:00:00Z",
        "data": data if data is not None else {"out": 1},
        "errors": [],
    }
    return json.dumps(doc).encode()


def test_put_keeps_the_body_byte_for_byte_and_reads_it_back(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "hooks")
    raw = b'{"request_id":"r1",  "data": {"x": [1, 2]}, "errors": []}'
    assert store.put(raw) is True
    assert (tmp_path / "hooks" / "r1.json").read_bytes() == raw
    assert store.get("r1") == {"request_id": "r1", "data": {"x": [1, 2]}, "errors": []}
    assert store.has("r1") and not store.has("r2")
    assert store.get("r2") is None
    assert store.list_ids() == {"r1"}


def test_a_duplicate_stores_one_object_and_keeps_the_first(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert store.put(body("r1", {"v": 1})) is True
    assert store.put(body("r1", {"v": 2})) is False
    assert store.get("r1")["data"] == {"v": 1}  # type: ignore[index]
    assert os.listdir(tmp_path) == ["r1.json"]


def test_concurrent_duplicates_store_one_object(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: store.put(body("same", {"v": i})), range(32)))
    assert results.count(True) == 1
    assert os.listdir(tmp_path) == ["same.json"]


@pytest.mark.parametrize("bad", ["../escape", "..", ".hidden", "a/b", "a\\b", "", "x" * 129, 7, None, "a b"])
def test_an_unsafe_request_id_is_refused_and_nothing_is_written(tmp_path: Path, bad: object) -> None:
    store = ResultStore(tmp_path / "s")
    with pytest.raises(BasetenValidationError):
        store.put(json.dumps({"request_id": bad}).encode())
    assert os.listdir(tmp_path / "s") == []
    assert os.listdir(tmp_path) == ["s"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"no_id": 1}', b"\xff\xfe"])
def test_a_body_that_is_not_an_object_with_an_id_is_refused(tmp_path: Path, raw: bytes) -> None:
    store = ResultStore(tmp_path)
    with pytest.raises(BasetenValidationError):
        store.put(raw)
    assert os.listdir(tmp_path) == []


def test_get_and_has_refuse_a_traversal_id(tmp_path: Path) -> None:
    (tmp_path / "secret.json").write_text("{}")
    store = ResultStore(tmp_path / "s")
    with pytest.raises(BasetenValidationError):
        store.get("../secret")
    with pytest.raises(BasetenValidationError):
        store.has("../secret")


def test_list_ids_ignores_unfinished_temp_files(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.put(body("done"))
    (tmp_path / ".crashed.0123.tmp").write_bytes(b"{")
    (tmp_path / "notes.txt").write_text("x")
    assert store.list_ids() == {"done"}


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ResultStore(tmp_path)

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put(body("r1"))
    assert os.listdir(tmp_path) == []


def test_without_hard_links_it_falls_back_to_an_atomic_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: str, dst: str) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", no_link)
    store = ResultStore(tmp_path)
    assert store.put(body("r1")) is True
    assert store.put(body("r1")) is False
    assert os.listdir(tmp_path) == ["r1.json"]


def test_object_storage_root(tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    store = ResultStore(ObjectStoragePath(f"file://{tmp_path}/obj"))
    assert store.put(body("r1")) is True
    assert store.put(body("r1")) is False
    assert store.list_ids() == {"r1"}
    assert store.get("r1")["model_id"] == "m1"  # type: ignore[index]


def test_object_store_root_without_a_local_path() -> None:
    # fsspec's in-memory file system stands in for S3: the store goes through the ObjectStoragePath branch.
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    store = ResultStore(ObjectStoragePath("memory://bucket/webhooks-test"))
    assert store.put(body("r9")) is True
    assert store.put(body("r9")) is False
    assert store.has("r9")
    assert store.list_ids() == {"r9"}
    assert store.get("r9")["request_id"] == "r9"  # type: ignore[index]
    assert "bucket" in repr(store)


def _age(store: ResultStore, request_id: str, seconds: float) -> None:
    path = os.path.join(store.root, request_id + ".json")
    then = os.path.getmtime(path) - seconds
    os.utime(path, (then, then))


def test_prune_removes_only_bodies_older_than_the_retention(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for rid in ("old1", "old2", "fresh"):
        store.put(body(rid))
    _age(store, "old1", 8 * 86400)
    _age(store, "old2", 7 * 86400 + 5)
    stale_tmp = tmp_path / ".dead.abc.tmp"  # a write that died a week ago
    stale_tmp.write_bytes(b"{")
    os.utime(stale_tmp, (1, 1))
    (tmp_path / "notes.txt").write_text("not ours")
    os.utime(tmp_path / "notes.txt", (1, 1))
    assert store.prune(7 * 86400) == 2
    assert store.list_ids() == {"fresh"}
    assert not stale_tmp.exists() and (tmp_path / "notes.txt").exists()  # only the store's own files go
    assert store.prune(7 * 86400) == 0  # idempotent
    assert store.put(body("old1")) is True  # a pruned id may be stored again


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_prune_refuses_a_retention_that_is_not_positive(tmp_path: Path, bad: float) -> None:
    store = ResultStore(tmp_path)
    store.put(body("r1"))
    with pytest.raises(ValueError, match="older_than"):
        store.prune(bad)
    assert store.list_ids() == {"r1"}


def test_prune_on_an_object_store() -> None:
    import time

    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    store = ResultStore(ObjectStoragePath("memory://bucket/webhooks-prune"))
    store.put(body("r1"))
    assert store.prune(3600) == 0  # just written
    assert store.prune(3600, now=time.time() + 7200) == 1  # two hours on
    assert store.list_ids() == set()
