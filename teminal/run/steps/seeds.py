"""Seeds as an axis: every training-dependent result once per training seed (SPEC §4 "Intervals").

``config.training_seeds`` lists the seeds (``-p seeds=5`` → ``seed, seed + 1, …``; ``-p
seeds=[0,1,2]``). A step that trains runs once per seed, each in its own MLflow run: with several
seeds a child run ``seed <n>`` of the active run, tagged ``teminal.seed``; with one seed the active
run itself (tagged too), so a single-seed run keeps its records and its numbers. What does not
depend on the seed — data, manifests, the pretrained backbone and its trunk cache, the pretrained
model's evaluation, the level/duration probe — is built once and reused by every seed.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

import mlflow

from ... import tracking
from ..keys import SEED_TAG
from ..session import Session

T = TypeVar("T")


@dataclass(frozen=True)
class PerSeed(Generic[T]):
    """One result per training seed, in the order of ``config.training_seeds``."""

    by_seed: dict[int, T]

    @property
    def base(self) -> T:
        """The first seed's result: what a notebook's views show."""
        return next(iter(self.by_seed.values()))

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.by_seed)


@contextmanager
def seed_run(S: Session, seed: int, *, tags: dict[str, str] | None = None) -> Iterator[None]:
    """The MLflow run of one seed (module docstring): a nested ``seed <n>`` run when the run has
    several training seeds, else the active run, tagged ``teminal.seed`` (and ``tags``)."""
    all_tags = {SEED_TAG: str(seed), **(tags or {})}
    if len(S.config.training_seeds) == 1:
        mlflow.set_tags(all_tags)
        yield
        return
    with tracking.run(run_name=f"seed {seed}", tags=all_tags):  # nested under the active run
        yield


def for_seeds(S: Session, fn: Callable[[int], T], *,
              tags: dict[str, str] | None = None) -> PerSeed[T]:
    """``fn(seed)`` for every training seed, each inside its ``seed_run``."""
    out: dict[int, T] = {}
    for seed in S.config.training_seeds:
        with seed_run(S, seed, tags=tags):
            out[seed] = fn(seed)
    return PerSeed(out)
