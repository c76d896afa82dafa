"""ZSTE scoring on hand-made embeddings whose answers are known (SPEC §4)."""
from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pandas as pd
import pytest
import torch

from teminal.zste import (
    PAPER_TABLE3,
    TASKS,
    ZsteInputs,
    ZsteTemplates,
    chance_levels,
    evaluate,
    topk_credit,
    zste_prompts,
)

K = 5
NAMES = ["dog", "rain", "siren", "clock tick", "crow"]
TPL = ZsteTemplates(n_candidates_4=10, n_candidates_5b=8)


def _pairs(k: int = K) -> np.ndarray:
    return np.array([(i, j) for i in range(k) for j in range(k) if i != j])  # [K(K-1), 2]


def _orthonormal(n: int, *, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n + 3, n + 3)))
    return q[:n]  # [n, n + 3], rows orthonormal


def _world(pairs=None, templates=TPL):
    pairs = _pairs() if pairs is None else np.asarray(pairs)
    prompts = zste_prompts(NAMES, pairs, templates, seed=0)
    return pairs, prompts, _orthonormal(len(prompts.texts))


def _inputs(pairs, single, labels, seq, rev, mix) -> ZsteInputs:
    return ZsteInputs(class_names=NAMES, single_audio=single, single_labels=labels, pairs=pairs,
                      seq_audio=seq, rev_audio=rev, mix_audio=mix)


def _perfect(pairs, prompts, t):
    """Each audio = sum of the embeddings of every text that is correct for it."""
    i, j, cls = pairs[:, 0], pairs[:, 1], prompts.classes
    both = t[cls[i]] + t[cls[j]]
    seq = both + t[prompts.temporal[:, 0]] + t[prompts.position[:, 0]] + t[prompts.position[:, 1]]
    rev = both + t[prompts.temporal[:, 1]] + t[prompts.position[:, 2]] + t[prompts.position[:, 3]]
    mix = both + t[prompts.temporal[:, 2]] + t[prompts.simultaneous[:, :2]].sum(1)
    labels = np.arange(K).repeat(2)
    return _inputs(pairs, t[cls[labels]], labels, seq, rev, mix)


def test_perfect_model_scores_100_everywhere():
    pairs, prompts, t = _world()
    res = evaluate(_perfect(pairs, prompts, t), prompts, t, n_boot=50)
    assert list(res.table.task) == list(TASKS)
    np.testing.assert_allclose(res.table.value, 100.0)
    assert all((df.score == 1).all() and not df.tied.any() for df in res.items.values())
    row = res.items["3A"].query("audio == 'rev' and i == 0 and j == 1").iloc[0]
    assert row.predicted == row.target == "rain before dog"


def test_constant_model_scores_exact_chance():
    pairs, prompts, t = _world()
    one = np.ones((len(pairs), 8))
    inp = _inputs(pairs, np.ones((3, 8)), np.array([0, 1, 2]), one, one, one)
    res = evaluate(inp, prompts, np.ones((len(prompts.texts), 8)), n_boot=20)
    np.testing.assert_allclose(res.table.value, res.table.chance, atol=1e-9)
    assert all(df.tied.all() for df in res.items.values())
    first = res.items["3A"].iloc[0]
    assert first.predicted == "dog before rain | rain before dog | dog while rain (tie: 1 of 3 drawn)"
    assert first.target == "dog before rain"


def test_random_model_near_chance():
    k, rng = 10, np.random.default_rng(1)
    names = [f"c{n}" for n in range(k)]
    pairs = np.tile(_pairs(k), (6, 1))  # 540 rows
    prompts = zste_prompts(names, pairs, ZsteTemplates(), seed=3)
    d, p = 64, len(pairs)
    inp = ZsteInputs(class_names=names, single_audio=rng.normal(size=(600, d)),
                     single_labels=rng.integers(0, k, 600), pairs=pairs,
                     seq_audio=rng.normal(size=(p, d)), rev_audio=rng.normal(size=(p, d)),
                     mix_audio=rng.normal(size=(p, d)))
    tab = evaluate(inp, prompts, rng.normal(size=(len(prompts.texts), d)), n_boot=300).table
    assert ((tab.chance >= tab.ci_low - 3) & (tab.chance <= tab.ci_high + 3)).all(), tab


