"""A stage's checkpoint folder: ``best.pt`` and ``last.pt``, and resuming from it (SPEC §3, §6).

- ``best.pt`` (heads only) whenever the validation loss improves;
- ``last.pt`` (heads, optimizer, scheduler, random states, history) at most every
  ``TrainConfig.checkpoint_every_s`` seconds and always after the last epoch.

Both are written atomically with a content checksum (``teminal.integrity``; a damaged one stops
the run naming it) and carry the run's fingerprint: a folder written with another configuration
is never overwritten — that is an error naming the folder. A resumed run is bit-identical to an
uninterrupted one: ``last.pt`` holds every random state the loop draws from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..integrity import load_torch, save_torch


@dataclass(kw_only=True)
class FitState:
    """Where training stands: epochs done, best validation loss, the per-epoch history."""

    epoch: int = 0  # epochs done (0 = fresh start)
    best_val: float = float("inf")
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, step, train_loss, val_loss


def open_folder(out_dir: Path, fingerprint: str) -> dict | None:
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


def random_state(generators: list[torch.Generator]) -> dict:
    """torch's global (CPU, CUDA) and ``generators``' states, as ``last.pt`` stores them."""
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


def _resume_random(state: dict, generators: list[torch.Generator], *, n_train: int,
                   where: Path) -> None:
    """Restore the random states saved in ``last.pt``; a ``last.pt`` written before they were
    saved has only the shuffles to replay (``generators[0]`` is the shuffle)."""
    if "random" in state:
        _restore_random_state(state["random"], generators, where)
        return
    for _ in range(state["epoch"]):
        torch.randperm(n_train, generator=generators[0])


def resume(out_dir: Path, *, fingerprint: str, seed: int, load_head_state: Callable[[dict], None],
           optimizer: torch.optim.Optimizer, scheduler, generators: list[torch.Generator],
           n_train: int) -> FitState:
    """Resume from ``out_dir/last.pt`` (heads, optimizer, scheduler, random states) or start
    fresh: then torch's global generator is seeded with ``seed``, because dropout draws from it
    and a stage's result must depend on its inputs only, not on what ran before in this process
    (a reused stage's key promises exactly that)."""
    state = open_folder(out_dir, fingerprint)
    if state is None:
        torch.manual_seed(seed)
        return FitState()
    load_head_state(state["head"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _resume_random(state, generators, n_train=n_train, where=out_dir / "last.pt")
    return FitState(epoch=state["epoch"], best_val=state["best_val"], history=state["history"])


def save_best(out_dir: Path, *, head: dict, epoch: int, val_loss: float, fingerprint: str) -> None:
    """``best.pt``: the heads of ``epoch`` and their validation loss."""
    save_torch({"head": head, "epoch": epoch, "val_loss": val_loss, "fingerprint": fingerprint},
               out_dir / "best.pt")


def save_last(out_dir: Path, *, head: dict, optimizer: torch.optim.Optimizer, scheduler,
              state: FitState, fingerprint: str, generators: list[torch.Generator]) -> None:
    """``last.pt``: everything ``resume`` needs to continue bit-identically."""
    save_torch({"head": head, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": state.epoch,
                "best_val": state.best_val, "history": state.history, "fingerprint": fingerprint,
                "random": random_state(generators)}, out_dir / "last.pt")


def load_checkpoint_head(path: str | Path) -> dict:
    """The head state stored in a ``best.pt`` / ``last.pt``; a clear error if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (did the stage that writes it run?)")
    return load_torch(path, weights_only=False)["head"]  # IntegrityError if damaged
