"""Pair manifests (SPEC §1, paper Algorithm 1) on fake base sets (placeholder files, no audio)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from teminal.data.captions import (HELDOUT_FAMILY, TRAINING_FAMILY, CaptionTemplates, normalize,
                                   sequence_caption)
from teminal.data.manifest_files import (SINGLE_SPLITS, SPLITS, manifest_hash, read_manifests,
                                         write_manifests)
from teminal.data.pairs import PairingConfig, build_manifests, eval_pair_count
from teminal.data.vocabulary import (SINGLES_COLUMNS, STAGE_A, STAGE_A_COLUMNS, STAGE_B,
                                     STAGE_B_COLUMNS)
from teminal.gates import SanityError

ROOT = Path(__file__).resolve().parents[1]

PAPER = PairingConfig(pairing="paper")
FOLDS = PairingConfig(pairing="folds")
CAPTION_COLUMNS = {"stage_a": ["caption_single", "caption_double"],
                   "stage_b": ["caption_f", "caption_r", "caption_o", "para_f", "para_r", "para_o"]}


@pytest.fixture(scope="module")
def base50(fake_base):
    return fake_base(50)


@pytest.fixture(scope="module")
def paper(base50):
    return build_manifests(base50, pairing=PAPER)


@pytest.fixture(scope="module")
def folds(base50):
    return build_manifests(base50, pairing=PairingConfig(pairing="folds", train_repeats=2, eval_repeats=3))


@pytest.fixture(scope="module")
def world30(fake_base):
    """The embedded default's sizes: 30 classes, 20 clips each over 5 folds."""
    base = fake_base(30, clips_per_fold=4)
    return base, build_manifests(base, pairing=FOLDS)


def unordered(df: pd.DataFrame) -> pd.Series:
    return df[["i", "j"]].min(axis=1) * 1000 + df[["i", "j"]].max(axis=1)


def fold_of(base) -> dict[str, int]:
    return dict(zip(base.clips["filename"], base.clips["fold"]))


def clips_of(df: pd.DataFrame) -> set[str]:
    return set(df["clip_i"]) | set(df["clip_j"])


# ------------------------------------------------------------------------------ paper pairing
def test_paper_counts(paper):
    b, a = paper.stage_b, paper.stage_a
    assert len(b) == len(a) == 50 * 49 == 2450
    assert 3 * len(b) == 7350  # forward, reversed, overlay per row
    assert b["pair"].is_unique and (b["i"] != b["j"]).all() and (b["draw"] == 0).all()
    assert list(b.columns) == STAGE_B_COLUMNS and list(a.columns) == STAGE_A_COLUMNS
    assert list(paper.singles.columns) == SINGLES_COLUMNS
    n_test = eval_pair_count(paper, "test")
    assert n_test == round(0.3 * 1225) == (b["split"] == "test").sum() / 2
    assert eval_pair_count(paper, "val") == round(0.1 * (1225 - n_test))
    assert set(b["split"]) == {"train", "val", "test"}  # no "seen" rows under paper


def test_paper_one_clip_per_class_and_singles(paper, base50):
    b = paper.stage_b
    assert b.groupby("i")["clip_i"].nunique().max() == 1
    chosen = clips_of(b)
    assert len(chosen) == 50
    s = paper.singles
    assert len(s) == len(base50.clips) and s["clip"].is_unique
    folds = s["clip"].map(fold_of(base50))
    test_clips = clips_of(b[b["split"] == "test"])
    assert set(s.loc[s["split"] == "paired", "clip"]) == test_clips  # used by test pair items
    assert set(s.loc[s["split"] == "test", "clip"]) == set(s.loc[folds.eq(5), "clip"]) - chosen
    assert set(s.loc[s["split"] == "val", "clip"]) <= set(s.loc[folds.eq(4), "clip"])
    pretrain = s[s["split"].isin(["train", "val"])]
    assert len(pretrain) >= 1500  # pretrains on hundreds of clips, not 50 (SPEC §1)
    assert not set(pretrain["clip"]) & (test_clips | set(s.loc[s["split"] == "test", "clip"]))
    assert set(s["split"]) <= set(SINGLE_SPLITS)


