"""The level/duration probe (SPEC §4): statistics, fit, decision rule, and the real recipes of
SPEC §1 on the embedded world and on a varied ESC-50-shaped folder (positive controls)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from teminal.audio import Recipe
from teminal.data.clips import audio_key
from teminal.eval.probe import (CUE_FEATURES, FEATURES, PROBE_TASKS, auc, auc_table, clip_stats,
                                cue_stats, feature_aucs, fit_probe, single_double, while_tasks)

SR, K = 8000, 6
LEVEL = ("duration_s", "rms", "peak", "crest")
"""The level statistics a recipe sets (the decision adds the silent share, a length)."""
NAMES = [f"class {c}" for c in range(K)]


def test_features_are_the_parameter_choices():
    import typing

    from teminal.run.params import PROBE_CUE_FEATURES, PROBE_FEATURES, ProbeFeature, ZsteParams
    assert PROBE_FEATURES == FEATURES == typing.get_args(ProbeFeature)
    assert PROBE_CUE_FEATURES == CUE_FEATURES == (*LEVEL, "silent_share")  # SPEC §4
    assert tuple(ZsteParams().probe_features) == CUE_FEATURES and PROBE_TASKS == ("A-sd", "3B", "3W")


def test_clip_stats_of_known_signals():
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * 100 * t)
    st = dict(zip(FEATURES, clip_stats(sine, SR)))
    assert st["duration_s"] == 1.0 and st["rms"] == pytest.approx(np.sqrt(0.5), rel=1e-3)
    assert st["crest"] == pytest.approx(np.sqrt(2), rel=1e-3) and st["silent_share"] == 0
    assert st["env_cv"] < 0.01 and st["onset_rate"] == 0
    gated = np.where((t % 0.25) < 0.1, sine, 0.0)  # 4 bursts of 100 ms, silence between
    g = dict(zip(FEATURES, clip_stats(gated, SR)))
    assert g["silent_share"] == pytest.approx(0.6, abs=0.05) and g["onset_rate"] == 3  # 3 rises
    assert g["env_cv"] > 1 and g["env_range_db"] > 60
    calls = []
    render = lambda key: calls.append(key) or (sine if key == "a" else gated)  # noqa: E731
    x = cue_stats(["a", "b", "a"], render, SR)
    assert calls == ["a", "b"] and x.shape == (3, len(FEATURES))
    with pytest.raises(ValueError, match="render"):
        cue_stats(["a"], lambda key: np.zeros((2, 3)), SR)


def test_auc_matches_counting_pairs():
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 60).astype(float), rng.random(60) < 0.4  # many ties
    pairs = [(a, b) for a in s[y] for b in s[~y]]
    want = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert auc(s, y) == pytest.approx(want)
    assert auc(-s, y) == pytest.approx(1 - want)
    x = np.column_stack([s] * len(FEATURES))
    assert feature_aucs(x, y) == {f: pytest.approx(want) for f in FEATURES}


def _objective(theta, z, y, l2):
    v = z @ theta[:-1] + theta[-1]
    return np.mean(np.logaddexp(0, v) - y * v) + 0.5 * l2 * theta[:-1] @ theta[:-1]


def test_fit_matches_a_plain_optimizer_and_the_threshold_matches_the_positive_share():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(FEATURES)))
    x[:, 0] = 2.5  # a constant duration
    y = rng.random(300) < 1 / (1 + np.exp(-2 * x[:, 1] - 1))
    probe = fit_probe(x, y, features=FEATURES, l2=0.05)
    z = (x[:, 1:] - x[:, 1:].mean(0)) / x[:, 1:].std(0)
    ref = minimize(_objective, np.zeros(len(FEATURES)), args=(z, y, 0.05), method="BFGS",
                   options={"gtol": 1e-12}).x
    assert probe.weights[0] == 0.0
    np.testing.assert_allclose(probe.weights[1:], ref[:-1], atol=1e-5)
    assert probe.bias == pytest.approx(ref[-1], abs=1e-5)
    assert probe.decide(x).mean() == pytest.approx(y.mean(), abs=1 / 300)  # the rate-matched decision
    only = fit_probe(x, y, features=("rms",), l2=0.05)  # one statistic: the others weigh 0
    assert np.count_nonzero(only.weights) == 1 and only.weights[FEATURES.index("rms")] != 0
    cues = fit_probe(x, y, l2=0.05)  # the default decision: level and length statistics only
    outside = [n for n, f in enumerate(FEATURES) if f not in CUE_FEATURES]
    assert np.count_nonzero(cues.weights[outside]) == 0 and cues.weights[1] != 0
    with pytest.raises(ValueError, match="features"):
        fit_probe(x, y, features=("loudness",))
    with pytest.raises(ValueError, match="is_pos"):
        fit_probe(x, np.zeros(300, bool))
    with pytest.raises(ValueError, match="stats"):
        fit_probe(x[:, :3], y)


def _rows(draws: int = 4):
    """All ordered class pairs, ``draws`` clip draws each: rows (i, j) and their audio keys."""
    pairs, keys = [], {"seq": [], "rev": [], "mix": [], "span": []}
    for d in range(draws):
        for i, j in itertools.permutations(range(K), 2):
            a, a2, b, b2 = f"c{i}_{d}.wav", f"c{i}_{d}b.wav", f"c{j}_{d}.wav", f"c{j}_{d}b.wav"
            pairs.append((i, j))
            keys["seq"].append(audio_key("seq", a, b))
            keys["rev"].append(audio_key("seq", b, a))
            keys["mix"].append(audio_key("mix", a, a2, b, b2))
            keys["span"].append(audio_key("span", a, a2))
    return np.array(pairs), keys


def _score(stats_of, fit_x, fit_y, draws: int = 4):
    """The probe fitted on ``fit_x, fit_y``, scored on ``_rows`` with ``stats_of(kind, P)``."""
    probe = fit_probe(fit_x, fit_y)
    pairs, keys = _rows(draws)
    st = {k: stats_of(k, len(pairs)) for k in keys}
    w = while_tasks(probe, class_names=NAMES, pairs=pairs, seq_keys=keys["seq"],
                    rev_keys=keys["rev"], mix_keys=keys["mix"], seq_stats=st["seq"],
                    rev_stats=st["rev"], mix_stats=st["mix"], n_boot=500, seed=0)
    a = single_double(probe, pairs=pairs, single_keys=keys["span"], double_keys=keys["seq"],
                      single_stats=st["span"], double_stats=st["seq"], n_boot=500, seed=0)
    return w.table.set_index("task"), a.table.set_index("task"), w


def test_an_uninformative_probe_decides_at_chance_on_every_task():
    rng = np.random.default_rng(3)
    fit_x, fit_y = rng.normal(size=(900, len(FEATURES))), np.arange(900) % 3 == 0
    w, a, _ = _score(lambda kind, p: rng.normal(size=(p, len(FEATURES))), fit_x, fit_y, draws=40)
    for task, tab in (("3B", w), ("3W", w), ("A-sd", a)):  # 600 overlays, 1200 units: SE < 2
        assert abs(tab.value[task] - tab.chance[task]) < 6, (task, tab)
    assert list(w.index) == ["3B", "3W"] and w.chance.tolist() == pytest.approx([100 / 3, 50])
    assert a.chance["A-sd"] == 50 and a.n_clusters["A-sd"] == K * (K - 1) // 2


def test_a_leak_is_decided_every_time():
    rng = np.random.default_rng(4)
    fit_x = rng.normal(size=(900, len(FEATURES)))
    fit_y = np.arange(900) % 3 == 0
    fit_x[:, 2] += 10 * fit_y  # the peak gives the positives away
    def louder(*kinds):
        def stats(kind, p):
            x = rng.normal(size=(p, len(FEATURES)))
            x[:, 2] += 10 * (kind in kinds)
            return x
        return stats
    w, _, res = _score(louder("mix"), fit_x, fit_y)  # overlays louder
    assert w.value["3B"] == 100 and w.value["3W"] == 100
    first = res.items["3B"].iloc[0]
    assert first.target == "class 0 while class 1" and first.predicted == "class 0 while class 1"
    w, a, _ = _score(louder("seq", "rev"), fit_x, fit_y)  # doubles louder than singles
    assert a.value["A-sd"] == 100 and w.value["3B"] == 0 and w.value["3W"] == 0


# ---- the real recipes (SPEC §1) through the pipeline's glue (teminal.eval.evaluate.probe_sets)
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from teminal.data import base_set
    from teminal.data.pairs import PairingConfig, build_manifests
    from teminal.data.synth_world import WorldConfig, make_world

    root = make_world(tmp_path_factory.mktemp("probe_world") / "world",
                      WorldConfig(n_classes=10, clips_per_class=10, clip_seconds=0.5,
                                  sample_rate=16000))
    base = base_set.load(root)
    return base, build_manifests(base, pairing=PairingConfig(pairing="folds"))


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """24 varied classes: ~80 held-out pairs, enough items for a class-crossed interval."""
    from conftest import write_varied_esc50
    from teminal.data import base_set
    from teminal.data.pairs import PairingConfig, build_manifests

    base = base_set.load(write_varied_esc50(tmp_path_factory.mktemp("varied24") / "esc50",
                                         n_classes=24, clips_per_fold=2))
    return base, build_manifests(base, pairing=PairingConfig(pairing="folds"))


def _probe_tables(data, features=CUE_FEATURES, **recipe):
    from teminal.data.clips import ClipStore, render
    from teminal.eval.evaluate import probe_sets

    base, manifests = data
    r = Recipe(sample_rate=base.sample_rate, **recipe)
    store = ClipStore(base, sample_rate=r.sample_rate)
    sets, aucs = probe_sets(manifests, list(base.classes), render=lambda k: render(k, store, r),
                            sample_rate=r.sample_rate, n_boot=500, seed=0, features=features)
    return sets["zste"].table.set_index("task"), aucs


@pytest.mark.parametrize("data", ["world", "varied"])
def test_the_recipe_leaves_no_level_cue(data, request):
    """SPEC §1, §4: on the embedded world the default decision (level and length statistics)
    sits at chance on every task, with or without the crest limiter; on the varied folder the
    level statistics do with the crest limiter on (``data.crest_limit: 3``) and, without it,
    peak and crest tell a double of two classes from a single of one (the leak the limiter
    removes). Duration carries nothing at all."""
    fixture = request.getfixturevalue(data)
    features = CUE_FEATURES if data == "world" else LEVEL
    limits = (None, 3.0) if data == "world" else (3.0,)
    for limit in limits:
        t, aucs = _probe_tables(fixture, features=features, crest_limit=limit)
        assert list(t.index) == ["A-sd", "3B", "3W"]
        for task in t.index:
            assert t.ci_low[task] <= t.chance[task] <= t.ci_high[task], (limit, t)
    assert set(aucs.split) == {"train", "test", "seen"} and set(aucs.task) == {"A-sd", "while"}
    assert (aucs[aucs.feature == "duration_s"].auc == 0.5).all()  # every composite as long as a ⊕ b
    if data == "world":  # at one RMS; on the varied folder clips too sparse to limit (a lone
        assert (aucs[aucs.feature == "rms"].auc == 0.5).all()  # click) are then peak limited
    else:
        free, _ = _probe_tables(fixture, features=LEVEL, crest_limit=None)
        assert free.ci_low["A-sd"] > free.chance["A-sd"] + 5, free


LEAKS = {  # a recipe SPEC §1 forbids → the task it gives away
    "levels off": (dict(level_rms=None, renormalize=False), ("3B", "3W")),
    "not re-normalised": (dict(renormalize=False), ("3B", "3W")),
    "zero-padded overlay": (dict(tile_overlay=False), ("3B", "3W")),
    "single not spanning a double": (dict(loop_single=False), ("A-sd",)),
}


@pytest.mark.parametrize("leak", LEAKS, ids=list(LEAKS))
@pytest.mark.parametrize("data", ["world", "varied"])
def test_the_decision_rule_catches_a_leaky_recipe(leak, data, request):
    """Positive controls on the embedded world and on a varied ESC-50-shaped folder: the
    decision's interval lies above chance on the task the leak gives away."""
    recipe, tasks = LEAKS[leak]
    t, _ = _probe_tables(request.getfixturevalue(data), **recipe)
    for task in tasks:
        assert t.ci_low[task] > t.chance[task] + 5, (leak, t)


