"""A simulation with a known truth for the ZSTE intervals (SPEC §4 "Intervals").

Each simulated evaluation draws ``n_classes`` classes with a random effect each, ``clips`` test
clips per class with a random effect each, and holds out a share of the unordered class pairs,
each with a random effect of its own. Like ``pairing: folds`` (one clip draw per pair, both
orders ``a_i ⊕ a_j`` and ``a_j ⊕ a_i`` asked) or ``pairing: paper`` (``clips = 1``: every pair
of class i uses the same clip). An item is answered correctly with probability
``sigmoid(mu + class_i + class_j + clip_a + clip_b + pair_ij)``; its score is that Bernoulli
draw. With ``seeds`` > 1 the same items are scored again per training seed, each seed adding
a shift (``sd_seed``) and a per-item effect (``sd_seed_item``). The true mean is the
expectation over all random effects (Gauss–Hermite quadrature), the
figure an infinitely large evaluation would give. :func:`coverage` counts how often an interval
method covers it; the baseline :func:`pair_percentile` is the former method (a percentile
bootstrap over unordered pairs).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from teminal.eval.intervals import Interval, item_groups, item_interval, seed_interval


@dataclass(frozen=True, kw_only=True)
class SimWorld:
    """One simulated evaluation design and its random-effect sizes (logit scale)."""

    n_classes: int = 12  # classes (ZSTE needs ≥ 3)
    clips: int = 3  # test clips per class (1 = pairing: paper)
    pair_fraction: float = 0.5  # share of unordered class pairs held out
    mu: float = 0.0  # intercept
    sd_class: float = 1.0  # class random effect
    sd_clip: float = 0.5  # clip random effect
    sd_pair: float = 0.5  # unordered-pair random effect
    seeds: int = 1  # training seeds scored on the same items
    sd_seed: float = 0.0  # seed random effect (a shift of every item)
    sd_seed_item: float = 0.0  # seed × item random effect

    def __post_init__(self) -> None:
        if (self.n_classes < 3 or self.clips < 1 or not 0 < self.pair_fraction <= 1
                or self.seeds < 1):
            raise ValueError(f"SimWorld: need n_classes >= 3, clips >= 1, seeds >= 1, "
                             f"0 < pair_fraction <= 1; got {self}")

    def true_mean(self) -> float:
        """E sigmoid(mu + N(0, σ²)), σ² the sum of every effect's variance (two classes, two
        clips), by 80-point Gauss–Hermite."""
        sd = np.sqrt(2 * self.sd_class**2 + 2 * self.sd_clip**2 + self.sd_pair**2
                     + self.sd_seed**2 + self.sd_seed_item**2)
        x, w = np.polynomial.hermite.hermgauss(80)
        return float((w * _sigmoid(self.mu + np.sqrt(2) * sd * x)).sum() / np.sqrt(np.pi))


def simulate(world: SimWorld, rng: np.random.Generator) -> pd.DataFrame:
    """One ZSTE-shaped items frame (``seed, i, j, key, cluster, score``): two items per held-out
    unordered pair (both orders of one clip draw), scored once per seed."""
    k, m = world.n_classes, world.clips
    cls = rng.normal(0, world.sd_class, k)
    clip = rng.normal(0, world.sd_clip, (k, m))
    pairs = np.array(list(itertools.combinations(range(k), 2)))  # [P_all, 2]
    n_keep = max(1, round(world.pair_fraction * len(pairs)))
    pairs = pairs[np.sort(rng.choice(len(pairs), n_keep, replace=False))]  # [P, 2]
    a, b = rng.integers(0, m, len(pairs)), rng.integers(0, m, len(pairs))  # clip draw per pair
    eta = (world.mu + cls[pairs[:, 0]] + cls[pairs[:, 1]] + clip[pairs[:, 0], a]
           + clip[pairs[:, 1], b] + rng.normal(0, world.sd_pair, len(pairs)))  # [P]
    items = pd.DataFrame({"i": np.repeat(pairs[:, 0], 2), "j": np.repeat(pairs[:, 1], 2)})  # [2P]
    x = [f"c{c}_{d}.wav" for c, d in zip(pairs[:, 0], a)]
    y = [f"c{c}_{d}.wav" for c, d in zip(pairs[:, 1], b)]
    items["key"] = [key for u, v in zip(x, y) for key in (f"seq|{u}|{v}", f"seq|{v}|{u}")]
    items["cluster"] = items.i * k + items.j
    frames = []
    for s in range(world.seeds):
        logit = (np.repeat(eta, 2) + rng.normal(0, world.sd_seed)
                 + rng.normal(0, world.sd_seed_item, len(items)))  # [2P]
        frames.append(items.assign(seed=s, score=(rng.random(len(items)) < _sigmoid(logit)) * 1.0))
    return pd.concat(frames, ignore_index=True)


def pair_percentile(items: pd.DataFrame, *, n_boot: int, seed) -> Interval:
    """The former interval (baseline): a 95 % percentile bootstrap over unordered pairs."""
    score, cluster = items.score.to_numpy(), items.cluster.to_numpy()
    ids, inverse = np.unique(cluster, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=score, minlength=len(ids))  # [G]
    counts = np.bincount(inverse.ravel(), minlength=len(ids)).astype(np.float64)  # [G]
    draw = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    lo, hi = np.percentile(sums[draw].sum(axis=1) / counts[draw].sum(axis=1), [2.5, 97.5])
    return Interval(float(score.mean()), float(lo), float(hi))


def class_bootstrap(items: pd.DataFrame, *, n_boot: int, seed) -> Interval:
    """The interval of :mod:`teminal.eval.intervals` on a simulated items frame (one seed:
    ``item_interval``; several: ``seed_interval`` on the per-seed score vectors)."""
    n_seeds = int(items.seed.max()) + 1  # simulate() writes seed-major blocks of equal size
    scores = items.score.to_numpy().reshape(n_seeds, -1)  # [S, N]
    groups = item_groups(items.iloc[: scores.shape[1]])
    return seed_interval(list(scores), groups, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class Coverage:
    """Share of simulated evaluations whose interval covers the true mean, and mean width."""

    covered: float
    width: float
    n_sims: int
    truth: float


def coverage(world: SimWorld, method: Callable[..., Interval], *, n_sims: int, n_boot: int,
             seed: int) -> Coverage:
    """Coverage of ``method(items, n_boot=, seed=)`` over ``n_sims`` evaluations of ``world``."""
    truth, rng = world.true_mean(), np.random.default_rng(seed)
    hits, widths = [], []
    for s in range(n_sims):
        iv = method(simulate(world, rng), n_boot=n_boot, seed=(seed, s))
        hits.append(iv.low <= truth <= iv.high)
        widths.append(iv.high - iv.low)
    return Coverage(covered=float(np.mean(hits)), width=float(np.mean(widths)), n_sims=n_sims,
                    truth=truth)


def width_table(items: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Old (:func:`pair_percentile`, clusters = the ``cluster`` column) and new intervals of a
    run's items frame (``items/*.parquet``: columns ``set, task, …``), percent, one row per
    set and task: ``value, old_low, old_high, new_low, new_high, old_width, new_width``."""
    records = []
    for (name, task), df in items.groupby(["set", "task"], sort=False):
        old = pair_percentile(df, n_boot=n_boot, seed=seed).percent()
        new = item_interval(df.score.to_numpy(), item_groups(df), n_boot=n_boot,
                            seed=seed).percent()
        records.append(dict(set=name, task=task, n=len(df), value=new.value,
                            old_low=old.low, old_high=old.high, new_low=new.low,
                            new_high=new.high, old_width=old.high - old.low,
                            new_width=new.high - new.low))
    return pd.DataFrame.from_records(records)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
