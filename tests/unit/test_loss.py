"""The loss parser, the tracker, the stop rules and the series file (airflow_provider_baseten/loss.py)."""

from __future__ import annotations

import math
import time

import pytest

from airflow_provider_baseten.exceptions import BasetenValidationError
from airflow_provider_baseten.loss import (
    MAX_LINE_CHARS,
    NO_STEP,
    LossPoint,
    LossTracker,
    StopOnDivergence,
    StopOnNonFinite,
    StopOnPlateau,
    downsample,
    parse_loss_line,
    parse_stop_on,
    read_series,
    stop_rule_from_spec,
    write_series,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{'loss': 1.2345, 'grad_norm': 0.9, 'learning_rate': 2e-05, 'epoch': 0.5}", LossPoint(NO_STEP, 1.2345, 0.5)),
        ("{'loss': 0.7, 'step': 30, 'epoch': 1.0}", LossPoint(30, 0.7, 1.0)),
        ("  3%|▎  | 10/300 {'loss': 2.5, 'epoch': 0.03}", LossPoint(NO_STEP, 2.5, 0.03)),
        ("step=120 loss=0.873", LossPoint(120, 0.873)),
        ("step 10/100 loss=0.5000", LossPoint(10, 0.5)),
        ("global_step=7 loss=1e-3 epoch=2", LossPoint(7, 0.001, 2.0)),
        ('{"step": 12, "loss": 0.25, "epoch": 0.1}', LossPoint(12, 0.25, 0.1)),
        ('{"train/loss": 0.3, "train/global_step": 4}', LossPoint(4, 0.3)),
        ("{'loss': -0.5}", LossPoint(NO_STEP, -0.5)),
    ],
)
def test_parses_each_shape(line: str, expected: LossPoint) -> None:
    assert parse_loss_line(line) == expected


@pytest.mark.parametrize(
    ("line", "check"),
    [
        ("{'loss': nan, 'epoch': 0.5}", math.isnan),
        ("{'loss': inf}", math.isinf),
        ("{'loss': -inf}", lambda v: v == -math.inf),
        ('{"loss": NaN, "step": 3}', math.isnan),
        ('{"loss": Infinity}', math.isinf),
        ("step=3 loss=nan", math.isnan),
        ("step=3 loss=NaN", math.isnan),
        ("step=3 loss=inf", math.isinf),
    ],
)
def test_non_finite_values_parse(line: str, check: object) -> None:
    point = parse_loss_line(line)
    assert point is not None
    assert check(point.loss)  # type: ignore[operator]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Loading checkpoint shards: 100%",
        "RuntimeError: loss became NaN at step 100 (emulated failure)",
        "eval_loss=0.3 step=4",
        "val/loss=0.3",
        "{'eval_loss': 0.3, 'epoch': 1.0}",
        "{'train_runtime': 10.0, 'train_loss': 0.9, 'epoch': 3.0}",  # the run's mean, not a point
        "{'loss': 'abc'}",
        "{'loss': True}",
        "{'loss': [1.0]}",
        "{'loss': 10**400}",
        "loss=",
        "step=4 lossy=0.3",
    ],
)
def test_lines_without_a_training_loss(line: str) -> None:
    assert parse_loss_line(line) is None


def test_nested_dicts_read_only_the_top_level() -> None:
    assert parse_loss_line("{'metrics': {'loss': 1.0}, 'step': 3}") is None
    assert parse_loss_line("{'loss': 0.5, 'extra': {'loss': 9.0, 'x': [1, {'y': 2}]}}") == LossPoint(NO_STEP, 0.5)


@pytest.mark.parametrize(
    "line",
    [
        "{'loss': __import__('os').system('touch /tmp/pwned_loss')}",
        "{'loss': (lambda: __import__('os').system('touch /tmp/pwned_loss'))()}",
        "{'loss': 1.0, 'x': __import__('os').system('touch /tmp/pwned_loss')}",
        "__import__('os').system('touch /tmp/pwned_loss')",
        "{'loss': open('/tmp/pwned_loss', 'w')}",
        "{'loss': 1.0.__class__}",
    ],
)
def test_hostile_lines_never_run(line: str, tmp_path: object) -> None:
    import os

    if os.path.exists("/tmp/pwned_loss"):
        os.remove("/tmp/pwned_loss")
    point = parse_loss_line(line)
    assert not os.path.exists("/tmp/pwned_loss")
    # Only a number literal is ever taken: the call is not a loss, the literal 1.0 next to it is.
    assert point is None or point.loss == 1.0