def test_paper_forward_is_mirror_reversed(paper):
    check_mirrored(paper.stage_b)


# ------------------------------------------------------------------------------ folds pairing
def check_mirrored(b: pd.DataFrame) -> None:
    """Row (i, j, draw)'s forward audio a_i ⊕ a_j is row (j, i, draw)'s reversed audio."""
    key = ["split", "i", "j", "draw"]
    mirror = b.rename(columns={"i": "j", "j": "i", "clip_i": "clip_j", "clip_j": "clip_i"})
    both = b[key + ["clip_i", "clip_j"]].merge(mirror[key + ["clip_i", "clip_j"]], on=key,
                                                suffixes=("", "_m"), validate="one_to_one")
    assert len(both) == len(b)
    assert (both["clip_i"] == both["clip_i_m"]).all() and (both["clip_j"] == both["clip_j_m"]).all()


def check_strict(base, m, *, test_fold: int) -> None:
    """SPEC §1 'folds': held out on both axes, seen combinations beside them."""
    f = fold_of(base)
    for table in (m.stage_a, m.stage_b):
        rows = {s: table[table["split"] == s] for s in SPLITS}
        training = pd.concat([rows["train"], rows["val"]])
        for split, part in rows.items():
            in_test = part["clip_i"].map(f).eq(test_fold) & part["clip_j"].map(f).eq(test_fold)
            in_other = part["clip_i"].map(f).ne(test_fold) & part["clip_j"].map(f).ne(test_fold)
            assert (in_test if split in ("test", "seen") else in_other).all(), split
        assert not set(unordered(training)) & set(unordered(rows["test"]))
        assert set(unordered(rows["seen"])) == set(unordered(rows["train"]))
        assert not clips_of(training) & clips_of(rows["test"])
        assert not clips_of(training) & clips_of(rows["seen"])
        assert len(set(unordered(rows["train"])) & set(unordered(rows["val"]))) == 0
    check_mirrored(m.stage_b)
    pd.testing.assert_frame_equal(m.stage_a[["pair", "draw", "clip_i", "clip_j", "split"]],
                                  m.stage_b[["pair", "draw", "clip_i", "clip_j", "split"]])


def test_folds_strict_50(base50, folds):
    check_strict(base50, folds, test_fold=5)
    k_pairs = 50 * 49 // 2
    n_test = round(0.3 * k_pairs)
    n_val = round(0.1 * (k_pairs - n_test))
    n_train = k_pairs - n_test - n_val
    b = folds.stage_b
    counts = b["split"].value_counts()
    assert counts["test"] == 2 * n_test * 3 and counts["val"] == 2 * n_val * 3  # eval_repeats=3
    assert counts["train"] == 2 * n_train * 2 and counts["seen"] == 2 * n_train * 3
    assert eval_pair_count(folds, "test") == n_test and eval_pair_count(folds, "seen") == n_train
    assert set(b.loc[b["split"] == "train", "draw"]) == {0, 1}
    assert set(b.loc[b["split"] == "test", "draw"]) == {0, 1, 2}
    assert (b.groupby(["split", "pair"]).size().loc["train"] == 2).all()


def test_folds_strict_embedded_sizes(world30):
    base, m = world30
    check_strict(base, m, test_fold=5)
    assert eval_pair_count(m, "test") == round(0.3 * 435) >= 10


@pytest.mark.parametrize("mode", ["paper", "folds"])
def test_unordered_pair_on_one_side(mode, paper, folds):
    m = paper if mode == "paper" else folds
    for df in (m.stage_a, m.stage_b):
        part = df[df["split"] != "seen"]
        assert part.groupby(unordered(part))["split"].nunique().max() == 1


