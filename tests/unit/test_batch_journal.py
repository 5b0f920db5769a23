"""The batch output file: results are journalled as they arrive and merged in with an atomic replace.

A "kill" here closes the journal's descriptor without merging, which is all a ``kill -9`` leaves behind;
the subprocess version, with a real SIGKILL and the emulator, is ``tests/chaos/test_kill_resume.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.client.batch import read_jsonl, validate_jsonl
from airflow_provider_baseten.client.batch import sinks as _sinks
from airflow_provider_baseten.client.batch.sinks import _JsonlSink
from airflow_provider_baseten.exceptions import BasetenValidationError


def _lines(data: bytes | str) -> list[dict[str, Any]]:
    text = data.decode() if isinstance(data, bytes) else data
    return [json.loads(line) for line in text.splitlines()]


def _write_results(path: Path, n: int, errors: set[int]) -> None:
    recs = [{"index": i, "error": "boom"} if i in errors else {"index": i, "output": {"i": i}} for i in range(n)]
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs))


def _kill(sink: _JsonlSink) -> None:
    """What ``kill -9`` leaves: the journal as written, no merge."""
    assert sink._fd is not None
    os.close(sink._fd)
    sink._fd = None


def test_results_are_merged_in_index_order_and_the_file_is_untouched_until_then(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    _write_results(out, 10, errors={3, 7})
    before = out.read_bytes()
    sink = _JsonlSink(str(out), resume=True)
    assert [i for i in range(10) if not sink.done(i)] == [3, 7]
    for index, output, error in [(12, {"i": 12}, None), (7, {"i": 7}, None), (3, None, "again"), (10, {"i": 10}, None)]:
        sink.put(index, output, error)
    assert out.read_bytes() == before  # nothing touches the file while the batch runs
    sink.close()
    lines = _lines(out.read_bytes())
    assert [r["index"] for r in lines] == [*range(11), 12]
    assert lines[7] == {"index": 7, "output": {"i": 7}} and lines[3] == {"index": 3, "error": "again"}
    assert not Path(str(out) + ".journal").exists() and not Path(str(out) + ".tmp").exists()


def test_a_killed_runs_results_are_merged_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    _write_results(out, 5, errors={1})
    before = out.read_bytes()
    sink = _JsonlSink(str(out), resume=True)
    for i in (1, 6, 5):
        sink.put(i, {"i": i}, None)
    _kill(sink)
    assert out.read_bytes() == before
    again = _JsonlSink(str(out), resume=True)  # merges the journal before deciding what to skip
    assert all(again.done(i) for i in range(7))
    again.close()
    assert [r["index"] for r in _lines(out.read_bytes()) if "output" in r] == list(range(7))


def test_a_crash_while_merging_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.jsonl"
    _write_results(out, 4, errors=set())
    before = out.read_bytes()
    sink = _JsonlSink(str(out), resume=True)
    sink.put(4, {"i": 4}, None)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(_sinks.os, "replace", crash)
    with pytest.raises(OSError):
        sink.close()
    assert out.read_bytes() == before and Path(str(out) + ".journal").exists()
    monkeypatch.undo()
    _JsonlSink(str(out), resume=True).close()
    assert [r["index"] for r in _lines(out.read_bytes())] == list(range(5))


def test_a_fresh_run_replaces_the_file_only_with_its_results(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    _write_results(out, 6, errors=set())
    before = out.read_bytes()
    sink = _JsonlSink(str(out), resume=False)
    assert not sink.done(0)
    sink.put(1, {"new": 1}, None)
    _kill(sink)
    assert out.read_bytes() == before  # a killed overwrite leaves the old file whole
    _JsonlSink(str(out), resume=True).close()  # the journal said "replaces": the old lines go
    assert _lines(out.read_bytes()) == [{"index": 1, "output": {"new": 1}}]


def test_a_torn_last_journal_line_is_redone_not_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = _JsonlSink(str(out), resume=True)
    sink.put(0, {"i": 0}, None)
    _kill(sink)
    with open(str(out) + ".journal", "ab") as fh:
        fh.write(b'{"index":1,"output":{"i"')  # cut by the crash
    again = _JsonlSink(str(out), resume=True)
    assert again.done(0) and not again.done(1)
    again.close()
    assert _lines(out.read_bytes()) == [{"index": 0, "output": {"i": 0}}]


def test_object_storage_output_keeps_a_local_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))  # object storage that is not a local path
    monkeypatch.setenv("BASETEN_BATCH_JOURNAL_DIR", str(tmp_path / "journals"))
    out = ObjectStoragePath("memory://bucket/run/out.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('{"index":0,"output":1}\n{"index":1,"error":"x"}\n')
    sink = _JsonlSink(out, resume=True)
    assert sink.done(0) and not sink.done(1)
    sink.put(1, 2, None)
    sink.put(2, 3, None)
    _kill(sink)
    assert out.read_text() == '{"index":0,"output":1}\n{"index":1,"error":"x"}\n'
    assert len(os.listdir(tmp_path / "journals")) == 1
    _JsonlSink(out, resume=True).close()
    assert _lines(out.read_text()) == [{"index": i, "output": i + 1} for i in range(3)]
    assert os.listdir(tmp_path / "journals") == []
    assert not ObjectStoragePath("memory://bucket/run/out.jsonl.tmp").exists()


def test_a_blank_line_between_inputs_is_an_error_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"i": 0}\n\n{"i": 1}\n')
    with pytest.raises(BasetenValidationError, match="line 2 is blank") as info:
        validate_jsonl(src)
    assert info.value.field == "inputs"


def test_blank_lines_at_the_end_are_ignored(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"i": 0}\n{"i": 1}\n\n  \n')
    assert list(read_jsonl(src)) == [{"i": 0}, {"i": 1}]  # index = line number - 1


def test_long_results_survive_the_merge(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = _JsonlSink(str(out), resume=False)
    big = "x" * 150_000  # longer than one read of the journal
    sink.put(1, {"text": big}, None)
    sink.put(0, {"text": "small"}, None)
    sink.close()
    assert _lines(out.read_bytes()) == [
        {"index": 0, "output": {"text": "small"}},
        {"index": 1, "output": {"text": big}},
    ]
