"""ZSTE — zero-shot temporal evaluation (SPEC §4; paper B.4, Alg. 2-3).

Per item (:mod:`teminal.eval.prompts`): cosine similarity between the audio and its candidate
prompts, softmax over the candidates, top-k (SPEC §4). The softmax is monotone, so the ranking
is taken on the cosines.

**Ties.** Candidates whose cosine lies within ``tie_tol`` of the k-th best are tied; an item's
score is its *expected* score under a uniformly random tie break, computed exactly (e.g. a
correct caption tied with two others at the top scores 1/3). A constant model therefore
scores exactly the chance level, and the fixed position of correct captions in the candidate
lists cannot help. ``items[task].tied`` marks items whose outcome depended on a tie; their
``predicted`` lists every candidate that could be drawn, with ``(tie: r of n drawn)``.

**Items, de-duplication, 3A-c** (SPEC §4): order tasks ask about every sequential audio, the
``seq`` and the ``rev`` of each row; identical items (same audio, same candidate and correct
sets — e.g. the overlay items of rows (i, j) and (j, i)) are scored once. 3A-c is, per
unordered clip pair (``a_i ⊕ a_j`` and ``a_j ⊕ a_i`` of the same clips, counted once), the
probability that both are answered correctly in 3A: the product of the two expected credits
(independent tie breaks; chance 1/9).

**Intervals** (SPEC §4; :mod:`teminal.eval.intervals`): a multi-way cluster bootstrap over the
items' classes (every class one weight, an item the product of its classes' weights; clips
and pairs are nested in the classes and move with them; Task 1 draws classes with their
clips), turned into a Wilson interval with an effective sample size: no interval collapses to
a point when items disagree, nor at 0 or 100. ``n`` = items after de-duplication,
``n_clusters`` = unordered class pairs (clips for 1A).

**3W, balanced while** (SPEC §4): per unit — a pair's two sequential clips and its overlay —
½ · P(a sequential caption is chosen for a sequential clip, the mean of the two) + ½ · P(the
while caption is chosen for the overlay); the mean over units is the mean of the two shares, so
any constant answer (always "while", never "while") scores 50. It shows when 3B is bought
with 3A.

**Held-out phrasings** (SPEC §4): :func:`evaluate_phrasings` scores 3A, 3A-o, 3A-c, 3B, 3W and 5A
again under every combination of a phrasing family's templates (all in the item's cluster;
see :mod:`teminal.eval.prompts`). Metrics ``zste_heldout/<task>`` (``metrics(prefix=…)``).

Figures are percent; ``items`` scores are in [0, 1].

Where things live: inputs and the evaluation entry points here; items and prompts in
:mod:`teminal.eval.prompts`; the task list, templates, item containers and input checks in
:mod:`teminal.eval.tasks`; credit, per-item frames, chance levels and ``ZsteResult`` in
:mod:`teminal.eval.scoring`; intervals in :mod:`teminal.eval.intervals`. Import each from its
module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from teminal.eval.prompts import zste_items
from teminal.eval.scoring import (
    ZsteResult,
    balanced_frame,
    consistency_frame,
    gather_scores,
    result_from_frames,
    score_frame,
    topk_credit,
)
from teminal.eval.tasks import (
    BEFORE,
    ORDER_TASKS,
    TASKS,
    Phrasing,
    TaskItems,
    ZsteItems,
    ZsteTemplates,
    check_class_names,
    check_keys,
    check_pairs,
    default_phrasing,
    family_phrasings,
)

__all__ = ["PAPER_TABLE3", "PHRASING_TASKS", "ZsteInputs", "evaluate", "evaluate_phrasings",
           "score_items"]

PHRASING_TASKS = ("3A", "3A-o", "3A-c", "3B", "3W", "5A", *ORDER_TASKS)
"""Tasks scored again under a phrasing family (SPEC §4 "Held-out phrasings")."""

PAPER_TABLE3 = pd.DataFrame(
    [  # task, CLAP, CompA-CLAP, T-CLAP TeminAL B, T-CLAP TeminAL AB
        ("1A", 81.22, 83.0, 76.14, 75.11),
        ("2A", 9.59, 18.4, 32.20, 46.78),
        ("2B", 81.00, 91.6, 83.61, 87.12),
        ("2C", 9.39, 21.3, 31.4, 62.34),
        ("2D", 80.0, 90.8, 83.2, 85.45),
        ("3A", 33.27, 54.5, 51.3, 54.56),
        ("3B", 34.29, 49.87, 22.83, 56.78),
        ("4A", 2.4, 48.71, 41.1, 46.23),
        ("4B", 1.98, 38.74, 9.18, 44.89),
        ("5A", 26.0, 36.81, 31.0, 32.45),
        ("5B", 0.0, 18.2, 15.8, 18.34),
    ],
    columns=["task", "paper_clap", "paper_compa_clap", "paper_tclap_teminal_b",
             "paper_tclap_teminal_ab"],
)
"""Paper Table 3 (ZSTE, %), as fixed in SPEC §5. Measured by the authors on their models and
their ESC-50 split: a reference point, not a target for this code's numbers."""


