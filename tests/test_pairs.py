"""Pair manifests (SPEC §1, paper Algorithm 1) on fake base sets: no audio needed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teminal.data.pairs import (STAGE_A_COLUMNS, STAGE_B_COLUMNS, SINGLES_COLUMNS, CaptionTemplates,
                                PairingConfig, build_manifests, manifest_hash, read_manifests,
                                write_manifests)

PAPER = PairingConfig(pairing="paper")
FOLDS = PairingConfig(pairing="folds")


@pytest.fixture(scope="module")
def base50(fake_base):
    return fake_base(50)


@pytest.fixture(scope="module")
def paper(base50):
    return build_manifests(base50, pairing=PAPER)


@pytest.fixture(scope="module")
def folds(base50):
    return build_manifests(base50, pairing=PairingConfig(pairing="folds", train_repeats=2, eval_repeats=3))


def test_paper_counts(paper):
    b, a = paper.stage_b, paper.stage_a
    assert len(b) == len(a) == 50 * 49 == 2450
    assert 3 * len(b) == 7350  # forward, reversed, overlay per row
    assert b["pair"].is_unique and (b["i"] != b["j"]).all()
    assert list(b.columns) == STAGE_B_COLUMNS and list(a.columns) == STAGE_A_COLUMNS
    assert list(paper.singles.columns) == SINGLES_COLUMNS
    n_test = (b["split"] == "test").sum() / 2
    assert n_test == round(0.3 * 1225)
    assert (b["split"] == "val").sum() / 2 == round(0.1 * (1225 - n_test))


def test_paper_one_clip_per_class(paper):
    b = paper.stage_b
    assert b.groupby("i")["clip_i"].nunique().max() == 1
    singles = paper.singles
    train = singles[singles["split"] == "train"]
    assert len(train) == 50 and train["target"].is_unique
    assert set(train["clip"]) == set(b["clip_i"])
    assert set(singles["split"]) == {"train", "test"}


@pytest.mark.parametrize("mode", ["paper", "folds"])
def test_unordered_pair_on_one_side(mode, paper, folds):
    m = paper if mode == "paper" else folds
    for df in (m.stage_a, m.stage_b):
        train_val = df[df["split"] != "test"] if mode == "folds" else df
        sides = train_val.groupby(train_val[["i", "j"]].min(axis=1) * 100
                                  + train_val[["i", "j"]].max(axis=1))["split"].nunique()
        assert sides.max() == 1


def test_folds_never_trains_on_test_fold(folds, base50):
    fold_of = dict(zip(base50.clips["filename"], base50.clips["fold"]))
    b = folds.stage_b
    for split in ("train", "val", "test"):
        rows = b[b["split"] == split]
        in_test = rows["clip_i"].map(fold_of).eq(5) & rows["clip_j"].map(fold_of).eq(5)
        in_other = rows["clip_i"].map(fold_of).ne(5) & rows["clip_j"].map(fold_of).ne(5)
        assert (in_test if split == "test" else in_other).all(), split
    test = b[b["split"] == "test"]
    assert len(test) == 2450 * 3 and test["pair"].nunique() == 2450
    train_val = b[b["split"] != "test"]
    assert train_val["pair"].nunique() == 2450
    assert (b[b["split"] == "train"].groupby("pair").size() == 2).all()
    s = folds.singles.merge(base50.clips[["filename", "fold"]], left_on="clip", right_on="filename")
    assert (s["split"] == s["fold"].map({5: "test", 4: "val"}).fillna("train")).all()


def test_deterministic_in_seed(base50, paper):
    again = build_manifests(base50, pairing=PAPER)
    assert again.hashes == paper.hashes
    pd.testing.assert_frame_equal(again.stage_b, paper.stage_b)
    other = build_manifests(base50, pairing=PairingConfig(pairing="paper", seed=1))
    assert other.hashes["stage_b"] != paper.hashes["stage_b"]
    assert manifest_hash(paper.stage_b) == paper.hashes["stage_b"]


def test_captions(paper):
    t = CaptionTemplates()
    b = paper.stage_b
    assert set(b["phrasing"]) == {"before", "after"}
    for row in b.head(200).itertuples():
        xi, xj = row.label_i, row.label_j
        if row.phrasing == "before":
            assert (row.caption_f, row.caption_r) == (f"{xi} before {xj}", f"{xj} before {xi}")
        else:
            assert (row.caption_f, row.caption_r) == (f"{xj} after {xi}", f"{xi} after {xj}")
        assert row.caption_o == f"{xi} while {xj}"
        assert row.caption_r == t.sequence(xj, xi, row.phrasing)  # T: swap events, keep phrasing
    a = paper.stage_a.iloc[0]
    assert a.caption_single == f"single sound of {a.label_i}"
    assert a.caption_double == f"combined sound of {a.label_i} and {a.label_j}"
    assert paper.singles["caption"].iloc[0] == f"the sound of {paper.singles['label'].iloc[0]}"


def test_template_and_config_validation():
    with pytest.raises(ValueError, match="CaptionTemplates.before"):
        CaptionTemplates(before="{x} then something")
    with pytest.raises(ValueError, match="CaptionTemplates.single"):
        CaptionTemplates(single="{x} and {z}")
    for bad in (dict(pairing="random"), dict(test_fraction=1.5), dict(val_fold=5),
                dict(train_repeats=0), dict(seed=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PairingConfig(**bad)


def test_custom_templates(base50):
    t = CaptionTemplates(after="{y} follows {x}", while_="{x} together with {y}")
    b = build_manifests(base50, pairing=PAPER, templates=t).stage_b
    row = b[b["phrasing"] == "after"].iloc[0]
    assert row.caption_f == f"{row.label_j} follows {row.label_i}"
    assert row.caption_o == f"{row.label_i} together with {row.label_j}"


def test_missing_test_fold(fake_base):
    with pytest.raises(ValueError, match="test_fold"):
        build_manifests(fake_base(5, 2, n_folds=3), pairing=FOLDS)


def test_write_read_roundtrip(tmp_path, paper, folds):
    out = write_manifests(paper, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "singles.csv", "stage_a.csv", "stage_b.csv"]
    back = read_manifests(out)
    assert back.hashes == paper.hashes and back.config["pairing"]["pairing"] == "paper"
    for name, df in paper.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], df, check_dtype=False)
    write_manifests(paper, out)  # identical content: no-op
    with pytest.raises(FileExistsError, match="singles.csv"):
        write_manifests(folds, out)
    assert read_manifests(out).hashes == paper.hashes  # nothing was overwritten


def test_read_detects_tampering(tmp_path, paper):
    out = write_manifests(paper, tmp_path / "m")
    path = out / "stage_b.csv"
    path.write_text(path.read_text().replace("before", "after", 1))
    with pytest.raises(ValueError, match="stage_b.csv"):
        read_manifests(out)
