"""Trunk-cache benchmark: one stage-B epoch with and without the frozen-trunk cache (SPEC §2).

Same process, same machine, same rows, same batches, same starting heads:

- **uncached** — every step renders its composites (``clips.render``), runs
  ``backbone.audio_trunk`` and ``text_trunk`` on them, then the heads, ``losses.stage_b_loss``,
  backward and an optimizer step;
- **cached** — ``TrunkCache`` + ``build_bank`` compute every unique clip and caption once
  (timed separately: the *cache build*), then the epoch runs ``StageBTask.loss`` on the bank.

Each epoch starts from the same head weights and a fresh Adam, after one untimed warm-up step.
Model: msclap 2022 (Cnn14 + BERT-base, the paper's trainable layers) with random weights; data:
an ESC-50-shaped folder of made-up clips written to a temporary folder. The last line is
``speedup <uncached epoch / cached epoch>x`` (the cache build is not in it).

    .venv/bin/python benchmarks/trunk_cache.py [--pairs 24 --batch-size 8 --device auto --out f.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (bert_tokenizer_folder, describe, machine_info, make_esc50_like,  # noqa: E402
                     contention_note, memory_text, phase, pick_device, write_json)

from teminal import losses  # noqa: E402
from teminal.audio import Recipe  # noqa: E402
from teminal.cache import TrunkCache  # noqa: E402
from teminal.data import base_set  # noqa: E402
from teminal.data.clips import ClipStore, render  # noqa: E402
from teminal.data.manifest_files import Manifests  # noqa: E402
from teminal.data.pairs import PairingConfig, build_manifests, unordered_sides  # noqa: E402
from teminal.data.vocabulary import CLIP_COLUMNS, STAGE_B  # noqa: E402
from teminal.features import build_bank, manifest_audio_keys, manifest_texts  # noqa: E402
from teminal.models import build_backbone  # noqa: E402
from teminal.training.fit import train_step  # noqa: E402
from teminal.training.precision import Precision  # noqa: E402
from teminal.training.stages import StageBTask  # noqa: E402

PAIRING = PairingConfig(pairing="paper", seed=0)  # one clip per class, 70/30 (paper B.5)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=24,
                   help="ordered training pairs in the epoch (3 composite clips each)")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step (3N clips)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seconds", type=float, default=5.0, help="base clip length (ESC-50: 5 s)")
    p.add_argument("--sample-rate", type=int, default=44100, help="base clip rate (ESC-50: 44.1 kHz)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.pairs < 2 or args.batch_size < 2:
        p.error("--pairs and --batch-size must be ≥ 2 (a contrastive batch needs two pairs)")
    return args


def classes_for(pairs: int) -> int:
    """The fewest classes whose paper split has at least ``pairs`` ordered training pairs."""
    k = 3
    while (unordered_sides(k, test_fraction=PAIRING.test_fraction, val_fraction=PAIRING.val_fraction,
                           seed=PAIRING.seed) == "train").sum() < pairs:
        k += 1
    return k


def epoch_manifests(base: base_set.BaseSet, pairs: int) -> Manifests:
    """The first ``pairs`` training rows of stage B, and the single clips they use."""
    m = build_manifests(base, pairing=PAIRING)
    rows = m.stage_b[m.stage_b["split"] == "train"].head(pairs).reset_index(drop=True)
    used = set(rows[list(CLIP_COLUMNS)].to_numpy().ravel())
    singles = m.singles[m.singles["clip"].isin(used)].reset_index(drop=True)
    return Manifests(singles=singles, stage_a=m.stage_a.iloc[:0], stage_b=rows, hashes={}, config={})


def batches(n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [b for b in order.split(batch_size) if len(b) >= 2]


def uncached_loss(bb, rows, store, recipe, n_classes, device, render_seconds: list) -> torch.Tensor:
    """The stage-B loss of ``rows`` with both trunks run now (SPEC §3, blocks [f; r; o]);
    the time spent composing the audio is appended to ``render_seconds``."""
    start = time.perf_counter()
    keys = [k for c in STAGE_B for k in c.keys(rows)]  # (3N,) blocks f, r, o
    wave = torch.from_numpy(np.stack([render(k, store, recipe) for k in keys])).to(device)  # (3N, S)
    render_seconds.append(time.perf_counter() - start)
    texts = [t for c in STAGE_B for t in rows[c.caption]]  # (3N,)
    z_a = bb.audio_head(bb.audio_trunk(wave, frames=bb.needs_frames))  # (3N, d)
    z_c = bb.text_head(bb.text_trunk(texts))  # (3N, d)
    i = torch.tensor(rows["i"].to_numpy(), device=device)  # (N,)
    j = torch.tensor(rows["j"].to_numpy(), device=device)  # (N,)
    return losses.stage_b_loss(z_a, z_c, bb.logit_scale, i=i, j=j, n_classes=n_classes,
                               weights=losses.StageBWeights())


def run_epoch(bb, steps, loss_of, *, lr: float, seed: int, precision: Precision) -> list[float]:
    """One epoch of Adam steps through the pipeline's own ``training.fit.train_step`` (its
    autocast, grad clip 1.0 as ``TrainConfig``'s default); the step losses."""
    bb.train()
    params = bb.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=lr)
    torch.manual_seed(seed)  # same dropout masks in both variants
    out = [train_step(lambda: loss_of(rows), optimizer=optimizer, params=params, grad_clip=1.0,
                      precision=precision) for rows in steps]
    return torch.stack(out).float().cpu().tolist()


