"""A feature bank: every frozen-trunk output a stage or an evaluation needs, computed once.

The trunk runs in eval mode, so its output is a pure function of the input (SPEC §2). The
bank asks the on-disk ``TrunkCache`` for every unique clip (singles and each composite of the
manifests) and every unique caption once, keeps them on the training device, and hands
out rows by index, so a training step only runs the heads. Single clips and composite clips
have different lengths (and so different frame counts), so they live in two tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from .data.clips import audio_key
from .models.base import AudioFeatures, Backbone, TextFeatures


def _index(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out.setdefault(item, len(out))
    return out


@dataclass
class FeatureTable:
    """Audio features of equal-length clips, addressed by key."""

    index: dict[str, int]
    feats: AudioFeatures

    def rows(self, keys: Iterable[str]) -> torch.Tensor:
        try:
            return torch.tensor([self.index[k] for k in keys], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"audio {exc} is not in the feature bank (was it in the manifests?)") from None

    def take(self, rows: torch.Tensor) -> AudioFeatures:
        rows = rows.to(self.feats.pooled.device)
        frames = None if self.feats.frames is None else self.feats.frames[rows]
        return AudioFeatures(pooled=self.feats.pooled[rows], frames=frames)


@dataclass
class TextTable:
    """Text-trunk features of captions, addressed by caption string."""

    index: dict[str, int]
    feats: TextFeatures

    def rows(self, texts: Iterable[str]) -> torch.Tensor:
        try:
            return torch.tensor([self.index[t] for t in texts], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"caption {exc} is not in the feature bank") from None

    def take(self, rows: torch.Tensor) -> TextFeatures:
        rows = rows.to(self.feats.hidden.device)
        mask = self.feats.mask[rows]  # (B, L)
        keep = int(mask.sum(1).max())  # trim padding shared by the whole batch
        return TextFeatures(hidden=self.feats.hidden[rows, :keep], mask=mask[:, :keep])


@dataclass
class FeatureBank:
    """Singles, composites and captions of a run's manifests, on ``device``."""

    singles: FeatureTable
    pairs: FeatureTable
    text: TextTable
    extra: dict = field(default_factory=dict)


def manifest_audio_keys(manifests) -> tuple[list[str], list[str]]:
    """Unique single-clip keys and composite keys (``seq`` f and r, ``mix``) of all manifests."""
    singles = [audio_key("single", c) for c in manifests.singles["clip"]]
    sb = manifests.stage_b
    sa = manifests.stage_a
    singles += [audio_key("single", c) for c in pd.concat([sa["clip_i"], sa["clip_j"]])]
    pairs = []
    for ci, cj in zip(sb["clip_i"], sb["clip_j"]):
        pairs += [audio_key("seq", ci, cj), audio_key("seq", cj, ci), audio_key("mix", ci, cj)]
    pairs += [audio_key("seq", ci, cj) for ci, cj in zip(sa["clip_i"], sa["clip_j"])]
    return list(_index(singles)), list(_index(pairs))


def manifest_texts(manifests) -> list[str]:
    """Unique captions of all manifests."""
    sb, sa = manifests.stage_b, manifests.stage_a
    cols = [manifests.singles["caption"], sa["caption_single"], sa["caption_double"],
            sb["caption_f"], sb["caption_r"], sb["caption_o"]]
    return list(_index(pd.concat(cols).astype(str)))


def build_bank(*, cache, manifests, render: Callable[[str], np.ndarray], frames: bool,
               device: torch.device, extra_texts: Iterable[str] = (), cache_frames: bool = True) -> FeatureBank:
    """Fetch (or compute once) every trunk feature the manifests need and move it to ``device``.

    ``cache_frames`` stores frame-level features in the cache even when this head reads only
    pooled ones, so a later order-aware head never runs the trunk again; they are moved to
    ``device`` only when ``frames`` (the head reads them).
    """
    single_keys, pair_keys = manifest_audio_keys(manifests)
    texts = list(_index(list(manifest_texts(manifests)) + list(extra_texts)))
    ask = frames or cache_frames
    singles = _keep_frames(cache.audio(single_keys, render, frames=ask), frames)
    pairs = _keep_frames(cache.audio(pair_keys, render, frames=ask), frames)
    text = cache.text(texts)
    return FeatureBank(
        singles=FeatureTable(index=_index(single_keys), feats=singles.to(device)),
        pairs=FeatureTable(index=_index(pair_keys), feats=pairs.to(device)),
        text=TextTable(index=_index(texts), feats=text.to(device)),
    )


def _keep_frames(feats: AudioFeatures, frames: bool) -> AudioFeatures:
    return feats if frames else AudioFeatures(pooled=feats.pooled, frames=None)


def embed_audio(backbone: Backbone, table: FeatureTable, keys: list[str], *,
                batch_size: int = 1024) -> torch.Tensor:
    """z_a [len(keys), d] through the audio head, in batches, without gradients."""
    rows = table.rows(keys)
    with torch.no_grad():
        out = [backbone.audio_head(table.take(rows[k:k + batch_size]))
               for k in range(0, len(rows), batch_size)]
    return torch.cat(out) if out else torch.empty(0, backbone.embed_dim)


def embed_texts(backbone: Backbone, cache, texts: list[str], *, device: torch.device,
                batch_size: int = 1024) -> torch.Tensor:
    """z_c [len(texts), d] through the (cached) text trunk and the text head."""
    out = []
    with torch.no_grad():
        for k in range(0, len(texts), batch_size):
            feats = cache.text(texts[k:k + batch_size]).to(device)
            out.append(backbone.text_head(feats))
    return torch.cat(out) if out else torch.empty(0, backbone.embed_dim)
