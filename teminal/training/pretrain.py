"""CLAP-style pretraining of the embedded backbone, which has no public weights (SPEC §2).

Symmetric InfoNCE on single clips of the training split with captions like "the sound of
{x}" (same-class columns masked as false negatives, SPEC §3), training the whole audio CNN and
the text head. The result is the "pretrained baseline" every later stage starts from; with
msclap the published weights play this role and nothing here runs.

A library function with explicit arguments (no notebook session): ``pretrain_tiny``. Waves are
rendered when a batch is drawn, so memory grows with the batch size, not with the number of
clips. Saving the model (``model.save``) is the caller's job.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import losses
from ..data.clips import audio_key
from ..models.base import TextFeatures
from .checkpoints import load_checkpoint_head
from .config import TrainConfig
from .fit import FitResult, fit

SPLITS = ("train", "val")
KEEP = ("best", "last")  # which checkpoint pretrain_tiny leaves in the model


@dataclass(frozen=True, kw_only=True)
class Augment:
    """Light waveform augmentation of single clips: gain, circular shift, background noise."""

    gain_db: float = 6.0
    shift: float = 0.1  # max shift as a share of the clip
    noise_rms: float = 0.005

    def __call__(self, wave: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """wave [B, S] → augmented [B, S], random draws from ``generator``."""
        b, s = wave.shape
        gain = 10 ** ((torch.rand(b, 1, generator=generator) * 2 - 1) * self.gain_db / 20)  # (B, 1)
        shifts = (torch.rand(b, generator=generator) * self.shift * s).long()  # (B,)
        out = torch.stack([torch.roll(w, int(k)) for w, k in zip(wave, shifts)])  # (B, S)
        return out * gain + self.noise_rms * torch.randn(b, s, generator=generator)


class PretrainTask:
    """Singles of the train / val splits against their class captions (a ``fit.StageTask``).

    Only clip names are held; ``render(audio_key("single", clip))`` is called for the clips of
    a batch when the batch is drawn.
    """

    def __init__(self, *, model, clips: dict[str, list[str]], targets: dict[str, torch.Tensor],
                 render: Callable[[str], np.ndarray], class_text: TextFeatures,
                 augment: Augment | None, device: torch.device, seed: int) -> None:
        self.model, self.clips, self.targets, self.render = model, clips, targets, render
        self.class_text, self.augment, self.device = class_text, augment, device
        self.n_train, self.n_val = len(clips["train"]), len(clips.get("val", []))
        self.generator = torch.Generator().manual_seed(seed)

    def generators(self) -> list[torch.Generator]:
        return [self.generator]

    def waves(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        """[B, S] float32 waveforms of the batch ``rows`` [B] of ``split``, rendered now."""
        names = self.clips[split]
        return torch.from_numpy(np.stack([self.render(audio_key("single", names[k]))
                                          for k in rows.tolist()]).astype(np.float32))

    def loss(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        wave = self.waves(rows, split=split)  # (B, S)
        if split == "train" and self.augment is not None:
            wave = self.augment(wave, self.generator)
        target = self.targets[split][rows].to(self.device)  # (B,)
        feats = self.model.audio_trunk(wave.to(self.device), frames=self.model.needs_frames)
        z_a = self.model.audio_head(feats)  # (B, d)
        text = TextFeatures(hidden=self.class_text.hidden[target], mask=self.class_text.mask[target])
        z_c = self.model.text_head(text)  # (B, d)
        return losses.info_nce(z_a, z_c, self.model.logit_scale, events=target)


def trained_state(model) -> dict[str, torch.Tensor]:
    """What pretraining changes: everything but the frozen text trunk (MiniLM embeddings and
    lower layers, which stay as the package ships them) — keeps checkpoints small."""
    frozen = {id(t) for m in model._text_trunk_modules() for t in [*m.parameters(), *m.buffers()]}
    named = [*model.named_parameters(), *model.named_buffers()]
    return {k: v.detach().cpu().clone() for k, v in named if id(v) not in frozen}


def _split_singles(singles: pd.DataFrame, n_classes: int) -> tuple[dict, dict]:
    """Clip names and targets [M] of the train and val singles; targets must be class ids."""
    for column in ("clip", "target", "split"):
        if column not in singles.columns:
            raise ValueError(f"the singles table has no column {column!r}: rebuild the manifests")
    bad = singles[(singles["target"] < 0) | (singles["target"] >= n_classes)]
    if len(bad):
        raise ValueError(f"singles targets must lie in [0, {n_classes}) (one per class name); "
                         f"e.g. clip {bad['clip'].iloc[0]!r} has {bad['target'].iloc[0]}")
    clips, targets = {}, {}
    for split in SPLITS:
        part = singles[singles["split"] == split]
        clips[split] = [str(c) for c in part["clip"]]
        targets[split] = torch.tensor(part["target"].to_numpy(), dtype=torch.long)
    return clips, targets


def pretrain_tiny(*, model, singles: pd.DataFrame, render: Callable[[str], np.ndarray],
                  class_names: list[str], class_prompt: str, config: TrainConfig,
                  keep: str, out_dir: str | Path, device: torch.device,
                  augment: Augment | None = Augment(),
                  fingerprint_extra: dict | None = None, progress: bool = True) -> FitResult:
    """Pretrain ``model`` (a ``TinyClap`` on ``device``) CLAP-style on its training singles.

    Trains ``model.pretrain_parameters()`` (audio CNN, audio head, text head, logit scale) on
    the singles of split "train" (split "val" gives ``pretrain/val/loss``), with
    ``fit``'s gate, checkpoints, resume and fingerprint (``fingerprint_extra`` plus the
    model config, class prompt and names, augmentation), metrics under ``pretrain/``. Loads
    the kept checkpoint into ``model`` and leaves it frozen again (``pretraining(False)``).

    Args:
        singles: the singles manifest (``clip``, ``target``, ``split``); targets index
            ``class_names``.
        render: ``render(key)`` → waveform of an audio key at the model's sample rate.
        class_names: [K] label texts; the caption of class k is ``class_prompt.format(x=...)``.
        class_prompt: e.g. ``"a recording of {x}"`` (not ZSTE's wording, SPEC §1).
        config: optimisation settings (``batch_size`` ≤ the number of training singles).
        keep: ``"best"`` (``best.pt``: the lowest ``pretrain/val/loss``) or ``"last"``
            (``last.pt``: after the last step) is loaded into ``model``.
        out_dir: checkpoint folder (``best.pt``, ``last.pt``).
        augment: waveform augmentation of training batches (None: off).

    Returns:
        ``FitResult`` of the pretraining run.
    """
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    clips, targets = _split_singles(singles, len(class_names))
    extra = {"pretrain": {"class_prompt": class_prompt, "class_names": list(class_names),
                          "augment": None if augment is None else asdict(augment),
                          "model": repr(model.config)}, **(fingerprint_extra or {})}
    model.pretraining(True)
    try:
        class_text = model.text_trunk([class_prompt.format(x=c) for c in class_names]).to(device)
        task = PretrainTask(model=model, clips=clips, targets=targets, render=render,
                            class_text=class_text, augment=augment, device=device,
                            seed=config.seed)
        result = fit(
            task=task, model=model, params=model.pretrain_parameters(), config=config,
            out_dir=out_dir, device=device, fingerprint_extra=extra, metric_prefix="pretrain/",
            head_state=lambda: trained_state(model),
            load_head_state=lambda state: model.load_state_dict(state, strict=False),
            progress=progress,
        )
        kept = result.out_dir / f"{keep}.pt"
        model.load_state_dict(load_checkpoint_head(kept), strict=False)
    finally:
        model.pretraining(False)
    return result
