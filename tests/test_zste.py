"""ZSTE scoring on hand-made embeddings whose answers are known (SPEC §4)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd
import pytest
import torch

from teminal.gates import SanityError
from teminal.eval.zste import PAPER_TABLE3, ZsteInputs, evaluate, evaluate_phrasings
from teminal.eval.prompts import zste_items
from teminal.eval.scoring import chance_levels, topk_credit
from teminal.eval.tasks import ORDER_TASKS, TASKS, ZsteTemplates

K = 5
NAMES = ["dog", "rain", "siren", "clock tick", "crow"]
TPL = ZsteTemplates(n_candidates_4=10, n_candidates_5b=8)
POS = "In this concatenated sound, the {pos} sound is {x}"


def _pairs(k: int = K) -> np.ndarray:
    return np.array([(i, j) for i in range(k) for j in range(k) if i != j])  # [K(K-1), 2]


class Lexicon:
    """A fixed unit vector per distinct text (orthonormal up to ``dim`` texts); an alias maps a
    text to another text's vector. Called as ``embed_text``."""

    def __init__(self, dim: int = 256, *, seed: int = 0, alias=None) -> None:
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
        self.basis, self.index, self.alias = q, {}, alias or (lambda s: s)

    def vec(self, text: str) -> np.ndarray:
        return self.basis[self.index.setdefault(self.alias(text), len(self.index))]

    def __call__(self, texts):
        return np.stack([self.vec(s) for s in texts])


def _key(kind: str, a: int, b: int | None = None, draw: int = 0) -> str:
    if kind == "single":
        return f"single|c{a}_{draw}.wav"
    if kind == "mix":
        a, b = sorted((a, b))
    return f"{kind}|c{a}_{draw}.wav|c{b}_{draw}.wav"


def _inputs(pairs, audio, *, names=NAMES, singles=None, draws=None) -> ZsteInputs:
    """Inputs whose audio embeddings come from ``audio(kind, a, b)`` — one vector per audio
    identity, so equal keys have equal embeddings (``seq`` with a first, ``mix`` with a < b)."""
    pairs = np.asarray(pairs)
    draws = np.zeros(len(pairs), int) if draws is None else np.asarray(draws)
    labels = np.arange(len(names)) if singles is None else np.asarray(singles)
    rows = list(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), draws.tolist()))
    mix = [tuple(sorted((i, j))) for i, j, _ in rows]
    return ZsteInputs(
        class_names=names,
        single_audio=np.stack([audio("single", c, None) for c in labels]), single_labels=labels,
        single_keys=[_key("single", c, None, n) for n, c in enumerate(labels)], pairs=pairs,
        seq_audio=np.stack([audio("seq", i, j) for i, j, _ in rows]),
        rev_audio=np.stack([audio("seq", j, i) for i, j, _ in rows]),
        mix_audio=np.stack([audio("mix", *m) for m in mix]),
        seq_keys=[_key("seq", i, j, d) for i, j, d in rows],
        rev_keys=[_key("seq", j, i, d) for i, j, d in rows],
        mix_keys=[_key("mix", i, j, d) for i, j, d in rows])


def _perfect_audio(lex: Lexicon, tpl: ZsteTemplates = TPL, names=NAMES):
    """Each audio = sum of the embeddings of every text that is correct for it."""
    def audio(kind, a, b):
        cls = lambda c: lex.vec(tpl.class_prompt.format(x=names[c]))  # noqa: E731
        if kind == "single":
            return cls(a)
        if kind == "seq":
            return (cls(a) + cls(b) + lex.vec(tpl.before.format(x=names[a], y=names[b]))
                    + lex.vec(POS.format(pos="first", x=names[a]))
                    + lex.vec(POS.format(pos="second", x=names[b])))
        sim = [lex.vec(tpl.simultaneous.format(x=names[x], y=names[y])) for x, y in ((a, b), (b, a))]
        return cls(a) + cls(b) + lex.vec(tpl.while_.format(x=names[a], y=names[b])) + sum(sim)
    return audio


def test_perfect_model_scores_100_everywhere():
    lex = Lexicon()
    res = evaluate(_inputs(_pairs(), _perfect_audio(lex)), lex, templates=TPL, n_boot=50)
    assert list(res.table.task) == list(TASKS)
    np.testing.assert_allclose(res.table.value, 100.0)
    assert all((df.score == 1).all() and not df.tied.any() for df in res.items.values())
    row = res.items["3A"].query("key == 'seq|c1_0.wav|c0_0.wav'").iloc[0]
    assert row.predicted == row.target == "rain before dog"
    assert res.items["3B"].iloc[0].target == "dog while rain"


