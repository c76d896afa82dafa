"""95 % intervals of item means, across seeds, and of paired differences (SPEC §4 "Intervals").

The one home of interval arithmetic. Scores are per-item values in [0, 1] (ZSTE credits);
results are in the same units (callers make percent).

**Which effects are resampled.** A ZSTE item is a question about one audio built from one or
two clips of one or two classes. Items share classes (each class sits in many pairs) and clips
(each clip in several pairs; under ``pairing: paper`` one clip per class for all of them), so
items are not independent. :func:`item_groups` gives each item the ids of the *classes* it
involves (``i`` and ``j``; ``label`` for 1A). Those are the resampled units: a multi-way
(crossed, "dyadic") cluster bootstrap in which every class gets one random weight per draw and
an item weighs the product of the weights of its classes (Owen 2007, "The pigeonhole
bootstrap"; with two classes per item it is the vertex bootstrap of dyadic data). Clips are
nested in classes and a pair is the cell of two classes, so their effects are carried by the
classes' weights: resampling them as extra factors multiplies item weights by more independent
factors and inflates the residual part of the variance (2^G - 1 for G factors) without adding
anything the classes miss (adding clips to Task 1 gave 99–100 % coverage in the simulation).
Task 1 (one clip, one class) resamples its classes, each drawn class with all its clips. The
product of two weights counts the covariance of two items of one pair three times, which
makes up for the small-class shrinkage of Exp(1) weights ((K-1)/(K+1) per factor): on the
simulation of :mod:`teminal.eval.intervals_sim` (class, clip and pair random effects, known truth)
the interval covers 95–97 % where the former pair-clustered percentile one covered 65–77 %,
and 99 % when class effects are weak (README "Intervals").

**The interval.** Weights are i.i.d. Exp(1) (mean 1, variance 1, never all zero: a smooth,
Bayesian-bootstrap version of resampling); each draw gives the weighted item mean, and their
spread the standard error ``se``, floored at the i.i.d. standard error ``s/√N`` of the item
scores (a design effect below 1 is not credited: a pair whose two orders score 1 and 0 has
the same mean in every draw, yet its items disagree). The interval is the Wilson score
interval with the effective sample size ``n_eff = p (1 - p) / se²`` (Korn & Graubard 1998 for
clustered proportions; Dean & Pagano 2015), made smaller by ``(z / t_df)²`` with ``df`` = the
number of classes - 1 (few classes → wider). In the interior it is ≈ ``p ± t·se``; near 0 or
1 it is asymmetric and stays inside [0, 1]. So no interval collapses when items disagree.
**When all N items agree** on one value v (every score 0, every score 1, or every score the
same tie credit), no spread is observed: the share of disagreeing items in the population is
then bounded by the Wilson bound for 0 of N, ``q = z²/(N + z²)`` (≈ the rule of three), and
the mean can move by at most that share towards either end: ``[v - q·v, v + q·(1 - v)]``
(``[0, q]`` at 0 — what Wilson gives for 0 of N). Identical items are scored once upstream
(:mod:`teminal.eval.prompts`).

**Seeds.** :func:`seed_interval`: one score vector per training seed on the same items, the
mean over seeds and items. Its variance has two parts, added: evaluation sampling (the class
bootstrap above, on the seed-averaged item scores) and seed sampling (the variance of the
per-seed means / S, unbiased; a bootstrap over 5 seeds would shrink it by (S-1)/(S+1)). The
interval is the Wilson one above with the Welch–Satterthwaite ``df`` of the two parts (S - 1
and classes - 1), so 5 seeds that disagree widen it a lot. :func:`paired_difference` does
the same on the per-item, per-seed differences a − b (both rows under the very same draws),
with a t interval (a difference is not a proportion).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats


LEVEL = 0.95  # two-sided coverage of every interval (SPEC §4)
_CHUNK = 1 << 21  # draws × weight columns per block of bootstrap arithmetic
_AGREE = 1e-12  # scores closer than this agree (rounding of differences, e.g. (b + 0.1) - b)


@dataclass(frozen=True)
class Interval:
    """A point value with its 95 % interval (same units as the scores). ``n_seeds``: how many
    training seeds it averages; ``seed_min``/``seed_max``: range of the per-seed means
    (``None`` for one seed)."""

    value: float
    low: float
    high: float
    n_seeds: int = 1
    seed_min: float | None = None
    seed_max: float | None = None

    def percent(self) -> "Interval":
        """The same interval × 100."""
        f = lambda x: None if x is None else 100.0 * x  # noqa: E731
        return Interval(100 * self.value, 100 * self.low, 100 * self.high, self.n_seeds,
                        f(self.seed_min), f(self.seed_max))



def item_groups(items: pd.DataFrame) -> np.ndarray:
    """[N, G] int ids of the resampled units of a ZSTE items frame: its classes (module doc).

    Two-class items (``i`` and ``j`` set; every task but 1A, 3A-c included) give G = 2; Task 1
    items (``label`` set) G = 1; three-event items (3C: ``i``, ``j``, ``k``) G = 3. Class ids are shared across the two columns — class c as the
    first or the second event is one unit with one weight. Clips (recoverable from ``key``) and
    pairs are not extra columns: they are nested in the classes (module doc). A frame read back
    from a run's ``items/*.parquet`` (both kinds of columns, NaN where unused) works per task."""
    set_on_all = lambda c: c in items.columns and not items[c].isna().any()  # noqa: E731
    if set_on_all("i") and set_on_all("j") and set_on_all("k"):
        cols = ["i", "j", "k"]  # 3C: three events (teminal.eval.three)
    elif set_on_all("i") and set_on_all("j"):
        cols = ["i", "j"]
    elif set_on_all("label"):
        cols = ["label"]
    else:
        raise ValueError("items frame: expected 'label' (Task 1) or 'i' and 'j' set on every "
                         "row; select one task's items (column 'task') first")
    values = items[cols].to_numpy(dtype=np.float64)  # [N, G]
    if len(values) and (values.min() < 0 or not np.array_equal(values, np.round(values))):
        raise ValueError(f"items frame: columns {cols} must hold non-negative class indices")
    return values.astype(np.int64)


