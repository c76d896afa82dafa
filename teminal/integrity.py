"""Verified, atomic artifacts: every file a run or the cache writes and later trusts.

SPEC §6 (a run that cannot mean anything stops with a message): a damaged file must never be
used silently. Two rules, one helper each:

- **Atomic**: ``write_atomic`` writes a temporary file in the same folder, fsyncs it, renames
  it over the final name and fsyncs the folder; a crash or a full disk leaves the old file (or
  none) under the final name, never a truncated one, and the temporary file is removed.
- **Checksummed**: a binary artifact (``save_torch``: cache shards, checkpoints, ``model.pt``)
  ends with a fixed-size trailer ``\\n#teminal-sha256:<64 hex>\\n`` over every byte before it
  (``torch.load`` ignores trailing bytes, so any reader still opens it); a JSON record
  (``write_json``: ``meta.json``, evaluations, ``data.json``, ``pipeline.json``) carries its
  own ``"checksum"`` key over its canonical JSON. ``verify_file`` / ``read_json`` check them.

NaN and ±inf never reach a JSON record: ``write_json`` writes them as ``null``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

TAG = b"\n#teminal-sha256:"
TRAILER = len(TAG) + 64 + 1  # bytes of the trailer: tag, hex digest, newline
CHECKSUM_KEY = "checksum"  # the key a JSON record's checksum is kept under


class IntegrityError(RuntimeError):
    """A file's content does not match the checksum written with it; the message names it."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path: Path, *, limit: int) -> str:
    """sha256 of the first ``limit`` bytes of ``path``, read in 1 MiB chunks."""
    h, left = hashlib.sha256(), limit
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def write_atomic(path: str | Path, write: Callable[[Path], None], *,
                 checksum: bool = False) -> None:
    """Write ``path`` through ``write(tmp)`` atomically (module docstring); with ``checksum``
    the sha256 trailer is appended before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        if checksum:
            digest = _sha256(tmp, limit=tmp.stat().st_size)
            with open(tmp, "ab") as fh:
                fh.write(TAG + digest.encode() + b"\n")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def verify_file(path: str | Path) -> bool | None:
    """True: the trailer matches the content; False: damaged (or truncated); None: the file
    has no trailer (written before checksums, or by another tool)."""
    path = Path(path)
    size = path.stat().st_size
    if size < TRAILER:
        return None
    with open(path, "rb") as fh:
        fh.seek(size - TRAILER)
        tail = fh.read(TRAILER)
    if not tail.startswith(TAG):
        return None
    return _sha256(path, limit=size - TRAILER) == tail[len(TAG):-1].decode("ascii", "replace")


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically, with the sha256 trailer."""
    import torch

    write_atomic(path, lambda p: torch.save(obj, p), checksum=True)


def load_torch(path: str | Path, *, weights_only: bool, what: str = "checkpoint",
               mmap: bool = False) -> Any:
    """``torch.load`` of a file written by ``save_torch`` after checking its trailer.

    Raises:
        FileNotFoundError: no such file.
        IntegrityError: the content does not match its checksum (names the file and ``what``).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if verify_file(path) is False:
        raise IntegrityError(f"{what} {path} is damaged: its content does not match the "
                             "checksum written with it (disk or copy error, or edited by hand); "
                             "it is not used. Delete the file (or its folder) to recompute it")
    return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return finite_json(obj.item())
    return obj


def _digest(obj: dict) -> str:
    body = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
    blob = json.dumps(body, sort_keys=True, default=str, allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically; non-finite floats become ``null``; a dict gets a
    ``"checksum"`` key over its content (``read_json`` checks it)."""
    clean = json.loads(json.dumps(finite_json(obj), default=str, allow_nan=False))
    if isinstance(clean, dict):
        clean.pop(CHECKSUM_KEY, None)
        clean[CHECKSUM_KEY] = _digest(clean)
    text = json.dumps(clean, indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda p: p.write_text(text))


def read_json(path: str | Path) -> Any:
    """The JSON in ``path`` without its checksum key.

    Raises:
        IntegrityError: the file is not JSON, or a dict's ``"checksum"`` does not match.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path} is damaged: not valid JSON ({exc})") from None
    if isinstance(obj, dict) and CHECKSUM_KEY in obj:
        if obj[CHECKSUM_KEY] != _digest(obj):
            raise IntegrityError(f"{path} is damaged: its content does not match the checksum "
                                 "written with it (edited by hand, or a disk error)")
        obj = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
    return obj


@contextmanager
def file_lock(path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """An exclusive advisory lock (``fcntl.flock``) on ``path`` (created if absent), held for
    the ``with`` block: writers of one cache folder or one MLflow store take turns. The
    lock dies with its process (even on SIGKILL). ``wait=False``: ``BlockingIOError`` when
    another process holds it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
