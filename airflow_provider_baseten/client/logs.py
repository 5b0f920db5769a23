"""Paging Baseten's logs the way its CLI does, and the "last ERROR lines" shown when a remote wait fails.

Baseten's logs endpoints return at most ``limit`` lines of a time window. To read a whole window the
CLI (basetenlabs/baseten-cli, ``model_deployment_logs``; truss's log watcher dedups the same way) asks
for the newest page first, then for the page that *ends* at the oldest millisecond of the page before.
That millisecond comes back, so lines already seen are dropped, keyed by ``(timestamp, message,
replica)``. Only the keys of the boundary millisecond are kept, so memory stays flat over any window.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_baseten.models import LogLine

DEFAULT_WINDOW_MS = 30 * 60 * 1000  # Baseten's window when no start is given
MAX_WINDOW_MS = 7 * 24 * 3600 * 1000

_Key = tuple[int, str, str, "str | None"]  # (epoch ms, timestamp, message, replica)


class LogPager:
    """The state of one backwards paging through a logs window (shared by the sync and async iterators).

    :param start: Window start in epoch ms (``None``: the 30 minutes up to the newest line returned).
    :param end: Window end in epoch ms (``None``: now, as Baseten sees it).
    :param limit: Lines to yield at most (``None``: all of the window).
    :param page_size: Lines per request (1-1000).
    """

    def __init__(self, start: int | None, end: int | None, limit: int | None, page_size: int, log: Any = None) -> None:
        from airflow_provider_baseten.client.checks import int_in, optional_int_in

        int_in("page_size", page_size, 1, 1000)
        optional_int_in("limit", limit, 1)
        self.start, self.end, self.remaining, self.page_size = start, end, limit, page_size
        self.log = log or logging.getLogger("airflow_provider_baseten")
        self.seen: set[_Key] = set()
        self.done = False
        self.pages = 0

    def query(self) -> dict[str, Any]:
        """The window and page size of the next request (newest first)."""
        return {
            "start_epoch_millis": self.start,
            "end_epoch_millis": self.end,
            "limit": self.page_size,
            "direction": "desc",
        }

    def accept(self, lines: list[LogLine]) -> list[LogLine]:
        """Take one page; return its lines not seen before (newest first) and move the window back."""
        self.pages += 1
        new: list[LogLine] = []
        for line in lines:
            key = (line.epoch_millis or 0, str(line.timestamp), line.message, line.replica)
            if key not in self.seen:
                self.seen.add(key)
                new.append(line)
        if self.remaining is not None:
            new = new[: self.remaining]
            self.remaining -= len(new)
        stamps = [ms for ms in (line.epoch_millis for line in lines) if ms is not None]
        if len(lines) < self.page_size or not stamps or self.remaining == 0:
            self.done = True  # the window is exhausted (or we have what was asked for)
            return new
        oldest = min(stamps)
        if self.start is None:
            self.start = max(0, max(stamps) - DEFAULT_WINDOW_MS)
        if not new:
            # A full page of lines already seen: one millisecond holds more than a page. Step past it.
            self.log.warning(
                "More than %d log lines share the millisecond %d; some of them are skipped (narrow the filters "
                "or raise page_size to see them all).",
                self.page_size,
                oldest,
            )
            oldest -= 1
        self.end = oldest
        if oldest < self.start:
            self.done = True
        self.seen = {k for k in self.seen if k[0] == oldest}  # only the boundary millisecond can come back
        return new


def error_window(created_at: str | None) -> int | None:
    """Epoch ms to start an error search at: the deployment's creation, if within Baseten's 7 days."""
    from datetime import datetime

    if not created_at:
        return None
    try:
        start = int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
    return start if time.time() * 1000 - start < MAX_WINDOW_MS - 60_000 else None


def format_lines(newest_first: list[LogLine]) -> list[str]:
    """Log lines oldest first, formatted and redacted (a model may log a secret; the event is stored)."""
    from airflow_provider_baseten.client.redact import redact

    return [redact(line.format())[:2000] for line in reversed(newest_first)]


class LogFollower:
    """The state of reading a job's logs forward as they are written: each round asks only for lines since
    the newest one already read (oldest first), so nothing is read twice and no line is kept once returned.

    The newest millisecond comes back in the next answer, so the keys of its lines (only those) are kept to
    drop them; memory stays flat over any length of log. Shared by the sync and async readers.

    :param start: Epoch ms to start at (e.g. the job's creation; ``None``: Baseten's default window).
    :param page_size: Lines per request (1-1000); a full page is followed by another request at once.
    """

    def __init__(self, start: int | None, page_size: int = 1000, log: Any = None) -> None:
        from airflow_provider_baseten.client.checks import int_in

        int_in("page_size", page_size, 1, 1000)
        self.cursor, self.page_size = start, page_size
        self.log = log or logging.getLogger("airflow_provider_baseten")
        self.seen: set[_Key] = set()
        self.more = True  # the last page was full: more lines are waiting now

    def query(self) -> dict[str, Any]:
        """The window and page size of the next request (oldest first)."""
        return {"start_epoch_millis": self.cursor, "limit": self.page_size, "direction": "asc"}

    def accept(self, lines: list[LogLine]) -> list[LogLine]:
        """Take one page (oldest first); return its lines not read before and move the cursor forward."""
        new = []
        for line in lines:
            key = (line.epoch_millis or 0, str(line.timestamp), line.message, line.replica)
            if key not in self.seen:
                new.append(line)
                if self.cursor is None or key[0] >= self.cursor:
                    if self.cursor is None or key[0] > self.cursor:
                        self.cursor, self.seen = key[0], set()
                    self.seen.add(key)
        self.more = len(lines) >= self.page_size
        if self.more and not new and self.cursor is not None:
            # A full page of lines already read: one millisecond holds more than a page. Step past it.
            self.log.warning(
                "More than %d log lines share the millisecond %d; some are skipped.", self.page_size, self.cursor
            )
            self.cursor, self.seen = self.cursor + 1, set()
        return new