def test_constant_model_scores_exact_chance():
    const = lambda kind, a, b: np.ones(8)  # noqa: E731
    res = evaluate(_inputs(_pairs(), const), lambda texts: np.ones((len(texts), 8)),
                   templates=TPL, n_boot=20)
    np.testing.assert_allclose(res.table.value, res.table.chance, atol=1e-9)
    assert all(df.tied.all() for df in res.items.values())
    t = res.table  # every item a tie: intervals stay open around chance (SPEC §4 "Intervals")
    assert ((t.ci_low < t.value) & (t.value < t.ci_high)).all(), t
    first = res.items["3A"].iloc[0]
    assert first.predicted == "dog before rain | rain before dog | dog while rain (tie: 1 of 3 drawn)"
    assert first.target == "dog before rain"


def test_random_model_near_chance():
    k, rng, d = 10, np.random.default_rng(1), 64
    names = [f"c{n}" for n in range(k)]
    pairs = np.tile(_pairs(k), (6, 1))  # 540 rows, 6 clip draws per ordered pair
    draws = np.repeat(np.arange(6), k * (k - 1))
    emb: dict = {}
    inp = _inputs(pairs, lambda kind, a, b: rng.normal(size=d), names=names,
                  singles=rng.integers(0, k, 600), draws=draws)
    tab = evaluate(inp, lambda texts: np.stack([emb.setdefault(s, rng.normal(size=d)) for s in texts]),
                   n_boot=300).table
    assert ((tab.chance >= tab.ci_low - 3) & (tab.chance <= tab.ci_high + 3)).all(), tab


def test_order_blind_tied_model_is_at_order_chance():
    canon = lambda s: " before ".join(sorted(s.split(" before "))) if " before " in s else s  # noqa: E731
    lex = Lexicon(alias=canon)  # "y before x" has the embedding of "x before y"
    def audio(kind, a, b):
        if kind == "mix":
            return lex.vec(f"{NAMES[a]} while {NAMES[b]}")
        return lex.vec(f"{NAMES[a]} before {NAMES[b]}") if kind == "seq" else lex.vec(NAMES[a])
    tab = evaluate(_inputs(_pairs(), audio), lex, templates=TPL, n_boot=20).table.set_index("task").value
    assert tab["3A-o"] == pytest.approx(50) and tab["3A"] == pytest.approx(50)
    assert tab["3A-c"] == pytest.approx(25)  # two independent fair coin flips
    assert tab["4A"] == pytest.approx(50) and tab["3B"] == pytest.approx(100)


def test_model_preferring_one_phrasing_fails_consistency():
    lex = Lexicon()
    def audio(kind, a, b):  # always "min before max", whatever the order
        lo, hi = (sorted((a, b)) if b is not None else (a, a))
        return lex.vec(f"{NAMES[lo]} before {NAMES[hi]}")
    res = evaluate(_inputs(_pairs(), audio), lex, templates=TPL, n_boot=20)
    tab = res.table.set_index("task")
    assert tab.value["3A"] == pytest.approx(50) and tab.value["3A-o"] == pytest.approx(50)
    assert tab.value["3A-c"] == 0.0 and tab.n["3A-c"] == comb(K, 2)
    assert not res.items["3A"].tied.any()
    # no interval collapses: each pair's two orders score 1 and 0; 3A-c is 0 of 10 pairs
    assert tab.ci_low["3A-o"] < 50 < tab.ci_high["3A-o"]
    assert tab.ci_low["3A-c"] == 0.0 and tab.ci_high["3A-c"] > 10


