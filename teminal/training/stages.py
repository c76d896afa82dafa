"""The training stages as ``StageTask``s for ``training.fit.fit`` (SPEC §3).

Each task turns a batch of manifest rows into the audio and text rows of its contrastive
matrix, runs only the heads on cached trunk features (``features.FeatureBank``; every clip a
task reads has the length of a double, SPEC §1), and calls one loss of ``teminal.losses``:

- ``StageATask`` — TeminAL A: N looped singles and N doubles, 2N × 2N (eq. 8–9, 22–26);
- ``StageBTask`` — TeminAL B: forward, reversed and overlay, 3N × 3N (eq. 3–7);
- ``TclapTask``  — the T-CLAP baseline: forward and overlay, 2N × 2N, plus its temporal term;
- ``Replay``     — optional ``λ_replay ·`` InfoNCE on single clips with their class captions.

Every task has ``n_train``, ``n_val`` and ``loss(rows, split=)`` (``training.fit.StageTask``),
``generators()`` (its random generators, saved with ``last.pt`` so a resumed run is exact),
``log_weights(rows, split=)`` (the weights its loss uses) and ``similarity(rows, split=)``
(one batch's matrix, for the similarity explorer).
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from teminal import losses
from teminal.data.clips import audio_key
from teminal.data.vocabulary import (FORWARD, REVERSED, SINGLE_CAPTION, STAGE_A, STAGE_B, TCLAP,
                                      Composite)
from teminal.features import FeatureBank
from teminal.models.base import Backbone

SPLITS = ("train", "val")


def _split(df: pd.DataFrame, split: str) -> pd.DataFrame:
    return df[df["split"] == split].reset_index(drop=True)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        raise ValueError(f"the manifest has no column {name!r} (it has {list(df.columns)}): "
                         "rebuild the manifests with the data notebook (para_* columns need "
                         "the current data layer), or train with captions='paper'")
    return df[name]


def _classes(df: pd.DataFrame, name: str) -> Tensor:
    return torch.tensor(_column(df, name).to_numpy(), dtype=torch.long)  # (M,)


@dataclass
class Replay:
    """Symmetric InfoNCE on a random batch of training singles (SPEC §3 "Replay")."""

    weight: float
    rows: Tensor  # [M] single-table rows of the training singles
    text_rows: Tensor  # [M] their class captions
    targets: Tensor  # [M]
    batch_size: int
    generator: torch.Generator

    @classmethod
    def build(cls, *, bank: FeatureBank, singles: pd.DataFrame, weight: float, batch_size: int,
              seed: int) -> "Replay | None":
        """None when ``weight`` is 0 or fewer than two training singles exist."""
        train = _split(singles, "train")
        if weight <= 0 or len(train) < 2:
            return None
        return cls(weight=weight,
                   rows=bank.singles.rows(audio_key("single", c) for c in train["clip"]),
                   text_rows=bank.text.rows(train[SINGLE_CAPTION]),
                   targets=torch.tensor(train["target"].to_numpy()),
                   batch_size=batch_size, generator=torch.Generator().manual_seed(seed))

    def loss(self, backbone: Backbone, bank: FeatureBank) -> Tensor:
        pick = torch.randperm(len(self.rows), generator=self.generator)[: self.batch_size]
        z_a = backbone.audio_head(bank.singles.take(self.rows[pick]))  # (B, d)
        z_c = backbone.text_head(bank.text.take(self.text_rows[pick]))  # (B, d)
        return self.weight * losses.info_nce(z_a, z_c, backbone.logit_scale,
                                             events=self.targets[pick].to(z_a.device))


@dataclass(frozen=True)
class BatchSimilarity:
    """One batch's matrix: audio rows × text columns, block by block, and its weights."""

    sim: np.ndarray  # [R, R] logits s · cos
    log_weights: np.ndarray  # [R, R] log w of the loss (-inf: removed)
    block_labels: tuple[str, ...]  # e.g. ("f", "r", "o")
    captions: list[str]  # [R] caption of each row's positive (= of each column)

    def as_dict(self) -> dict:
        """The explorer widget's view: sim, log_weights, block_labels, row/col captions."""
        return {"sim": self.sim, "log_weights": self.log_weights,
                "block_labels": list(self.block_labels), "row_captions": self.captions,
                "col_captions": self.captions}


@dataclass(frozen=True)
class _Blocks:
    """Per split: classes [M] and, per block, feature rows [M] of each manifest row."""

    i: Tensor
    j: Tensor
    audio: tuple[Tensor, ...]  # rows of bank.pairs
    text: tuple[Tensor, ...]  # rows of bank.text


