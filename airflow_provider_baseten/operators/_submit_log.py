"""A durable record of which async inputs were submitted, written as each submit succeeds.

:class:`AsyncPredictOperator` submits its inputs one by one. If the task dies (or a submit fails) at input
*k* of *n*, a retry must submit only the inputs that have no request id yet: sending the first *k* again
would pay for them twice. The ids go to Airflow 3.3's ``task_state_store`` the moment Baseten returns each
one, in chunks of :data:`CHUNK` so a submit rewrites a few kilobytes, not the whole list.

The keys carry a fingerprint of the inputs and options: a retry whose inputs changed (a re-rendered
template, an upstream that produced other data) starts afresh instead of matching ids to other inputs.

Before Airflow 3.3 there is no store that survives a retry (Airflow clears a task's XComs when a new try
starts), so every try submits every input, as before.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_baseten.client.batch.fingerprint import digest_json

CHUNK = 100
_PREFIX = "baseten_async_ids"
_FINGERPRINT_KEY = "baseten_async_inputs"


class SubmitLog:
    """The request id of each input index, kept in ``task_state_store`` (a no-op without one).

    :param store: ``context["task_state_store"]`` or ``None``.
    :param inputs: The inputs, in order. :param options: The submit options (webhook, priority, ...).
    """

    def __init__(self, store: Any, inputs: list[Any], options: dict[str, Any]) -> None:
        self.store = store
        self.count = len(inputs)
        self.fingerprint = digest_json([inputs, options])[0]  # the batch engine's fingerprint

    @property
    def durable(self) -> bool:
        """Whether ids survive a retry (Airflow 3.3+ with a task state store)."""
        return self.store is not None

    def matches_earlier_try(self) -> bool:
        """Whether an earlier try submitted these same inputs and options (``True`` when it left no mark)."""
        if self.store is None:
            return True
        earlier = self.store.get(_FINGERPRINT_KEY)
        return earlier is None or earlier == self.fingerprint

    def start(self) -> None:
        """Mark which inputs this task submits (before the first submit)."""
        if self.store is not None:
            self.store.set(_FINGERPRINT_KEY, self.fingerprint)

    def _key(self, chunk: int) -> str:
        return f"{_PREFIX}.{self.fingerprint}.{chunk}"

    def load(self) -> list[str | None]:
        """The id recorded for each input (``None``: never submitted, or no durable store)."""
        ids: list[str | None] = [None] * self.count
        if self.store is None:
            return ids
        for chunk in range((self.count + CHUNK - 1) // CHUNK):
            stored = self.store.get(self._key(chunk)) or {}
            for index, request_id in stored.items():
                if 0 <= int(index) < self.count and isinstance(request_id, str):
                    ids[int(index)] = request_id
        return ids

    def record(self, ids: list[str | None], index: int) -> None:
        """Persist ``ids[index]`` (with the rest of its chunk) right after its submit succeeded."""
        if self.store is None:
            return
        chunk = index // CHUNK
        part = ids[chunk * CHUNK : (chunk + 1) * CHUNK]
        value = {str(chunk * CHUNK + i): rid for i, rid in enumerate(part) if rid is not None}
        self.store.set(self._key(chunk), value)
