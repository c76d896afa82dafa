"""Parameter sections → library configs: the one place a step turns ``run/params.py`` values
into what the library takes (SPEC §1–§3). Every step builds its library configs here, so a
parameter's path is ``params/*.yaml`` → ``RunConfig`` section → one function below → library.

Training budgets (``optimizer_steps`` of ``pretrain``, ``stage_a``, ``stage_b``;
``ablations.order_steps``) are optimizer steps; ``budget`` derives the whole epochs
``train.fit`` runs: ``epochs = ceil(steps / steps_per_epoch)`` with ``steps_per_epoch =
n_train // batch_size`` (``fit`` drops the last partial batch), so a run makes ``epochs ×
steps_per_epoch ≥ steps`` steps — exactly ``steps`` when it is a multiple (the defaults are, on
the embedded worlds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mlflow

from .. import losses
from ..training.config import TrainConfig, check_trainable
from ..data.pairs import PairingConfig
from ..data.captions import CaptionTemplates
from ..data.synth_world import WorldConfig
from ..models.tiny import TinyConfig
from .params import (DataParams, ModelParams, PretrainParams, Setting, StageAParams,
                     StageBParams, TrainParams)


@dataclass(frozen=True)
class Budget:
    """A training budget in optimizer steps and the whole epochs that realise it."""

    steps: int  # asked (the section's ``optimizer_steps``)
    steps_per_epoch: int  # training rows // batch size

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)

    @property
    def total_steps(self) -> int:
        """Optimizer steps actually made: ``epochs × steps_per_epoch`` (≥ ``steps``)."""
        return self.epochs * self.steps_per_epoch

    def log(self, *, prefix: str = "") -> None:
        """``<prefix>budget/steps``, ``…/epochs``, ``…/steps_per_epoch`` as metrics of the
        active MLflow run (nothing without one)."""
        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"{prefix}budget/steps": self.total_steps,
                                f"{prefix}budget/epochs": self.epochs,
                                f"{prefix}budget/steps_per_epoch": self.steps_per_epoch})


def budget(*, steps: int, n_train: int, batch_size: int, where: str) -> Budget:
    """The budget of ``steps`` over ``n_train`` training rows; a split smaller than one batch
    is the SPEC §6 ``SanityError`` naming ``where``."""
    check_trainable(n_train, batch_size, where=where)
    return Budget(steps=steps, steps_per_epoch=n_train // batch_size)


def _fit_config(*, b: Budget, batch_size: int, lr: float, opt, shared: TrainParams,
                seed: int) -> TrainConfig:
    """``opt``: the section holding optimizer, weight_decay, grad_clip, schedule, warmup."""
    return TrainConfig(
        epochs=b.epochs, batch_size=batch_size, lr=lr, optimizer=opt.optimizer,
        weight_decay=opt.weight_decay, grad_clip=opt.grad_clip, schedule=opt.schedule,
        warmup_steps=opt.warmup_steps, seed=seed, bf16=shared.bf16,
        checkpoint_every_s=shared.checkpoint_every_s)


def stage_config(*, shared: TrainParams, stage: StageAParams | StageBParams, seed: int,
                 n_train: int, where: str) -> tuple[TrainConfig, Budget]:
    """Stage A / B: the stage's budget, batch and lr with the shared ``train`` section."""
    b = budget(steps=stage.optimizer_steps, n_train=n_train, batch_size=stage.batch_size,
               where=where)
    return _fit_config(b=b, batch_size=stage.batch_size, lr=stage.lr, opt=shared,
                       shared=shared, seed=seed), b


def pretrain_config(*, p: PretrainParams, shared: TrainParams, seed: int,
                    n_train: int) -> tuple[TrainConfig, Budget]:
    """Pretraining: everything from the ``pretrain`` section; ``bf16`` and
    ``checkpoint_every_s`` from ``train``."""
    b = budget(steps=p.optimizer_steps, n_train=n_train, batch_size=p.batch_size,
               where="pretraining")
    return _fit_config(b=b, batch_size=p.batch_size, lr=p.lr, opt=p, shared=shared,
                       seed=seed), b


def stage_a_weights(p: StageAParams) -> losses.StageAWeights:
    return losses.StageAWeights(alpha_same=p.alpha_same, alpha_diff=p.alpha_diff, beta=p.beta_a)


def stage_b_weights(p: StageBParams) -> losses.StageBWeights:
    """The five α/β of a stage-B section (SPEC §3 table)."""
    return losses.StageBWeights(**{k: getattr(p, k) for k in losses.SETTING_FIELDS})


def setting_of(p: StageBParams) -> Setting:
    """``(α_st, α_ct, α_so, α_co, β)`` of a stage-B section (ablation rows, labels)."""
    return stage_b_weights(p).setting


def with_setting(setting: Setting) -> dict[str, float]:
    """The stage-B fields a ``Setting`` sets (``StageBParams.model_copy``-style update)."""
    return dict(zip(losses.SETTING_FIELDS, losses.StageBWeights.from_setting(setting).setting))


def tiny_config(m: ModelParams, *, sample_rate: int, seed: int,
                audio_head: str = "pooled") -> TinyConfig:
    w = m.tiny_width
    return TinyConfig(sample_rate=sample_rate, seed=seed, hop=m.tiny_hop,
                      channels=(w, 2 * w, 4 * w, 8 * w), audio_head=audio_head)


def world_config(p: DataParams) -> WorldConfig:
    return WorldConfig(n_classes=p.world_classes, clips_per_class=p.world_clips_per_class,
                       clip_seconds=p.world_clip_seconds, sample_rate=p.world_sample_rate,
                       seed=p.world_seed)


def pairing(p: DataParams) -> PairingConfig:
    return PairingConfig(pairing=p.pairing, seed=p.pair_seed, test_fraction=p.test_fraction,
                         val_fraction=p.val_fraction, test_fold=p.test_fold, val_fold=p.val_fold,
                         train_repeats=p.train_repeats, eval_repeats=p.eval_repeats)


def templates(p: DataParams) -> CaptionTemplates:
    return CaptionTemplates(single=p.caption_single, double=p.caption_double,
                            before=p.caption_before, after=p.caption_after,
                            while_=p.caption_while, class_prompt=p.caption_class)
