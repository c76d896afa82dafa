"""The stage runner shared by pretraining, stage A, stage B and the T-CLAP baseline (SPEC §3).

A stage is a ``StageTask``: it knows how many training / validation rows it has and how to
compute the loss of a batch of row indices (features come from the trunk cache, so a step
only runs the trainable heads). ``fit`` owns the rest: optimizer, schedule, bf16 autocast on
CUDA, gradient clipping, a progress bar, ``train/loss`` per step and ``val/loss`` per epoch in
MLflow, ``last.pt`` / ``best.pt`` checkpoints written atomically, and resuming from
``last.pt`` after an interruption. A checkpoint folder written with another configuration is
never overwritten: that is an error naming the folder.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import mlflow
import torch
from torch import nn
from tqdm.auto import tqdm

from .tracking import config_hash

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings of one stage (paper B.5: Adam, lr 1e-4, batch 256)."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    schedule: str = "cosine"  # "constant" | "cosine" (per step, after warmup)
    warmup_steps: int = 0
    seed: int = 0
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)

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


class StageTask(Protocol):
    """What ``fit`` trains: row counts per split and a batch loss on row indices."""

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
    history: list[dict]


def make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warmup, then constant or cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _check_out_dir(out_dir: Path, fingerprint: str) -> dict | None:
    """The resumable ``last.pt`` state, or None for a fresh folder. A folder trained with
    another configuration is an error (never overwritten)."""
    last = out_dir / "last.pt"
    if not last.exists():
        return None
    state = torch.load(last, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise FileExistsError(
            f"{out_dir} holds a checkpoint trained with another configuration "
            f"(fingerprint {state.get('fingerprint')} ≠ {fingerprint}); choose another checkpoint "
            "folder (tag) or delete it yourself"
        )
    return state


@torch.no_grad()
def evaluate_loss(task: StageTask, *, batch_size: int, autocast: Callable) -> float:
    """Mean validation loss over ``task``'s val rows (in row order, last batch weighted)."""
    if task.n_val == 0:
        return float("nan")
    total, count = 0.0, 0
    for start in range(0, task.n_val, batch_size):
        rows = torch.arange(start, min(start + batch_size, task.n_val))
        if len(rows) < 2:  # a contrastive batch needs at least two rows
            continue
        with autocast():
            total += float(task.loss(rows, split="val")) * len(rows)
        count += len(rows)
    return total / max(count, 1)


def fit(*, task: StageTask, model: nn.Module, params: list[nn.Parameter], config: TrainConfig,
        out_dir: str | Path, device: torch.device, fingerprint_extra: dict | None = None,
        head_state: Callable[[], dict] | None = None,
        load_head_state: Callable[[dict], None] | None = None,
        metric_prefix: str = "", progress: bool = True) -> FitResult:
    """Train ``params`` of ``model`` on ``task``; checkpoints go to ``out_dir``.

    ``head_state`` / ``load_head_state`` save and restore the trained part (default: the
    state of ``params`` through ``model.head_state_dict``). ``fingerprint_extra`` names the
    inputs (manifest hash, starting checkpoint, loss settings) so a folder is only resumed
    by the run that wrote it. Metrics: ``{prefix}train/loss`` per step, ``{prefix}val/loss``
    per epoch, ``{prefix}train/lr``; both checkpoints are logged to the active MLflow run.
    """
    if task.n_train < 2:
        raise ValueError(f"the training split has {task.n_train} rows; a contrastive stage needs ≥ 2")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    head_state = head_state or model.head_state_dict
    load_head_state = load_head_state or model.load_head_state_dict
    fingerprint = config_hash({"train": asdict(config), **(fingerprint_extra or {})})
    optimizer = make_optimizer(params, config)
    steps_per_epoch = max(1, task.n_train // config.batch_size) if task.n_train >= config.batch_size else 1
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))
    use_bf16 = config.bf16 and device.type == "cuda"

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)

    start_epoch, best_val, history = 0, float("inf"), []
    state = _check_out_dir(out_dir, fingerprint)
    if state is not None:
        load_head_state(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_val, history = state["epoch"], state["best_val"], state["history"]
        if start_epoch < config.epochs:
            print(f"resuming {out_dir} from epoch {start_epoch}/{config.epochs}")
    resumed_from = start_epoch
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(start_epoch):  # keep the shuffles of a resumed run identical
        torch.randperm(task.n_train, generator=generator)

    bar = tqdm(range(start_epoch, config.epochs), desc=f"{metric_prefix or 'train'}",
               disable=not progress, initial=start_epoch, total=config.epochs)
    for epoch in bar:
        model.train()
        order = torch.randperm(task.n_train, generator=generator)
        running = 0.0
        for k in range(steps_per_epoch):
            rows = order[k * config.batch_size:(k + 1) * config.batch_size]
            if len(rows) < 2:
                continue
            with autocast():
                loss = task.loss(rows, split="train")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            step = epoch * steps_per_epoch + k
            running += float(loss)
            mlflow.log_metrics({f"{metric_prefix}train/loss": float(loss),
                                f"{metric_prefix}train/lr": scheduler.get_last_lr()[0]}, step=step)
        model.eval()
        val = evaluate_loss(task, batch_size=config.batch_size, autocast=autocast)
        train_loss = running / steps_per_epoch
        step = (epoch + 1) * steps_per_epoch
        mlflow.log_metrics({f"{metric_prefix}train/epoch_loss": train_loss}, step=step)
        if not math.isnan(val):
            mlflow.log_metric(f"{metric_prefix}val/loss", val, step=step)
        history.append({"epoch": epoch + 1, "step": step, "train_loss": train_loss, "val_loss": val})
        improved = not math.isnan(val) and val < best_val
        if improved or (math.isnan(val) and epoch + 1 == config.epochs):
            best_val = val if improved else best_val
            _atomic_save({"head": head_state(), "epoch": epoch + 1, "val_loss": val,
                          "fingerprint": fingerprint}, out_dir / "best.pt")
        _atomic_save({"head": head_state(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "best_val": best_val,
                      "history": history, "fingerprint": fingerprint}, out_dir / "last.pt")
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val:.3f}")
    if (out_dir / "best.pt").exists():
        mlflow.log_artifact(str(out_dir / "best.pt"), artifact_path=f"checkpoints/{out_dir.name}")
    mlflow.log_artifact(str(out_dir / "last.pt"), artifact_path=f"checkpoints/{out_dir.name}")
    return FitResult(out_dir=out_dir, best_val=best_val, last_epoch=config.epochs,
                     resumed_from=resumed_from, history=history)


def load_checkpoint_head(path: str | Path) -> dict:
    """The head state stored in a ``best.pt`` / ``last.pt``; a clear error if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (did the stage that writes it run?)")
    return torch.load(path, map_location="cpu", weights_only=False)["head"]
