"""Intervals (SPEC §4 "Intervals"): coverage on a simulation with a known truth, no collapse at
the bounds, the crossed bootstrap against plain references, seeds and paired differences."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from teminal.eval.intervals import (Interval, _draws, aligned_scores, item_groups, item_interval, paired_difference,
                               seed_interval, wilson)
from teminal.eval.intervals_sim import (SimWorld, class_bootstrap, coverage, pair_percentile,
                                   simulate)

Z = stats.norm.ppf(0.975)


def _pairs_frame(k: int = 8) -> pd.DataFrame:
    """Both orders of every unordered pair of k classes (a 3A-shaped frame)."""
    rows = [(i, j) for i, j in itertools.combinations(range(k), 2) for _ in (0, 1)]
    i, j = np.array(rows).T
    return pd.DataFrame({"i": i, "j": j, "key": [f"seq|c{a}.wav|c{b}.wav" for a, b in rows]})


@pytest.mark.parametrize("world", [SimWorld(), SimWorld(clips=1)], ids=["folds", "paper"])
def test_class_bootstrap_covers_the_true_mean_where_pairs_alone_do_not(world):
    new = coverage(world, class_bootstrap, n_sims=400, n_boot=300, seed=0)
    old = coverage(world, pair_percentile, n_sims=400, n_boot=300, seed=0)
    assert 0.93 <= new.covered <= 0.985, new  # ≈ 95 % (± 2 binomial s.e. of 400, a bit over)
    assert old.covered < 0.85, old
    assert new.width > old.width


def test_seed_interval_covers_seed_and_evaluation_sampling_where_one_seed_does_not():
    world = SimWorld(n_classes=10, clips=2, seeds=5, sd_seed=1.2, sd_seed_item=0.5)
    first = lambda items, **kw: class_bootstrap(items[items.seed == 0], **kw)  # noqa: E731
    new = coverage(world, class_bootstrap, n_sims=300, n_boot=200, seed=0)
    one = coverage(world, first, n_sims=300, n_boot=200, seed=0)
    assert 0.92 <= new.covered <= 0.985, new
    assert one.covered < 0.85, one


def test_simulated_frame_is_zste_shaped_and_the_truth_is_the_population_mean():
    world = SimWorld(n_classes=6, clips=2, pair_fraction=1.0, mu=0.7)
    items = simulate(world, np.random.default_rng(0))
    assert len(items) == 2 * 15 and item_groups(items).shape == (30, 2)
    _, x, y = items.key.iloc[0].split("|")  # both orders of one clip draw of the pair (0, 1)
    assert x.startswith("c0_") and y.startswith("c1_") and items.key.iloc[1] == f"seq|{y}|{x}"
    assert set(items.score.unique()) <= {0.0, 1.0}
    big = SimWorld(n_classes=400, clips=2, pair_fraction=0.05, mu=0.7)
    est = np.mean([simulate(big, np.random.default_rng(s)).score.mean() for s in range(6)])
    assert est == pytest.approx(big.true_mean(), abs=0.02)


def test_no_collapse_when_items_disagree_and_open_bounds():
    g = item_groups(_pairs_frame())
    alternating = np.tile([1.0, 0.0], len(g) // 2)  # each pair: one order right, one wrong
    iv = item_interval(alternating, g, n_boot=500, seed=0)
    assert iv.value == 0.5 and iv.low < 0.45 and iv.high > 0.55  # every draw is exactly 0.5
    for value in (0.0, 1.0):
        iv = item_interval(np.full(len(g), value), g, n_boot=500, seed=0)
        assert iv.value == value and iv.high - iv.low == pytest.approx(Z**2 / (len(g) + Z**2))
        assert 0.0 <= iv.low <= iv.high <= 1.0
    one_wrong = np.ones(len(g))
    one_wrong[3] = 0.0
    iv = item_interval(one_wrong, g, n_boot=500, seed=0)
    assert iv.low < iv.value < iv.high < 1.0


def test_wilson_solves_the_score_equation_with_the_effective_size():
    for p, se, df in ((0.3, 0.05, 11), (0.9, 0.02, np.inf), (0.5, 0.03, 5), (0.02, 0.01, 20)):
        lo, hi = wilson(p, se, df=df)
        t = stats.t.ppf(0.975, df) if np.isfinite(df) else Z
        n_eff = p * (1 - p) / se**2 * (Z / t) ** 2
        for bound in (lo, hi):  # (p - π)² = z² π (1 - π) / n_eff at both ends
            assert (p - bound) ** 2 == pytest.approx(Z**2 * bound * (1 - bound) / n_eff, rel=1e-9)
        if p == 0.5:  # interior: ≈ p ± t · se
            assert (hi - lo) / 2 == pytest.approx(t * se, rel=0.05)
        assert 0 < lo < p < hi < 1


def test_one_class_per_item_is_the_bayesian_bootstrap_of_class_means():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 3)  # Task 1: 3 clips per class
    score = (rng.random(30) < np.repeat(rng.random(10), 3)) * 1.0
    iv = item_interval(score, labels[:, None], n_boot=40000, seed=0)
    class_means = score.reshape(10, 3).mean(axis=1)  # equal class sizes: mean of class means
    se = np.sqrt(((class_means - class_means.mean()) ** 2).sum() / (10 * 11))  # Dirichlet(1)
    se = max(se, score.std(ddof=1) / np.sqrt(30))  # the i.i.d. floor
    lo, hi = wilson(score.mean(), se, df=9)
    assert (iv.low, iv.high) == pytest.approx((lo, hi), abs=0.01)


def test_two_classes_per_item_is_the_product_weight_bootstrap():
    """Linearised variance of the product-weight ratio mean: Σ_nm Cov(W_n, W_m) e_n e_m / N²,
    with Cov = 0, 1, 3 for items sharing 0, 1, 2 classes (Exp(1) weights); the bootstrap of K
    classes reaches it up to the small-sample factor ≈ ((K - 1) / (K + 1))² of Dirichlet
    weights."""
    k = 30
    frame = _pairs_frame(k)
    g = item_groups(frame)
    rng = np.random.default_rng(2)
    effect = rng.normal(0, 1, k)
    score = (rng.random(len(g)) < 1 / (1 + np.exp(-(effect[g[:, 0]] + effect[g[:, 1]])))) * 1.0
    e = score - score.mean()
    shared = (g[:, None, :, None] == g[None, :, None, :]).any(axis=3).sum(axis=2)  # [N, N]
    var = ((2.0 ** shared - 1) * np.outer(e, e)).sum() / len(e) ** 2
    boot = _draws(score[None], g, n_boot=20000, seed=0).se ** 2
    assert 0.8 * var < boot < var  # ((K-1)/(K+1))² = 0.875
    iv = item_interval(score, g, n_boot=2000, seed=0)
    only_pairs = item_interval(score, frame.index.to_numpy() // 2, n_boot=2000, seed=0)
    assert iv.high - iv.low > 1.3 * (only_pairs.high - only_pairs.low)  # classes are shared


def test_one_seed_is_the_item_interval_and_seeds_that_disagree_widen_it():
    g = item_groups(_pairs_frame(20))
    rng = np.random.default_rng(3)
    y = (rng.random(len(g)) < 0.6) * 1.0
    assert seed_interval([y], g, n_boot=800, seed=5) == item_interval(y, g, n_boot=800, seed=5)
    flips = [np.where(rng.random(len(g)) < abs(s), float(s > 0), y)
             for s in (-0.3, -0.15, 0.0, 0.15, 0.3)]  # seeds: some items flipped to 0 or 1
    agree = seed_interval([y] * 5, g, n_boot=800, seed=5)
    disagree = seed_interval(flips, g, n_boot=800, seed=5)
    means = [f.mean() for f in flips]
    assert disagree.n_seeds == 5 and disagree.value == pytest.approx(np.mean(means))
    assert (disagree.seed_min, disagree.seed_max) == (min(means), max(means))
    assert agree.seed_min == agree.seed_max == agree.value
    assert disagree.high - disagree.low > 1.5 * (agree.high - agree.low)
    se = np.std(means, ddof=1) / np.sqrt(5)  # the seed part alone is inside it
    assert disagree.high - disagree.low > 2 * Z * se


def test_paired_difference_against_a_plain_reference():
    frame = _pairs_frame(7)
    g = item_groups(frame)
    rng = np.random.default_rng(4)
    a, b = (rng.random(len(g)) < 0.7) * 1.0, (rng.random(len(g)) < 0.5) * 1.0
    got = paired_difference([a], [b], g, n_boot=600, seed=9)
    d = a - b  # plain reference: Exp(1) weight per class, item weight w_i · w_j, t with K - 1 df
    w = np.random.default_rng(9).exponential(size=(600, 7))
    wn = w[:, frame.i.to_numpy()] * w[:, frame.j.to_numpy()]  # [B, N]
    se = max(((wn * d).sum(1) / wn.sum(1)).std(ddof=1), d.std(ddof=1) / np.sqrt(len(d)))
    half = stats.t.ppf(0.975, 6) * se
    want = (d.mean(), d.mean() - half, d.mean() + half)
    assert (got.value, got.low, got.high) == pytest.approx(want)


def test_paired_difference_zero_shift_and_pairing():
    g = item_groups(_pairs_frame())
    rng = np.random.default_rng(5)
    base = [(rng.random(len(g)) < p) * 1.0 for p in (0.3, 0.5, 0.7)]  # 3 seeds, seeds differ
    q = Z**2 / (len(g) + Z**2)  # all differences agree: the share of others is ≤ q
    same = paired_difference(base, base, g, n_boot=400, seed=0)
    assert (same.value, same.low, same.high) == (0.0, -q, q) and same.n_seeds == 3
    shifted = paired_difference([b + 0.1 for b in base], base, g, n_boot=400, seed=0)
    assert shifted.value == pytest.approx(0.1) and shifted.seed_min == pytest.approx(0.1)
    assert (shifted.low, shifted.high) == pytest.approx((0.1 - 1.1 * q, 0.1 + 0.9 * q))
    assert _difference_coverage(n_sims=300) >= 0.92
    noisy = [np.clip(b + rng.normal(0, 0.3, len(g)), 0, 1) for b in base]  # b: big item spread
    better = [n + rng.normal(0.05, 0.02, len(g)) for n in noisy]  # the same items, a bit better
    paired = paired_difference(better, noisy, g, n_boot=400, seed=0)
    apart = [seed_interval(x, g, n_boot=400, seed=0) for x in (better, noisy)]
    assert paired.low > 0
    assert paired.high - paired.low < 0.2 * min(iv.high - iv.low for iv in apart)


def _difference_coverage(*, n_sims: int) -> float:
    """Rows a and b share class and pair effects; b adds its own class effects δ (mean 0), so
    they differ class by class while the true mean difference is 0 (logit mean 0, symmetric).
    How often the paired interval over 2 seeds covers 0."""
    frame = _pairs_frame(12)
    g = item_groups(frame)
    hits = 0
    for s in range(n_sims):
        r = np.random.default_rng(100 + s)
        cls, delta, pair = r.normal(0, 1, 12), r.normal(0, 0.7, 12), r.normal(0, 0.5, len(g) // 2)
        eta = cls[g[:, 0]] + cls[g[:, 1]] + np.repeat(pair, 2)  # [N]
        eta_b = eta + delta[g[:, 0]] + delta[g[:, 1]]
        a = [(r.random(len(g)) < 1 / (1 + np.exp(-eta))) * 1.0 for _ in range(2)]
        b = [(r.random(len(g)) < 1 / (1 + np.exp(-eta_b))) * 1.0 for _ in range(2)]
        iv = paired_difference(a, b, g, n_boot=200, seed=s)
        hits += iv.low <= 0 <= iv.high
    return hits / n_sims


def test_bad_inputs_name_the_argument():
    g = item_groups(_pairs_frame())
    with pytest.raises(ValueError, match="groups"):
        item_interval(np.zeros(3), g, n_boot=10, seed=0)
    with pytest.raises(ValueError, match="paired_difference"):
        paired_difference([np.zeros(len(g))], [np.zeros(len(g))] * 2, g, n_boot=10, seed=0)
    with pytest.raises(ValueError, match="'label'.*'i' and 'j'"):
        item_groups(pd.DataFrame({"key": ["single|a.wav"]}))
    assert item_groups(pd.DataFrame({"label": [2, 0], "key": ["x", "y"]})).shape == (2, 1)
    nan = item_interval(np.ones(len(g)), g, n_boot=0, seed=0)
    assert nan.value == 1.0 and np.isnan(nan.low) and isinstance(nan, Interval)
    assert item_interval(np.ones(4), g[:4], n_boot=10, seed=0).percent().value == 100.0


def test_aligned_scores_pairs_frames_of_the_same_items_only():
    frame = _pairs_frame(5).assign(phrasing=0)
    frames = [frame.assign(score=np.arange(len(frame)) % s / s) for s in (2, 3)]
    scores, groups = aligned_scores(frames)
    assert np.array_equal(groups, item_groups(frame)) and np.array_equal(scores[1], frames[1].score)
    with pytest.raises(ValueError, match=r"frames\[1\]: its items differ"):
        aligned_scores([frames[0], frames[1].iloc[::-1]])
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        aligned_scores([frames[0], frames[1].iloc[:-1]])

