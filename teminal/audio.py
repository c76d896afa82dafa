"""Audio I/O and the composition operators of SPEC §1 (paper §3.1–3.2, eq. 1–2).

- ``read_audio``: soundfile → mono float32 → resampled with torchaudio.
- ``concat`` (⊕): ``a`` then ``b`` in time.
- ``overlay`` (∧): sample-wise sum aligned at the start, the shorter zero-padded.
- ``compose``: one clip by relation (``RELATIONS``): each part brought to one RMS level before
  combining, the composite brought back to that level after combining (a sum of two parts is
  otherwise ~3 dB louder than their concatenation), its crest factor bounded by a limiter
  (``crest_limit``: the same bound for every composite, so peak and crest do not tell one sound
  from two), then peak limited. Every composite of a pair
  has the length of the concatenation ``a_i ⊕ a_j`` and none repeats itself: the overlay is
  ``(a_i ⊕ a_i') ∧ (a_j ⊕ a_j')`` and the stage-A single (``span``) ``a_i ⊕ a_i'``, with
  ``a_i'`` another clip of class i (SPEC §1). Passing the same clip twice loops it — what a split
  with one clip of a class (``pairing: paper``) has to do.

``T`` (temporal inversion) is not an operation on samples: it swaps the order of the events,
``T(a_i ⊕ a_j) = a_j ⊕ a_i`` (``compose(b, a, "seq")``); it never reverses time.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from scipy.ndimage import minimum_filter1d, uniform_filter1d

RELATIONS = ("single", "span", "seq", "mix")
"""single: one clip ``a``; span: ``a ⊕ a'``, two clips of one class (the stage-A single, as long
as a double); seq: ``a ⊕ b`` (a then b); mix: ``(a ⊕ a') ∧ (b ⊕ b')``, as long as ``a ⊕ b``
(symmetric in the two halves)."""
N_CLIPS = {"single": 1, "span": 2, "seq": 2, "mix": 4}
"""Clips each relation takes (mix: ``a, a', b, b'``)."""
COMPOSITE_VERSION = 2
"""Bumped when a relation's audio changes for the same key (2: overlays and stage-A singles span
the double's length with a second clip, not a loop); in ``Recipe.hash``, so in the cache key."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How composite clips are made (SPEC §1). Its ``hash`` keys the trunk cache and covers
    every field."""

    sample_rate: int
    level_rms: float | None = 0.1  # each part brought to this RMS before combining; None = off
    peak_limit: float | None = 0.99  # scaled down so |x| <= this after combining; None = off
    tile_overlay: bool = True  # overlay spans a ⊕ b with the second clips (False: zero-padded)
    renormalize: bool = True  # composite brought back to level_rms after combining (if set)
    loop_single: bool = True  # stage-A single spans a double's length (False: a alone)
    crest_limit: float | None = None  # renormalized composite limited to this peak / RMS; None = off
    limit_range_db: float = 20.0  # the most the crest limiter lowers a peak (dB)

    @property
    def hash(self) -> str:
        """12 hex digits of sha1 over every field (``asdict``) and ``COMPOSITE_VERSION``."""
        blob = json.dumps({**asdict(self), "version": COMPOSITE_VERSION}, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


class NonFiniteAudio(ValueError):
    """An audio file holds NaN or ±inf samples; the message names it."""


class CancellingChannels(ValueError):
    """A multichannel audio file whose channels cancel in the mono mix; the message names it."""


def read_audio(path: str | Path, *, sample_rate: int | None = None) -> np.ndarray:
    """Read ``path`` as mono float32, resampled to ``sample_rate`` (keep the file's if None).

    Raises ``ValueError`` naming the file when it cannot be decoded, holds no samples, holds
    NaN or ±inf samples (SPEC §6: a data error, never a NaN loss later), or is a multichannel
    file whose channels cancel in the mono mix (e.g. one channel the negative of the other).
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise ValueError(f"audio file {path} holds no samples")
    if not np.isfinite(data).all():
        n = int((~np.isfinite(data)).sum())
        raise NonFiniteAudio(f"audio file {path} holds {n} non-finite samples (NaN or inf): a "
                         "damaged file; replace it or drop it (-p data.allow_partial=true)")
    mono = data.mean(axis=1)
    check_mono_mix(data, mono, path=path)
    if sample_rate is not None and sr != sample_rate:
        mono = resample(mono, orig=sr, new=sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


CANCEL_RATIO = 0.01
"""A multichannel file whose mono mix has under 1 % of its loudest channel's RMS cancels."""


def check_mono_mix(data: np.ndarray, mono: np.ndarray, *, path) -> None:
    """``CancellingChannels`` naming ``path`` when ``data`` [S, C] has sound but its mono mix
    ``mono`` [S] is (near) silence: the channels cancel (one is the other's negative)."""
    if data.shape[1] < 2:
        return
    loudest = max(rms(data[:, c]) for c in range(data.shape[1]))
    if loudest > 1e-6 and rms(mono) < CANCEL_RATIO * loudest:
        raise CancellingChannels(f"audio file {path}: its {data.shape[1]} channels cancel in the mono "
                         f"mix (mix RMS {rms(mono):.2g} vs channel RMS {loudest:.2g}; a channel "
                         "is inverted): fix the file (e.g. keep one channel) or drop it")


def resample(x: np.ndarray, *, orig: int, new: int) -> np.ndarray:
    """Band-limited resampling with torchaudio."""
    if orig == new:
        return x
    return AF.resample(torch.from_numpy(np.asarray(x, np.float32)), orig, new).numpy()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def level(x: np.ndarray, target_rms: float) -> np.ndarray:
    """Scale ``x`` to RMS ``target_rms``; silence stays silence."""
    r = rms(x)
    return x if r < 1e-8 else (x * (target_rms / r)).astype(np.float32)


LIMIT_WINDOW_S = 0.005  # half-width of the limiter's gain smoothing (s): ~5 ms attack and release
LIMIT_STEPS = 16  # at most this many root-finding steps on the limiter threshold
LIMIT_TOL = 1e-5  # the crest it settles on lies within this share under the bound


def limit(x: np.ndarray, threshold: float, sample_rate: int) -> np.ndarray:
    """A look-ahead limiter: no sample of the result exceeds ``threshold``. The per-sample gain
    ``min(1, threshold / |x|)`` is replaced by its minimum over ±``LIMIT_WINDOW_S`` smoothed by
    a mean over the same window, which never exceeds what any sample needs (each mean is over
    minima that include that sample) and has no jumps."""
    w = 2 * max(1, int(round(LIMIT_WINDOW_S * sample_rate))) + 1
    need = np.minimum(1.0, threshold / np.maximum(np.abs(x), 1e-12))  # (S,)
    gain = uniform_filter1d(minimum_filter1d(need, w, mode="nearest"), w, mode="nearest")
    return x * np.minimum(gain, need)


def crest_limit(x: np.ndarray, crest: float, target_rms: float, sample_rate: int, *,
                range_db: float = 20.0) -> np.ndarray:
    """``x`` at RMS ``target_rms`` with a crest factor (peak / RMS) of at most ``crest`` where a
    limiter can give it one: the ``limit`` threshold (at most ``range_db`` under the peak)
    is the one at which the limited clip, brought back to ``target_rms``, has a crest just under
    ``crest`` (``_limit_to_crest``). Every composite whose crest would exceed the bound ends with
    the same crest and peak, whatever its parts (SPEC §1: no level cue tells one sound from two,
    or a sequence from an overlay). A clip so sparse that ``range_db`` of limiting leaves
    its crest above the bound (a lone click in silence: limiting only scales it) gets that much
    limiting and keeps a higher crest."""
    if crest < 1:
        raise ValueError(f"crest_limit: expected >= 1 (a crest factor), got {crest}")
    if range_db <= 0:
        raise ValueError(f"limit_range_db: expected > 0 dB, got {range_db}")
    y = np.asarray(x, dtype=np.float64)
    r, peak = rms(y), float(np.max(np.abs(y))) if y.size else 0.0
    if r < 1e-8 or peak <= crest * r:
        return level(x, target_rms)
    return level(_limit_to_crest(y, crest, rms_=r, peak=peak, range_db=range_db,
                                 sample_rate=sample_rate), target_rms)


def _limit_to_crest(y: np.ndarray, crest: float, *, rms_: float, peak: float, range_db: float,
                    sample_rate: int) -> np.ndarray:
    """``limit(y, t)`` for the log threshold ``log t`` at which log(crest of the result / crest)
    crosses 0 from below: a bracket stepped down from ``crest × rms`` (to the floor
    ``range_db`` under the peak at most), then Illinois regula falsi (the crest rises with
    the threshold) until the crest lies within ``LIMIT_TOL`` under the bound. Scalar
    logarithms by ``math`` (libm), not numpy's SIMD loops: the same threshold on every CPU
    (``teminal.determinism``)."""
    def excess(log_t: float) -> tuple[float, np.ndarray]:  # log(crest / bound) of limit(y, t)
        z = limit(y, math.exp(log_t), sample_rate)
        return math.log(float(np.max(np.abs(z))) / rms(z) / crest), z

    floor = math.log(peak) - range_db / 20 * math.log(10)
    lo = max(floor, math.log(crest * rms_))  # a first guess, never under the floor
    hi, f_hi = math.log(peak), math.log(peak / rms_ / crest)  # f_hi > 0: unlimited is above
    f_lo, best = excess(lo)
    for step in range(3):  # not low enough yet: step down past the excess, then to the floor
        if f_lo <= 0 or lo <= floor:
            break
        hi, f_hi = lo, f_lo
        lo = max(floor, lo - 2 * f_lo - 0.1) if step < 2 else floor
        f_lo, best = excess(lo)
    side = 0
    for _ in range(LIMIT_STEPS if f_lo <= 0 else 0):
        if f_lo > math.log1p(-LIMIT_TOL):
            break
        mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f_mid, z = excess(mid)
        if f_mid <= 0:
            lo, f_lo, best = mid, f_mid, z
            f_hi, side = (f_hi / 2, -1) if side == -1 else (f_hi, -1)
        else:
            hi, f_hi = mid, f_mid
            f_lo, side = (f_lo / 2, 1) if side == 1 else (f_lo, 1)
    return best


def peak_limit(x: np.ndarray, peak: float) -> np.ndarray:
    """Scale ``x`` down (never up) so that ``max |x| <= peak``."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return x if m <= peak else (x * (peak / m)).astype(np.float32)


def concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a ⊕ b``: ``a`` then ``b`` (paper eq. 1)."""
    return np.concatenate([a, b]).astype(np.float32)


def overlay(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a ∧ b``: sample-wise sum aligned at the start, the shorter zero-padded (paper eq. 2)."""
    n = max(len(a), len(b))
    out = np.zeros(n, dtype=np.float32)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


def tile(x: np.ndarray, n: int) -> np.ndarray:
    """Loop ``x`` until it is ``n`` samples long (cut at ``n``)."""
    if len(x) == 0:
        raise ValueError("cannot tile an empty clip")
    reps = -(-n // len(x))
    return np.tile(x, reps)[:n].astype(np.float32)


def compose(a: np.ndarray, b: np.ndarray | None, relation: str, recipe: Recipe, *,
            a2: np.ndarray | None = None, b2: np.ndarray | None = None) -> np.ndarray:
    """One clip for ``relation`` in ``RELATIONS`` from parts ``a`` [S_a], ``b`` [S_b] and, for
    ``mix``, the second clips ``a2``, ``b2`` of the two classes (``None``: ``a``, ``b`` again).

    SPEC §1. Each part is first levelled to ``recipe.level_rms``. Then
    single: level(a); span (``b`` = a second clip of a's class): a ⊕ b, or a alone when not
    ``recipe.loop_single``; seq: a ⊕ b; mix: (a ⊕ a2) ∧ (b ⊕ b2) cut to ``len(a) + len(b)``, or
    when not ``recipe.tile_overlay`` the paper's a ∧ b zero-padded to that length. Composites
    are brought back to ``level_rms`` when ``recipe.renormalize`` (and ``level_rms`` is set);
    every clip is then peak limited. ``mix`` is symmetric in its halves:
    ``compose(a, b, "mix", a2=x, b2=y) == compose(b, a, "mix", a2=y, b2=x)`` bit for bit.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if relation != "single" and b is None:
        raise ValueError(f"relation {relation!r} needs two clips")
    if relation != "mix" and (a2 is not None or b2 is not None):
        raise ValueError(f"relation {relation!r} takes no second clips a2 / b2")
    parts = [a] if relation == "single" else [a, b]
    if relation == "mix":
        parts += [a if a2 is None else a2, b if b2 is None else b2]
    if recipe.level_rms is not None:
        parts = [level(p, recipe.level_rms) for p in parts]
    if relation == "single" or (relation == "span" and not recipe.loop_single):
        out = parts[0].astype(np.float32)
    elif relation in ("span", "seq"):
        out = concat(parts[0], parts[1])
    else:
        out = _mix(*parts, span=recipe.tile_overlay)
    return finish(out, recipe, composite=relation != "single")


def finish(out: np.ndarray, recipe: Recipe, *, composite: bool) -> np.ndarray:
    """A composite brought back to ``level_rms`` (``recipe.renormalize``), its crest bounded
    (``recipe.crest_limit``, which re-levels too); then every clip peak limited (SPEC §1)."""
    if composite and recipe.renormalize and recipe.level_rms is not None:
        if recipe.crest_limit is None:
            out = level(out, recipe.level_rms)
        else:
            out = crest_limit(out, recipe.crest_limit, recipe.level_rms, recipe.sample_rate,
                              range_db=recipe.limit_range_db)
    if recipe.peak_limit is not None:
        out = peak_limit(out, recipe.peak_limit)
    return out


def _mix(a: np.ndarray, b: np.ndarray, a2: np.ndarray, b2: np.ndarray, *, span: bool) -> np.ndarray:
    """``(a ⊕ a2) ∧ (b ⊕ b2)`` cut (or looped) to ``len(a) + len(b)``; with ``span=False``,
    ``a ∧ b`` zero-padded to that length. A sum of two terms is exact-commutative in IEEE
    float, so the result does not depend on which class comes first."""
    n = len(a) + len(b)
    if not span:
        out = overlay(a, b)
        return np.pad(out, (0, max(0, n - len(out))))[:n].astype(np.float32)
    return tile(overlay(concat(a, a2), concat(b, b2)), n)


def write_audio(path: str | Path, x: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit PCM WAV."""
    sf.write(str(path), np.asarray(x, np.float32), sample_rate, subtype="PCM_16")
