"""ESC-50 loader and download (SPEC §1) on generated ESC-50-shaped folders; no network."""
from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from teminal.data import esc50
from teminal.data.esc50 import DatasetError

UNREACHABLE = "http://127.0.0.1:9/x.zip"


def test_load_ok(esc50_like):
    base = esc50.load(esc50_like, expect_classes=4)
    assert len(base.clips) == 4 * 5 * 2
    assert base.classes == ["dog bark", "rain", "church bell", "crackling fire"]
    assert base.sample_rate == 8000 and base.clip_seconds == pytest.approx(0.25)
    assert base.name == "esc50" and base.root == esc50_like.resolve()
    row = base.clips.iloc[0]
    assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
    assert row["label"] == row["category"].replace("_", " ")
    for col in ("filename", "fold", "target", "category", "esc10", "src_file", "take", "label", "path"):
        assert col in base.clips.columns


def test_expect_classes(esc50_like):
    with pytest.raises(DatasetError, match="expected 50"):
        esc50.load(esc50_like, expect_classes=50)


def test_missing_csv_says_how_to_get_data(tmp_path):
    with pytest.raises(DatasetError, match="download") as err:
        esc50.load(tmp_path)
    assert str(tmp_path / "meta" / "esc50.csv") in str(err.value)


def rewrite_csv(root: Path, change) -> None:
    csv = root / "meta" / "esc50.csv"
    change(pd.read_csv(csv)).to_csv(csv, index=False)


def test_wrong_columns(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df.drop(columns=["category"]))
    with pytest.raises(DatasetError, match="category"):
        esc50.load(esc50_copy)


def test_targets_must_be_contiguous(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df.assign(target=df["target"].replace({3: 7})))
    with pytest.raises(DatasetError, match="contiguous"):
        esc50.load(esc50_copy)


def test_all_folds_present(esc50_copy):
    rewrite_csv(esc50_copy, lambda df: df[df["fold"] != 3])
    with pytest.raises(DatasetError, match="folds"):
        esc50.load(esc50_copy)


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
        esc50.load(esc50_copy)
    msg = str(err.value)
    assert "5 of 40" in msg and "allow_partial=True" in msg
    for kind, name in bad.items():
        assert f"{kind} (1): {name}" in msg


def test_allow_partial_warns_and_drops(esc50_copy):
    bad = damage(esc50_copy)
    with pytest.warns(UserWarning, match="missing"):
        base = esc50.load(esc50_copy, allow_partial=True)
    assert len(base.clips) == 35
    assert not set(bad.values()) & set(base.clips["filename"])
    assert base.sample_rate == 8000


def test_summary_lists_only_the_first_files(esc50_copy):
    for wav in sorted((esc50_copy / "audio").glob("*.wav"))[:15]:
        wav.unlink()
    with pytest.raises(DatasetError, match=r"missing \(15\): .*\(\+5 more\)"):
        esc50.load(esc50_copy)


def test_download_fails_fast_offline(tmp_path):
    root = tmp_path / "esc50"
    start = time.monotonic()
    with pytest.raises(DatasetError) as err:
        esc50.download(root, url=UNREACHABLE, timeout=2.0)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert UNREACHABLE in msg and str(root / "meta" / "esc50.csv") in msg
    assert list(tmp_path.iterdir()) == []  # no partial folder or temp file left behind


def test_download_refuses_foreign_folder(tmp_path):
    (tmp_path / "esc50").mkdir()
    (tmp_path / "esc50" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="never overwritten"):
        esc50.download(tmp_path / "esc50", url=UNREACHABLE)


@pytest.fixture(scope="module")
def esc50_zip(tmp_path_factory, make_esc50_like) -> Path:
    """A full-size (2000 clips, 50 classes) but tiny ESC-50 archive, laid out as GitHub's."""
    tmp = tmp_path_factory.mktemp("esc50_zip")
    src = make_esc50_like(tmp / "ESC-50-master", n_classes=50, clips_per_fold=8, seconds=0.01)
    archive = tmp / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(tmp))
    return archive


def test_download_from_file_url_then_reuse(tmp_path, esc50_zip):
    root = tmp_path / "data" / "esc50"
    assert esc50.download(root, url=esc50_zip.as_uri()) == root.resolve()
    base = esc50.load(root, expect_classes=50)
    assert len(base.clips) == 2000
    assert sorted(p.name for p in root.parent.iterdir()) == ["esc50"]  # nothing left beside it
    assert esc50.download(root, url=UNREACHABLE) == root.resolve()  # valid copy: no network


def test_download_rejects_non_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DatasetError, match="not a zip"):
        esc50.download(tmp_path / "esc50", url=fake.as_uri())
    assert not (tmp_path / "esc50").exists()
