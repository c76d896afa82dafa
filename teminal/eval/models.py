"""Any audio–language model as two functions (SPEC §2 "Any model can be evaluated", §4).

A model the evaluation can score is an object with

- ``embed_audio(waves, sample_rate) -> (B, d)``: ``waves`` a list of 1-D float arrays (any
  lengths) or a ``(B, S)`` array / tensor, at ``sample_rate`` Hz;
- ``embed_text(texts) -> (B, d)``: a list of strings;

plus ``name`` (a label for tables) and ``rule`` (:class:`InputRule`: the rate and length rules
the model applies, stated so a reader knows what it heard). Every adapter is **deterministic**:
no random crop, no random chunk choice, and a composite is never cut so that one of its events
is lost — a clip longer than what the encoder reads at once is read in windows that cover all
of it (each adapter states how).

:class:`ModelAdapter` does the common part (checks, resampling to the model's rate, batching
clips of equal length, checking the output); adapters implement ``_embed_batch`` and
``_embed_texts``. :class:`CustomModel` wraps an object of your own (``my_pkg.my_module:
make_model``, see :func:`teminal.eval.specs.load_model`).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
import torch

from teminal.audio import resample


@dataclass(frozen=True, kw_only=True)
class InputRule:
    """How a model reads audio (SPEC §2): shown in the report card and the README."""

    sample_rate: int | None  # Hz the encoder reads; waves are resampled to it (None = as given)
    window_seconds: float | None  # longest stretch read at once (None = any length, pooled)
    longer: str  # what happens to a clip longer than the window (deterministic)
    shorter: str  # what happens to a clip shorter than the window


def as_waves(waves, *, name: str = "waves") -> list[np.ndarray]:
    """``waves`` (a list of 1-D arrays / tensors, or a (B, S) array / tensor) as a list of
    finite, non-empty float32 1-D arrays; ValueError naming ``name`` otherwise."""
    if isinstance(waves, torch.Tensor):
        waves = waves.detach().cpu().numpy()
    if isinstance(waves, np.ndarray):
        if waves.ndim != 2:
            raise ValueError(f"{name}: expected a (B, S) array or a list of 1-D arrays, got "
                             f"shape {waves.shape}")
        waves = list(waves)
    out = []
    for n, w in enumerate(waves):
        w = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float32)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"{name}[{n}]: expected a non-empty 1-D waveform, got shape {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError(f"{name}[{n}]: waveform holds NaN or inf")
        out.append(w)
    if not out:
        raise ValueError(f"{name}: no waveforms")
    return out


def check_embeddings(z, *, n: int, what: str) -> torch.Tensor:
    """``z`` as a float32 CPU tensor (n, d) with finite entries; ValueError naming ``what``."""
    z = torch.as_tensor(z.detach().cpu() if isinstance(z, torch.Tensor) else np.asarray(z))
    if z.ndim != 2 or z.shape[0] != n:
        raise ValueError(f"{what}: expected ({n}, d) embeddings, got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError(f"{what}: embeddings hold NaN or inf")
    return z.float()


class ModelAdapter(abc.ABC):
    """The common part of every adapter (module doc). Subclasses set ``name`` and ``rule``."""

    name: str
    rule: InputRule
    batch_size: int = 8

    def embed_audio(self, waves, sample_rate: int) -> torch.Tensor:
        """waves at ``sample_rate`` Hz → (B, d), resampled to ``rule.sample_rate`` first; clips
        of equal length are batched together, the order of ``waves`` is kept."""
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
        ws = as_waves(waves)
        rate = self.rule.sample_rate or int(sample_rate)
        ws = [resample(w, orig=int(sample_rate), new=rate) for w in ws]
        out: list[torch.Tensor | None] = [None] * len(ws)
        by_len: dict[int, list[int]] = {}
        for n, w in enumerate(ws):
            by_len.setdefault(len(w), []).append(n)
        with torch.inference_mode():
            for idx in by_len.values():
                for s in range(0, len(idx), self.batch_size):
                    part = idx[s : s + self.batch_size]
                    batch = torch.from_numpy(np.stack([ws[n] for n in part]))  # (b, S)
                    z = check_embeddings(self._embed_batch(batch), n=len(part),
                                         what=f"{self.name}.embed_audio")
                    for row, n in enumerate(part):
                        out[n] = z[row]
        return torch.stack(out)  # (B, d)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """texts → (B, d)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        bad = [t for t in texts if not isinstance(t, str) or not t]
        if not texts or bad:
            raise ValueError(f"texts: expected a non-empty list of non-empty strings, got "
                             f"{bad[0] if bad else texts!r}")
        with torch.inference_mode():
            parts = [self._embed_texts(texts[s : s + 64]) for s in range(0, len(texts), 64)]
        return check_embeddings(torch.cat([torch.as_tensor(p) for p in parts]), n=len(texts),
                                what=f"{self.name}.embed_text")

    @abc.abstractmethod
    def _embed_batch(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (b, S) float32 at ``rule.sample_rate`` → (b, d)."""

    @abc.abstractmethod
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        """≤ 64 texts → (b, d)."""


class CustomModel(ModelAdapter):
    """A model of your own: any object with ``embed_audio(waves, sample_rate)`` and
    ``embed_text(texts)``. Optional attributes: ``sample_rate`` (waves are resampled to it
    before the call; else passed at their own rate) and ``name``. It receives one batch of
    equal-length clips as a (b, S) float32 tensor per call; it states its own length rule."""

    def __init__(self, obj, *, name: str | None = None, batch_size: int = 8) -> None:
        for method in ("embed_audio", "embed_text"):
            if not callable(getattr(obj, method, None)):
                raise TypeError(f"{type(obj).__name__} has no method {method}(...): a model needs "
                                f"embed_audio(waves, sample_rate) and embed_text(texts)")
        self.obj, self.batch_size = obj, batch_size
        self.name = name or str(getattr(obj, "name", type(obj).__name__))
        rate = getattr(obj, "sample_rate", None)
        self.rule = InputRule(sample_rate=None if rate is None else int(rate), window_seconds=None,
                              longer="as the model's own code does",
                              shorter="as the model's own code does")
        self._given_rate = 0

    def embed_audio(self, waves, sample_rate: int) -> torch.Tensor:
        self._given_rate = int(sample_rate)
        return super().embed_audio(waves, sample_rate)

    def _embed_batch(self, wave: torch.Tensor) -> torch.Tensor:
        return self.obj.embed_audio(wave, self.rule.sample_rate or self._given_rate)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.obj.embed_text(texts)
