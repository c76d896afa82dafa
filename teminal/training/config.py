"""Optimisation settings of a stage and what is built from them: parameter groups, the
optimizer, the learning-rate schedule, and the SPEC §6 gate on the training split (SPEC §3)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from ..gates import SanityError

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
NOT_FINGERPRINTED = ("checkpoint_every_s",)  # TrainConfig fields that do not change the result


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings of one training run. Every field is explicit (no defaults): the
    pipeline builds it from its parameter sections (``teminal.run.configs``), where the
    defaults and the paper's values (B.5: Adam, constant lr 1e-4, batch 256) are written."""

    epochs: int  # whole epochs (the pipeline derives them from a step budget)
    batch_size: int
    lr: float  # of every parameter group without an "lr" of its own
    optimizer: str  # "adam" | "adamw"
    weight_decay: float
    grad_clip: float  # max global grad norm; 0 = off
    schedule: str  # "constant" | "cosine" (per step, after warmup)
    warmup_steps: int
    seed: int
    bf16: bool  # autocast to bfloat16 on CUDA and on CPUs with native bf16 (bf16_native)
    checkpoint_every_s: float  # last.pt at most this often (and after the last epoch)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.checkpoint_every_s >= 0:
            raise ValueError(f"checkpoint_every_s must be ≥ 0, got {self.checkpoint_every_s}")

    def fingerprint_fields(self) -> dict[str, Any]:
        """The fields that change what training computes (not ``checkpoint_every_s``)."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_FINGERPRINTED}

    def settings(self) -> str:
        """The optimisation settings a non-finite loss is reported with."""
        return (f"lr={self.lr:g}, grad_clip={self.grad_clip:g}, batch_size={self.batch_size}, "
                f"bf16={self.bf16}")


def param_groups(params: list) -> list[dict]:
    """``params`` as torch parameter groups: a list of parameters becomes one group; a list
    of group dicts (``{"params": [...], "lr": ...}``) is kept (a group without ``lr`` uses
    ``TrainConfig.lr``)."""
    params = list(params)
    if not params:
        raise ValueError("params is empty: there is nothing to train")
    is_group = [isinstance(p, dict) for p in params]
    if any(is_group) and not all(is_group):
        raise ValueError("params mixes parameter groups (dicts) and parameters; pass one kind")
    if not all(is_group):
        return [{"params": params}]
    groups = []
    for k, group in enumerate(params):
        if not list(group.get("params", [])):
            raise ValueError(f"parameter group {k} has no 'params'")
        groups.append({**group, "params": list(group["params"])})
    return groups


def make_optimizer(params: list, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW over ``params`` (parameters or parameter groups, see ``param_groups``)."""
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(param_groups(params), lr=config.lr, weight_decay=config.weight_decay)


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warmup, then constant or cosine decay to 0 at ``total_steps``; the factor
    multiplies every group's own learning rate."""

    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule of ``lr_lambda`` on ``optimizer``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))


def check_trainable(n_train: int, batch_size: int, *, where: str) -> None:
    """SPEC §6: a training split smaller than one batch (no optimizer step) is an error."""
    if batch_size < 2:
        raise SanityError(f"{where}: batch_size={batch_size}, but a contrastive batch needs ≥ 2 "
                          "rows (one positive and a negative): set batch_size ≥ 2")
    if n_train < batch_size:
        fix = (f"lower batch_size to ≤ {n_train} or use more data" if n_train >= 2
               else "use more data (more classes, clips or a smaller test_fraction)")
        raise SanityError(f"{where}: the training split 'train' has {n_train} rows, fewer than "
                          f"one batch (batch_size={batch_size}), so no optimizer step would be "
                          f"made: {fix} (SPEC §6)")
