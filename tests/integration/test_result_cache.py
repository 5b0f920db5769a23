"""``cache=`` against the emulator: what is sent is counted on the server (its request log and text counter).

Another deployment, model version or option never hits; a promotion misses; a damaged entry is sent again
and rewritten; the cache holds no secret; a re-embedded corpus with 5 % changed texts sends only those.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.client.cache import ResultCache
from airflow_provider_baseten.emulator.handlers.openai import embed
from airflow_provider_baseten.emulator.server import BasetenEmulator
from airflow_provider_baseten.hooks.baseten import BasetenHook
from tests.integration.conftest import make_hook

MODEL = "echo1234"


def sent(emu: BasetenEmulator, endpoint: str) -> int:
    """Requests the emulator answered for ``endpoint``."""
    return sum(1 for r in emu.requests() if r["endpoint"] == endpoint)


def texts_sent(emu: BasetenEmulator) -> int:
    return emu.counters().get("texts", {}).get("embeddings", 0)


def cache_files(root: Path) -> list[Path]:
    return sorted(root.glob("??/*.json"))


def test_predict_hits_and_a_promotion_misses(emulator: BasetenEmulator, tmp_path: Path) -> None:
    hook = make_hook(emulator)
    first = hook.predict({"x": 1}, cache=tmp_path)
    assert hook.predict({"x": 1}, cache=tmp_path) == first
    assert sent(emulator, "production_predict") == 1
    assert sent(emulator, "get_environment") == 1  # production resolved once for the task (this hook)
    hook.predict({"x": 2}, cache=tmp_path)
    assert sent(emulator, "production_predict") == 2 and sent(emulator, "get_environment") == 1

    # The same deployment named by id is the same entry: the key is the deployment that answers.
    hook.predict({"x": 1}, deployment_id="dep1prod", cache=tmp_path)
    assert sent(emulator, "deployment_predict") == 0
    # Another deployment (another version of the model) never hits.
    hook.predict({"x": 1}, deployment_id="dep3stag", cache=tmp_path)
    assert sent(emulator, "deployment_predict") == 1

    # Production now serves dep3stag (a finished promotion): the next task resolves it and misses.
    emulator.core.state.models[MODEL].environments["production"].current_deployment_id = "dep3stag"
    after = make_hook(emulator)
    promoted = after.predict({"x": 2}, cache=tmp_path)  # dep1prod's answer to {"x": 2} is not dep3stag's
    assert sent(emulator, "production_predict") == 3 and promoted["deployment_id"] == "dep3stag"
    after.predict({"x": 1}, cache=tmp_path)  # dep3stag answered {"x": 1} above, by id: a hit
    assert sent(emulator, "production_predict") == 3


def test_options_and_models_never_hit(emulator: BasetenEmulator, tmp_path: Path) -> None:
    hook = make_hook(emulator)
    cache = ResultCache(tmp_path)
    hook.embeddings("a text", cache=cache)
    hook.embeddings("a text", dimensions=4, cache=cache)
    hook.embeddings("a text", model="other", environment="production", cache=cache)
    hook.embeddings("a text", encoding_format="base64", cache=cache)
    assert sent(emulator, "environment_sync") == 4
    assert len(hook.embeddings("a text", dimensions=4, cache=cache).vectors()[0]) == 4  # its own entry
    hook.rerank("red", ["red car", "pear"], cache=cache)
    hook.rerank("red", ["red car", "pear"], truncate=True, cache=cache)
    hook.rerank("red", ["red car", "pear"], cache=cache)
    hook.sync_request("predict", {"inputs": [["a"]]}, cache=cache)  # classification: BEI's /predict route
    hook.sync_request("predict", {"inputs": [["a"]]}, cache=cache)
    assert sent(emulator, "environment_sync") == 4 + 2 + 1
    # Model APIs: keyed on the model's name, so another model never hits.
    hook.embeddings("a text", model="bge", model_apis=True, cache=cache)
    hook.embeddings("a text", model="bge", model_apis=True, cache=cache)
    hook.embeddings("a text", model="e5", model_apis=True, cache=cache)
    assert sent(emulator, "model_apis_request") == 2


def test_the_async_methods_use_the_same_entries(emulator: BasetenEmulator, tmp_path: Path) -> None:
    hook = make_hook(emulator)
    sync = hook.embeddings("a b", cache=tmp_path)
    hook.predict({"x": 1}, cache=tmp_path)

    hook.embed_batch(["x", "y"], cache=tmp_path)

    async def run() -> Any:
        async_hook = make_hook(emulator)
        one = await async_hook.aembeddings("a b", cache=tmp_path)
        await async_hook.apredict({"x": 1}, cache=tmp_path)
        return one, await async_hook.aembed_batch(["y", "x"], cache=tmp_path)

    again, batch = asyncio.run(run())
    assert again.vectors() == sync.vectors() and batch.cached == 2
    assert sent(emulator, "environment_sync") == 2 and sent(emulator, "production_predict") == 1


def test_a_damaged_entry_is_sent_again_and_rewritten(emulator: BasetenEmulator, tmp_path: Path) -> None:
    hook = make_hook(emulator)
    expected = hook.predict({"x": 1}, cache=tmp_path)
    (entry,) = cache_files(tmp_path)
    entry.write_bytes(entry.read_bytes()[:20])  # a partial entry
    assert hook.predict({"x": 1}, cache=tmp_path) == expected
    assert sent(emulator, "production_predict") == 2
    assert hook.predict({"x": 1}, cache=tmp_path) == expected  # rewritten whole: a hit again
    assert sent(emulator, "production_predict") == 2


def test_a_failed_call_is_never_stored(emulator: BasetenEmulator, tmp_path: Path) -> None:
    from airflow_provider_baseten.exceptions import BasetenError

    hook = make_hook(emulator)
    with pytest.raises(BasetenError):
        hook.embeddings("__fail_400__", cache=tmp_path)
    assert cache_files(tmp_path) == []


def test_the_cache_holds_no_secret(emulator: BasetenEmulator, tmp_path: Path) -> None:
    hook = make_hook(emulator)
    hook.predict({"x": 1}, cache=tmp_path)
    hook.embed_batch(["one", "two"], cache=tmp_path)
    hook.rerank("q", ["t"], cache=tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    key = emulator.api_key.encode()
    assert all(key not in p.read_bytes() and emulator.api_key not in str(p) for p in files)
    assert emulator.api_key not in repr(ResultCache(tmp_path))


def test_an_embed_batch_sends_only_the_changed_texts(
    emulator: BasetenEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The small-scale version of the benchmark (scripts/bench_cache.py): 2,000 texts, 5 % changed.
    corpus = [f"document {i} about topic {i % 17}" for i in range(2_000)]
    hook = make_hook(emulator)
    full = hook.embed_batch(corpus, batch_size=64, cache=tmp_path)
    assert texts_sent(emulator) == 2_000 and full.cached == 0
    changed = list(corpus)
    for i in range(0, 2_000, 20):  # every 20th text: 5 %
        changed[i] = corpus[i] + " (revised)"
    requests_before = sent(emulator, "environment_sync")
    with caplog.at_level(logging.INFO, logger="airflow_provider_baseten"):
        again = make_hook(emulator).embed_batch(
            changed, batch_size=64, cache=tmp_path, log=logging.getLogger("airflow_provider_baseten")
        )
    assert texts_sent(emulator) == 2_000 + 100  # only the 100 changed texts reached the server
    assert sent(emulator, "environment_sync") - requests_before == 2  # packed 64 per request
    assert again.cached == 1_900 and again.succeeded == 2_000 and again.failed == 0
    assert again.summary()["cache"] == "1,900 of 2,000 texts from cache, 100 sent"
    assert "1,900 of 2,000 texts from cache, 100 sent" in caplog.text
    # Every vector is the text's own (the emulator's embedder is a function of the text), in input order.
    assert again.results == [embed(t) for t in changed]
    assert len(cache_files(tmp_path)) == 2_100


def test_a_predict_batch_with_passthrough_uses_the_cache_per_input(emulator: BasetenEmulator, tmp_path: Path) -> None:
    hook = make_hook(emulator)
    rows = [{"id": i, "x": i} for i in range(10)]
    hook.predict_batch(rows[:6], cache=tmp_path)
    result = hook.predict_batch(rows, cache=tmp_path, passthrough_columns=["id"])
    assert sent(emulator, "production_predict") == 10
    assert result.cached == 6 and [r["id"] for r in result.results] == list(range(10))


def test_a_training_project_name_is_resolved_once_per_process(emulator: BasetenEmulator) -> None:
    hook = make_hook(emulator)
    made = hook.get_or_create_training_project("nightly-cache")
    again = BasetenHook(settings=hook.settings)  # another task in the same process
    assert again.get_or_create_training_project("nightly-cache").id == made.id
    assert sent(emulator, "list_training_projects") == 1  # the second found it by id, not by listing
    assert sent(emulator, "get_training_project") == 1
    # Deleted since: the kept id answers 404, the name is looked up afresh and the project made again.
    hook.delete_training_project(made.id)
    remade = again.get_or_create_training_project("nightly-cache")
    assert remade.id != made.id and sent(emulator, "create_training_project") == 2