def _order_blind_texts(pairs, prompts, t):
    t = t.copy()
    fwd = pairs[:, 0] < pairs[:, 1]
    t[prompts.temporal[fwd, 1]] = t[prompts.temporal[fwd, 0]]  # "y before x" == "x before y"
    return t


def test_order_blind_tied_model_is_at_order_chance():
    pairs, prompts, t = _world()
    t = _order_blind_texts(pairs, prompts, t)
    seq = t[prompts.temporal[:, 0]]  # rev audio identical to seq audio
    inp = _inputs(pairs, t[prompts.classes[:3]], np.arange(3), seq, seq, t[prompts.temporal[:, 2]])
    tab = evaluate(inp, prompts, t, n_boot=20).table.set_index("task").value
    assert tab["3A-o"] == pytest.approx(50) and tab["3A"] == pytest.approx(50)
    assert tab["3A-c"] == pytest.approx(25)  # two independent fair coin flips
    assert tab["4A"] == pytest.approx(50) and tab["3B"] == pytest.approx(100)


def test_model_preferring_one_phrasing_fails_consistency():
    pairs, prompts, t = _world()
    canon = np.where(pairs[:, 0] < pairs[:, 1], prompts.temporal[:, 0], prompts.temporal[:, 1])
    seq = t[canon]  # always "min before max", whatever the order
    inp = _inputs(pairs, t[prompts.classes[:3]], np.arange(3), seq, seq, seq)
    res = evaluate(inp, prompts, t, n_boot=20)
    tab = res.table.set_index("task").value
    assert tab["3A"] == pytest.approx(50) and tab["3A-o"] == pytest.approx(50)
    assert tab["3A-c"] == 0.0
    assert not res.items["3A"].tied.any()


@pytest.mark.parametrize("which, expected", [((0, 1), 1.0), ((0, 2), 0.5), ((2, 3), 0.0)])
def test_task_5a_reward(which, expected):
    tpl = ZsteTemplates(n_candidates_4=6, n_candidates_5b=4)
    pairs = np.array([[0, 1]])
    prompts = zste_prompts(NAMES[:3], pairs, tpl, seed=0)
    t = _orthonormal(len(prompts.texts))
    seq = t[prompts.position[0, list(which)]].sum(0, keepdims=True)
    inp = ZsteInputs(class_names=NAMES[:3], single_audio=t[:1], single_labels=np.array([0]),
                     pairs=pairs, seq_audio=seq, rev_audio=seq, mix_audio=seq)
    items = evaluate(inp, prompts, t, n_boot=0).items["5A"]
    assert items.set_index("audio").score["seq"] == expected
    assert items.set_index("audio").score["rev"] == 1.0 - expected  # rev wants first y, second x
    first_dog = "In this concatenated sound, the first sound is dog"
    assert prompts.texts[prompts.position[0, 0]] == first_dog


def _brute(scores, correct, k, rule):
    """Average over every tie-breaking order (all permutations of the candidates)."""
    out = []
    for s, c in zip(scores, correct):
        vals = []
        for perm in itertools.permutations(range(len(s))):
            top = set(sorted(perm, key=lambda n: -s[n])[:k])  # stable: perm order breaks ties
            hit = [n in top for n in np.flatnonzero(c)]
            vals.append({"frac": np.mean(hit), "all": all(hit), "any": any(hit)}[rule])
        out.append(np.mean(vals))
    return np.array(out)


