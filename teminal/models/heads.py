"""Trainable heads shared by the backbones (SPEC §2).

- ``PooledAudioHead``: the paper's audio head, ``fc1`` + ReLU + msclap's ``Projection`` on the
  time-pooled trunk feature ``AudioFeatures.pooled`` (B, C). For msclap 2022 it wraps the real
  ``audio_encoder.base.fc1`` and ``audio_encoder.projection`` modules (``from_modules``).
- ``OrderAwareAudioHead`` (beyond the paper): reads the frames (B, T, C), adds a learned
  positional encoding and one light pre-norm transformer layer in a bottleneck of width
  ``d_model`` whose output projection is zero-initialised and added residually, then pools
  like Cnn14 (max_t + mean_t) and applies the *same* fc1/projection. At initialisation it
  therefore equals the pooled head exactly; training can make it sensitive to the order of
  events, which the pooled feature (max + mean over time) cannot see.
- ``HtsatAudioHead``: msclap 2023's audio head (last Swin block + final norm + projection) on
  HTSAT tokens.
- Text helpers for encoders split into frozen lower layers and trainable upper layers: the
  additive attention masks (BERT, causal GPT-2), running a slice of BERT layers, masked mean.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from msclap.models.clap import Projection
from torch import nn

from .base import AudioFeatures


def time_pool(frames: torch.Tensor) -> torch.Tensor:
    """Cnn14's pooling over time: max_t + mean_t. frames (B, T, C) → (B, C)."""
    return frames.max(dim=1).values + frames.mean(dim=1)


class PooledAudioHead(nn.Module):
    """``fc1`` + ReLU + ``Projection`` on the pooled feature (SPEC §2, the paper's audio head).

    ``dropout`` is applied before ``fc1`` and after the ReLU in train mode, as ``Cnn14.forward``
    does (0.5 there); the projection keeps msclap's own dropout (``projection_dropout``).
    """

    def __init__(self, *, in_dim: int, hidden: int, embed_dim: int, dropout: float = 0.0,
                 projection_dropout: float = 0.5, fc1: nn.Linear | None = None,
                 projection: Projection | None = None) -> None:
        super().__init__()
        self.fc1 = fc1 if fc1 is not None else nn.Linear(in_dim, hidden)
        self.projection = (projection if projection is not None
                           else Projection(hidden, embed_dim, p=projection_dropout))
        if (self.fc1.in_features, self.fc1.out_features) != (in_dim, hidden):
            raise ValueError(f"fc1 is {self.fc1}, expected Linear({in_dim}, {hidden})")
        if self.projection.linear1.in_features != hidden:
            raise ValueError(f"projection reads {self.projection.linear1.in_features}, fc1 gives {hidden}")
        self.dropout = dropout

    @classmethod
    def from_modules(cls, *, fc1: nn.Linear, projection: Projection,
                     dropout: float = 0.0) -> "PooledAudioHead":
        """Wrap existing modules (e.g. msclap 2022's ``audio_encoder.base.fc1`` and
        ``audio_encoder.projection``); the parameters are shared, not copied."""
        return cls(in_dim=fc1.in_features, hidden=fc1.out_features,
                   embed_dim=projection.linear2.out_features, dropout=dropout, fc1=fc1,
                   projection=projection)

    @property
    def in_dim(self) -> int:
        return self.fc1.in_features

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled (B, C) → z_a (B, d)."""
        x = F.dropout(pooled, p=self.dropout, training=self.training)
        x = F.relu(self.fc1(x))  # (B, hidden)
        x = F.dropout(x, p=self.dropout, training=self.training)
        return self.projection(x)  # (B, d)

    def forward(self, feats: AudioFeatures) -> torch.Tensor:
        return self.forward_pooled(feats.pooled)


def sinusoids(n: int, d: int) -> torch.Tensor:
    """(n, d) sinusoidal position table (Vaswani et al., 2017)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