def test_balanced_while_score_gives_a_constant_answer_50():
    """3W (SPEC §4): a model that says "while" to everything gets 3B 100 and 3A 0, and 3W 50;
    one that never says it (and hears order perfectly) 3B 0 and 3W 50; one that tells sequences from overlays but not order
    3W 100 (and 3A 50)."""
    lex = Lexicon()
    always = lambda kind, a, b: (lex.vec(f"{NAMES[min(a, b)]} while {NAMES[max(a, b)]}")  # noqa: E731
                                 if b is not None else lex.vec(NAMES[a]))
    never = lambda kind, a, b: (lex.vec(f"{NAMES[a]} before {NAMES[b]}")  # noqa: E731
                                if b is not None else lex.vec(NAMES[a]))
    canon = lambda s: " before ".join(sorted(s.split(" before "))) if " before " in s else s  # noqa: E731
    blind = Lexicon(alias=canon)
    order_blind = lambda kind, a, b: (blind.vec(f"{NAMES[min(a, b)]} while {NAMES[max(a, b)]}")  # noqa: E731
                                      if kind == "mix" else blind.vec(f"{NAMES[a]} before {NAMES[b]}")
                                      if b is not None else blind.vec(NAMES[a]))
    for audio, embed, want in ((always, lex, (0, 100, 50)), (never, lex, (100, 0, 50)),
                               (order_blind, blind, (50, 100, 100))):
        res = evaluate(_inputs(_pairs(), audio), embed, templates=TPL, n_boot=50)
        tab = res.table.set_index("task")
        assert (tab.value["3A"], tab.value["3B"], tab.value["3W"]) == pytest.approx(want)
        assert tab.chance["3W"] == 50 and tab.n["3W"] == comb(K, 2)  # one unit per clip pair
    items = res.items["3W"]
    assert set(items.columns) >= {"i", "j", "key", "cluster"} and items.key.str.count(r" \+ ").eq(2).all()


def test_consistency_counts_each_unordered_clip_pair_once():
    lex = Lexicon()
    right = {(0, 1), (1, 0), (0, 2), (2, 0), (3, 4)}  # pairs {0,1}, {0,2} both right, {3,4} half
    def audio(kind, a, b):
        if kind != "seq":
            return lex.vec("nothing")
        x, y = (a, b) if (a, b) in right else (b, a)
        return lex.vec(f"{NAMES[x]} before {NAMES[y]}")
    res = evaluate(_inputs(_pairs(), audio), lex, templates=TPL, n_boot=0)
    items = res.items["3A-c"]
    assert len(items) == comb(K, 2) and items.cluster.is_unique
    assert res.table.set_index("task").value["3A-c"] == pytest.approx(100 * 2 / 10)
    both = items.query("score == 1")
    assert sorted(map(tuple, both[["i", "j"]].to_numpy().tolist())) == [(0, 1), (0, 2)]


@pytest.mark.parametrize("which, expected", [((0, 1), 1.0), ((0, 2), 0.5), ((2, 3), 0.0)])
def test_task_5a_reward(which, expected):
    lex = Lexicon()
    prompts = [POS.format(pos=p, x=NAMES[c]) for p, c in (("first", 0), ("second", 1),
                                                          ("first", 1), ("second", 0))]
    def audio(kind, a, b):
        if kind == "seq" and {a, b} == {0, 1}:  # both orders get the same embedding
            return sum(lex.vec(prompts[n]) for n in which)
        return lex.vec("other")
    items = evaluate(_inputs(_pairs(), audio), lex, templates=TPL, n_boot=0).items["5A"]
    score = items.set_index("key").score
    assert score["seq|c0_0.wav|c1_0.wav"] == expected
    assert score["seq|c1_0.wav|c0_0.wav"] == 1.0 - expected  # wants first rain, second dog


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


def _noisy(seed: int = 0, d: int = 256):
    """Half the perfect embedding plus noise fixed per audio identity."""
    lex = Lexicon(d)
    perfect = _perfect_audio(lex)
    def audio(kind, a, b):
        rng = np.random.default_rng([seed, len(kind), a, K if b is None else b])
        return 0.5 * perfect(kind, a, b) + 8 * rng.normal(size=d) / np.sqrt(d)
    return lex, audio


def test_bootstrap_is_seeded_and_contains_value_and_counts_items_after_dedup():
    lex, audio = _noisy()
    inp = _inputs(_pairs(), audio)
    a = evaluate(inp, lex, templates=TPL, n_boot=200, seed=7).table
    b = evaluate(inp, lex, templates=TPL, n_boot=200, seed=7).table
    c = evaluate(inp, lex, templates=TPL, n_boot=200, seed=8).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.ci_low, c.ci_low)
    assert ((a.ci_low <= a.value + 1e-9) & (a.value <= a.ci_high + 1e-9)).all()
    # 20 rows = 10 unordered pairs: 20 distinct sequential audios, 10 distinct overlays
    p, u = len(_pairs()), comb(K, 2)
    # 3W: one unit per clip pair; 3A-a: two captions per unordered clip pair; the trio: one item per pair
    assert list(a.n) == [K, p, p, u, u, p, p, u, u, u, p, u, p, u, p, u, u, u]
    assert list(a.n_clusters) == [K] + [u] * 17


