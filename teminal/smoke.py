"""A smoke training on the real code path, reduced to a fingerprint (issue 17, item 1).

``smoke_fingerprint`` runs what a pipeline run computes, at toy size, through the library
(no notebook, no MLflow): an embedded world (``synth_world``: numpy synthesis, FFTs, PCM
encoding) → ``pairing: folds`` manifests → the tiny CLAP (CNN + MiniLM tokenizer and text
trunk) pretrained a few steps (STFT, mel, convolutions, Adam) → the trunk cache (renders with
resampling, level matching) → stage A and stage B a few steps each on the order-aware head
(attention) → ZSTE on the held-out pairs with bootstrap intervals → the level/duration probe.
Each stage's numbers go into the fingerprint as hashes of their exact bytes, so two processes
agree only when every step agreed bit for bit. ``python -m teminal.determinism check``
prints it; ``tests/test_determinism.py`` compares it across emulated CPUs.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from teminal.eval import evaluate
from teminal import losses
from .audio import Recipe
from .cache import TrunkCache
from .data import base_set
from .data.clips import ClipStore, render
from .data.pairs import PairingConfig, build_manifests
from .data.synth_world import WorldConfig, make_world
from .features import build_bank
from .models.tiny import TinyClap, TinyConfig
from .training.config import TrainConfig
from .training.fit import fit
from .training.pretrain import pretrain_tiny
from .training.stages import StageATask, StageBTask

WORLD = WorldConfig(n_classes=10, clips_per_class=5, clip_seconds=0.5, sample_rate=8000)
TINY = dict(channels=(8, 16, 32, 64), audio_hidden=64, embed_dim=32)  # TinyConfig fields
CLASS_PROMPT = "the sound of {x}"  # DataParams.caption_class


def digest(*arrays) -> str:
    """sha1 (12 hex digits) of the exact bytes of numpy arrays / tensors / floats."""
    h = hashlib.sha1()
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    return digest(*(state[k] for k in sorted(state)))


def _fit_config(*, epochs: int, batch_size: int, optimizer: str = "adam") -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=2e-3, optimizer=optimizer,
                       weight_decay=0.0, grad_clip=1.0, schedule="cosine", warmup_steps=0,
                       seed=0, bf16=True, checkpoint_every_s=1e9)


def smoke_fingerprint(*, work_dir: str | Path | None = None) -> dict:
    """The fingerprint of one smoke training (module docstring): a hash per stage, the ZSTE
    and probe values, and the seconds (wall, CPU of this process) it took; ``seconds`` and
    ``cpu_seconds`` are the only fields that are not results."""
    tic, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="teminal-smoke-") as tmp:
        work = Path(work_dir or tmp)
        out = _smoke(work, torch.device("cpu"))
    out["seconds"] = round(time.perf_counter() - tic, 2)
    out["cpu_seconds"] = round(time.process_time() - cpu, 2)
    return out


def _smoke(work: Path, device: torch.device) -> dict:
    torch.manual_seed(0)
    base = base_set.load(make_world(work / f"world-{WORLD.hash}", WORLD))
    manifests = build_manifests(base, pairing=PairingConfig(pairing="folds", seed=0))
    recipe = Recipe(sample_rate=base.sample_rate)
    store = ClipStore(base, sample_rate=base.sample_rate)
    render_key = lambda key: render(key, store, recipe)  # noqa: E731
    out = {"world": base.fingerprint[:12]}

    model = TinyClap(config=TinyConfig(sample_rate=base.sample_rate, seed=0, **TINY)).to(device)
    pretrain_tiny(model=model, singles=manifests.singles, render=render_key,
                  class_names=list(base.classes), class_prompt=CLASS_PROMPT,
                  config=_fit_config(epochs=2, batch_size=8, optimizer="adamw"), keep="best",
                  out_dir=work / "pretrained", device=device, progress=False)
    model.save(work / "pretrained" / "model.pt")
    out["pretrained"] = state_digest(model.state_dict())

    model = TinyClap.load(work / "pretrained" / "model.pt", audio_head="order").to(device).eval()
    cache = TrunkCache(root=work / "cache", backbone=model, recipe=recipe, progress=False,
                       base_fingerprint=base.fingerprint, device=device, batch_size=16)
    bank = build_bank(cache=cache, manifests=manifests, render=render_key, frames=True,
                      device=device)
    out["bank"] = digest(bank.singles.feats.pooled, bank.pairs.feats.frames, bank.text.feats.hidden)
    shared = dict(backbone=model, bank=bank, n_classes=len(base.classes))
    for name, task in (
            ("stage_a", StageATask(weights=losses.StageAWeights(), manifest=manifests.stage_a,
                                   **shared)),
            ("stage_b", StageBTask(weights=losses.StageBWeights(), captions="paraphrase",
                                   manifest=manifests.stage_b, **shared))):
        fit(task=task, model=model, params=model.trainable_parameters(),
            config=_fit_config(epochs=2, batch_size=8), out_dir=work / name,
            device=device, progress=False)
        out[name] = state_digest(model.head_state_dict())

    sets = evaluate.zste_sets(model, bank, cache, manifests, list(base.classes), device=device,
                              n_boot=50, seed=0, seen=False, heldout=False)
    table = sets["zste"].table
    out["zste"] = {t: [float(v), float(lo), float(hi)]
                   for t, v, lo, hi in zip(table.task, table.value, table.ci_low, table.ci_high)}
    probe_sets, _ = evaluate.probe_sets(manifests, list(base.classes), render=render_key,
                                        sample_rate=base.sample_rate, n_boot=50, seed=0)
    probe = probe_sets["zste"].table
    out["probe"] = {t: [float(v), float(lo), float(hi)]
                    for t, v, lo, hi in zip(probe.task, probe.value, probe.ci_low, probe.ci_high)}
    return out
