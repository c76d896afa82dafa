"""ESC-50 loader and download (SPEC §1) on generated ESC-50-shaped folders; no network."""
from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from teminal.data import base_set, download
from teminal.data.base_set import DatasetError
from teminal.data.subsets import select_classes
from teminal.gates import SanityError

UNREACHABLE = "http://127.0.0.1:9/x.zip"


def test_load_ok(esc50_like):
    base = base_set.load(esc50_like)
    assert len(base.clips) == 4 * 5 * 2
    assert base.classes == ["dog bark", "rain", "church bell", "crackling fire"]
    assert base.sample_rate == 8000 and base.clip_seconds == pytest.approx(0.25)
    assert base.name == "esc50" and base.root == esc50_like.resolve()  # the folder's name
    assert base.folds == [1, 2, 3, 4, 5]
    row = base.clips.iloc[0]
    assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
    assert row["label"] == row["category"].replace("_", " ")
    for col in ("filename", "fold", "target", "category", "esc10", "src_file", "take", "label",
                "path", "source_target"):
        assert col in base.clips.columns
    assert (base.clips["source_target"] == base.clips["target"]).all()


def test_load_esc50_refuses_other_folders_and_says_how(esc50_like):
    with pytest.raises(DatasetError) as err:
        base_set.load_esc50(esc50_like)
    msg = str(err.value)
    root = esc50_like.resolve()
    assert "40 clips, 4 classes, folds [1, 2, 3, 4, 5]" in msg
    assert "dataset: folder" in msg and f"data_root: {root}" in msg
    assert f"-p dataset=folder -p data_root={root}" in msg


def test_any_targets_are_reindexed(esc50_copy):
    # targets 0..3 → 30, 10, 20, 40: K=4, re-indexed by sorted original target
    rewrite_csv(esc50_copy, lambda df: df.assign(target=df["target"].map({0: 30, 1: 10, 2: 20, 3: 40})))
    base = base_set.load(esc50_copy)
    assert base.classes == ["rain", "church bell", "dog bark", "crackling fire"]
    assert sorted(set(base.clips["target"])) == [0, 1, 2, 3]
    for label, src, t in base.clips[["label", "source_target", "target"]].drop_duplicates().itertuples(index=False):
        assert base.classes[t] == label
        assert src == {"rain": 10, "church bell": 20, "dog bark": 30, "crackling fire": 40}[label]


def test_one_category_per_target(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df.assign(target=df["target"].replace({3: 2})))
    with pytest.raises(DatasetError, match="several categories"):
        base_set.load(esc50_copy)


def test_any_fold_labels(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df[df["fold"] != 1])  # folds 2-5 only
    base = base_set.load(esc50_copy)
    assert base.folds == [2, 3, 4, 5] and len(base.clips) == 32
    rewrite_csv(esc50_copy, lambda df: df.assign(fold=df["fold"].map({2: 0, 3: 0, 4: 7, 5: 9})))
    assert base_set.load(esc50_copy).folds == [0, 7, 9]
    with pytest.raises(DatasetError, match="folds \\[0, 7, 9\\]"):
        base_set.load_esc50(esc50_copy)


def test_single_class_folder_loads(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df[df["target"] == 2])  # K >= 1 loads; pairs need 3
    base = base_set.load(esc50_copy)
    assert base.classes == ["church bell"] and set(base.clips["target"]) == {0}


def test_fingerprint_covers_content(esc50_copy, tmp_path):
    base = base_set.load(esc50_copy)
    fp = base.fingerprint
    assert len(fp) == 12 and base.fingerprint == fp and "fingerprint" in vars(base)  # cached
    moved = Path(shutil.copytree(esc50_copy, tmp_path / "elsewhere"))
    assert base_set.load(moved).fingerprint == fp  # content, not location
    wav = esc50_copy / "audio" / base.clips["filename"].iloc[7]
    x, sr = sf.read(str(wav), dtype="float32")
    x[100] += 0.01  # one sample of one file
    sf.write(str(wav), x, sr, subtype="PCM_16")
    assert base_set.load(esc50_copy).fingerprint != fp
    assert base.fingerprint == fp  # computed once per BaseSet
    rewrite_csv(moved, lambda df: df.assign(fold=df["fold"].replace({1: 2, 2: 1})))
    assert base_set.load(moved).fingerprint != fp  # the clip table is covered too