def test_duplicated_rows_leave_value_and_interval_unchanged():
    lex, audio = _noisy(seed=3)
    pairs = _pairs()
    once = evaluate(_inputs(pairs, audio), lex, templates=TPL, n_boot=300, seed=1)
    twice = evaluate(_inputs(np.concatenate([pairs, pairs]), audio), lex, templates=TPL,
                     n_boot=300, seed=1)
    pd.testing.assert_frame_equal(once.table, twice.table)
    for task in TASKS:
        pd.testing.assert_frame_equal(once.items[task], twice.items[task])


def test_mirrored_rows_give_identical_items():
    items = zste_items(NAMES, _pairs(), seq_keys=[_key("seq", i, j) for i, j in _pairs()],
                       rev_keys=[_key("seq", j, i) for i, j in _pairs()],
                       mix_keys=[_key("mix", i, j) for i, j in _pairs()],
                       templates=TPL, tasks=("3B", "4A", "4B", "5B"), seed=0)
    txt = np.asarray(items.texts, dtype=object)
    for task in ("3B", "4B", "5B"):  # one overlay item per unordered pair
        assert len(items.tasks[task]) == comb(K, 2)
    assert "rain while dog" not in items.texts and "dog while rain" in items.texts
    four = items.tasks["4A"]  # the seq of (i, j) and of (j, i): same candidate set
    sets = {}
    for key, i, j, cand in zip(four.key, four.i, four.j, four.candidates):
        sets.setdefault(frozenset((i, j)), []).append(frozenset(txt[cand]))
    assert all(len(v) == 2 and v[0] == v[1] for v in sets.values())


def _iid_interval(score: np.ndarray, *, n_boot: int, seed: int) -> tuple[float, float]:
    """Plain reference: bootstrap over items, each item on its own."""
    draw = np.random.default_rng(seed).integers(0, len(score), size=(n_boot, len(score)))
    return tuple(np.percentile(score[draw].mean(axis=1), [2.5, 97.5]))


def test_clustered_interval_is_wider_than_iid_when_orders_are_correlated():
    k = 12
    names = [f"c{n}" for n in range(k)]
    lex, good = Lexicon(512), set(range(0, comb(k, 2), 2))  # every other unordered pair right
    ids = {p: n for n, p in enumerate(itertools.combinations(range(k), 2))}
    def audio(kind, a, b):  # both orders of a pair right, or both wrong: perfectly correlated
        if kind != "seq":
            return lex.vec("nothing")
        right = ids[tuple(sorted((a, b)))] in good
        x, y = (a, b) if right else (b, a)
        return lex.vec(f"{names[x]} before {names[y]}")
    res = evaluate(_inputs(_pairs(k), audio, names=names), lex, tasks=("3A-o",), n_boot=4000)
    row = res.table.iloc[0]
    items = res.items["3A-o"]
    assert row.n == 2 * row.n_clusters == k * (k - 1) and row.value == pytest.approx(50)
    lo, hi = _iid_interval(items.score.to_numpy(), n_boot=4000, seed=0)
    assert (row.ci_high - row.ci_low) > 1.3 * 100 * (hi - lo)  # √2 in expectation


def test_fewer_than_ten_unordered_pairs_is_a_sanity_error():
    names = NAMES[:4]  # 6 unordered pairs
    lex = Lexicon()
    inp = _inputs(_pairs(4), lambda kind, a, b: lex.vec(f"{kind}{a}{b}"), names=names)
    with pytest.raises(SanityError, match=r"6 distinct unordered class pairs.*test_fraction"):
        evaluate(inp, lex, templates=TPL)
    with pytest.raises(SanityError, match="class_names"):
        zste_items(NAMES[:2], [[0, 1]], seq_keys=["a"], rev_keys=["b"], mix_keys=["c"], seed=0)


@dataclass(frozen=True)
class Family:  # duck-typed like teminal.data.captions.PhrasingFamily
    sequence: tuple
    overlay: tuple
    position: tuple


