"""The embedded sound world: a seeded, procedurally synthesized ESC-50-shaped base set (SPEC §1).

Each class is a recipe of one or more layers from three families (``synth_sounds``): ``tone``
(harmonic tones with pitch contours and gating: whistles, sirens, buzzes, calls), ``strike``
(trains of struck, decaying resonances: bells, knocks, drips, ticks) and ``noise`` (coloured
noise with an envelope and crackle: rain, wind, hiss, fire). Every clip draws its own pitch,
tempo, gain, onset, event length and background noise, and some classes are *twins* of another
class shifted by ``pair_gap`` semitones (two bells, two beeps, two noises of close colour), so
the world is a real classification task, not a lookup.

``make_world(root, config)`` writes ``root/audio/{fold}-{src}-{take}-{target}.wav`` (16-bit PCM),
``root/meta/esc50.csv`` (ESC-50's columns) and ``root/meta/world.json`` (config and hash); load
it with ``teminal.data.base_set.load(root)``. File names carry the world's
hash, so clips of two worlds never share a name (and a cache keyed by name never mixes them).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from teminal.data.synth_sounds import CLASSES, Ctx, render_layers, resolve, shaped_noise

GENERATOR_VERSION = 2  # bump when the sounds change: it is part of every world's hash


@dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """What world to make (SPEC §1). Difficulty knobs: pitch/rate jitter, SNR, twins' gap."""

    n_classes: int = 40
    clips_per_class: int = 20
    clip_seconds: float = 1.5
    sample_rate: int = 16000
    n_folds: int = 5
    seed: int = 0
    pitch_jitter: float = 2.0  # semitones, uniform ±, per clip (all frequencies of the clip)
    rate_jitter: float = 0.15  # relative, uniform ±, per clip (tempo of pulses and strikes)
    snr_db: tuple[float, float] = (0.0, 25.0)  # event RMS over background-noise RMS, per clip
    gain_db: tuple[float, float] = (-12.0, 0.0)  # peak level of the clip, per clip
    onset_max: float = 0.15  # s; the event starts in [0, onset_max] (keeps order audible)
    min_fill: float = 0.8  # the event lasts at least this share of the clip after its onset
    pair_gap: float = 1.5  # semitones between a twin class and the class it copies
    tilt_db: float = 3.0  # dB/octave, uniform ±, per clip: the "microphone" colours the event

    def __post_init__(self) -> None:
        checks = {
            "n_classes": 2 <= self.n_classes <= len(CLASSES),
            "clips_per_class": self.clips_per_class >= self.n_folds,
            "clip_seconds": 0.2 <= self.clip_seconds <= 30,
            "sample_rate": 8000 <= self.sample_rate <= 96000,
            "n_folds": self.n_folds >= 2,
            "pitch_jitter": self.pitch_jitter >= 0,
            "rate_jitter": 0 <= self.rate_jitter < 1,
            "snr_db": len(self.snr_db) == 2 and self.snr_db[0] <= self.snr_db[1],
            "gain_db": len(self.gain_db) == 2 and self.gain_db[0] <= self.gain_db[1] <= 0,
            "onset_max": 0 <= self.onset_max <= self.clip_seconds / 2,
            "min_fill": 0 < self.min_fill <= 1,
            "pair_gap": self.pair_gap >= 0,
            "tilt_db": self.tilt_db >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"WorldConfig: invalid {bad[0]}={getattr(self, bad[0])!r} "
                             f"(n_classes at most {len(CLASSES)}, clips_per_class >= n_folds)")

    @property
    def hash(self) -> str:
        blob = json.dumps({"config": asdict(self), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def class_labels(n_classes: int) -> list[str]:
    """The category names (``_`` for spaces) of the first ``n_classes`` classes."""
    return [name for name, _ in CLASSES[:n_classes]]


def make_world(root: str | Path, config: WorldConfig) -> Path:
    """Write the world of ``config`` at ``root`` (see the module docstring); returns ``root``.

    Same config again → the folder is reused untouched. A folder holding a different world or
    anything else → ``ValueError`` (never overwritten). Written to a temporary folder beside
    ``root`` and moved into place, so ``root`` is never half written.
    """
    root = Path(root).expanduser().resolve()
    if reusable(root, config):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.partial-"))
    try:
        write_world(staging, config)
        if root.exists():
            root.rmdir()  # empty: checked by reusable()
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def reusable(root: Path, config: WorldConfig) -> bool:
    """True when ``root`` holds this very world; False when absent/empty; else ``ValueError``."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return False
    meta = root / "meta" / "world.json"
    if not meta.is_file():
        raise ValueError(f"{root} is not empty and holds no embedded world; it is never "
                         f"overwritten: pick another path for the world")
    found = json.loads(meta.read_text()).get("hash")
    if found != config.hash:
        raise ValueError(f"{root} holds a different world (hash {found}, wanted {config.hash}); "
                         f"it is never overwritten: pick another path for this config")
    n_wavs = sum(1 for _ in (root / "audio").glob("*.wav"))
    if n_wavs != config.n_classes * config.clips_per_class:
        raise ValueError(f"{root} holds world {found} but {n_wavs} wavs instead of "
                         f"{config.n_classes * config.clips_per_class}: it is damaged; "
                         f"delete it or pick another path")
    return True


def write_world(folder: Path, config: WorldConfig) -> None:
    """Synthesize every clip and write audio, ``esc50.csv`` and ``world.json`` into ``folder``."""
    (folder / "audio").mkdir(parents=True)
    (folder / "meta").mkdir()
    rows = []
    for target, (category, _) in enumerate(CLASSES[: config.n_classes]):
        clips = synth_class(config, target=target)  # (clips_per_class, T)
        for c, x in enumerate(clips):
            fold = c % config.n_folds + 1
            src = f"w{config.hash[:6]}{target * config.clips_per_class + c:05d}"
            name = f"{fold}-{src}-A-{target}.wav"
            write_wav(folder / "audio" / name, x, config.sample_rate)
            rows.append(dict(filename=name, fold=fold, target=target, category=category,
                             esc10=False, src_file=src, take="A"))
    pd.DataFrame(rows).to_csv(folder / "meta" / "esc50.csv", index=False, lineterminator="\n")
    meta = {"hash": config.hash, "config": asdict(config), "version": GENERATOR_VERSION,
            "classes": class_labels(config.n_classes)}
    (folder / "meta" / "world.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, encoded in memory (soundfile syncs each file it closes: slow)."""
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, subtype="PCM_16", format="WAV")
    path.write_bytes(buf.getvalue())


def synth_class(config: WorldConfig, *, target: int) -> np.ndarray:
    """All clips of class ``target``, ``(clips_per_class, T)`` float32 in [-1, 1] (vectorized).

    Seeded by ``(seed, target)``: a class sounds the same whatever ``n_classes`` is. A twin
    class is its original shifted up by ``pair_gap`` semitones.
    """
    layers, n_gaps = resolve(target)
    rng = np.random.default_rng([config.seed, target])
    n, sr = config.clips_per_class, config.sample_rate
    n_samples = int(round(config.clip_seconds * sr))
    t = np.arange(n_samples) / sr  # (T,)
    onset = rng.uniform(0, config.onset_max, (n, 1))
    dur = (config.clip_seconds - onset) * rng.uniform(config.min_fill, 1.0, (n, 1))
    pitch = 2 ** ((rng.uniform(-1, 1, (n, 1)) * config.pitch_jitter + n_gaps * config.pair_gap) / 12)
    rate = 1 + rng.uniform(-1, 1, (n, 1)) * config.rate_jitter
    ctx = Ctx(tau=t[None, :] - onset, dur=dur, sr=sr, rng=rng, pitch=pitch, rate=rate)
    event = tilt(render_layers(layers, ctx), sr, slope=rng.uniform(-1, 1, (n, 1)) * config.tilt_db)
    event *= event_window(ctx)  # (n, T)
    level = np.sqrt(np.mean(event**2, axis=1, keepdims=True))
    if np.min(level) < 1e-6:
        raise RuntimeError(f"class {CLASSES[target][0]!r} synthesizes silence at "
                           f"sample_rate={sr}: a bug in its recipe")
    event /= level
    flat = replace(ctx, pitch=np.ones_like(pitch))  # the background does not follow the class
    background = shaped_noise(flat, slope=rng.uniform(-6, 0, (n, 1)), lo=40.0, hi=sr / 2)
    snr = rng.uniform(*config.snr_db, (n, 1))
    x = event + background * 10 ** (-snr / 20)
    peak = 0.95 * 10 ** (rng.uniform(*config.gain_db, (n, 1)) / 20)
    x *= peak / (np.max(np.abs(x), axis=1, keepdims=True) + 1e-9)
    return x.astype(np.float32)


def tilt(x: np.ndarray, sr: int, *, slope: np.ndarray) -> np.ndarray:
    """Spectral tilt of ``slope`` dB/octave around 1 kHz, one slope per row of ``x``."""
    f = np.maximum(np.fft.rfftfreq(x.shape[1], 1 / sr), 50.0)[None, :]  # (1, F)
    return np.fft.irfft(np.fft.rfft(x, axis=1) * (f / 1000) ** (slope / 6.02), x.shape[1], axis=1)


def event_window(ctx: Ctx, attack: float = 0.005, release: float = 0.03) -> np.ndarray:
    """1 inside ``[0, dur)`` of event time, with short linear fades; 0 outside. ``(n, T)``."""
    up = np.clip(ctx.tau / attack, 0, 1)
    down = np.clip((ctx.dur - ctx.tau) / release, 0, 1)
    return up * down
