"""Sound families and the class table of the embedded world (``synth_world``, SPEC §1).

Every function works on a whole class at once: arrays are ``(n, T)`` (clips × samples) and the
per-clip draws in ``Ctx`` are ``(n, 1)``. Frequencies are scaled by the clip's ``pitch`` and tempos
by its ``rate``. A class is a tuple of layers ``(family, gain, params)``; a *twin* is written as the
name of the class it copies and sounds like it shifted up by ``WorldConfig.pair_gap`` semitones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve


@dataclass(frozen=True, kw_only=True, eq=False)
class Ctx:
    """Per-class synthesis context: event time ``tau`` (n, T) = t - onset; draws (n, 1)."""

    tau: np.ndarray
    dur: np.ndarray
    sr: int
    rng: np.random.Generator
    pitch: np.ndarray
    rate: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.tau.shape


def octave_fold(f_top: float, sr: int) -> float:
    """1, 1/2, 1/4 …: the octave shift that keeps ``f_top`` below 0.42·sr (low sample rates)."""
    return float(2.0 ** -np.ceil(max(np.log2(f_top / (0.42 * sr)), 0.0)))


def gate(phi: np.ndarray, rate_hz: np.ndarray, duty: float, pluck: float) -> np.ndarray:
    """Periodic gate over cycles ``phi``: flat-top pulses of ``duty`` or plucked decays."""
    frac = phi % 1.0
    if pluck > 0:
        return np.exp(-pluck * frac / rate_hz)
    ramp = 0.004 * rate_hz  # 4 ms fades, in cycles
    return np.clip(np.minimum(frac, duty - frac) / ramp, 0.0, 1.0)


def lfo_wave(kind: str, phi: np.ndarray, progress: np.ndarray) -> np.ndarray:
    """Pitch contour in [-1, 1]: sine, square, saw, arch (one hump over the event), none."""
    waves = {
        "none": lambda: np.zeros_like(phi),
        "sine": lambda: np.sin(2 * np.pi * phi),
        "square": lambda: np.tanh(6 * np.sin(2 * np.pi * phi)),
        "saw": lambda: 2 * (phi % 1.0) - 1,
        "arch": lambda: np.sin(np.pi * np.clip(progress, 0, 1)),
    }
    return waves[kind]()


def tone(c: Ctx, *, f0: float, harmonics: int = 1, rolloff: float = 1.0, odd: bool = False,
         lfo: str = "none", lfo_rate: float = 0.0, depth: float = 0.0, sweep: float = 0.0,
         gate_rate: float = 0.0, duty: float = 0.5, pluck: float = 0.0,
         gate2_rate: float = 0.0, duty2: float = 0.5, breath: float = 0.0) -> np.ndarray:
    """Harmonic tone with a pitch contour (``depth``/``sweep`` in semitones) and gates."""
    tau = np.maximum(c.tau, 0.0)
    semis = depth * lfo_wave(lfo, lfo_rate * c.rate * tau, tau / c.dur) \
        + sweep * np.clip(tau / c.dur, 0, 1)
    f = f0 * c.pitch * 2 ** (semis / 12)  # (n, T) instantaneous frequency
    f = f * octave_fold(float(np.max(f)), c.sr)
    phase = 2 * np.pi * np.cumsum(f, axis=1) / c.sr
    x = np.zeros(c.shape)
    prev, cur, twice_cos = np.zeros(c.shape), np.sin(phase), 2 * np.cos(phase)
    f_max = float(np.max(f))
    for h in range(1, harmonics + 1):  # sin(hφ) by the Chebyshev recurrence: no sin per harmonic
        if not (odd and h % 2 == 0):
            below = 1.0 if h * f_max < 0.45 * c.sr else (h * f < 0.45 * c.sr)  # no aliasing
            x += h**-rolloff * below * cur
        prev, cur = cur, twice_cos * cur - prev
    if breath:
        fold = octave_fold(f0 * float(np.max(c.pitch)), c.sr)
        x += breath * np.std(x) * shaped_noise(c, slope=-1.0, lo=f0 * fold, hi=8 * f0 * fold)
    if gate_rate:
        x *= gate(gate_rate * c.rate * tau, gate_rate * c.rate, duty, pluck)
    if gate2_rate:
        x *= gate(gate2_rate * c.rate * tau, gate2_rate * c.rate, duty2, 0.0)
    return x


def strike(c: Ctx, *, f0: float, modes=((1.0, 1.0, 0.3),), period: float = 0.5,
           jitter: float = 0.05, random: bool = False, echo=(), click: float = 0.0,
           click_decay: float = 0.004, glide: float = 0.0) -> np.ndarray:
    """A train of strikes (first at the onset) through resonant ``modes`` (ratio, amp, decay s)."""
    n, T = c.shape
    k = int(np.ceil(np.max(c.dur) * np.max(c.rate) / (period * (1 - jitter)))) + 2
    k = 3 * k + 5 if random else k  # exponential intervals: room for bunched strikes
    if random:
        iv = c.rng.exponential(period, (n, k)) / c.rate
    else:
        iv = period / c.rate * (1 + jitter * c.rng.uniform(-1, 1, (n, k)))
    times = np.concatenate([np.zeros((n, 1)), np.cumsum(iv, axis=1)[:, :-1]], axis=1)
    amps = c.rng.uniform(0.6, 1.0, (n, k))
    times = np.concatenate([times] + [times + d for d, _ in echo], axis=1)
    amps = np.concatenate([amps] + [amps * g for _, g in echo], axis=1)
    idx = np.round((times - c.tau[:, :1]) * c.sr).astype(int)  # onset = -tau[:, 0]
    keep = (times < c.dur) & (idx < T)
    impulses = np.zeros((n, T))
    np.add.at(impulses, (np.nonzero(keep)[0], idx[keep]), amps[keep])
    kt = np.arange(T) / c.sr  # (T,) time since the strike
    f0 = f0 * octave_fold(f0 * float(np.max(c.pitch)), c.sr)
    kernel = np.zeros((n, T))
    for ratio, amp, decay in modes:
        f = f0 * ratio * c.pitch  # (n, 1)
        audible = f * (1 + glide * kt) < 0.45 * c.sr  # (n, T) gliding modes stop at Nyquist
        kernel += audible * amp * np.exp(-kt / decay) * np.sin(2 * np.pi * f * (kt + glide * kt**2 / 2))
    if click:
        kernel += click * c.rng.standard_normal((n, T)) * np.exp(-kt / click_decay)
    size = 2 * T
    spec = np.fft.rfft(impulses, size, axis=1) * np.fft.rfft(kernel, size, axis=1)
    return np.fft.irfft(spec, size, axis=1)[:, :T]


def shaped_noise(c: Ctx, *, slope=0.0, lo: float = 20.0, hi: float = 8000.0,
                 center: float = 0.0, q: float = 2.0, peak: float = 0.0) -> np.ndarray:
    """Unit-RMS noise: ``slope`` dB/octave, soft band ``[lo, hi]``, optional resonance."""
    n, T = c.shape
    f = np.maximum(np.fft.rfftfreq(T, 1 / c.sr), 1.0)[None, :]  # (1, F)
    fold = octave_fold(lo * float(np.max(c.pitch)) * 1.2, c.sr)
    lo, center = lo * fold, center * fold
    lo_, hi_ = lo * c.pitch, np.minimum(hi * fold * c.pitch, 0.48 * c.sr)
    mag = (f / 1000) ** (np.asarray(slope) / 6.02) / (1 + (lo_ / f) ** 4) / (1 + (f / hi_) ** 4)
    if peak:
        fc = center * c.pitch
        mag = mag * (1 + peak / (1 + ((f - fc) / (fc / q)) ** 2))
    x = np.fft.irfft(np.fft.rfft(c.rng.standard_normal((n, T)), axis=1) * mag, T, axis=1)
    return x / (np.sqrt(np.mean(x**2, axis=1, keepdims=True)) + 1e-12)


def noise(c: Ctx, *, env: str = "steady", env_rate: float = 0.0, duty: float = 0.5,
          depth: float = 0.6, pluck: float = 0.0, crackle: float = 0.0,
          crackle_gain: float = 3.0, **colour) -> np.ndarray:
    """Coloured noise (``shaped_noise`` args) × envelope, plus optional crackle (clicks/s)."""
    tau = np.maximum(c.tau, 0.0)
    x = shaped_noise(c, **colour)
    phase0 = c.rng.uniform(0, 1, (c.shape[0], 1))
    if env == "pulse":
        x *= gate(env_rate * c.rate * tau, env_rate * c.rate, duty, pluck)
    elif env == "swell":
        x *= 1 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * (env_rate * c.rate * tau + phase0)))
    elif env == "drift":
        waves = [np.sin(2 * np.pi * (env_rate * m * c.rate * tau + phase0 * m * 3)) for m in (0.7, 1, 1.6)]
        x *= 1 - depth * (0.5 + np.mean(waves, axis=0) / 2)
    elif env != "steady":
        raise ValueError(f"unknown noise envelope {env!r}")
    if crackle:
        hits = (c.rng.random(c.shape) < crackle * c.rate / c.sr) * c.rng.uniform(0.2, 1, c.shape) ** 2
        kt = np.arange(int(0.01 * c.sr)) / c.sr
        burst = c.rng.standard_normal(kt.size) * np.exp(-kt / 0.0015)
        x += crackle_gain * fftconvolve(hits, burst[None, :], axes=1)[:, : c.shape[1]] \
            * np.sqrt(c.sr / max(crackle, 1.0)) / 10
    return x


FAMILIES = {"tone": tone, "strike": strike, "noise": noise}


def render_layers(layers, c: Ctx) -> np.ndarray:
    """Sum of the class's layers, each brought to unit RMS and scaled by its gain. (n, T)"""
    out = np.zeros(c.shape)
    for family, gain, params in layers:
        x = FAMILIES[family](c, **params)
        out += gain * x / (np.sqrt(np.mean(x**2, axis=1, keepdims=True)) + 1e-12)
    return out


