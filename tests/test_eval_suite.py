"""Several models on the same items of an embedded world (SPEC §4): every ZSTE table with the
order scores and 3C, zero-shot, retrieval on a Clotho-layout folder, the report card."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from my_models import TONES

from teminal.audio import Recipe, write_audio
from teminal.eval.card import card_figure, card_markdown
from teminal.eval.specs import load_model
from teminal.eval.suite import EvalOptions, eval_data, evaluate_any, with_triples
from teminal.retrieval import read_clotho
from teminal.zste_tasks import ALL_TASKS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from teminal.data import base_set
    from teminal.data.pairs import PairingConfig, build_manifests
    from teminal.data.synth_world import WorldConfig, make_world

    root = make_world(tmp_path_factory.mktemp("suite_world") / "world",
                      WorldConfig(n_classes=10, clips_per_class=10, clip_seconds=0.5,
                                  sample_rate=16000))
    base = base_set.load(root)
    manifests = build_manifests(base, pairing=PairingConfig(pairing="folds", test_fraction=0.4))
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
