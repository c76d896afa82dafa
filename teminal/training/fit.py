"""``fit``: the stage runner shared by pretraining, stage A, stage B and the T-CLAP baseline (SPEC §3).

A stage is a ``StageTask``: it knows how many training / validation rows it has and how to
compute the loss of a batch of row indices (features come from the trunk cache, so a step
only runs the trainable heads). ``fit`` runs the loop — the sanity gate (SPEC §6), one
optimizer step per batch (``train_step``, the same code the GPU benchmarks time), the
validation loss, a progress bar, and a stop at the first non-finite loss (SPEC §6:
``gates.NonFiniteLoss`` names the step, the stage and the parameters to look at; nothing is
saved) — over small pieces:

- ``config``: ``TrainConfig``, parameter groups, optimizer (Adam / AdamW), schedule;
- ``precision``: bf16 autocast where it is native (``Precision``);
- ``checkpoints``: ``best.pt`` / ``last.pt``, bit-identical resume, folders of another
  configuration never overwritten;
- ``metrics``: MLflow metrics, one batch per epoch (``MetricBatch``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from ..gates import check_finite_loss
from ..progress import progress as progress_bar
from ..tracking import config_hash
from . import checkpoints
from .checkpoints import FitState
from .config import TrainConfig, check_trainable, make_optimizer, make_scheduler, param_groups
from .metrics import MetricBatch
from .precision import Precision

TIMED = ("train steps", "validation", "checkpoints and metrics")  # FitResult.timings keys


class StageTask(Protocol):
    """What ``fit`` trains: row counts per split and a batch loss on row indices.

    A task that draws random numbers of its own (replay batches, augmentation) may expose
    ``generators() -> list[torch.Generator]``; ``fit`` saves and restores their states with
    ``last.pt`` so a resumed run is exact.
    """

    n_train: int
    n_val: int

    def loss(self, rows: torch.Tensor, *, split: str) -> torch.Tensor:
        """Mean loss over the batch ``rows`` [B] of ``split`` ("train" | "val")."""
        ...


@dataclass
class FitResult:
    out_dir: Path
    best_val: float
    last_epoch: int
    resumed_from: int  # epoch resumed from (0 = fresh start)
    history: list[dict]  # per epoch: epoch, step, train_loss, val_loss
    steps: int = 0  # optimizer steps made by this call (0 when a finished folder is reused)
    steps_per_epoch: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds of this call per phase


def train_step(loss_of: Callable[[], torch.Tensor], *, optimizer: torch.optim.Optimizer,
               params: list[nn.Parameter], grad_clip: float, precision: Precision) -> torch.Tensor:
    """One optimizer step: ``loss_of()`` under ``precision``'s autocast, backward, global
    grad-norm clip to ``grad_clip`` (0 = off), step. Returns the loss, detached (no host sync)."""
    with precision.autocast():
        loss = loss_of()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


def train_epoch(task: StageTask, batches: torch.Tensor, *, optimizer: torch.optim.Optimizer,
                scheduler, params: list[nn.Parameter], grad_clip: float,
                precision: Precision) -> tuple[list[float], list[float]]:
    """One ``train_step`` and one schedule step per row of ``batches`` [S, B]; the step losses
    and learning rates (first group), read back with one host sync."""
    losses_, lrs = [], []
    for rows in batches:  # (B,)
        losses_.append(train_step(lambda: task.loss(rows, split="train"), optimizer=optimizer,
                                  params=params, grad_clip=grad_clip, precision=precision))
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return torch.stack(losses_).float().cpu().tolist(), lrs


@torch.no_grad()
def evaluate_loss(task: StageTask, *, batch_size: int, precision: Precision) -> float:
    """Mean validation loss over ``task``'s val rows (in row order, last batch weighted)."""
    if task.n_val == 0:
        return float("nan")
    total, count = 0.0, 0
    for start in range(0, task.n_val, batch_size):
        rows = torch.arange(start, min(start + batch_size, task.n_val))
        if len(rows) < 2:  # a contrastive batch needs at least two rows
            continue
        with precision.autocast():
            total += float(task.loss(rows, split="val")) * len(rows)
        count += len(rows)
    return total / max(count, 1) if count else float("nan")