HELDOUT = Family(sequence=("{x} precedes {y}", "{y} comes later than {x}"),
                 overlay=("{x} together with {y}", "{x} overlapping with {y}"),
                 position=("{x} is heard {pos}",))


def test_heldout_phrasings_score_every_template_combination():
    lex = Lexicon(512)
    perfect = _perfect_audio(lex)
    def heldout(kind, a, b):  # perfect on the training phrasing and on every held-out template
        extra = []
        if kind == "seq":
            extra = [t.format(x=NAMES[a], y=NAMES[b]) for t in HELDOUT.sequence]
            extra += [HELDOUT.position[0].format(pos=p, x=NAMES[c]) for p, c in (("first", a), ("second", b))]
        elif kind == "mix":
            extra = [t.format(x=NAMES[a], y=NAMES[b]) for t in HELDOUT.overlay]
        return perfect(kind, a, b) + sum((lex.vec(s) for s in extra), np.zeros(512))
    for audio, expect in ((heldout, None), (perfect, "chance")):
        res = evaluate_phrasings(_inputs(_pairs(), audio), lex, family=HELDOUT, n_boot=50)
        tab = res.table.set_index("task")
        assert list(tab.index) == ["3A", "3A-o", "3A-c", "3B", "3W", "5A", *ORDER_TASKS]
        p, u = len(_pairs()), comb(K, 2)  # 2 sequence x 2 overlay templates, 1 position
        assert list(tab.n) == [4 * p, 2 * p, 4 * u, 4 * u, 4 * u, p, 2 * p, 2 * u, 2 * u, 2 * u]
        assert (tab.n_clusters == u).all()
        want = tab.chance if expect == "chance" else 100.0  # held-out texts orthogonal: all tied
        np.testing.assert_allclose(tab.value, want, atol=1e-9)
    assert "dog overlapping with rain" in set(res.items["3B"].target)
    assert res.metrics("zste_heldout")["zste_heldout/3A-c"] == pytest.approx(100 / 9)
    no_position = Family(sequence=HELDOUT.sequence, overlay=HELDOUT.overlay, position=())
    res = evaluate_phrasings(_inputs(_pairs(), heldout), lex, family=no_position, n_boot=0)
    assert list(res.table.task) == ["3A", "3A-o", "3A-c", "3B", "3W", *ORDER_TASKS]  # 5A needs position
    from teminal.data.captions import HELDOUT_FAMILY  # the real family, duck-typed the same
    res = evaluate_phrasings(_inputs(_pairs(), heldout), lex, family=HELDOUT_FAMILY, n_boot=0)
    assert list(res.table.task) == ["3A", "3A-o", "3A-c", "3B", "3W", "5A", *ORDER_TASKS]
    with pytest.raises(ValueError, match="none can be scored"):
        evaluate_phrasings(_inputs(_pairs(), heldout), lex, family=no_position, tasks=("5A",))
    with pytest.raises(ValueError, match=r"family.sequence\[0\]"):
        evaluate_phrasings(_inputs(_pairs(), heldout), lex, family=Family(("{x} then",), (), ()))


def test_metrics_prefix_and_task_subset():
    lex = Lexicon()
    res = evaluate(_inputs(_pairs(), _perfect_audio(lex)), lex, templates=TPL, n_boot=0,
                   tasks=("1A", "3A-c"))
    assert list(res.table.task) == ["1A", "3A-c"] and res.table.ci_low.isna().all()
    assert res.metrics() == {"zste/1A": 100.0, "zste/3A-c": 100.0}
    assert list(res.metrics("zste_seen")) == ["zste_seen/1A", "zste_seen/3A-c"]


