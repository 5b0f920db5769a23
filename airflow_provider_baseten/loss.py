"""The training loss, read from a job's log lines, and the rules that stop a bad run.

Baseten's API has no loss metric: a training job's loss is whatever its script prints. This module reads it
from log lines of the usual shapes:

- a Hugging Face Trainer dict: ``{'loss': 1.2345, 'grad_norm': 0.9, 'learning_rate': 2e-05, 'epoch': 0.5}``;
- ``key=value`` lines: ``step=120 loss=0.873`` or ``step 10/100 loss=0.52``;
- JSON lines: ``{"step": 120, "loss": 0.873, "epoch": 1.0}``;
- any other shape through a user regex with a named group ``loss`` (and optionally ``step`` and ``epoch``).

Nothing read from a log is ever evaluated: dict lines are parsed with ``json.loads`` or walked as a
syntax tree (``ast.parse``), and only number literals are taken from them.

:class:`LossTracker` keeps the series (points, never lines) and checks the stop rules
(:class:`StopOnNonFinite`, :class:`StopOnDivergence`, :class:`StopOnPlateau`) at every new point, so a rule
fires at the exact step that broke it, however many lines one poll brings.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_baseten.client.checks import is_int, is_number
from airflow_provider_baseten.client.logs import LogFollower, error_window
from airflow_provider_baseten.exceptions import BasetenValidationError

__all__ = [
    "MAX_LINE_CHARS",
    "NO_STEP",
    "LossPoint",
    "LossTracker",
    "LossWatch",
    "StopOnDivergence",
    "StopOnNonFinite",
    "StopOnPlateau",
    "StopRule",
    "compile_loss_pattern",
    "downsample",
    "gate_spec",
    "parse_loss_line",
    "parse_stop_on",
    "read_series",
    "stop_rule_from_spec",
    "write_series",
]

#: The step of a point whose line named none; :class:`LossTracker` numbers such points itself.
NO_STEP = -1
#: Longer lines are skipped unread: a loss line is short, and parsing a megabyte of log costs time.
MAX_LINE_CHARS = 4096

_NUMBER = r"[-+]?(?:nan|inf(?:inity)?|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
# ``loss=`` as a whole key: ``eval_loss=`` or ``val/loss=`` is not the training loss.
_KV_LOSS = re.compile(rf"(?<![\w/.\-])loss\s*=\s*({_NUMBER})(?![\w.])", re.IGNORECASE)
# ``step=120``, ``step: 120``, ``step 10/100`` (the emulator's shape), ``global_step=7``.
_KV_STEP = re.compile(r"(?<![\w/.\-])(?:global_)?step\s*[=:]?\s*(\d+)(?:\s*/\s*\d+)?(?![\w.])", re.IGNORECASE)
_KV_EPOCH = re.compile(rf"(?<![\w/.\-])epoch\s*=\s*({_NUMBER})(?![\w.])", re.IGNORECASE)

# The keys read from a dict line. ``train_loss`` is not here: Hugging Face prints it once, at the end, as
# the mean over the whole run, which is not a point of the series.
_LOSS_KEYS = ("loss", "train/loss")
_STEP_KEYS = ("step", "global_step", "train/global_step")
_EPOCH_KEYS = ("epoch", "train/epoch")
# Bare names a Python repr or a JSON writer uses for the non-finite floats.
_NAMED_FLOATS = {"nan": math.nan, "NaN": math.nan, "inf": math.inf, "Infinity": math.inf}


@dataclass(frozen=True, slots=True)
class LossPoint:
    """One point of a loss series.

    :param step: The training step (:data:`NO_STEP` when the line named none and no tracker numbered it).
    :param loss: The loss; may be ``nan`` or ``inf``.
    :param epoch: The epoch, when the line gave one.
    """

    step: int
    loss: float
    epoch: float | None = None


def compile_loss_pattern(pattern: re.Pattern[str] | str) -> re.Pattern[str]:
    """Compile and check a user loss regex: it must have a named group ``loss``.

    :param pattern: A regex (string or compiled) with a named group ``loss`` and optionally ``step`` and ``epoch``.
    :raises BasetenValidationError: when it does not compile or has no ``loss`` group.
    """
    try:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise BasetenValidationError(f"loss_pattern is not a valid regex: {exc}") from None
    if not isinstance(compiled, re.Pattern) or "loss" not in compiled.groupindex:
        raise BasetenValidationError("loss_pattern needs a named group 'loss', e.g. r'loss: (?P<loss>\\S+)'")
    return compiled


def _to_float(value: Any) -> float | None:
    """A number literal (or a non-finite name) as a float; anything else (bools, strings, containers) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an int too big for a float is no loss value
            return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _to_step(value: Any) -> int | None:
    number = _to_float(value)
    if number is None or not math.isfinite(number) or number < 0 or number != int(number):
        return None
    return int(number)