def test_fingerprint_of_vanished_file_names_it(esc50_copy):
    base = base_set.load(esc50_copy)
    gone = base.clips["filename"].iloc[3]
    (esc50_copy / "audio" / gone).unlink()
    with pytest.raises(DatasetError, match=gone):
        base.fingerprint


def test_pipe_in_filename_is_refused(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df.assign(filename=df["filename"].str.replace("-A-", "|A|")))
    with pytest.raises(DatasetError, match="'\\|'"):
        base_set.load(esc50_copy)


def test_missing_csv_says_how_to_get_data(tmp_path):
    with pytest.raises(DatasetError, match="download") as err:
        base_set.load(tmp_path)
    assert str(tmp_path / "meta" / "esc50.csv") in str(err.value)


def rewrite_csv(root: Path, change) -> None:
    csv = root / "meta" / "esc50.csv"
    change(pd.read_csv(csv)).to_csv(csv, index=False)


def test_wrong_columns(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df.drop(columns=["category"]))
    with pytest.raises(DatasetError, match="category"):
        base_set.load(esc50_copy)


def damage(root: Path) -> dict[str, str]:
    """One clip of each kind of problem; returns kind → filename."""
    names = pd.read_csv(root / "meta" / "esc50.csv")["filename"].tolist()
    audio = root / "audio"
    bad = dict(zip(["missing", "empty", "unreadable", "wrong-rate", "wrong-duration"], names[:5]))
    (audio / bad["missing"]).unlink()
    (audio / bad["empty"]).write_bytes(b"")
    (audio / bad["unreadable"]).write_bytes(np.random.default_rng(0).bytes(3000))
    sf.write(str(audio / bad["wrong-rate"]), np.zeros(4000, np.float32), 16000)
    sf.write(str(audio / bad["wrong-duration"]), np.zeros(1000, np.float32), 8000)
    return bad


def test_damaged_copy_is_refused_with_summary(esc50_copy):
    bad = damage(esc50_copy)
    with pytest.raises(DatasetError) as err:
        base_set.load(esc50_copy)
    msg = str(err.value)
    assert "5 of 40" in msg and "allow_partial=True" in msg
    for kind, name in bad.items():
        assert f"{kind} (1): {name}" in msg


def test_allow_partial_warns_and_drops(esc50_copy):
    bad = damage(esc50_copy)
    with pytest.warns(UserWarning, match="missing"):
        base = base_set.load(esc50_copy, allow_partial=True)
    assert len(base.clips) == 35
    assert not set(bad.values()) & set(base.clips["filename"])
    assert base.sample_rate == 8000


def test_summary_lists_only_the_first_files(esc50_copy):
    for wav in sorted((esc50_copy / "audio").glob("*.wav"))[:15]:
        wav.unlink()
    with pytest.raises(DatasetError, match=r"missing \(15\): .*\(\+5 more\)"):
        base_set.load(esc50_copy)


def test_download_fails_fast_offline(tmp_path):
    root = tmp_path / "esc50"
    start = time.monotonic()
    with pytest.raises(DatasetError) as err:
        download.download(root, url=UNREACHABLE, timeout=2.0)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert UNREACHABLE in msg and str(root / "meta" / "esc50.csv") in msg
    assert list(tmp_path.iterdir()) == []  # no partial folder or temp file left behind


def test_download_refuses_foreign_folder(tmp_path):
    (tmp_path / "esc50").mkdir()
    (tmp_path / "esc50" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="never overwritten"):
        download.download(tmp_path / "esc50", url=UNREACHABLE)


@pytest.fixture(scope="module")
def full_size(tmp_path_factory, make_esc50_like) -> Path:
    """A full-size (2000 clips, 50 classes, folds 1..5) but tiny ESC-50 folder (read-only)."""
    return make_esc50_like(tmp_path_factory.mktemp("esc50_full") / "ESC-50-master",
                           n_classes=50, clips_per_fold=8, seconds=0.01)


