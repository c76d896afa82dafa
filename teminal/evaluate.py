"""Feed ZSTE (SPEC §4), zero-shot classification and the level/duration probe from a run's
manifests and feature bank. Explicit arguments only; the notebook glue is ``teminal.run``.

Everything is computed from the feature bank (each unique clip through the frozen trunk once)
and one text pass over the unique prompts; the heads run in large batches without gradients.
Evaluation sets are manifest splits: ``test`` (held-out class pairs, held-out clips) and
``seen`` (training class pairs, held-out clips); Task 1 reads the ``test`` singles.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import probe, retrieval, zste
from .data.captions import HELDOUT_FAMILY
from .data.clips import audio_key
from .data.pairs import Manifests
from .features import FeatureBank, embed_audio, embed_texts
from .models.base import Backbone

EVAL_SPLITS = ("test", "seen")
TASKS_SEEN = tuple(t for t in zste.TASKS if t != "1A")  # 1A reads the same singles on both sets


def eval_rows(manifests: Manifests, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stage-B rows of evaluation split ``split`` and the Task-1 singles (split ``test``)."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
    sb, singles = manifests.stage_b, manifests.singles
    rows = sb[sb["split"] == split].reset_index(drop=True)
    clips = singles[singles["split"] == "test"].reset_index(drop=True)
    if rows.empty or clips.empty:
        raise ValueError(f"the manifests have no {split!r} pair rows or no test singles to "
                         "evaluate on (pairing 'paper' has no 'seen' set)")
    return rows, clips


def composite_keys(rows: pd.DataFrame) -> dict[str, list[str]]:
    """Audio keys of each row's ``a_i ⊕ a_j`` (seq), ``a_j ⊕ a_i`` (rev), ``a_i ∧ a_j`` (mix)."""
    ci, cj = list(rows["clip_i"]), list(rows["clip_j"])
    return {"seq": [audio_key("seq", a, b) for a, b in zip(ci, cj)],
            "rev": [audio_key("seq", b, a) for a, b in zip(ci, cj)],
            "mix": [audio_key("mix", a, b) for a, b in zip(ci, cj)]}


def zste_inputs(backbone: Backbone, bank: FeatureBank, manifests: Manifests,
                class_names: list[str], *, split: str = "test") -> zste.ZsteInputs:
    """Embeddings and identities of the singles and of each evaluation row's three audios."""
    rows, clips = eval_rows(manifests, split)
    keys = composite_keys(rows)
    singles = [audio_key("single", c) for c in clips["clip"]]
    return zste.ZsteInputs(
        class_names=list(class_names),
        single_audio=embed_audio(backbone, bank.singles, singles),
        single_labels=clips["target"].to_numpy().astype(np.int64), single_keys=singles,
        pairs=rows[["i", "j"]].to_numpy().astype(np.int64),
        **{f"{k}_audio": embed_audio(backbone, bank.pairs, v) for k, v in keys.items()},
        **{f"{k}_keys": v for k, v in keys.items()})


def text_embedder(backbone: Backbone, cache, device: torch.device) -> Callable[[list[str]], torch.Tensor]:
    """texts → z_c [U, d] through the cached text trunk and the text head."""
    return lambda texts: embed_texts(backbone, cache, list(texts), device=device)


def zste_sets(backbone: Backbone, bank: FeatureBank, cache, manifests: Manifests,
              class_names: list[str], *, device: torch.device, n_boot: int, seed: int,
              seen: bool = True, heldout: bool = True) -> dict[str, zste.ZsteResult]:
    """``zste`` (held-out pairs), ``zste_seen`` (seen combinations, when the manifests have
    them) and ``zste_heldout`` (held-out phrasings on the held-out pairs), SPEC §4."""
    backbone.eval()
    embed = text_embedder(backbone, cache, device)
    test = zste_inputs(backbone, bank, manifests, class_names, split="test")
    out = {"zste": zste.evaluate(test, embed, n_boot=n_boot, seed=seed)}
    if seen and (manifests.stage_b["split"] == "seen").any():
        inputs = zste_inputs(backbone, bank, manifests, class_names, split="seen")
        out["zste_seen"] = zste.evaluate(inputs, embed, tasks=TASKS_SEEN, n_boot=n_boot, seed=seed)
    if heldout:
        out["zste_heldout"] = zste.evaluate_phrasings(test, embed, family=HELDOUT_FAMILY,
                                                      n_boot=n_boot, seed=seed)
    return out