@dataclass(kw_only=True)
class _Loop:
    """What every epoch of one ``fit`` call uses."""

    task: StageTask
    model: nn.Module
    config: TrainConfig
    out_dir: Path
    fingerprint: str  # of the configuration; stored in and checked against the checkpoints
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    params: list[nn.Parameter]  # every trained parameter (for clipping)
    precision: Precision
    generators: list[torch.Generator]  # [the shuffle, *the task's own]
    steps_per_epoch: int  # the last partial batch is dropped
    head_state: Callable[[], dict]
    log: MetricBatch
    where: str  # what trains, for error messages ("pretrain/pretrained", "stage B")
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMED, 0.0))
    last_write: float = 0.0  # time.monotonic() of the last last.pt

    def lap(self, name: str, since: float) -> float:
        """Add the seconds since ``since`` to ``timings[name]``; returns now."""
        now = time.perf_counter()
        self.timings[name] += now - since
        return now


def _train_phase(loop: _Loop, epoch: int) -> list[float]:
    """The optimizer steps of ``epoch`` (0-based) on a fresh shuffle; their losses."""
    c, spe = loop.config, loop.steps_per_epoch
    loop.model.train()
    order = torch.randperm(loop.task.n_train, generator=loop.generators[0])  # (n_train,)
    batches = order[: spe * c.batch_size].view(spe, -1)  # (S, B)
    values, lrs = train_epoch(loop.task, batches, optimizer=loop.optimizer,
                              scheduler=loop.scheduler, params=loop.params,
                              grad_clip=c.grad_clip, precision=loop.precision)
    done = epoch * spe  # optimizer steps before this epoch
    check_finite_loss(values, first_step=done + 1, where=f"{loop.where}, epoch {epoch + 1}",
                      split="train", settings=c.settings())
    loop.log.add_steps(values, lrs, first_step=done + 1)
    return values


def _validate(loop: _Loop, epoch: int) -> float:
    """The validation loss after ``epoch``; NaN when there is no validation split."""
    loop.model.eval()
    val = evaluate_loss(loop.task, batch_size=loop.config.batch_size, precision=loop.precision)
    if loop.task.n_val >= 2 and not math.isfinite(val):  # NaN here is not "no validation"
        check_finite_loss([val], first_step=(epoch + 1) * loop.steps_per_epoch,
                          where=f"{loop.where}, epoch {epoch + 1}", split="val",
                          settings=loop.config.settings())
    return val


def _end_epoch(loop: _Loop, state: FitState, epoch: int, train_loss: float, val: float) -> None:
    """Log the epoch, extend the history, write ``best.pt`` / ``last.pt`` when due."""
    step = (epoch + 1) * loop.steps_per_epoch
    loop.log.add("train/epoch_loss", train_loss, step)
    if not math.isnan(val):
        loop.log.add("val/loss", val, step)
    loop.log.flush()
    state.epoch = epoch + 1
    state.history.append({"epoch": epoch + 1, "step": step, "train_loss": train_loss,
                          "val_loss": val})
    last = epoch + 1 == loop.config.epochs
    improved = not math.isnan(val) and val < state.best_val
    if improved or (math.isnan(val) and last):
        state.best_val = val if improved else state.best_val
        checkpoints.save_best(loop.out_dir, head=loop.head_state(), epoch=epoch + 1,
                              val_loss=val, fingerprint=loop.fingerprint)
    if last or time.monotonic() - loop.last_write >= loop.config.checkpoint_every_s:
        checkpoints.save_last(loop.out_dir, head=loop.head_state(), optimizer=loop.optimizer,
                              scheduler=loop.scheduler, state=state,
                              fingerprint=loop.fingerprint, generators=loop.generators)
        loop.last_write = time.monotonic()


def _start(*, task: StageTask, model: nn.Module, params: list, config: TrainConfig,
           out_dir: Path, device: torch.device, fingerprint_extra: dict | None,
           head_state: Callable[[], dict], metric_prefix: str) -> _Loop:
    """Optimizer, schedule, precision and generators of a ``fit`` call (nothing drawn yet)."""
    groups = param_groups(params)
    optimizer = make_optimizer(groups, config)
    steps_per_epoch = task.n_train // config.batch_size
    shuffle = torch.Generator().manual_seed(config.seed)
    fingerprint = config_hash({"train": config.fingerprint_fields(), **(fingerprint_extra or {})})
    return _Loop(
        task=task, model=model, config=config, out_dir=out_dir, fingerprint=fingerprint,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config, steps_per_epoch * config.epochs),
        params=[p for g in groups for p in g["params"]],
        precision=Precision.of(bf16=config.bf16, device=device),
        generators=[shuffle, *getattr(task, "generators", list)()],
        steps_per_epoch=steps_per_epoch, head_state=head_state,
        log=MetricBatch(prefix=metric_prefix), where=f"{metric_prefix or 'stage '}{out_dir.name}")


