"""The backbone interface every model implements (SPEC §2).

A backbone maps audio → ``z_a`` and text → ``z_c`` (same dimension ``embed_dim``) and has a
logit scale ``s = exp(logit_scale)``. Each encoder is split into a **frozen trunk** (eval mode,
a pure function of its input, so its output can be cached) and a **trainable head**::

    audio_trunk(wave) -> AudioFeatures      audio_head(AudioFeatures) -> z_a   (B, d)
    text_trunk(texts) -> TextFeatures       text_head(TextFeatures)   -> z_c   (B, d)

Training, evaluation and the notebooks only see this interface, so ZSTE evaluates any model
that implements it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AudioFeatures:
    """Output of a frozen audio trunk.

    pooled: (B, C) the time-pooled feature the paper's head reads.
    frames: (B, T, C) frame-level features before time pooling, or None when not asked for.
    """

    pooled: torch.Tensor
    frames: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "AudioFeatures":
        return AudioFeatures(
            pooled=self.pooled.to(device),
            frames=None if self.frames is None else self.frames.to(device),
        )

    def __len__(self) -> int:
        return self.pooled.shape[0]


@dataclass
class TextFeatures:
    """Output of a frozen text trunk.

    hidden: (B, L, H) hidden states entering the trainable text layers.
    mask:   (B, L) attention mask, 1 for real tokens and 0 for padding.
    """

    hidden: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> "TextFeatures":
        return TextFeatures(hidden=self.hidden.to(device), mask=self.mask.to(device))

    def __len__(self) -> int:
        return self.hidden.shape[0]


class Backbone(nn.Module, abc.ABC):
    """A CLAP-style model split into frozen trunks and trainable heads (SPEC §2).

    Subclasses set ``sample_rate`` (Hz of the waveforms ``audio_trunk`` expects) and
    ``embed_dim`` and implement the four trunk/head methods and ``trainable_parameters``.
    ``needs_frames`` is True when the audio head reads frame-level features.
    """

    sample_rate: int
    embed_dim: int

    @property
    @abc.abstractmethod
    def needs_frames(self) -> bool:
        """True when ``audio_head`` reads ``AudioFeatures.frames`` (the order-aware head)."""

    @abc.abstractmethod
    def audio_trunk(self, wave: torch.Tensor, *, frames: bool = False) -> AudioFeatures:
        """wave: (B, S) mono float at ``sample_rate`` → frozen features (no grad, eval mode)."""

    @abc.abstractmethod
    def audio_head(self, feats: AudioFeatures) -> torch.Tensor:
        """Trainable audio head → z_a (B, d), not normalized."""

    @abc.abstractmethod
    def text_trunk(self, texts: list[str]) -> TextFeatures:
        """Tokenize and run the frozen text layers (no grad, eval mode)."""

    @abc.abstractmethod
    def text_head(self, feats: TextFeatures) -> torch.Tensor:
        """Trainable text head → z_c (B, d), not normalized."""

    @abc.abstractmethod
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters training updates (the heads; SPEC §2)."""

    @property
    @abc.abstractmethod
    def logit_scale(self) -> torch.Tensor:
        """s = exp(logit_scale), a scalar tensor."""

    @abc.abstractmethod
    def cache_key(self) -> str:
        """A string that changes whenever the trunks' outputs could change (architecture,
        weights, preprocessing). The trunk cache is keyed by it (SPEC §2)."""

    # ---- conveniences built on the four methods --------------------------------------
    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) → z_a (B, d) through trunk and head."""
        return self.audio_head(self.audio_trunk(wave, frames=self.needs_frames))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """texts → z_c (B, d) through trunk and head."""
        return self.text_head(self.text_trunk(texts))

    def train(self, mode: bool = True) -> "Backbone":
        """Heads follow ``mode``; trunks always stay in eval mode (SPEC §2: the frozen trunk
        uses BatchNorm running statistics and no dropout, so it can be cached)."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def frozen_modules(self) -> list[nn.Module]:
        """Modules that belong to the trunks; kept in eval mode by ``train``."""
        return []

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable part of the state, what a checkpoint needs to store."""
        names = {id(p) for p in self.trainable_parameters()}
        return {k: v.detach().cpu().clone() for k, v in self.named_parameters() if id(v) in names}

    def load_head_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what ``head_state_dict`` returned; unknown or missing names are an error."""
        own = dict(self.named_parameters())
        expected = set(self.head_state_dict())
        missing, unknown = expected - set(state), set(state) - expected
        if missing or unknown:
            raise KeyError(
                f"head checkpoint does not match this backbone: missing {sorted(missing)[:5]}, "
                f"unknown {sorted(unknown)[:5]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value.to(own[name].device, own[name].dtype))
