"""Errors raised by the Baseten provider.

Every error the hook raises is a :class:`BasetenError`. Each carries the HTTP status (when there was a
response), Baseten's ``error_code``, the request id Baseten assigned, and a message in which secrets
have already been redacted, so it is safe to log, to show in the Airflow UI and to push to XCom.
"""

from __future__ import annotations

from typing import Any


class BasetenError(Exception):
    """Base class of every error the Baseten provider raises.

    :param message: What went wrong and, where we know it, what to do about it. Already redacted.
    :param status_code: The HTTP status of Baseten's answer, or ``None`` when no answer came.
    :param error_code: Baseten's machine-readable ``error_code`` (e.g. ``model_not_ready``).
    :param request_id: The ``X-BASETEN-REQUEST-ID`` of the failed request, for Baseten support.
    :param body_snippet: The first few hundred characters of the response body, redacted.

    ``maybe_created`` is ``True`` when a create (async submit, training job, API key, environment) failed in
    a way that does not tell whether it took effect (500/502/504, a read timeout, a connection dropped after
    sending). The provider never sends such a request twice; the message says how to check.
    """

    maybe_created: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
        body_snippet: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id
        self.body_snippet = body_snippet

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.error_code:
            details.append(f"error_code={self.error_code}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, error_code={self.error_code!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword-only fields when the error is pickled (e.g. across process boundaries).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[BasetenError], message: str, state: dict[str, Any]) -> BasetenError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class BasetenAuthError(BasetenError):
    """401/403: the API key was refused. Check the connection's API key (the password field)."""


class BasetenBillingAccessError(BasetenAuthError):
    """403 on a billing endpoint (the usage summary): the API key works but has no billing access.

    Use a key of a user allowed to see billing (a workspace admin's) in the connection.
    """


class BasetenNotFoundError(BasetenError):
    """404: the model, deployment, environment, job or request does not exist (or is not yours)."""


class BasetenGatewayUnsupportedError(BasetenNotFoundError):
    """An endpoint the LowCodeAPI gateway's Baseten reference does not list, refused before anything is sent.

    Use a direct connection (``gateway=baseten``) for it. (A subclass of :class:`BasetenNotFoundError`
    because the gateway answers such a route with 404; ``status_code`` is ``None``: nothing was sent.)
    """


class BasetenValidationError(BasetenError, ValueError):
    """A bad argument: caught before sending (``status_code is None``) or refused by Baseten (400/413/422).

    :param field: The argument or body field at fault, when known.
    """

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class BasetenUnpricedError(BasetenValidationError):
    """Baseten's price list has no price for an instance type (after one fresh read of the list), or the work
    names no instance type: a ``max_cost_usd`` guard cannot price it, so it fails closed.

    :param instance_type: The instance type that has no price (``None``: the work named none).
    """

    def __init__(self, message: str, *, instance_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, field="instance_type", **kwargs)
        self.instance_type = instance_type


class BasetenRateLimitError(BasetenError):
    """429 after the retry budget ran out. ``retry_after`` is Baseten's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BasetenServerError(BasetenError):
    """5xx after the retry budget ran out: Baseten or the model is unavailable."""


class BasetenModelError(BasetenServerError):
    """The model itself raised on this input (a 500 that Baseten marks as the model's error).

    Not an outage: it is tried at most twice, and a batch counts it against its error budget instead of
    its outage circuit breaker. A subclass of :class:`BasetenServerError`, so code that catches 5xx
    errors keeps catching it.
    """


class BasetenTimeoutError(BasetenError):
    """The request timed out (connect, read, or the total retry budget), or a wait passed its deadline.

    A waiting operator's deadline (``timeout``, default ``[baseten] default_timeout``, or ``execution_timeout``)
    raises this; Airflow retries it per the task's ``retries``. A sensor's raises its subclass
    :class:`~airflow_provider_baseten.sensors.base.BasetenSensorTimeout`, which is also Airflow's
    ``AirflowSensorTimeout`` and so is not retried.
    """


class BasetenTransportError(BasetenError):
    """The connection failed or dropped before a complete answer arrived."""


class BasetenResponseError(BasetenError):
    """Baseten answered with something we cannot read: not JSON, truncated, or the wrong shape."""


class BasetenConfigurationError(BasetenValidationError):
    """The Airflow connection is misconfigured (missing API key, unknown gateway, bad URL template)."""


class BasetenBatchError(BasetenError):
    """Some items of a batch failed. Nothing is lost: successful outputs are kept.

    :param failures: ``{index: error message}`` for every failed item, in input order.
    :param results: The full result list (outputs, or ``None`` where the item failed), when kept in memory.
    """

    def __init__(
        self,
        message: str,
        *,
        failures: dict[int, str],
        results: list[Any] | None = None,
        total: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.failures = failures
        self.results = results
        self.total = total


class BasetenRemoteStateError(BasetenError):
    """A remote job reached a failed terminal state (async request FAILED, training job FAILED, ...)."""

    def __init__(self, message: str, *, state: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.state = state


try:  # where the Task SDK defines it (Airflow 3.2+); airflow.exceptions' name for it is deprecated there
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:
    try:  # Airflow 3.1: only airflow.exceptions has it (and the task runner checks for that class)
        from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,attr-defined,unused-ignore]
    except ImportError:  # the client core also runs without Airflow: then there is no retry policy to opt out of

        class AirflowFailException(Exception):  # type: ignore[no-redef]
            """Stand-in for Airflow's "fail without retrying" exception when Airflow is not installed."""


class BasetenBudgetExceeded(BasetenError, AirflowFailException):  # type: ignore[misc]
    """A budget guard stopped the work: the next poll would have spent more than the task's cap.

    Also Airflow's ``AirflowFailException``, so the task is **not retried** (a retry would spend again).

    :param cap: The cap that was hit (``max_cost_usd`` or ``max_gpu_minutes``).
    :param spent: What had been spent when the guard fired, in ``unit`` (NaN: the work could not be priced, so
        a USD cap could not be enforced and the guard failed closed).
    :param unit: ``"usd"`` or ``"gpu_minutes"``.
    :param stopped: Whether the guard stopped the work (a job the task did not start is never stopped).
    """

    def __init__(
        self, message: str, *, cap: float, spent: float, unit: str, stopped: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.cap = cap
        self.spent = spent
        self.unit = unit
        self.stopped = stopped


class BasetenGateFailed(BasetenError, AirflowFailException):  # type: ignore[misc]  # status_code: ours wins
    """A candidate deployment failed the gate of ``EvaluateDeploymentOperator``.

    Also Airflow's ``AirflowFailException``: the task fails without retrying, since a retry would pay for the
    same evaluation to reach the same verdict.

    :param failed: Each failed rule's outcome: ``{rule, candidate, threshold, passed}`` (the rule as text, the
        candidate's value and the threshold it was held to, a number).
    """

    def __init__(self, failed: list[dict[str, Any]]) -> None:
        parts = [f"{r['rule']} (candidate {r['candidate']!r}, threshold {r['threshold']!r})" for r in failed]
        super().__init__(f"The candidate failed {len(failed)} gate rule(s): " + "; ".join(parts) + ".")
        self.failed = failed
        first = failed[0]
        #: The first failed rule, its candidate value and its threshold.
        self.rule, self.candidate, self.threshold = first["rule"], first["candidate"], first["threshold"]


class BasetenTrainingQualityError(BasetenRemoteStateError, AirflowFailException):  # type: ignore[misc]
    """A ``stop_on`` rule fired on the training loss (nan, divergence, plateau): the run is bad.

    Also Airflow's ``AirflowFailException``, so the task is **not retried** (a retry would train the same bad
    run again, at the same cost).

    :param termination_reason: Which rule fired, at which step, on what loss (e.g. ``"loss is nan at step 37
        (stop_on=StopOnNonFinite())"``).
    :param stopped: Whether the job was stopped (only a job the task started is).
    """

    def __init__(self, message: str, *, termination_reason: str, stopped: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.termination_reason = termination_reason
        self.stopped = stopped


__all__ = [
    "BasetenAuthError",
    "BasetenBatchError",
    "BasetenBillingAccessError",
    "BasetenBudgetExceeded",
    "BasetenConfigurationError",
    "BasetenError",
    "BasetenGateFailed",
    "BasetenGatewayUnsupportedError",
    "BasetenModelError",
    "BasetenNotFoundError",
    "BasetenRateLimitError",
    "BasetenRemoteStateError",
    "BasetenResponseError",
    "BasetenServerError",
    "BasetenTimeoutError",
    "BasetenTrainingQualityError",
    "BasetenTransportError",
    "BasetenUnpricedError",
    "BasetenValidationError",
]
