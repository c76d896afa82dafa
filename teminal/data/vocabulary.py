"""The manifest vocabulary: the names every module that reads a manifest shares (SPEC §1).

A pair row (tables ``stage_a`` and ``stage_b``, :mod:`teminal.data.pairs`) names classes ``i``,
``j`` and four clips (``CLIP_COLUMNS``: ``clip_i``, ``clip_i2`` of class i, ``clip_j``,
``clip_j2`` of class j). It stands for two or three *composites*, each a ``Composite``: which
clip columns, composed by which relation (``teminal.audio.RELATIONS``), captioned by which
column, shown as which block of a contrastive matrix:

- stage B (``STAGE_B``, blocks f, r, o): ``FORWARD`` ``a_i ⊕ a_j``, ``REVERSED``
  ``a_j ⊕ a_i`` = T(f), ``OVERLAY`` ``(a_i ⊕ a_i') ∧ (a_j ⊕ a_j')``;
- stage A (``STAGE_A``): ``SINGLE`` ``a_i ⊕ a_i'`` (one sound as long as a double) and
  ``DOUBLE`` ``a_i ⊕ a_j`` (the forward audio, captioned as two sounds);
- T-CLAP (``TCLAP``): forward and overlay; its swapped caption is the reversed one's.

``Composite.keys(rows)`` gives the audio keys (``teminal.data.clips.audio_key``) of manifest
rows, ``interleaved_keys`` all of a row's composites row by row. Caption columns:
``Composite.caption_column(source)`` (``CAPTION_SOURCES``), ``CAPTION_COLUMNS`` per table; the
table schemas ``*_COLUMNS`` are built from them. The unordered class pair of a row:
``unordered_pair``, ``unordered_pairs`` (a set), ``unordered_pair_ids`` (integer ids).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from teminal.data.clips import audio_key

CLIP_COLUMNS = ("clip_i", "clip_i2", "clip_j", "clip_j2")
"""Manifest columns naming a pair row's clips: the first and second clip of class i and j."""
CAPTION_SOURCES = ("paper", "paraphrase")
"""Stage-B caption columns a stage trains on: the paper's templates, or one draw from the
training paraphrase family (SPEC §1)."""


@dataclass(frozen=True, kw_only=True)
class Composite:
    """One audio sample a pair row stands for, with its caption columns (SPEC §1)."""

    name: str  # what it is, in words: panel titles ("forward")
    notation: str  # the audio in SPEC §1 notation ("a_i ⊕ a_j")
    block: str  # its block label in a contrastive matrix ("f")
    relation: str  # teminal.audio relation composing it ("seq")
    clips: tuple[str, ...]  # manifest clip columns, in audio_key order
    caption: str  # manifest column of its caption (the paper's templates)
    paraphrase: str | None = None  # manifest column of its training paraphrase (stage B)
    direct: str | None = None  # binding (issue 23): a caption naming the first event first
    mirror: str | None = None  # binding: one naming the second event first (same audio)

    def keys(self, rows: pd.DataFrame) -> list[str]:
        """[P] audio key of this composite of each manifest row."""
        check_clip_columns(rows)
        columns = [rows[c].astype(str).tolist() for c in self.clips]
        return [audio_key(self.relation, *clips) for clips in zip(*columns)]

    def caption_column(self, source: str) -> str:
        """The caption column of ``source`` in ``CAPTION_SOURCES`` ("paper" | "paraphrase")."""
        if source not in CAPTION_SOURCES:
            raise ValueError(f"captions must be one of {CAPTION_SOURCES}, got {source!r}")
        column = self.caption if source == CAPTION_SOURCES[0] else self.paraphrase
        if column is None:
            raise ValueError(f"the {self.name} composite has no {source} captions")
        return column


FORWARD = Composite(name="forward", notation="a_i ⊕ a_j", block="f", relation="seq",
                    clips=("clip_i", "clip_j"), caption="caption_f", paraphrase="para_f",
                    direct="direct_f", mirror="mirror_f")
REVERSED = Composite(name="reversed", notation="a_j ⊕ a_i", block="r", relation="seq",
                     clips=("clip_j", "clip_i"), caption="caption_r", paraphrase="para_r",
                     direct="direct_r", mirror="mirror_r")