@pytest.mark.parametrize("rule", ["frac", "all", "any"])
@pytest.mark.parametrize("k", [1, 2])
def test_topk_credit_matches_brute_force_tie_breaking(rule, k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 3, size=(40, 5)).astype(float)  # many ties
    correct = np.zeros((40, 5), dtype=bool)
    correct[np.arange(40), rng.integers(0, 5, 40)] = True
    correct[np.arange(40), rng.integers(0, 5, 40)] = True
    got, _ = topk_credit(scores, correct, k=k, rule=rule)
    np.testing.assert_allclose(got.numpy(), _brute(scores, correct, k, rule), atol=1e-12)


def test_chance_levels_exact():
    c = chance_levels(5, n_candidates_4=10, n_candidates_5b=8)
    assert c["1A"] == 1 / 5 and c["2A"] == c["2C"] == 1 / 10
    assert c["2B"] == pytest.approx(7 / 10) and c["2D"] == pytest.approx(7 / 10)
    assert (c["3A"], c["3A-o"], c["3A-c"], c["3B"]) == (1 / 3, 1 / 2, 1 / 9, 1 / 3)
    assert c["4A"] == c["4B"] == 1 / 10 and c["5A"] == 0.5 and c["5B"] == 2 / 8
    tops = list(itertools.combinations(range(5), 2))  # 2B by enumeration: top-2 meets {0, 1}
    assert c["2B"] == pytest.approx(np.mean([bool({0, 1} & set(s)) for s in tops]))
    tops = list(itertools.combinations(range(8), 2))  # 5B: E|top-2 ∩ {0, 1}| / 2
    assert c["5B"] == pytest.approx(np.mean([len({0, 1} & set(s)) / 2 for s in tops]))
    assert chance_levels(50)["2A"] == 1 / comb(50, 2)


def test_bootstrap_is_seeded_and_contains_value():
    pairs, prompts, t = _world()
    rng = np.random.default_rng(0)
    p, d = len(pairs), t.shape[1]
    signal = 0.5 * _perfect(pairs, prompts, t).seq_audio
    noisy = [rng.normal(size=(p, d)) + signal for _ in range(3)]
    inp = _inputs(pairs, rng.normal(size=(30, d)), rng.integers(0, K, 30), *noisy)
    a = evaluate(inp, prompts, t, n_boot=200, seed=7).table
    b = evaluate(inp, prompts, t, n_boot=200, seed=7).table
    c = evaluate(inp, prompts, t, n_boot=200, seed=8).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.ci_low, c.ci_low)
    assert ((a.ci_low <= a.value + 1e-9) & (a.value <= a.ci_high + 1e-9)).all()
    assert list(a.n) == [30, p, p, p, p, 2 * p, 2 * p, p, p, 2 * p, p, 2 * p, p]


def test_seq_only_option_and_metrics():
    pairs, prompts, t = _world()
    res = evaluate(_perfect(pairs, prompts, t), prompts, t, n_boot=0, rev_in_order_tasks=False)
    assert res.table.set_index("task").n["3A"] == len(pairs)
    assert res.table.ci_low.isna().all()
    m = res.metrics()
    assert list(m) == [f"zste/{x}" for x in TASKS] and m["zste/3A-c"] == 100.0


def test_prompts_content_and_determinism():
    pairs, prompts, _ = _world()
    assert len(set(prompts.texts)) == len(prompts.texts)
    txt = np.asarray(prompts.texts, dtype=object)
    assert txt[prompts.classes[3]] == "The sound of clock tick"
    assert list(txt[prompts.temporal[0]]) == ["dog before rain", "rain before dog",
                                              "dog while rain"]
    assert list(txt[prompts.simultaneous[0, :2]]) == ["Simultaneous sound of dog and rain",
                                                      "Simultaneous sound of rain and dog"]
    for p, (i, j) in enumerate(pairs):
        distract = txt[prompts.task4[p, 3:]]
        assert len(set(distract)) == len(distract) == 7
        for s in distract:  # names a class outside {i, j}
            named = set(s.replace(" before ", "|").replace(" while ", "|").split("|"))
            assert len(named) == 2 and named <= set(NAMES) and named - {NAMES[i], NAMES[j]}
        assert len(set(prompts.simultaneous[p])) == 8
    again = zste_prompts(NAMES, pairs, TPL, seed=0)
    other = zste_prompts(NAMES, pairs, TPL, seed=1)
    assert again.texts == prompts.texts and np.array_equal(again.task4, prompts.task4)
    assert not np.array_equal(txt[other.task4], txt[prompts.task4])


