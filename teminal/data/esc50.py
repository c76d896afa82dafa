"""ESC-50 (and any ESC-50-shaped folder): download, validation and loading (SPEC §1).

A base set is a folder with ``meta/esc50.csv`` (columns
``filename,fold,target,category,esc10,src_file,take``) and ``audio/<filename>``. The label text
of a class is its ``category`` with ``_`` replaced by a space (SPEC §1). ``load`` checks the table
and every audio file and either refuses a damaged copy with a summary of what is wrong, or, with
``allow_partial=True``, warns with the same summary and drops the bad rows.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
ESC50_CLIPS = 2000
ESC50_CLASSES = 50
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
PROBLEMS = ("missing", "empty", "unreadable", "wrong-rate", "wrong-duration")
_SHOW = 10  # file names listed per problem in an error message


class DatasetError(ValueError):
    """A base set is absent, damaged or not what was expected; the message says what to do."""


@dataclass(frozen=True, kw_only=True, eq=False)
class BaseSet:
    """Labelled clips ``(a_k, y_k)`` of SPEC §1.

    ``clips``: the csv columns plus ``label`` (category, ``_`` → space) and ``path`` (absolute).
    ``classes[t]`` is the label text of target ``t``. ``name`` is ``"esc50"`` for a downloaded
    copy and ``"world-<hash>"`` for an embedded world (``synth_world``).
    """

    root: Path
    clips: pd.DataFrame
    classes: list[str]
    sample_rate: int
    clip_seconds: float
    name: str = "esc50"

    @property
    def fingerprint(self) -> str:
        """sha1 of the clip table (filename, fold, target, label) and the sample rate."""
        cols = ["filename", "fold", "target", "label"]
        blob = self.clips[cols].to_csv(index=False, lineterminator="\n") + str(self.sample_rate)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------ loading
def load(
    root: str | Path,
    *,
    expect_classes: int | None = None,
    n_folds: int = 5,
    allow_partial: bool = False,
) -> BaseSet:
    """Load and validate the base set at ``root`` (SPEC §1); see the module docstring.

    ``expect_classes``: required class count (50 for ESC-50). ``n_folds``: folds ``1..n_folds``
    must all be present. Raises ``DatasetError`` naming the file and the problem.
    """
    root = Path(root).expanduser().resolve()
    table = read_table(root, expect_classes=expect_classes, n_folds=n_folds)
    table["label"] = table["category"].str.replace("_", " ", regex=False)
    table["path"] = [str(root / "audio" / f) for f in table["filename"]]
    classes = table.drop_duplicates("target").sort_values("target")["label"].tolist()
    problems, sample_rate, frames = inspect_audio(table)
    bad = {f for files in problems.values() for f in files}
    if bad:
        summary = problem_summary(root, problems, n_rows=len(table))
        if not allow_partial:
            raise DatasetError(
                f"{summary}\nRe-download into a fresh folder (teminal.data.esc50.download), or "
                f"continue without these clips with load({str(root)!r}, allow_partial=True)."
            )
        warnings.warn(f"{summary}\nallow_partial=True: these rows are dropped.", stacklevel=2)
        table = table[~table["filename"].isin(bad)].reset_index(drop=True)
        empty = sorted(set(range(len(classes))) - set(table["target"]))
        if empty:
            raise DatasetError(f"{root}: no usable clip left for classes "
                               f"{[classes[t] for t in empty]}; cannot continue even partially")
    return BaseSet(root=root, clips=table, classes=classes, sample_rate=sample_rate,
                   clip_seconds=frames / sample_rate, name=base_name(root))


def read_table(root: Path, *, expect_classes: int | None, n_folds: int) -> pd.DataFrame:
    """Read ``root/meta/esc50.csv`` and check columns, targets, categories and folds."""
    csv = root / "meta" / "esc50.csv"
    if not csv.is_file():
        raise DatasetError(
            f"{csv} not found: {root} holds no ESC-50-shaped base set. Get ESC-50 with "
            f"teminal.data.esc50.download({str(root)!r}) (or unpack {ESC50_URL} by hand so that "
            f"{csv} and {root / 'audio'}/*.wav exist), or make an embedded world with "
            f"teminal.data.synth_world.make_world."
        )
    table = pd.read_csv(csv, keep_default_na=False, dtype={"filename": str, "category": str})
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{csv}: missing columns {missing}; expected {list(COLUMNS)}, "
                           f"found {list(table.columns)}")
    if table.empty:
        raise DatasetError(f"{csv} has no rows")
    for col in ("fold", "target"):
        if not pd.api.types.is_integer_dtype(table[col]):
            raise DatasetError(f"{csv}: column {col!r} must hold integers")
    dupes = table["filename"][table["filename"].duplicated()].tolist()
    if dupes:
        raise DatasetError(f"{csv}: filenames listed twice: {dupes[:_SHOW]}")
    check_targets(csv, table, expect_classes)
    folds = set(table["fold"])
    if folds != set(range(1, n_folds + 1)):
        raise DatasetError(f"{csv}: folds must be exactly 1..{n_folds}, found {sorted(folds)}")
    return table


def check_targets(csv: Path, table: pd.DataFrame, expect_classes: int | None) -> None:
    """Targets contiguous ``0..K-1``, one category per target and one target per category."""
    targets = sorted(set(table["target"]))
    k = len(targets)
    if targets != list(range(k)):
        raise DatasetError(f"{csv}: targets must be contiguous 0..{k - 1}, found {targets[:20]}")
    per_target = table.groupby("target")["category"].nunique()
    if (per_target > 1).any():
        raise DatasetError(f"{csv}: targets with several categories: "
                           f"{per_target[per_target > 1].index.tolist()}")
    per_cat = table.groupby("category")["target"].nunique()
    if (per_cat > 1).any():
        raise DatasetError(f"{csv}: categories with several targets: "
                           f"{per_cat[per_cat > 1].index.tolist()}")
    if expect_classes is not None and k != expect_classes:
        raise DatasetError(f"{csv}: {k} classes, expected {expect_classes} (expect_classes)")


def inspect_audio(table: pd.DataFrame) -> tuple[dict[str, list[str]], int, int]:
    """Check every file; return ``(problems by kind, sample rate, frames per clip)``.

    The reference rate and length are the most common ones; a file off the rate, or off the
    length by more than 1 ms, is a problem.
    """
    problems: dict[str, list[str]] = {p: [] for p in PROBLEMS}
    info: dict[str, tuple[int, int]] = {}
    for name, path in zip(table["filename"], table["path"]):
        p = Path(path)
        if not p.is_file():
            problems["missing"].append(name)
        elif p.stat().st_size == 0:
            problems["empty"].append(name)
        else:
            try:
                i = sf.info(path)
            except Exception:  # soundfile raises LibsndfileError / RuntimeError
                problems["unreadable"].append(name)
                continue
            if i.frames == 0:
                problems["empty"].append(name)
            else:
                info[name] = (int(i.samplerate), int(i.frames))
    if not info:
        raise DatasetError(f"no readable audio file under {Path(table['path'].iloc[0]).parent}")
    rate = pd.Series([r for r, _ in info.values()]).mode().iloc[0]
    frames = pd.Series([n for r, n in info.values() if r == rate]).mode().iloc[0]
    for name, (r, n) in info.items():
        if r != rate:
            problems["wrong-rate"].append(name)
        elif abs(n - frames) > rate / 1000:
            problems["wrong-duration"].append(name)
    return problems, int(rate), int(frames)


def problem_summary(root: Path, problems: dict[str, list[str]], *, n_rows: int) -> str:
    """Counts and the first few names of the bad files, by kind of problem."""
    n_bad = sum(len(v) for v in problems.values())
    lines = [f"base set at {root} is damaged: {n_bad} of {n_rows} clips are unusable"]
    for kind, files in problems.items():
        if files:
            more = f" (+{len(files) - _SHOW} more)" if len(files) > _SHOW else ""
            lines.append(f"  {kind} ({len(files)}): {', '.join(files[:_SHOW])}{more}")
    return "\n".join(lines)


def base_name(root: Path) -> str:
    """``world-<hash>`` for an embedded world (``meta/world.json``), else ``esc50``."""
    world = root / "meta" / "world.json"
    if world.is_file():
        return f"world-{json.loads(world.read_text())['hash']}"
    return "esc50"


# ---------------------------------------------------------------------------------- download
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
    load(root, expect_classes=ESC50_CLASSES)
    return root


def has_valid_copy(root: Path) -> bool:
    """True when ``root`` loads cleanly with ESC-50's 2000 clips and 50 classes."""
    if not (root / "meta" / "esc50.csv").is_file():
        return False
    try:
        base = load(root, expect_classes=ESC50_CLASSES)
    except DatasetError:
        return False
    return len(base.clips) == ESC50_CLIPS


def manual_hint(root: Path, url: str) -> str:
    return (f"Download {url} by hand, unzip it, and move the contents of its top folder "
            f"(ESC-50-master/) to {root}, so that {root / 'meta' / 'esc50.csv'} and "
            f"{root / 'audio'}/*.wav exist; then call teminal.data.esc50.load({str(root)!r}).")


def fetch(url: str, dest: Path, *, root: Path, timeout: float) -> None:
    """Stream ``url`` into ``dest``; any network failure → ``DatasetError`` with the manual hint."""
    try:
        resolve_host(url, timeout=timeout)
        req = urllib.request.Request(url, headers={"User-Agent": "teminal"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="ESC-50") as bar:
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
