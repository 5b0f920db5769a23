"""Model archives for Baseten's REST deploy: a gzip tar of a Truss directory, or of one ``config.yaml``.

The archive is written to a temporary file, never held in memory: ``tarfile`` copies each file in chunks,
so a Truss directory of several hundred MB packs (and then uploads, see :mod:`._upload`) in bounded memory.
Files matching the directory's ``.truss_ignore`` (gitignore-like patterns, as Truss reads them) are left
out, as Truss and Baseten's CLI leave them out.
"""

from __future__ import annotations

import fnmatch
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_baseten.exceptions import BasetenValidationError

CONFIG_FILE = "config.yaml"
IGNORE_FILE = ".truss_ignore"
# Always left out (Truss's own default ignore list has these): VCS data and Python caches.
DEFAULT_IGNORES = (".git/", "__pycache__/", "*.pyc", ".DS_Store")


@dataclass
class Archive:
    """A packed model archive on disk; :meth:`close` (or ``with``) deletes the file."""

    path: Path
    config: dict[str, Any]
    raw_config: str
    files: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes on disk (what the upload sends)."""
        return self.path.stat().st_size

    def close(self) -> None:
        """Delete the temporary file."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_config(text: str, where: str) -> dict[str, Any]:
    """``config.yaml`` text as a dict; a clear :class:`BasetenValidationError` when it is not a YAML mapping."""
    import yaml

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BasetenValidationError(f"{where} is not valid YAML: {exc}"[:500], field="config") from None
    if not isinstance(config, dict):
        raise BasetenValidationError(f"{where} must be a YAML mapping (model_name, resources, ...).", field="config")
    return config


def dump_config(config: dict[str, Any]) -> str:
    """A config dict as ``config.yaml`` text."""
    import yaml

    if not isinstance(config, dict):
        raise BasetenValidationError(f"config must be a dict, got {type(config).__name__}.", field="config")
    try:
        return yaml.safe_dump(config, sort_keys=False)
    except yaml.YAMLError as exc:
        raise BasetenValidationError(f"config cannot be written as YAML: {exc}"[:500], field="config") from None


def ignore_patterns(root: Path) -> list[str]:
    """The default patterns plus those of ``root/.truss_ignore`` (blank lines and ``#`` comments skipped)."""
    patterns = list(DEFAULT_IGNORES)
    ignore = root / IGNORE_FILE
    if ignore.is_file():
        for line in ignore.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)
    return patterns


def is_ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    """Whether the root-relative POSIX path ``rel`` matches one of ``patterns``.

    ``name/`` matches a directory of that name anywhere; a pattern with a ``/`` matches the path from the
    root (a leading ``/`` anchors it there); a pattern without one matches the name at any depth.
    """
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(rel, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _walk(root: Path, patterns: list[str]) -> Iterator[tuple[Path, str]]:
    """(absolute path, archive name) of every regular file to pack, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(prefix + d, True, patterns))
        for name in sorted(filenames):
            path = base / name
            if path.is_file() and not path.is_symlink() and not is_ignored(prefix + name, False, patterns):
                yield path, prefix + name


def read_truss_config(source: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The parsed and raw ``config.yaml`` of the Truss directory ``source``.

    A :class:`BasetenValidationError` naming the fix when ``source`` is not a directory or has no valid
    ``config.yaml`` (reads only the local disk: callers check a Truss directory with it before any request).
    """
    root = Path(source)
    if not root.is_dir():
        raise BasetenValidationError(
            f"{str(source)!r} is not a directory: give a Truss directory or a config dict.", field="source"
        )
    cfg = root / CONFIG_FILE
    if not cfg.is_file():
        raise BasetenValidationError(f"The Truss directory {str(root)!r} has no {CONFIG_FILE}.", field="source")
    raw = cfg.read_text(encoding="utf-8")
    return read_config(raw, str(cfg)), raw


def build_archive(source: dict[str, Any] | str | os.PathLike[str], *, tmp_dir: str | None = None) -> Archive:
    """Pack ``source`` into a gzip tar in a temporary file.

    :param source: A config dict (the archive holds only ``config.yaml``: enough for engine-built models and
        training checkpoints) or the path of a Truss directory (it must hold ``config.yaml``).
    :param tmp_dir: Where to write the temporary file (default: the system's temp directory).
    """
    if isinstance(source, dict):
        raw = dump_config(source)
        config = read_config(raw, "config")
        root: Path | None = None
    else:
        root = Path(source)
        config, raw = read_truss_config(root)
    fd, name = tempfile.mkstemp(prefix="baseten-model-", suffix=".tgz", dir=tmp_dir)
    archive = Archive(Path(name), config, raw)
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            if root is None:
                _add_bytes(tar, CONFIG_FILE, raw.encode())
                archive.files.append(CONFIG_FILE)
            else:
                for path, arcname in _walk(root, ignore_patterns(root)):
                    tar.add(path, arcname=arcname, recursive=False)
                    archive.files.append(arcname)
    except BaseException:
        archive.close()
        raise
    return archive


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
