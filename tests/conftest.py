"""Shared data fixtures: ESC-50-shaped folders, fake base sets, a tiny embedded world.

Nothing model related lives here. Fixtures:
- ``make_esc50_like``: factory ``(root, *, n_classes, clips_per_fold, ...) -> Path`` writing a
  small ESC-50-shaped folder (real wavs).
- ``esc50_like``: one such folder (4 classes × 5 folds × 2 clips, 0.25 s at 8 kHz), session-wide;
  do not modify it: use ``esc50_copy`` for a private copy to damage.
- ``fake_base``: factory ``(n_classes=50, clips_per_fold=8, n_folds=5, folds=None) -> BaseSet``
  whose files are placeholders (a few bytes, not audio): enough for manifests and the content
  fingerprint, not for rendering. ``folds`` overrides the fold labels (default ``1..n_folds``).
- ``tiny_world_config`` / ``tiny_world``: a 6-class embedded world (session-wide, read-only).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from teminal.data.esc50 import BaseSet
from teminal.data.synth_world import WorldConfig, make_world

CATEGORIES = ["dog_bark", "rain", "church_bell", "crackling_fire", "clock_tick", "sea_waves"]


def category(k: int) -> str:
    return CATEGORIES[k] if k < len(CATEGORIES) else f"class_{k}"


def write_esc50_like(root: Path, *, n_classes: int = 4, clips_per_fold: int = 2,
                     n_folds: int = 5, sample_rate: int = 8000, seconds: float = 0.25,
                     seed: int = 0) -> Path:
    """An ESC-50-shaped folder of tone-plus-noise clips; returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    rows = []
    for target in range(n_classes):
        for fold in range(1, n_folds + 1):
            for take in range(clips_per_fold):
                src = 1000 + target * 100 + fold * 10 + take
                name = f"{fold}-{src}-{'ABCDEFGH'[take % 8]}-{target}.wav"
                x = 0.3 * np.sin(2 * np.pi * 220 * (target + 1) * t) + 0.05 * rng.standard_normal(t.size)
                sf.write(str(root / "audio" / name), x.astype(np.float32), sample_rate, subtype="PCM_16")
                rows.append(dict(filename=name, fold=fold, target=target, category=category(target),
                                 esc10=False, src_file=src, take="ABCDEFGH"[take % 8]))
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


@pytest.fixture(scope="session")
def make_esc50_like():
    return write_esc50_like


@pytest.fixture(scope="session")
def esc50_like(tmp_path_factory) -> Path:
    return write_esc50_like(tmp_path_factory.mktemp("esc50_like") / "esc50")


@pytest.fixture
def esc50_copy(esc50_like, tmp_path) -> Path:
    return Path(shutil.copytree(esc50_like, tmp_path / "esc50"))


def build_fake_base(root: Path, n_classes: int = 50, clips_per_fold: int = 8, n_folds: int = 5,
                    folds: list[int] | None = None) -> BaseSet:
    """A ``BaseSet`` with placeholder files under ``root/audio`` (bytes of the filename)."""
    folds = list(range(1, n_folds + 1)) if folds is None else list(folds)
    rows = [dict(filename=f"{fold}-{t * 1000 + fold * 10 + c}-A-{t}.wav", fold=fold, target=t,
                 category=category(t), esc10=False, src_file=t * 1000 + fold * 10 + c, take="A")
            for t in range(n_classes) for fold in folds for c in range(clips_per_fold)]
    clips = pd.DataFrame(rows)
    clips["label"] = clips["category"].str.replace("_", " ")
    clips["path"] = [str(root / "audio" / f) for f in clips["filename"]]
    clips["source_target"] = clips["target"]
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for f, path in zip(clips["filename"], clips["path"]):
        Path(path).write_bytes(f.encode())
    classes = [category(t).replace("_", " ") for t in range(n_classes)]
    return BaseSet(root=root, clips=clips, classes=classes, sample_rate=44100, clip_seconds=5.0,
                   name="fake")


@pytest.fixture(scope="session")
def fake_base(tmp_path_factory):
    made: dict[tuple, BaseSet] = {}

    def make(n_classes: int = 50, clips_per_fold: int = 8, n_folds: int = 5,
             folds: list[int] | None = None) -> BaseSet:
        key = (n_classes, clips_per_fold, n_folds, None if folds is None else tuple(folds))
        if key not in made:
            made[key] = build_fake_base(tmp_path_factory.mktemp("fake_base"), n_classes,
                                        clips_per_fold, n_folds, folds)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_world_config() -> WorldConfig:
    return WorldConfig(n_classes=6, clips_per_class=5, clip_seconds=0.5, sample_rate=8000)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory, tiny_world_config) -> Path:
    return make_world(tmp_path_factory.mktemp("tiny_world") / "world", tiny_world_config)