def test_the_auc_table_marks_the_statistics_of_the_decision():
    import pandas as pd

    rows = [{"task": t, "split": s, "feature": f, "auc": 0.5 + n / 100, "decision": f in CUE_FEATURES}
            for t in ("A-sd", "while") for s in ("train", "test") for n, f in enumerate(FEATURES)]
    table = auc_table(pd.DataFrame(rows))
    assert list(table.index) == [f + " · decision" if f in CUE_FEATURES else f for f in FEATURES]
    assert list(table.columns) == ["A-sd test", "A-sd train", "while test", "while train"]
    assert table.loc["crest · decision", "while test"] == pytest.approx(0.53)
    old = auc_table(pd.DataFrame(rows).drop(columns="decision"))  # a run logged before the column
    assert list(old.index) == list(FEATURES)


def test_envelope_statistics_are_reported_but_not_decided_on(world):
    """The default decision uses SPEC §4's level and length statistics; the envelope's AUCs
    are still computed (what two simultaneous sounds are), marked as outside the decision."""
    t, aucs = _probe_tables(world)
    assert set(aucs.feature) == set(FEATURES) and len(aucs) == 2 * 3 * len(FEATURES)
    assert set(aucs[aucs.decision].feature) == set(CUE_FEATURES)
    assert list(t.index) == ["A-sd", "3B", "3W"]