def test_validation_errors_name_the_argument():
    pairs, prompts, t = _world()
    good = _perfect(pairs, prompts, t)
    with pytest.raises(ValueError, match="class_names"):
        zste_prompts(NAMES[:2], [[0, 1]], seed=0)
    with pytest.raises(ValueError, match="pairs"):
        zste_prompts(NAMES, [[1, 1]], TPL, seed=0)
    with pytest.raises(ValueError, match="n_candidates_4"):
        zste_prompts(NAMES[:3], [[0, 1]], ZsteTemplates(), seed=0)
    single, labels = good.single_audio, good.single_labels
    seq, rev, mix = good.seq_audio, good.rev_audio, good.mix_audio
    with pytest.raises(ValueError, match="seq_audio"):
        _inputs(pairs, single, labels, seq[:-1], rev, mix)
    with pytest.raises(ValueError, match="mix_audio"):
        _inputs(pairs, single, labels, seq, rev, mix[:, :4])
    with pytest.raises(ValueError, match="single_labels"):
        _inputs(pairs, single, labels[:-1], seq, rev, mix)
    with pytest.raises(ValueError, match="single_audio"):
        _inputs(pairs, single[0], labels, seq, rev, mix)
    with pytest.raises(ValueError, match="class_names"):
        ZsteInputs(class_names=NAMES[:2], single_audio=single, single_labels=labels,
                   pairs=[[0, 1]], seq_audio=seq[:1], rev_audio=rev[:1], mix_audio=mix[:1])
    with pytest.raises(ValueError, match="text_emb"):
        evaluate(good, prompts, t[:-1])
    with pytest.raises(ValueError, match="prompts"):
        evaluate(good, zste_prompts(NAMES, pairs[::-1], TPL, seed=0), t)


def test_accepts_torch_tensors():
    pairs, prompts, t = _world()
    good = _perfect(pairs, prompts, t)
    as_t = {f: torch.as_tensor(getattr(good, f)) for f in
            ("single_audio", "single_labels", "pairs", "seq_audio", "rev_audio", "mix_audio")}
    t32 = torch.as_tensor(t, dtype=torch.float32)
    res = evaluate(ZsteInputs(class_names=NAMES, **as_t), prompts, t32, n_boot=0)
    np.testing.assert_allclose(res.table.value, 100.0)


def test_paper_table3_reference():
    assert list(PAPER_TABLE3.columns) == ["task", "paper_clap", "paper_compa_clap",
                                          "paper_tclap_teminal_b", "paper_tclap_teminal_ab"]
    row = PAPER_TABLE3.set_index("task").loc["2C"]
    assert (row.paper_clap, row.paper_tclap_teminal_ab) == (9.39, 62.34)
    assert set(PAPER_TABLE3.task) < set(TASKS)


def test_low_precision_tensors():
    pairs, prompts, t = _world()
    good = _perfect(pairs, prompts, t)
    bf = {f: torch.as_tensor(getattr(good, f), dtype=torch.bfloat16)
          for f in ("single_audio", "seq_audio", "rev_audio", "mix_audio")}
    inp = ZsteInputs(class_names=NAMES, single_labels=good.single_labels, pairs=pairs, **bf)
    res = evaluate(inp, prompts, torch.as_tensor(t, dtype=torch.bfloat16), n_boot=0)
    assert (res.table.value > 90).all()  # bf16 rounding may break a few exact ties, not more