@pytest.fixture(scope="module")
def esc50_zip(full_size) -> Path:
    """``full_size`` as an archive laid out as GitHub's."""
    archive = full_size.parent / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(full_size.rglob("*")):
            zf.write(path, path.relative_to(full_size.parent))
    return archive


def test_load_esc50_full_table(full_size, tmp_path):
    base = base_set.load_esc50(full_size)
    assert base.name == "esc50" and len(base.clips) == 2000 and len(base.classes) == 50
    copy = Path(shutil.copytree(full_size, tmp_path / "esc50"))
    bad = sorted((copy / "audio").glob("*.wav"))[:3]
    for wav in bad:
        wav.write_bytes(b"")
    with pytest.warns(UserWarning, match="empty"):
        partial = base_set.load_esc50(copy, allow_partial=True)  # bad files dropped, table is ESC-50
    assert len(partial.clips) == 1997
    rewrite_csv(copy, lambda df: df[~df["filename"].isin([w.name for w in bad])])
    with pytest.raises(DatasetError, match="1997 clips"):  # the table itself is not ESC-50
        base_set.load_esc50(copy, allow_partial=True)


def test_download_from_file_url_then_reuse(tmp_path, esc50_zip):
    root = tmp_path / "data" / "esc50"
    assert download.download(root, url=esc50_zip.as_uri()) == root.resolve()
    base = base_set.load_esc50(root)
    assert len(base.clips) == 2000
    assert sorted(p.name for p in root.parent.iterdir()) == ["esc50"]  # nothing left beside it
    assert download.download(root, url=UNREACHABLE) == root.resolve()  # valid copy: no network


def test_download_rejects_non_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DatasetError, match="not a zip"):
        download.download(tmp_path / "esc50", url=fake.as_uri())
    assert not (tmp_path / "esc50").exists()


# ------------------------------------------------------------------------- class subsets (§1, §6)
def test_select_classes(esc50_like):
    base = base_set.load(esc50_like)  # dog bark, rain, church bell, crackling fire
    assert select_classes(base, None) is base
    assert select_classes(base, 4) is base  # every class: the same base set
    sub = select_classes(base, 3)
    assert sub.classes == ["dog bark", "rain", "church bell"] and sub.name == "esc50[3 classes]"
    assert sorted(set(sub.clips["target"])) == [0, 1, 2] and len(sub.clips) == 30
    assert sub.fingerprint != base.fingerprint
    named = select_classes(base, ["crackling_fire", "rain", "church bell"])  # category or label
    assert named.classes == ["rain", "church bell", "crackling fire"]  # in target order
    assert named.name == "esc50[rain, church bell, crackling fire]"
    for label, t, src in named.clips[["label", "target", "source_target"]].drop_duplicates().itertuples(index=False):
        assert named.classes[t] == label and base.classes[src] == label
    drawn = select_classes(base, 3, seed=1)
    assert drawn.name == "esc50[3 classes, seed 1]" and len(drawn.classes) == 3
    assert select_classes(base, 3, seed=1).classes == drawn.classes  # deterministic
    assert {tuple(select_classes(base, 3, seed=s).classes) for s in range(10)} != {tuple(sub.classes)}
    again = select_classes(named, ["rain", "church bell", "crackling fire"])
    assert (again.clips["source_target"] == named.clips["source_target"]).all()  # original kept


def test_select_classes_errors(esc50_like):
    base = base_set.load(esc50_like)
    with pytest.raises(DatasetError, match=r"\['barking'\].*'dog bark', 'rain'"):
        select_classes(base, ["barking", "rain", "dog bark"])
    with pytest.raises(SanityError, match="under 3"):
        select_classes(base, 2)
    with pytest.raises(SanityError, match="under 3"):
        select_classes(base, ["rain", "dog_bark"])
    with pytest.raises(DatasetError, match="has 4"):
        select_classes(base, 9)
    with pytest.raises(DatasetError, match="twice"):
        select_classes(base, ["rain", "rain", "dog bark"])
    with pytest.raises(ValueError, match="class count"):
        select_classes(base, "rain")
