"""Download of ESC-50: fetch with bounded timeouts, archive checks, extraction that never leaves
half a copy and never overwrites (SPEC §1). Loading: :mod:`teminal.data.base_set`.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from ..progress import progress
from .base_set import ESC50_CLIPS, ESC50_URL, DatasetError, load_esc50


def download(root: str | Path, *, url: str = ESC50_URL, timeout: float = 10.0) -> Path:
    """Download ESC-50 from ``url`` so that ``root/meta/esc50.csv`` and ``root/audio`` exist.

    Returns at once when ``root`` already holds a valid copy. ``url`` may be a ``file://`` URL
    of an archive downloaded by hand. Fails fast (``timeout`` seconds
    for name lookup and connection) with a ``DatasetError`` saying where to unpack a copy
    downloaded by hand. The archive is checked, extracted to a temporary folder beside ``root``
    and moved into place, so ``root`` never holds half an extraction. Never overwrites.
    """
    root = Path(root).expanduser().resolve()
    if has_valid_copy(root):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"{root} exists and is not empty but holds no valid ESC-50 copy; "
                           f"it is never overwritten: remove it or pick another root")
    root.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root.parent, prefix=f".{root.name}.", suffix=".zip")
    os.close(fd)
    try:
        fetch(url, Path(tmp), root=root, timeout=timeout)
        prefix = check_archive(Path(tmp), url=url)
        extract(Path(tmp), prefix, root)
    finally:
        Path(tmp).unlink(missing_ok=True)
    load_esc50(root)
    return root


def has_valid_copy(root: Path) -> bool:
    """True when ``root`` loads cleanly with ``load_esc50`` (all 2000 clips, 50 classes)."""
    if not (root / "meta" / "esc50.csv").is_file():
        return False
    try:
        base = load_esc50(root)
    except DatasetError:
        return False
    return len(base.clips) == ESC50_CLIPS


def manual_hint(root: Path, url: str) -> str:
    return (f"Download {url} by hand, unzip it, and move the contents of its top folder "
            f"(ESC-50-master/) to {root}, so that {root / 'meta' / 'esc50.csv'} and "
            f"{root / 'audio'}/*.wav exist; then call teminal.data.base_set.load_esc50({str(root)!r}).")


def fetch(url: str, dest: Path, *, root: Path, timeout: float) -> None:
    """Stream ``url`` into ``dest``; any network failure → ``DatasetError`` with the manual hint."""
    try:
        resolve_host(url, timeout=timeout)
        req = urllib.request.Request(url, headers={"User-Agent": "teminal"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress(total=total, unit="B", unit_scale=True, desc="ESC-50") as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise DatasetError(f"cannot download ESC-50 from {url} ({exc}). "
                           f"{manual_hint(root, url)}") from exc


def resolve_host(url: str, *, timeout: float) -> None:
    """Name lookup bounded by ``timeout`` (``getaddrinfo`` itself ignores socket timeouts)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return
    if not parts.hostname:
        raise ValueError(f"not a URL with a host: {url!r}")
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(parts.hostname, parts.port or 443)
            result.append(None)
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        raise TimeoutError(f"name lookup of {parts.hostname} took more than {timeout} s")
    if result[0] is not None:
        raise result[0]


def check_archive(path: Path, *, url: str) -> str:
    """Zip integrity, one ``meta/esc50.csv`` and 2000 wavs; returns the folder prefix."""
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"the file downloaded from {url} is not a zip archive")
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise DatasetError(f"the archive from {url} is corrupt (first bad member: {bad})")
        names = zf.namelist()
    csvs = [n for n in names if n.endswith("meta/esc50.csv")]
    if len(csvs) != 1:
        raise DatasetError(f"the archive from {url} holds {len(csvs)} meta/esc50.csv files, not 1")
    prefix = csvs[0][: -len("meta/esc50.csv")]
    wavs = [n for n in names if n.startswith(prefix + "audio/") and n.endswith(".wav")]
    if len(wavs) != ESC50_CLIPS:
        raise DatasetError(f"the archive from {url} holds {len(wavs)} wavs, not {ESC50_CLIPS}")
    return prefix


def extract(archive: Path, prefix: str, root: Path) -> None:
    """Extract into a temporary folder beside ``root``, then move the folder into place."""
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.partial-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        if root.exists():
            root.rmdir()  # empty by the check in download()
        os.replace(staging / prefix, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