def test_folds_singles(base50, folds):
    s = folds.singles.merge(base50.clips[["filename", "fold"]], left_on="clip", right_on="filename")
    assert len(s) == len(base50.clips)
    assert (s["split"] == s["fold"].map({5: "test", 4: "val"}).fillna("train")).all()
    b = folds.stage_b
    evals = clips_of(b[b["split"].isin(["test", "seen"])])
    assert evals <= set(s.loc[s["split"] == "test", "clip"])  # pretraining never sees them


# ----------------------------------------------------------------------------- fold labels
def test_fold_resolution(fake_base):
    cfg = PairingConfig(pairing="folds")
    assert cfg.resolve_folds([2, 3, 4, 5]) == (5, 4)
    assert cfg.resolve_folds([0, 7]) == (7, None)  # < 3 folds: no val fold
    assert cfg.resolve_folds([0, 3, 7]) == (7, 3)
    assert PairingConfig(test_fold=1).resolve_folds([1, 2, 3, 4, 5]) == (1, 2)  # next higher
    assert PairingConfig(test_fold=3, val_fold=1).resolve_folds([1, 2, 3]) == (3, 1)
    with pytest.raises(ValueError, match=r"test_fold=5 .*\[1, 2, 3\].*set test_fold"):
        PairingConfig(test_fold=5).resolve_folds([1, 2, 3])
    with pytest.raises(ValueError, match="val_fold=9"):
        PairingConfig(val_fold=9).resolve_folds([1, 2, 3])


def test_folds_2_to_5(fake_base):
    base = fake_base(12, clips_per_fold=2, folds=[2, 3, 4, 5])
    m = build_manifests(base, pairing=FOLDS)
    assert (m.config["pairing"]["test_fold"], m.config["pairing"]["val_fold"]) == (5, 4)
    assert m.config["pairing"]["folds"] == [2, 3, 4, 5]
    check_strict(base, m, test_fold=5)


def test_two_folds_have_no_val_singles(fake_base):
    base = fake_base(6, clips_per_fold=3, folds=[0, 7])
    m = build_manifests(base, pairing=FOLDS)
    assert m.config["pairing"]["val_fold"] is None
    assert set(m.singles["split"]) == {"train", "test"}
    check_strict(base, m, test_fold=7)


def test_explicit_missing_fold(fake_base):
    with pytest.raises(ValueError, match=r"test_fold=5 is not a fold .*\[1, 2, 3\]"):
        build_manifests(fake_base(5, 2, n_folds=3), pairing=PairingConfig(test_fold=5))


def test_class_without_clip_in_needed_fold(fake_base):
    base = fake_base(6, clips_per_fold=2)
    clips = base.clips[~((base.clips["target"] == 2) & (base.clips["fold"] == 5))]
    holed = replace(base, clips=clips.reset_index(drop=True))
    with pytest.raises(ValueError, match=r"church bell.*fold\(s\) \[5\].*'(test|seen)'"):
        build_manifests(holed, pairing=FOLDS)
    build_manifests(holed, pairing=PAPER)  # paper draws one clip per class from any fold


def test_under_three_classes(fake_base):
    with pytest.raises(SanityError, match="2 classes"):
        build_manifests(fake_base(2, 2), pairing=FOLDS)


def test_deterministic_in_seed(base50, paper):
    again = build_manifests(base50, pairing=PAPER)
    assert again.hashes == paper.hashes
    pd.testing.assert_frame_equal(again.stage_b, paper.stage_b)
    other = build_manifests(base50, pairing=PairingConfig(pairing="paper", seed=1))
    assert other.hashes["stage_b"] != paper.hashes["stage_b"]
    assert manifest_hash(paper.stage_b) == paper.hashes["stage_b"]


def test_test_draws_do_not_depend_on_train_repeats(base50):
    one = build_manifests(base50, pairing=PairingConfig(train_repeats=1)).stage_b
    two = build_manifests(base50, pairing=PairingConfig(train_repeats=4)).stage_b
    for split in ("test", "seen", "val"):
        cols = ["pair", "draw", "clip_i", "clip_j"]
        pd.testing.assert_frame_equal(one.loc[one["split"] == split, cols].reset_index(drop=True),
                                      two.loc[two["split"] == split, cols].reset_index(drop=True))


