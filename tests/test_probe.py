"""The level/duration probe (SPEC §4): its fit, its scoring, and the real operators of SPEC §1."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from teminal.audio import Recipe, compose
from teminal.data.clips import audio_key, parse_key
from teminal.probe import STATS, composite_stats, fit_probe, probe_zste

SR, N_SAMPLES, K, DRAWS = 8000, 4000, 6, 8
NAMES = [f"class {c}" for c in range(K)]


def _rows(draws):
    """All ordered class pairs of each draw: rows (i, j) and their seq / rev / mix keys."""
    pairs, keys = [], {"seq": [], "rev": [], "mix": []}
    for d in draws:
        for i, j in itertools.permutations(range(K), 2):
            a, b = f"c{i}_{d}.wav", f"c{j}_{d}.wav"
            pairs.append((i, j))
            keys["seq"].append(audio_key("seq", a, b))
            keys["rev"].append(audio_key("seq", b, a))
            keys["mix"].append(audio_key("mix", a, b))
    return np.array(pairs), keys


def _textures(seed: int = 0) -> dict[str, np.ndarray]:
    """Noise textures of K colours at random gains (-30..0 dB): each clip loops a Gaussian
    noise grain of about half its length (a class-specific odd offset keeps the loop lengths of
    two classes coprime). The loop makes the composites of a pair alike in every order-free
    statistic: a concatenation holds ``L_a + L_b ≈ S`` distinct noise samples, the tiled
    overlay ``S`` distinct sums — with plain noise the overlay's peak would be the maximum of
    half as many samples, a (small) real leak the probe does see."""
    rng, out = np.random.default_rng(seed), {}
    for c, d in itertools.product(range(K), range(DRAWS)):
        length = N_SAMPLES // 2 + (2 * c + 1) * (1 if d % 2 else -1)
        grain = np.fft.rfft(rng.normal(size=length))
        grain = np.fft.irfft(grain / (1 + np.arange(len(grain)) / (length / (2 + 3 * c))), length)
        x = np.tile(grain, 3)[:N_SAMPLES]
        out[f"c{c}_{d}.wav"] = (10 ** rng.uniform(-1.5, 0) * x / np.abs(x).max()).astype(np.float32)
    return out


def _probe_on(recipe: Recipe, clips: dict):
    """Fit on draws 0-3 (every seq, rev and mix composite), score on draws 4-7."""
    def render(key):
        relation, a, b = parse_key(key)
        return compose(clips[a], clips[b], relation, recipe)
    _, train = _rows(range(4))
    x = composite_stats(train["seq"] + train["rev"] + train["mix"], render, SR)
    probe = fit_probe(x, np.arange(len(x)) >= 2 * len(train["seq"]))
    pairs, keys = _rows(range(4, DRAWS))
    stats = {f"{s}_stats": composite_stats(keys[s], render, SR) for s in keys}
    res = probe_zste(probe, class_names=NAMES, pairs=pairs, seq_keys=keys["seq"],
                     rev_keys=keys["rev"], mix_keys=keys["mix"], n_boot=1000, seed=0, **stats)
    return probe, res.table.set_index("task")


def test_probe_sits_at_chance_with_the_default_recipe_and_finds_leaky_recipes():
    clips = _textures()
    probe, tab = _probe_on(Recipe(sample_rate=SR), clips)
    assert list(tab.index) == ["3A", "3A-o", "3B"] and (tab.n_clusters == 15).all()
    assert probe.weights[:2].tolist() == [0.0, 0.0]  # duration and RMS are equal: no weight
    assert tab.value["3A-o"] == 50.0  # every item a tie: the interval stays open around 50
    assert tab.ci_low["3A-o"] < 50 < tab.ci_high["3A-o"]
    assert tab.ci_low["3A-o"] + tab.ci_high["3A-o"] == pytest.approx(100)
    for task in ("3A", "3B"):
        assert abs(tab.value[task] - 100 / 3) < 2.5, tab
        assert tab.ci_low[task] <= 100 / 3 <= tab.ci_high[task], tab  # a 95 % event
    leaky = {"renormalize=False": (Recipe(sample_rate=SR, renormalize=False), 95),  # mix +3 dB
             "tile_overlay=False": (Recipe(sample_rate=SR, tile_overlay=False), 95),  # half as long
             "level_rms=None": (Recipe(sample_rate=SR, level_rms=None), 45)}  # random gains blur it
    for name, (recipe, floor) in leaky.items():
        _, tab = _probe_on(recipe, clips)
        assert tab.ci_low["3B"] > floor, (name, tab)
        assert tab.value["3A-o"] == 50.0, name  # order-free statistics never tell the order
        assert tab.value["3A"] > 100 / 3, name  # rejects "while" for sequential audio


def _objective(theta, z, y, l2):
    v = z @ theta[:-1] + theta[-1]
    return np.mean(np.logaddexp(0, v) - y * v) + 0.5 * l2 * theta[:-1] @ theta[:-1]


def test_fit_matches_a_plain_optimizer_and_ignores_constant_features():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.full(300, 2.5), rng.normal(0.1, 0.02, 300), rng.gamma(2, 0.1, 300)])
    y = rng.random(300) < 1 / (1 + np.exp(-(x[:, 1] - 0.1) * 60))
    probe = fit_probe(x, y, l2=0.05)
    z = (x[:, 1:] - x[:, 1:].mean(0)) / x[:, 1:].std(0)
    ref = minimize(_objective, np.zeros(3), args=(z, y, 0.05), method="BFGS",
                   options={"gtol": 1e-12}).x
    assert probe.weights[0] == 0.0  # the constant duration
    np.testing.assert_allclose(probe.weights[1:], ref[:2], atol=1e-6)
    assert probe.bias == pytest.approx(ref[2], abs=1e-6)
    np.testing.assert_allclose(probe.logit(x), z @ ref[:2] + ref[2], atol=1e-5)
    separable = fit_probe(np.column_stack([np.ones(40), np.ones(40), np.r_[np.zeros(20), np.ones(20)]]),
                          np.arange(40) >= 20)
    assert np.isfinite(separable.weights).all() and separable.weights[2] > 1


def _score(probe_stats, *, leak_in_training: bool = False):
    """probe_zste on all ordered pairs of K classes with stats from ``probe_stats(kind, P)``;
    the probe is fitted on 90 composites (30 mix) whose peak is noise, or tells mix (peak ≈ 1)
    from seq (peak ≈ 0) when ``leak_in_training``."""
    pairs, keys = _rows([0])
    rng = np.random.default_rng(1)
    x, is_mix = rng.normal(size=(90, 3)), np.arange(90) % 3 == 0
    if leak_in_training:
        x[:, 2] = is_mix + 0.05 * rng.normal(size=90)
    probe = fit_probe(x, is_mix)
    return probe_zste(probe, class_names=NAMES, pairs=pairs, seq_keys=keys["seq"],
                      rev_keys=keys["rev"], mix_keys=keys["mix"], n_boot=200,
                      **{f"{s}_stats": probe_stats(s, len(pairs)) for s in ("seq", "rev", "mix")})


def test_uninformative_stats_score_exact_chance_and_a_perfect_leak_scores_the_maximum():
    same = _score(lambda kind, p: np.tile([1.0, 0.1, 0.4], (p, 1))).table.set_index("task")
    np.testing.assert_allclose(same.value, same.chance, atol=1e-9)
    leak = lambda kind, p: np.tile([1.0, 0.1, 1.0 if kind == "mix" else 0.0], (p, 1))  # noqa: E731
    res = _score(leak, leak_in_training=True)
    tab = res.table.set_index("task")
    assert tab.value["3B"] > 99.5 and tab.value["3A"] > 49.5 and tab.value["3A-o"] == 50.0
    first = res.items["3B"].iloc[0]
    assert first.target == "class 0 while class 1"
    assert first.predicted.startswith("class 0 while class 1 (1.00)")


def test_composite_stats_and_validation():
    calls = []
    def render(key):
        calls.append(key)
        return np.full(SR // 2, -0.5) if key == "a" else np.sin(np.arange(SR) / SR * 2 * np.pi * 100)
    st = composite_stats(["a", "b", "a"], render, SR)
    assert calls == ["a", "b"] and st.shape == (3, len(STATS))
    np.testing.assert_allclose(st[0], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(st[1], [1.0, np.sqrt(0.5), 1.0], atol=1e-4)
    with pytest.raises(ValueError, match="render"):
        composite_stats(["a"], lambda key: np.zeros((2, 3)), SR)
    with pytest.raises(ValueError, match="is_mix"):
        fit_probe(st, np.zeros(3, bool))
    with pytest.raises(ValueError, match="stats"):
        fit_probe(st[:, :2], np.array([True, False, True]))
    with pytest.raises(ValueError, match="mix_stats"):
        _score(lambda kind, p: np.zeros((p - 1 if kind == "mix" else p, 3)))


# ---- the embedded world through the pipeline's own glue (teminal.evaluate.probe_sets)
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from teminal.data import esc50
    from teminal.data.pairs import PairingConfig, build_manifests
    from teminal.data.synth_world import WorldConfig, make_world

    root = make_world(tmp_path_factory.mktemp("probe_world") / "world",
                      WorldConfig(n_classes=10, clips_per_class=10, clip_seconds=0.5,
                                  sample_rate=16000))
    base = esc50.load(root)
    return base, build_manifests(base, pairing=PairingConfig(pairing="folds"))


def _world_probe(world, recipe: Recipe):
    from teminal.data.clips import ClipStore, render
    from teminal.evaluate import probe_sets

    base, manifests = world
    store = ClipStore(base, sample_rate=recipe.sample_rate)
    sets = probe_sets(manifests, list(base.classes), render=lambda k: render(k, store, recipe),
                      sample_rate=recipe.sample_rate, n_boot=1000, seed=0)
    return sets["zste"].table.set_index("task")


def test_probe_sits_at_chance_on_the_embedded_world(world):
    t = _world_probe(world, Recipe(sample_rate=16000))
    assert t.loc["3B", "ci_low"] <= 100 / 3 <= t.loc["3B", "ci_high"]
    assert t.loc["3A-o", "value"] == pytest.approx(50.0)


@pytest.mark.parametrize("leak,floor,clear", [
    (dict(level_rms=None, renormalize=False), 100 / 3, False),  # levels off (gains blur the 3 dB)
    (dict(renormalize=False), 90.0, True),  # parts levelled, the sum left ~3 dB louder
    (dict(tile_overlay=False), 90.0, True),  # the overlay half as long as the concatenation
])
def test_probe_finds_the_leak_of_a_leaky_recipe(world, leak, floor, clear):
    t = _world_probe(world, Recipe(sample_rate=16000, **leak))
    assert t.loc["3B", "value"] > floor
    if clear:  # 14 overlay items over 10 classes: the weak leak's interval still holds chance
        assert t.loc["3B", "ci_low"] > floor
