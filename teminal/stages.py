"""The training stages as ``StageTask``s for ``train.fit`` (SPEC §3).

Each task turns a batch of manifest rows into the audio and text rows of its contrastive
matrix, runs only the heads on cached trunk features, and calls one loss of
``teminal.losses``:

- ``StageATask``  — TeminAL A: N singles and N doubles, 2N × 2N (eq. 8–9, 22–26);
- ``StageBTask``  — TeminAL B: forward, reversed and overlay, 3N × 3N (eq. 3–7);
- ``TclapTask``   — the T-CLAP baseline loss on the same rows (seed 002);
- optional replay: ``λ_replay ·`` InfoNCE on single clips with their class captions.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from . import losses
from .data.clips import audio_key
from .features import FeatureBank
from .models.base import Backbone


def _split(df: pd.DataFrame, split: str) -> pd.DataFrame:
    return df[df["split"] == split].reset_index(drop=True)


@dataclass
class Replay:
    """Symmetric InfoNCE on a random batch of training singles (SPEC §3 "Replay")."""

    weight: float
    rows: torch.Tensor  # single-table rows of the training singles
    text_rows: torch.Tensor  # their class captions
    targets: torch.Tensor
    batch_size: int
    generator: torch.Generator

    @classmethod
    def build(cls, *, bank: FeatureBank, singles: pd.DataFrame, weight: float, batch_size: int,
              seed: int) -> "Replay | None":
        train = _split(singles, "train")
        if weight <= 0 or len(train) < 2:
            return None
        return cls(weight=weight,
                   rows=bank.singles.rows(audio_key("single", c) for c in train["clip"]),
                   text_rows=bank.text.rows(train["caption"]),
                   targets=torch.tensor(train["target"].to_numpy()),
                   batch_size=batch_size, generator=torch.Generator().manual_seed(seed))

    def loss(self, backbone: Backbone, bank: FeatureBank) -> torch.Tensor:
        pick = torch.randperm(len(self.rows), generator=self.generator)[: self.batch_size]
        z_a = backbone.audio_head(bank.singles.take(self.rows[pick]))  # (B, d)
        z_c = backbone.text_head(bank.text.take(self.text_rows[pick]))  # (B, d)
        return self.weight * losses.info_nce(z_a, z_c, backbone.logit_scale,
                                             events=self.targets[pick].to(z_a.device))


class _PairTask:
    """Shared row bookkeeping of the pair stages: class indices and feature rows per split."""

    def __init__(self, *, backbone: Backbone, bank: FeatureBank, manifest: pd.DataFrame,
                 n_classes: int, replay: Replay | None) -> None:
        self.backbone, self.bank, self.n_classes, self.replay = backbone, bank, n_classes, replay
        self.frames = {s: _split(manifest, s) for s in ("train", "val")}
        self.n_train, self.n_val = len(self.frames["train"]), len(self.frames["val"])
        self.cols = {s: self._columns(df) for s, df in self.frames.items()}

    def _columns(self, df: pd.DataFrame) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _with_replay(self, loss: torch.Tensor, split: str) -> torch.Tensor:
        if self.replay is None or split != "train":
            return loss
        return loss + self.replay.loss(self.backbone, self.bank)


class StageATask(_PairTask):
    """TeminAL A: tell one sound from two (SPEC §3 stage A)."""

    def __init__(self, *, weights: losses.StageAWeights, **kw) -> None:
        super().__init__(**kw)
        self.weights = weights

    def _columns(self, df):
        b = self.bank
        return {
            "i": torch.tensor(df["i"].to_numpy()), "j": torch.tensor(df["j"].to_numpy()),
            "single": b.singles.rows(audio_key("single", c) for c in df["clip_i"]),
            "double": b.pairs.rows(audio_key("seq", ci, cj) for ci, cj in zip(df["clip_i"], df["clip_j"])),
            "t_single": b.text.rows(df["caption_single"]), "t_double": b.text.rows(df["caption_double"]),
        }

    def loss(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        c, bb, bank = self.cols[split], self.backbone, self.bank
        z_a = torch.cat([bb.audio_head(bank.singles.take(c["single"][rows])),
                         bb.audio_head(bank.pairs.take(c["double"][rows]))])  # (2N, d)
        z_c = bb.text_head(bank.text.take(torch.cat([c["t_single"][rows], c["t_double"][rows]])))  # (2N, d)
        i, j = c["i"][rows].to(z_a.device), c["j"][rows].to(z_a.device)
        loss = losses.stage_a_loss(z_a, z_c, bb.logit_scale, i=i, j=j, n_classes=self.n_classes,
                                   weights=self.weights)
        return self._with_replay(loss, split)


class StageBTask(_PairTask):
    """TeminAL B: before / after / while (SPEC §3 stage B)."""

    def __init__(self, *, weights: losses.StageBWeights, **kw) -> None:
        super().__init__(**kw)
        self.weights = weights

    def _columns(self, df):
        b = self.bank
        ci, cj = df["clip_i"], df["clip_j"]
        return {
            "i": torch.tensor(df["i"].to_numpy()), "j": torch.tensor(df["j"].to_numpy()),
            "f": b.pairs.rows(audio_key("seq", a, c) for a, c in zip(ci, cj)),
            "r": b.pairs.rows(audio_key("seq", c, a) for a, c in zip(ci, cj)),
            "o": b.pairs.rows(audio_key("mix", a, c) for a, c in zip(ci, cj)),
            "t_f": b.text.rows(df["caption_f"]), "t_r": b.text.rows(df["caption_r"]),
            "t_o": b.text.rows(df["caption_o"]),
        }

    def embed(self, rows: torch.Tensor, *, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """z_a, z_c [3N, d] in block order [f; r; o] (SPEC §3)."""
        c, bb, bank = self.cols[split], self.backbone, self.bank
        a_rows = torch.cat([c["f"][rows], c["r"][rows], c["o"][rows]])  # (3N,)
        t_rows = torch.cat([c["t_f"][rows], c["t_r"][rows], c["t_o"][rows]])  # (3N,)
        return bb.audio_head(bank.pairs.take(a_rows)), bb.text_head(bank.text.take(t_rows))

    def events(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        c = self.cols[split]
        return losses.stage_b_events(c["i"][rows], c["j"][rows], n_classes=self.n_classes)

    def loss(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        z_a, z_c = self.embed(rows, split=split)
        events = self.events(rows, split=split).to(z_a.device)
        loss = losses.stage_b_loss(z_a, z_c, self.backbone.logit_scale, events=events,
                                   weights=self.weights)
        return self._with_replay(loss, split)


class TclapTask(StageBTask):
    """The T-CLAP baseline loss ``L_c + λ L_t`` on stage B's rows (SPEC §3, seed 002)."""

    def __init__(self, *, lam: float = 0.5, **kw) -> None:
        kw.setdefault("weights", losses.StageBWeights(alpha_st=1, alpha_ct=1, alpha_so=1, alpha_co=1, beta=1))
        super().__init__(**kw)
        self.lam = lam

    def loss(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        z_a, z_c = self.embed(rows, split=split)
        n = len(rows)
        events = self.events(rows, split=split)[:n].to(z_a.device)
        loss = losses.tclap_loss(z_a[:n], z_c[:n], z_c[n:2 * n], self.backbone.logit_scale,
                                 z_c_o=z_c[2 * n:], lam=self.lam, events=events)
        return self._with_replay(loss, split)
