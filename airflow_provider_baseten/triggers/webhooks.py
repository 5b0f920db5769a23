"""Waiting for async requests by listening: the webhook receiver's store, not Baseten's status API.

Baseten POSTs every async result to the webhook; the provider's receiver
(:mod:`airflow_provider_baseten.webhooks`) writes each one to ``{results_path}/{request_id}.json``. So a wait
that lists that folder knows which requests are done without asking Baseten anything: one listing per poll,
however many requests, and no Baseten call at all while results arrive.

A request whose result never arrives (a receiver that was down for both of Baseten's attempts, a store
that lost it) would make such a wait hang, so the status API is still the backstop, for those requests only:
see :class:`WebhookResultTrigger`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_baseten.events import BasetenTriggerEvent
from airflow_provider_baseten.models import ASYNC_ACTIVE_STATES, ASYNC_STATUS_UNKNOWN
from airflow_provider_baseten.triggers._poll import event
from airflow_provider_baseten.triggers.baseten import AsyncPredictTrigger
from airflow_provider_baseten.webhooks.gather import DELIVERING, LOST_REASONS, NOT_STORED, STORED, open_store

if TYPE_CHECKING:
    from airflow_provider_baseten.hooks.baseten import BasetenHook
    from airflow_provider_baseten.webhooks.store import ResultStore

__all__ = ["DEFAULT_WEBHOOK_GRACE", "WebhookResultTrigger"]

#: Seconds the store may stay quiet before the missing requests are asked about on the status API. Baseten
#: makes two delivery attempts about 2 s apart, each with a 10 s timeout: a result is delivered (or lost)
#: within about 25 s of the request ending, so a minute of silence means "ask", not "Baseten is slow".
DEFAULT_WEBHOOK_GRACE = 60.0

# A request in one of these states gets no result in the store any more: the wait is over for it.
_SETTLED = frozenset({STORED, NOT_STORED, "WEBHOOK_FAILED", "CANCELED", "FAILED", "EXPIRED", ASYNC_STATUS_UNKNOWN})


class WebhookResultTrigger(AsyncPredictTrigger):
    """Wait for async requests by listing the webhook receiver's store; no Baseten call while results arrive.

    Each poll lists ``results_path`` once (not one look-up per request). A request whose result is there is
    done (``STORED``). When the store has had nothing new for ``webhook_grace`` seconds (counted from the
    start of the wait, then from the last new result), the requests still missing are asked about on the
    status API, within the model's status budget (:class:`AsyncPredictTrigger`), each at most once per
    ``webhook_grace``:

    - still ``QUEUED`` / ``IN_PROGRESS``, or ended with a delivery still under way: keep listening;
    - ``WEBHOOK_FAILED`` (both deliveries failed), ``CANCELED``, ``FAILED`` / ``EXPIRED`` without a stored
      result, delivered elsewhere (``NOT_STORED``), or unknown to Baseten (status kept one hour): settled,
      without a result.

    The event is ``success`` when every result is stored; otherwise, once every request is settled,
    ``failed``, naming each request without a result by its index in ``request_ids`` (a failed model call
    whose webhook *was* stored carries its ``errors`` in the stored body, and is not counted here: the
    gathering step reports it). ``states`` holds only the requests that are not ``STORED`` (an event for
    20,000 requests stays small); ``stored`` counts the others.

    :param results_path: The receiver's store: a local folder or an object storage URL (``s3://...``).
    :param results_conn_id: The Airflow connection of an object storage ``results_path``.
    :param webhook_grace: Seconds of silence in the store before the missing requests are asked about
        (default :data:`DEFAULT_WEBHOOK_GRACE`).
    """

    def __init__(
        self,
        *,
        results_path: str,
        results_conn_id: str | None = None,
        webhook_grace: float = DEFAULT_WEBHOOK_GRACE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.results_path = str(results_path)
        self.results_conn_id = results_conn_id
        self.webhook_grace = float(webhook_grace)
        self._store_obj: ResultStore | None = None
        self._quiet_since: float | None = None  # when the store last grew (or the wait started)
        self._next_ask = 0.0  # the earliest time the missing requests may be asked about again

    def _kwargs(self) -> dict[str, Any]:
        return {
            **super()._kwargs(),
            "results_path": self.results_path,
            "results_conn_id": self.results_conn_id,
            "webhook_grace": self.webhook_grace,
        }

    def _ids(self) -> dict[str, Any]:
        left = {r: s for r, s in self._states.items() if s != STORED}
        return {"request_ids": self.request_ids, "states": left, "stored": len(self._states) - len(left)}

    def _describe(self) -> str:
        left = [r for r in self.request_ids if self._states.get(r) not in _SETTLED]
        return (
            f"{len(left)} of {len(self.request_ids)} async result(s) not yet in {self.results_path} (e.g. {left[:3]})"
        )

    def _store(self) -> ResultStore:
        if self._store_obj is None:
            self._store_obj = open_store(self.results_path, self.results_conn_id)
        return self._store_obj

    async def _list(self) -> int:
        """List the store once; mark what is there ``STORED``; return how many are new."""
        stored = await asyncio.to_thread(self._store().list_ids)  # file system I/O: off the triggerer's loop
        new = 0
        for rid in self.request_ids:
            if rid in stored and self._states.get(rid) != STORED:
                self._states[rid] = STORED
                new += 1
        return new

    async def check(self, hook: BasetenHook) -> BasetenTriggerEvent | None:
        """List the store; after ``webhook_grace`` of silence, ask Baseten about the missing requests only."""
        now = time.time()
        if await self._list() or self._quiet_since is None:
            self._quiet_since = now
        missing = [r for r in self.request_ids if self._states.get(r) not in _SETTLED]
        if missing and now - self._quiet_since >= self.webhook_grace and now >= self._next_ask:
            self._next_ask = now + self.webhook_grace
            self.log.info(
                "%d of %d result(s) still missing from %s after %.0f s without a new one: asking Baseten's status "
                "API about those only.",
                len(missing),
                len(self.request_ids),
                self.results_path,
                now - self._quiet_since,
            )
            for rid, answer in (await self._poll_status(hook, missing)).items():
                self._states[rid] = _settle(answer.status if answer else ASYNC_STATUS_UNKNOWN, answer)
            await self._list()  # a result stored while we asked is a result, not a loss
        return self.verdict()

    def verdict(self) -> BasetenTriggerEvent | None:
        """``success`` when every result is stored; ``failed`` (by index) once the rest are settled."""
        if any(self._states.get(r) not in _SETTLED for r in self.request_ids):
            return None
        forgiven = set() if self.fail_on_webhook_failed else {"WEBHOOK_FAILED"}
        bad = [(i, r, self._states[r]) for i, r in enumerate(self.request_ids) if self._states[r] != STORED]
        if all(state in forgiven for _, _, state in bad):
            extra = f" ({len(bad)} lost: WEBHOOK_FAILED)" if bad else ""
            return event("success", f"{len(self.request_ids)} async result(s) stored{extra}.", **self._ids())
        details = []
        for index, rid, state in bad[:10]:
            errs = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in self._errors.get(rid, []))
            details.append(f"index {index} ({rid}) {state}: {errs or LOST_REASONS.get(state, state)}")
        more = f" (+{len(bad) - 10} more)" if len(bad) > 10 else ""
        return event(
            "failed",
            f"{len(bad)} of {len(self.request_ids)} async request(s) have no stored result: "
            + ", ".join(details)
            + more,
            errors={r: self._errors.get(r, []) for _, r, _ in bad},
            **self._ids(),
        )


def _settle(status: str, answer: Any) -> str:
    """The wait's state of a missing request, from Baseten's answer about it (``None``: a 404)."""
    if answer is None or status in ASYNC_ACTIVE_STATES or status in ("WEBHOOK_FAILED", "CANCELED"):
        return status
    webhook = answer.webhook_status
    if webhook in (None, "PENDING"):
        return DELIVERING  # it ended; Baseten is still delivering (or about to retry): keep listening
    if webhook == "FAILED":
        return "WEBHOOK_FAILED"
    if status in ("FAILED", "EXPIRED"):
        return status  # its errors came with the status
    return NOT_STORED
