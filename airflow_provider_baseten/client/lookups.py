"""A per-process cache of name -> id resolutions (training projects by name), with a bounded TTL.

A DAG names its training project; every run (every task) would otherwise list all the workspace's projects
to find its id. The id of a name rarely changes, so it is kept here for :data:`LOOKUP_TTL` seconds, at
most :data:`LOOKUP_MAX_ENTRIES` names per process. Only ids are kept, never an object or a status: a hit is
checked by fetching that one object (its name must still match; a 404 or another name drops the entry and
the name is looked up afresh). A name that was not found is never kept, so a project created meanwhile is
found at once. Keyed on the connection id and API base URL, so two workspaces never share an entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Seconds a resolved name is trusted before it is looked up again.
LOOKUP_TTL = 300.0
#: Names kept per process (the least recently used goes first).
LOOKUP_MAX_ENTRIES = 1024

LookupKey = tuple[str, ...]


class NameCache:
    """``key -> id`` with a TTL and a bound on entries; thread-safe (triggers share a process).

    :param ttl: Seconds an entry is trusted.
    :param max_entries: Entries kept (least recently used first out).
    :param clock: A monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        ttl: float = LOOKUP_TTL,
        max_entries: int = LOOKUP_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._entries: OrderedDict[LookupKey, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: LookupKey) -> str | None:
        """The id kept for ``key``, or ``None`` (none, or older than the TTL).

        :param key: ``(conn_id, base_url, kind, name)``.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock() - entry[0] > self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: LookupKey, value: str) -> None:
        """Keep ``value`` (an id) for ``key``.

        :param key: As :meth:`get`.
        :param value: The id the name resolved to.
        """
        with self._lock:
            self._entries[key] = (self.clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop(self, key: LookupKey) -> None:
        """Forget ``key`` (its object is gone or renamed).

        :param key: As :meth:`get`.
        """
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


#: The process's name cache.
NAMES = NameCache()
