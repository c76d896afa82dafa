"""The stage runner shared by pretraining, stage A, stage B and the T-CLAP baseline (SPEC §3).

A stage is a ``StageTask``: it knows how many training / validation rows it has and how to
compute the loss of a batch of row indices (features come from the trunk cache, so a step
only runs the trainable heads). ``fit`` owns the rest: the sanity gate (SPEC §6), optimizer
(parameters or parameter groups), schedule, bf16 autocast (CUDA, or a CPU with native bf16
matmuls), gradient clipping, a
progress bar, MLflow metrics (one batch per epoch), checkpoints written atomically with a
content checksum (``teminal.integrity``; a damaged one stops the run naming it), resuming from
``last.pt`` after an interruption, and a stop at the first non-finite loss (SPEC §6:
``NonFiniteLoss`` names the step, the stage and the parameters to look at; nothing is saved):

- ``best.pt`` (heads only) whenever the validation loss improves;
- ``last.pt`` (heads, optimizer, scheduler, random states, history) at most every
  ``TrainConfig.checkpoint_every_s`` seconds and always after the last epoch.

A checkpoint folder written with another configuration is never overwritten: that is an
error naming the folder.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import mlflow
import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from torch import nn
from .progress import progress as progress_bar

from . import determinism
from .gates import NonFiniteLoss, SanityError, check_finite_loss  # noqa: F401 (re-export)
from .integrity import load_torch, save_torch
from .tracking import config_hash

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
NOT_FINGERPRINTED = ("checkpoint_every_s",)  # TrainConfig fields that do not change the result
TIMED = ("train steps", "validation", "checkpoints and metrics")  # FitResult.timings keys


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


def _settings(config: TrainConfig) -> str:
    """The optimisation settings a non-finite loss is reported with."""
    return (f"lr={config.lr:g}, grad_clip={config.grad_clip:g}, batch_size={config.batch_size}, "
            f"bf16={config.bf16}")


def _check_out_dir(out_dir: Path, fingerprint: str) -> dict | None:
    """The resumable ``last.pt`` state, or None for a fresh start. A folder whose ``last.pt``
    or ``best.pt`` was trained with another configuration is an error (never overwritten)."""
    states = {name: load_torch(out_dir / name, weights_only=False)  # IntegrityError if damaged
              for name in ("last.pt", "best.pt") if (out_dir / name).exists()}
    for name, state in states.items():
        if state.get("fingerprint") != fingerprint:
            raise FileExistsError(
                f"{out_dir / name} was trained with another configuration "
                f"(fingerprint {state.get('fingerprint')} ≠ {fingerprint}); choose another "
                "checkpoint folder (tag) or delete it yourself")
    return states.get("last.pt")


def _random_state(generators: list[torch.Generator]) -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda,
            "generators": [g.get_state() for g in generators]}


def _restore_random_state(state: dict, generators: list[torch.Generator], where: Path) -> None:
    if len(state["generators"]) != len(generators):
        raise ValueError(f"{where} holds {len(state['generators'])} random generator states but "
                         f"this task has {len(generators)}: it was written by another task; "
                         "choose another checkpoint folder (tag)")
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    for g, saved in zip(generators, state["generators"]):
        g.set_state(saved)


class _MetricBatch:
    """Metrics collected in memory and sent with one ``MlflowClient.log_batch`` per flush;
    nothing is logged (or kept) when no MLflow run is active."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.pending = prefix, []
        self.run = mlflow.active_run()

    def add(self, name: str, value: float, step: int) -> None:
        if self.run is not None:
            self.pending.append(Metric(key=self.prefix + name, value=float(value),
                                       timestamp=int(time.time() * 1000), step=int(step)))

    def flush(self) -> None:
        if self.run is not None and self.pending:
            MlflowClient().log_batch(self.run.info.run_id, metrics=self.pending)
        self.pending = []


def _resume_random(state: dict, generators: list[torch.Generator], *, n_train: int,
                   where: Path) -> None:
    """Restore the random states saved in ``last.pt``; a ``last.pt`` written before they were
    saved has only the shuffles to replay."""
    if "random" in state:
        _restore_random_state(state["random"], generators, where)
        return
    for _ in range(state["epoch"]):
        torch.randperm(n_train, generator=generators[0])


def _train_epoch(task: StageTask, batches: torch.Tensor, optimizer: torch.optim.Optimizer,
                 scheduler, params: list[nn.Parameter], config: TrainConfig,
                 autocast: Callable) -> tuple[list[float], list[float]]:
    """One optimizer step per row of ``batches`` [S, B]; the step losses and learning rates
    (first group), read back with one host sync."""
    losses_, lrs = [], []
    for rows in batches:  # (B,)
        with autocast():
            loss = task.loss(rows, split="train")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        scheduler.step()
        losses_.append(loss.detach())
        lrs.append(scheduler.get_last_lr()[0])
    return torch.stack(losses_).float().cpu().tolist(), lrs


def _add_time(timings: dict[str, float], name: str, since: float) -> float:
    """Add the seconds since ``since`` to ``timings[name]``; returns now."""
    now = time.perf_counter()
    timings[name] += now - since
    return now


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
    return total / max(count, 1) if count else float("nan")


