"""Order in both directions, the Winoground trio and three events (SPEC §4), against
hand-built embeddings with known answers."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from teminal.audio import Recipe, rms
from teminal.eval.order import winoground_credit
from teminal.eval.three import (compose_three, held_out_triples, triple_clips, triple_items,
                                three_event_frame)
from teminal.eval.zste import ZsteInputs, evaluate
from teminal.eval.tasks import ALL_TASKS, ORDER_TASKS

NAMES = ["dog", "rain", "crow", "siren", "bell"]
BEFORE = "{x} before {y}"


class Orthogonal:
    """Every distinct text gets its own orthonormal vector; also the text embedder."""

    def __init__(self, dim: int = 512) -> None:
        self.basis = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))[0]
        self.index: dict[str, int] = {}

    def vec(self, text: str) -> np.ndarray:
        return self.basis[self.index.setdefault(text, len(self.index))]

    def __call__(self, texts):
        return np.stack([self.vec(t) for t in texts])


def _inputs(audio, triples=None, triple_audio=None) -> ZsteInputs:
    pairs = np.array(list(itertools.combinations(range(5), 2)))  # 10 unordered pairs
    key = lambda a, b: f"seq|c{a}.wav|c{b}.wav"  # noqa: E731
    d = len(audio(0, 1))
    return ZsteInputs(
        class_names=NAMES, single_audio=np.eye(5, d), single_labels=np.arange(5),
        single_keys=[f"single|c{c}.wav" for c in range(5)], pairs=pairs,
        seq_audio=np.stack([audio(a, b) for a, b in pairs]),
        rev_audio=np.stack([audio(b, a) for a, b in pairs]),
        mix_audio=np.stack([np.ones(d)] * len(pairs)),
        seq_keys=[key(a, b) for a, b in pairs], rev_keys=[key(b, a) for a, b in pairs],
        mix_keys=[f"mix|c{a}.wav|c{b}.wav" for a, b in pairs],
        triples=triples, triple_audio=triple_audio)


def _scores(res) -> dict[str, float]:
    return dict(zip(res.table.task, res.table.value))


def test_winoground_credit_hand_cases():
    cases = {  # sim[audio, caption]: expected T0, T1, text, audio, group
        "all right": ([[0.9, 0.1], [0.2, 0.8]], (1, 1, 1, 1, 1)),
        "text only": ([[0.5, 0.4], [0.6, 0.7]], (0, 1, 1, 0, 0)),
        "audio only": ([[0.5, 0.6], [0.4, 0.7]], (1, 1, 0, 1, 0)),
        "constant": ([[0.3, 0.3], [0.3, 0.3]], (1 / 2, 1 / 2, 1 / 4, 1 / 4, 1 / 6)),
        "one tie": ([[0.5, 0.1], [0.5, 0.9]], (1 / 2, 1, 1, 1 / 2, 1 / 2)),
    }
    sim = np.array([c[0] for c in cases.values()])
    got = winoground_credit(sim)
    for n, (name, (_, want)) in enumerate(cases.items()):
        have = tuple(got[k][n] for k in ("T0", "T1", "3A-text", "3A-audio", "3A-group"))
        np.testing.assert_allclose(have, want, err_msg=name)
    assert list(got["tied"]) == [False, False, False, True, True]


def test_random_similarities_average_to_chance():
    sim = np.random.default_rng(1).standard_normal((40000, 2, 2))
    got = winoground_credit(sim)
    for name, chance in (("T0", 1 / 2), ("3A-text", 1 / 4), ("3A-audio", 1 / 4),
                         ("3A-group", 1 / 6)):
        assert got[name].mean() == pytest.approx(chance, abs=0.01), name


def test_order_scores_of_three_hand_built_models():
    lex = Orthogonal()
    hears_order = lambda a, b: lex.vec(BEFORE.format(x=NAMES[a], y=NAMES[b]))  # noqa: E731
    one_phrasing = lambda a, b: lex.vec(  # noqa: E731  same audio either way, canonical caption
        BEFORE.format(x=NAMES[min(a, b)], y=NAMES[max(a, b)]))
    constant = lambda a, b: np.ones(512)  # noqa: E731
    flat = lambda texts: np.ones((len(texts), 512))  # noqa: E731
    want = [(hears_order, lex, (100, 100, 100, 100)), (one_phrasing, lex, (50, 0, 25, 0)),
            (constant, flat, (50, 25, 25, 100 / 6))]
    for model, text, values in want:
        res = evaluate(_inputs(model), text, tasks=ORDER_TASKS, n_boot=50)
        assert list(res.table.task) == list(ORDER_TASKS)
        np.testing.assert_allclose(res.table.value, values, atol=1e-9)
        np.testing.assert_allclose(res.table.chance, (50, 25, 25, 100 / 6))
    items = res.items["3A-group"]
    assert len(items) == 10 and set(items.cluster) == {i * 5 + j for i, j in
                                                        itertools.combinations(range(5), 2)}
    assert {"row", "i", "j", "key", "cluster", "phrasing", "score", "tied"} <= set(items.columns)
    assert len(res.items["3A-a"]) == 20


def test_mirrored_rows_are_one_question():
    lex = Orthogonal()
    model = lambda a, b: lex.vec(BEFORE.format(x=NAMES[a], y=NAMES[b])) * (1 + a)  # noqa: E731
    once = evaluate(_inputs(model), lex, tasks=ORDER_TASKS, n_boot=0)
    inp = _inputs(model)
    mirrored = ZsteInputs(**{**inp.__dict__, "pairs": np.concatenate([inp.pairs, inp.pairs[:, ::-1]]),
                             "seq_audio": np.concatenate([inp.seq_audio, inp.rev_audio]),
                             "rev_audio": np.concatenate([inp.rev_audio, inp.seq_audio]),
                             "mix_audio": np.concatenate([inp.mix_audio, inp.mix_audio]),
                             "seq_keys": inp.seq_keys + inp.rev_keys,
                             "rev_keys": inp.rev_keys + inp.seq_keys,
                             "mix_keys": inp.mix_keys + inp.mix_keys})
    twice = evaluate(mirrored, lex, tasks=ORDER_TASKS, n_boot=0)
    pd.testing.assert_frame_equal(once.table, twice.table)


def test_held_out_triples_and_their_clips():
    pairs = np.array([[0, 1], [1, 2], [2, 0], [2, 3], [3, 4], [1, 3]])
    np.testing.assert_array_equal(held_out_triples(pairs, 5), [[0, 1, 2], [1, 2, 3]])
    rows = pd.DataFrame({"i": [0, 1, 2], "j": [1, 2, 0], "clip_i": ["a0", "b1", "c2"],
                         "clip_j": ["a1", "b2", "c0"]})
    np.testing.assert_array_equal(triple_clips(rows, np.array([[0, 1, 2]])), [["a0", "a1", "b2"]])


def _three(model, lex):
    triples = np.array([[0, 1, 2], [1, 3, 4]])
    clips = np.array([[f"c{c}.wav" for c in t] for t in triples], dtype=object)
    items = triple_items(triples, clips, NAMES)
    audio = np.stack([model(*cls) for cls in items.classes])
    return items, audio


def test_three_events_known_answers():
    lex = Orthogonal()
    tpl = "{x} before {y} before {z}"
    hears = lambda a, b, c: lex.vec(tpl.format(x=NAMES[a], y=NAMES[b], z=NAMES[c]))  # noqa: E731
    first_only = lambda a, b, c: lex.vec(tpl.format(  # noqa: E731  one caption whatever the order
        x=NAMES[min(a, b, c)], y=NAMES[sorted((a, b, c))[1]], z=NAMES[max(a, b, c)]))
    flat = lambda texts: np.ones((len(texts), 512))  # noqa: E731
    for model, text, value in ((hears, lex, 1.0), (first_only, lex, 1 / 6),
                               (lambda *_: np.ones(512), flat, 1 / 6)):
        items, audio = _three(model, lex)
        frame = three_event_frame(items, audio, text)
        assert len(frame) == 12 and frame.score.mean() == pytest.approx(value)
    assert set(frame.cluster) == {(0 * 5 + 1) * 5 + 2, (1 * 5 + 3) * 5 + 4}
    assert frame.iloc[1].target == "dog before crow before rain"  # order (0, 2, 1)
    assert list(frame.iloc[1][["i", "j", "k"]]) == [0, 2, 1]


def test_three_events_in_the_zste_table():
    lex = Orthogonal()
    hears = lambda a, b: lex.vec(BEFORE.format(x=NAMES[a], y=NAMES[b]))  # noqa: E731
    first_only = lambda a, b, c: lex.vec("dog before rain before crow")  # noqa: E731
    items, audio = _three(first_only, lex)
    res = evaluate(_inputs(hears, items, audio), lex, tasks=(*ORDER_TASKS, "3C"), n_boot=50)
    row = res.table.set_index("task").loc["3C"]
    assert row.value == pytest.approx(100 / 6) and row.chance == pytest.approx(100 / 6)
    assert row.n == 12 and row.n_clusters == 2 and "3C" in ALL_TASKS


def test_compose_three_levels_each_part_and_keeps_order():
    rate = 1000
    t = np.arange(rate) / rate
    a, b, c = (v * np.sin(2 * np.pi * f * t).astype(np.float32)
               for v, f in ((0.01, 50), (0.5, 120), (0.2, 300)))  # very different levels
    recipe = Recipe(sample_rate=rate, level_rms=0.1, renormalize=True, peak_limit=0.99)
    out = compose_three([a, b, c], recipe)
    assert len(out) == 3 * rate and rms(out) == pytest.approx(0.1, rel=1e-4)
    parts = np.split(out, 3)
    assert rms(parts[0]) == pytest.approx(rms(parts[1]), rel=1e-4)
    assert not np.allclose(out, compose_three([b, a, c], recipe))
