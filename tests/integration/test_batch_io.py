"""Batch I/O and sharding: JSONL and Parquet, local paths, file:// and moto-backed S3 object storage."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.batch_io import (
    Shard,
    count_records,
    merge_outputs,
    read_records,
    read_results,
    split_input,
    write_records,
)
from airflow_provider_baseten.exceptions import BasetenValidationError

from .conftest import make_hook

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def s3_root() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with one bucket, attached as ObjectStoragePath's ``s3`` filesystem."""
    pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    import boto3
    from airflow.sdk.io import attach
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, **creds).create_bucket(Bucket="batch-io")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # s3fs may open new clients (e.g. per thread); they find the server through these
    attach("s3", fs=s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing"))
    try:
        yield "s3://batch-io"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(params=["local", "file", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the files go: a local folder, a ``file://`` ObjectStoragePath, or moto S3."""
    if request.param == "local":
        return str(tmp_path)
    if request.param == "file":
        return f"file://{tmp_path}"
    base: str = request.getfixturevalue("s3_root")
    return f"{base}/{request.node.name.replace('[', '-').replace(']', '')}"


def _inputs(n: int) -> list[dict[str, Any]]:
    return [{"text": f"item {i}", "n": i} for i in range(n)]


def _fake_outputs(shards: list[Shard]) -> None:
    """What each shard's predict would write: its local index and the input it read."""
    for s in shards:
        write_records(
            s.output_path,
            ({"index": i, "output": rec} for i, rec in enumerate(read_records(s.path))),
        )


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_split_by_rows_then_merge_keeps_global_order(root: str, fmt: str) -> None:
    src = f"{root}/in.{fmt}"
    assert write_records(src, _inputs(1003)) == 1003
    assert count_records(src) == 1003
    shards = split_input(src, f"{root}/shards", rows_per_shard=250)
    assert [(s.start, s.stop) for s in shards] == [(0, 250), (250, 500), (500, 750), (750, 1000), (1000, 1003)]
    assert [count_records(s.path) for s in shards] == [250, 250, 250, 250, 3]
    assert shards[4].name == "shard 4 [1000, 1003)"
    manifest = json.loads(_read_text(f"{root}/shards/shards.json"))
    assert [Shard.from_dict(m) for m in manifest] == shards
    _fake_outputs(shards)
    dest = f"{root}/merged.{fmt}"
    assert merge_outputs([s.as_dict() for s in reversed(shards)], dest) == 1003
    merged = list(read_results(dest))
    assert [r["index"] for r in merged] == list(range(1003))
    assert [r["output"]["n"] for r in merged] == list(range(1003))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_split_by_bytes_bounds_each_shard(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / f"in.{fmt}"
    write_records(str(src), _inputs(2000))
    shards = split_input(str(src), tmp_path / "s", bytes_per_shard=8000)
    assert len(shards) > 2
    assert shards[0].start == 0 and shards[-1].stop == 2000
    assert all(a.stop == b.start for a, b in itertools.pairwise(shards))
    if fmt == "jsonl":
        assert all(os.path.getsize(s.path) < 8000 + 100 for s in shards)


def test_merge_refuses_a_shard_with_a_missing_result(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    write_records(str(src), _inputs(10))
    shards = split_input(str(src), tmp_path / "s", rows_per_shard=4)
    _fake_outputs(shards)
    write_records(shards[1].output_path, [{"index": 0, "output": 1}, {"index": 1, "output": 1}])
    with pytest.raises(BasetenValidationError, match=r"shard 1 \[4, 8\).* 2 results for 4 inputs"):
        merge_outputs(shards, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(BasetenValidationError, match="gap or overlap"):
        merge_outputs([shards[0], shards[2]], tmp_path / "out.jsonl")


def test_bad_input_is_a_typed_error_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"a": 1}\n\n{"a": 2}\n')
    with pytest.raises(BasetenValidationError, match="line 2 is blank"):
        split_input(str(src), tmp_path / "s", rows_per_shard=1)
    with pytest.raises(BasetenValidationError, match="exactly one of"):
        split_input(str(src), tmp_path / "s", rows_per_shard=1, bytes_per_shard=10)
    with pytest.raises(BasetenValidationError, match="positive integer"):
        split_input(str(src), tmp_path / "s", rows_per_shard=0)
    with pytest.raises(BasetenValidationError, match="Parquet rows must be dicts"):
        write_records(str(tmp_path / "x.parquet"), [1, 2])


def test_a_missing_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from airflow_provider_baseten.batch_io import MissingExtraError

    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(MissingExtraError, match=r"pip install 'airflow-provider-baseten\[parquet\]'"):
        count_records(tmp_path / "x.parquet")


@pytest.mark.parametrize("where", ["local", "file", "s3"])
def test_predict_batch_writes_parquet_and_resumes_only_what_it_lacks(
    emulator: Any, tmp_path: Path, where: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Parquet output: the journal is JSONL, the merge writes Parquet; resume sends only missing items."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    out: Any = tmp_path / "out.parquet"
    if where == "file":
        out = ObjectStoragePath(f"file://{out}")
    elif where == "s3":
        monkeypatch.setenv("BASETEN_BATCH_JOURNAL_DIR", str(tmp_path / "journals"))
        out = ObjectStoragePath(f"{request.getfixturevalue('s3_root')}/predict/out.parquet")
    src = tmp_path / "in.parquet"
    write_records(str(src), _inputs(40))
    hook = make_hook(emulator)
    try:
        hook.predict_batch(list(read_records(src))[:25], output_path=out, max_concurrency=4)
        assert emulator.counters()["requests"]["production_predict"] == 25
        assert [r["index"] for r in read_results(out)] == list(range(25))
        result = hook.predict_batch(read_records(src), output_path=out, resume=True, total=40, max_concurrency=4)
    finally:
        hook.close()
    assert emulator.counters()["requests"]["production_predict"] == 40  # 15 more, not 40
    assert result.skipped == 25
    records = list(read_results(out))
    assert [r["index"] for r in records] == list(range(40))
    assert [r["output"]["output"]["n"] for r in records] == list(range(40))
    import pyarrow.parquet as pq

    with out.open("rb") as fh:
        assert pq.ParquetFile(fh).schema_arrow.names == ["index", "output", "error"]


def _read_text(path: str) -> str:
    from airflow_provider_baseten.batch_io import as_path

    p = as_path(path)
    return p.read_text() if hasattr(p, "read_text") else Path(p).read_text()


def test_a_killed_parquet_run_keeps_what_it_paid_for(tmp_path: Path) -> None:
    """The journal of a killed run (never closed) is merged into the Parquet file by the next run."""
    from airflow_provider_baseten.client.batch.sinks import open_sink

    out = tmp_path / "out.parquet"
    first = open_sink(out, resume=False)
    for i in (0, 2, 1):
        first.put(i, {"v": i}, None)
    # killed here: never closed, the file does not exist yet, the journal holds three results
    assert not out.exists() and (tmp_path / "out.parquet.journal").exists()
    second = open_sink(out, resume=True)
    assert [second.done(i) for i in range(4)] == [True, True, True, False]
    second.put(3, None, "boom")
    second.close()
    assert list(read_results(out)) == [
        {"index": 0, "output": {"v": 0}},
        {"index": 1, "output": {"v": 1}},
        {"index": 2, "output": {"v": 2}},
        {"index": 3, "error": "boom"},
    ]
    assert not (tmp_path / "out.parquet.journal").exists()


def test_predict_operator_reads_parquet_inputs_and_writes_parquet(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_baseten.operators.inference import PredictOperator
    from tests.dag_support import context

    for key, value in emulator.connection_env().items():
        monkeypatch.setenv(key, value)
    src = tmp_path / "in.parquet"
    write_records(str(src), _inputs(25))
    out = tmp_path / "out.parquet"
    op = PredictOperator(task_id="p", model_inputs=str(src), output_path=str(out), max_concurrency=4)
    summary = op.execute(context())
    assert summary["total"] == 25 and summary["succeeded"] == 25
    assert [r["output"]["output"] for r in read_results(out)] == _inputs(25)
    assert emulator.counters()["requests"]["production_predict"] == 25


# -- hostile review (issue 16r) ------------------------------------------------------------------------
def test_write_records_refuses_a_row_whose_keys_are_not_columns(tmp_path: Path) -> None:
    """A key that only later rows have would be dropped by pyarrow without a word (was: written without it);
    a type that changes between row groups is a typed error too. The old file stays whole."""
    out = tmp_path / "x.parquet"
    write_records(str(out), [{"a": 0}])
    with pytest.raises(BasetenValidationError, match=r"row 1 has key\(s\) \['b'\]"):
        write_records(str(out), [{"a": 1}, {"a": 2, "b": "dropped"}])
    with pytest.raises(BasetenValidationError, match="do not fit the file's column types"):
        write_records(str(out), [{"a": 1}] * 8192 + [{"a": "text"}])  # the drift is in the second row group
    with pytest.raises(BasetenValidationError, match="do not fit the file's column types"):
        write_records(str(out), [{"a": None}] * 8192 + [{"a": "text"}])  # a first row group of nulls only
    assert list(read_records(str(out))) == [{"a": 0}]
    assert sorted(os.listdir(tmp_path)) == ["x.parquet"]  # no temp file left behind
    # rows with fewer keys are fine (null), nested values and None round-trip
    rows = [{"a": {"x": [1, None]}, "b": None}, {"a": None, "b": "q"}, {"a": {"x": []}}]
    write_records(str(out), rows)
    assert list(read_records(str(out))) == [*rows[:2], {"a": {"x": []}, "b": None}]


def test_a_file_that_is_not_parquet_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "zero.parquet").write_bytes(b"")
    (tmp_path / "text.parquet").write_bytes(b'{"a": 1}\n')
    for name in ("zero.parquet", "text.parquet"):
        with pytest.raises(BasetenValidationError, match="not a readable Parquet file"):
            count_records(tmp_path / name)
        with pytest.raises(BasetenValidationError, match="not a readable Parquet file"):
            split_input(tmp_path / name, tmp_path / "s", rows_per_shard=1)


@pytest.mark.parametrize("bad", ["duplicate", "gap"])
def test_merge_refuses_a_duplicated_index_or_a_gap_and_keeps_the_old_output(tmp_path: Path, bad: str) -> None:
    src = tmp_path / "in.jsonl"
    write_records(str(src), _inputs(6))
    shards = split_input(str(src), tmp_path / "s", rows_per_shard=3)
    _fake_outputs(shards)
    dest = tmp_path / "merged.parquet"
    merge_outputs(shards, dest)
    before = dest.read_bytes()
    indices = [0, 0, 2] if bad == "duplicate" else [0, 2]
    write_records(shards[1].output_path, [{"index": i, "output": i} for i in indices])
    with pytest.raises(BasetenValidationError, match=r"shard 1 \[3, 6\).*holds index (0 where 1|2 where 1)"):
        merge_outputs(shards, dest)
    assert dest.read_bytes() == before  # the earlier merge is untouched
    assert not (tmp_path / "merged.parquet.tmp").exists()  # was: a half-written temp file was left


def test_merge_writes_lf_lines_from_crlf_or_unterminated_shard_outputs(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"a":1}\r\n{"a":2}\r\n{"a":3}')  # CRLF, and no newline after the last line
    shards = split_input(str(src), tmp_path / "s", bytes_per_shard=1)  # smaller than one line: a line each
    assert [(s.start, s.stop) for s in shards] == [(0, 1), (1, 2), (2, 3)]
    assert [r for s in shards for r in read_records(s.path)] == [{"a": 1}, {"a": 2}, {"a": 3}]
    Path(shards[0].output_path).write_bytes(b'{"index":0,"output":1}\r\n')
    Path(shards[1].output_path).write_bytes(b'{"index": 0, "output": 2}\r\n')
    Path(shards[2].output_path).write_bytes(b'{"index":0,"output":3}')
    merge_outputs(shards, tmp_path / "m.jsonl")
    assert (tmp_path / "m.jsonl").read_bytes() == (
        b'{"index":0,"output":1}\n{"index":1,"output":2}\n{"index":2,"output":3}\n'  # was: \r\n kept
    )


def test_outputs_round_trip_json_exactly_through_parquet(tmp_path: Path) -> None:
    """Floats (shortest repr, extremes, -0.0), big ints and unicode come back equal, and a Parquet merge read
    back as JSONL gives the very bytes of the JSONL merge."""
    values: list[Any] = [0.1, 1e308, 5e-324, -0.0, 2**70, -(2**63) - 1, "é漢😀\u2028", {"k": [1.5, None, True]}]
    src = tmp_path / "in.jsonl"
    write_records(str(src), [{"i": i} for i in range(len(values))])
    shards = split_input(str(src), tmp_path / "s", rows_per_shard=3, output_format="parquet")
    from airflow_provider_baseten.client.batch.sinks import open_sink

    for s in shards:  # written as predict_batch writes them: the Parquet sink
        sink = open_sink(Path(s.output_path), resume=False)
        for i in reversed(range(s.rows)):
            sink.put(i, values[s.start + i], None)
        sink.close()
    merge_outputs(shards, tmp_path / "m.parquet")
    merge_outputs(shards, tmp_path / "m.jsonl")
    back = [r["output"] for r in read_results(tmp_path / "m.parquet")]
    assert back == values
    assert [repr(v) for v in back] == [repr(v) for v in values]  # -0.0 stays -0.0, 0.1 stays 0.1
    assert list(read_results(tmp_path / "m.jsonl")) == list(read_results(tmp_path / "m.parquet"))


_KILLED_MERGE = """
import os, signal, sys
from pathlib import Path
from airflow_provider_baseten.client.batch import parquet, sinks
out, where = Path(sys.argv[1]), sys.argv[2]
sink = sinks.open_sink(out, resume=True)
for i in range(5000):
    if not sink.done(i):
        sink.put(i, {"v": i, "s": "x" * 50}, None)
if where == "mid-write":  # the merge has written 3000 rows (some row groups) of the new file
    write = parquet.ParquetResultWriter.write
    seen = [0]
    def killing(self, line):
        seen[0] += 1
        if seen[0] == 3000:
            os.kill(os.getpid(), signal.SIGKILL)
        write(self, line)
    parquet.ParquetResultWriter.write = killing
else:  # the new file is whole and fsynced, not yet renamed over the old one
    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
sink.close()
"""


@pytest.mark.parametrize("where", ["mid-write", "before-replace"])
def test_a_sigkill_mid_merge_never_damages_the_parquet_file(tmp_path: Path, where: str) -> None:
    """SIGKILL while the journal is being merged into the Parquet file: the old file is intact (readable, the
    same bytes), and the next run completes the merge with every result once, nothing redone."""
    import subprocess
    import sys

    from airflow_provider_baseten.client.batch.sinks import open_sink

    out = tmp_path / "out.parquet"
    first = open_sink(out, resume=False)
    for i in range(3):
        first.put(i, {"v": i, "s": "x" * 50}, None)
    first.close()
    before = out.read_bytes()
    child = subprocess.run([sys.executable, "-c", _KILLED_MERGE, str(out), where], timeout=120, check=False)
    assert child.returncode == -9
    assert out.read_bytes() == before  # untouched: the merge writes a temp file
    assert [r["index"] for r in read_results(out)] == [0, 1, 2]
    assert (tmp_path / "out.parquet.journal").exists()
    second = open_sink(out, resume=True)  # folds the killed run's journal first
    assert all(second.done(i) for i in range(5000))  # nothing paid for is redone
    second.close()
    records = list(read_results(out))
    assert [r["index"] for r in records] == list(range(5000))
    assert [r["output"]["v"] for r in records] == list(range(5000))
    assert sorted(os.listdir(tmp_path)) == ["out.parquet"]


_PEAK = """
import sys
from airflow_provider_baseten.batch_io import read_records, count_records
import pyarrow.parquet  # imported before the baseline

def hwm():  # this process's peak RSS (ru_maxrss would start at the forking pytest's)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))

count_records(sys.argv[1])
base = hwm()
n = sum(1 for _ in read_records(sys.argv[1]))
print(n, hwm() - base)
"""


def test_reading_one_huge_row_group_keeps_memory_flat(tmp_path: Path) -> None:
    """Reading a Parquet file of one 60 MB row group (incompressible text) takes no more memory than one of a
    3 MB row group (was: pyarrow's defaults read whole column chunks and cached them: +100 MB here, +240 MB
    for a 207 MB row group)."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    grew = {}
    for rows in (15_000, 300_000):
        path = tmp_path / f"{rows}.parquet"
        text = pa.array([os.urandom(100).hex() for _ in range(rows)])
        pq.write_table(pa.table({"id": pa.array(range(rows)), "text": text}), path, row_group_size=rows)
        assert pq.ParquetFile(path).num_row_groups == 1
        run = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
        # The last line: Airflow may log to stdout first (e.g. 'Unit test configuration loaded' under pytest).
        count, grew[rows] = (int(v) for v in run.stdout.strip().splitlines()[-1].split())
        assert count == rows
    size = (tmp_path / "300000.parquet").stat().st_size
    assert grew[300_000] - grew[15_000] < size / 2, f"{size / 1e6:.0f} MB in one row group: {grew}"
