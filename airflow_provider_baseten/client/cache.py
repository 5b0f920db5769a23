"""An opt-in result cache for deterministic calls (embeddings, rerank, classification, predict).

What a call is keyed on (:meth:`ResultCache.key`): the *scope* (the resolved deployment, ``deployment:
{model_id}/{deployment_id}``, or on Model APIs ``model_apis:{model}``), the route (``v1/embeddings``,
``predict``...) and the canonical request body (JSON with sorted keys, so key order never matters), which
holds every option sent. Its SHA-256 is the entry's name: the body itself is never stored, only its hash
and the model's output, so the cache holds no API key, no header and no input text.

The layout is safe with many writers on many workers without any lock: one object per key,
``{root}/{key[:2]}/{key}.json`` (a two-character fan-out keeps directories small). A local entry is written
to a temporary file beside it and renamed into place (atomic on POSIX), an object store's with one PUT
(atomic per object), so a reader sees a whole entry or none. Two writers of one key write the same output
(the calls are deterministic); the last rename wins and nothing is lost. An entry that cannot be read
(corrupt, partial, another key's) is a miss, and the answer then sent overwrites it.

Each entry holds its write time (``at``): with ``ttl`` an older entry is a miss. With ``max_bytes``, a writer
that has (by its own count since its last scan) written past the bound scans the cache once and deletes the
oldest entries until it holds 80 % of the bound; between scans the cache can exceed the bound by what the
other writers added.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from airflow_provider_baseten.client.checks import is_int, is_number
from airflow_provider_baseten.exceptions import BasetenValidationError

#: What :meth:`ResultCache.get` returns for a key it does not hold (``None`` is a valid model output).
MISS: Any = object()

#: Entries a pruning writer keeps: this share of ``max_bytes``, so it does not prune again at the next write.
PRUNE_TO = 0.8

#: A temporary file older than this was left by a killed writer: pruning deletes it.
STALE_TEMP_SECONDS = 3600.0

_TEMP_PREFIX = ".tmp-"


class ResultCache:
    """Where cached outputs live, how long they count, and how large the cache may grow.

    Pass it (or just a folder: a path, ``"file:///..."``, an ``ObjectStoragePath`` or an ``"s3://..."`` URL) as
    ``cache=`` to ``predict``, ``embeddings``, ``rerank``, ``sync_request`` (e.g. classification's ``predict``
    route), ``predict_batch`` and ``embed_batch``, or to the operators that call them.

    :param root: The folder: a local path, ``"file:///..."``, or object storage (``ObjectStoragePath`` or a URL
        string such as ``"s3://bucket/cache"``, read with Airflow's object storage).
    :param ttl: Entries older than this (seconds or a ``timedelta``) are misses and are sent again.
        ``None``: entries never expire.
    :param max_bytes: A bound on the cache's size: when a writer has passed it, the oldest entries are deleted
        (see the module docstring for how closely it is kept). ``None``: unbounded.
    :param clock: Seconds since the epoch (``time.time``); tests pass their own.
    """

    def __init__(
        self,
        root: Any,
        *,
        ttl: float | timedelta | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(ttl, timedelta):
            ttl = ttl.total_seconds()
        if ttl is not None and not (is_number(ttl) and ttl > 0):
            raise BasetenValidationError(f"ttl must be a positive number of seconds, got {ttl!r}.", field="ttl")
        if max_bytes is not None and not (is_int(max_bytes) and max_bytes > 0):
            raise BasetenValidationError(f"max_bytes must be a positive int, got {max_bytes!r}.", field="max_bytes")
        self.root = _as_root(root)
        self.local = _local(self.root)
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.clock = clock
        self._written: int | None = None  # bytes in the cache by this writer's count (max_bytes only)

    def __repr__(self) -> str:
        return f"ResultCache({str(self.root)!r}, ttl={self.ttl!r}, max_bytes={self.max_bytes!r})"

    @staticmethod
    def key(scope: str, route: str, body: Any) -> str:
        """The entry name of ``body`` sent to ``route`` on ``scope``: SHA-256 of the canonical JSON.

        :param scope: The resolved target (``deployment:{model_id}/{deployment_id}`` or ``model_apis:{model}``).
        :param route: The call (``predict``, ``v1/embeddings``...).
        :param body: The request body as sent, options included.
        """
        canonical = json.dumps(
            {"scope": scope, "route": route, "body": body},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _path(self, key: str) -> Any:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any:
        """The output stored under ``key``, or ``MISS`` (none, expired, or unreadable).

        :param key: From :meth:`key`.
        """
        try:
            entry = json.loads(self._path(key).read_bytes())
        except (OSError, ValueError):  # missing, or a partial / corrupt entry: sent again and rewritten
            return MISS
        if not isinstance(entry, dict) or entry.get("key") != key or "output" not in entry:
            return MISS
        at = entry.get("at")
        if not isinstance(at, (int, float)):
            return MISS
        if self.ttl is not None and self.clock() - at > self.ttl:
            return MISS
        return entry["output"]

    def put(self, key: str, output: Any) -> None:
        """Store ``output`` under ``key`` (whole or not at all), then keep the size bound.

        :param key: From :meth:`key`.
        :param output: The model's JSON output.
        """
        data = json.dumps({"key": key, "at": self.clock(), "output": output}, separators=(",", ":")).encode()
        path = self._path(key)
        if self.local:
            _write_local(path, data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)  # one PUT: an object store never shows a partial object
        if self.max_bytes is not None:
            self._bound(len(data))

    def _bound(self, added: int) -> None:
        """Count what this writer added; past ``max_bytes``, scan once and delete the oldest entries."""
        assert self.max_bytes is not None
        if self._written is None:
            self._written = sum(size for _, size, _ in self._entries())
        else:
            self._written += added
        if self._written <= self.max_bytes:
            return
        entries = sorted(self._entries(), key=lambda e: e[0])
        total = sum(size for _, size, _ in entries)
        keep = int(self.max_bytes * PRUNE_TO)
        for _, size, path in entries:
            if total <= keep:
                break
            with contextlib.suppress(FileNotFoundError):  # another writer pruned it first
                path.unlink()
            total -= size
        self._written = total

    def _entries(self) -> Iterator[tuple[float, int, Any]]:
        """``(mtime, size, path)`` of every entry; stale temporary files are deleted on the way."""
        now = time.time()
        try:
            shards = [d for d in self.root.iterdir() if len(d.name) == 2]
        except FileNotFoundError:
            return
        for shard in shards:
            try:
                names = list(shard.iterdir())
            except (FileNotFoundError, NotADirectoryError):
                continue
            for path in names:
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                mtime = float(getattr(st, "st_mtime", 0.0) or 0.0)
                if path.name.startswith(_TEMP_PREFIX):
                    if now - mtime > STALE_TEMP_SECONDS:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                    continue
                yield mtime, int(st.st_size), path


def _write_local(path: Any, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place (atomic on POSIX).

    The temporary name is the entry's plus this process and thread, so two writers never share one. Not
    fsynced: after a power loss an entry may be empty, which reads as a miss and is rewritten.
    """
    tmp = path.with_name(f"{_TEMP_PREFIX}{path.name}-{os.getpid()}-{threading.get_ident()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:  # the shard's first entry: make its folder (most writes skip this)
        os.makedirs(path.parent, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _as_root(root: Any) -> Any:
    """A ``pathlib.Path`` for a local folder (a path, ``file://``), else an ``ObjectStoragePath``."""
    from pathlib import Path

    if isinstance(root, ResultCache):
        raise BasetenValidationError("Give the cache's folder, not another ResultCache.", field="cache")
    if isinstance(root, str) and root.startswith("file://"):
        return Path(root.removeprefix("file://"))
    if isinstance(root, str) and "://" in root:
        from airflow.providers.common.compat.sdk import ObjectStoragePath  # only for object storage

        return ObjectStoragePath(root)
    if isinstance(root, (str, os.PathLike)) and not hasattr(root, "protocol"):
        if not os.fspath(root):
            raise BasetenValidationError("The cache folder is empty: give a path.", field="cache")
        return Path(root)
    protocol = getattr(root, "protocol", None)
    if protocol in ("file", "local"):
        return Path(str(root.path))
    if protocol is None:
        raise BasetenValidationError(
            f"cache must be a folder (a path, 'file:///...', an ObjectStoragePath) or a ResultCache, got "
            f"{type(root).__name__}.",
            field="cache",
        )
    return root


def _local(root: Any) -> bool:
    return getattr(root, "protocol", None) is None


def as_cache(cache: Any) -> ResultCache | None:
    """``cache=`` as given to a call: ``None``, a :class:`ResultCache`, or a folder for one (no TTL, no bound).

    :param cache: What the caller passed.
    """
    if cache is None or isinstance(cache, ResultCache):
        return cache
    return ResultCache(cache)


class ScopedCache:
    """A :class:`ResultCache` bound to one resolved target and route, counting what it answered.

    :param cache: The store.
    :param scope: The resolved target (see :meth:`ResultCache.key`).
    :param route: The call.
    """

    def __init__(self, cache: ResultCache, scope: str, route: str) -> None:
        self.cache, self.scope, self.route = cache, scope, route
        #: Items answered from the cache, and items looked up and sent.
        self.hits = self.sent = 0

    def __repr__(self) -> str:
        return f"ScopedCache({self.cache!r}, scope={self.scope!r}, route={self.route!r})"

    def key(self, body: Any) -> str:
        """The entry name of ``body`` on this target and route.

        :param body: The request body (or, for one text of a packed embeddings request, its own body).
        """
        return self.cache.key(self.scope, self.route, body)

    def get(self, key: str) -> Any:
        """The stored output or ``MISS``; counts a hit or an item to send.

        :param key: From :meth:`key`.
        """
        out = self.cache.get(key)
        if out is MISS:
            self.sent += 1
        else:
            self.hits += 1
        return out

    def put(self, key: str, output: Any) -> None:
        """Store one output.

        :param key: From :meth:`key`.
        :param output: The output.
        """
        self.cache.put(key, output)

    def line(self, unit: str) -> str:
        """The hit count for the log and summary: ``9,500 of 10,000 texts from cache, 500 sent``.

        :param unit: What the items are (``texts``, ``inputs``).
        """
        return f"{self.hits:,} of {self.hits + self.sent:,} {unit} from cache, {self.sent:,} sent"
