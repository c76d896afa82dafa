"""A feature bank: every frozen-trunk output a stage or an evaluation needs, computed once.

The trunk runs in eval mode, so its output is a pure function of the input (SPEC §2). The
bank asks the on-disk ``TrunkCache`` for every unique clip and every unique caption of the
manifests once, keeps them on the training device, and hands out rows by index, so a training
step only runs the heads. Clips of one duration share a table (frames are not padded):

- ``singles``: single clips at clip length (Task 1, replay, zero-shot);
- ``pairs``: composites at the length of a double (SPEC §1: every composite of a pair has the
  same duration) — stage-B forward and reversed ``seq``, the canonical ``mix``, stage-A
  ``seq`` doubles and ``loop`` singles — of every split (train, val, test, seen).

Frame-level features are always computed and cached on disk, so a later order-aware head never
runs the trunk again; the bank keeps them (as float16, cast to float32 by ``take``) only when
the head reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from .data.clips import audio_key, pair_keys
from .models.base import AudioFeatures, Backbone, TextFeatures

REQUEST_KEYS = 512  # keys per cache request: bounds the float32 frames held at once
CAPTION_COLUMNS = {
    "singles": ("caption",),
    "stage_a": ("caption_single", "caption_double"),
    "stage_b": ("caption_f", "caption_r", "caption_o", "para_f", "para_r", "para_o",
                "direct_f", "direct_r", "mirror_f", "mirror_r"),
}
"""Caption columns of each manifest table (``para_*`` are read when the table has them)."""


def _index(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out.setdefault(item, len(out))
    return out


@dataclass
class FeatureTable:
    """Audio features of equal-length clips, addressed by key.

    ``feats.pooled`` [M, C] float32; ``feats.frames`` [M, T, C] float16 or None.
    """

    index: dict[str, int]
    feats: AudioFeatures

    def rows(self, keys: Iterable[str]) -> torch.Tensor:
        """[B] long row indices of ``keys``; a KeyError names a key the bank lacks."""
        try:
            return torch.tensor([self.index[k] for k in keys], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"audio {exc} is not in the feature bank (was it in the manifests?)") from None

    def take(self, rows: torch.Tensor) -> AudioFeatures:
        """Features of ``rows`` [B]: pooled [B, C] and frames [B, T, C], both float32."""
        rows = rows.to(self.feats.pooled.device)
        frames = None if self.feats.frames is None else self.feats.frames[rows].float()
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
        hidden = self.feats.hidden[rows, :keep].float()  # stored float16 in the bank
        return TextFeatures(hidden=hidden, mask=mask[:, :keep])


@dataclass
class FeatureBank:
    """Singles, composites and captions of a run's manifests, on one device."""

    singles: FeatureTable
    pairs: FeatureTable
    text: TextTable


def stage_b_keys(stage_b: pd.DataFrame) -> list[str]:
    """Composite keys of stage-B rows: forward ``seq``, reversed ``seq``, canonical ``mix``."""
    k = pair_keys(stage_b)
    return [key for row in zip(k["seq"], k["rev"], k["mix"]) for key in row]


def _composite_keys(manifests) -> tuple[list[str], list[str]]:
    """Unique composites (stage B, stage-A doubles) and stage-A ``span`` singles."""
    sa = pair_keys(manifests.stage_a)
    return list(_index(stage_b_keys(manifests.stage_b) + sa["seq"])), list(_index(sa["span"]))


def manifest_audio_keys(manifests) -> tuple[list[str], list[str]]:
    """Unique single-clip keys (clip length) and composite keys (double length, SPEC §1) of
    every row of every split of the manifests."""
    singles = list(_index(audio_key("single", c) for c in manifests.singles["clip"]))
    composites, loops = _composite_keys(manifests)
    return singles, composites + loops


def manifest_texts(manifests) -> list[str]:
    """Unique captions of all manifests (``CAPTION_COLUMNS``, paraphrases included)."""
    cols = []
    for table, names in CAPTION_COLUMNS.items():
        df = getattr(manifests, table)
        cols += [df[name] for name in names if name in df.columns]
    return list(_index(pd.concat(cols).astype(str)))


def _fetch(cache, keys: list[str], render: Callable[[str], np.ndarray], *,
           keep_frames: bool) -> AudioFeatures:
    """Features of ``keys`` (clips of one duration) in order, on the cache's device.

    Frames are always computed and cached; they are returned (float16) only when
    ``keep_frames``. Requests go in chunks of ``REQUEST_KEYS`` keys.
    """
    if not keys:
        raise ValueError("the manifests name no clips of this kind (an empty singles or "
                         "stage-B table?); rebuild them with the data notebook")
    pooled, frames = [], []
    for start in range(0, len(keys), REQUEST_KEYS):
        feats = cache.audio(keys[start:start + REQUEST_KEYS], render, frames=True)
        pooled.append(feats.pooled)  # (b, C)
        if keep_frames:
            frames.append(feats.frames.half())  # (b, T, C)
    return AudioFeatures(pooled=torch.cat(pooled), frames=torch.cat(frames) if keep_frames else None)


def _join(a: AudioFeatures, b: AudioFeatures) -> AudioFeatures:
    """Rows of ``a`` then ``b``; the frame counts must agree."""
    if a.frames is None:
        return AudioFeatures(pooled=torch.cat([a.pooled, b.pooled]))
    if a.frames.shape[1:] != b.frames.shape[1:]:
        raise ValueError(
            f"stage-A singles ('span' keys) have frames {tuple(b.frames.shape[1:])} but the "
            f"composites {tuple(a.frames.shape[1:])}: the order head needs the single to span "
            "the length of a double (data.loop_single=true, SPEC §1)")
    return AudioFeatures(pooled=torch.cat([a.pooled, b.pooled]), frames=torch.cat([a.frames, b.frames]))


def _stored(feats: TextFeatures, dtype: torch.dtype) -> TextFeatures:
    """Text-trunk features kept in the bank at the cache's storage precision (float16 by
    default: lossless, and half the memory of many captions); ``take`` returns float32."""
    return TextFeatures(hidden=feats.hidden.to(dtype), mask=feats.mask)


def build_bank(*, cache, manifests, render: Callable[[str], np.ndarray], frames: bool,
               device: torch.device) -> FeatureBank:
    """Fetch (or compute once) every trunk feature the manifests need and move it to ``device``.

    Args:
        cache: a ``TrunkCache`` (``audio(keys, render, frames=)``, ``text(texts)``).
        manifests: ``Manifests`` (``singles``, ``stage_a``, ``stage_b`` tables).
        render: ``render(key)`` → the waveform of an audio key, for keys not cached yet.
        frames: keep frame-level features in the bank (the order-aware head reads them);
            they are computed and cached on disk either way.
        device: where the bank lives (the training device).
    """
    single_keys, _ = manifest_audio_keys(manifests)
    composite_keys, loop_keys = _composite_keys(manifests)
    singles = _fetch(cache, single_keys, render, keep_frames=frames)
    pairs = _fetch(cache, composite_keys, render, keep_frames=frames)
    if loop_keys:
        pairs = _join(pairs, _fetch(cache, loop_keys, render, keep_frames=frames))
    texts = manifest_texts(manifests)
    return FeatureBank(
        singles=FeatureTable(index=_index(single_keys), feats=singles.to(device)),
        pairs=FeatureTable(index=_index(composite_keys + loop_keys), feats=pairs.to(device)),
        text=TextTable(index=_index(texts), feats=_stored(cache.text(texts), cache.dtype).to(device)),
    )


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