@dataclass(kw_only=True)
class ZsteInputs:
    """Audio embeddings and audio identities of one ZSTE evaluation (SPEC §4). Arrays or tensors.

    class_names:   [K] label texts, K ≥ 3.
    single_audio:  [M, d] single clips; single_labels [M] their classes; single_keys [M] their
                   audio keys (``"single|a.wav"``; the 1A cluster is the clip).
    pairs:         [P, 2] classes ``(i, j)`` of each evaluation row.
    seq_audio:     [P, d] ``a_i ⊕ a_j``; rev_audio [P, d] ``a_j ⊕ a_i`` (same clips swapped);
    mix_audio:     [P, d] ``a_i ∧ a_j``.
    seq_keys, rev_keys, mix_keys: [P] their audio keys (``"seq|a|b"``, ``"seq|b|a"``,
                   ``"mix|a|b"`` canonical). Equal keys must name equal audio: the first
                   occurrence's embedding is used.
    """

    class_names: list[str]
    single_audio: object
    single_labels: object
    single_keys: object
    pairs: object
    seq_audio: object
    rev_audio: object
    mix_audio: object
    seq_keys: object
    rev_keys: object
    mix_keys: object
    triples: object = None  # 3C items (``teminal.eval.three.TripleItems``) or None
    triple_audio: object = None  # [len(triples), d] their audio embeddings

    def __post_init__(self) -> None:
        k = check_class_names(self.class_names)
        p = check_pairs(self.pairs, k).shape[0]
        m, d = _shape2(self.single_audio, "single_audio")
        if m < 1:
            raise ValueError("single_audio: expected at least one single clip (task 1A)")
        labels = _np(self.single_labels)
        if labels.shape != (m,) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"single_labels: expected integer [M={m}], got {labels.dtype} {labels.shape}")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"single_labels: class indices must lie in [0, {k})")
        check_keys(self.single_keys, m, "single_keys")
        for name in ("seq", "rev", "mix"):
            got = _shape2(getattr(self, f"{name}_audio"), f"{name}_audio")
            if got != (p, d):
                raise ValueError(f"{name}_audio: expected [P={p}, d={d}], got {got}")
            check_keys(getattr(self, f"{name}_keys"), p, f"{name}_keys")



def evaluate(
    inputs: ZsteInputs,
    embed_text: Callable[[list[str]], object],
    *,
    templates: ZsteTemplates | None = None,
    tasks=TASKS,
    n_boot: int = 1000,
    seed: int = 0,
    tie_tol: float = 1e-6,
) -> ZsteResult:
    """Score ZSTE ``tasks`` (SPEC §4) on ``inputs``.

    embed_text: ``texts [U] → [U, d]`` embeddings (any scale; normalized here), called once
    with every unique prompt. ``seed`` draws the 4A/4B/5B distractors and the bootstrap;
    ``n_boot`` resamples (0 → NaN intervals). SanityError under ``gates.MIN_EVAL_PAIRS``.
    """
    tpl = templates if templates is not None else ZsteTemplates()
    return _evaluate(inputs, embed_text, tpl, default_phrasing(tpl), tasks, n_boot=n_boot,
                     seed=seed, tie_tol=tie_tol)


def evaluate_phrasings(
    inputs: ZsteInputs,
    embed_text: Callable[[list[str]], object],
    *,
    family,
    tasks=PHRASING_TASKS,
    templates: ZsteTemplates | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    tie_tol: float = 1e-6,
) -> ZsteResult:
    """``tasks`` scored under every template combination of ``family`` (SPEC §4 "Held-out
    phrasings"; a ``PhrasingFamily``-like object with tuples ``sequence``, ``overlay``,
    ``position``). A task needing a relation the family has no template for is left out (e.g.
    5A when ``family.position`` is empty). Other arguments as :func:`evaluate`."""
    tpl = templates if templates is not None else ZsteTemplates()
    return _evaluate(inputs, embed_text, tpl, family_phrasings(family), tasks, n_boot=n_boot,
                     seed=seed, tie_tol=tie_tol)