def report(figures: dict) -> None:
    """Print the figures; the last line is ``speedup <ratio>x``."""
    un, build, ca, data = (figures[k] for k in ("uncached_epoch", "cache_build", "cached_epoch", "data"))
    figures["first_step_loss_diff"] = abs(un["losses"][0] - ca["losses"][0])
    figures["speedup"] = un["seconds"] / ca["seconds"]
    figures["speedup_cpu_time"] = un["cpu_seconds"] / ca["cpu_seconds"]
    steps = data["steps"]
    print(f"uncached epoch: {un['seconds']:.2f} s ({un['seconds'] / steps:.2f} s/step, of which "
          f"rendering {un['render_seconds']:.2f} s); {memory_text(un)}")
    print(f"cache build:    {build['seconds']:.2f} s ({data['unique_composites']} composites + "
          f"{data['singles']} singles + {data['captions']} captions through the trunks, once); "
          f"{memory_text(build)}")
    print(f"cached epoch:   {ca['seconds']:.4f} s ({ca['seconds'] / steps * 1000:.2f} ms/step); "
          f"{memory_text(ca)}")
    print(f"first-step loss: uncached {un['losses'][0]:.5f}, cached {ca['losses'][0]:.5f} "
          f"(|Δ| {figures['first_step_loss_diff']:.1e}: float16 cache)")
    print(f"cache build + cached epoch: {build['seconds'] + ca['seconds']:.2f} s vs uncached epoch "
          f"{un['seconds']:.2f} s; every further epoch or ablation row costs only the cached epoch")
    print(f"speedup in process CPU time: {figures['speedup_cpu_time']:.1f}x")
    if contention_note(figures):
        print(contention_note(figures))
    write_json(figures["args"]["out"], figures)
    print(f"speedup {figures['speedup']:.1f}x")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    info = machine_info(device)
    print(describe(info), flush=True)

    precision = Precision.of(bf16=True, device=device)  # TrainConfig.bf16 on this device
    figures: dict = {"machine": info, "args": vars(args), "bf16_autocast": precision.bf16}
    with tempfile.TemporaryDirectory(prefix="teminal-bench-") as tmp:
        tmp = Path(tmp)
        k = classes_for(args.pairs)
        make_esc50_like(tmp / "esc50", classes=k, clips_per_class=5, seconds=args.seconds,
                        sample_rate=args.sample_rate, seed=args.seed)
        base = base_set.load(tmp / "esc50")
        m = epoch_manifests(base, args.pairs)
        rows = m.stage_b
        bb = build_backbone(name="msclap-2022", random_init=True, download=False, seed=args.seed,
                            tokenizer=bert_tokenizer_folder(), audio_head="pooled", device=device)
        recipe = Recipe(sample_rate=bb.sample_rate)
        store = ClipStore(base, sample_rate=bb.sample_rate)
        for clip in set(rows[list(CLIP_COLUMNS)].to_numpy().ravel()):
            store[clip]  # read the base clips now: file reads are timed in neither variant
        steps = batches(len(rows), args.batch_size, args.seed)
        start_heads = bb.head_state_dict()
        n_keys = len(manifest_audio_keys(m)[1])  # f and r of (i, j) are r and f of (j, i)
        figures["data"] = {"classes": k, "pairs": len(rows), "steps": len(steps),
                           "composites_per_epoch": 3 * len(rows),
                           "composite_seconds": 2 * args.seconds,
                           "unique_composites": n_keys, "singles": len(m.singles),
                           "captions": len(manifest_texts(m))}
        print(f"data: {k} classes, {len(rows)} ordered pairs → {3 * len(rows)} composite clips of "
              f"{2 * args.seconds:g} s per epoch ({n_keys} unique), batch {args.batch_size} pairs "
              f"({3 * args.batch_size} clips), {len(steps)} steps", flush=True)

        render_s: list[float] = []

        def loss_uncached(r: torch.Tensor) -> torch.Tensor:
            return uncached_loss(bb, rows.iloc[r.numpy()], store, recipe, k, device, render_s)

        run_epoch(bb, steps[:1], loss_uncached, lr=args.lr, seed=args.seed, precision=precision)  # warm-up
        render_s.clear()
        bb.load_head_state_dict(start_heads)
        with phase("uncached_epoch", device, figures) as fig:
            fig["losses"] = run_epoch(bb, steps, loss_uncached, lr=args.lr, seed=args.seed,
                                      precision=precision)
        fig["render_seconds"] = sum(render_s)

        with phase("cache_build", device, figures) as fig:
            cache = TrunkCache(root=tmp / "cache", backbone=bb, recipe=recipe,
                               base_fingerprint=base.fingerprint, device=device,
                               batch_size=3 * args.batch_size, progress=False)
            bank = build_bank(cache=cache, manifests=m, render=lambda key: render(key, store, recipe),
                              frames=bb.needs_frames, device=device)  # fp32, as the pipeline
        task = StageBTask(weights=losses.StageBWeights(), backbone=bb, bank=bank, manifest=rows,
                          n_classes=k, replay=None)
        cached = lambda r: task.loss(r, split="train")  # noqa: E731
        run_epoch(bb, steps[:1], cached, lr=args.lr, seed=args.seed, precision=precision)  # warm-up
        bb.load_head_state_dict(start_heads)
        with phase("cached_epoch", device, figures) as fig:
            fig["losses"] = run_epoch(bb, steps, cached, lr=args.lr, seed=args.seed,
                                      precision=precision)

    report(figures)
    return figures


if __name__ == "__main__":
    main()