def aligned_scores(frames: list[pd.DataFrame]) -> tuple[list[np.ndarray], np.ndarray]:
    """``(scores, groups)`` for :func:`seed_interval` / :func:`paired_difference` from one
    task's items frames, one per seed (or per row): the ``score`` column of each and
    :func:`item_groups` of the first. The frames must list the same items in the same order
    (``key``, ``phrasing`` and the class columns equal): else a ValueError naming the frame —
    seeds evaluated on different pairs cannot be paired item by item."""
    if not frames:
        raise ValueError("frames: expected one items frame per seed, got none")
    groups = item_groups(frames[0])
    ids = [c for c in ("key", "phrasing") if c in frames[0].columns]
    for n, df in enumerate(frames[1:], start=1):
        same = len(df) == len(frames[0]) and all(
            np.array_equal(df[c].to_numpy(), frames[0][c].to_numpy()) for c in ids)
        if not same or not np.array_equal(item_groups(df), groups):
            raise ValueError(f"frames[{n}]: its items differ from frames[0]'s ({len(df)} vs "
                             f"{len(frames[0])} items, or other keys/classes/order); pair "
                             f"frames of the same items")
    return [df.score.to_numpy(dtype=np.float64) for df in frames], groups


def item_interval(score, groups, *, n_boot: int, seed) -> Interval:
    """95 % interval of the item mean of ``score [N]`` (module doc). ``groups [N, G]`` from
    :func:`item_groups`; ``n_boot`` draws (≤ 0 or no items → NaN interval)."""
    return seed_interval([score], groups, n_boot=n_boot, seed=seed)


