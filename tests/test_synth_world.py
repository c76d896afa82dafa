"""The embedded sound world (SPEC §1): deterministic, ESC-50-shaped, never overwritten."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from teminal.data import base_set
from teminal.data.synth_sounds import CLASSES
from teminal.data.synth_world import WorldConfig, class_labels, make_world, synth_class


def digest(root: Path) -> str:
    h = hashlib.sha1()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_deterministic(tmp_path, tiny_world, tiny_world_config):
    again = make_world(tmp_path / "again", tiny_world_config)
    assert digest(again) == digest(tiny_world)
    other = make_world(tmp_path / "other", WorldConfig(**{**vars(tiny_world_config), "seed": 1}))
    assert digest(other) != digest(tiny_world)


def test_loads_as_esc50(tiny_world, tiny_world_config):
    base = base_set.load(tiny_world)
    assert len(base.classes) == 6 and base.folds == [1, 2, 3, 4, 5]
    assert base.sample_rate == 8000 and base.clip_seconds == pytest.approx(0.5)
    assert base.classes == [c.replace("_", " ") for c in class_labels(6)]
    assert base.name == f"world-{tiny_world_config.hash}"
    per_fold = base.clips.groupby(["target", "fold"]).size()
    assert per_fold.min() == per_fold.max() == 1  # 5 clips per class over 5 folds
    meta = json.loads((tiny_world / "meta" / "world.json").read_text())
    assert meta["hash"] == tiny_world_config.hash and meta["config"]["n_classes"] == 6
    assert all(f.startswith(f"{fold}-") and f.endswith(f"-{t}.wav")
               for f, fold, t in zip(base.clips["filename"], base.clips["fold"], base.clips["target"]))


def test_same_config_reuses_folder(tiny_world, tiny_world_config):
    csv = tiny_world / "meta" / "esc50.csv"
    before = csv.stat().st_mtime_ns
    assert make_world(tiny_world, tiny_world_config) == tiny_world
    assert csv.stat().st_mtime_ns == before


def test_different_world_or_foreign_folder_refused(tmp_path, tiny_world, tiny_world_config):
    with pytest.raises(ValueError, match="different world") as err:
        make_world(tiny_world, WorldConfig(**{**vars(tiny_world_config), "seed": 7}))
    assert str(tiny_world) in str(err.value) and "another path" in str(err.value)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="another path"):
        make_world(tmp_path / "mine", tiny_world_config)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_size_length_and_rate_are_parameters(tmp_path):
    cfg = WorldConfig(n_classes=3, clips_per_class=6, clip_seconds=0.3, sample_rate=11025, n_folds=3)
    base = base_set.load(make_world(tmp_path / "w", cfg))
    assert len(base.classes) == 3
    assert len(base.clips) == 18 and base.sample_rate == 11025
    assert base.clip_seconds == pytest.approx(0.3, abs=1e-3)
    assert sorted(set(base.clips["fold"])) == [1, 2, 3]


def test_class_table():
    names = [name for name, _ in CLASSES]
    assert len(names) >= 60 and len(set(names)) == len(names)
    assert all(n == n.lower() and " " not in n for n in names)
    twins = [name for name, spec in CLASSES[:40] if isinstance(spec, str)]
    assert len(twins) >= 5  # confusable pairs within the default 40 classes


def test_bad_config_names_parameter():
    with pytest.raises(ValueError, match="n_classes"):
        WorldConfig(n_classes=len(CLASSES) + 1)
    with pytest.raises(ValueError, match="clips_per_class"):
        WorldConfig(clips_per_class=3)
    with pytest.raises(ValueError, match="onset_max"):
        WorldConfig(onset_max=1.0)


def test_csv_has_esc50_columns(tiny_world):
    cols = pd.read_csv(tiny_world / "meta" / "esc50.csv").columns.tolist()
    assert cols == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_every_class_sounds_and_fills_the_clip(sample_rate):
    """No class is silent (a guard raises), and every event reaches the second half of the
    clip, so that in ``a ⊕ b`` the order of the two events is audible."""
    cfg = WorldConfig(n_classes=len(CLASSES), clips_per_class=2, n_folds=2,
                      sample_rate=sample_rate, snr_db=(60.0, 60.0))
    for target in range(len(CLASSES)):
        x = synth_class(cfg, target=target)
        assert x.shape == (2, int(1.5 * sample_rate)) and np.isfinite(x).all()
        half = x.shape[1] // 2
        ratio = np.mean(x[:, half:] ** 2, axis=1) / np.mean(x[:, :half] ** 2, axis=1)
        assert ratio.min() > 0.03, CLASSES[target][0]


def test_twin_is_shifted_by_pair_gap():
    cfg = dict(n_classes=2, clips_per_class=5, pitch_jitter=0.0, snr_db=(60.0, 60.0), tilt_db=0.0)

    def centroid(config, target):
        spec = np.abs(np.fft.rfft(synth_class(config, target=target), axis=1)) ** 2
        return float(np.sum(spec * np.arange(spec.shape[1])) / np.sum(spec))

    same = WorldConfig(**cfg, pair_gap=0.0)
    assert centroid(same, 1) == pytest.approx(centroid(same, 0), rel=0.05)  # church ≈ temple bell
    apart = WorldConfig(**cfg, pair_gap=12.0)
    assert centroid(apart, 1) / centroid(apart, 0) == pytest.approx(2.0, rel=0.15)
