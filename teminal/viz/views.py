"""What the similarity explorer reads: one matrix at a time, from a stage task or a held-out pair.

Both views have ``n_batches``, ``get(k)`` (the dict ``widgets.similarity_explorer`` expects:
``sim``, ``log_weights``, ``block_labels``, ``row_captions``, ``col_captions``) and
``figure_args(k)`` (keyword arguments of ``plots.similarity_matrix`` for a static picture of
the same matrix, which stays in an executed notebook where the widget cannot).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from teminal.data.captions import pair_captions
from teminal.data.vocabulary import STAGE_B
from teminal.features import FeatureBank, embed_audio, embed_texts
from teminal.models.base import Backbone
from teminal.eval.tasks import ZsteTemplates


def _figure_args(view: Any, k: int, title: str) -> dict:
    data = view.get(k)
    return {"sim": data["sim"], "block_labels": data["block_labels"],
            "log_weights": data["log_weights"], "title": title}


@dataclass
class BatchView:
    """Consecutive batches of a stage task's ``split`` (``task.similarity``, SPEC §3)."""

    task: Any  # a teminal.training.stages task
    split: str
    batch_size: int

    @property
    def _n(self) -> int:
        return self.task.n_val if self.split == "val" else self.task.n_train

    @property
    def n_batches(self) -> int:
        return max(1, self._n // self.batch_size)

    def get(self, k: int) -> dict:
        rows = torch.arange(k * self.batch_size, min((k + 1) * self.batch_size, self._n))
        with torch.no_grad():
            return self.task.similarity(rows, split=self.split).as_dict()

    def figure_args(self, k: int) -> dict:
        return _figure_args(self, k, f"{self.split} batch {k}")


@dataclass
class PairView:
    """The three composites of held-out pair ``k`` (``vocabulary.STAGE_B``: ``a_i ⊕ a_j``,
    ``a_j ⊕ a_i``, the overlay) against its three ZSTE captions (``templates.before`` both
    ways, ``templates.while_``): cosine similarities (SPEC §4)."""

    backbone: Backbone
    bank: FeatureBank
    cache: Any  # TrunkCache (text trunk)
    rows: pd.DataFrame  # stage-B rows of the evaluation set
    device: torch.device
    templates: ZsteTemplates = field(default_factory=ZsteTemplates)  # ZSTE's prompts

    @property
    def n_batches(self) -> int:
        return len(self.rows)

    def get(self, k: int) -> dict:
        r, row = self.rows.iloc[k], self.rows.iloc[[k]]
        keys = [c.keys(row)[0] for c in STAGE_B]  # forward, reversed, overlay
        captions = list(pair_captions(self.templates.before, self.templates.while_,
                                      r.label_i, r.label_j))
        z_a = embed_audio(self.backbone, self.bank.pairs, keys)  # (3, d)
        z_c = embed_texts(self.backbone, self.cache, captions, device=self.device)  # (3, d)
        sim = F.normalize(z_a, dim=-1) @ F.normalize(z_c, dim=-1).T  # (3, 3)
        return {"sim": sim.cpu().numpy().astype(np.float64), "log_weights": None,
                "block_labels": [c.block for c in STAGE_B],
                "row_captions": [f"audio {c.notation}" for c in STAGE_B],
                "col_captions": captions}

    def figure_args(self, k: int) -> dict:
        r = self.rows.iloc[k]
        return _figure_args(self, k, f"held-out pair: {r.label_i} | {r.label_j}")
