"""Argument checks, written once: each raises :class:`BasetenValidationError` (a ``ValueError``) naming the
argument (``field``) and what it must be, before anything is sent.

Why a module of its own: ``True`` is an ``int`` in Python, so "a count" is ``isinstance(x, int) and not
isinstance(x, bool)``, and that test (with its range and its message) was written by hand in a dozen places,
each wording the same rule differently. Here it is one function per kind of value, one wording per rule;
``tests/unit/test_checks.py`` fails if the hand-rolled form comes back anywhere else in the provider.
(The emulator keeps its own checks: it is a separate, strict server.)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeGuard, TypeVar

from airflow_provider_baseten.exceptions import BasetenValidationError

T = TypeVar("T")


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer: an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a real number: an ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _span(what: str, low: float | None, high: float | None) -> str:
    """``"an integer from 1 to 10"``, ``"a positive integer"``, ``"a number >= 0"``..."""
    if low is not None and high is not None:
        return f"{what} from {low} to {high}"
    if low == 1 and high is None and what == "an integer":
        return "a positive integer"
    if low is not None:
        return f"{what} >= {low}"
    return what if high is None else f"{what} <= {high}"


def _refuse(name: str, value: Any, must: str, also: str) -> BasetenValidationError:
    return BasetenValidationError(f"{name} must be {must}{f' or {also}' if also else ''}, got {value!r}.", field=name)


def int_in(
    name: str, value: Any, low: int | None = None, high: int | None = None, *, what: str = "an integer", also: str = ""
) -> int:
    """``value`` if it is an integer (not a bool) from ``low`` to ``high`` (either may be open).

    ``what`` names the kind of integer in the message (``"a min_replica count"``); ``also`` names what else
    the caller accepts, for the message only (``"'auto'"``).
    """
    if is_int(value) and (low is None or value >= low) and (high is None or value <= high):
        return value
    raise _refuse(name, value, _span(what, low, high), also)


def optional_int_in(
    name: str, value: Any, low: int | None = None, high: int | None = None, *, what: str = "an integer"
) -> int | None:
    """``None``, or ``value`` checked by :func:`int_in`."""
    return None if value is None else int_in(name, value, low, high, what=what, also="None")


def number_in(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    what: str = "a number",
    also: str = "",
) -> float:
    """``value`` as a float if it is a number (not a bool) from ``low`` to ``high`` (either may be open)."""
    if is_number(value) and (low is None or value >= low) and (high is None or value <= high):
        return float(value)
    raise _refuse(name, value, _span(what, low, high), also)


def optional_number_in(
    name: str, value: Any, low: float | None = None, high: float | None = None, *, what: str = "a number"
) -> float | None:
    """``None``, or ``value`` checked by :func:`number_in`."""
    return None if value is None else number_in(name, value, low, high, what=what, also="None")


def positive_number(name: str, value: Any, *, what: str = "a positive number", also: str = "") -> float:
    """``value`` as a float if it is a number above 0 (not a bool)."""
    if is_number(value) and value > 0:
        return float(value)
    raise _refuse(name, value, what, also)


def flag(name: str, value: Any, *, none_ok: bool = False) -> bool | None:
    """``value`` if it is ``True`` or ``False`` (or ``None`` when ``none_ok``); ``1`` or ``"yes"`` is refused."""
    if isinstance(value, bool) or (none_ok and value is None):
        return value
    raise _refuse(name, value, "True, False or None" if none_ok else "True or False", "")


def one_of(name: str, value: T, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices`` (compared by type too: ``1`` is not ``True``)."""
    if any(type(value) is type(c) and value == c for c in choices):
        return value
    listed = list(choices)
    must = " or ".join(map(repr, listed)) if len(listed) <= 2 else f"one of {listed}"
    raise _refuse(name, value, must, "")


#: ``batch_size`` of ``BasetenHook.embed_batch``: 1 to 1024 texts per request (the performance client's range).
MAX_EMBED_BATCH = 1024


def check_packing(batch_size: Any, max_chars_per_request: Any) -> None:
    """Check ``embed_batch``'s packing arguments (:class:`BasetenValidationError`, a ``ValueError``).

    Here rather than in ``hooks/_openai.py`` because ``EmbedOperator`` checks them when the DAG is parsed, and
    importing the hook module there would add the hook's import time to every parse.
    """
    int_in("batch_size", batch_size, 1, MAX_EMBED_BATCH)
    optional_int_in("max_chars_per_request", max_chars_per_request, 1)
