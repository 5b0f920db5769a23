"""Where the webhook receiver keeps Baseten's async outputs: one JSON file per ``request_id``.

Baseten does not keep async outputs: it POSTs them to the webhook endpoint, twice at most, and then they are
gone. So the receiver writes each body here before it answers 2xx, and the waits read it back.

Layout: ``{root}/{request_id}.json`` holds the webhook body exactly as Baseten sent it (a JSON object with
``request_id``, ``model_id``, ``deployment_id``, ``type``, ``time``, ``data``, ``errors``). ``root`` is a local
folder or an ``ObjectStoragePath`` (``s3://...``).

- **Atomic.** A body is written to a temporary file, fsynced, then moved into place, so a reader sees the
  whole file or none; a crash leaves at most a hidden ``.*.tmp`` file, which :meth:`ResultStore.list_ids`
  ignores.
- **Idempotent.** A duplicate delivery (Baseten's second attempt after a timeout, a replayed body) keeps the
  first body and :meth:`ResultStore.put` returns ``False``. On a local folder the move is ``os.link``, which
  refuses to replace an existing file, so even two concurrent deliveries store one object. Object stores have
  no such primitive: two *concurrent* duplicates may both write, and the last (identical) body wins.
- **Bounded.** :meth:`ResultStore.prune` removes bodies stored longer ago than a retention period (the
  receiver's ``retention_days``), so a long-lived store, and each wait's listing of it, does not grow for ever.
- **Safe names.** A ``request_id`` must match :data:`REQUEST_ID_PATTERN`, so it can never name a path outside
  ``root`` (no ``/``, no ``..``, no leading dot).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from airflow_provider_baseten.exceptions import BasetenValidationError

__all__ = ["REQUEST_ID_PATTERN", "ResultStore", "check_request_id", "request_id_of"]

log = logging.getLogger(__name__)

#: What a ``request_id`` may look like: letters, digits, ``_``, ``-`` and ``.``, starting with a letter or
#: digit, at most 128 characters. Baseten's ids are hex strings; anything else could be a path.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SUFFIX = ".json"


def check_request_id(request_id: Any) -> str:
    """Return ``request_id`` if it is a safe file name, else raise.

    :param request_id: the id to check.
    :raises BasetenValidationError: it is not a string matching :data:`REQUEST_ID_PATTERN`.
    """
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise BasetenValidationError(
            "request_id must be 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit",
            field="request_id",
        )
    return request_id


def request_id_of(body: bytes) -> str:
    """The checked ``request_id`` of a webhook body.

    :param body: the raw body, a JSON object.
    :raises BasetenValidationError: the body is not a JSON object, or its ``request_id`` is missing or unsafe.
    """
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BasetenValidationError("the webhook body is not JSON") from exc
    if not isinstance(parsed, dict):
        raise BasetenValidationError("the webhook body is not a JSON object")
    return check_request_id(parsed.get("request_id"))


def _is_local(root: Any) -> bool:
    protocol = getattr(root, "protocol", None)  # an ObjectStoragePath (UPath): asked first, since os.fspath()
    if protocol is not None:  # of a remote one is deprecated in universal_pathlib
        return protocol in ("", "file", "local")
    return isinstance(root, (str, os.PathLike)) and "://" not in os.fspath(root)


class ResultStore:
    """Webhook bodies keyed by ``request_id``, in a local folder or on object storage.

    :param root: a local folder (``str`` or ``pathlib.Path``, created if missing) or an ``ObjectStoragePath``
        (a string with ``://`` is opened as one).
    """

    def __init__(self, root: Any) -> None:
        if isinstance(root, str) and "://" in root:
            from airflow.providers.common.compat.sdk import ObjectStoragePath

            root = ObjectStoragePath(root)
        self._local = _is_local(root)
        if self._local:
            # A file:// ObjectStoragePath is used through os, so the local guarantees (fsync, link) hold.
            self.root: Any = os.path.abspath(os.fspath(getattr(root, "path", root)))
            os.makedirs(self.root, exist_ok=True)
        else:
            self.root = root
            root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    def _path(self, request_id: str) -> Any:
        name = check_request_id(request_id) + _SUFFIX
        return os.path.join(self.root, name) if self._local else self.root / name

    def put(self, body: bytes) -> bool:
        """Store a webhook body durably under its ``request_id``; ``False`` if that id is already stored.

        The body is kept byte for byte. When this returns, the file is on disk (fsynced, and so is its folder)
        or, on object storage, the upload has completed.

        :param body: the raw webhook body, a JSON object with a ``request_id``.
        :raises BasetenValidationError: the body is not a JSON object or its ``request_id`` is unsafe.
        """
        request_id = request_id_of(body)
        if self._local:
            return self._put_local(request_id, body)
        dest = self._path(request_id)
        if dest.exists():
            return False
        tmp = self.root / f".{request_id}.{uuid.uuid4().hex}.tmp"
        try:
            with tmp.open("wb") as fh:
                fh.write(body)
            tmp.rename(dest)
        finally:
            with contextlib.suppress(Exception):
                if tmp.exists():
                    tmp.unlink()
        return True

    def _put_local(self, request_id: str, body: bytes) -> bool:
        dest = self._path(request_id)
        if os.path.exists(dest):
            return False
        tmp = os.path.join(self.root, f".{request_id}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                # link, not rename: it fails if dest exists, so a concurrent duplicate cannot replace the first.
                os.link(tmp, dest)
            except FileExistsError:
                return False
            except OSError:
                # A file system without hard links (some network mounts): rename, which is still atomic.
                if os.path.exists(dest):
                    return False
                os.replace(tmp, dest)
            self._fsync_root()
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _fsync_root(self) -> None:
        # The new directory entry is durable only once the directory itself is fsynced.
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def has(self, request_id: str) -> bool:
        """Whether a body is stored for ``request_id``.

        :param request_id: the async request's id.
        :raises BasetenValidationError: the id is unsafe.
        """
        path = self._path(request_id)
        return os.path.exists(path) if self._local else bool(path.exists())

    def get(self, request_id: str) -> dict[str, Any] | None:
        """The stored webhook body for ``request_id``, parsed, or ``None`` if none is stored.

        :param request_id: the async request's id.
        :raises BasetenValidationError: the id is unsafe.
        """
        path = self._path(request_id)
        try:
            if self._local:
                with open(path, "rb") as fh:
                    raw = fh.read()
            else:
                with path.open("rb") as fh:
                    raw = fh.read()
        except FileNotFoundError:
            return None
        body: dict[str, Any] = json.loads(raw)
        return body

    def list_ids(self) -> set[str]:
        """The ``request_id`` of every stored body (temporary files of unfinished writes are not listed)."""
        names = os.listdir(self.root) if self._local else [p.name for p in self.root.iterdir()]
        return {rid for rid in map(_body_id, names) if rid is not None}

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        """Remove the bodies stored more than ``older_than`` seconds ago, and temporary files of writes that
        died that long ago; return how many bodies were removed.

        A pruned body is gone: a wait that had not gathered it yet reports that request as a per-item error (its
        output is lost; Baseten keeps none). Keep ``older_than`` well above the longest async wait.

        :param older_than: the age in seconds (by the file's modification time) past which a body is removed.
        :param now: the current time (epoch seconds); default ``time.time()``.
        :raises ValueError: ``older_than`` is not positive.
        """
        if not older_than > 0:
            raise ValueError("older_than must be > 0 seconds")
        cutoff = (time.time() if now is None else now) - older_than
        removed = 0
        for name, path, mtime in self._entries():
            body = _body_id(name) is not None
            if not (body or (name.startswith(".") and name.endswith(".tmp"))) or mtime is None or mtime >= cutoff:
                continue
            try:
                if self._local:
                    os.unlink(path)
                else:
                    path.unlink()
            except FileNotFoundError:  # a concurrent prune got there first
                continue
            except Exception as exc:  # one object the store will not delete: the others still go
                log.warning("webhook store prune: could not remove %s: %s", name, type(exc).__name__)
                continue
            removed += body
        return removed

    def _entries(self) -> list[tuple[str, Any, float | None]]:
        """(name, path, modification time) of every file in the store."""
        if self._local:
            with os.scandir(self.root) as it:
                return [(e.name, e.path, _mtime(e)) for e in it if e.is_file(follow_symlinks=False)]
        return [(p.name, p, _remote_mtime(p)) for p in self.root.iterdir()]


def _body_id(name: str) -> str | None:
    """The ``request_id`` whose body a file in the store is, or ``None`` (a temporary file, anything else)."""
    stem = name[: -len(_SUFFIX)]
    return stem if name.endswith(_SUFFIX) and REQUEST_ID_PATTERN.fullmatch(stem) else None


def _mtime(entry: os.DirEntry[str]) -> float | None:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:  # gone, or not ours to read: kept
        return None


def _remote_mtime(path: Any) -> float | None:
    """An object's modification time (epoch seconds), or ``None`` when its file system reports none (then it is
    kept). ``st_mtime`` covers local and S3 (``LastModified``); other file systems name it differently."""
    try:
        st = path.stat()
    except Exception:  # gone, or one object the store cannot stat (permissions, a blip): kept, not fatal to the run
        return None
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        if st.st_mtime:
            return float(st.st_mtime)
    for key in ("last_modified", "updated", "created"):  # Azure, GCS, fsspec's memory file system
        value = st.get(key) if hasattr(st, "get") else None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None