def bf16_native(device: torch.device) -> bool:
    """True on CUDA and on a CPU whose oneDNN runs bf16 matmuls natively (AVX512-BF16 / AMX):
    there bf16 autocast is ~2× faster; on other CPUs it would be emulated, slower than fp32.
    Never under the deterministic CPU mode (``teminal.determinism``: bf16 off)."""
    if device.type == "cuda":
        return True
    try:
        return device.type == "cpu" and not determinism.active() \
            and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fit(*, task: StageTask, model: nn.Module, params: list, config: TrainConfig,
        out_dir: str | Path, device: torch.device, fingerprint_extra: dict | None = None,
        head_state: Callable[[], dict] | None = None,
        load_head_state: Callable[[dict], None] | None = None,
        metric_prefix: str = "", progress: bool = True, label: str = "") -> FitResult:
    """Train ``params`` of ``model`` on ``task``; checkpoints go to ``out_dir``.

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
        FileExistsError: ``out_dir`` holds a checkpoint of another configuration.
    """
    out_dir = Path(out_dir)
    check_trainable(task.n_train, config.batch_size, where=f"{metric_prefix or 'stage '}{out_dir.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    head_state = head_state or model.head_state_dict
    load_head_state = load_head_state or model.load_head_state_dict
    fingerprint = config_hash({"train": config.fingerprint_fields(), **(fingerprint_extra or {})})
    groups = param_groups(params)
    flat = [p for g in groups for p in g["params"]]
    optimizer = make_optimizer(groups, config)
    steps_per_epoch = task.n_train // config.batch_size  # the last partial batch is dropped
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config, steps_per_epoch * config.epochs))
    use_bf16 = config.bf16 and bf16_native(device)

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)

    shuffle = torch.Generator().manual_seed(config.seed)
    generators = [shuffle, *getattr(task, "generators", list)()]
    start_epoch, best_val, history = 0, float("inf"), []
    state = _check_out_dir(out_dir, fingerprint)
    if state is None:
        # dropout draws from torch's global generator: seed it, so a stage's result depends on
        # its inputs only, not on what else ran before in this process (a reused stage's key
        # promises exactly that)
        torch.manual_seed(config.seed)
    else:
        load_head_state(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_val, history = state["epoch"], state["best_val"], state["history"]
        _resume_random(state, generators, n_train=task.n_train, where=out_dir / "last.pt")
        if start_epoch < config.epochs:
            print(f"resuming {out_dir} from epoch {start_epoch}/{config.epochs}")
    resumed_from, steps = start_epoch, 0
    timings = dict.fromkeys(TIMED, 0.0)
    log = _MetricBatch(metric_prefix)
    last_write = time.monotonic()
    bar = progress_bar(range(start_epoch, config.epochs),
                       desc=label or metric_prefix.rstrip("/") or "train", unit="epoch",
                       disable=not progress, initial=start_epoch, total=config.epochs)
    for epoch in bar:
        tic = time.perf_counter()
        model.train()
        order = torch.randperm(task.n_train, generator=shuffle)  # (n_train,)
        batches = order[: steps_per_epoch * config.batch_size].view(steps_per_epoch, -1)  # (S, B)
        step_values, lrs = _train_epoch(task, batches, optimizer, scheduler, flat, config, autocast)
        done = epoch * steps_per_epoch  # optimizer steps before this epoch
        where = f"{metric_prefix or 'stage '}{out_dir.name}, epoch {epoch + 1}"
        check_finite_loss(step_values, first_step=done + 1, where=where, split="train",
                          settings=_settings(config))
        for k, (value, lr) in enumerate(zip(step_values, lrs)):
            log.add("train/loss", value, done + k + 1)  # after step done + k + 1
            log.add("train/lr", lr, done + k + 1)
        steps += steps_per_epoch
        tic = _add_time(timings, "train steps", tic)
        model.eval()
        val = evaluate_loss(task, batch_size=config.batch_size, autocast=autocast)
        if task.n_val >= 2 and not math.isfinite(val):  # NaN here is not "no validation"
            check_finite_loss([val], first_step=done + steps_per_epoch, where=where,
                              split="val", settings=_settings(config))
        tic = _add_time(timings, "validation", tic)
        train_loss = sum(step_values) / steps_per_epoch
        step = (epoch + 1) * steps_per_epoch
        log.add("train/epoch_loss", train_loss, step)
        if not math.isnan(val):
            log.add("val/loss", val, step)
        log.flush()
        history.append({"epoch": epoch + 1, "step": step, "train_loss": train_loss, "val_loss": val})
        improved = not math.isnan(val) and val < best_val
        if improved or (math.isnan(val) and epoch + 1 == config.epochs):
            best_val = val if improved else best_val
            save_torch({"head": head_state(), "epoch": epoch + 1, "val_loss": val,
                        "fingerprint": fingerprint}, out_dir / "best.pt")
        if epoch + 1 == config.epochs or time.monotonic() - last_write >= config.checkpoint_every_s:
            save_torch({"head": head_state(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                        "best_val": best_val, "history": history, "fingerprint": fingerprint,
                        "random": _random_state(generators)}, out_dir / "last.pt")
            last_write = time.monotonic()
        _add_time(timings, "checkpoints and metrics", tic)
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val:.3f}")
    if log.run is not None and (out_dir / "best.pt").exists():
        # the trained heads; last.pt (with optimizer state, for resuming) stays in the run folder
        mlflow.log_artifact(str(out_dir / "best.pt"), artifact_path=f"checkpoints/{out_dir.name}")
    return FitResult(out_dir=out_dir, best_val=best_val, last_epoch=config.epochs,
                     resumed_from=resumed_from, history=history, steps=steps,
                     steps_per_epoch=steps_per_epoch, timings=timings)


def load_checkpoint_head(path: str | Path) -> dict:
    """The head state stored in a ``best.pt`` / ``last.pt``; a clear error if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (did the stage that writes it run?)")
    return load_torch(path, weights_only=False)["head"]  # IntegrityError if damaged
