"""One validation style (issue 22 §5): argument checks live in ``client/checks.py``, batch options in
``client/batch/options.py``, and nothing else writes "an int but not a bool" by hand.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_baseten.client import checks
from airflow_provider_baseten.client.batch import check_batch_options, run_batch
from airflow_provider_baseten.client.batch.options import BatchOptions
from airflow_provider_baseten.exceptions import BasetenValidationError

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_baseten"
# The checks' own home; and the emulator, a separate strict server that keeps its own checks.
ALLOWED = (PACKAGE / "client" / "checks.py", PACKAGE / "emulator")


def _isinstance_of(node: ast.AST, type_name: str) -> str | None:
    """The checked expression's source when ``node`` is ``isinstance(x, type_name)`` (or a tuple holding it)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"):
        return None
    if len(node.args) != 2:
        return None
    kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
    if any(isinstance(k, ast.Name) and k.id == type_name for k in kinds):
        return ast.unparse(node.args[0])
    return None


def hand_rolled_int_checks(source: str) -> list[int]:
    """Lines of ``source`` with a boolean expression testing one value for both ``int`` and ``bool``: the
    hand-rolled "an integer, not a bool" check (any order, any negation, with or without a range)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BoolOp):
            inner = [n for value in node.values for n in ast.walk(value)]
            ints = {_isinstance_of(n, "int") for n in inner} - {None}
            bools = {_isinstance_of(n, "bool") for n in inner} - {None}
            if ints & bools:
                lines.add(node.lineno)
    return sorted(lines)


def test_the_detector_finds_every_form() -> None:
    forms = [
        "ok = isinstance(x, int) and not isinstance(x, bool)",
        "bad = not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= 9",
        "bad = isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0",
        "bad = x is not None and (isinstance(x, bool) or not isinstance(x, int))",
    ]
    assert [hand_rolled_int_checks(f) for f in forms] == [[1], [1], [1], [1]]
    assert hand_rolled_int_checks("ok = isinstance(x, int) and not isinstance(y, bool)") == []


def test_no_hand_rolled_int_check_outside_the_checks_module() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path == a or a in path.parents for a in ALLOWED):
            continue
        found += [f"{path.relative_to(PACKAGE.parent)}:{line}" for line in hand_rolled_int_checks(path.read_text())]
    assert not found, f"use airflow_provider_baseten.client.checks (int_in, is_int, ...) instead: {found}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: checks.int_in("batch_size", True, 1, 1024), "batch_size must be an integer from 1 to 1024, got True."),
        (lambda: checks.int_in("n", 0, 1), "n must be a positive integer, got 0."),
        (
            lambda: checks.optional_int_in("max_failures", -1, 0),
            "max_failures must be an integer >= 0 or None, got -1.",
        ),
        (
            lambda: checks.int_in("max_concurrency", 1.5, 1, 1024, also="'auto'"),
            "max_concurrency must be an integer from 1 to 1024 or 'auto', got 1.5.",
        ),
        (
            lambda: checks.optional_int_in("scale_for_batch", 0, 1, 100, what="a min_replica count"),
            "scale_for_batch must be a min_replica count from 1 to 100 or None, got 0.",
        ),
        (
            lambda: checks.optional_number_in("max_error_rate", False, 0.0, 1.0),
            "max_error_rate must be a number from 0.0 to 1.0 or None, got False.",
        ),
        (lambda: checks.positive_number("poke_interval", 0), "poke_interval must be a positive number, got 0."),
        (lambda: checks.flag("model_apis", 1, none_ok=True), "model_apis must be True, False or None, got 1."),
        (
            lambda: checks.one_of("on_error", "skip", ("fail", "record")),
            "on_error must be 'fail' or 'record', got 'skip'.",
        ),
        (lambda: checks.one_of("x", 1, ("a", "b", "c")), "x must be one of ['a', 'b', 'c'], got 1."),
    ],
)
def test_each_check_names_the_argument_and_what_it_must_be(call: Any, message: str) -> None:
    with pytest.raises(BasetenValidationError) as info:
        call()
    assert info.value.message == message and info.value.field == message.split()[0]


def test_good_values_pass_through() -> None:
    assert checks.int_in("n", 5, 1, 9) == 5 and checks.optional_int_in("n", None, 1) is None
    assert checks.number_in("r", 1, 0.0, 1.0) == 1.0 and checks.positive_number("s", 0.5) == 0.5
    assert checks.flag("f", None, none_ok=True) is None and checks.one_of("o", "fail", ("fail", "record")) == "fail"
    with pytest.raises(BasetenValidationError):  # True == 1, but True is not one of the ints
        checks.one_of("o", True, (1, 2))


# -- batch options: one list, one set of defaults, one check ------------------------------------------------
def test_predict_operator_takes_every_user_batch_option_with_run_batch_defaults() -> None:
    """The operators' batch options are ``run_batch``'s: the same names and defaults (``resume`` aside: an
    operator decides it per try). Written out in the operator's signature so DAG files parse without
    importing the batch engine; this test keeps the two in step."""
    from airflow_provider_baseten.operators.inference import PredictOperator

    engine = inspect.signature(run_batch).parameters
    operator = inspect.signature(PredictOperator.__init__).parameters
    internal = {"total", "log", "input_fingerprint"}  # set by the operator itself
    user = set(BatchOptions.__annotations__) - internal
    assert user <= set(operator), user - set(operator)
    assert user <= set(engine), user - set(engine)
    for name in user - {"resume"}:
        assert operator[name].default == engine[name].default, name
        declared = BatchOptions.__annotations__[name]
        assert operator[name].annotation == getattr(declared, "__forward_arg__", declared), name
    assert operator["resume"].default is None and engine["resume"].default is False


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"on_error": "skip"}, "on_error"),
        ({"max_failures": -1}, "max_failures"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"resume": "yes"}, "resume"),
        ({"progress_interval": -1}, "progress_interval"),
        ({"total": -3}, "total"),
    ],
)
def test_check_batch_options_refuses_each_bad_option(options: BatchOptions, field: str) -> None:
    with pytest.raises(BasetenValidationError) as info:
        check_batch_options(options)
    assert info.value.field == field


def test_check_batch_options_accepts_auto_and_the_defaults() -> None:
    good: BatchOptions = {"max_concurrency": "auto", "on_error": "record", "max_error_rate": 1.0, "resume": True}
    assert check_batch_options(good) is good and check_batch_options({}) == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"progress_interval": -1},
        {"resume": "yes"},
        {"on_error": "skip"},
        {"max_failures": True},
        {"max_concurrency": 0},
    ],
)
def test_predict_operator_refuses_a_bad_batch_option_when_the_dag_is_parsed(bad: dict[str, Any]) -> None:
    """The hook's check, with its message and field, at parse time (before: ``progress_interval=-1`` and
    ``resume="yes"`` passed, and ``on_error`` raised a plain ``ValueError``)."""
    from airflow_provider_baseten.operators.inference import PredictOperator

    with pytest.raises(BasetenValidationError) as info:
        PredictOperator(task_id="p", model_inputs=[{"i": 0}], **bad)
    assert info.value.field == next(iter(bad))
