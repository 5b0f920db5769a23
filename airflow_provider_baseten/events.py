"""The shape of the events the provider's triggers fire (and ``execute_complete`` receives).

Every trigger fires exactly one event. ``status`` and ``message`` are always there; the other keys
depend on the trigger (listed per key below). Operators and sensors check an event with
:func:`~airflow_provider_baseten._tasks.validate_event` before they use it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = ["EVENT_STATUSES", "BasetenTriggerEvent", "EventStatus"]

#: ``success``: the wait ended as hoped. ``failed``: the remote work ended badly. ``error``: the trigger
#: could not find out (e.g. an authentication error). ``timeout``: the wait's deadline passed.
EventStatus = Literal["success", "failed", "error", "timeout"]

#: Every value :data:`EventStatus` allows.
EVENT_STATUSES: frozenset[str] = frozenset({"success", "failed", "error", "timeout"})


class _EventCore(TypedDict):
    """The keys every event carries."""

    #: How the wait ended.
    status: EventStatus
    #: A one-line human summary (it becomes the task's error message when the wait failed).
    message: str


class BasetenTriggerEvent(_EventCore, total=False):
    """A terminal trigger event payload (the ``TriggerEvent``'s ``payload``): ``status`` and ``message``
    always, the other keys as the trigger that fired it sets them."""

    # -- deployment triggers (status, promotion, wake) -----------------------------------------------
    model_id: str | None
    deployment_id: str | None
    deployment_status: str
    environment: str | None
    promotion_status: str
    # -- async predict trigger ------------------------------------------------------------------------
    request_ids: list[str]
    #: ``{request_id: status}`` of every watched request.
    states: dict[str, str]
    #: Requests whose status Baseten no longer keeps (outcome unknown).
    unknown: list[str]
    #: A webhook wait (``results_path``): how many results are in the receiver's store (``states`` then holds
    #: only the requests that are not).
    stored: int
    #: ``{request_id: [{"code", "message"}]}`` of the requests that did not succeed.
    errors: dict[str, list[dict[str, Any]]]
    # -- training job trigger -------------------------------------------------------------------------
    #: A chain wait's chain and chain deployment (``environment`` is then the chain environment).
    chain_id: str
    chain_deployment_id: str
    training_project_id: str
    training_job_id: str
    job_status: str
    error_message: str | None
    log_tail: list[str]
    #: A ``stop_on`` rule fired: which, at which step, on what loss (the job was stopped if ``stopped``).
    termination_reason: str
    #: Whether the training-quality gate stopped the job (only a job the task started).
    stopped: bool
    #: The loss summary of a gated wait: ``{first, best, best_step, last, last_step, steps}``.
    loss: dict[str, Any]
    #: A budget guard fired: ``{cap, spent, unit, stopped}`` (:meth:`~airflow_provider_baseten.cost.BudgetVerdict.as_event`);
    #: ``spent`` is ``None`` when a ``max_cost_usd`` could not be priced (the guard failed closed).
    budget: dict[str, Any]
    # -- any trigger ----------------------------------------------------------------------------------
    #: The last ERROR lines of the remote logs (failed waits).
    error_lines: list[str]
    #: On ``timeout``: whether the trigger undid this task's own work (``cancel_on_timeout``).
    undone: bool
    #: The statuses the wait saw, in order, each once per change: ``{"at": epoch s, "status": ...}`` (a
    #: promotion's also ``"percent"``); at most 100 entries.
    timeline: list[dict[str, Any]]