class _PairTask(abc.ABC):
    """Shared bookkeeping of the pair stages: splits, feature rows per block, replay, views.
    A task's audio blocks are its ``composites`` (:mod:`teminal.data.vocabulary`), in order."""

    composites: tuple[Composite, ...] = ()

    def __init__(self, *, backbone: Backbone, bank: FeatureBank, manifest: pd.DataFrame,
                 n_classes: int, replay: Replay | None = None) -> None:
        self.backbone, self.bank, self.n_classes, self.replay = backbone, bank, n_classes, replay
        self.frames = {s: _split(manifest, s) for s in SPLITS}
        self.n_train, self.n_val = len(self.frames["train"]), len(self.frames["val"])
        self.blocks = {s: self._blocks(df) for s, df in self.frames.items()}

    @property
    def labels(self) -> tuple[str, ...]:
        """Block labels of the contrastive matrix, e.g. ("f", "r", "o")."""
        return tuple(c.block for c in self.composites)

    @abc.abstractmethod
    def text_columns(self) -> tuple[str, ...]:
        """One caption column per text block."""

    def _blocks(self, df: pd.DataFrame) -> _Blocks:
        text = tuple(self.bank.text.rows(_column(df, c).astype(str)) for c in self.text_columns())
        return _Blocks(i=_classes(df, "i"), j=_classes(df, "j"),
                       audio=tuple(self.bank.pairs.rows(c.keys(df)) for c in self.composites),
                       text=text)

    def classes(self, rows: Tensor, *, split: str) -> tuple[Tensor, Tensor]:
        """i [N], j [N] of the batch ``rows`` [N] of ``split``."""
        b = self.blocks[split]
        return b.i[rows], b.j[rows]

    def text_rows(self, rows: Tensor, *, split: str) -> tuple[Tensor, ...]:
        """Per text block, the bank rows [N] of the batch ``rows`` [N]."""
        return tuple(block[rows] for block in self.blocks[split].text)

    def embed(self, rows: Tensor, *, split: str) -> tuple[Tensor, Tensor]:
        """z_a, z_c [bN, d]: the b blocks of the batch ``rows`` [N], block after block."""
        b, bb = self.blocks[split], self.backbone
        a_rows = torch.cat([block[rows] for block in b.audio])  # (bN,)
        t_rows = torch.cat(self.text_rows(rows, split=split))  # (bN,)
        return bb.audio_head(self.bank.pairs.take(a_rows)), bb.text_head(self.bank.text.take(t_rows))

    def generators(self) -> list[torch.Generator]:
        return [] if self.replay is None else [self.replay.generator]

    def loss(self, rows: Tensor, *, split: str) -> Tensor:
        """Mean loss of the batch ``rows`` [N] of ``split``, plus replay when training."""
        loss = self._loss(rows, split=split)
        if self.replay is None or split != "train":
            return loss
        return loss + self.replay.loss(self.backbone, self.bank)

    @abc.abstractmethod
    def _loss(self, rows: Tensor, *, split: str) -> Tensor:
        """The stage's loss of the batch ``rows`` [N], without replay."""

    @abc.abstractmethod
    def log_weights(self, rows: Tensor, *, split: str) -> Tensor:
        """[bN, bN] log w of the loss on the batch ``rows`` [N]."""

    @torch.no_grad()
    def similarity(self, rows: Tensor, *, split: str) -> BatchSimilarity:
        """The batch's contrastive matrix and weights (for the similarity explorer)."""
        z_a, z_c = self.embed(rows, split=split)
        sim = losses.logits(z_a, z_c, self.backbone.logit_scale)  # (bN, bN)
        df = self.frames[split].iloc[rows.numpy()]
        captions = [str(t) for col in self.text_columns() for t in df[col]]
        return BatchSimilarity(sim=sim.float().cpu().numpy(),
                               log_weights=self.log_weights(rows, split=split).cpu().numpy(),
                               block_labels=self.labels, captions=captions)


class StageATask(_PairTask):
    """TeminAL A: tell one sound from two (SPEC §3 stage A). The single is the ``loop`` clip
    ``span|clip_i|clip_i2`` (as long as a double, SPEC §1), the double ``seq|clip_i|clip_j``."""

    composites = STAGE_A

    def __init__(self, *, weights: losses.StageAWeights, **kw) -> None:
        self.weights = weights
        super().__init__(**kw)

    def text_columns(self):
        return tuple(c.caption for c in self.composites)

    def log_weights(self, rows, *, split):
        i, j = self.classes(rows, split=split)
        return losses.stage_a_log_weights(i, j, self.weights)

    def _loss(self, rows, *, split):
        z_a, z_c = self.embed(rows, split=split)  # (2N, d) each
        i, j = (t.to(z_a.device) for t in self.classes(rows, split=split))
        return losses.stage_a_loss(z_a, z_c, self.backbone.logit_scale, i=i, j=j,
                                   n_classes=self.n_classes, weights=self.weights)


