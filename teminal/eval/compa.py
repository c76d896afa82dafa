"""CompA-order (Ghosh et al., ICLR 2024; ``Sreyan88/CompA``): reader and Winoground scoring (SPEC §4).

**Released layout** (``evaluation/benchmark_eval.py`` and the README of ``Sreyan88/CompA``): a
benchmark CSV with a header row and the columns ``pair_file``, ``reversed_pair_file``,
``pair_caption``, ``reversed_pair_caption``; each row is one item — two real recordings whose
events come in opposite orders and their two captions. Audio paths are relative to the
extracted ``CompA_order_files`` folder (``benchmark_eval.py`` prepends it to each name)::

    python -m teminal evaluate ... -p compa.csv=CompA_order.csv -p compa.audio_dir=CompA_order_files

**Scores** (as ``benchmark_eval.py``: its ``f``, ``g``, ``h``): text — both audios prefer their
own caption (chance 25 %); audio — both captions prefer their own audio (25 %); group — all
four (16.7 %). Ties score their expectation under a random tie break
(:func:`teminal.eval.order.winoground_credit`; the reference script counts a tie as wrong).
Items are independent recordings: the 95 % interval (:mod:`teminal.eval.intervals`) resamples
items.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from teminal.audio import read_audio
from teminal.eval.order import unit_rows, winoground_credit
from teminal.eval.intervals import item_interval

COLUMNS = ("pair_file", "reversed_pair_file", "pair_caption", "reversed_pair_caption")
TRIO = {"3A-text": ("text", 1 / 4), "3A-audio": ("audio", 1 / 4), "3A-group": ("group", 1 / 6)}


@dataclass(frozen=True, kw_only=True)
class CompaOrder:
    """The items of a CompA-order benchmark file [N each]."""

    audio: list[Path]  # the pair_file recordings
    audio_rev: list[Path]  # the reversed_pair_file recordings
    caption: list[str]
    caption_rev: list[str]
    missing: list[str]  # audio files named by the CSV and absent (rows dropped; allow_missing)

    def __len__(self) -> int:
        return len(self.audio)


def read_compa_order(csv: str | Path, audio_dir: str | Path, *,
                     allow_missing: bool = False) -> CompaOrder:
    """Read a CompA-order benchmark CSV and check its audio (module doc).

    Errors name the file: a missing CSV or folder, missing columns, empty captions, audio files
    that are absent (unless ``allow_missing``: those rows are dropped and listed in ``missing``).
    """
    csv, folder = Path(csv), Path(audio_dir)
    how = "download CompA-order from the link in the README of github.com/Sreyan88/CompA"
    if not csv.is_file():
        raise FileNotFoundError(f"CompA-order benchmark file not found: {csv} ({how})")
    if not folder.is_dir():
        raise FileNotFoundError(f"CompA-order audio folder not found: {folder} ({how}; the "
                                f"extracted CompA_order_files folder)")
    df = pd.read_csv(csv, header=0, dtype=str, keep_default_na=False)
    absent = [c for c in COLUMNS if c not in df.columns]
    if absent:
        raise ValueError(f"{csv}: missing columns {absent}; a CompA-order file has {list(COLUMNS)}")
    if df.empty:
        raise ValueError(f"{csv}: no items")
    blank = df[list(COLUMNS)].apply(lambda col: col.str.strip() == "").any(axis=1)
    if blank.any():
        raise ValueError(f"{csv}: row {int(np.flatnonzero(blank)[0]) + 2} has an empty field")
    gone = df.pair_file.map(lambda f: not (folder / f).is_file()) | \
        df.reversed_pair_file.map(lambda f: not (folder / f).is_file())
    missing = sorted({f for f in (*df.pair_file[gone], *df.reversed_pair_file[gone])
                      if not (folder / f).is_file()})
    if missing and not allow_missing:
        raise FileNotFoundError(f"{folder}: {len(missing)} audio files named by {csv.name} are "
                                f"missing, e.g. {missing[:3]} (allow_missing drops their rows)")
    df = df[~gone]
    if df.empty:
        raise ValueError(f"{csv}: no item has both of its audio files in {folder}")
    return CompaOrder(audio=[folder / f for f in df.pair_file],
                      audio_rev=[folder / f for f in df.reversed_pair_file],
                      caption=list(df.pair_caption), caption_rev=list(df.reversed_pair_caption),
                      missing=missing)


def score_compa_order(model, data: CompaOrder, *, n_boot: int = 1000, seed: int = 0,
                      tie_tol: float = 1e-6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Winoground trio of ``model`` (``embed_audio``, ``embed_text``, ``rule``) on ``data``:
    ``(table, items)``; table rows ``3A-text``, ``3A-audio``, ``3A-group`` with ``value, chance,
    ci_low, ci_high, n`` in percent, items one row per CompA item."""
    rate = getattr(getattr(model, "rule", None), "sample_rate", None) or 48000  # any-rate models
    audio = []
    for paths in (data.audio, data.audio_rev):
        waves = [read_audio(p, sample_rate=rate) for p in paths]
        audio.append(unit_rows(model.embed_audio(waves, rate)))  # (N, d)
    texts = unit_rows(model.embed_text(data.caption + data.caption_rev))  # (2N, d)
    n = len(data)
    a = np.stack([audio[0].numpy(), audio[1].numpy()], axis=1)  # (N, 2 audios, d)
    t = np.stack([texts[:n].numpy(), texts[n:].numpy()], axis=1)  # (N, 2 captions, d)
    credit = winoground_credit(np.einsum("nad,ncd->nac", a, t), tie_tol=tie_tol)
    items = pd.DataFrame({"pair_file": [p.name for p in data.audio], "caption": data.caption,
                          "text": credit["3A-text"], "audio": credit["3A-audio"],
                          "group": credit["3A-group"], "tied": credit["tied"]})
    rows = []
    for pos, (task, (col, chance)) in enumerate(TRIO.items()):
        score = items[col].to_numpy()
        iv = item_interval(score, np.arange(n), n_boot=n_boot, seed=(seed, pos)).percent()
        rows.append({"task": task, "value": iv.value, "chance": 100 * chance,
                     "ci_low": iv.low, "ci_high": iv.high, "n": n})
    return pd.DataFrame(rows), items
