"""The manifest vocabulary (SPEC §1): a row's composites, caption columns, the unordered pair."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teminal.data.captions import CaptionTemplates, pair_captions
from teminal.data.clips import parse_key, temporal_inverse
from teminal.data.pairs import PairingConfig, build_manifests
from teminal.data.vocabulary import (CAPTION_COLUMNS, CAPTION_SOURCES, CLIP_COLUMNS, DOUBLE,
                                     FORWARD, OVERLAY, REVERSED, SINGLE, STAGE_B,
                                     STAGE_B_COLUMNS, TCLAP, check_clip_columns, interleaved_keys,
                                     unordered_pair, unordered_pair_ids, unordered_pairs)


@pytest.fixture(scope="module")
def manifests(fake_base):
    base = fake_base(6, clips_per_fold=3)
    return build_manifests(base, pairing=PairingConfig(pairing="folds", train_repeats=2))


def clips_back(forward: str, reversed_: str, overlay: str) -> dict[str, str]:
    """The clip columns of a stage-B row, read back from its three keys alone."""
    rel_f, (ci, cj) = parse_key(forward)
    rel_r, (rj, ri) = parse_key(reversed_)
    rel_o, clips = parse_key(overlay)
    assert (rel_f, rel_r, rel_o) == ("seq", "seq", "mix") and (ri, rj) == (ci, cj)
    second = dict([clips[:2], clips[2:]])  # halves (a, a2), (b, b2), listed sorted: a → a2
    assert set(second) == {ci, cj}
    return {"clip_i": ci, "clip_i2": second[ci], "clip_j": cj, "clip_j2": second[cj]}


def test_a_rows_composites_give_back_its_clips(manifests):
    """Round trip: row → composite keys → the row's clip columns, for every stage-B row."""
    sb = manifests.stage_b
    f, r, o = (c.keys(sb) for c in STAGE_B)
    back = pd.DataFrame([clips_back(*keys) for keys in zip(f, r, o)])
    pd.testing.assert_frame_equal(back[list(CLIP_COLUMNS)], sb[list(CLIP_COLUMNS)].astype(str))


def test_composites_relate_as_spec_says(manifests):
    sb, sa = manifests.stage_b, manifests.stage_a
    assert [temporal_inverse(k) for k in FORWARD.keys(sb)] == REVERSED.keys(sb)  # r = T(f)
    assert [temporal_inverse(k) for k in OVERLAY.keys(sb)] == OVERLAY.keys(sb)  # T(o) = o
    assert DOUBLE.keys(sa) == FORWARD.keys(sa)  # the stage-A double is the forward audio
    singles = [parse_key(k) for k in SINGLE.keys(sa)]
    assert [c for _, c in singles] == list(zip(sa["clip_i"], sa["clip_i2"]))
    assert {rel for rel, _ in singles} == {"span"}
    # row (i, j) and row (j, i) of one draw: the forward audio of one is the reversed of the other
    swap = sb.set_index(["i", "j", "draw", "split"])
    mirrored = swap.loc[list(zip(sb["j"], sb["i"], sb["draw"], sb["split"]))].reset_index()
    assert FORWARD.keys(sb) == REVERSED.keys(mirrored)
    assert OVERLAY.keys(sb) == OVERLAY.keys(mirrored)


def test_interleaved_keys_are_row_by_row(manifests):
    sb = manifests.stage_b.head(4)
    keys = interleaved_keys(sb, STAGE_B)
    assert len(keys) == 3 * len(sb)
    assert keys[0::3] == FORWARD.keys(sb) and keys[1::3] == REVERSED.keys(sb)
    assert keys[2::3] == OVERLAY.keys(sb)
    assert interleaved_keys(sb, TCLAP)[1::2] == OVERLAY.keys(sb)


def test_caption_columns_name_the_manifest_captions(manifests):
    sb, t = manifests.stage_b, CaptionTemplates()
    for c in STAGE_B:
        assert c.caption in STAGE_B_COLUMNS and c.paraphrase in STAGE_B_COLUMNS
        assert c.caption_column("paper") == c.caption
        assert c.caption_column("paraphrase") == c.paraphrase
    for row in sb.head(6).itertuples():
        want = pair_captions(getattr(t, row.phrasing), t.while_, row.label_i, row.label_j)
        assert tuple(getattr(row, c.caption) for c in STAGE_B) == want
    for table, columns in CAPTION_COLUMNS.items():
        assert set(columns) <= set(getattr(manifests, table).columns)
    assert [c.block for c in STAGE_B] == ["f", "r", "o"]
    assert CAPTION_SOURCES == ("paper", "paraphrase")


def test_caption_column_errors_name_the_choice():
    with pytest.raises(ValueError, match="captions must be one of"):
        FORWARD.caption_column("papers")
    with pytest.raises(ValueError, match="single composite has no paraphrase"):
        SINGLE.caption_column("paraphrase")


def test_old_manifests_without_second_clips_are_refused(manifests):
    old = manifests.stage_b.drop(columns=["clip_i2", "clip_j2"])
    with pytest.raises(ValueError, match=r"lack columns \['clip_i2', 'clip_j2'\].*rebuild"):
        check_clip_columns(old)
    with pytest.raises(ValueError, match="rebuild"):
        OVERLAY.keys(old)


def test_unordered_pair(manifests):
    assert unordered_pair(5, 2) == unordered_pair(2, 5) == (2, 5)
    sb = manifests.stage_b
    pairs = unordered_pairs(sb["i"], sb["j"])
    assert pairs == unordered_pairs(sb["j"], sb["i"])
    assert len(pairs) == len({frozenset(p) for p in zip(sb["i"], sb["j"])})
    assert all(type(a) is int and a < b for a, b in pairs)
    i, j = sb["i"].to_numpy(), sb["j"].to_numpy()
    ids = unordered_pair_ids(i, j, n_classes=6)
    assert np.array_equal(ids, unordered_pair_ids(j, i, n_classes=6))
    assert len(set(ids.tolist())) == len(pairs)  # one id per unordered pair, no collisions
