"""The result cache's store on its own: keys, TTL, the size bound, unreadable entries, and the name cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_baseten.client.cache import MISS, ResultCache, ScopedCache, as_cache
from airflow_provider_baseten.client.lookups import NameCache
from airflow_provider_baseten.exceptions import BasetenValidationError

SCOPE = "deployment:echo1234/dep1prod"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("??/*.json"))


def test_the_key_is_canonical_and_names_scope_route_and_body() -> None:
    key = ResultCache.key(SCOPE, "predict", {"a": 1, "b": [1, 2]})
    assert key == ResultCache.key(SCOPE, "predict", {"b": [1, 2], "a": 1})  # key order never matters
    others = {
        ResultCache.key("deployment:echo1234/dep3stag", "predict", {"a": 1, "b": [1, 2]}),  # another deployment
        ResultCache.key("deployment:other123/dep1prod", "predict", {"a": 1, "b": [1, 2]}),  # another model
        ResultCache.key(SCOPE, "v1/embeddings", {"a": 1, "b": [1, 2]}),  # another route
        ResultCache.key(SCOPE, "predict", {"a": 1, "b": [2, 1]}),  # another input
        ResultCache.key(SCOPE, "predict", {"a": 1, "b": [1, 2], "dimensions": 4}),  # another option
        ResultCache.key(SCOPE, "predict", {"a": 1.0, "b": [1, 2], "x": None}),
    }
    assert key not in others and len(others) == 6


def test_an_entry_is_one_file_under_a_two_character_fan_out(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    key = cache.key(SCOPE, "predict", {"x": 1})
    assert cache.get(key) is MISS
    cache.put(key, {"y": [1, 2]})
    assert cache.get(key) == {"y": [1, 2]}
    assert entries(tmp_path) == [tmp_path / key[:2] / f"{key}.json"]
    assert not list(tmp_path.glob("??/.tmp-*"))  # the temporary file was renamed into place
    cache.put(key, None)  # None is an output like any other, not a miss
    assert cache.get(key) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # a partial write
        lambda data: b"",  # an empty file (a power loss before the data reached the disk)
        lambda data: b"\xff\xfe garbage",
        lambda data: json.dumps({"key": "someone-else", "at": 1e6, "output": 1}).encode(),  # another key's
        lambda data: json.dumps({"key": "K", "output": 1}).encode(),  # no timestamp
        lambda data: b"[1, 2]",
    ],
)
def test_an_unreadable_entry_is_a_miss_and_the_next_put_rewrites_it(tmp_path: Path, damage: object) -> None:
    cache = ResultCache(tmp_path)
    key = cache.key(SCOPE, "predict", {"x": 1})
    cache.put(key, {"y": 2})
    path = entries(tmp_path)[0]
    path.write_bytes(damage(path.read_bytes()).replace(b'"K"', f'"{key}"'.encode()))  # type: ignore[operator]
    assert cache.get(key) is MISS
    cache.put(key, {"y": 2})
    assert cache.get(key) == {"y": 2}


def test_ttl_expires_entries_by_the_time_written_inside_them(tmp_path: Path) -> None:
    clock = Clock()
    cache = ResultCache(tmp_path, ttl=60, clock=clock)
    key = cache.key(SCOPE, "predict", {"x": 1})
    cache.put(key, "out")
    clock.now += 60
    assert cache.get(key) == "out"
    clock.now += 1
    assert cache.get(key) is MISS
    # Another worker with no TTL still reads it: the timestamp is in the entry, not in the reader.
    assert ResultCache(tmp_path, clock=clock).get(key) == "out"


def test_the_size_bound_deletes_the_oldest_entries(tmp_path: Path) -> None:
    import os

    cache = ResultCache(tmp_path, max_bytes=2_000)
    keys = []
    for i in range(40):
        key = cache.key(SCOPE, "predict", {"x": i})
        cache.put(key, "v" * 50)
        os.utime(entries_of(tmp_path, key), (1_000 + i, 1_000 + i))  # a distinct age per entry
        keys.append(key)
    total = sum(p.stat().st_size for p in entries(tmp_path))
    assert total <= 2_000
    assert cache.get(keys[-1]) == "v" * 50  # the newest are kept
    assert cache.get(keys[0]) is MISS  # the oldest went first
    kept = [k for k in keys if cache.get(k) is not MISS]
    assert kept == keys[len(keys) - len(kept) :]  # exactly a newest suffix survives


def entries_of(root: Path, key: str) -> Path:
    return root / key[:2] / f"{key}.json"


def test_a_new_writer_counts_what_is_already_there(tmp_path: Path) -> None:
    ResultCache(tmp_path).put("ab" + "0" * 62, "x" * 5_000)  # written without a bound
    bounded = ResultCache(tmp_path, max_bytes=1_000)
    bounded.put(bounded.key(SCOPE, "predict", 1), "y")
    assert sum(p.stat().st_size for p in entries(tmp_path)) <= 1_000


def test_a_stale_temporary_file_is_deleted_by_pruning(tmp_path: Path) -> None:
    import os

    (tmp_path / "ab").mkdir()
    stale = tmp_path / "ab" / ".tmp-killed"
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (1, 1))
    cache = ResultCache(tmp_path, max_bytes=10_000)
    cache.put(cache.key(SCOPE, "predict", 1), "y")
    assert not stale.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"ttl": 0}, "ttl"), ({"ttl": -1}, "ttl"), ({"ttl": "1h"}, "ttl"), ({"max_bytes": 0}, "max_bytes")],
)
def test_bad_options_fail_before_anything(tmp_path: Path, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(BasetenValidationError) as err:
        ResultCache(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_a_folder_given_as_cache_is_a_result_cache(tmp_path: Path) -> None:
    assert as_cache(None) is None
    assert as_cache(str(tmp_path)).root == tmp_path  # type: ignore[union-attr]
    assert as_cache(f"file://{tmp_path}").root == tmp_path  # type: ignore[union-attr]
    given = ResultCache(tmp_path, ttl=5)
    assert as_cache(given) is given
    with pytest.raises(BasetenValidationError):
        as_cache(42)
    with pytest.raises(BasetenValidationError):
        as_cache("")


def test_an_object_storage_path_on_the_local_filesystem_is_written_by_rename(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    cache = ResultCache(ObjectStoragePath(f"file://{tmp_path}"))
    assert cache.local and cache.root == tmp_path
    key = cache.key(SCOPE, "predict", 1)
    cache.put(key, "out")
    assert cache.get(key) == "out"


def test_object_storage_entries_are_read_and_written_whole(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())  # an object store without a server: no rename, one write per entry
    root = ObjectStoragePath("memory://baseten-cache-test/")
    cache = ResultCache(root, max_bytes=10_000)
    assert not cache.local
    key = cache.key(SCOPE, "predict", 1)
    cache.put(key, [1.5, 2.5])
    assert cache.get(key) == [1.5, 2.5]
    (root / key[:2] / f"{key}.json").write_bytes(b'{"key": "')  # partial
    assert cache.get(key) is MISS


def test_the_scoped_cache_counts_hits_and_sends(tmp_path: Path) -> None:
    scoped = ScopedCache(ResultCache(tmp_path), SCOPE, "v1/embeddings:text")
    for i in range(4):
        scoped.put(scoped.key({"input": str(i)}), [i])
    for i in range(10):
        scoped.get(scoped.key({"input": str(i)}))
    assert (scoped.hits, scoped.sent) == (4, 6)
    assert scoped.line("texts") == "4 of 10 texts from cache, 6 sent"


def test_the_name_cache_expires_and_is_bounded() -> None:
    clock = Clock(0.0)
    names = NameCache(ttl=10, max_entries=2, clock=clock)
    names.put(("c", "u", "training_project", "a"), "id-a")
    clock.now = 10
    assert names.get(("c", "u", "training_project", "a")) == "id-a"
    clock.now = 10.5
    assert names.get(("c", "u", "training_project", "a")) is None
    for name in "xyz":
        names.put(("c", "u", "training_project", name), f"id-{name}")
    assert names.get(("c", "u", "training_project", "x")) is None  # the least recently used went
    assert names.get(("c", "u", "training_project", "z")) == "id-z"


def test_operators_take_cache_only_for_deterministic_calls(tmp_path: Path) -> None:
    from airflow_provider_baseten.operators.inference import PredictOperator
    from airflow_provider_baseten.operators.openai import (
        ChatCompletionsOperator,
        EmbeddingsOperator,
        RunChainOperator,
    )

    assert PredictOperator(task_id="p", model_input={}, cache=tmp_path).cache == tmp_path
    assert EmbeddingsOperator(task_id="e", texts=["a"], cache=ResultCache(tmp_path, ttl=60)).cache.ttl == 60
    assert "cache" in EmbeddingsOperator.template_fields  # a templated folder, e.g. per environment
    with pytest.raises(BasetenValidationError, match="not deterministic"):
        ChatCompletionsOperator(task_id="c", messages=[], model_apis=True, model="m", cache=tmp_path)
    with pytest.raises(BasetenValidationError, match="not deterministic"):
        RunChainOperator(task_id="r", chain_id="c1", chain_input={}, cache=tmp_path)
    with pytest.raises(BasetenValidationError):
        PredictOperator(task_id="p2", model_input={}, cache=3)