def _evaluate(inputs: ZsteInputs, embed_text, tpl: ZsteTemplates, phrasings: list[Phrasing],
              tasks, *, n_boot: int, seed: int, tie_tol: float) -> ZsteResult:
    if "3C" in tasks and inputs.triples is None:
        raise ValueError("tasks: 3C needs three-event inputs (ZsteInputs.triples, triple_audio)")
    items = zste_items(inputs.class_names, inputs.pairs, seq_keys=inputs.seq_keys,
                       rev_keys=inputs.rev_keys, mix_keys=inputs.mix_keys,
                       single_keys=inputs.single_keys, single_labels=inputs.single_labels,
                       templates=tpl, phrasings=phrasings, tasks=[t for t in tasks if t != "3C"],
                       seed=seed)
    if not items.tasks and not (set(tasks) & {*ORDER_TASKS, "3C"}):
        raise ValueError(f"tasks {tuple(tasks)}: none can be scored with these phrasings (each "
                         f"needs templates for the relations its captions use)")
    d = _shape2(inputs.seq_audio, "seq_audio")[1]
    emb = embed_text(list(items.texts)) if items.texts else np.zeros((0, d))  # order tasks only
    if _shape2(emb, "embed_text(texts)") != (len(items.texts), d):
        raise ValueError(f"embed_text(texts): expected [U={len(items.texts)}, d={d}] (one row "
                         f"per text, the audio dimension), got {_shape2(emb, 'embed_text')}")
    t = _unit(emb)  # [U, d]
    sources = ("single", "seq", "rev", "mix")
    audio = torch.cat([_unit(getattr(inputs, f"{s}_audio")) for s in sources])  # [M + 3P, d]
    start = dict(zip(sources, np.cumsum([0, *(len(getattr(inputs, f"{s}_keys")) for s in sources)])))

    def scores(it: TaskItems) -> torch.Tensor:
        at = np.array([start[s] for s in it.source], dtype=np.int64) + it.row  # [N]
        return gather_scores(audio[torch.as_tensor(at)], t, it.candidates)  # [N, C]

    frames = score_items(items, scores, tie_tol=tie_tol)
    frames.update(_new_order_frames(inputs, embed_text, phrasings, tasks, tie_tol=tie_tol))
    frames = {t_: f for t_, f in frames.items() if t_ in tasks}
    return result_from_frames(frames, items, n_boot=n_boot, seed=seed)


def score_items(items: ZsteItems, scores: Callable[[TaskItems], torch.Tensor], *,
                tie_tol: float = 1e-6) -> dict[str, pd.DataFrame]:
    """Per-item frames of every task of ``items`` from ``scores(task items) → [N, C]``
    candidate scores (cosines for a model, a decision for the probe); 3A-c and 3W are built
    from the 3A (and 3B) frames (module doc, SPEC §4)."""
    texts = np.asarray(items.texts, dtype=object)
    frames, seq_credit = {}, None
    for task, it in items.tasks.items():
        if it.parts is not None:
            continue
        sc = scores(it)
        frames[task] = score_frame(it, sc, texts, tie_tol=tie_tol)
        if task == "3A":  # P(a sequential caption is the top-1), for 3W
            seq_credit = topk_credit(sc, torch.as_tensor(it.kind == BEFORE), k=1, rule="any",
                                     tie_tol=tie_tol)[0].numpy()
    if "3A-c" in items.tasks:
        frames["3A-c"] = consistency_frame(items.tasks["3A-c"], frames["3A"])
    if "3W" in items.tasks:
        frames["3W"] = balanced_frame(items.tasks["3W"], frames["3A"], seq_credit, frames["3B"])
    return {t: frames[t] for t in items.tasks}


def _new_order_frames(inputs: ZsteInputs, embed_text, phrasings: list[Phrasing], tasks, *,
                      tie_tol: float) -> dict[str, pd.DataFrame]:
    """3A-a, the Winoground trio and 3C (SPEC §4; :mod:`teminal.eval.order`, ``.three``)."""
    from teminal.eval.order import order_frames
    from teminal.eval.three import three_event_frame

    out = order_frames(inputs, embed_text, sequences=[p.sequence for p in phrasings],
                       tasks=tasks, tie_tol=tie_tol)
    if "3C" in tasks:
        out["3C"] = three_event_frame(inputs.triples, inputs.triple_audio, embed_text,
                                      tie_tol=tie_tol)
    return out


def _np(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


def _shape2(x, name: str) -> tuple[int, int]:
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 2:
        raise ValueError(f"{name}: expected a 2-D array [N, d], got shape {shape}")
    return int(shape[0]), int(shape[1])


def _unit(x) -> torch.Tensor:
    """Rows of ``x [N, d]`` (array or tensor of any float dtype) at unit norm, float64 on CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
