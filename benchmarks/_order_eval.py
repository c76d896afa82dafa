"""Measurements of ``order_head.py`` (SPEC §4): ZSTE figures of a live model on the
validation items (every score a choice may read) or, once, on the test pairs; order cosines,
distance from the pooled head, the zero-shot gate figure; the evaluation hook; the table."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from teminal.eval import evaluate as evaluation, selection, zste
from teminal.data.clips import audio_key
from teminal.data.vocabulary import FORWARD
from teminal.features import embed_audio, embed_texts
from teminal.models.heads import time_pool
from teminal.eval.tasks import ZsteTemplates

if TYPE_CHECKING:
    from order_head import Setup

TASKS = ("1A", "3A", "3A-o", "3A-c", "3B")
CLASS_PROMPT = "the sound of {x}"  # DataParams.caption_class

@torch.no_grad()
def zero_shot_top1(model, bank, cache, manifests, base, device) -> float:
    """SPEC §6 gate figure: zero-shot top-1 (%) on the pretraining singles (split train)."""
    singles = manifests.singles[manifests.singles["split"] == "train"]
    z_a = embed_audio(model, bank.singles, [audio_key("single", c) for c in singles["clip"]])
    z_c = embed_texts(model, cache, [CLASS_PROMPT.format(x=c) for c in base.classes], device=device)
    pred = (z_a @ z_c.T).argmax(1).cpu().numpy()
    return float(100 * (pred == singles["target"].to_numpy()).mean())


@torch.no_grad()
def evaluate(model, s: Setup, *, n_boot: int) -> dict:
    """3A-o, 3A-c, order-only consistency ``oc``, 1A, 3A, 3B (%) on the validation items."""
    model.eval()
    inputs = selection.zste_inputs(model, s.bank, s.validation, list(s.base.classes))
    return scores(model, s, inputs, s.validation.rows, n_boot=n_boot)


@torch.no_grad()
def test_once(model, s: Setup, *, n_boot: int) -> dict:
    """The same figures on the held-out test pairs: for the chosen setting only, after the
    choice (module docstring)."""
    model.eval()
    inputs = evaluation.zste_inputs(model, s.bank, s.manifests, list(s.base.classes), split="test")
    rows, _ = evaluation.eval_rows(s.manifests, "test")
    return scores(model, s, inputs, rows, n_boot=n_boot)


def scores(model, s: Setup, inputs: zste.ZsteInputs, rows, *, n_boot: int) -> dict:
    """``TASKS`` (+ intervals when ``n_boot`` > 0), ``oc`` and the order cosines of ``inputs``."""
    res = zste.evaluate(inputs, lambda texts: embed_texts(model, s.cache, texts, device=s.device),
                        tasks=TASKS, n_boot=n_boot)
    out = {t: float(v) for t, v in zip(res.table.task, res.table.value)}
    if n_boot > 0:
        out["ci"] = {t: [float(lo), float(hi)] for t, lo, hi in
                     zip(res.table.task, res.table.ci_low, res.table.ci_high)}
    score = dict(zip(res.items["3A-o"].key, res.items["3A-o"].score))  # audio key → credit
    pairs = {frozenset((a, b)): score[a] * score[b]
             for a, b in zip(inputs.seq_keys, inputs.rev_keys)}
    out["oc"] = float(100 * np.mean(list(pairs.values())))
    return out | order_cosines(model, s, rows, inputs)


def order_cosines(model, s: Setup, rows, inputs) -> dict:
    """How alike the two orders look to each side: mean cos(z_a(a_i⊕a_j), z_a(a_j⊕a_i)) and
    mean cos(z_c("x_i before x_j"), z_c("x_j before x_i")) over ``rows`` (1 = blind)."""
    cos = torch.nn.functional.cosine_similarity
    names, before = list(s.base.classes), ZsteTemplates().before
    fw = [before.format(x=names[i], y=names[j]) for i, j in zip(rows["i"], rows["j"])]
    bw = [before.format(x=names[j], y=names[i]) for i, j in zip(rows["i"], rows["j"])]
    z_c = embed_texts(model, s.cache, fw + bw, device=s.device)  # (2P, d)
    return {"audio_order_cos": float(cos(inputs.seq_audio, inputs.rev_audio).mean()),
            "text_order_cos": float(cos(z_c[: len(fw)], z_c[len(fw):]).mean())}


def distance_from_pooled(model, s: Setup) -> float:
    """Mean cosine between the order head's and the pooled head's z_a on the validation doubles
    (1.0 exactly when the order module's output is zero)."""
    head = model.audio_head_module
    val = s.validation.rows
    rows = s.bank.pairs.rows(FORWARD.keys(val))
    with torch.no_grad():
        feats = s.bank.pairs.take(rows)
        z_order = head(feats)  # (N, d)
        z_pooled = head.pooled.forward_pooled(time_pool(feats.frames))  # (N, d)
    return float(torch.nn.functional.cosine_similarity(z_order, z_pooled).mean())


class EvalHook:
    """A ``training.fit.StageTask`` forwarding to ``task``; at the first validation batch after every
    ``every``-th epoch's training steps it calls ``on_epoch(epoch)`` (model in eval mode)."""

    def __init__(self, task, *, steps_per_epoch: int, every: int, on_epoch) -> None:
        if task.n_val < 2:
            raise ValueError("the evaluation hook needs ≥ 2 validation rows (val_fraction > 0)")
        self.task, self.spe, self.every, self.on_epoch = task, steps_per_epoch, every, on_epoch
        self.n_train, self.n_val = task.n_train, task.n_val
        self.steps, self.seen = 0, 0

    def generators(self):
        return self.task.generators()

    def loss(self, rows, *, split):
        if split == "train":
            self.steps += 1
        elif self.steps // self.spe > self.seen:
            self.seen = self.steps // self.spe
            if self.seen % self.every == 0:
                self.on_epoch(self.seen)
        return self.task.loss(rows, split=split)



def print_table(records: list[dict]) -> None:
    cols = ("steps", "s/ep", "ep>75", "ep≥80c", "3A-o", "3A-c", "oc", "1A", "3B", "best", "3A-c*")
    print(f"{'configuration (validation)':52s} " + " ".join(f"{c:>5s}" for c in cols))
    for r in records:
        f, none = r["final"], lambda x: "-" if x is None else str(x)  # noqa: E731
        print(f"{r['label']:52s} {r['steps']:5d} {r['train_s_per_epoch']:5.2f} "
              f"{none(r['epoch_3Ao_75']):>5s} {none(r['epoch_3Ac_80']):>5s} {f['3A-o']:5.1f} "
              f"{f['3A-c']:5.1f} {f['oc']:5.1f} {f['1A']:5.1f} {f['3B']:5.1f} "
              f"{r['best_epoch']:5d} {r['best']['3A-c']:5.1f}")
    print("s/ep: train seconds per epoch; ep>75: first evaluated epoch with 3A-o > 75 %; "
          "ep≥80c: first with 3A-c > 80 %; 3A-o … 3B: after the last epoch; best: epoch of "
          "best.pt (lowest val loss, what the pipeline keeps), 3A-c*: its 3A-c")