def test_items_content_and_determinism():
    kw = dict(seq_keys=[_key("seq", i, j) for i, j in _pairs()],
              rev_keys=[_key("seq", j, i) for i, j in _pairs()],
              mix_keys=[_key("mix", i, j) for i, j in _pairs()], templates=TPL,
              single_keys=[_key("single", c) for c in range(K)], single_labels=np.arange(K))
    items = zste_items(NAMES, _pairs(), seed=0, **kw)
    txt = np.asarray(items.texts, dtype=object)
    assert len(set(items.texts)) == len(items.texts)
    assert set(txt[items.tasks["1A"].candidates[0]]) == {f"The sound of {n}" for n in NAMES}
    three = items.tasks["3A"]
    assert list(txt[three.candidates[0]]) == ["dog before rain", "rain before dog", "dog while rain"]
    four = items.tasks["4A"]
    for cand, i, j in zip(four.candidates, four.i, four.j):
        distract = txt[cand[3:]]
        assert len(set(distract)) == len(distract) == 7
        for s in distract:  # names a class outside {i, j}
            named = set(s.replace(" before ", "|").replace(" while ", "|").split("|"))
            assert len(named) == 2 and named <= set(NAMES) and named - {NAMES[i], NAMES[j]}
    assert all(len(set(c)) == 8 for c in items.tasks["5B"].candidates)
    again, other = zste_items(NAMES, _pairs(), seed=0, **kw), zste_items(NAMES, _pairs(), seed=1, **kw)
    assert again.texts == items.texts and np.array_equal(again.tasks["4A"].candidates, four.candidates)
    assert not np.array_equal(txt[other.tasks["4A"].candidates], txt[four.candidates])


def test_validation_errors_name_the_argument():
    lex = Lexicon()
    good = _inputs(_pairs(), _perfect_audio(lex))
    f = {name: getattr(good, name) for name in good.__dataclass_fields__}
    with pytest.raises(ValueError, match="pairs"):
        zste_items(NAMES, [[1, 1]], seq_keys=["a"], rev_keys=["b"], mix_keys=["c"], seed=0)
    with pytest.raises(ValueError, match="n_candidates_4"):
        evaluate(good, lex)  # 50 candidates need more than K = 5 classes
    for name, bad in (("seq_audio", f["seq_audio"][:-1]), ("mix_audio", f["mix_audio"][:, :4]),
                      ("single_labels", f["single_labels"][:-1]), ("single_audio", f["single_audio"][0]),
                      ("mix_keys", f["mix_keys"][:-1]), ("single_keys", [""] * K)):
        with pytest.raises(ValueError, match=name):
            ZsteInputs(**{**f, name: bad})
    swapped = ZsteInputs(**{**f, "rev_keys": f["seq_keys"]})  # rev audio named like the seq
    with pytest.raises(ValueError, match="seq_keys/rev_keys.*one audio key must name one"):
        evaluate(swapped, lex, templates=TPL)
    clash = ZsteInputs(**{**f, "mix_keys": f["seq_keys"]})
    with pytest.raises(ValueError, match="mix_keys"):
        evaluate(clash, lex, templates=TPL)
    with pytest.raises(ValueError, match="embed_text"):
        evaluate(good, lambda texts: lex(texts)[:-1], templates=TPL)
    with pytest.raises(ValueError, match="tasks"):
        evaluate(good, lex, templates=TPL, tasks=("3D",))
    with pytest.raises(ValueError, match="tasks: 3C needs three-event inputs"):
        evaluate(good, lex, templates=TPL, tasks=("3C",))
    with pytest.raises(ValueError, match="ZsteTemplates.before"):
        ZsteTemplates(before="{x} before")


def test_accepts_torch_tensors_and_low_precision():
    lex = Lexicon()
    good = _inputs(_pairs(), _perfect_audio(lex))
    for dtype in (torch.float32, torch.bfloat16):
        as_t = {f: torch.as_tensor(getattr(good, f), dtype=dtype)
                for f in ("single_audio", "seq_audio", "rev_audio", "mix_audio")}
        as_t.update(single_labels=torch.as_tensor(good.single_labels),
                    pairs=torch.as_tensor(good.pairs))
        inp = ZsteInputs(**{**{f: getattr(good, f) for f in good.__dataclass_fields__}, **as_t})
        embed = lambda texts: torch.as_tensor(lex(texts), dtype=dtype)  # noqa: E731
        res = evaluate(inp, embed, templates=TPL, n_boot=0)
        if dtype == torch.float32:
            np.testing.assert_allclose(res.table.value, 100.0)
        else:  # bf16 rounding may break a few exact ties, not more
            assert (res.table.value > 90).all()


def test_paper_table3_reference():
    assert list(PAPER_TABLE3.columns) == ["task", "paper_clap", "paper_compa_clap",
                                          "paper_tclap_teminal_b", "paper_tclap_teminal_ab"]
    row = PAPER_TABLE3.set_index("task").loc["2C"]
    assert (row.paper_clap, row.paper_tclap_teminal_ab) == (9.39, 62.34)
    assert set(PAPER_TABLE3.task) < set(TASKS)
