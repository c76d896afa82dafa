"""The paper configuration end to end, timed per stage — meant for a CUDA machine.

ESC-50-shaped data made up on the spot (default: 50 classes × 40 clips of 5 s at 44.1 kHz,
5 folds), msclap 2022 (Cnn14 + BERT-base, the paper's trainable layers) with random weights,
``pairing: paper`` (one clip per class, 70/30 by unordered pair, 10 % of the training pairs for
the validation loss), the default composite recipe, Adam lr 1e-4, batch 256, bf16 autocast
(paper B.5; ``--no-bf16`` for fp32). Only the library is used (no notebook, no ``teminal.run``
session), on the pipeline's own code path: training through ``training.fit.fit`` (its
``train_step`` and ``Precision``: bf16 where native, as ``-p train.bf16=true`` would), the
trunk cache and ZSTE in fp32 as the pipeline computes them. Stages, each timed with its peak
memory:

1. data generation — the ESC-50-shaped folder, ``base_set.load`` (validation),
   ``build_manifests``, and the SPEC §6 size gates (below);
2. model build — random msclap 2022, Cnn14's conv layers redrawn (below);
3. cache build — ``TrunkCache`` + ``build_bank``: every single clip, composite and caption
   through the frozen trunks once, in batches of ``--eval-batch-size``;
4. stage A epochs — ``StageATask`` + ``fit`` (checkpoints included);
5. stage B epochs — ``StageBTask`` + ``fit`` from stage A's heads (T-AB);
6. ZSTE — ``evaluate.zste_inputs`` + ``zste.evaluate`` on the held-out pairs (heads in batches
   of 1024, the prompts through the cached text trunk via ``evaluate.text_embedder``).

**Random weights, not all ties.** msclap's own init shrinks Cnn14's activations ~2× per ReLU,
so every clip of a random Cnn14 embeds to the same direction (cosine > 0.99997) and every ZSTE
candidate ties. As ``random_msclap_2022`` in ``tests/test_paper_config.py`` does, every conv
layer of Cnn14 is redrawn with He init (``kaiming_normal_``, seeded by ``--seed``) before the
trunk cache is keyed, so clips embed apart. The ZSTE figures still sit near chance (the weights
are random): only the times mean something; the ``tied %`` column shows how many items a tie
decided.

**Sizes** (SPEC §6). The ZSTE needs ``gates.MIN_EVAL_PAIRS`` held-out unordered class pairs
(``--classes`` ≥ 9 at the 30 % split), and ``fit`` refuses a training split smaller than
one batch; both are checked right after the manifests, before anything expensive. On a CPU it
runs at a toy size to check it works (~95 s on one core, 72 s of it the trunk-cache build):

    .venv/bin/python benchmarks/paper_gpu.py --classes 9 --clips-per-class 5 --epochs 1 \\
        --batch-size 8 --eval-batch-size 8 --n-boot 50 --device cpu --threads 1
    .venv/bin/python benchmarks/paper_gpu.py --out benchmarks/out/paper_gpu.json     # a CUDA machine
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (bert_tokenizer_folder, describe, machine_info, make_esc50_like,  # noqa: E402
                     contention_note, memory_text, phase, pick_device, write_json)

from teminal.eval import evaluate, zste
from teminal import gates, losses, tracking  # noqa: E402
from teminal.eval.tasks import ZsteTemplates  # noqa: E402
from teminal.audio import Recipe  # noqa: E402
from teminal.cache import TrunkCache  # noqa: E402
from teminal.data import base_set  # noqa: E402
from teminal.data.clips import ClipStore, render  # noqa: E402
from teminal.data.manifest_files import Manifests  # noqa: E402
from teminal.data.pairs import PairingConfig, build_manifests, eval_pair_count  # noqa: E402
from teminal.features import build_bank, manifest_audio_keys, manifest_texts  # noqa: E402
from teminal.models import build_backbone  # noqa: E402
from teminal.models.base import Backbone  # noqa: E402
from teminal.training.checkpoints import load_checkpoint_head  # noqa: E402
from teminal.training.config import TrainConfig, check_trainable  # noqa: E402
from teminal.training.fit import fit  # noqa: E402
from teminal.training.precision import Precision  # noqa: E402
from teminal.training.stages import StageATask, StageBTask  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=50, help="ESC-50: 50 (≥ 9, see the docstring)")
    p.add_argument("--clips-per-class", type=int, default=40, help="ESC-50: 40 (≥ 5 folds)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--epochs", type=int, default=50, help="epochs of each stage (paper B.5: 50)")
    p.add_argument("--batch-size", type=int, default=256, help="pairs per step (paper B.5: 256)")
    p.add_argument("--eval-batch-size", type=int, default=256, help="clips per trunk batch")
    p.add_argument("--n-boot", type=int, default=1000, help="ZSTE bootstrap resamples")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast in training where native (paper B.5; TrainConfig.bf16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default="", help="keep data, cache, checkpoints and MLflow "
                   "here: a new or empty folder (default: a temporary folder, deleted at the end)")
    p.add_argument("--out", default="", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.classes < 3 or args.clips_per_class < 5 or args.epochs < 1 or args.batch_size < 2:
        p.error("need --classes ≥ 3 (pairs of distinct classes), --clips-per-class ≥ 5 "
                "(5 folds), --epochs ≥ 1 and --batch-size ≥ 2 (a contrastive batch)")
    work = Path(args.work_dir) if args.work_dir else None
    if work is not None and work.exists() and (not work.is_dir() or any(work.iterdir())):
        p.error(f"--work-dir {work} exists and is not empty; earlier results are never "
                "overwritten: pass a new folder")
    return args


def random_msclap_2022(*, tokenizer: Path, seed: int) -> Backbone:
    """msclap 2022 with random weights whose Cnn14 activations keep their scale
    (``MsClapBase.he_init_audio_convs``), so clips embed apart. Built on the CPU; move it afterwards."""
    model = build_backbone(name="msclap-2022", random_init=True, download=False, seed=seed,
                           tokenizer=tokenizer, audio_head="pooled", device="cpu")
    return model.he_init_audio_convs(seed=seed)


def check_sizes(m: Manifests, *, batch_size: int) -> None:
    """SPEC §6 gates, before anything expensive: ``SanityError`` saying what to change."""
    n_eval = eval_pair_count(m, "test")
    if n_eval < gates.MIN_EVAL_PAIRS:
        raise gates.SanityError(
            f"the held-out set has {n_eval} unordered class pairs, fewer than "
            f"gates.MIN_EVAL_PAIRS={gates.MIN_EVAL_PAIRS} (SPEC §6): raise --classes (9 is the "
            "least at the paper's 30 % split)")
    for name, table in (("stage A", m.stage_a), ("stage B", m.stage_b)):
        check_trainable(int((table["split"] == "train").sum()), batch_size,
                        where=f"{name} (--batch-size {batch_size})")


def fit_stage(task, bb, *, args, out_dir: Path, device: torch.device, tag: str) -> dict:
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-4,
                         optimizer="adam", weight_decay=0.0, grad_clip=1.0, schedule="cosine",
                         warmup_steps=0, seed=args.seed, bf16=args.bf16, checkpoint_every_s=300.0)
    result = fit(task=task, model=bb, params=bb.trainable_parameters(), config=config,
                 out_dir=out_dir, device=device, metric_prefix=f"{tag}/", progress=False)
    bb.load_head_state_dict(load_checkpoint_head(out_dir / "best.pt"))
    return {"train_rows": task.n_train, "val_rows": task.n_val,
            "steps_per_epoch": result.steps_per_epoch, "epochs": args.epochs,
            "best_val": result.best_val, "last_train_loss": result.history[-1]["train_loss"]}


def zste_templates(k: int) -> ZsteTemplates:
    """The paper's 50 candidates for 4A/4B and 5B, or as many as K classes allow (SPEC §4)."""
    return ZsteTemplates(n_candidates_4=min(50, 3 * k * (k - 1) // 2),
                              n_candidates_5b=min(50, k * (k - 1)))


def run(args, device: torch.device, work: Path, figures: dict) -> None:
    with phase("data_generation", device, figures, echo=True) as fig:
        make_esc50_like(work / "esc50", classes=args.classes, clips_per_class=args.clips_per_class,
                        seconds=args.seconds, sample_rate=args.sample_rate, seed=args.seed)
        base = base_set.load(work / "esc50")
        m = build_manifests(base, pairing=PairingConfig(pairing="paper", seed=args.seed))
        check_sizes(m, batch_size=args.batch_size)
        fig.update(clips=len(base.clips), classes=len(base.classes), **{
            f"stage_b_{s}": int(n) for s, n in m.stage_b["split"].value_counts().items()})

    with phase("model_build", device, figures, echo=True):
        bb = random_msclap_2022(tokenizer=bert_tokenizer_folder(), seed=args.seed).to(device)
    recipe = Recipe(sample_rate=bb.sample_rate)  # the default recipe (SPEC §1)
    store = ClipStore(base, sample_rate=bb.sample_rate)

    with phase("cache_build", device, figures, echo=True) as fig:
        cache = TrunkCache(root=work / "cache", backbone=bb, recipe=recipe,
                           base_fingerprint=base.fingerprint, device=device,
                           batch_size=args.eval_batch_size, progress=False)
        bank = build_bank(cache=cache, manifests=m, render=lambda key: render(key, store, recipe),
                          frames=bb.needs_frames, device=device)  # fp32, as the pipeline
        singles, pairs = manifest_audio_keys(m)
        fig.update(singles=len(singles), composites=len(pairs), captions=len(manifest_texts(m)))

    k = len(base.classes)
    with phase("stage_a", device, figures, echo=True) as fig:
        task = StageATask(weights=losses.StageAWeights(), backbone=bb, bank=bank,
                          manifest=m.stage_a, n_classes=k, replay=None)
        fig.update(fit_stage(task, bb, args=args, out_dir=work / "checkpoints" / "A",
                             device=device, tag="A"))
    with phase("stage_b", device, figures, echo=True) as fig:
        task = StageBTask(weights=losses.StageBWeights(), backbone=bb, bank=bank,
                          manifest=m.stage_b, n_classes=k, replay=None)
        fig.update(fit_stage(task, bb, args=args, out_dir=work / "checkpoints" / "T-AB",
                             device=device, tag="B"))

    with phase("zste", device, figures, echo=True) as fig:
        bb.eval()
        inputs = evaluate.zste_inputs(bb, bank, m, base.classes, split="test")  # fp32, as the pipeline
        result = zste.evaluate(inputs, evaluate.text_embedder(bb, cache, device),
                               templates=zste_templates(k), n_boot=args.n_boot, seed=args.seed)
        tied = [100 * result.items[t].tied.mean() for t in result.table.task]  # % of items
        table = result.table.assign(tied=tied)
        fig["table"] = table.to_dict(orient="records")
    print(table.rename(columns={"tied": "tied %"}).round(1).to_string(index=False))


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # dropout in the heads
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # the store's table-creation chatter
    device = pick_device(args.device)
    info = machine_info(device)
    print(describe(info), flush=True)
    figures: dict = {"machine": info, "args": vars(args),
                     "bf16_autocast": Precision.of(bf16=args.bf16, device=device).bf16}
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="teminal-paper-"))
    work.mkdir(parents=True, exist_ok=True)
    stages: dict = {}
    try:
        tracking.setup(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}", experiment="paper_gpu")
        with tracking.run(run_name="paper_gpu"):  # fit logs here, never to the repo's mlruns/
            run(args, device, work, stages)
    except BaseException as exc:
        figures["error"] = repr(exc)  # still report the stages that finished
        raise
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
        figures["stages"] = stages
        report(figures, args)
    return figures


def report(figures: dict, args) -> None:
    stages = {k: v for k, v in figures["stages"].items() if "seconds" in v}  # finished ones
    print(f"\n{'stage':<16} {'seconds':>9}  memory")
    for name, fig in stages.items():
        extra = f"  ({fig['seconds'] / args.epochs:.2f} s/epoch)" if name.startswith("stage_") else ""
        print(f"{name:<16} {fig['seconds']:>9.2f}  {memory_text(fig)}{extra}")
    figures["total_seconds"] = sum(f["seconds"] for f in stages.values())
    print(f"{'total':<16} {figures['total_seconds']:>9.2f}")
    if {"cache_build", "stage_a", "stage_b"} <= set(stages):
        c, a, b = stages["cache_build"], stages["stage_a"], stages["stage_b"]
        print(f"cache: {c['singles']} singles + {c['composites']} composites + {c['captions']} captions; "
              f"stage A {a['train_rows']} rows × {a['epochs']} epochs ({a['steps_per_epoch']} steps "
              f"each), stage B {b['train_rows']} rows ({b['steps_per_epoch']} steps each)")
    if contention_note(stages):
        print(contention_note(stages))
    write_json(args.out, figures)


if __name__ == "__main__":
    main()