# ---------------------------------------------------------------------------------- captions
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
    assert paper.singles["caption"].iloc[0] == f"a recording of {paper.singles['label'].iloc[0]}"


def test_paraphrases(folds):
    b = folds.stage_b
    used_seq, used_ovl = set(), set()
    for row in b.itertuples():
        xi, xj = row.label_i, row.label_j
        seq = [t for t in TRAINING_FAMILY.sequence if sequence_caption(t, xi, xj) == row.para_f]
        assert len(seq) == 1, row.para_f
        assert row.para_r == sequence_caption(seq[0], xj, xi)  # same template, events swapped
        ovl = [t for t in TRAINING_FAMILY.overlay if t.format(x=xi, y=xj) == row.para_o]
        assert len(ovl) == 1, row.para_o
        used_seq.add(seq[0])
        used_ovl.add(ovl[0])
    assert used_seq == set(TRAINING_FAMILY.sequence) and used_ovl == set(TRAINING_FAMILY.overlay)
    fams = folds.config["families"]
    assert tuple(fams["training"]["sequence"]) == TRAINING_FAMILY.sequence
    assert tuple(fams["heldout"]["overlay"]) == HELDOUT_FAMILY.overlay


@pytest.mark.parametrize("mode", ["paper", "folds"])
def test_no_heldout_phrasing_in_training_rows(mode, paper, folds, base50):
    m = paper if mode == "paper" else folds
    names = base50.classes
    heldout = {normalize(c) for a in range(len(names)) for b in range(a + 1, len(names))
               for c in HELDOUT_FAMILY.captions((names[a], names[b]))}
    heldout_words = {"precedes", "later", "together", "overlapping", "heard"}
    seen = set()
    for name, cols in CAPTION_COLUMNS.items():
        table = m.tables()[name]
        rows = table[table["split"].isin(["train", "val"])]
        for col in cols:
            seen |= {normalize(c) for c in rows[col]}
    s = m.singles
    seen |= {normalize(c) for c in s.loc[s["split"].isin(["train", "val"]), "caption"]}
    assert len(seen) > 1000 and not seen & heldout
    assert not {w for c in seen for w in c.split()} & heldout_words


def test_template_and_config_validation():
    with pytest.raises(ValueError, match="CaptionTemplates.before"):
        CaptionTemplates(before="{x} then something")
    with pytest.raises(ValueError, match="CaptionTemplates.single"):
        CaptionTemplates(single="{x} and {z}")
    for bad in (dict(pairing="random"), dict(test_fraction=1.5), dict(test_fold=3, val_fold=3),
                dict(train_repeats=0), dict(seed=-1), dict(test_fold="5"), dict(eval_repeats=True)):
        with pytest.raises(ValueError, match=next(reversed(bad))):
            PairingConfig(**bad)
    assert PairingConfig(val_fold=5).test_fold is None  # resolved against the base set


def test_custom_templates(base50):
    t = CaptionTemplates(after="{y} follows {x}", while_="{x} along with {y}")
    b = build_manifests(base50, pairing=PAPER, templates=t).stage_b
    row = b[b["phrasing"] == "after"].iloc[0]
    assert row.caption_f == f"{row.label_j} follows {row.label_i}"
    assert row.caption_o == f"{row.label_i} along with {row.label_j}"
    with pytest.raises(ValueError, match="together with"):  # a held-out phrasing: refused
        build_manifests(base50, pairing=PAPER, templates=CaptionTemplates(while_="{x} together with {y}"))


# ------------------------------------------------------------------------------------- files
def test_write_read_roundtrip(tmp_path, paper, folds):
    out = write_manifests(paper, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "singles.csv", "stage_a.csv", "stage_b.csv"]
    back = read_manifests(out)
    assert back.hashes == paper.hashes and back.config["pairing"]["pairing"] == "paper"
    assert back.config["pairing"]["test_fold"] == 5 and back.config["pairing"]["val_fold"] == 4
    for name, df in paper.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], df, check_dtype=False)
    assert back.counts() == paper.counts() and back.counts()["singles"]["paired"] > 0
    write_manifests(paper, out)  # identical content: no-op
    with pytest.raises(FileExistsError, match="singles.csv"):
        write_manifests(folds, out)
    assert read_manifests(out).hashes == paper.hashes  # nothing was overwritten
    back = read_manifests(write_manifests(folds, tmp_path / "f"))
    assert eval_pair_count(back, "seen") == eval_pair_count(folds, "seen")
    assert np.issubdtype(back.stage_b["draw"].dtype, np.integer)


