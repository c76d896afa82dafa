"""Score any model on the items of a run (SPEC §4): every ZSTE table, the order scores in both
directions, 3C, zero-shot classification, retrieval and CompA-order when given.

Session-free: :func:`evaluate_any` takes a model (``embed_audio`` / ``embed_text`` / ``rule``,
:mod:`teminal.eval.models`), the run's items (:class:`EvalData`) and :class:`EvalOptions`.
Audio is rendered from the base clips at the model's own rate (composites are never stored,
SPEC §1) and embedded once per distinct audio key; every model is scored on the same items.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from teminal.eval import retrieval, zste
from teminal.audio import Recipe, read_audio
from teminal.data.captions import HELDOUT_FAMILY
from teminal.data.clips import ClipStore, audio_key, render
from teminal.data.vocabulary import STAGE_B, interleaved_keys
from teminal.eval.compa import CompaOrder, score_compa_order
from teminal.eval.three import (TRIPLE_TEMPLATE, TripleItems, held_out_triples, pick_triples,
                                render_triple, triple_clips, triple_items)
from teminal.eval.evaluate import rows_inputs
from teminal.eval.tasks import ALL_TASKS, TASKS


@dataclass(kw_only=True)
class EvalData:
    """What every model is scored on: a run's evaluation rows, singles and class names, and how
    its composites sound. ``store_at(rate)`` gives a clip store, ``recipe_at(rate)`` the recipe."""

    class_names: list[str]
    rows: dict[str, pd.DataFrame]  # "test" (held-out pairs), "seen": i, j, clip_i, clip_j
    singles: pd.DataFrame  # every single: clip, target, split
    store_at: Callable[[int], ClipStore]
    recipe_at: Callable[[int], Recipe]
    base_rate: int  # the base clips' rate (models that take any rate get this)
    triples: TripleItems | None = None  # 3C items, from the test rows


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """How to score (``teminal.run.params.EvaluateParams`` documents each)."""

    n_boot: int = 200
    seed: int = 0
    seen: bool = True
    heldout: bool = True
    batch: int = 64  # clips rendered and embedded per call
    captioned: retrieval.CaptionSet | None = None
    compa: CompaOrder | None = None


@dataclass(kw_only=True)
class ModelReport:
    """One model's figures. ``tables``: set → ZSTE table (``zste``, ``zste_seen``,
    ``zste_heldout``); ``items``: set → task → per-item frame."""

    name: str
    rule: object
    tables: dict[str, pd.DataFrame]
    items: dict[str, dict[str, pd.DataFrame]]
    zero_shot: pd.DataFrame
    retrieval: dict[str, float] = field(default_factory=dict)
    compa: pd.DataFrame | None = None

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``zste/<task>``, ``zero_shot/<split>/top1``, ``retrieval/…``,
        ``compa/<task>`` (percent)."""
        out = {f"{s}/{t}": float(v) for s, tab in self.tables.items()
               for t, v in zip(tab.task, tab.value)}
        out |= {f"zero_shot/{r.split}/top1": float(r.top1) for r in self.zero_shot.itertuples()}
        out |= {f"retrieval/{k}": 100 * v for k, v in self.retrieval.items()}
        if self.compa is not None:
            out |= {f"compa/{t}": float(v) for t, v in zip(self.compa.task, self.compa.value)}
        return out


def with_triples(data: EvalData, *, template: str = TRIPLE_TEMPLATE, max_triples: int = 0,
                 seed: int = 0) -> EvalData:
    """``data`` with 3C items from its held-out rows: all triples, or ``max_triples`` of them
    drawn with ``seed`` (:func:`teminal.eval.three.pick_triples`)."""
    test = data.rows["test"]
    triples = held_out_triples(test[["i", "j"]].to_numpy(), len(data.class_names))
    if max_triples > 0:
        triples = pick_triples(triples, max_triples, seed=seed)
    if len(triples) == 0:
        return data
    items = triple_items(triples, triple_clips(test, triples), data.class_names, template=template)
    return EvalData(**{**data.__dict__, "triples": items})


def _render(key: str, store: ClipStore, recipe: Recipe, keys3: set) -> np.ndarray:
    if key in keys3:  # a three-event audio
        return render_triple(key, store.__getitem__, recipe)
    return render(key, store, recipe)


def embed_keys(model, keys: list[str], data: EvalData, *, batch: int) -> dict[str, torch.Tensor]:
    """Each distinct audio key rendered at the model's rate and embedded: key → (d,)."""
    rate = getattr(model.rule, "sample_rate", None) or data.base_rate
    store, recipe = data.store_at(rate), data.recipe_at(rate)
    keys3 = set() if data.triples is None else set(data.triples.key)
    todo = list(dict.fromkeys(keys))
    out = {}
    for s in range(0, len(todo), batch):
        part = todo[s : s + batch]
        z = model.embed_audio([_render(k, store, recipe, keys3) for k in part], rate)  # (b, d)
        out.update(zip(part, z))
    return out