def resolve(index: int) -> tuple[tuple, int]:
    """Layers of class ``index`` and how many ``pair_gap`` shifts it carries (1 for a twin)."""
    spec = CLASSES[index][1]
    if isinstance(spec, str):
        return dict(CLASSES)[spec], 1
    return spec, 0


BELL = ((0.5, 0.5, 1.4), (1.0, 1.0, 1.0), (1.19, 0.6, 0.8), (1.5, 0.4, 0.6), (2.0, 0.5, 0.5),
        (2.52, 0.25, 0.3))
BAR = ((1.0, 1.0, 0.18), (3.93, 0.35, 0.06), (9.2, 0.1, 0.02))
T_, S_, N_ = "tone", "strike", "noise"

# (category, layers | name of the class a twin copies). The first 40 hold 8 twin pairs.
CLASSES: tuple = (
    ("church_bell", ((S_, 1, dict(f0=420, modes=BELL, period=0.8)),)),
    ("temple_bell", "church_bell"),
    ("bird_chirp", ((T_, 1, dict(f0=2800, lfo="saw", lfo_rate=7, depth=7, gate_rate=7, duty=0.55)),)),
    ("cricket", ((T_, 1, dict(f0=4300, harmonics=2, gate_rate=28, duty=0.5, gate2_rate=3, duty2=0.6)),)),
    ("engine_hum", ((T_, 1, dict(f0=48, harmonics=30, rolloff=0.8, lfo="sine", lfo_rate=0.5, depth=0.5)),
                    (N_, 0.5, dict(slope=-6, lo=30, hi=800, env="pulse", env_rate=24, duty=0.6)))),
    ("dripping_water", ((S_, 1, dict(f0=900, modes=((1, 1, 0.04),), glide=12, period=0.3, jitter=0.2)),)),
    ("whistle", ((T_, 1, dict(f0=1600, harmonics=2, rolloff=2.5, lfo="sine", lfo_rate=5, depth=0.4, breath=0.15)),)),
    ("knocking", ((S_, 1, dict(f0=170, modes=((1, 1, 0.04), (2.3, 0.5, 0.02)), click=0.6, period=0.2, jitter=0.1)),)),
    ("siren", ((T_, 1, dict(f0=750, harmonics=4, rolloff=1.2, lfo="sine", lfo_rate=0.8, depth=6)),)),
    ("rain", ((N_, 1, dict(slope=-1, lo=400, hi=7000, crackle=250, crackle_gain=2)),)),
    ("white_noise", ((N_, 1, dict(slope=-0.5, lo=250, hi=5000)),)),
    ("radio_static", "white_noise"),
    ("clock_tick", ((S_, 1, dict(f0=2600, modes=((1, 1, 0.015), (1.6, 0.6, 0.01)), click=0.4, period=0.5, jitter=0.02)),)),
    ("bee_buzz", ((T_, 1, dict(f0=210, harmonics=24, rolloff=1.0, lfo="sine", lfo_rate=3, depth=0.8)),)),
    ("fly_buzz", "bee_buzz"),
    ("police_siren", ((T_, 1, dict(f0=880, harmonics=5, rolloff=1.3, lfo="square", lfo_rate=1.6, depth=3)),)),
    ("ambulance_siren", "police_siren"),
    ("crackling_fire", ((N_, 0.4, dict(slope=-5, lo=60, hi=3000, env="drift", env_rate=1.5)),
                        (N_, 1, dict(slope=0, lo=800, hi=7000, depth=0.0, crackle=30, crackle_gain=8)))),
    ("sea_waves", ((N_, 1, dict(slope=-3, lo=60, hi=5000, env="swell", env_rate=0.6, depth=0.8)),)),
    ("wind", ((N_, 1, dict(slope=-4, lo=100, hi=2500, center=500, peak=4, env="drift", env_rate=1.2, depth=0.7)),)),
    ("footsteps", ((S_, 1, dict(f0=95, modes=((1, 1, 0.05), (2.7, 0.4, 0.02)), click=1.2, click_decay=0.01, period=0.45, jitter=0.1)),)),
    ("alarm_beep", ((T_, 1, dict(f0=2000, harmonics=3, rolloff=2, gate_rate=4, duty=0.5)),)),
    ("smoke_alarm", "alarm_beep"),
    ("dog_bark", ((T_, 1, dict(f0=430, harmonics=12, rolloff=0.9, lfo="saw", lfo_rate=2.6, depth=-4, gate_rate=2.6, duty=0.35, breath=0.6)),)),
    ("cat_meow", ((T_, 1, dict(f0=620, harmonics=8, rolloff=1.3, lfo="arch", depth=5)),)),
    ("cow_moo", ((T_, 1, dict(f0=135, harmonics=16, rolloff=1.1, lfo="arch", depth=3, breath=0.2)),)),
    ("owl_hoot", ((T_, 1, dict(f0=380, harmonics=2, rolloff=3, gate_rate=1.8, duty=0.55)),)),
    ("dove_coo", "owl_hoot"),
    ("frog_croak", ((T_, 1, dict(f0=190, harmonics=14, rolloff=1, gate_rate=40, duty=0.5, gate2_rate=2.5, duty2=0.5)),)),
    ("woodpecker", ((S_, 1, dict(f0=1000, modes=((1, 1, 0.02),), click=0.5, period=0.7, echo=tuple((0.045 * m, 0.95**m) for m in range(1, 8)))),)),
    ("heartbeat", ((S_, 1, dict(f0=55, modes=((1, 1, 0.08), (2, 0.3, 0.04)), click=0.2, period=0.8, echo=((0.2, 0.7),))),)),
    ("helicopter", ((N_, 1, dict(slope=-4, lo=50, hi=1500, env="pulse", env_rate=13, duty=0.35)),
                    (T_, 0.4, dict(f0=32, harmonics=8)))),
    ("car_horn", ((T_, 1, dict(f0=400, harmonics=14, rolloff=0.8)), (T_, 1, dict(f0=500, harmonics=14, rolloff=0.8)))),
    ("train_horn", ((T_, 1, dict(f0=220, harmonics=10, rolloff=1)), (T_, 0.8, dict(f0=277, harmonics=10, rolloff=1)),
                    (T_, 0.7, dict(f0=330, harmonics=10, rolloff=1)))),
    ("vacuum_cleaner", ((N_, 1, dict(slope=-2, lo=300, hi=4500, center=1200, peak=2)),
                        (T_, 0.3, dict(f0=310, harmonics=3)))),
    ("hair_dryer", "vacuum_cleaner"),
    ("xylophone", ((S_, 1, dict(f0=780, modes=BAR, period=0.22, jitter=0.05)),)),
    ("marimba", "xylophone"),
    ("applause", ((N_, 1, dict(slope=0, lo=500, hi=6000, crackle=700, crackle_gain=3)),)),
    ("typing", ((S_, 1, dict(f0=2100, modes=((1, 1, 0.01),), click=1.0, period=0.11, random=True)),)),
    # beyond the default 40
    ("hand_bell", ((S_, 1, dict(f0=1150, modes=BELL[1:], period=0.25, jitter=0.15)),)),
    ("gong", ((S_, 1, dict(f0=140, modes=((1, 1, 2), (1.48, 0.7, 1.5), (2.11, 0.6, 1.2), (2.73, 0.4, 1), (3.4, 0.3, 0.8)), period=5)),)),
    ("wind_chime", ((S_, 1, dict(f0=1700, modes=((1, 1, 0.7), (1.33, 0.6, 0.6), (1.78, 0.5, 0.5)), period=0.18, random=True)),)),
    ("tuning_fork", ((T_, 1, dict(f0=440, gate_rate=0.3, pluck=0.8)),)),
    ("doorbell", ((T_, 1, dict(f0=660, harmonics=3, rolloff=2, lfo="square", lfo_rate=0.9, depth=-2, gate_rate=1.8, duty=0.5, pluck=3)),)),
    ("canary_song", ((T_, 1, dict(f0=3200, lfo="sine", lfo_rate=18, depth=3, gate_rate=9, duty=0.7)),)),
    ("cicada", ((N_, 1, dict(slope=0, lo=4000, hi=7500, env="pulse", env_rate=60, duty=0.5)),)),
    ("rooster_crow", ((T_, 1, dict(f0=700, harmonics=10, rolloff=1, lfo="arch", depth=7, breath=0.3)),)),
    ("mosquito", ((T_, 1, dict(f0=600, harmonics=6, rolloff=1.5, lfo="sine", lfo_rate=5, depth=0.5)),)),
    ("foghorn", ((T_, 1, dict(f0=88, harmonics=18, rolloff=0.8)),)),
    ("electric_hum", ((T_, 1, dict(f0=100, harmonics=9, rolloff=1.6)),)),
    ("motorcycle", ((T_, 1, dict(f0=85, harmonics=24, rolloff=0.6, lfo="sine", lfo_rate=0.7, depth=4)),
                    (N_, 0.4, dict(slope=-3, lo=80, hi=3000)))),
    ("chainsaw", ((T_, 1, dict(f0=125, harmonics=30, rolloff=0.5, lfo="sine", lfo_rate=1.5, depth=1)),
                  (N_, 0.6, dict(slope=0, lo=1000, hi=5000)))),
    ("kettle_whistle", ((T_, 1, dict(f0=2100, harmonics=2, rolloff=3, sweep=2, lfo="sine", lfo_rate=6, depth=0.3, breath=0.4)),)),
    ("referee_whistle", ((T_, 1, dict(f0=2700, harmonics=2, rolloff=2, lfo="square", lfo_rate=28, depth=1)),)),
    ("flute_note", ((T_, 1, dict(f0=660, harmonics=4, rolloff=2, lfo="sine", lfo_rate=5, depth=0.2, breath=0.2)),)),
    ("slide_whistle", ((T_, 1, dict(f0=500, harmonics=2, rolloff=3, sweep=12)),)),
    ("falling_tone", ((T_, 1, dict(f0=1500, harmonics=2, rolloff=3, sweep=-12)),)),
    ("laser_zap", ((T_, 1, dict(f0=3000, harmonics=3, lfo="saw", lfo_rate=6, depth=-12, gate_rate=6, duty=0.6)),)),
    ("steam_hiss", ((N_, 1, dict(slope=1, lo=2500, hi=7500)),)),
    ("breathing", ((N_, 1, dict(slope=-2, lo=300, hi=3000, center=900, peak=2, env="swell", env_rate=0.8, depth=0.9)),)),
    ("snoring", ((T_, 1, dict(f0=70, harmonics=20, rolloff=0.9, gate_rate=0.7, duty=0.6)), (N_, 0.5, dict(slope=-3, lo=100, hi=2000)))),
    ("jackhammer", ((S_, 1, dict(f0=320, modes=((1, 1, 0.02), (2.6, 0.5, 0.01)), click=0.8, period=0.04, jitter=0.05)),)),
    ("drum_roll", ((S_, 1, dict(f0=190, modes=((1, 1, 0.05),), click=1.0, click_decay=0.015, period=0.07, jitter=0.15)),)),
    ("cymbal", ((N_, 1, dict(slope=0, lo=3000, hi=7500, env="pulse", env_rate=0.7, pluck=1.5)),)),
    ("water_bubbling", ((S_, 1, dict(f0=500, modes=((1, 1, 0.03),), glide=20, period=0.07, random=True)),)),
    ("ping_pong", ((S_, 1, dict(f0=1700, modes=((1, 1, 0.03), (2.4, 0.4, 0.02)), click=0.3, period=0.45)),)),
    ("hammering", ((S_, 1, dict(f0=900, modes=((1, 1, 0.1), (2.7, 0.6, 0.07)), click=0.6, period=0.35)),)),
    ("clapping", ((S_, 1, dict(f0=1100, modes=((1, 0.3, 0.01),), click=1.5, click_decay=0.012, period=0.38)),)),
    ("glass_clink", ((S_, 1, dict(f0=3100, modes=((1, 1, 0.3), (2.32, 0.5, 0.2)), period=0.6)),)),
)
