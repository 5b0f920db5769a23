"""When a batch's failures mean stop: the error budget and the early stop on a repeated error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.client.checks import optional_int_in, optional_number_in
from airflow_provider_baseten.exceptions import (
    BasetenAuthError,
    BasetenError,
    BasetenModelError,
    BasetenNotFoundError,
    BasetenRateLimitError,
    BasetenServerError,
    BasetenTimeoutError,
    BasetenTransportError,
    BasetenValidationError,
)

if TYPE_CHECKING:
    pass

_UNAVAILABLE = (BasetenServerError, BasetenTimeoutError, BasetenTransportError)
# With on_error="record" and no budget given, a batch in which more than this share of the items failed
# fails the task: a green task should mean the predictions are there.
DEFAULT_RECORD_ERROR_RATE = 0.1
# A batch whose first this-many completed items all failed with the same non-transient error (404 model
# not found, 400/413/422 on every input, ...) stops: the rest would fail the same way, and be paid for.
EARLY_STOP_AFTER = 10


def _transient(exc: BasetenError) -> bool:
    """Baseten could not serve the request (5xx, timeout, dropped connection); not the model's own error."""
    return isinstance(exc, _UNAVAILABLE) and not isinstance(exc, BasetenModelError)


def _retryable_item(exc: BasetenError) -> bool:
    """Whether an item whose retries ran out is worth another retry sequence (see ``ITEM_ROUNDS``)."""
    return _transient(exc) or isinstance(exc, BasetenRateLimitError)


@dataclass(frozen=True)
class ErrorBudget:
    """How many failed items a batch may have and still succeed; checked as the batch runs.

    A batch fails (and stops as soon as the budget can no longer be met) when more than ``max_failures``
    items failed, or more than ``max_error_rate`` of all items (0.0-1.0). ``None`` sets no limit of that
    kind. See :meth:`resolve` for the defaults.
    """

    max_failures: int | None = None
    max_error_rate: float | None = None
    #: The user set a limit (not the record-mode default): per-input rejections are then the budget's call.
    explicit: bool = False

    @classmethod
    def resolve(cls, on_error: str, max_failures: Any = None, max_error_rate: Any = None) -> ErrorBudget:
        """Validate the arguments and apply the defaults.

        ``on_error="fail"`` fails the task for any failed item (after attempting all of them); a budget
        there only decides when to stop early. ``on_error="record"`` with neither limit given allows
        ``DEFAULT_RECORD_ERROR_RATE`` (10%): pass ``max_error_rate=1.0`` to accept any number of failures.
        """
        max_failures = optional_int_in("max_failures", max_failures, 0)
        max_error_rate = optional_number_in("max_error_rate", max_error_rate, 0.0, 1.0)
        explicit = max_failures is not None or max_error_rate is not None
        if on_error == "record" and not explicit:
            max_error_rate = DEFAULT_RECORD_ERROR_RATE
        return cls(max_failures, max_error_rate, explicit)

    def exceeded(self, failed: int, total: int | None) -> bool:
        """Whether ``failed`` failures already break the budget (``total``: the batch size, if known)."""
        if self.max_failures is not None and failed > self.max_failures:
            return True
        if self.max_error_rate is None or not total:
            return False
        return failed > self.max_error_rate * total

    @property
    def accepts_everything(self) -> bool:
        """A budget that tolerates every item failing (then no early stop either)."""
        return self.max_failures is None and self.max_error_rate == 1.0

    def __str__(self) -> str:
        parts = []
        if self.max_failures is not None:
            parts.append(f"max_failures={self.max_failures}")
        if self.max_error_rate is not None:
            parts.append(f"max_error_rate={self.max_error_rate:g}")
        return ", ".join(parts) or "no limit"


class _FirstFailures:
    """Watches the first completed items: if they all fail with the same non-transient error, stop.

    "The same error" is a refused key (401/403), a missing model or deployment (404), or, unless the user
    set an error budget, the same rejection of every input (400/413/422) or the model raising on every
    input (a broken deploy). With an explicit budget, per-input rejections and model errors are the
    budget's call: it stops the batch once it can no longer be met.
    """

    def __init__(self, budget: ErrorBudget) -> None:
        self.active = not budget.accepts_everything
        self.per_input_too = not budget.explicit
        self.seen: list[tuple[str, int | None, str | None]] = []

    def passed(self) -> None:
        self.active = False  # something works: per-item errors are the budget's business

    def failed(self, exc: BasetenError) -> bool:
        """Record a failure; ``True`` when the batch should stop."""
        if not self.active:
            return False
        per_input = isinstance(exc, BasetenModelError) or (
            isinstance(exc, BasetenValidationError) and exc.status_code in (400, 413, 422)
        )
        same_for_every_input = isinstance(exc, (BasetenAuthError, BasetenNotFoundError)) or (
            per_input and self.per_input_too
        )
        key = (type(exc).__name__, exc.status_code, exc.error_code)
        if not same_for_every_input or (self.seen and key != self.seen[0]):
            self.active = False
            return False
        self.seen.append(key)
        return len(self.seen) >= EARLY_STOP_AFTER

    def why(self) -> str:
        return (
            f" early: the first {len(self.seen)} completed predictions all failed with the same error, so the "
            "rest would too"
        )