def fit(*, task: StageTask, model: nn.Module, params: list, config: TrainConfig,
        out_dir: str | Path, device: torch.device, fingerprint_extra: dict | None = None,
        head_state: Callable[[], dict] | None = None,
        load_head_state: Callable[[dict], None] | None = None,
        metric_prefix: str = "", progress: bool = True, label: str = "") -> FitResult:
    """Train ``params`` of ``model`` on ``task``; checkpoints go to ``out_dir`` (SPEC §3).

    Args:
        params: parameters, or parameter-group dicts ``{"params": [...], "lr": ...}`` (e.g. an
            order module with a learning rate of its own); the schedule scales every group.
        head_state / load_head_state: save and restore the trained part (default
            ``model.head_state_dict`` / ``model.load_head_state_dict``).
        fingerprint_extra: the inputs (manifest hash, starting checkpoint, loss settings), so a
            folder is only resumed by the run that wrote it.
        metric_prefix: e.g. ``"pretrain/"``. Metrics (to the active MLflow run, if any, one
            batch per epoch), all on one axis, the number of optimizer steps done:
            ``train/loss`` and ``train/lr`` of step ``k`` at ``k`` (1, 2, …),
            ``train/epoch_loss`` and ``val/loss`` at the epoch's last step, so the curves of
            ``train/loss`` and ``val/loss`` line up in the MLflow UI.
        label: what trains, for the progress bar (``pretrain``, ``A``, ``T-B (1,1,1,1,1)``;
            default the metric prefix, else ``train``).

    Raises:
        SanityError: the training split is smaller than one batch (SPEC §6).
        NonFiniteLoss: a training or validation loss is not finite (SPEC §6).
        FileExistsError: ``out_dir`` holds a checkpoint of another configuration.
    """
    out_dir = Path(out_dir)
    check_trainable(task.n_train, config.batch_size, where=f"{metric_prefix or 'stage '}{out_dir.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    loop = _start(task=task, model=model, params=params, config=config, out_dir=out_dir,
                  device=device, fingerprint_extra=fingerprint_extra,
                  head_state=head_state or model.head_state_dict, metric_prefix=metric_prefix)
    state = checkpoints.resume(out_dir, fingerprint=loop.fingerprint, seed=config.seed,
                               load_head_state=load_head_state or model.load_head_state_dict,
                               optimizer=loop.optimizer, scheduler=loop.scheduler,
                               generators=loop.generators, n_train=task.n_train)
    resumed_from = state.epoch
    if 0 < resumed_from < config.epochs:
        print(f"resuming {out_dir} from epoch {resumed_from}/{config.epochs}")
    loop.last_write = time.monotonic()
    bar = progress_bar(range(resumed_from, config.epochs),
                       desc=label or metric_prefix.rstrip("/") or "train", unit="epoch",
                       disable=not progress, initial=resumed_from, total=config.epochs)
    for epoch in bar:
        tic = time.perf_counter()
        values = _train_phase(loop, epoch)
        tic = loop.lap("train steps", tic)
        val = _validate(loop, epoch)
        tic = loop.lap("validation", tic)
        train_loss = sum(values) / loop.steps_per_epoch
        _end_epoch(loop, state, epoch, train_loss, val)
        loop.lap("checkpoints and metrics", tic)
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val:.3f}")
    if (out_dir / "best.pt").exists():
        # the trained heads; last.pt (with optimizer state, for resuming) stays in the run folder
        loop.log.log_artifact(out_dir / "best.pt", artifact_path=f"checkpoints/{out_dir.name}")
    return FitResult(out_dir=out_dir, best_val=state.best_val, last_epoch=config.epochs,
                     resumed_from=resumed_from, history=state.history,
                     steps=(config.epochs - resumed_from) * loop.steps_per_epoch,
                     steps_per_epoch=loop.steps_per_epoch, timings=loop.timings)
