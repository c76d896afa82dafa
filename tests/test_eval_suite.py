"""Several models on the same items of an embedded world (SPEC §4): every ZSTE table with the
order scores and 3C, zero-shot, retrieval on a Clotho-layout folder, the report card."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from my_models import TONES

from teminal.audio import Recipe, write_audio
from teminal.eval.card import card_figure, card_markdown
from teminal.eval.specs import load_model
from teminal.eval.suite import EvalOptions, eval_data, evaluate_any, with_triples
from teminal.eval.retrieval import read_clotho
from teminal.eval.tasks import ALL_TASKS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An embedded world's base set and manifests."""
    from teminal.data import base_set
    from teminal.data.pairs import PairingConfig, build_manifests
    from teminal.data.synth_world import WorldConfig, make_world

    root = make_world(tmp_path_factory.mktemp("suite_world") / "world",
                      WorldConfig(n_classes=10, clips_per_class=10, clip_seconds=0.5,
                                  sample_rate=16000))
    base = base_set.load(root)
    return base, build_manifests(base, pairing=PairingConfig(pairing="folds", test_fraction=0.4))


@pytest.fixture(scope="module")
def data(world):
    base, manifests = world
    return with_triples(eval_data(base=base, manifests=manifests,
                                  recipe_at=lambda rate: Recipe(sample_rate=rate)), max_triples=3)


@pytest.fixture(scope="module")
def clotho(tmp_path_factory):
    root = tmp_path_factory.mktemp("clotho")
    (root / "evaluation").mkdir()
    rate, rows = 16000, []
    t = np.arange(rate // 2) / rate
    for n, (x, y) in enumerate(itertools.permutations(TONES, 2)):
        parts = [0.3 * np.sin(2 * np.pi * TONES[v] * t) for v in (x, y)]
        write_audio(root / "evaluation" / f"{n}.wav", np.concatenate(parts), rate)
        rows.append({"file_name": f"{n}.wav",
                     **{f"caption_{k}": f"a {x} before {y} tone" for k in range(1, 6)}})
    pd.DataFrame(rows).to_csv(root / "clotho_captions_evaluation.csv", index=False)
    return read_clotho(root)


def test_two_models_on_the_same_items_and_a_card(data, clotho):
    assert data.triples is not None and len(data.triples) == 18  # 3 triples x 6 orders
    opts = EvalOptions(n_boot=50, seed=0, captioned=clotho)
    reports = {m.name: evaluate_any(m, data, opts) for m in
               (load_model("my_models:make_model,label=half"),
                load_model("my_models:make_tone_model,label=tones"))}
    half, tones = reports["half"], reports["tones"]
    assert list(half.tables["zste"].task) == list(ALL_TASKS)
    assert {"zste", "zste_seen", "zste_heldout"} <= set(half.tables)
    pd.testing.assert_series_equal(half.tables["zste"].n, tones.tables["zste"].n)
    assert tones.retrieval["t2a/R@1"] == 1.0 and tones.retrieval["a2t/R@1"] == 1.0
    m = half.metrics()
    assert {"zste/3A-group", "zste/3C", "zste_heldout/3A-audio", "zero_shot/test/top1",
            "retrieval/t2a/mAP@10"} <= set(m)
    again = evaluate_any(load_model("my_models:make_model,label=half"), data, opts)
    pd.testing.assert_frame_equal(again.tables["zste"], half.tables["zste"])
    text = card_markdown(reports)
    for needle in ("| 3A-group |", "| 3C |", "paper: clap", "half", "tones", "## Retrieval"):
        assert needle in text, needle
    assert len(card_figure(reports).axes) >= 1  # zste_bars wraps its tasks onto rows


def test_03s_evaluation_scores_3c_on_the_items_05_scores(world, data, tmp_path):
    """03_zste's path (trunk cache, feature bank, ``zste_sets``) scores 3C in its held-out
    table on the very triples 05's ``evaluate_any`` draws, with the same outcome."""
    from teminal.cache import TrunkCache
    from teminal.data.clips import ClipStore, render
    from teminal.eval import evaluate as lib
    from teminal.eval import intervals, seed_stats
    from teminal.eval.adapters.backbone import BackboneModel
    from teminal.features import build_bank
    from teminal.models.tiny import TinyClap, TinyConfig

    base, manifests = world
    model = TinyClap(config=TinyConfig(sample_rate=16000, channels=(8, 16, 32, 64))).eval()
    recipe, store = Recipe(sample_rate=16000), ClipStore(base, sample_rate=16000)
    cache = TrunkCache(root=tmp_path, backbone=model, recipe=recipe, progress=False,
                       base_fingerprint=base.fingerprint, dtype=torch.float32)
    bank = build_bank(cache=cache, manifests=manifests, render=lambda k: render(k, store, recipe),
                      frames=False, device=torch.device("cpu"))
    three = lib.three_events(model, cache, manifests, list(base.classes), read=store.__getitem__,
                             recipe=recipe, n_triples=3, seed=0)
    assert list(three[0].key) == list(data.triples.key)  # 05's triples (same draw)
    sets = lib.zste_sets(model, bank, cache, manifests, list(base.classes), n_boot=50, seed=0,
                         device=torch.device("cpu"), triples=three)
    table = sets["zste"].table.set_index("task")
    assert list(table.index) == list(ALL_TASKS)
    assert table.loc["3C", "chance"] == pytest.approx(100 / 6) and table.loc["3C", "n"] == 18
    assert "3C" not in set(sets["zste_seen"].table.task) | set(sets["zste_heldout"].table.task)
    items = sets["zste"].items["3C"]
    assert {"i", "j", "k"} <= set(items.columns) and len(set(items.cluster)) == 3
    stored = seed_stats.item_table({"zste": sets["zste"].items})  # what 03 stores; report reads
    assert intervals.item_groups(seed_stats.aligned([stored], "zste", "3C")[1]).shape[1] == 3
    fig = seed_stats.figure([stored], "zste", "3C", n_boot=50, seed=0)  # its 3 classes resampled
    assert (fig.interval.low, fig.interval.high) == pytest.approx(
        (table.loc["3C", "ci_low"], table.loc["3C", "ci_high"]))
    other = evaluate_any(BackboneModel(model, name="tiny"), data, EvalOptions(n_boot=50, seed=0))
    again = other.items["zste"]["3C"]
    np.testing.assert_array_equal(items.key, again.key)
    np.testing.assert_allclose(items.score, again.score, atol=1e-6)
    assert lib.three_events(model, cache, manifests, list(base.classes), read=store.__getitem__,
                            recipe=recipe, n_triples=0, seed=0) is None
