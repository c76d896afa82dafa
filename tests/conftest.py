"""Shared data fixtures: ESC-50-shaped folders, fake base sets, a tiny embedded world.

Nothing model related lives here. Fixtures:
- ``make_esc50_like``: factory ``(root, *, n_classes, clips_per_fold, ...) -> Path`` writing a
  small ESC-50-shaped folder (real wavs).
- ``esc50_like``: one such folder (4 classes × 5 folds × 2 clips, 0.25 s at 8 kHz), session-wide;
  do not modify it: use ``esc50_copy`` for a private copy to damage.
- ``fake_base``: factory ``(n_classes=50, clips_per_fold=8, n_folds=5, folds=None) -> BaseSet``
  whose files are placeholders (a few bytes, not audio): enough for manifests and the content
  fingerprint, not for rendering. ``folds`` overrides the fold labels (default ``1..n_folds``).
- ``varied_esc50``: a 12-class ESC-50-shaped folder of clips that vary as real recordings do
  (events padded with silence, clicks, modulated noise, decaying tones; random gains).
- ``tiny_world_config`` / ``tiny_world``: a 6-class embedded world (session-wide, read-only).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from teminal.data.base_set import BaseSet
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


KINDS = ("event", "impulses", "stationary", "tonal")


def _varied_clip(kind: str, target: int, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One clip of a class of ``kind`` with what real recordings vary in (ESC-50-like): a short
    event padded with digital silence, clicks over a noise floor, modulated coloured noise, a
    tone with onset and decay over hum; random gain (-30..0 dB) and background level."""
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    if kind == "event":  # 50–500 ms burst somewhere, the rest exact zeros
        x = np.zeros(n)
        length = int(sr * rng.uniform(0.05, 0.5))
        start = rng.integers(0, n - length)
        burst = np.convolve(noise[:length], np.ones(2 + target % 5) / (2 + target % 5), "same")
        x[start:start + length] = burst * np.exp(-np.arange(length) / (length / 3))
    elif kind == "impulses":  # clicks at random times over a noise floor
        x = rng.uniform(0.001, 0.05) * noise
        for at in rng.integers(0, n - 40, size=rng.integers(2, 12)):
            x[at:at + 40] += rng.uniform(0.3, 1) * np.exp(-np.arange(40) / 6) * np.sign(noise[at])
    elif kind == "stationary":  # coloured noise, slowly modulated
        x = np.convolve(noise, np.ones(1 + target % 7) / (1 + target % 7), "same")
        x *= 1 + rng.uniform(0, 0.9) * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t)
    else:  # a tone with vibrato, onset and decay, over hum
        f0 = 150 * (1 + target % 6) * np.exp(0.02 * np.sin(2 * np.pi * 5 * t))
        onset = rng.uniform(0, 0.5)
        env = np.where(t > onset, np.exp(-(t - onset) * rng.uniform(0.5, 6)), 0)
        x = env * np.sin(2 * np.pi * np.cumsum(f0) / sr) + rng.uniform(0, 0.05) * np.sin(2 * np.pi * 50 * t)
    x = x / max(np.abs(x).max(), 1e-9) * 10 ** rng.uniform(-1.5, 0) * 0.9
    return x.astype(np.float32)


def write_varied_esc50(root: Path, *, n_classes: int = 12, clips_per_fold: int = 3,
                       n_folds: int = 5, sample_rate: int = 16000, seconds: float = 1.0,
                       seed: int = 0) -> Path:
    """An ESC-50-shaped folder whose classes differ the way real recordings do (``_varied_clip``:
    class ``k`` is of kind ``KINDS[k % 4]``); returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    n, rows = int(round(seconds * sample_rate)), []
    for target in range(n_classes):
        for fold in range(1, n_folds + 1):
            for take in range(clips_per_fold):
                src = 1000 + target * 100 + fold * 10 + take
                name = f"{fold}-{src}-{'ABCDEFGH'[take % 8]}-{target}.wav"
                x = _varied_clip(KINDS[target % len(KINDS)], target, rng, n, sample_rate)
                sf.write(str(root / "audio" / name), x, sample_rate, subtype="PCM_16")
                rows.append(dict(filename=name, fold=fold, target=target, category=category(target),
                                 esc10=False, src_file=src, take="ABCDEFGH"[take % 8]))
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


@pytest.fixture(scope="session")
def varied_esc50(tmp_path_factory) -> Path:
    """A 12-class ESC-50-shaped folder of varied, real-recording-like clips (session-wide)."""
    return write_varied_esc50(tmp_path_factory.mktemp("varied") / "esc50")


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


@pytest.fixture(scope="module")
def tiny():
    """A tiny CLAP with its default configuration (random init)."""
    from teminal.models.tiny import TinyClap, TinyConfig

    return TinyClap(config=TinyConfig())


@pytest.fixture()
def recipe():
    """The default composite recipe at 16 kHz (SPEC §1)."""
    from teminal.audio import Recipe

    return Recipe(sample_rate=16000)