class FrameMixer(nn.Module):
    """Positional encoding + one transformer layer on frames, added back residually.

    frames (B, T, C) → frames (B, T, C). ``up`` is zero-initialised, so at initialisation the
    output equals the input bit for bit.
    """

    def __init__(self, *, channels: int, max_frames: int = 512, d_model: int = 256,
                 n_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.max_frames = max_frames
        self.down = nn.Linear(channels, d_model)
        # learned, initialised to unit-scale sinusoids: a tiny random init gives attention no
        # usable notion of position at the start, and an order-blind audio side makes the
        # contrastive loss pull "x before y" and "y before x" together on the text side
        self.pos = nn.Parameter(sinusoids(max_frames, d_model))  # (T_max, D)
        self.layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True,
            norm_first=True)
        self.up = nn.Linear(d_model, channels)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        t = frames.shape[1]
        if t > self.max_frames:
            raise ValueError(
                f"the order-aware head got {t} frames but its positional encoding holds "
                f"max_frames={self.max_frames}; build the backbone with a larger max_frames "
                f"or use shorter audio")
        h = self.down(frames) + self.pos[:t]  # (B, T, D)
        h = self.layer(h)  # (B, T, D)
        return frames + self.up(h)  # (B, T, C)


class OrderAwareAudioHead(nn.Module):
    """Frames → ``FrameMixer`` → max_t + mean_t → the pooled head's fc1/projection.

    Beyond the paper (SPEC §2 fixes the paper's pooled head): the pooled feature of Cnn14 is
    invariant to the order of frames, so no head on it can learn "before" vs "after" from
    audio; this head sees the frames with their positions. It equals ``pooled`` at init.
    """

    def __init__(self, *, pooled: PooledAudioHead, max_frames: int = 512, d_model: int = 256,
                 n_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.pooled = pooled
        self.mixer = FrameMixer(channels=pooled.in_dim, max_frames=max_frames, d_model=d_model,
                                n_heads=n_heads, dropout=dropout)

    def forward(self, feats: AudioFeatures) -> torch.Tensor:
        if feats.frames is None:
            raise ValueError("the order-aware head reads AudioFeatures.frames; ask the trunk "
                             "(or the cache) for frames=True (backbone.needs_frames is True)")
        return self.pooled.forward_pooled(time_pool(self.mixer(feats.frames)))  # (B, d)


def build_audio_head(*, kind: str, pooled: PooledAudioHead, max_frames: int, d_model: int,
                     n_heads: int) -> nn.Module:
    """``kind`` ∈ {"pooled", "order"} → the head module (the pooled one itself or a wrapper)."""
    if kind == "pooled":
        return pooled
    if kind == "order":
        return OrderAwareAudioHead(pooled=pooled, max_frames=max_frames, d_model=d_model,
                                   n_heads=n_heads)
    raise ValueError(f"audio_head must be 'pooled' or 'order', got {kind!r}")


class HtsatAudioHead(nn.Module):
    """HTSAT's last Swin block + final norm + mean over tokens and crops + projection.

    Reads frames (B, K·N, C): N tokens of each of K crops (msclap averages crop latents)."""

    def __init__(self, *, block: nn.Module, norm: nn.Module, projection: Projection,
                 tokens_per_crop: int) -> None:
        super().__init__()
        self.block, self.norm, self.projection, self.n = block, norm, projection, tokens_per_crop

    def forward(self, feats: AudioFeatures) -> torch.Tensor:
        x = feats.frames
        if x is None:
            raise ValueError("msclap 2023's audio head reads AudioFeatures.frames (the HTSAT "
                             "tokens); ask for frames=True (needs_frames is True)")
        b, kn, c = x.shape
        x = self.norm(self.block(x.reshape(b * kn // self.n, self.n, c))[0])  # (B·K, N, C)
        return self.projection(x.mean(1).reshape(b, -1, c).mean(1))  # (B, d)


# ---- text helpers --------------------------------------------------------------------------
def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """mask (B, L) of 1/0 → (B, 1, 1, L) additive attention mask, as BertModel builds it."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_bert_layers(layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run ``BertLayer``s on hidden (B, L, H) with padding mask (B, L) → (B, L, H)."""
    ext = additive_mask(mask, hidden.dtype)
    for layer in layers:
        hidden = layer(hidden, attention_mask=ext)[0]
    return hidden


def causal_additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """mask (B, L) → (B, 1, L, L) additive mask: causal (GPT-2) and no padded keys."""
    n = mask.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()
    allowed = causal[None, None] & mask[:, None, None, :].bool()  # (B, 1, L, L)
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: hidden (B, L, H), mask (B, L) → (B, H)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