OVERLAY = Composite(name="overlay", notation="(a_i ⊕ a_i') ∧ (a_j ⊕ a_j')", block="o",
                    relation="mix", clips=("clip_i", "clip_i2", "clip_j", "clip_j2"),
                    caption="caption_o", paraphrase="para_o")
SINGLE = Composite(name="single", notation="a_i ⊕ a_i'", block="single", relation="span",
                   clips=("clip_i", "clip_i2"), caption="caption_single")
DOUBLE = Composite(name="double", notation="a_i ⊕ a_j", block="double", relation="seq",
                   clips=("clip_i", "clip_j"), caption="caption_double")

STAGE_B = (FORWARD, REVERSED, OVERLAY)
"""A stage-B row's composites in block order f, r, o (SPEC §1, §3 stage B)."""
STAGE_A = (SINGLE, DOUBLE)
"""A stage-A row's composites in block order (SPEC §3 stage A)."""
TCLAP = (FORWARD, OVERLAY)
"""The T-CLAP baseline's audio blocks on stage-B rows (SPEC §3); ``REVERSED``'s caption is its
swapped caption."""

SINGLE_CAPTION = "caption"
"""The singles table's caption column (the class prompt)."""
SINGLES_COLUMNS = ["clip", "target", "label", SINGLE_CAPTION, "split"]
PAIR_COLUMNS = ["pair", "i", "j", "draw", "clip_i", "clip_j", "clip_i2", "clip_j2", "label_i",
                "label_j"]  # clip_i2 / clip_j2: second clips of class i / j (SPEC §1)
STAGE_A_COLUMNS = PAIR_COLUMNS + [c.caption for c in STAGE_A] + ["split"]
BINDING_COLUMNS = tuple(getattr(c, order) for order in ("direct", "mirror")
                        for c in STAGE_B if getattr(c, order))
"""``direct_f``, ``direct_r``, ``mirror_f``, ``mirror_r``: one direct- and one mirror-worded
sequence caption per stage-B row, each with its temporal inversion (``stage_b.mirror_share``)."""
STAGE_B_COLUMNS = (PAIR_COLUMNS + ["phrasing"] + [c.caption for c in STAGE_B]
                   + [c.paraphrase for c in STAGE_B] + list(BINDING_COLUMNS) + ["split"])
CAPTION_COLUMNS = {
    "singles": (SINGLE_CAPTION,),
    "stage_a": tuple(c.caption for c in STAGE_A),
    "stage_b": (tuple(c.caption for c in STAGE_B) + tuple(c.paraphrase for c in STAGE_B)
                + BINDING_COLUMNS),
}
"""Caption columns of each manifest table (``para_*`` are read when the table has them)."""


def check_clip_columns(rows: pd.DataFrame) -> None:
    """``ValueError`` when pair rows lack a column of ``CLIP_COLUMNS`` (old manifests)."""
    missing = [c for c in CLIP_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"pair rows lack columns {missing}: manifests written before the second "
                         "clips (clip_i2, clip_j2) existed; rebuild them (00_data_synthesis)")


def interleaved_keys(rows: pd.DataFrame, composites: tuple[Composite, ...]) -> list[str]:
    """[P · len(composites)] every composite's key, row by row: ``[f_0, r_0, o_0, f_1, …]``."""
    per_composite = [c.keys(rows) for c in composites]  # len(composites) lists [P]
    return [key for row in zip(*per_composite) for key in row]


def unordered_pair(i: int, j: int) -> tuple[int, int]:
    """The unordered class pair ``{i, j}`` as ``(min, max)``: rows (i, j) and (j, i) share it."""
    return (min(i, j), max(i, j))


def unordered_pairs(i: Iterable[int], j: Iterable[int]) -> set[tuple[int, int]]:
    """The distinct unordered class pairs of rows with classes ``i`` [P] and ``j`` [P]."""
    return {unordered_pair(a, b) for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist())}


def unordered_pair_ids(i: np.ndarray, j: np.ndarray, *, n_classes: int) -> np.ndarray:
    """[P] one integer per unordered class pair, ``min(i, j) · K + max(i, j)`` (equal for
    (i, j) and (j, i); ZSTE clusters items by it, SPEC §4)."""
    return np.minimum(i, j) * n_classes + np.maximum(i, j)