def _inputs(data: EvalData, split: str, z: dict, *, triples: bool) -> zste.ZsteInputs:
    test = data.singles[data.singles["split"] == "test"]
    stack = lambda ks: torch.stack([z[k] for k in ks])  # noqa: E731
    three = triples and data.triples is not None
    return rows_inputs(data.rows[split], test, data.class_names, embed_singles=stack,
                       embed_pairs=stack, triples=data.triples if three else None,
                       triple_audio=stack(list(data.triples.key)) if three else None)


def _all_keys(data: EvalData, splits: list[str]) -> list[str]:
    keys = [audio_key("single", c) for c in data.singles["clip"]]
    for split in splits:
        keys += interleaved_keys(data.rows[split], STAGE_B)
    return keys + ([] if data.triples is None else list(data.triples.key))


def evaluate_any(model, data: EvalData, options: EvalOptions) -> ModelReport:
    """Every figure of one model (module doc; SPEC §4)."""
    splits = ["test"] + (["seen"] if options.seen and "seen" in data.rows else [])
    z = embed_keys(model, _all_keys(data, splits), data, batch=options.batch)
    embed, o = model.embed_text, options
    test = _inputs(data, "test", z, triples=True)
    tasks = ALL_TASKS if data.triples is not None else TASKS
    sets = {"zste": zste.evaluate(test, embed, tasks=tasks, n_boot=o.n_boot, seed=o.seed)}
    if "seen" in splits:
        sets["zste_seen"] = zste.evaluate(_inputs(data, "seen", z, triples=False), embed,
                                          tasks=TASKS[1:], n_boot=o.n_boot, seed=o.seed)
    if o.heldout:
        sets["zste_heldout"] = zste.evaluate_phrasings(test, embed, family=HELDOUT_FAMILY,
                                                       n_boot=o.n_boot, seed=o.seed)
    report = ModelReport(name=model.name, rule=model.rule,
                         tables={k: r.table for k, r in sets.items()},
                         items={k: r.items for k, r in sets.items()},
                         zero_shot=zero_shot(model, data, z))
    if o.captioned is not None:
        report.retrieval = caption_retrieval(model, o.captioned)
    if o.compa is not None:
        report.compa = score_compa_order(model, o.compa, n_boot=o.n_boot, seed=o.seed)[0]
    return report


def zero_shot(model, data: EvalData, z: dict) -> pd.DataFrame:
    """Top-1 / top-5 (%) with ``"The sound of a {x}"`` on the singles of each split (Table 4)."""
    text = model.embed_text(retrieval.zero_shot_prompts(data.class_names))
    rows = []
    for split, part in data.singles.groupby("split", sort=False):
        audio = torch.stack([z[audio_key("single", c)] for c in part["clip"]])
        labels = part.target.to_numpy()
        rows.append({"split": split, "clips": len(part),
                     "top1": 100 * retrieval.zero_shot_accuracy(audio, labels, text),
                     "top5": 100 * retrieval.zero_shot_topk_accuracy(
                         audio, labels, text, k=min(5, len(data.class_names))),
                     "chance_top1": 100 / len(data.class_names)})
    return pd.DataFrame(rows)


def caption_retrieval(model, cs: retrieval.CaptionSet, *, batch: int = 16) -> dict[str, float]:
    """R@1/5/10 and mAP@10 both ways on a captioned set (Clotho / AudioCaps layout), [0, 1]."""
    rate = getattr(model.rule, "sample_rate", None) or 48000
    audio = torch.cat([model.embed_audio([read_audio(p, sample_rate=rate)
                                          for p in cs.audio_paths[s : s + batch]], rate)
                       for s in range(0, len(cs.audio_paths), batch)])
    text = torch.cat([model.embed_text(cs.captions[s : s + 256])
                      for s in range(0, len(cs.captions), 256)])
    return retrieval.retrieval_metrics(audio, text, cs.text_to_audio)


def eval_data(*, base, manifests, recipe_at: Callable[[int], Recipe]) -> EvalData:
    """The evaluation items of a run's ``manifests`` over ``base`` (a ``base_set.BaseSet``):
    stage-B rows of the ``test`` and ``seen`` splits, every single; clips read lazily."""
    sb = manifests.stage_b
    rows = {s: sb[sb["split"] == s].reset_index(drop=True) for s in ("test", "seen")
            if (sb["split"] == s).any()}
    if "test" not in rows:
        raise ValueError("the manifests have no 'test' rows (held-out pairs) to evaluate on")
    stores: dict[int, ClipStore] = {}
    store_at = lambda rate: stores.setdefault(rate, ClipStore(base, sample_rate=rate))  # noqa: E731
    return EvalData(class_names=list(base.classes), rows=rows,
                    singles=manifests.singles[["clip", "target", "split"]].reset_index(drop=True),
                    store_at=store_at, recipe_at=recipe_at, base_rate=int(base.sample_rate))
