"""The polling machinery every provider trigger shares: :class:`BasetenPollTrigger` (poll with ``check()``
until an event or the deadline; kill and timeout undo), the event shape, and the two ways of running a
trigger in a worker (:func:`wait_inline`, :func:`check_once`). What each wait checks is in
:mod:`.baseten`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_baseten.client.checks import hook_params as check_hook_params
from airflow_provider_baseten.client.transport import until
from airflow_provider_baseten.events import BasetenTriggerEvent, EventStatus

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks.baseten import BasetenHook

#: How long a trigger started again past its deadline may take for its one status check.
LATE_CHECK_SECONDS = 10.0
#: How long the undo at the deadline (``cancel_on_timeout``) may take. Well inside the slack of Airflow's
#: deferral timeout (``defer_backstop``: 60 s + 2 scheduler checks past the deadline), which must never win.
UNDO_SECONDS = 30.0


def _out_of_time(exc: Exception, ends: float) -> bool:
    """Whether ``exc`` is the check running into its time limit ``ends`` (``wait_for``'s, or a request's
    timeout cut to the time left), rather than a failure of its own."""
    from airflow_provider_baseten.exceptions import BasetenTimeoutError

    return isinstance(exc, (asyncio.TimeoutError, BasetenTimeoutError)) and time.time() >= ends - 0.05


def event(status: EventStatus, message: str, **ids: Any) -> BasetenTriggerEvent:
    """A terminal trigger event payload (its keys are declared in :class:`~airflow_provider_baseten.events.BasetenTriggerEvent`)."""
    return cast("BasetenTriggerEvent", {"status": status, "message": message, **ids})


#: Status changes a wait keeps for its event's ``timeline`` (the first ones and the newest ones beyond).
MAX_TIMELINE = 100


class BasetenPollTrigger(BaseTrigger):
    """Base of the provider's triggers: poll with :meth:`check` until it returns an event or time runs out.

    :param conn_id: The Baseten connection.
    :param poll_interval: Seconds between polling rounds.
    :param end_time: The wait's one absolute deadline, in epoch seconds: past it, the trigger fires a
        ``timeout`` event itself (``None``: no limit of its own). A trigger started again after the deadline
        (a triggerer restart) checks the status once, then times out at once.
    :param cancel_on_kill: On a user kill, undo what the task started (see :meth:`kill`).
    :param cancel_on_timeout: At the deadline, undo what the task started (:meth:`kill`) before firing the
        ``timeout`` event. The operator sets it only when no retry will reconnect to the work.
    :param hook_params: The task's ``hook_params`` (``{"timeouts": {...}, "retry": {...}}``, JSON), so the
        trigger's hook uses the same HTTP settings as the task's (precedence, key by key: ``hook_params`` >
        the connection extra > the defaults). Serialized with the trigger.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.hook_params = check_hook_params(hook_params)
        self._hook_obj: BasetenHook | None = None
        self._timeline: list[dict[str, Any]] = []

    def _base_kwargs(self) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "cancel_on_kill": self.cancel_on_kill,
            "cancel_on_timeout": self.cancel_on_timeout,
            **({"hook_params": self.hook_params} if self.hook_params else {}),
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and JSON-primitive kwargs."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {**self._base_kwargs(), **self._kwargs()}

    def _kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def _hook(self) -> BasetenHook:
        """This trigger's one hook: its connection is read once, not on every poll or poke.

        Each wait closes only the hook's async client (bound to that wait's event loop); the settings stay.
        """
        if self._hook_obj is None:
            from airflow_provider_baseten.hooks.baseten import BasetenHook

            self._hook_obj = BasetenHook(self.conn_id, **self.hook_params)
        return self._hook_obj

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """One polling round: the terminal event, or ``None`` to keep waiting."""
        raise NotImplementedError

    async def kill(self, hook: BasetenHook) -> None:
        """Undo what the task started (only called when ``cancel_on_kill``)."""

    def _ids(self) -> dict[str, Any]:
        return {}

    def observe(self, status: str | None, **detail: Any) -> None:
        """Note the status one check saw; a change is added to the event's ``timeline`` (the Baseten tab's
        status history: Baseten keeps none, so the wait records what it saw).

        :param status: The remote status.
        :param detail: More of what changes with it (a promotion's ``percent``).
        """
        if status is None:
            return
        entry = {"status": status, **detail}
        last = self._timeline[-1] if self._timeline else None
        if last is not None and {k: v for k, v in last.items() if k != "at"} == entry:
            return
        if len(self._timeline) >= MAX_TIMELINE:
            del self._timeline[MAX_TIMELINE // 2]  # keep how it started and how it ended
        self._timeline.append({"at": round(time.time(), 3), **entry})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until terminal; yield exactly one event."""
        yield TriggerEvent(await self.wait())  # type: ignore[no-untyped-call]

    async def wait(self) -> BasetenTriggerEvent:
        """Poll until terminal and return the event (shared by :meth:`run` and :func:`wait_inline`).

        The deadline bounds each check, not only the pauses between them: a check still running at the
        deadline (a slow answer, a retry sequence, thousands of ids) is cancelled where it is, and each of
        its requests may take only the time left (:func:`~airflow_provider_baseten.client.transport.until`).
        So the ``timeout`` event, and the undo before it, come at the deadline, long before Airflow's own
        deferral timeout (``defer_backstop``), which would fail the task without either.
        """
        hook = self._hook()
        try:
            late_start = self.end_time is not None and time.time() >= self.end_time
            while True:
                # Started again past the deadline (a triggerer restart): one short check first, since the
                # work may have ended meanwhile (its outcome beats a timeout), then time out.
                bound = self._time_left() if not late_start else LATE_CHECK_SECONDS
                late_start = False
                if bound is not None and bound <= 0:
                    return await self._timed_out(hook)
                ends = None if bound is None else time.time() + bound
                try:
                    with until(ends):
                        result = await asyncio.wait_for(self.check(hook), bound)
                except Exception as exc:  # one event, always: a crash must not leave the task deferred
                    if ends is not None and _out_of_time(exc, ends):
                        return await self._timed_out(hook)
                    return self._error(exc)
                if result is not None:
                    return self.with_timeline(result)
                left = self._time_left()
                if left is not None and left <= 0:
                    return await self._timed_out(hook)
                await asyncio.sleep(self.poll_interval if left is None else min(self.poll_interval, left))
        finally:
            await hook.aclose()

    def with_timeline(self, result: BasetenTriggerEvent) -> BasetenTriggerEvent:
        """``result`` with the statuses this wait saw (``timeline``)."""
        return cast("BasetenTriggerEvent", {**result, "timeline": list(self._timeline)})

    def _time_left(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _error(self, exc: Exception) -> BasetenTriggerEvent:
        from airflow_provider_baseten.client.redact import redact
        from airflow_provider_baseten.exceptions import BasetenError

        if isinstance(exc, BasetenError):
            return event("error", str(exc), **self._ids())
        return event("error", redact(f"{type(exc).__name__}: {exc}"), **self._ids())

    def _describe(self) -> str:
        return type(self).__name__

    async def _timed_out(self, hook: BasetenHook) -> BasetenTriggerEvent:
        """The ``timeout`` event, after undoing the task's own work when ``cancel_on_timeout``.

        The undo gets at most :data:`UNDO_SECONDS`: the event must reach Airflow before its deferral
        timeout. An undo cut short says so, and the event's ids (and an async wait's ``states``) tell what
        is left.
        """
        message = f"Timed out waiting: {self._describe()}."
        undone = False
        if self.cancel_on_timeout:
            try:
                with until(time.time() + UNDO_SECONDS):
                    await asyncio.wait_for(self.kill(hook), UNDO_SECONDS)
                undone = True
                message += " Stopped what this task started (cancel_on_timeout)."
            except asyncio.TimeoutError:
                message += f" Could not finish stopping what this task started within {UNDO_SECONDS:.0f} s."
            except Exception as exc:  # the timeout still fires: say the undo failed
                from airflow_provider_baseten.client.redact import redact

                message += redact(f" Could not stop what this task started: {exc}")
        return event("timeout", message, undone=undone, **self._ids())

    async def on_kill(self) -> None:
        """A user killed the deferred task: undo what it started, if ``cancel_on_kill``.

        The undo runs in its own task, shielded: the triggerer cancels a killed trigger again on each of its
        loops until the trigger is gone (the on_kill of Airflow 3.3 then swallows that CancelledError), and
        an undo interrupted half way would leave the task's requests, job or promotion running. A second
        cancel now only stops the waiting here; the undo finishes on the triggerer's loop.
        """
        if not self.cancel_on_kill:
            return
        undo = asyncio.ensure_future(self.undo())
        _UNDOING.add(undo)
        undo.add_done_callback(self._undone)
        await asyncio.shield(undo)

    async def undo(self) -> None:
        """Run :meth:`kill` with a hook of its own (also what an operator's ``on_kill`` calls for an inline wait)."""
        from airflow_provider_baseten.hooks.baseten import BasetenHook

        hook = BasetenHook(self.conn_id, **self.hook_params)  # its own client: the cancelled wait closes the trigger's
        try:
            await self.kill(hook)
        finally:
            await hook.aclose()

    def _undone(self, undo: asyncio.Future[None]) -> None:
        _UNDOING.discard(undo)
        if not undo.cancelled() and undo.exception() is not None:
            self.log.warning("Could not undo %s after the kill: %s", self._describe(), undo.exception())


_UNDOING: set[asyncio.Future[None]] = set()  # on_kill undos in flight (a task without a reference may be lost)


def wait_inline(trigger: BasetenPollTrigger) -> BasetenTriggerEvent:
    """Run ``trigger`` to completion in this process (the non-deferrable wait)."""
    return asyncio.run(trigger.wait())


def check_once(trigger: BasetenPollTrigger) -> BasetenTriggerEvent | None:
    """One polling round in this process (a sensor's poke)."""

    async def once() -> BasetenTriggerEvent | None:
        hook = trigger._hook()
        try:
            result = await trigger.check(hook)
            return None if result is None else trigger.with_timeline(result)
        finally:
            await hook.aclose()

    return asyncio.run(once())
