"""Seeds as an axis, the aggregation: per-item scores stored compactly, figures over seeds with
their seed range and disagreement flag, paired and independent differences (SPEC §4
"Intervals"), and the comparisons the report makes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from teminal import ablation
from teminal.eval import seed_stats, tables, zste
from teminal.eval.scoring import ZsteResult
from teminal.eval.tasks import ZsteTemplates
from teminal.eval.intervals import Interval
from teminal.run.config import load_config

ROOT = Path(__file__).resolve().parents[1]
N_BOOT = 200
NAMES = ["dog", "rain", "siren", "clock tick", "crow"]
TPL = ZsteTemplates(n_candidates_4=10, n_candidates_5b=8)


def _inputs(rng: np.random.Generator) -> zste.ZsteInputs:
    """Every ordered class pair of ``NAMES`` once, one clip per class, random audio embeddings
    (one vector per audio identity)."""
    k = len(NAMES)
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    vecs: dict = {}
    vec = lambda key: vecs.setdefault(key, rng.normal(size=16))  # noqa: E731
    seq = [f"seq|c{i}.wav|c{j}.wav" for i, j in pairs]
    rev = [f"seq|c{j}.wav|c{i}.wav" for i, j in pairs]
    mix = [f"mix|c{min(i, j)}.wav|c{max(i, j)}.wav" for i, j in pairs]
    singles = [f"single|c{c}.wav" for c in range(k)]
    return zste.ZsteInputs(
        class_names=NAMES, single_audio=np.stack([vec(s) for s in singles]),
        single_labels=np.arange(k), single_keys=singles, pairs=np.array(pairs),
        seq_audio=np.stack([vec(s) for s in seq]), rev_audio=np.stack([vec(s) for s in rev]),
        mix_audio=np.stack([vec(s) for s in mix]), seq_keys=seq, rev_keys=rev, mix_keys=mix)


def _table(seed: int) -> tuple[pd.DataFrame, ZsteResult]:
    """The item table of a real ZSTE evaluation of random audio embeddings (one 'model')."""
    inputs = _inputs(np.random.default_rng(seed))
    texts = np.random.default_rng(99)  # one text side for every "seed"
    cache: dict = {}

    def embed(ts):
        return np.stack([cache.setdefault(t, texts.normal(size=16)) for t in ts])

    result = zste.evaluate(inputs, embed, templates=TPL, n_boot=0, seed=0)
    return seed_stats.item_table({"zste": result.items}), result


def test_item_table_round_trips_through_parquet_and_gives_the_table_values(tmp_path):
    table, result = _table(0)
    path = tmp_path / "x.items.parquet"
    seed_stats.write_items(table, path)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, table)
    assert {"set", "task", "i", "j", "label", "key", "cluster", "score"} <= set(back.columns)
    assert "predicted" not in back.columns  # compact: no display strings
    for task, value in zip(result.table.task, result.table.value):
        fig = seed_stats.figure([back], "zste", task, n_boot=N_BOOT, seed=0)
        assert fig.interval.value == pytest.approx(value)
        assert fig.interval.n_seeds == 1 and not fig.disagree
        assert "seeds" not in tables.figure_cell(fig)


def test_identical_seeds_agree_and_opposite_seeds_are_flagged():
    table, _ = _table(0)
    ones, zeros = table.assign(score=1.0), table.assign(score=0.0)
    same = seed_stats.figure([table, table], "zste", "3A", n_boot=N_BOOT, seed=0)
    assert same.interval.n_seeds == 2 and same.seed_range == pytest.approx(0.0)
    assert not same.disagree and "⚠" not in tables.figure_cell(same)
    assert "· seeds" in tables.figure_cell(same)
    split = seed_stats.figure([ones, zeros], "zste", "3A", n_boot=N_BOOT, seed=0)
    assert split.interval.value == pytest.approx(50.0)
    assert split.seed_range == pytest.approx(100.0) and split.disagree
    text = tables.figure_cell(split)
    assert text.startswith("**") and "⚠" in text and "seeds 0.0–100.0" in text
    # seed spread widens the interval beyond the evaluation-only one
    assert split.interval.high - split.interval.low > 2 * split.margin * 0.99


def test_different_items_cannot_be_paired():
    table, _ = _table(0)
    fewer = table.drop(index=table.index[(table.task == "3B")][:1])
    with pytest.raises(ValueError, match="other items"):
        seed_stats.figure([table, fewer], "zste", "3B", n_boot=N_BOOT, seed=0)


def test_paired_difference_pairs_a_seedless_model_with_every_seed():
    base, _ = _table(0)
    a = {0: _table(1)[0], 1: _table(2)[0]}
    iv = seed_stats.paired(a, {None: base}, "zste", "3A", n_boot=N_BOOT, seed=0)
    pick = lambda t: t[(t.set == "zste") & (t.task == "3A")].score.mean()  # noqa: E731
    expected = 100 * (np.mean([pick(a[0]), pick(a[1])]) - pick(base))
    assert iv.value == pytest.approx(expected) and iv.n_seeds == 2
    assert iv.low < iv.value < iv.high


def test_paired_difference_pairs_seeds_by_value():
    t = {s: _table(s)[0] for s in range(3)}
    a, b = {1: t[1], 0: t[0]}, {0: t[2], 1: t[0]}
    iv = seed_stats.paired(a, b, "zste", "3B", n_boot=N_BOOT, seed=0)
    pick = lambda x: x[(x.set == "zste") & (x.task == "3B")].score.mean()  # noqa: E731
    by_seed = (pick(t[0]) - pick(t[2]), pick(t[1]) - pick(t[0]))  # seed 0, seed 1
    assert iv.value == pytest.approx(100 * np.mean(by_seed))
    with pytest.raises(ValueError, match="no common training seed"):
        seed_stats.paired({0: t[0]}, {1: t[1]}, "zste", "3B", n_boot=N_BOOT, seed=0)


def test_a_model_minus_itself_is_zero_and_not_bold():
    t = _table(0)[0]
    iv = seed_stats.paired({0: t}, {0: t}, "zste", "3A", n_boot=N_BOOT, seed=0)
    assert iv.value == pytest.approx(0.0)
    assert not tables.difference_cell(iv).startswith("**")


def test_independent_difference_adds_the_two_margins_on_each_side():
    a, b = Interval(50.0, 40.0, 60.0, 3), Interval(30.0, 25.0, 37.0, 3)
    d = seed_stats.independent_difference(a, b)
    assert d.value == pytest.approx(20.0)
    assert d.low == pytest.approx(20 - np.hypot(10, 7))
    assert d.high == pytest.approx(20 + np.hypot(10, 5))
    assert tables.difference_cell(d).startswith("**+20.0")


def test_comparisons_are_chosen_by_the_rows_parameters():
    config = load_config(ROOT / "params" / "default.yaml")
    got = [(c.a, c.b) for c in ablation.comparisons(ablation.plan(config))]
    assert got == [("T-AB (0,0,0,0,1)", "T-B (0,0,0,0,1)"),
                   ("T-AB (1,1,1,1,1)", "T-B (1,1,1,1,1)"),
                   ("T-AB+order-head (1,1,1,1,1)", "T-AB (1,1,1,1,1)"),
                   ("T-AB+order-head (1,1,1,1,1) binding", "T-AB+order-head (1,1,1,1,1)")]
    only_a = config.model_copy(update={"ablations": config.ablations.model_copy(
        update={"starts": ["A"], "extra_rows": []})})
    assert ablation.comparisons(ablation.plan(only_a)) == []


def test_seeds_parameter_is_a_count_from_seed_or_a_list():
    from teminal.run.config import ConfigError, apply_overrides
    from teminal.run.params import RunConfig

    assert RunConfig().training_seeds == (0,)  # the single-seed run
    assert RunConfig(seed=2, seeds=3).training_seeds == (2, 3, 4)
    config, notes = apply_overrides(RunConfig(), ["seeds=[5,1]"])
    assert config.training_seeds == (5, 1) and notes == ["-p seeds=[5,1] → seeds"]
    for bad, why in (("seeds=0", "count ≥ 1"), ("seeds=[1,1]", "distinct")):
        with pytest.raises(ConfigError, match=f"seeds: .*{why}"):
            apply_overrides(RunConfig(), [bad])
