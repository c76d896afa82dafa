"""Choosing by score, on validation items only (SPEC §4: settings are never chosen by scoring
the test split; selection uses validation pairs).

Every choice made by comparing scores — epochs, batch size, clip draws, learning rates, a
checkpoint, any benchmark sweep — goes through ``choose``. Its scorer receives a
``ValidationItems`` and nothing else, and a ``ValidationItems`` holds only rows of split
``"val"``: it is built from a run's manifests by ``validation_items``, and constructing one
from any other rows is an error. So the test split cannot reach a choice, by construction
rather than by convention. Reporting the chosen setting on the test split afterwards, once, is
``teminal.eval.evaluate``'s business, not this module's.

Where validation lives (``teminal.data.pairs``): stage-B rows of split ``"val"`` are the
``val_fraction`` (10 %) of the non-test unordered class pairs, never in a training row; under
``pairing: folds`` their clips come from the non-test folds. Task 1 reads the singles of split
``"val"`` (the validation fold). ``training.fit.fit`` keeps ``best.pt`` by the loss on the same split.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from teminal.eval import zste
from teminal.data.manifest_files import Manifests
from teminal.eval.evaluate import rows_inputs
from teminal.features import FeatureBank, embed_audio
from teminal.models.base import Backbone

SPLIT = "val"
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class ValidationItems:
    """The validation split of a run: stage-B ``rows`` and Task-1 ``singles``, split "val" only."""

    rows: pd.DataFrame  # stage-B rows (i, j, clip_i, clip_j, …) of split "val"
    singles: pd.DataFrame  # singles (clip, target, …) of split "val"

    def __post_init__(self) -> None:
        for name in ("rows", "singles"):
            split = set(getattr(self, name)["split"])
            if split - {SPLIT}:
                raise ValueError(f"ValidationItems.{name} holds splits {sorted(split - {SPLIT})}: "
                                 f"a choice by score may read only split {SPLIT!r} (SPEC §4)")
        if self.rows.empty:
            raise ValueError(f"no stage-B rows of split {SPLIT!r} to choose on: set "
                             "data.val_fraction > 0 (-p data.val_fraction=0.1)")


def validation_items(manifests: Manifests) -> ValidationItems:
    """The ``"val"`` stage-B rows and singles of ``manifests``."""
    sb, singles = manifests.stage_b, manifests.singles
    return ValidationItems(rows=sb[sb["split"] == SPLIT].reset_index(drop=True),
                           singles=singles[singles["split"] == SPLIT].reset_index(drop=True))


def zste_inputs(backbone: Backbone, bank: FeatureBank, items: ValidationItems,
                class_names: list[str]) -> zste.ZsteInputs:
    """ZSTE inputs (SPEC §4) of the validation items: each row's three composites and, for
    Task 1, the validation singles."""
    if not isinstance(items, ValidationItems):
        raise TypeError(f"items must be ValidationItems (validation_items(manifests)), got "
                        f"{type(items).__name__}")
    if items.singles.empty:
        raise ValueError(f"no singles of split {SPLIT!r} (a validation fold) for Task 1")
    return rows_inputs(items.rows, items.singles, class_names,
                       embed_singles=lambda keys: embed_audio(backbone, bank.singles, keys),
                       embed_pairs=lambda keys: embed_audio(backbone, bank.pairs, keys))


@dataclass(frozen=True)
class Choice(Generic[T]):
    """What ``choose`` picked: the candidate's ``name`` and value, and every validation score."""

    name: str
    value: T
    scores: dict[str, float]


def choose(candidates: Mapping[str, T], *, score: Callable[[T, ValidationItems], float],
           items: ValidationItems, higher_is_better: bool = True) -> Choice[T]:
    """The candidate with the best ``score(candidate, items)`` on the validation ``items``;
    ties go to the first candidate in ``candidates``' order.

    Raises ``TypeError`` when ``items`` is not ``ValidationItems`` (e.g. test rows) and
    ``ValueError`` when there is no candidate or a score is not a finite number.
    """
    if not isinstance(items, ValidationItems):
        raise TypeError(f"choose() scores ValidationItems only (validation_items(manifests)), "
                        f"got {type(items).__name__}: settings are never chosen on test (SPEC §4)")
    if not candidates:
        raise ValueError("choose(): no candidates")
    scores = {}
    for name, value in candidates.items():
        s = score(value, items)
        if not isinstance(s, (int, float, np.floating, np.integer)) or not np.isfinite(s):
            raise ValueError(f"choose(): the score of {name!r} is {s!r}, not a finite number")
        scores[name] = float(s)
    sign = 1.0 if higher_is_better else -1.0
    best = max(scores, key=lambda n: sign * scores[n])  # first of the tied best
    return Choice(name=best, value=candidates[best], scores=scores)
