"""Binding benchmark (issue 23): does an order-aware row read "before" and "after" both ways?

Library only, on ``order_head.py``'s setup (embedded world, ``pairing: folds``, the pretrained
tiny backbone, the trunk cache; ``--work-dir`` reuses them). Per variant and seed: stage A (all
weights 1) and stage B (``StageBTask``, all α/β 1, weights by meaning, the order-aware head,
batch / epochs / clip draws as the pipeline's order-head row) with ``--mirror-shares``: ``none``
= the paraphrase captions as drawn (``para_f/r``, a third mirror-worded), a number = that share
of sequential samples captioned mirror-worded, redrawn each step (``stage_b.mirror_share``,
``BINDING_FAMILY``).

Choice (SPEC §4, ``teminal.eval.selection``): each variant's kept model (``best.pt``) is scored on
the **validation** pairs under the **validation phrasings** (``VALIDATION_FAMILY``, one
template per word order) — the score is the mean over seeds of the *worse* word order's 3A-o —
and only then are all variants scored once on the held-out test pairs: the default prompts
(1A, 3A-o, 3A-c), the held-out family template by template (3A-o, 3A-c, 3A-a, 5A, both word
orders) and the trained templates. The held-out family and the test pairs reach no choice.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/binding.py --work-dir benchmarks/out/oh \\
        --mirror-shares none,0.5 --seeds 0,1,2 --out benchmarks/out/binding.json
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import order_head as oh  # noqa: E402
from _common import write_json  # noqa: E402

from teminal.eval import evaluate as evaluation, selection, zste
from teminal import losses  # noqa: E402
from teminal.training.checkpoints import load_checkpoint_head  # noqa: E402
from teminal.training.config import TrainConfig  # noqa: E402
from teminal.training.fit import fit  # noqa: E402
from teminal.data.captions import HELDOUT_FAMILY, VALIDATION_FAMILY  # noqa: E402
from teminal.features import embed_texts  # noqa: E402
from teminal.training.stages import StageBTask  # noqa: E402

TEST_TASKS = ("1A", "3A", "3A-o", "3A-c", "3B")
PHRASED = ("3A", "3A-o", "3A-c", "3A-a", "5A")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", required=True)
    p.add_argument("--mirror-shares", default="none,0.5", help="comma list: none or a share")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-repeats", type=int, default=2)
    p.add_argument("--text-lrs", default="0", help="comma list: text head lr (0 = --lr)")
    p.add_argument("--out", default="")
    args, rest = p.parse_known_args(argv)
    args.base = oh.parse_args(["--work-dir", args.work_dir, "--captions", "paraphrase",
                               "--stage-a-batch-size", "64", *rest])
    return args


def share(text: str) -> float | None:
    return None if text.strip() == "none" else float(text)


def train_b(model, s: oh.Setup, base, *, share_: float | None, seed: int, epochs: int,
            batch: int, text_lr: float, out: Path) -> dict:
    """Stage B with the order-aware head; the head state of ``best.pt``."""
    torch.manual_seed(seed)
    task = StageBTask(weights=losses.StageBWeights(), weights_by="meaning", captions="paraphrase",
                      mirror_share=share_, seed=seed, backbone=model, bank=s.bank,
                      manifest=s.manifests.stage_b, n_classes=len(s.base.classes))
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=base.lr, optimizer="adam",
                      weight_decay=0.0, grad_clip=1.0, schedule=base.schedule, warmup_steps=0,
                      seed=seed,
                      checkpoint_every_s=1e9, bf16=base.bf16)
    fit(task=task, model=model, config=cfg, out_dir=out, device=s.device, progress=False,
        params=oh.groups(model, base.lr, base.lr, text_lr))
    return load_checkpoint_head(out / "best.pt")


def per_template(model, s: oh.Setup, inputs, family, *, tasks=PHRASED) -> dict:
    """{task: {template: %}} under ``family`` (``evaluate.phrasing_table``)."""
    embed = lambda texts: embed_texts(model, s.cache, texts, device=s.device)  # noqa: E731
    res = zste.evaluate_phrasings(inputs, embed, family=family, tasks=tasks, n_boot=0)
    table = evaluation.phrasing_table(res, family)
    out = {}
    for r in table.itertuples():
        out.setdefault(r.task, {})[r.template] = round(float(r.value), 2)
    return out


@torch.no_grad()
def validation_phrasings(model, s: oh.Setup, items: selection.ValidationItems) -> dict:
    model.eval()
    inputs = selection.zste_inputs(model, s.bank, items, list(s.base.classes))
    return per_template(model, s, inputs, VALIDATION_FAMILY, tasks=("3A-o", "3A-c"))


@torch.no_grad()
def test_once(model, s: oh.Setup) -> dict:
    model.eval()
    inputs = evaluation.zste_inputs(model, s.bank, s.manifests, list(s.base.classes),
                                    split="test")
    embed = lambda texts: embed_texts(model, s.cache, texts, device=s.device)  # noqa: E731
    res = zste.evaluate(inputs, embed, tasks=TEST_TASKS, n_boot=0)
    trained = evaluation.trained_phrasings(inputs, embed, seed=0)
    return {"default": {t: round(float(v), 2) for t, v in zip(res.table.task, res.table.value)},
            "heldout": per_template(model, s, inputs, HELDOUT_FAMILY),
            "trained": {t: dict(zip(g.template, g.value.round(2)))
                        for t, g in trained.groupby("task")}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    base = args.base
    torch.set_num_threads(base.threads)
    work = Path(args.work_dir).resolve()
    s = oh.setup(base, work, torch.device("cpu"), args.train_repeats)
    print(f"setup: pretrain {s.info['pretrain_s']:.0f} s, cache {s.info['cache_s']:.0f} s", flush=True)
    runs = work / "runs" / f"binding-{time.strftime('%Y%m%d-%H%M%S')}"
    seeds = [int(x) for x in args.seeds.split(",")]
    variants = [(sh, float(t)) for sh in args.mirror_shares.split(",")
                for t in args.text_lrs.split(",")]
    figures = {"args": {k: v for k, v in vars(args).items() if k != "base"}, "records": []}
    heads_a, kept = {}, {}
    for seed in seeds:
        v = oh.Variant("AB", args.batch_size, args.epochs, args.train_repeats, base.lr, 0.0, 0.0,
                       seed)
        tic = time.perf_counter()
        heads_a[seed] = oh.stage_a(v, s, base, runs / f"A-{seed}")["head"]
        print(f"stage A seed {seed}: {time.perf_counter() - tic:.0f} s", flush=True)
        for sh, tlr in variants:
            model = oh.fresh_model(v, s)
            model.load_head_state_dict(copy.deepcopy(heads_a[seed]))
            tic = time.perf_counter()
            head = train_b(model, s, base, share_=share(sh), seed=seed, epochs=args.epochs,
                           batch=args.batch_size, text_lr=tlr,
                           out=runs / f"B-{sh}-{tlr:g}-{seed}")
            model.load_head_state_dict(head)
            label = f"share={sh} tlr={tlr:g}"
            kept.setdefault(label, []).append(model)
            val = validation_phrasings(model, s, s.validation)
            rec = {"label": label, "seed": seed, "train_s": time.perf_counter() - tic,
                   "validation": val}
            figures["records"].append(rec)
            print(f"{label} seed {seed}: {rec['train_s']:.0f} s; validation 3A-o "
                  f"{val.get('3A-o')}", flush=True)

    def score(models, items) -> float:  # mean over seeds of the worse word order's 3A-o
        return float(np.mean([min(validation_phrasings(m, s, items)["3A-o"].values())
                              for m in models]))

    choice = selection.choose(kept, score=score, items=s.validation)
    figures["chosen"] = {"label": choice.name, "validation_scores": choice.scores}
    print(f"chosen on validation phrasings: {choice.name} {choice.scores}", flush=True)
    pre = oh.TinyClap.load(s.model_path, audio_head="order")
    figures["pretrained_test"] = test_once(pre, s)
    figures["test"] = {label: [test_once(m, s) for m in models] for label, models in kept.items()}
    for label, tests in figures["test"].items():
        print(label, "test (once, after the choice):", flush=True)
        for t in tests:
            print("  ", t["default"], t["heldout"].get("3A-o"), t["heldout"].get("5A"), flush=True)
    if args.out:
        write_json(args.out, figures)
    return figures


if __name__ == "__main__":
    main()
