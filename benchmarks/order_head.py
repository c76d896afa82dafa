"""Order-head benchmark: when does the order-aware audio head leave its plateau? (SPEC §2–§4)

Library only (no notebook, no MLflow run: ``training.fit.fit`` logs nothing without one). Once per
work folder: an embedded world (``synth_world.make_world``), manifests
(``build_manifests``, ``pairing="folds"``), the tiny backbone pretrained CLAP-style
(``pretrain_tiny``, as ``teminal/run/steps/models.py`` does) and the trunk cache of every
clip and caption (``TrunkCache`` + ``build_bank``, frames included). Then, per configuration,
a fresh ``TinyClap.load(model.pt, audio_head="order")``, stage A (T-AB only, ``StageATask``,
one learning rate, as the pipeline) and stage B (``StageBTask``, all weights 1,
``weights_by="meaning"``, ``--captions`` paper or paraphrase) with ``fit(params=[{other,
lr}, {mixer, order_lr}])``, ``--schedule`` cosine or constant. Only the heads train.

Every ``--eval-every`` epochs (and before training) the live model is scored on the
**validation** items (``teminal.eval.selection``: stage-B rows and singles of split ``val``, class
pairs never trained on) with ``zste.evaluate`` (SPEC §4): 3A-o (``"x_i before x_j"`` vs
``"x_j before x_i"`` for ``a_i⊕a_j`` and for ``a_j⊕a_i``), 3A-c (SPEC §4: both orders of an
unordered clip pair right in 3A, "while" a candidate too), ``oc`` (both right in 3A-o, the
order-only consistency) and 1A / 3A / 3B. The hook runs inside ``fit``'s validation pass
(eval mode, no grad); its time is measured and left out of the per-epoch seconds.

The configurations form a grid (``--batch-sizes`` × ``--epochs`` × ``--train-repeats`` × the
knobs below). The setting is chosen by ``selection.choose`` on the validation items — the
model ``best.pt`` holds (what the pipeline keeps), by validation 3A-c, 3A-o breaking ties —
and only the chosen one is then scored on the held-out test pairs, once (``chosen.test``).
No number of the test split reaches the choice (SPEC §4).

Knobs beyond ``--order-lrs``: ``--text-lrs`` (a learning rate of the text head's own) and
``--up-inits`` (std of a normal init of the mixer's output projection; 0 = the library's zero
init; > 0 breaks "equals the pooled head at init": ``init_cos_to_pooled`` says by how much).
Diagnostics per evaluation: ``audio_order_cos`` / ``text_order_cos`` (1 = that side is blind to
order).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/order_head.py --work-dir benchmarks/out/oh \\
        --starts AB --captions paraphrase --batch-sizes 32,64 --epochs 6,10 --train-repeats 2 \\
        --out benchmarks/out/order_head.json

``--work-dir`` keeps the world, the pretrained model and the trunk cache for later calls (and
each call's stage checkpoints under ``runs/``, ~70 MB per configuration: delete them freely).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe, machine_info, write_json  # noqa: E402
from _order_eval import (CLASS_PROMPT, EvalHook, distance_from_pooled, evaluate,  # noqa: E402
                         print_table, scores, test_once, zero_shot_top1)

from teminal import losses
from teminal.eval import selection  # noqa: E402
from teminal.audio import Recipe  # noqa: E402
from teminal.cache import TrunkCache  # noqa: E402
from teminal.data import base_set  # noqa: E402
from teminal.data.clips import ClipStore, render  # noqa: E402
from teminal.data.pairs import PairingConfig, build_manifests  # noqa: E402
from teminal.data.synth_world import WorldConfig, make_world  # noqa: E402
from teminal.features import build_bank  # noqa: E402
from teminal.models.heads import FrameMixer  # noqa: E402
from teminal.models.tiny import TinyClap, TinyConfig  # noqa: E402
from teminal.tracking import config_hash  # noqa: E402
from teminal.training.checkpoints import load_checkpoint_head  # noqa: E402
from teminal.training.config import SCHEDULES, TrainConfig  # noqa: E402
from teminal.training.fit import fit  # noqa: E402
from teminal.training.pretrain import pretrain_tiny  # noqa: E402
from teminal.training.stages import StageATask, StageBTask  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--work-dir", default="", help="world, pretrained model, trunk cache, checkpoints (reused "
      "by later calls with the same settings); default: a temporary folder, deleted")
    a("--classes", type=int, default=30), a("--clips-per-class", type=int, default=20)
    a("--seconds", type=float, default=1.0), a("--sample-rate", type=int, default=16000)
    a("--hop", type=int, default=160, help="tiny STFT hop (params tiny_hop)")
    a("--width", type=int, default=16, help="tiny CNN width (params tiny_width)")
    a("--pretrain-epochs", type=int, default=24), a("--pretrain-batch-size", type=int, default=64)
    a("--pretrain-lr", type=float, default=2e-3)
    a("--starts", default="B,AB", help="B: stage B from the pretrained model; AB: after stage A")
    a("--stage-a-epochs", type=int, default=8)
    a("--stage-a-batch-size", type=int, default=64, help="params stage_a.batch_size")
    a("--order-lrs", default="1e-3", help="comma list: learning rates of the order module")
    a("--text-lrs", default="0", help="comma list: learning rates of the text head (0 = --lr)")
    a("--up-inits", default="0", help="comma list: std of the mixer output projection's init")
    a("--seeds", default="0", help="comma list: stage seeds (shuffles, dropout; a seed s > 0 "
      "also draws the order module's init with seed s)")
    a("--schedule", default="cosine", choices=SCHEDULES,
      help="lr schedule of stages A and B (params train.schedule: shared by every stage)")
    a("--captions", default="paper", choices=("paper", "paraphrase"), help="stage-B captions")
    a("--epochs", default="28", help="comma list: stage-B epochs"),
    a("--batch-sizes", default="64", help="comma list: batch sizes of stages A and B")
    a("--lr", type=float, default=1e-3), a("--eval-every", type=int, default=2)
    a("--n-boot", type=int, default=1000, help="bootstrap resamples of the final evaluation")
    a("--threads", type=int, default=1), a("--seed", type=int, default=0, help="world/pretrain")
    a("--train-repeats", default="1", help="comma list: clip draws per unordered training pair")
    a("--configs", default="", help="instead of the grid of the three lists above: a comma "
      "list of BATCH/EPOCHS/REPEATS, e.g. 32/10/2,64/10/2")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA / native-bf16 CPU)")
    a("--out", default="", help="write every figure to this JSON file (never overwritten)")
    args = p.parse_args(argv)
    if args.out and Path(args.out).exists():
        p.error(f"--out {args.out} exists; earlier results are never overwritten: pick another")
    if args.eval_every < 1 or min(ints(args.epochs)) < 1 or min(ints(args.batch_sizes)) < 2 \
            or min(ints(args.train_repeats)) < 1:
        p.error("--eval-every, --epochs, --train-repeats must be ≥ 1, --batch-sizes ≥ 2")
    return args


@dataclass(frozen=True)
class Variant:
    """One stage-B configuration."""

    start: str  # "B" (from the pretrained model) | "AB" (after stage A)
    batch_size: int  # stages A and B
    epochs: int  # stage B
    train_repeats: int  # clip draws per unordered training pair
    order_lr: float
    text_lr: float  # 0 = the stage lr
    up_init: float
    seed: int

    @property
    def label(self) -> str:
        text = f" tlr={self.text_lr:g}" if self.text_lr else ""
        return (f"T-{self.start} b={self.batch_size} e={self.epochs} r={self.train_repeats} "
                f"olr={self.order_lr:g}{text} up={self.up_init:g} s={self.seed}")


def variants(args) -> list[Variant]:
    starts = [s.strip() for s in args.starts.split(",")]
    if not set(starts) <= {"B", "AB"}:
        raise SystemExit(f"--starts takes B and/or AB, got {args.starts!r}")
    triples = [tuple(int(x) for x in c.split("/")) for c in args.configs.split(",") if c.strip()] \
        or list(itertools.product(ints(args.batch_sizes), ints(args.epochs),
                                  ints(args.train_repeats)))
    if any(len(t) != 3 or t[0] < 2 or min(t) < 1 for t in triples):
        raise SystemExit(f"--configs takes BATCH/EPOCHS/REPEATS triples, got {args.configs!r}")
    grid = itertools.product(starts, triples, floats(args.order_lrs), floats(args.text_lrs),
                             floats(args.up_inits), ints(args.seeds))
    return [Variant(start, *triple, *rest) for start, triple, *rest in grid]


@dataclass
class Setup:
    """What the configurations of one ``train_repeats`` share: data, the pretrained model file,
    cache, bank and the validation items every score is taken on."""

    base: base_set.BaseSet
    manifests: object
    validation: selection.ValidationItems
    model_path: Path
    cache: TrunkCache
    bank: object
    device: torch.device
    info: dict


def setup(args, work: Path, device: torch.device, repeats: int) -> Setup:
    """World, manifests (``repeats`` draws per training pair), pretrained tiny backbone (reused
    when present: it does not depend on ``repeats``) and the feature bank."""
    timings = {}
    tic = time.perf_counter()
    world = WorldConfig(n_classes=args.classes, clips_per_class=args.clips_per_class,
                        clip_seconds=args.seconds, sample_rate=args.sample_rate, seed=args.seed)
    base = base_set.load(make_world(work / f"world-{world.hash}", world))
    manifests = build_manifests(base, pairing=PairingConfig(pairing="folds", seed=args.seed,
                                                            train_repeats=repeats))
    recipe = Recipe(sample_rate=base.sample_rate)
    store = ClipStore(base, sample_rate=base.sample_rate)
    render_key = lambda key: render(key, store, recipe)  # noqa: E731
    timings["data_s"] = time.perf_counter() - tic
    w = args.width
    tiny = TinyConfig(sample_rate=base.sample_rate, seed=args.seed, hop=args.hop,
                      channels=(w, 2 * w, 4 * w, 8 * w))
    pre = TrainConfig(epochs=args.pretrain_epochs, batch_size=args.pretrain_batch_size,
                      lr=args.pretrain_lr, optimizer="adamw", weight_decay=1e-4,
                      grad_clip=1.0, schedule="cosine", warmup_steps=0, seed=args.seed,
                      bf16=False, checkpoint_every_s=300.0)
    folder = work / f"pretrained-{config_hash([world.hash, asdict(tiny), asdict(pre)])[:10]}"
    tic = time.perf_counter()
    model = TinyClap(config=tiny).to(device)
    result = pretrain_tiny(model=model, singles=manifests.singles, render=render_key,
                           class_names=list(base.classes), class_prompt=CLASS_PROMPT, config=pre, keep="best",
                           out_dir=folder, device=device, progress=False)
    model.save(folder / "model.pt")
    timings["pretrain_s"] = time.perf_counter() - tic
    timings["pretrain_reused"] = result.steps == 0
    tic = time.perf_counter()
    order = TinyClap.load(folder / "model.pt", audio_head="order").to(device).eval()
    cache = TrunkCache(root=work / "cache", backbone=order, recipe=recipe, progress=False,
                       base_fingerprint=base.fingerprint, device=device, batch_size=64)
    bank = build_bank(cache=cache, manifests=manifests, render=render_key, frames=True,
                      device=device)
    timings["cache_s"] = time.perf_counter() - tic
    counts = {t: {s: int(n) for s, n in df["split"].value_counts().items()}
              for t, df in manifests.tables().items()}
    info = {"world": asdict(world), "tiny": asdict(tiny), "pretrain": asdict(pre), **timings,
            "pretrain_history": result.history, "rows": counts,
            "frames_per_double": int(bank.pairs.feats.frames.shape[1]),
            "zero_shot_train_top1": zero_shot_top1(order, bank, cache, manifests, base, device)}
    return Setup(base, manifests, selection.validation_items(manifests), folder / "model.pt",
                 cache, bank, device, info)


def fresh_model(v: Variant, s: Setup) -> TinyClap:
    """The pretrained model with the order head; init changes of ``v`` applied."""
    model = TinyClap.load(s.model_path, audio_head="order").to(s.device)
    mixer = model.audio_head_module.mixer
    gen = torch.Generator().manual_seed(1000 + v.seed)
    if v.seed > 0:  # another draw of the order module's random init
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 + v.seed)
            other = FrameMixer(channels=mixer.up.out_features, max_frames=mixer.max_frames,
                               d_model=mixer.down.out_features,
                               n_heads=mixer.layer.self_attn.num_heads)
        mixer.load_state_dict(other.state_dict())
    if v.up_init > 0:
        with torch.no_grad():
            mixer.up.weight.copy_(torch.randn(mixer.up.weight.shape, generator=gen) * v.up_init)
    return model


def groups(model, lr: float, order_lr: float, text_lr: float = 0.0) -> list[dict]:
    """[other heads at lr, order module at order_lr] (+ text head at text_lr when > 0)."""
    mixer = {id(p) for p in model.audio_head_module.mixer.parameters()}
    text = {id(p) for m in model._text_head_modules() for p in m.parameters()} if text_lr else set()
    params = model.trainable_parameters()
    out = [{"params": [p for p in params if id(p) not in mixer | text], "lr": lr},
           {"params": [p for p in params if id(p) in mixer], "lr": order_lr}]
    return out + ([{"params": [p for p in params if id(p) in text], "lr": text_lr}] if text else [])


def stage_a(v: Variant, s: Setup, args, out: Path) -> dict:
    """Stage A (all α, β 1) from the pretrained order-head model; its best head state."""
    model = fresh_model(v, s)
    torch.manual_seed(v.seed)
    task = StageATask(weights=losses.StageAWeights(), backbone=model, bank=s.bank,
                      manifest=s.manifests.stage_a, n_classes=len(s.base.classes))
    cfg = TrainConfig(epochs=args.stage_a_epochs, batch_size=args.stage_a_batch_size,
                      lr=args.lr,
                      optimizer="adam", weight_decay=0.0, grad_clip=1.0, warmup_steps=0,
                      schedule=args.schedule, seed=v.seed, checkpoint_every_s=1e9,
                      bf16=args.bf16)
    tic = time.perf_counter()
    fit(task=task, model=model, params=model.trainable_parameters(), config=cfg,
        out_dir=out, device=s.device, progress=False)
    return {"head": load_checkpoint_head(out / "best.pt"),
            "seconds": time.perf_counter() - tic}


def run_variant(v: Variant, s: Setup, args, out: Path,
                start_head: dict | None) -> tuple[dict, dict]:
    """Stage B of ``v`` with evaluations every ``args.eval_every`` epochs: all its figures and
    the head state of its ``best.pt`` (lowest validation loss: what the pipeline keeps)."""
    model = fresh_model(v, s)
    if start_head is not None:
        model.load_head_state_dict(start_head)
    record = {"variant": asdict(v), "label": v.label,
              "init_cos_to_pooled": distance_from_pooled(model, s)}
    evals, eval_s, eval_cpu = [{"epoch": 0, **evaluate(model, s, n_boot=0)}], [0.0], [0.0]
    torch.manual_seed(v.seed)
    task = StageBTask(weights=losses.StageBWeights(), weights_by="meaning", captions=args.captions,
                      backbone=model, bank=s.bank, manifest=s.manifests.stage_b,
                      n_classes=len(s.base.classes))
    cfg = TrainConfig(epochs=v.epochs, batch_size=v.batch_size, lr=args.lr,
                      optimizer="adam", weight_decay=0.0, grad_clip=1.0, warmup_steps=0,
                      schedule=args.schedule, seed=v.seed, checkpoint_every_s=1e9,
                      bf16=args.bf16)

    def on_epoch(epoch: int) -> None:
        tic, cpu = time.perf_counter(), time.process_time()
        evals.append({"epoch": epoch, **evaluate(model, s, n_boot=0)})
        eval_s[0] += time.perf_counter() - tic
        eval_cpu[0] += time.process_time() - cpu
        e = evals[-1]
        print(f"  {v.label} epoch {epoch:3d}: 3A-o {e['3A-o']:5.1f} 3A-c {e['3A-c']:5.1f} "
              f"oc {e['oc']:5.1f} 1A {e['1A']:5.1f} cos audio {e['audio_order_cos']:.4f} "
              f"text {e['text_order_cos']:.4f}", flush=True)

    spe = task.n_train // v.batch_size
    hook = EvalHook(task, steps_per_epoch=spe, every=args.eval_every, on_epoch=on_epoch)
    tic, cpu = time.perf_counter(), time.process_time()
    result = fit(task=hook, model=model, config=cfg, out_dir=out, device=s.device,
                 params=groups(model, args.lr, v.order_lr, v.text_lr), progress=False)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    last = evaluate(model, s, n_boot=args.n_boot)
    best_head = load_checkpoint_head(out / "best.pt")
    model.load_head_state_dict(best_head)
    best_epoch = min(result.history, key=lambda h: h["val_loss"])["epoch"]
    first = lambda key, at: next((e["epoch"] for e in evals if e[key] > at), None)  # noqa: E731
    timings = result.timings
    record.update(
        steps_per_epoch=spe, steps=result.steps, history=result.history, evals=evals,
        final=last, best_epoch=best_epoch, best=evaluate(model, s, n_boot=0),
        epoch_3Ao_75=first("3A-o", 75.0), epoch_3Ac_80=first("3A-c", 80.0),
        stage_b_wall_s=wall - eval_s[0], stage_b_cpu_s=cpu - eval_cpu[0], eval_s=eval_s[0],
        train_s_per_epoch=timings["train steps"] / v.epochs,
        val_s_per_epoch=(timings["validation"] - eval_s[0]) / v.epochs)
    return record, best_head


@dataclass
class Candidate:
    """A trained configuration: its setup and the head state of its ``best.pt``."""

    variant: Variant
    setup: Setup
    head: dict


def validation_score(c: Candidate, items: selection.ValidationItems) -> float:
    """What the sweep maximizes: 3A-c of the kept model on the validation items, 3A-o / 1000
    breaking ties (``selection.choose`` hands the scorer validation items only)."""
    model = fresh_model(c.variant, c.setup)
    model.load_head_state_dict(c.head)
    model.eval()
    inputs = selection.zste_inputs(model, c.setup.bank, items, list(c.setup.base.classes))
    got = scores(model, c.setup, inputs, items.rows, n_boot=0)
    return got["3A-c"] + got["3A-o"] / 1000


def choose_and_test(candidates: dict[str, Candidate], args) -> dict:
    """Choose on validation (``selection.choose``), then score the chosen setting on the
    held-out test pairs once."""
    setups = list({id(c.setup): c.setup for c in candidates.values()}.values())
    items = setups[0].validation
    for other in setups[1:]:  # validation rows do not depend on train_repeats (own rng stream)
        if not other.validation.rows[["clip_i", "clip_j"]].equals(items.rows[["clip_i", "clip_j"]]):
            raise SystemExit("the setups' validation rows differ: cannot compare them")
    choice = selection.choose(candidates, score=validation_score, items=items)
    c = choice.value
    model = fresh_model(c.variant, c.setup)
    model.load_head_state_dict(c.head)
    test = test_once(model, c.setup, n_boot=args.n_boot)
    print(f"chosen on validation: {choice.name} (score {choice.scores[choice.name]:.3f}); on the "
          f"test pairs, once: 3A-c {test['3A-c']:.1f} {test['ci']['3A-c']}, "
          f"3A-o {test['3A-o']:.1f}, "
          f"1A {test['1A']:.1f}, 3B {test['3B']:.1f}", flush=True)
    return {"label": choice.name, "validation_scores": choice.scores, "test": test}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    tmp = None if args.work_dir else tempfile.mkdtemp(prefix="order_head_")
    work = Path(args.work_dir or tmp).resolve()
    figures = {"args": vars(args), "machine": machine_info(device), "records": []}
    print(describe(figures["machine"]), flush=True)
    try:
        setups, candidates = {}, {}
        runs = work / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        heads_a = {}
        for n, v in enumerate(variants(args)):
            if v.train_repeats not in setups:
                s = setups[v.train_repeats] = setup(args, work, device, v.train_repeats)
                figures.setdefault("setup", {})[v.train_repeats] = s.info
                print(f"setup (train_repeats {v.train_repeats}): data {s.info['data_s']:.1f} s, "
                      f"pretraining {s.info['pretrain_s']:.1f} s (reused: "
                      f"{s.info['pretrain_reused']}), cache {s.info['cache_s']:.1f} s; zero-shot "
                      f"top-1 on training singles {s.info['zero_shot_train_top1']:.1f} %; "
                      f"{s.info['frames_per_double']} frames per double; rows "
                      f"{s.info['rows']['stage_b']}", flush=True)
            s = setups[v.train_repeats]
            head = None
            if v.start == "AB":
                key = (v.up_init, v.seed, v.train_repeats)
                if key not in heads_a:
                    heads_a[key] = stage_a(v, s, args, runs / f"A-{n}")
                    print(f"  stage A for {v.label}: {heads_a[key]['seconds']:.1f} s", flush=True)
                head = copy.deepcopy(heads_a[key]["head"])
            record, best_head = run_variant(v, s, args, runs / f"B-{n}", head)
            candidates[v.label] = Candidate(v, s, best_head)
            if v.start == "AB":
                record["stage_a_s"] = heads_a[key]["seconds"]
            figures["records"].append(record)
            print(f"{v.label}: stage B {record['stage_b_wall_s']:.1f} s wall, "
                  f"{record['stage_b_cpu_s']:.1f} s CPU ({record['steps']} steps), "
                  f"evaluations {record['eval_s']:.1f} s", flush=True)
        print_table(figures["records"])
        figures["chosen"] = choose_and_test(candidates, args)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.out, figures)
    return figures


if __name__ == "__main__":
    main()
