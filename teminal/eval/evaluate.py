"""Feed ZSTE (SPEC §4), zero-shot classification and the level/duration probe from a run's
manifests and feature bank. Explicit arguments only; the notebook glue is ``teminal.run``.

Everything is computed from the feature bank (each unique clip through the frozen trunk once)
and one text pass over the unique prompts; the heads run in large batches without gradients.
Evaluation sets are manifest splits: ``test`` (held-out class pairs, held-out clips) and
``seen`` (training class pairs, held-out clips); Task 1 reads the ``test`` singles. 3C's
three-event audios (:mod:`teminal.eval.three`) are in no manifest: their trunk features go
through the same trunk cache (:func:`three_events`), keyed ``seq3|x|y|z``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from teminal.audio import Recipe
from teminal.eval import probe, retrieval, three, zste
from teminal.data.captions import BINDING_FAMILY, HELDOUT_FAMILY, word_order
from teminal.data.clips import audio_key
from teminal.data.manifest_files import Manifests
from teminal.data.vocabulary import STAGE_A, STAGE_B
from teminal.features import REQUEST_KEYS, FeatureBank, embed_audio, embed_texts
from teminal.models.base import AudioFeatures, Backbone
from teminal.eval.scoring import ZsteResult
from teminal.eval.tasks import ALL_TASKS, TASKS, family_phrasings

EVAL_SPLITS = ("test", "seen")
TASKS_SEEN = tuple(t for t in TASKS if t != "1A")  # 1A reads the same singles on both sets


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


def composite_keys(rows: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """[P] audio keys of each row's forward ``a_i ⊕ a_j``, reversed ``a_j ⊕ a_i`` and overlay
    (``vocabulary.STAGE_B``; ZSTE's ``seq``, ``rev`` and ``mix``, SPEC §4)."""
    forward, reversed_, overlay = (c.keys(rows) for c in STAGE_B)
    return forward, reversed_, overlay


def rows_inputs(rows: pd.DataFrame, singles: pd.DataFrame, class_names: list[str], *,
                embed_singles: Callable[[list[str]], object],
                embed_pairs: Callable[[list[str]], object], **extra) -> zste.ZsteInputs:
    """ZSTE inputs (SPEC §4) of stage-B manifest ``rows`` and Task-1 ``singles``: audio keys
    [P] / [M] embedded by ``embed_pairs`` / ``embed_singles`` (keys → [n, d]); ``extra``:
    further ``ZsteInputs`` fields (the 3C triples)."""
    seq, rev, mix = composite_keys(rows)
    single_keys = [audio_key("single", c) for c in singles["clip"]]
    return zste.ZsteInputs(
        class_names=list(class_names), single_audio=embed_singles(single_keys),
        single_labels=singles["target"].to_numpy().astype(np.int64), single_keys=single_keys,
        pairs=rows[["i", "j"]].to_numpy().astype(np.int64), seq_audio=embed_pairs(seq),
        rev_audio=embed_pairs(rev), mix_audio=embed_pairs(mix), seq_keys=seq, rev_keys=rev,
        mix_keys=mix, **extra)


def zste_inputs(backbone: Backbone, bank: FeatureBank, manifests: Manifests,
                class_names: list[str], *, split: str = "test") -> zste.ZsteInputs:
    """Embeddings and identities of the singles and of each evaluation row's three audios."""
    rows, clips = eval_rows(manifests, split)
    return rows_inputs(rows, clips, class_names,
                       embed_singles=lambda keys: embed_audio(backbone, bank.singles, keys),
                       embed_pairs=lambda keys: embed_audio(backbone, bank.pairs, keys))


def text_embedder(backbone: Backbone, cache, device: torch.device) -> Callable[[list[str]], torch.Tensor]:
    """texts → z_c [U, d] through the cached text trunk and the text head."""
    return lambda texts: embed_texts(backbone, cache, list(texts), device=device)


def three_events(backbone: Backbone, cache, manifests: Manifests, class_names: list[str], *,
                 read: Callable[[str], np.ndarray], recipe: Recipe, n_triples: int, seed: int,
                 template: str = three.TRIPLE_TEMPLATE) -> tuple[three.TripleItems, torch.Tensor] | None:
    """3C items of the held-out pairs (SPEC §4: ``n_triples`` class triples whose three pairs
    are all held out, drawn with ``seed``; their clips those of the pairs' rows) and their audio
    embeddings [6·n_triples, d]: each audio rendered from the base clips ``read(filename)`` with
    ``recipe``, through ``cache``'s trunk (computed once, kept on disk) and the audio head.
    None when ``n_triples`` is 0 or no triple is held out."""
    if n_triples == 0:
        return None
    rows, _ = eval_rows(manifests, "test")
    triples = three.held_out_triples(rows[["i", "j"]].to_numpy(), len(class_names))
    if len(triples) == 0:
        return None
    triples = three.pick_triples(triples, n_triples, seed=seed)
    items = three.triple_items(triples, three.triple_clips(rows, triples), list(class_names),
                               template=template)
    keys, out = list(items.key), []
    render = lambda key: three.render_triple(key, read, recipe)  # noqa: E731
    with torch.no_grad():
        for s in range(0, len(keys), REQUEST_KEYS):
            feats = cache.audio(keys[s:s + REQUEST_KEYS], render, frames=True)  # frames cached
            if not backbone.needs_frames:
                feats = AudioFeatures(pooled=feats.pooled)
            out.append(backbone.audio_head(feats))  # (b, d)
    return items, torch.cat(out)


def zste_sets(backbone: Backbone, bank: FeatureBank, cache, manifests: Manifests,
              class_names: list[str], *, device: torch.device, n_boot: int, seed: int,
              seen: bool = True, heldout: bool = True,
              triples: tuple[three.TripleItems, torch.Tensor] | None = None,
              ) -> dict[str, ZsteResult]:
    """``zste`` (held-out pairs; with ``triples`` — :func:`three_events` — also 3C),
    ``zste_seen`` (seen combinations, when the manifests have them) and ``zste_heldout``
    (held-out phrasings on the held-out pairs), SPEC §4."""
    backbone.eval()
    embed = text_embedder(backbone, cache, device)
    test = zste_inputs(backbone, bank, manifests, class_names, split="test")
    tasks = TASKS
    if triples is not None:
        test = dataclasses.replace(test, triples=triples[0], triple_audio=triples[1])
        tasks = ALL_TASKS
    out = {"zste": zste.evaluate(test, embed, tasks=tasks, n_boot=n_boot, seed=seed)}
    if seen and (manifests.stage_b["split"] == "seen").any():
        inputs = zste_inputs(backbone, bank, manifests, class_names, split="seen")
        out["zste_seen"] = zste.evaluate(inputs, embed, tasks=TASKS_SEEN, n_boot=n_boot, seed=seed)
    if heldout:
        out["zste_heldout"] = zste.evaluate_phrasings(test, embed, family=HELDOUT_FAMILY,
                                                      n_boot=n_boot, seed=seed)
    return out


def phrasing_table(result: ZsteResult, family=HELDOUT_FAMILY) -> pd.DataFrame:
    """Held-out phrasings one by one: the mean score (%) of each task's items under each
    template it reads (3A-o / 3A-c / 3A-a: the sequence template, with its ``word_order``; 3B:
    the overlay one; 5A: the position one). A model that learned "first named = first heard" rather than the meaning of
    "before" gets one sequence template right and its mirror-worded one wrong."""
    combos = family_phrasings(family)
    rows = []
    for task, field in PHRASING_FIELDS.items():
        items = result.items.get(task)
        if items is None or items.empty:
            continue
        template = items["phrasing"].map(lambda k: getattr(combos[int(k)], field))
        for text, score in items.groupby(template)["score"]:
            order = word_order(text) if field == "sequence" else ""
            rows.append({"task": task, "template": text, "order": order,
                         "value": 100 * score.mean(), "items": len(score)})
    return pd.DataFrame(rows)


def with_family(table: pd.DataFrame) -> pd.DataFrame:
    """A ``phrasing_table`` with ``family`` and ``order`` columns; a table of a run evaluated
    before issue 23 (held-out templates only, no such columns) gets ``"held-out"`` and each
    sequence template's ``word_order``."""
    out = table.copy()
    if "family" not in out:
        out["family"] = "held-out"
    if "order" not in out:
        seq = out["task"].map(PHRASING_FIELDS).eq("sequence")
        out["order"] = [word_order(t) if s else "" for t, s in zip(out["template"], seq)]
    return out


PHRASING_FIELDS = {"3A-o": "sequence", "3A-c": "sequence", "3A-a": "sequence", "3B": "overlay",
                   "5A": "position"}
"""The template field each per-template task reads (``phrasing_table``)."""
TRAINED_TASKS = ("3A", "3A-o", "3A-c", "3A-a")
"""Order tasks scored template by template under the training phrasings (issue 23)."""


def phrasing_tables(backbone: Backbone, bank: FeatureBank, cache, manifests: Manifests,
                    class_names: list[str], heldout: ZsteResult, *, device: torch.device,
                    seed: int) -> pd.DataFrame:
    """Every order task template by template on the held-out pairs (issue 23): the held-out
    family's (``heldout``, ``family="held-out"``) and the training phrasings'
    (``trained_phrasings``), each with its ``word_order``."""
    test = zste_inputs(backbone, bank, manifests, class_names, split="test")
    trained = trained_phrasings(test, text_embedder(backbone, cache, device), seed=seed)
    return pd.concat([phrasing_table(heldout).assign(family="held-out"), trained],
                     ignore_index=True)


def trained_phrasings(inputs: zste.ZsteInputs, embed, *, seed: int,
                      family=BINDING_FAMILY) -> pd.DataFrame:
    """The order tasks on ``inputs`` (the held-out pairs) under every *training* sequence
    phrasing, template by template, both word orders (``phrasing_table``; column ``family`` =
    ``"trained"``): beside the held-out family's table it separates "learned the templates"
    from "learned before and after" (issue 23). No intervals (``n_boot=0``): a diagnostic."""
    result = zste.evaluate_phrasings(inputs, embed, family=family, tasks=TRAINED_TASKS,
                                     n_boot=0, seed=seed)
    return phrasing_table(result, family).assign(family="trained")


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
               seed: int, features=probe.CUE_FEATURES) -> tuple[dict[str, ZsteResult], pd.DataFrame]:
    """The level/duration probe (SPEC §4, :mod:`teminal.eval.probe`): one probe fitted on the
    training rows' stage-A singles vs doubles, one on their stage-B sequential clips vs
    overlays, on the statistics ``features``; their decisions scored on ``A-sd``, ``3B`` and ``3W`` of each evaluation set
    (``zste``: held-out pairs, ``zste_seen``). Also the AUC of every statistic alone per task
    (``A-sd``: double vs single; ``while``: overlay vs sequential, the probe of 3B and 3W) and
    split: columns ``task, split, feature, auc, decision`` (the statistic is in ``features``)."""
    fitted, aucs = {}, []
    for task, keys_of in (("A-sd", _single_double_keys), ("while", _while_keys)):
        neg, pos = keys_of(manifests, "train")
        stats = probe.cue_stats(neg + pos, render, sample_rate)
        is_pos = np.r_[np.zeros(len(neg)), np.ones(len(pos))].astype(bool)
        fitted[task] = probe.fit_probe(stats, is_pos, features=features)
        aucs += _auc_rows(task, "train", stats, is_pos, features)
    out = {}
    sb = manifests.stage_b
    for split, name in (("test", "zste"), ("seen", "zste_seen")):
        if not (sb["split"] == split).any():
            continue
        rows, _ = eval_rows(manifests, split)
        keys = composite_keys(rows)  # forward, reversed, overlay
        seq, rev, mix = (probe.cue_stats(k, render, sample_rate) for k in keys)
        whiles = probe.while_tasks(
            fitted["while"], class_names=list(class_names), pairs=rows[["i", "j"]].to_numpy(),
            seq_keys=keys[0], rev_keys=keys[1], mix_keys=keys[2], seq_stats=seq, rev_stats=rev,
            mix_stats=mix, n_boot=n_boot, seed=seed)
        sa = manifests.stage_a[manifests.stage_a["split"] == split].reset_index(drop=True)
        a_keys = [c.keys(sa) for c in STAGE_A]  # single, double
        single, double = (probe.cue_stats(k, render, sample_rate) for k in a_keys)
        single_double = probe.single_double(
            fitted["A-sd"], pairs=sa[["i", "j"]].to_numpy(), single_keys=a_keys[0],
            double_keys=a_keys[1], single_stats=single, double_stats=double,
            n_boot=n_boot, seed=seed)
        out[name] = ZsteResult(table=pd.concat([single_double.table, whiles.table],
                                                    ignore_index=True),
                                    items={**single_double.items, **whiles.items})
        for task, (neg, pos) in (("A-sd", (single, double)), ("while", (np.r_[seq, rev], mix))):
            aucs += _auc_rows(task, split, np.r_[neg, pos],
                              np.r_[np.zeros(len(neg)), np.ones(len(pos))].astype(bool), features)
    return out, pd.DataFrame(aucs)


def _single_double_keys(manifests: Manifests, split: str) -> tuple[list[str], list[str]]:
    """Distinct stage-A singles (``span``) and doubles of ``split``: negatives, positives."""
    rows = manifests.stage_a[manifests.stage_a["split"] == split]
    single, double = (c.keys(rows) for c in STAGE_A)
    return sorted(set(single)), sorted(set(double))


def _while_keys(manifests: Manifests, split: str) -> tuple[list[str], list[str]]:
    """Distinct stage-B sequential clips (seq, rev) and overlays of ``split``."""
    seq, rev, mix = composite_keys(manifests.stage_b[manifests.stage_b["split"] == split])
    return sorted(set(seq) | set(rev)), sorted(set(mix))


def _auc_rows(task: str, split: str, stats: np.ndarray, is_pos: np.ndarray,
              features: Sequence[str]) -> list[dict]:
    return [{"task": task, "split": split, "feature": f, "auc": a, "decision": f in features}
            for f, a in probe.feature_aucs(stats, is_pos).items()]
