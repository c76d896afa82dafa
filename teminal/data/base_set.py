"""Base sets: ``BaseSet`` and the loading and validation of any ESC-50-shaped folder (SPEC §1).

A base set is a folder with ``meta/esc50.csv`` (columns
``filename,fold,target,category,esc10,src_file,take``) and ``audio/<filename>``: K classes, any
integer fold labels, any integer targets with one category per target, clips of one length and
rate. The label text of a class is its ``category`` with ``_`` replaced by a space (SPEC §1).

- ``load(root)``: any such folder. Targets are re-indexed to ``0..K-1`` in sorted order of the
  original target, which is kept in the column ``source_target``.
- ``load_esc50(root)``: the real ESC-50 only (2000 clips, 50 classes, folds 1..5); an
  ESC-50-shaped folder that is not ESC-50 is refused with how to load it generically.

Both check the table and every audio file and either refuse a damaged copy with a summary of
what is wrong, or, with ``allow_partial=True``, warn with the same summary and drop the bad rows.
The download (``download``, ``has_valid_copy`` and its steps) is in :mod:`teminal.data.download`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import soundfile as sf

from .. import hints
from ..audio import CancellingChannels, NonFiniteAudio, read_audio
from ..warn import warn

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
ESC50_CLIPS = 2000
ESC50_CLASSES = 50
ESC50_FOLDS = (1, 2, 3, 4, 5)
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
PROBLEMS = ("missing", "empty", "unreadable", "wrong-rate", "wrong-duration", "non-finite",
            "channels-cancel")
_SHOW = 10  # file names listed per problem in an error message


class DatasetError(ValueError):
    """A base set is absent, damaged or not what was expected; the message says what to do."""


@dataclass(frozen=True, kw_only=True, eq=False)
class BaseSet:
    """Labelled clips ``(a_k, y_k)`` of SPEC §1.

    ``clips``: the csv columns plus ``label`` (category, ``_`` → space), ``path`` (absolute) and
    ``source_target`` (the target in the folder's csv; ``target`` is re-indexed to ``0..K-1``).
    ``classes[t]`` is the label text of target ``t``. ``name``: ``"esc50"`` (``load_esc50``),
    ``"world-<hash>"`` for an embedded world (``synth_world``), else the folder's name; a class
    subset appends ``[...]`` (``teminal.data.subsets``).
    """

    root: Path
    clips: pd.DataFrame
    classes: list[str]
    sample_rate: int
    clip_seconds: float
    name: str = "esc50"

    @property
    def folds(self) -> list[int]:
        """The sorted fold labels of the clips."""
        return sorted(int(f) for f in set(self.clips["fold"]))

    @cached_property
    def fingerprint(self) -> str:
        """The base set's CONTENT: sha1 of the clip table (filename, fold, target, label), the
        sample rate and the sha1 of every audio file's bytes in table order (12 hex digits).

        Computed once per ``BaseSet`` (it reads every file: ~1 s per GB). A missing file
        raises ``DatasetError`` naming it.
        """
        h = hashlib.sha1()
        cols = ["filename", "fold", "target", "label"]
        h.update(self.clips[cols].to_csv(index=False, lineterminator="\n").encode())
        h.update(f"sample_rate={self.sample_rate}\n".encode())
        for digest in self.file_hashes.values():
            h.update(digest.encode())
        return h.hexdigest()[:12]

    @cached_property
    def file_hashes(self) -> dict[str, str]:
        """``{filename: sha1 of its bytes}`` in table order (what ``fingerprint`` covers; a run
        records it in ``data.json`` so a changed file can be named)."""
        return {str(f): file_sha1(Path(p)) for f, p in zip(self.clips["filename"], self.clips["path"])}


def changed_files(recorded: dict[str, str], base: BaseSet) -> list[str]:
    """Filenames whose content differs between ``recorded`` (``{filename: sha1}``) and
    ``base``: changed, added or removed."""
    now = base.file_hashes
    return sorted(f for f in set(recorded) | set(now) if recorded.get(f) != now.get(f))


def file_sha1(path: Path) -> str:
    """sha1 of the bytes of ``path``; ``DatasetError`` naming the file when it cannot be read."""
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise DatasetError(f"cannot read {path} to fingerprint the base set ({exc}); the base "
                           f"set's files changed after it was loaded: load it again") from exc
    return h.hexdigest()


# ------------------------------------------------------------------------------------ loading
def load(root: str | Path, *, allow_partial: bool = False) -> BaseSet:
    """Load and validate any ESC-50-shaped base set at ``root`` (SPEC §1; module docstring).

    Raises ``DatasetError`` naming the file and the problem.
    """
    root = Path(root).expanduser().resolve()
    return build_base(root, read_table(root), allow_partial=allow_partial, name=base_name(root))


def load_esc50(root: str | Path, *, allow_partial: bool = False) -> BaseSet:
    """Load the real ESC-50 at ``root``: 2000 clips, 50 classes (targets 0..49), folds 1..5.

    With ``allow_partial`` bad audio files are dropped, but the table itself must still be the
    full ESC-50 table. Any other ESC-50-shaped folder → ``DatasetError`` saying what was found
    and how to load it as a generic base set (``dataset: folder``, ``data_root: <root>``).
    """
    root = Path(root).expanduser().resolve()
    table = read_table(root)
    k, folds = table["target"].nunique(), sorted(set(table["fold"]))
    if (len(table), k, tuple(folds)) != (ESC50_CLIPS, ESC50_CLASSES, ESC50_FOLDS) or \
            sorted(set(table["source_target"])) != list(range(ESC50_CLASSES)):
        raise DatasetError(
            f"{root / 'meta' / 'esc50.csv'} is ESC-50-shaped but not the real ESC-50: found "
            f"{len(table)} clips, {k} classes, folds {folds} (ESC-50 has {ESC50_CLIPS} clips, "
            f"{ESC50_CLASSES} classes, folds 1-5). Load it as a generic base set instead: set "
            f"`dataset: folder` with `data_root: {root}` (e.g. {hints.teminal()} run "
            f"params/default.yaml -p dataset=folder -p data_root={root}), or call "
            f"teminal.data.base_set.load({str(root)!r}).")
    return build_base(root, table, allow_partial=allow_partial, name="esc50")


def build_base(root: Path, table: pd.DataFrame, *, allow_partial: bool, name: str) -> BaseSet:
    """Check every audio file of ``table`` (from ``read_table``) and make the ``BaseSet``."""
    table = table.copy()
    table["label"] = table["category"].str.replace("_", " ", regex=False)
    table["path"] = [str(root / "audio" / f) for f in table["filename"]]
    classes = table.drop_duplicates("target").sort_values("target")["label"].tolist()
    problems, sample_rate, frames = inspect_audio(table)
    bad = {f for files in problems.values() for f in files}
    if bad:
        summary = problem_summary(root, problems, n_rows=len(table))
        if not allow_partial:
            raise DatasetError(
                f"{summary}\nRe-download into a fresh folder (teminal.data.download.download), or "
                "continue without these clips: -p data.allow_partial=true on the command line "
                f"(in Python: load({str(root)!r}, allow_partial=True))."
            )
        warn(f"{summary}\ndata.allow_partial=true: these rows are dropped.", stacklevel=3)
        table = table[~table["filename"].isin(bad)].reset_index(drop=True)
        empty = sorted(set(range(len(classes))) - set(table["target"]))
        if empty:
            raise DatasetError(f"{root}: no usable clip left for classes "
                               f"{[classes[t] for t in empty]}; cannot continue even partially")
    return BaseSet(root=root, clips=table, classes=classes, sample_rate=sample_rate,
                   clip_seconds=frames / sample_rate, name=name)


def read_table(root: Path) -> pd.DataFrame:
    """Read ``root/meta/esc50.csv``, check it, and re-index targets (``source_target`` kept)."""
    csv = root / "meta" / "esc50.csv"
    if not csv.is_file():
        raise DatasetError(
            f"{csv} not found: {root} holds no ESC-50-shaped base set. Get ESC-50 with "
            f"teminal.data.download.download({str(root)!r}) (or unpack {ESC50_URL} by hand so that "
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
    odd = [f for f in table["filename"] if not f.strip() or "|" in f]
    if odd:
        raise DatasetError(f"{csv}: filenames must be non-empty and free of '|' (it separates "
                           f"clips in audio keys): {odd[:_SHOW]}; rename those files and rows")
    check_targets(csv, table)
    ranks = {t: n for n, t in enumerate(sorted(set(table["target"])))}
    return table.assign(source_target=table["target"], target=table["target"].map(ranks))


def check_targets(csv: Path, table: pd.DataFrame) -> None:
    """One category per target, one target per category, no empty category."""
    if (table["category"].str.strip() == "").any():
        raise DatasetError(f"{csv}: empty category in rows "
                           f"{table.index[table['category'].str.strip() == ''].tolist()[:_SHOW]}")
    per_target = table.groupby("target")["category"].nunique()
    if (per_target > 1).any():
        raise DatasetError(f"{csv}: targets with several categories: "
                           f"{per_target[per_target > 1].index.tolist()}")
    per_cat = table.groupby("category")["target"].nunique()
    if (per_cat > 1).any():
        raise DatasetError(f"{csv}: categories with several targets: "
                           f"{per_cat[per_cat > 1].index.tolist()}")


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
                continue
            info[name] = (int(i.samplerate), int(i.frames))
            bad = _sample_problem(path, i)
            if bad:
                problems[bad].append(name)
                info.pop(name)
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


def _sample_problem(path: str, info) -> str | None:
    """``"non-finite"`` / ``"channels-cancel"`` when the samples are unusable, else None.
    Only float files can hold NaN/inf and only multichannel ones can cancel: integer mono
    files (ESC-50) are not read here."""
    if not info.subtype.startswith(("FLOAT", "DOUBLE")) and info.channels < 2:
        return None
    try:
        read_audio(path)
    except NonFiniteAudio:
        return "non-finite"
    except CancellingChannels:
        return "channels-cancel"
    return None


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
    """``world-<hash>`` for an embedded world (``meta/world.json``), else the folder's name."""
    world = root / "meta" / "world.json"
    if world.is_file():
        return f"world-{json.loads(world.read_text())['hash']}"
    return root.name