def _literal(node: ast.expr) -> Any:
    """The value of a number literal node (``1.5``, ``-2``, ``nan``, ``-inf``); ``None`` for anything else."""
    if isinstance(node, ast.Constant) and is_number(node.value):
        return node.value
    if isinstance(node, ast.Name):
        return _NAMED_FLOATS.get(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand)
        if isinstance(inner, (int, float)):
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


def _dict_of(text: str) -> dict[str, Any] | None:
    """The top-level ``{key: number}`` pairs of a JSON object or a Python dict repr, without evaluating it."""
    try:
        loaded = json.loads(text)  # JSON lines (Python's json reads NaN and Infinity too)
    except (ValueError, RecursionError):
        pass
    else:
        return loaded if isinstance(loaded, dict) else None
    try:
        tree = ast.parse(text, mode="eval")  # a syntax tree only: nothing in it runs
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree.body, ast.Dict):
        return None
    pairs: dict[str, Any] = {}
    for key, value in zip(tree.body.keys, tree.body.values, strict=True):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            pairs[key.value] = _literal(value)
    return pairs


def _first(pairs: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in pairs:
            return pairs[key]
    return None


def parse_loss_line(line: str, pattern: re.Pattern[str] | str | None = None) -> LossPoint | None:
    """Read one loss point from a log line, or ``None`` when the line carries no training loss.

    :param line: One log line (its message).
    :param pattern: A user regex with a named group ``loss`` (and optionally ``step``, ``epoch``). When given, it
        is the only shape read.
    :return: The point; its ``step`` is :data:`NO_STEP` when the line names none.
    :raises BasetenValidationError: when ``pattern`` has no ``loss`` group.
    """
    if len(line) > MAX_LINE_CHARS:
        return None
    if pattern is not None:
        match = compile_loss_pattern(pattern).search(line)
        if match is None:
            return None
        groups = match.groupdict()
        loss = _to_float(groups.get("loss"))
        step = _to_step(groups.get("step"))
        epoch = _to_float(groups.get("epoch"))
    else:
        start, end = line.find("{"), line.rfind("}")
        pairs = _dict_of(line[start : end + 1]) if 0 <= start < end else None
        if pairs is not None:
            loss = _to_float(_first(pairs, _LOSS_KEYS))
            step = _to_step(_first(pairs, _STEP_KEYS))
            epoch = _to_float(_first(pairs, _EPOCH_KEYS))
        else:
            loss_match = _KV_LOSS.search(line)
            if loss_match is None:
                return None
            step_match, epoch_match = _KV_STEP.search(line), _KV_EPOCH.search(line)
            loss = _to_float(loss_match.group(1))
            step = _to_step(step_match.group(1)) if step_match else None
            epoch = _to_float(epoch_match.group(1)) if epoch_match else None
    if loss is None:
        return None
    if epoch is not None and not math.isfinite(epoch):
        epoch = None
    return LossPoint(step=NO_STEP if step is None else step, loss=loss, epoch=epoch)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _json_float(value: float | None) -> float | str | None:
    """A float for XCom and events: JSON has no nan or inf, so those become the strings ``"nan"``/``"inf"``."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


class StopRule(Protocol):
    """What a stop rule is: a check of the tracker after each new point, and a JSON spec for the trigger."""

    #: How many of the newest points (with the best loss after each) the rule looks at.
    window: int

    def check(self, tracker: LossTracker) -> str | None:
        """Return the termination reason when the newest point breaks the rule, else ``None``.

        :param tracker: The tracker, just after it took a point.
        """

    def spec(self) -> dict[str, Any]:
        """The rule as a small JSON dict (:func:`stop_rule_from_spec` builds it back)."""


def _check_patience(patience: Any) -> int:
    if not (is_int(patience) and patience >= 1):
        raise BasetenValidationError(f"patience must be an int >= 1, got {patience!r}")
    return patience


class _Rule:
    """Equality by spec, so a rule rebuilt from its spec (in the trigger) equals the one the user gave."""

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, _Rule) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash(json.dumps(self.spec(), sort_keys=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value:g}" for key, value in self.spec().items() if key != "rule")
        return f"{type(self).__name__}({args})"


class StopOnNonFinite(_Rule):
    """Stop when the loss is ``nan`` or infinite."""

    window = 1

    def check(self, tracker: LossTracker) -> str | None:
        """Return the reason when the newest loss is not finite.

        :param tracker: The tracker, just after it took a point.
        """
        point = tracker.last_point
        if point is None or math.isfinite(point.loss):
            return None
        return f"loss is {point.loss} at step {point.step} (stop_on={self!r})"

    def spec(self) -> dict[str, Any]:
        """The rule as a JSON dict."""
        return {"rule": "nan"}


class StopOnDivergence(_Rule):
    """Stop when the loss stays above ``factor`` x its best so far for ``patience`` consecutive points.

    Only checked once the best loss is positive (a cross-entropy or MSE loss is); a rule on a loss that can go
    negative would need another reference.

    :param factor: How far above the best the loss may go, e.g. ``2.0``; must be > 1.
    :param patience: For how many consecutive points, e.g. ``5``.
    """

    def __init__(self, factor: float, patience: int) -> None:
        if not (is_number(factor) and 1 < factor < math.inf):
            raise BasetenValidationError(f"StopOnDivergence factor must be a finite number > 1, got {factor!r}")
        self.factor = float(factor)
        self.patience = _check_patience(patience)
        self.window = self.patience

    def check(self, tracker: LossTracker) -> str | None:
        """Return the reason when the newest ``patience`` points are all above ``factor`` x best.

        :param tracker: The tracker, just after it took a point.
        """
        best = tracker.best
        recent = tracker.recent(self.patience)
        if best is None or best <= 0 or len(recent) < self.patience:
            return None
        limit = self.factor * best
        # nan > limit is False: a nan breaks the run of points (StopOnNonFinite is the rule for nan).
        if not all(point.loss > limit for point, _ in recent):
            return None
        last = recent[-1][0]
        return (
            f"loss diverged at step {last.step}: {_fmt(last.loss)} > {self.factor:g} x best {_fmt(best)} "
            f"(step {tracker.best_step}) for {self.patience} points (stop_on={self!r})"
        )

    def spec(self) -> dict[str, Any]:
        """The rule as a JSON dict."""
        return {"rule": "divergence", "factor": self.factor, "patience": self.patience}


class StopOnPlateau(_Rule):
    """Stop when the best loss has not improved by at least ``min_delta`` over the last ``patience`` points.

    :param min_delta: The smallest improvement that counts (absolute, in loss units), e.g. ``1e-3``; >= 0.
    :param patience: Over how many points, e.g. ``10``.
    """

    def __init__(self, min_delta: float, patience: int) -> None:
        if not (is_number(min_delta) and 0 <= min_delta < math.inf):
            raise BasetenValidationError(f"StopOnPlateau min_delta must be a finite number >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.patience = _check_patience(patience)
        # The point just before the last ``patience`` is the reference the improvement is measured from.
        self.window = self.patience + 1

    def check(self, tracker: LossTracker) -> str | None:
        """Return the reason when the best loss improved less than ``min_delta`` over the last ``patience`` points.

        :param tracker: The tracker, just after it took a point.
        """
        recent = tracker.recent(self.window)
        if len(recent) < self.window:
            return None
        before, now = recent[0][1], recent[-1][1]
        if before is None or now is None or before - now >= self.min_delta:
            return None
        last = recent[-1][0]
        return (
            f"loss plateaued at step {last.step}: best improved {_fmt(before - now)} < {self.min_delta:g} "
            f"over {self.patience} points (stop_on={self!r})"
        )

    def spec(self) -> dict[str, Any]:
        """The rule as a JSON dict."""
        return {"rule": "plateau", "min_delta": self.min_delta, "patience": self.patience}


def stop_rule_from_spec(spec: Any) -> StopRule:
    """One stop rule from what a user or a trigger gives: a rule, the string ``"nan"``, or a rule's ``spec()``.

    :param spec: ``StopOnNonFinite()``, ``"nan"``, ``{"rule": "divergence", "factor": 2, "patience": 5}``, ...
    :raises BasetenValidationError: on anything else.
    """
    if isinstance(spec, (StopOnNonFinite, StopOnDivergence, StopOnPlateau)):
        return spec
    if spec == "nan" or (isinstance(spec, dict) and spec.get("rule") == "nan" and len(spec) == 1):
        return StopOnNonFinite()
    if isinstance(spec, dict):
        kind, args = spec.get("rule"), {k: v for k, v in spec.items() if k != "rule"}
        try:
            if kind == "divergence":
                return StopOnDivergence(**args)
            if kind == "plateau":
                return StopOnPlateau(**args)
        except TypeError as exc:
            raise BasetenValidationError(f"bad stop_on rule {spec!r}: {exc}") from None
    raise BasetenValidationError(
        f"stop_on takes StopOnNonFinite(), StopOnDivergence(factor, patience), StopOnPlateau(min_delta, patience) "
        f"or the string 'nan'; got {spec!r}"
    )


def parse_stop_on(stop_on: Any) -> tuple[StopRule, ...]:
    """The ``stop_on=`` argument of an operator, checked: a rule, ``"nan"``, or a sequence of them.

    :param stop_on: ``None``, one rule, or a list/tuple of rules (see :func:`stop_rule_from_spec`).
    :raises BasetenValidationError: on any bad rule.
    """
    if stop_on is None:
        return ()
    if isinstance(stop_on, (str, dict)) or not isinstance(stop_on, Iterable):
        return (stop_rule_from_spec(stop_on),)
    return tuple(stop_rule_from_spec(rule) for rule in stop_on)


class LossTracker:
    """Reads log lines one at a time, keeps the loss series and checks the stop rules at every point.

    Memory is bounded by the series, not the logs: lines are dropped once read, and the series is thinned with
    :func:`downsample` when it passes ``max_points`` (the summary and the rules stay exact).

    :param rules: The stop rules to check (see :func:`parse_stop_on`).
    :param pattern: A user loss regex (see :func:`parse_loss_line`).
    :param max_points: The most points kept in :attr:`points`.
    """

    def __init__(
        self,
        rules: Sequence[StopRule] = (),
        *,
        pattern: re.Pattern[str] | str | None = None,
        max_points: int = 20_000,
    ) -> None:
        if max_points < 4:
            raise BasetenValidationError(f"max_points must be >= 4, got {max_points!r}")
        self.rules = tuple(rules)
        self.pattern = None if pattern is None else compile_loss_pattern(pattern)
        self.max_points = max_points
        #: The series (thinned past ``max_points``).
        self.points: list[LossPoint] = []
        #: How many points were read.
        self.steps = 0
        #: The reason of the first rule that fired, once one has.
        self.termination_reason: str | None = None
        self.first: float | None = None
        self.best: float | None = None
        self.best_step: int | None = None
        self.last_point: LossPoint | None = None
        # The newest points with the best finite loss after each: all the rules ever look at.
        self._recent: deque[tuple[LossPoint, float | None]] = deque(
            maxlen=max([rule.window for rule in self.rules], default=1)
        )

    def recent(self, n: int) -> list[tuple[LossPoint, float | None]]:
        """The newest ``n`` points (fewer at the start), each with the best finite loss up to and including it.

        :param n: How many; at most the largest rule window.
        """
        if n >= len(self._recent):
            return list(self._recent)
        return list(self._recent)[-n:]

    def feed(self, line: str) -> LossPoint | None:
        """Read one log line; return its point (numbered) or ``None``.

        After a rule fired, lines are still read (the series stays whole) but no other rule is checked.

        :param line: One log line.
        """
        point = parse_loss_line(line, self.pattern)
        if point is None:
            return None
        self.steps += 1
        if point.step == NO_STEP:  # lines without a step: number points by how many came so far
            point = LossPoint(step=self.steps, loss=point.loss, epoch=point.epoch)
        if self.first is None:
            self.first = point.loss
        if math.isfinite(point.loss) and (self.best is None or point.loss < self.best):
            self.best, self.best_step = point.loss, point.step
        self.last_point = point
        self._recent.append((point, self.best))
        self.points.append(point)
        if len(self.points) > self.max_points:
            self.points = downsample(self.points, self.max_points // 2)
        if self.termination_reason is None:
            for rule in self.rules:
                reason = rule.check(self)
                if reason is not None:
                    self.termination_reason = reason
                    break
        return point

    def feed_lines(self, lines: Iterable[str], *, whole: bool = False) -> str | None:
        """Read lines until a rule fires; return its termination reason (or the earlier one), else ``None``.

        :param lines: Log lines, oldest first.
        :param whole: Read every line even after a rule fired (a job that has ended: its whole series).
        """
        for line in lines:
            if self.termination_reason is not None and not whole:
                break
            self.feed(line)
        return self.termination_reason

    def summary(self) -> dict[str, Any]:
        """The series in brief, JSON-safe: ``{first, best, best_step, last, last_step, steps}``.

        ``nan``/``inf`` values are the strings ``"nan"``/``"inf"`` (JSON has no such numbers).
        """
        last = self.last_point
        return {
            "first": _json_float(self.first),
            "best": _json_float(self.best),
            "best_step": self.best_step,
            "last": _json_float(last.loss if last else None),
            "last_step": last.step if last else None,
            "steps": self.steps,
        }


def gate_spec(
    stop_on: Any, loss_pattern: re.Pattern[str] | str | None, *, track: bool = False, stop_job: bool | None = None
) -> dict[str, Any] | None:
    """A training wait's ``loss_gate`` (the trigger kwarg), checked: ``None`` when it reads no loss.

    :param stop_on: The ``stop_on=`` argument (see :func:`parse_stop_on`).
    :param loss_pattern: The ``loss_pattern=`` argument (see :func:`compile_loss_pattern`).
    :param track: Read the loss even with no rule and no pattern (e.g. to write the series).
    :param stop_job: Deprecated: pass the trigger's ``owns_job``. ``True`` is still written into the spec (which
        the trigger reads as ``owns_job``).
    :raises BasetenValidationError: on a bad rule or pattern (before anything is sent).
    """
    if stop_job is not None:  # kept in the spec, which the trigger still honours (a trigger built the old way)
        from airflow.exceptions import AirflowProviderDeprecationWarning

        from airflow_provider_baseten.client.checks import warn_at_caller

        warn_at_caller(
            "gate_spec(stop_job=) is deprecated: pass TrainingJobTrigger(owns_job=) to say whose job it is.",
            AirflowProviderDeprecationWarning,
        )
    rules = parse_stop_on(stop_on)
    pattern = None if loss_pattern is None else compile_loss_pattern(loss_pattern).pattern
    if not (rules or pattern or track):
        return None
    return {
        "stop_on": [rule.spec() for rule in rules],
        "loss_pattern": pattern,
        **({"stop_job": True} if stop_job else {}),
    }


class LossWatch:
    """The training-quality gate of one job's wait: follows the job's logs into a :class:`LossTracker`, and
    when a stop rule fires, stops the job (only the task's own) and says why.

    Each poll reads only the lines written since the last one and drops them, so a wait keeps the series,
    never the logs. The training wait (deferred or inline: the same trigger) polls it with :meth:`acheck`; the
    task that writes the series file reads the whole log once with :meth:`poll`. It takes the hook as an
    argument: this module does not depend on the hook layer.

    :param training_project_id: The job's project.
    :param training_job_id: The job.
    :param rules: Stop rules (see :func:`parse_stop_on`).
    :param pattern: A user loss regex (see :func:`parse_loss_line`).
    :param stop_job: Whether the job is the task's own, so a rule that fires stops it (never a job the task
        only watches).
    :param whole: Read the whole log even after a rule fired (a job that has ended: the series stays whole).
    """

    #: Pages read at most per poll (1,000 lines each); a job that logs faster is caught up over the next polls.
    MAX_PAGES = 20

    def __init__(
        self,
        training_project_id: str,
        training_job_id: str,
        rules: Sequence[StopRule] = (),
        pattern: re.Pattern[str] | str | None = None,
        *,
        stop_job: bool = False,
        whole: bool = False,
    ) -> None:
        self.ids = (training_project_id, training_job_id)
        self.tracker = LossTracker(rules, pattern=pattern)
        self.stop_job = stop_job
        self.whole = whole
        self.follower = LogFollower(None)

    def spec(self) -> dict[str, Any]:
        """The gate's settings as a small JSON dict (a trigger's kwarg; :meth:`from_spec` builds it back).

        Whose job it is is not in it: the trigger carries that once (``owns_job``) for every guard it runs.
        """
        spec = gate_spec(self.tracker.rules, self.tracker.pattern, track=True)
        assert spec is not None  # track=True
        return spec

    @classmethod
    def from_spec(
        cls, training_project_id: str, training_job_id: str, spec: dict[str, Any] | None, *, stop_job: bool = False
    ) -> LossWatch | None:
        """The gate from :meth:`spec` (``None`` when there is none).

        :param training_project_id: The job's project.
        :param training_job_id: The job.
        :param spec: What :meth:`spec` returned, or ``None``.
        :param stop_job: Whether the job is the task's own (see the class).
        """
        if spec is None:
            return None
        return cls(
            training_project_id,
            training_job_id,
            parse_stop_on(spec.get("stop_on")),
            spec.get("loss_pattern"),
            stop_job=stop_job,
        )

    def since(self, created_at: str | None) -> None:
        """Start at the job's creation (before the first poll; Baseten keeps 7 days of logs).

        :param created_at: The job's ``created_at`` (ISO 8601).
        """
        if self.follower.cursor is None:
            self.follower.cursor = error_window(created_at)

    def _take(self, lines: list[Any]) -> bool:
        """Feed one page; whether to read another page now."""
        self.tracker.feed_lines((line.message for line in self.follower.accept(lines)), whole=self.whole)
        return self._wants_more()

    def _wants_more(self) -> bool:
        """Whether lines are waiting that this watch still reads (after a fired rule, only a ``whole`` one)."""
        return self.follower.more and (self.whole or self.tracker.termination_reason is None)

    async def apoll(self, hook: Any) -> str | None:
        """Read the new lines (async hook); return the termination reason once a rule has fired.

        :param hook: A ``BasetenHook``.
        """
        for _ in range(self.MAX_PAGES):
            if not self._take(await hook.aget_training_job_logs(*self.ids, **self.follower.query())):
                break
        return self.tracker.termination_reason

    def poll(self, hook: Any) -> str | None:
        """Read the new lines (sync hook); return the termination reason once a rule has fired.

        :param hook: A ``BasetenHook``.
        """
        for _ in range(self.MAX_PAGES):
            if not self._take(hook.get_training_job_logs(*self.ids, **self.follower.query())):
                break
        return self.tracker.termination_reason

    async def apoll_to_end(self, hook: Any) -> str | None:
        """:meth:`apoll` until every line logged so far is read: for a job that has ended (:attr:`MAX_PAGES`
        bounds one poll of a running job only), so no line it logged goes unjudged. A cursor that stops moving
        ends it (no endless loop).

        :param hook: A ``BasetenHook``.
        """
        reason = await self.apoll(hook)
        while self._wants_more():
            before = self.follower.cursor
            reason = await self.apoll(hook)
            if self.follower.cursor == before:
                break
        return reason

    def poll_to_end(self, hook: Any) -> str | None:
        """The sync :meth:`apoll_to_end`.

        :param hook: A ``BasetenHook``.
        """
        reason = self.poll(hook)
        while self._wants_more():
            before = self.follower.cursor
            reason = self.poll(hook)
            if self.follower.cursor == before:
                break
        return reason

    async def acheck(self, hook: Any, job: Any) -> dict[str, Any] | None:
        """One poll of the gate, after the wait read the job: the failed event's fields once a rule fired.

        Logs are read once the job runs (and once more when it has ended, so the series is whole). A rule that
        fires stops the job when it is the task's own and still active.

        :param hook: A ``BasetenHook``.
        :param job: The job as just read (``current_status``, ``created_at``).
        :return: ``None`` (keep waiting), or ``{message, job_status, termination_reason, stopped}``.
        """
        from airflow_provider_baseten.models import TRAINING_TERMINAL_STATES

        status = job.current_status or "UNKNOWN"
        ended = status in TRAINING_TERMINAL_STATES
        if status != "TRAINING_JOB_RUNNING" and not ended:
            return None  # nothing to read before the job runs: no request
        self.since(job.created_at)
        reason = await (self.apoll_to_end(hook) if ended else self.apoll(hook))  # ended: it writes no more
        if reason is None:
            return None
        stopped = self.stop_job and not ended
        if stopped:
            status = (await hook.astop_training_job(*self.ids)).current_status or status
        what = "stopped" if stopped else (f"ended {status}" if ended else "not stopped (this task did not start it)")
        return {
            "message": f"Training job {self.ids[1]} {what}: {reason}",
            "job_status": status,
            "termination_reason": reason,
            "stopped": stopped,
        }


def downsample(points: Sequence[LossPoint], max_points: int) -> list[LossPoint]:
    """Thin a series to at most ``max_points`` for plotting or storage, keeping its shape. O(n).

    Min/max buckets: the first and last points are kept, and each bucket between keeps its lowest and highest
    loss (a ``nan`` or ``inf`` counts as highest, so a blow-up is never thinned away), in step order.

    :param points: The series, in step order.
    :param max_points: At most this many points come back; >= 2.
    """
    if max_points < 2:
        raise BasetenValidationError(f"max_points must be >= 2, got {max_points!r}")
    n = len(points)
    if n <= max_points:
        return list(points)
    buckets = max(1, (max_points - 2) // 2)
    inner = n - 2
    out = [points[0]]
    for b in range(buckets):
        lo, hi = 1 + b * inner // buckets, 1 + (b + 1) * inner // buckets
        if lo >= hi:
            continue
        low_i = high_i = lo
        for i in range(lo, hi):
            loss = points[i].loss
            if not math.isfinite(points[high_i].loss):
                pass  # the bucket's highest is already a blow-up: keep the first one
            elif not math.isfinite(loss) or loss > points[high_i].loss:
                high_i = i
            if math.isfinite(loss) and (not math.isfinite(points[low_i].loss) or loss < points[low_i].loss):
                low_i = i
        out.extend(points[i] for i in sorted({low_i, high_i}))
    out.append(points[-1])
    return out[:max_points] if len(out) > max_points else out


_SERIES_HEADER = ["step", "loss", "epoch"]


def write_series(points: Iterable[LossPoint], path: Any) -> str:
    """Write a series as CSV (``step,loss,epoch``; ``nan``/``inf`` as such; an empty epoch when unknown).

    :param points: The points.
    :param path: A local path (str or :class:`pathlib.Path`; parent folders are made) or an
        ``ObjectStoragePath`` (anything with ``open("w")``).
    :return: The path written, as a string.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_SERIES_HEADER)
    for p in points:
        writer.writerow([p.step, repr(p.loss), "" if p.epoch is None else repr(p.epoch)])
    target = Path(path) if isinstance(path, str) else path
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as handle:
        handle.write(buffer.getvalue())
    return str(target)


def read_series(path: Any) -> list[LossPoint]:
    """Read a series written by :func:`write_series`.

    :param path: A local path or an ``ObjectStoragePath``.
    """
    target = Path(path) if isinstance(path, str) else path
    with target.open("r") as handle:
        rows = list(csv.DictReader(handle))
    return [
        LossPoint(step=int(r["step"]), loss=float(r["loss"]), epoch=float(r["epoch"]) if r["epoch"] else None)
        for r in rows
    ]