def phrasing_table(result: zste.ZsteResult, family=HELDOUT_FAMILY) -> pd.DataFrame:
    """Held-out phrasings one by one: the mean score (%) of each task's items under each
    template it reads (3A-o / 3A-c: the sequence template; 3B: the overlay one; 5A: the
    position one). A model that learned "first named = first heard" rather than the meaning of
    "before" gets one sequence template right and its mirror-worded one wrong."""
    combos = zste.family_phrasings(family)
    which = {"3A-o": "sequence", "3A-c": "sequence", "3B": "overlay", "5A": "position"}
    rows = []
    for task, field in which.items():
        items = result.items.get(task)
        if items is None or items.empty:
            continue
        template = items["phrasing"].map(lambda k: getattr(combos[int(k)], field))
        for text, score in items.groupby(template)["score"]:
            rows.append({"task": task, "template": text, "value": 100 * score.mean(),
                         "items": len(score)})
    return pd.DataFrame(rows)


def zero_shot_table(backbone: Backbone, bank: FeatureBank, cache, manifests: Manifests,
                    class_names: list[str], *, device: torch.device,
                    prompt: str = retrieval.ZERO_SHOT_PROMPT) -> pd.DataFrame:
    """Zero-shot top-1 / top-5 accuracy (%) on the single clips of each split (paper Table 4)."""
    backbone.eval()
    class_text = embed_texts(backbone, cache, retrieval.zero_shot_prompts(class_names, prompt),
                             device=device)
    rows = []
    singles = manifests.singles
    for split in ("train", "val", "test"):
        part = singles[singles["split"] == split]
        if part.empty:
            continue
        audio = embed_audio(backbone, bank.singles, [audio_key("single", c) for c in part["clip"]])
        labels = part["target"].to_numpy()
        rows.append({"split": split, "clips": len(part),
                     "top1": 100 * retrieval.zero_shot_accuracy(audio, labels, class_text),
                     "top5": 100 * retrieval.zero_shot_topk_accuracy(
                         audio, labels, class_text, k=min(5, len(class_names))),
                     "chance_top1": 100 / len(class_names)})
    return pd.DataFrame(rows)


def probe_sets(manifests: Manifests, class_names: list[str], *,
               render: Callable[[str], np.ndarray], sample_rate: int, n_boot: int,
               seed: int) -> dict[str, zste.ZsteResult]:
    """The level/duration probe (SPEC §4): fit on the training rows' composites (sequential vs
    overlay), scored on 3A, 3A-o and 3B of each evaluation set."""
    sb = manifests.stage_b
    train = composite_keys(sb[sb["split"] == "train"].reset_index(drop=True))
    seqs = sorted(set(train["seq"]) | set(train["rev"]))
    mixes = sorted(set(train["mix"]))
    stats = probe.composite_stats(seqs + mixes, render, sample_rate)
    fitted = probe.fit_probe(stats, np.r_[np.zeros(len(seqs)), np.ones(len(mixes))].astype(bool))
    out = {}
    for split, name in (("test", "zste"), ("seen", "zste_seen")):
        if not (sb["split"] == split).any():
            continue
        rows, _ = eval_rows(manifests, split)
        keys = composite_keys(rows)
        out[name] = probe.probe_zste(
            fitted, class_names=list(class_names), pairs=rows[["i", "j"]].to_numpy(),
            **{f"{k}_keys": v for k, v in keys.items()},
            **{f"{k}_stats": probe.composite_stats(v, render, sample_rate) for k, v in keys.items()},
            n_boot=n_boot, seed=seed)
    return out
