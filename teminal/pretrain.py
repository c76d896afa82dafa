"""CLAP-style pretraining of the embedded backbone, which has no public weights (SPEC §2).

Symmetric InfoNCE on single clips of the training split with captions like "the sound of
{x}" (same-class columns masked as false negatives, SPEC §3), training the whole audio CNN and
the text head. The result is the "pretrained baseline" every later stage starts from; with
msclap the published weights play this role and nothing here runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import losses, train
from .data.clips import audio_key
from .models.base import TextFeatures


@dataclass(frozen=True, kw_only=True)
class Augment:
    """Light waveform augmentation of single clips: gain, circular shift, background noise."""

    gain_db: float = 6.0
    shift: float = 0.1  # max shift as a share of the clip
    noise_rms: float = 0.005

    def __call__(self, wave: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, s = wave.shape
        gain = 10 ** ((torch.rand(b, 1, generator=generator) * 2 - 1) * self.gain_db / 20)
        shifts = (torch.rand(b, generator=generator) * self.shift * s).long()
        out = torch.stack([torch.roll(w, int(k)) for w, k in zip(wave, shifts)])  # (B, S)
        return out * gain + self.noise_rms * torch.randn(b, s, generator=generator)


class PretrainTask:
    """Singles of the train / val splits against their class captions (a ``StageTask``)."""

    def __init__(self, *, model, waves: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 class_text: TextFeatures, augment: Augment | None, device: torch.device, seed: int) -> None:
        self.model, self.waves, self.targets = model, waves, targets
        self.class_text, self.augment, self.device = class_text, augment, device
        self.n_train, self.n_val = len(targets["train"]), len(targets.get("val", []))
        self.generator = torch.Generator().manual_seed(seed)

    def loss(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        wave = self.waves[split][rows]  # (B, S)
        if split == "train" and self.augment is not None:
            wave = self.augment(wave, self.generator)
        target = self.targets[split][rows].to(self.device)
        z_a = self.model.audio_head(self.model.audio_trunk(wave.to(self.device), frames=self.model.needs_frames))
        text = TextFeatures(hidden=self.class_text.hidden[target], mask=self.class_text.mask[target])
        z_c = self.model.text_head(text)  # (B, d)
        return losses.info_nce(z_a, z_c, self.model.logit_scale, events=target)


def single_waves(singles: pd.DataFrame, render, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked waveforms (M, S) and class targets (M,) of one split's single clips."""
    part = singles[singles["split"] == split]
    if part.empty:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    waves = np.stack([render(audio_key("single", c)) for c in part["clip"]])
    return torch.from_numpy(waves), torch.from_numpy(part["target"].to_numpy()).long()


def trained_state(model) -> dict[str, torch.Tensor]:
    """What pretraining changes: everything but the frozen text trunk (MiniLM embeddings and
    lower layers, which stay as the package ships them) — keeps checkpoints small."""
    frozen = {id(t) for m in model._text_trunk_modules() for t in [*m.parameters(), *m.buffers()]}
    named = [*model.named_parameters(), *model.named_buffers()]
    return {k: v.detach().cpu().clone() for k, v in named if id(v) not in frozen}


def pretrain_embedded(S, data):
    """Pretrain the embedded backbone on the run's training singles and save it to
    ``checkpoints/pretrained/model.pt``; returns (model, history). Resumable like any stage."""
    from .modeling import checkpoint_dir, pretrained_path
    from .models.tiny import TinyClap, TinyConfig
    from .workflow import caption_templates, recipe

    P = S.P
    width = int(P["tiny_width"])
    config = TinyConfig(sample_rate=int(P["world_sample_rate"]), seed=int(P["seed"]),
                        hop=int(P["tiny_hop"]), channels=(width, 2 * width, 4 * width, 8 * width))
    model = TinyClap(config=config).to(S.device).pretraining(True)
    render = data.renderer(recipe(P, model.sample_rate))
    singles = data.manifests.singles
    waves, targets = {}, {}
    for split in ("train", "val"):
        waves[split], targets[split] = single_waves(singles, render, split)
    templates = caption_templates(P)
    class_text = model.text_trunk([templates.class_prompt.format(x=c) for c in data.base.classes])
    task = PretrainTask(model=model, waves=waves, targets=targets, class_text=class_text.to(S.device),
                        augment=Augment(), device=S.device, seed=int(P["seed"]))
    config_t = train.TrainConfig(epochs=int(P["pretrain_epochs"]), batch_size=int(P["pretrain_batch_size"]),
                                 lr=float(P["pretrain_lr"]), optimizer="adamw", weight_decay=1e-4,
                                 schedule="cosine", warmup_steps=0, seed=int(P["seed"]))
    params = model.pretrain_parameters()
    result = train.fit(
        task=task, model=model, params=params, config=config_t,
        out_dir=checkpoint_dir(S, "pretrain-train"), device=S.device, metric_prefix="pretrain/",
        fingerprint_extra={"manifests": data.manifests.hashes, "model": config.__repr__()},
        head_state=lambda: trained_state(model),
        load_head_state=lambda state: model.load_state_dict(state, strict=False),
    )
    model.load_state_dict(train.load_checkpoint_head(result.out_dir / "best.pt"), strict=False)
    model.pretraining(False)
    out = pretrained_path(S)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        raise FileExistsError(f"{out} exists already; a run folder holds one pretrained backbone")
    model.save(out)
    return model, result.history