def seed_interval(scores: list, groups, *, n_boot: int, seed) -> Interval:
    """95 % interval of the mean over seeds and items of ``scores`` (one [N] vector per
    training seed, same items in the same order), covering seed and evaluation sampling
    (module doc). ``seed_min``/``seed_max``: range of the per-seed means."""
    y, g = _check(scores, groups, "scores")
    return _interval(y, g, n_boot=n_boot, seed=seed, span=(0.0, 1.0), proportion=True)


def paired_difference(a: list, b: list, groups, *, n_boot: int, seed) -> Interval:
    """95 % interval of mean(a) − mean(b) over the same seeds and items (``a``, ``b``: one [N]
    score vector per seed each, seeds and items aligned): the per-item, per-seed differences
    under the very same draws (module doc), a t interval around the observed difference
    (all differences equal: the agreement rule on [-1, 1]). ``seed_min``/``seed_max``: range
    of the per-seed differences."""
    ya, g = _check(a, groups, "a")
    yb, _ = _check(b, groups, "b")
    if ya.shape != yb.shape:
        raise ValueError(f"paired_difference: a is [seeds={ya.shape[0]}, items={ya.shape[1]}] "
                         f"but b is {list(yb.shape)}; pair the same seeds and items")
    return _interval(ya - yb, g, n_boot=n_boot, seed=seed, span=(-1.0, 1.0), proportion=False)