def test_huge_and_deep_lines_are_skipped_fast() -> None:
    started = time.perf_counter()
    assert parse_loss_line("{'loss': 1.0, 'pad': '" + "x" * 10_000_000 + "'}") is None
    assert parse_loss_line("[" * 100_000 + "]" * 100_000) is None
    deep = "{'loss': 1.0, 'x': " + "[" * (MAX_LINE_CHARS // 2 - 20) + "]" * (MAX_LINE_CHARS // 2 - 20) + "}"
    parse_loss_line(deep[:MAX_LINE_CHARS])  # may or may not parse; must not crash
    assert parse_loss_line("loss=" + "9" * 4000) == LossPoint(NO_STEP, math.inf)  # a float overflow is inf
    assert time.perf_counter() - started < 5.0  # generous for a loaded CI; quadratic would take hours


def test_user_regex() -> None:
    pattern = r"it (?P<step>\d+): train-loss (?P<loss>\S+)"
    assert parse_loss_line("it 42: train-loss 0.125", pattern) == LossPoint(42, 0.125)
    assert parse_loss_line("step=1 loss=0.5", pattern) is None  # the user's shape is the only one read
    assert (
        parse_loss_line("it 3: train-loss nan", pattern).loss != parse_loss_line("it 3: train-loss nan", pattern).loss
    )  # type: ignore[union-attr]
    with pytest.raises(BasetenValidationError, match="named group 'loss'"):
        parse_loss_line("x", r"(?P<step>\d+)")
    with pytest.raises(BasetenValidationError, match="not a valid regex"):
        LossTracker(pattern="(")


def _lines(losses: list[float]) -> list[str]:
    return [f"step={i + 1} loss={v}" for i, v in enumerate(losses)]


def test_tracker_numbers_points_without_step_and_summarises() -> None:
    tracker = LossTracker()
    for v in (3.0, 2.0, 2.5):
        tracker.feed(f"{{'loss': {v}, 'epoch': 0.1}}")
    tracker.feed("unrelated")
    assert [p.step for p in tracker.points] == [1, 2, 3]
    assert tracker.summary() == {"first": 3.0, "best": 2.0, "best_step": 2, "last": 2.5, "last_step": 3, "steps": 3}


def test_summary_is_json_safe_with_nan() -> None:
    import json

    tracker = LossTracker()
    tracker.feed("{'loss': nan}")
    summary = tracker.summary()
    assert summary["first"] == "nan" and summary["best"] is None
    json.dumps(summary, allow_nan=False)


def test_non_finite_rule_fires_at_the_nan_step_even_mid_batch() -> None:
    tracker = LossTracker([StopOnNonFinite()])
    reason = tracker.feed_lines([*_lines([2.0, 1.5, 1.2]), "step=4 loss=nan", "step=5 loss=1.0"])
    assert reason == "loss is nan at step 4 (stop_on=StopOnNonFinite())"
    assert tracker.last_point == LossPoint(4, tracker.last_point.loss)  # type: ignore[union-attr]


def test_divergence_rule() -> None:
    rule = StopOnDivergence(factor=2.0, patience=3)
    tracker = LossTracker([rule])
    # best 1.0 at step 2; 2.5 (step 3) is over 2x; 1.5 breaks the run; then 3 in a row: fires at step 7.
    reason = tracker.feed_lines(_lines([1.5, 1.0, 2.5, 1.5, 2.1, 2.2, 3.0, 9.0]))
    assert reason is not None and reason.startswith("loss diverged at step 7: 3 > 2 x best 1 (step 2) for 3 points")
    assert "StopOnDivergence(factor=2, patience=3)" in reason


def test_plateau_rule() -> None:
    tracker = LossTracker([StopOnPlateau(min_delta=0.01, patience=3)])
    # Improves by >= 0.01 until step 4 (best 0.7); steps 5, 6, 7 improve by 0.005 in all: fires at step 7.
    reason = tracker.feed_lines(_lines([1.0, 0.9, 0.8, 0.7, 0.698, 0.696, 0.695, 0.5]))
    assert reason is not None and reason.startswith("loss plateaued at step 7")


def test_no_rule_fires_on_a_converging_run() -> None:
    rules = [StopOnNonFinite(), StopOnDivergence(2.0, 3), StopOnPlateau(1e-3, 5)]
    tracker = LossTracker(rules)
    assert tracker.feed_lines(_lines([2.0 / (i + 1) for i in range(100)])) is None


def test_stop_on_specs_round_trip_and_validate() -> None:
    rules = parse_stop_on(["nan", StopOnDivergence(3, 4), StopOnPlateau(0.0, 2)])
    assert rules == (StopOnNonFinite(), StopOnDivergence(3.0, 4), StopOnPlateau(0.0, 2))
    assert tuple(stop_rule_from_spec(r.spec()) for r in rules) == rules
    assert parse_stop_on("nan") == (StopOnNonFinite(),)
    assert parse_stop_on(None) == ()
    for bad in ("divergence", 3, [object()], {"rule": "plateau", "min_delta": 1}, {"rule": "x"}):
        with pytest.raises(BasetenValidationError):
            parse_stop_on(bad)
    for make in (
        lambda: StopOnDivergence(1.0, 3),
        lambda: StopOnDivergence(2.0, 0),
        lambda: StopOnDivergence(float("nan"), 2),
        lambda: StopOnPlateau(-1.0, 3),
        lambda: StopOnPlateau(0.1, True),
    ):
        with pytest.raises(BasetenValidationError):
            make()


def test_downsample_keeps_ends_and_blowups_in_linear_time() -> None:
    points = [LossPoint(i, 1.0 / (i + 1)) for i in range(50_000)]
    points[23_456] = LossPoint(23_456, math.inf)
    started = time.perf_counter()
    thin = downsample(points, 500)
    assert time.perf_counter() - started < 5.0  # generous for a loaded CI; quadratic would take hours
    assert len(thin) <= 500 and thin[0] == points[0] and thin[-1] == points[-1]
    assert points[23_456] in thin
    assert [p.step for p in thin] == sorted(p.step for p in thin)
    assert downsample(points[:10], 500) == points[:10]


def test_tracker_memory_is_bounded_but_summary_exact() -> None:
    tracker = LossTracker(max_points=100)
    for line in _lines([1.0 + (i % 7) for i in range(1000)]):
        tracker.feed(line)
    assert len(tracker.points) <= 100
    assert tracker.summary()["steps"] == 1000 and tracker.summary()["last_step"] == 1000


def test_series_file_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    points = [LossPoint(1, 2.0, 0.1), LossPoint(2, math.nan), LossPoint(3, math.inf, 0.3)]
    path = write_series(points, str(Path(str(tmp_path)) / "sub" / "loss.csv"))
    assert Path(path).read_text().splitlines()[:2] == ["step,loss,epoch", "1,2.0,0.1"]
    back = read_series(path)
    assert back[0] == points[0] and math.isnan(back[1].loss) and back[2] == points[2]


def test_log_follower_reads_forward_without_repeats() -> None:
    from airflow_provider_baseten.client.logs import LogFollower
    from airflow_provider_baseten.models import LogLine

    def line(ms: int, msg: str) -> LogLine:
        return LogLine(timestamp=str(ms * 1_000_000), message=msg)

    follower = LogFollower(1000, page_size=3)
    assert follower.query() == {"start_epoch_millis": 1000, "limit": 3, "direction": "asc"}
    assert [x.message for x in follower.accept([line(1000, "a"), line(1001, "b"), line(1001, "c")])] == ["a", "b", "c"]
    assert follower.more and follower.cursor == 1001 and len(follower.seen) == 2  # only the newest ms is kept
    # The newest millisecond comes back (asked from 1001): its lines are dropped, the new one is read.
    assert [x.message for x in follower.accept([line(1001, "b"), line(1001, "c"), line(1002, "d")])] == ["d"]
    # A full page of one millisecond already read: step past it instead of asking for it forever.
    follower.accept([line(1002, "d"), line(1002, "e"), line(1002, "f")])
    assert [x.message for x in follower.accept([line(1002, "d"), line(1002, "e"), line(1002, "f")])] == []
    assert follower.cursor == 1003 and not follower.seen
    assert [x.message for x in follower.accept([line(1003, "g")])] == ["g"] and not follower.more


def test_a_secret_in_a_loss_line_never_reaches_the_reason_or_summary() -> None:
    import json

    secret = "sk-live-0123456789abcdef"
    tracker = LossTracker([StopOnNonFinite()])
    reason = tracker.feed_lines([f"step=1 loss=0.5 api_key={secret}", f"{{'loss': nan, 'token': '{secret}'}}"])
    # What leaves the tracker (the event, XCom, the task's error) is built from numbers only, never the line.
    assert reason is not None and secret not in reason
    assert secret not in json.dumps(tracker.summary()) and secret not in repr(tracker.points)


def test_gate_spec_keeps_stop_job_as_a_deprecated_ignored_keyword() -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    from airflow_provider_baseten.loss import gate_spec

    with pytest.warns(AirflowProviderDeprecationWarning, match="owns_job"):
        spec = gate_spec("nan", None, stop_job=True)
    # Still honoured: a trigger built from this spec alone stops its job, as it did before.
    assert spec == {"stop_on": [{"rule": "nan"}], "loss_pattern": None, "stop_job": True}
    with pytest.warns(AirflowProviderDeprecationWarning):
        assert gate_spec("nan", None, stop_job=False) == {"stop_on": [{"rule": "nan"}], "loss_pattern": None}
