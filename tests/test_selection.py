"""Choosing by score reads validation items only (SPEC §4; issue 17 item 4)."""
from __future__ import annotations

import pandas as pd
import pytest

from teminal.eval import selection
from teminal.data.pairs import PairingConfig, build_manifests


@pytest.fixture(scope="module")
def manifests(fake_base):
    return build_manifests(fake_base(30, clips_per_fold=4),
                           pairing=PairingConfig(pairing="folds", train_repeats=2))


def test_validation_items_hold_the_val_split_only(manifests):
    items = selection.validation_items(manifests)
    assert set(items.rows["split"]) == {"val"} and set(items.singles["split"]) == {"val"}
    sb = manifests.stage_b
    assert len(items.rows) == (sb["split"] == "val").sum() > 0
    trained = {frozenset(p) for p in sb[sb["split"] == "train"][["i", "j"]].to_numpy().tolist()}
    assert not trained & {frozenset(p) for p in items.rows[["i", "j"]].to_numpy().tolist()}


@pytest.mark.parametrize("split", ["test", "seen", "train"])
def test_items_of_another_split_are_refused(manifests, split):
    sb, singles = manifests.stage_b, manifests.singles
    rows = sb[sb["split"].isin(["val", split])]
    with pytest.raises(ValueError, match=f"holds splits \\['{split}'\\]"):
        selection.ValidationItems(rows=rows, singles=singles[singles["split"] == "val"])
    with pytest.raises(ValueError, match="singles holds splits"):
        selection.ValidationItems(rows=sb[sb["split"] == "val"], singles=singles)


def test_choose_scores_validation_items_and_picks_the_best(manifests):
    items = selection.validation_items(manifests)
    seen = []

    def score(value, got):
        seen.append(got)
        return value * len(got.rows)

    choice = selection.choose({"a": 1.0, "b": 3.0, "c": 2.0}, score=score, items=items)
    assert choice.name == "b" and choice.value == 3.0
    n = len(items.rows)
    assert choice.scores == {"a": n, "b": 3 * n, "c": 2 * n}
    assert all(g is items for g in seen)
    low = selection.choose({"a": 1.0, "b": 3.0}, score=score, items=items, higher_is_better=False)
    assert low.name == "a"
    tie = selection.choose({"x": 2.0, "y": 2.0}, score=score, items=items)
    assert tie.name == "x"  # ties: the first candidate


def test_choose_cannot_be_handed_the_test_split(manifests):
    sb = manifests.stage_b
    test_rows = sb[sb["split"] == "test"]
    with pytest.raises(TypeError, match="ValidationItems only"):
        selection.choose({"a": 1}, score=lambda v, items: 1.0, items=test_rows)
    with pytest.raises(TypeError, match="ValidationItems"):
        selection.zste_inputs(None, None, test_rows, [])


def test_choose_refuses_empty_and_non_finite(manifests):
    items = selection.validation_items(manifests)
    with pytest.raises(ValueError, match="no candidates"):
        selection.choose({}, score=lambda v, i: 0.0, items=items)
    with pytest.raises(ValueError, match="'a' is nan"):
        selection.choose({"a": 1}, score=lambda v, i: float("nan"), items=items)


def test_no_val_rows_is_a_clear_error():
    empty = pd.DataFrame({"split": pd.Series([], dtype=str)})
    with pytest.raises(ValueError, match="val_fraction"):
        selection.ValidationItems(rows=empty, singles=empty)