def wilson(value: float, se: float, *, df: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``value`` with standard error ``se``: effective
    sample size ``p(1-p)/se² · (z/t_df)²`` (module doc); within [0, 1]. ``se = 0`` → a point
    (callers floor ``se`` when items disagree)."""
    z, t = _quantiles(df)
    p = min(max(value, 0.0), 1.0)
    var = p * (1 - p)
    if se <= 0 or var <= 0:
        return p, p
    n_eff = var / se**2 * (z / t) ** 2
    c = z * z / n_eff
    centre = (p + c / 2) / (1 + c)
    half = z / (1 + c) * np.sqrt(var / n_eff + c / (4 * n_eff))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def agreement(value: float, n: int, *,
              span: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """Interval when all ``n`` items score ``value`` (module doc): ``[v - q (v - lo),
    v + q (hi - v)]`` with ``q = z²/(n + z²)``, ``span = (lo, hi)`` the possible scores."""
    z = _quantiles(float("inf"))[0]
    q = z * z / (n + z * z)
    return value - q * (value - span[0]), value + q * (span[1] - value)


def _interval(y: np.ndarray, g: np.ndarray, *, n_boot: int, seed, span,
              proportion: bool) -> Interval:
    """Value, interval and seed range of the mean of ``y [S, N]`` (module doc)."""
    per_seed = y.mean(axis=1)  # [S]
    value = float(per_seed.mean()) if y.size else float("nan")
    many = len(y) > 1 and y.size
    seeds = dict(n_seeds=len(y), seed_min=float(per_seed.min()) if many else None,
                 seed_max=float(per_seed.max()) if many else None)
    if n_boot <= 0 or y.shape[1] == 0:
        return Interval(value, float("nan"), float("nan"), **seeds)
    if np.ptp(y) <= _AGREE:  # every item of every seed agrees
        return Interval(value, *agreement(value, y.shape[1], span=span), **seeds)
    draws = _draws(y, g, n_boot=n_boot, seed=seed)
    if proportion:
        return Interval(value, *wilson(value, draws.se, df=draws.df), **seeds)
    half = _quantiles(draws.df)[1] * draws.se
    return Interval(value, value - half, value + half, **seeds)


def _quantiles(df: float) -> tuple[float, float]:
    """``(z, t_df)`` two-sided quantiles at ``LEVEL`` (t = z for infinite df)."""
    z = float(stats.norm.ppf(0.5 + LEVEL / 2))
    return z, float(stats.t.ppf(0.5 + LEVEL / 2, df)) if np.isfinite(df) else z


@dataclass(frozen=True)
class _Draws:
    se: float  # standard error: the class part (bootstrap) and the seed part together
    df: float  # Welch–Satterthwaite degrees of freedom of the two parts


def _check(scores, groups, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as float [S, N], ``groups`` as int [N, G]; ValueError naming the argument."""
    y = np.asarray([np.asarray(s, dtype=np.float64).ravel() for s in scores])
    if y.ndim != 2 or len(y) == 0:
        raise ValueError(f"{name}: expected one score vector per seed, got {len(y)} vectors")
    g = np.asarray(groups)
    if g.ndim == 1:
        g = g[:, None]
    if g.ndim != 2 or len(g) != y.shape[1] or g.dtype.kind not in "iu":
        raise ValueError(f"groups: expected int ids [N={y.shape[1]}, G], "
                         f"got {g.dtype} {list(g.shape)}")
    if not np.isfinite(y).all():
        raise ValueError(f"{name}: scores must be finite")
    return y, g


def _draws(y: np.ndarray, groups: np.ndarray, *, n_boot: int, seed) -> _Draws:
    """Standard error of the mean of ``y [S, N]`` (module doc): the class bootstrap of the
    seed-averaged item scores (Exp(1) weight per unit, item weight = product of its units'
    weights), floored at the i.i.d. variance of the mean, plus, with S > 1 seeds, the
    variance of the per-seed means / S."""
    rng = np.random.default_rng(seed)
    units, cell = np.unique(groups, return_inverse=True)
    combo, item_combo = np.unique(cell.reshape(groups.shape), axis=0, return_inverse=True)
    n, c = groups.shape[0], len(combo)  # combo [C, G]: unit indices of each distinct unit set
    member = sparse.csr_matrix((np.ones(n), (np.arange(n), item_combo.ravel())), shape=(n, c))
    counts = np.asarray(member.sum(axis=0)).ravel()  # [C] items per unit set
    sums = member.T @ y.mean(axis=0)  # [C] Σ seed-averaged scores per unit set
    w_unit = rng.exponential(size=(n_boot, len(units)))  # [B, U]
    values = _weighted_means(sums, counts, w_unit, combo)  # [B]
    boot = float(values.var(ddof=1)) if n_boot > 1 else 0.0
    iid = 0.0 if n < 2 else max(float(y.mean(axis=0).var(ddof=1)) / n,
                                float(y.var(ddof=1)) / y.size)
    parts = [(max(boot, iid), len(units) - 1)]  # (variance, df) of the class part
    if len(y) > 1:
        parts.append((float(y.mean(axis=1).var(ddof=1)) / len(y), len(y) - 1))
    return _Draws(se=float(np.sqrt(sum(v for v, _ in parts))),
                  df=_satterthwaite(parts))


def _weighted_means(sums: np.ndarray, counts: np.ndarray, w_unit: np.ndarray,
                    combo: np.ndarray) -> np.ndarray:
    """Per draw b: Σ_c W_bc sums[c] / Σ_c W_bc counts[c], W_bc = Π_g w_unit[b, combo[c, g]]."""
    out = np.empty(len(w_unit))
    step = max(1, _CHUNK // max(1, combo.size))
    for s in range(0, len(w_unit), step):
        w = np.prod(w_unit[s : s + step][:, combo], axis=2)  # [b, C] weight of each unit set
        out[s : s + step] = (w @ sums) / (w @ counts)
    return out


def _satterthwaite(parts: list[tuple[float, int]]) -> float:
    """Welch–Satterthwaite df of a sum of variance parts ``(variance, df)``; inf if all 0."""
    num = sum(v for v, _ in parts) ** 2
    den = sum(v * v / d for v, d in parts if d > 0)
    return num / den if den > 0 else float("inf")
