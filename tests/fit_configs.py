"""``TrainConfig`` for tests that run the library without a run configuration: the
values not given come from the parameter defaults (``teminal.run.params``), the one place
defaults live; ``TrainConfig`` itself has none."""
from __future__ import annotations

from teminal.training.config import TrainConfig
from teminal.run.params import PretrainParams, TrainParams


def fit_config(**fields) -> TrainConfig:
    """The shared ``train`` section's defaults, ``epochs=2, batch_size=16, lr=0.05, seed=0``,
    then ``fields``."""
    t = TrainParams()
    base = dict(epochs=2, batch_size=16, lr=0.05, optimizer=t.optimizer,
                weight_decay=t.weight_decay, grad_clip=t.grad_clip, schedule=t.schedule,
                warmup_steps=t.warmup_steps, seed=0, bf16=t.bf16,
                checkpoint_every_s=t.checkpoint_every_s)
    return TrainConfig(**(base | fields))


def pretrain_fit_config(**fields) -> TrainConfig:
    """The ``pretrain`` section's optimiser (AdamW, weight decay, cosine), then ``fields``."""
    p = PretrainParams()
    return fit_config(**({"optimizer": p.optimizer, "weight_decay": p.weight_decay,
                          "schedule": p.schedule, "grad_clip": p.grad_clip,
                          "warmup_steps": p.warmup_steps} | fields))