class StageBTask(_PairTask):
    """TeminAL B: before / after / while (SPEC §3 stage B), weights by meaning or by block,
    captions of the paper or of the training paraphrase family.

    ``mirror_share`` (issue 23; SPEC §1 "mirror-worded"): when set, the sequential blocks f and
    r take their captions from ``mirror_f/r`` (the second event named first) for that share of
    the samples and from ``direct_f/r`` otherwise, drawn anew at every training step from the
    task's own generator (seeded by ``seed``, saved with ``last.pt``); validation rows keep one
    seeded draw, so the validation loss compares across epochs. The r caption is always T of
    the f caption (same wording, events swapped), so word order alone never predicts audio
    order. The overlay block keeps the ``captions`` column."""

    composites = STAGE_B

    def __init__(self, *, weights: losses.StageBWeights, weights_by: str = "meaning",
                 captions: str = "paper", mirror_share: float | None = None, seed: int = 0,
                 **kw) -> None:
        if weights_by not in losses.WEIGHTS_BY:
            raise ValueError(f"weights_by must be one of {losses.WEIGHTS_BY}, got {weights_by!r}")
        if mirror_share is not None and not 0.0 <= mirror_share <= 1.0:
            raise ValueError(f"mirror_share must lie in [0, 1] (-p stage_b.mirror_share), got "
                             f"{mirror_share!r}")
        self.weights, self.weights_by, self.mirror_share = weights, weights_by, mirror_share
        self.caption_columns = tuple(c.caption_column(captions) for c in self.composites)
        if mirror_share is not None:  # f, r from the direct-worded draw; o unchanged
            self.caption_columns = (FORWARD.direct, REVERSED.direct, self.caption_columns[2])
        self.generator = torch.Generator().manual_seed(seed)
        super().__init__(**kw)
        self.mirror = {}
        if mirror_share is not None:
            val = torch.Generator().manual_seed(seed + 1)
            for split, df in self.frames.items():
                f, r = (self.bank.text.rows(_column(df, c).astype(str))
                        for c in (FORWARD.mirror, REVERSED.mirror))
                fixed = torch.rand(len(df), generator=val) < mirror_share  # (M,) val draw
                self.mirror[split] = (f, r, fixed)

    def generators(self) -> list[torch.Generator]:
        return super().generators() + ([self.generator] if self.mirror_share is not None else [])

    def mirrored(self, rows: Tensor, *, split: str) -> Tensor:
        """[N] bool: which samples of the batch ``rows`` take mirror-worded captions."""
        if split == "train":
            return torch.rand(len(rows), generator=self.generator) < self.mirror_share  # (N,)
        return self.mirror[split][2][rows]

    def text_rows(self, rows: Tensor, *, split: str) -> tuple[Tensor, ...]:
        f, r, o = super().text_rows(rows, split=split)
        if self.mirror_share is None:
            return f, r, o
        mf, mr, _ = self.mirror[split]
        use = self.mirrored(rows, split=split)  # (N,)
        return torch.where(use, mf[rows], f), torch.where(use, mr[rows], r), o

    def text_columns(self):
        return self.caption_columns

    def log_weights(self, rows, *, split):
        i, j = self.classes(rows, split=split)
        return losses.stage_b_log_weights(i, j, self.weights, weights_by=self.weights_by)

    def _loss(self, rows, *, split):
        z_a, z_c = self.embed(rows, split=split)  # (3N, d) each
        i, j = (t.to(z_a.device) for t in self.classes(rows, split=split))
        return losses.stage_b_loss(z_a, z_c, self.backbone.logit_scale, i=i, j=j,
                                   n_classes=self.n_classes, weights=self.weights,
                                   weights_by=self.weights_by)


class TclapTask(_PairTask):
    """The T-CLAP baseline ``L_c + λ L_t`` (SPEC §3, seed 002) on stage B's rows: forward and
    overlay audio with their captions, and each forward clip's swapped caption."""

    composites = TCLAP

    def __init__(self, *, lam: float = 0.5, captions: str = "paper", **kw) -> None:
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        self.lam = lam
        self.caption_columns = tuple(c.caption_column(captions) for c in self.composites)
        self.swapped = REVERSED.caption_column(captions)
        super().__init__(**kw)
        self.swapped_rows = {s: self.bank.text.rows(_column(df, self.swapped).astype(str))
                             for s, df in self.frames.items()}

    def text_columns(self):
        return self.caption_columns

    def log_weights(self, rows, *, split):
        i, j = self.classes(rows, split=split)
        n = len(rows)
        events = losses.stage_b_events(i, j, n_classes=self.n_classes)  # (3N,) [f; r; o]
        events = torch.cat([events[:n], events[2 * n:]])  # (2N,) [f; o]
        mask = losses.false_negative_mask(events, torch.arange(2 * n))  # (2N, 2N)
        return torch.zeros(2 * n, 2 * n).masked_fill(mask, -math.inf)

    def _loss(self, rows, *, split):
        z_a, z_c = self.embed(rows, split=split)  # (2N, d) each
        swapped_rows = self.swapped_rows[split][rows]  # (N,)
        z_swapped = self.backbone.text_head(self.bank.text.take(swapped_rows))  # (N, d)
        i, j = (t.to(z_a.device) for t in self.classes(rows, split=split))
        return losses.tclap_loss(z_a, z_c, z_swapped, self.backbone.logit_scale, i=i, j=j,
                                 n_classes=self.n_classes, lam=self.lam)
