"""Per-item scores across training seeds → the figures and differences ``report`` prints
(SPEC §4 "Intervals"). Explicit arguments only; the interval arithmetic is
:mod:`teminal.eval.intervals` (``item_groups``, ``item_interval``, ``seed_interval``,
``paired_difference``); this module only lines items up across seeds and models.

- ``item_table``: an evaluation's per-item frames (``ZsteResult.items`` by set) as one compact
  frame — set, task, the item's identity (row, audio, classes, key, cluster, phrasing) and its
  score in [0, 1] — stored beside every evaluation (``evaluations/<tag>.items.parquet``, and in
  MLflow under ``items/``).
- ``figure``: one figure of one model over its seeds: the across-seed mean, a 95 % interval
  covering seed and evaluation sampling (``seed_interval``), the seed range, and whether the
  seeds *disagree*: their range is wider than the evaluation margin of error (the half-width of
  the evaluation-only interval of the seed mean) — one seed would not carry that reading.
- ``paired``: "X beats Y" on the same items and the same seeds (``paired_difference``); a model
  no seed trains (the pretrained baseline) is paired with every seed of the other.
- ``independent_difference``: two figures on *different* items (seen vs held-out combinations)
  whose evaluation errors are independent: the difference with the MOVER interval (Zou & Donner
  2008), built from each figure's own interval. The two share their seeds, and a shared seed
  effect cancels in a difference, so treating them as independent errs on the wide side.

Intervals here are in percent; their cells (``figure_cell``, ``difference_cell``) are
formatted by :mod:`teminal.eval.tables`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from teminal.eval import intervals
from teminal.integrity import write_atomic
from teminal.eval.intervals import Interval

ID_COLUMNS = ("row", "audio", "i", "j", "k", "label", "key", "cluster", "phrasing")
"""The identity of an item: equal across seeds when the evaluation set is the same."""


def item_table(items: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """``{set: {task: per-item frame}}`` → one frame ``set, task, <ID_COLUMNS>, score``."""
    frames = []
    for set_name, tasks in items.items():
        for task, df in tasks.items():
            keep = [c for c in (*ID_COLUMNS, "score") if c in df.columns]
            frames.append(df[keep].assign(set=set_name, task=task))
    if not frames:
        raise ValueError("item_table: no per-item scores to store")
    out = pd.concat(frames, ignore_index=True)
    return out[["set", "task", *[c for c in out.columns if c not in ("set", "task")]]]


def write_items(table: pd.DataFrame, path: Path) -> None:
    """Write ``item_table`` output as parquet, atomically (``integrity.write_atomic``; no
    trailer, which parquet readers would refuse: the evaluation record carries its sha256)."""
    write_atomic(path, lambda tmp: table.to_parquet(tmp, index=False))


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (the per-item parquet's, kept in its evaluation record)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _items(table: pd.DataFrame, set_name: str, task: str) -> pd.DataFrame:
    """The items of one task: the columns it uses (class ids back to integers)."""
    part = table[(table["set"] == set_name) & (table["task"] == task)]
    part = part.dropna(axis=1, how="all").reset_index(drop=True)
    ints = [c for c in ("row", "i", "j", "k", "label") if c in part.columns]
    return part.astype({c: np.int64 for c in ints})


def _identity(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in ID_COLUMNS if c in frame.columns]]


def aligned(tables: list[pd.DataFrame], set_name: str,
            task: str) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The scores [N] of ``task`` on ``set_name`` in each of ``tables`` (one per seed or
    model) and the items they share. ValueError when the items differ (another evaluation set:
    a paired figure would be meaningless)."""
    parts = [_items(t, set_name, task) for t in tables]
    first = _identity(parts[0])
    for n, part in enumerate(parts[1:], 1):
        if not _identity(part).equals(first):
            raise ValueError(f"{set_name}/{task}: evaluation {n} has other items than "
                             "evaluation 0; paired figures need the same items")
    return [p["score"].to_numpy(dtype=np.float64) for p in parts], parts[0]


@dataclass(frozen=True)
class Figure:
    """One figure over seeds (percent): ``interval`` (mean, 95 % over seeds and items, seed
    range) and ``margin``, the half-width of the evaluation-only interval of the seed mean."""

    interval: Interval
    margin: float

    @property
    def seed_range(self) -> float:
        iv = self.interval
        return 0.0 if iv.seed_min is None else iv.seed_max - iv.seed_min

    @property
    def disagree(self) -> bool:
        """Seeds spread wider than the evaluation margin of error."""
        return self.interval.n_seeds > 1 and self.seed_range > self.margin


def figure(tables: list[pd.DataFrame], set_name: str, task: str, *, n_boot: int,
           seed: int) -> Figure:
    """The figure of ``task`` on ``set_name`` from one item table per training seed."""
    scores, items = aligned(tables, set_name, task)
    groups = intervals.item_groups(items)
    iv = intervals.seed_interval(scores, groups, n_boot=n_boot, seed=seed)
    mean = np.mean(np.stack(scores), axis=0)  # [N] seed mean per item
    alone = intervals.item_interval(mean, groups, n_boot=n_boot, seed=seed)
    return Figure(interval=iv.percent(), margin=50 * (alone.high - alone.low))


def paired(a: dict, b: dict, set_name: str, task: str, *, n_boot: int, seed: int) -> Interval:
    """The paired difference a − b (percent) of ``task`` on ``set_name``. ``a`` and ``b`` map a
    training seed (None: not trained) to an item table; seeds are paired by value, a seedless
    side is paired with every seed of the other."""
    seeds = _paired_seeds(a, b)
    pick = lambda d, s: d[None] if None in d else d[s]  # noqa: E731
    scores, items = aligned([pick(a, s) for s in seeds] + [pick(b, s) for s in seeds],
                            set_name, task)
    k = len(seeds)
    iv = intervals.paired_difference(scores[:k], scores[k:], intervals.item_groups(items),
                                     n_boot=n_boot, seed=seed)
    return iv.percent()


def _paired_seeds(a: dict, b: dict) -> list:
    if None in a and None in b:
        return [None]
    if None in a or None in b:
        return sorted(s for s in (b if None in a else a) if s is not None)
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"no common training seed to pair: {sorted(a)} vs {sorted(b)}")
    return common


def independent_difference(a: Interval, b: Interval) -> Interval:
    """a − b of two figures on different items (module docstring: MOVER)."""
    lo = (a.value - a.low) ** 2 + (b.high - b.value) ** 2
    hi = (a.high - a.value) ** 2 + (b.value - b.low) ** 2
    d = a.value - b.value
    return Interval(value=d, low=d - float(np.sqrt(lo)), high=d + float(np.sqrt(hi)),
                    n_seeds=min(a.n_seeds, b.n_seeds))