def test_read_detects_tampering(tmp_path, paper):
    out = write_manifests(paper, tmp_path / "m")
    path = out / "stage_b.csv"
    path.write_text(path.read_text().replace("before", "after", 1))
    with pytest.raises(ValueError, match="stage_b.csv"):
        read_manifests(out)


def test_fold_conflicts(fake_base):
    with pytest.raises(ValueError, match="val_fold=5 is the test fold"):
        PairingConfig(val_fold=5).resolve_folds([1, 2, 3, 4, 5])
    one_fold = fake_base(4, clips_per_fold=3, folds=[1])
    with pytest.raises(ValueError, match="at least 2 folds"):
        build_manifests(one_fold, pairing=FOLDS)
    m = build_manifests(one_fold, pairing=PAPER)  # one clip per class: any fold works
    assert set(m.singles["split"]) <= {"test", "paired", "train"}


# ---- SPEC §1: no exact repetition
def _manifests_of(config_path, tmp_path, **override):
    from teminal.data import base_set
    from teminal.data.synth_world import make_world
    from teminal.run.config import load_config
    from teminal.run.configs import pairing, templates, world_config

    p = load_config(config_path).data.model_copy(update=override)
    base = base_set.load(make_world(tmp_path / "world", world_config(p)))
    return base, build_manifests(base, pairing=pairing(p), templates=templates(p))


def test_no_composite_of_the_default_configuration_repeats_itself(tmp_path):
    """Every composite key of params/default.yaml's manifests (stage A and B, every split),
    rendered with the default recipe: no two sample-identical halves; the second clips are
    other clips of the same class and split."""
    from teminal.audio import Recipe
    from teminal.data.clips import ClipStore, render
    from teminal.data.pairs import looped_rows

    base, m = _manifests_of(ROOT / "params" / "default.yaml", tmp_path)
    assert looped_rows(m) == {"stage_a": 0, "stage_b": 0}
    fold = dict(zip(base.clips["filename"], base.clips["fold"]))
    target = dict(zip(base.clips["filename"], base.clips["target"]))
    for df in (m.stage_a, m.stage_b):
        for first, second, cls in (("clip_i", "clip_i2", "i"), ("clip_j", "clip_j2", "j")):
            assert (df[first] != df[second]).all()
            assert (df[second].map(target) == df[cls]).all()
            assert (df[second].map(fold) == 5).eq(df["split"].isin(["test", "seen"])).all()
    keys = set()
    for df in (m.stage_a, m.stage_b):
        keys |= {k for c in (*STAGE_A, *STAGE_B) for k in c.keys(df)}
    store, recipe = ClipStore(base, sample_rate=base.sample_rate), Recipe(sample_rate=base.sample_rate)
    repeated = []
    for key in sorted(keys):
        x = render(key, store, recipe)
        half = len(x) // 2
        if np.array_equal(x[:half], x[half:]):
            repeated.append(key)
    assert len(keys) > 3000 and repeated == []


def test_pairing_paper_loops_and_says_so(tmp_path, capsys):
    from teminal.data.pairs import looped_rows
    from teminal.run.steps.data import report_loops

    _, m = _manifests_of(ROOT / "params" / "ci.yaml", tmp_path, pairing="paper")
    assert (m.stage_b["clip_i2"] == m.stage_b["clip_i"]).all()
    assert looped_rows(m) == {"stage_a": len(m.stage_a), "stage_b": len(m.stage_b)}
    report_loops(m)
    assert "loop a clip" in capsys.readouterr().out
