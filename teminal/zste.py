"""ZSTE — zero-shot temporal evaluation (SPEC §4; paper B.4, Alg. 2-3).

Per item (:mod:`teminal.zste_prompts`): cosine similarity between the audio and its candidate
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

**Intervals** (SPEC §4): 95 % percentile bootstrap over clusters — unordered class pairs for
tasks 2–5 (all items of a pair resampled together), clips for 1A — of the item mean (the
ratio Σ scores / Σ items over the drawn clusters). ``n`` = items after de-duplication,
``n_clusters`` = clusters.

**Held-out phrasings** (SPEC §4): :func:`evaluate_phrasings` scores 3A, 3A-o, 3A-c, 3B and 5A
again under every combination of a phrasing family's templates (all in the item's cluster;
see :mod:`teminal.zste_prompts`). Metrics ``zste_heldout/<task>`` (``metrics(prefix=…)``).

Figures are percent; ``items`` scores are in [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd
import torch

from teminal.zste_prompts import (
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
    zste_items,
)

__all__ = [
    "PAPER_TABLE3", "PHRASING_TASKS", "TASKS", "ZsteInputs", "ZsteResult", "ZsteTemplates",
    "chance_levels", "cluster_interval", "evaluate", "evaluate_phrasings", "result_from_frames",
    "topk_credit",
]

PHRASING_TASKS = ("3A", "3A-o", "3A-c", "3B", "5A")
"""Tasks scored again under a phrasing family (SPEC §4 "Held-out phrasings")."""
_CHUNK = 1 << 22  # elements per gathered candidate block in scoring

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


@dataclass
class ZsteResult:
    """ZSTE figures. ``table``: one row per task (``TASKS`` order), columns ``task, value,
    chance, ci_low, ci_high, n, n_clusters`` (percent; module doc). ``items[task]``: per item
    ``row, audio, i, j, key, cluster, phrasing, score, tied, predicted, target`` (``label``
    instead of ``i, j`` for 1A; ``audio`` = seq / rev / mix / single / seq+rev), for a "which
    pairs fail" view."""

    table: pd.DataFrame
    items: dict[str, pd.DataFrame]

    def metrics(self, prefix: str = "zste") -> dict[str, float]:
        """``{"<prefix>/1A": value, …}`` in percent; prefixes ``zste``, ``zste_seen``,
        ``zste_heldout``."""
        return {f"{prefix}/{t}": float(v) for t, v in zip(self.table.task, self.table.value)}


def chance_levels(
    n_classes: int, *, n_candidates_4: int = 50, n_candidates_5b: int = 50
) -> dict[str, float]:
    """Exact chance level of each task as a fraction (SPEC §4): the expected score of a
    uniformly random answer. 5B: each of the 2 correct prompts is in a random top-2 of ``n``
    with probability 2/n, so the expected |top-2 ∩ correct| / 2 is 2/n."""
    k, n_pairs = n_classes, comb(n_classes, 2)
    both, any_ = 1 / n_pairs, 1 - comb(k - 2, 2) / n_pairs
    return {
        "1A": 1 / k, "2A": both, "2B": any_, "2C": both, "2D": any_, "3A": 1 / 3, "3A-o": 1 / 2,
        "3A-c": 1 / 9, "3B": 1 / 3, "4A": 1 / n_candidates_4, "4B": 1 / n_candidates_4,
        "5A": 0.5, "5B": 2 / n_candidates_5b,
    }


def topk_credit(
    scores, correct, *, k: int, rule: str, tie_tol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected score of each row's top-k under a uniformly random tie break (module doc).

    scores [N, C] float, correct [N, C] bool. ``rule``: ``"frac"`` = |top-k ∩ correct| /
    |correct| (top-1 accuracy when k = 1), ``"all"`` = 1[correct ⊆ top-k], ``"any"`` =
    1[top-k ∩ correct ≠ ∅]. Returns ``(credit [N] float64, tied [N] bool)``, ``tied`` = the
    top-k set was decided by a tie. Exact: with ``n`` candidates tied at the k-th score of
    which ``r`` enter the top-k, each tied one is drawn with probability r/n, and ``m`` given
    tied ones all with probability Π_q (r - q)/(n - q), none with Π_q (n - r - q)/(n - q).
    """
    if rule not in ("frac", "all", "any"):
        raise ValueError(f"rule: expected 'frac', 'all' or 'any', got {rule!r}")
    s = torch.as_tensor(scores, dtype=torch.float64)
    c = torch.as_tensor(correct, dtype=torch.bool)
    above, tie, r, n_tie = _topk_sets(s, k=k, tie_tol=tie_tol)
    c_above, c_tie, n_c = (c & above).sum(1), (c & tie).sum(1), c.sum(1)
    tied = n_tie > r
    if rule == "frac":
        return (c_above + c_tie * r / n_tie) / n_c.clamp(min=1), tied
    joint = torch.ones_like(n_tie)  # P(all tied correct ones drawn) / P(none of them drawn)
    for q in range(int(c_tie.max()) if len(c_tie) else 0):
        num = (r - q) if rule == "all" else (n_tie - r - q)
        joint = torch.where(c_tie > q, joint * (num / (n_tie - q)).clamp(min=0), joint)
    if rule == "all":
        return torch.where(c_above + c_tie == n_c, joint, 0.0), tied
    return torch.where(c_above > 0, 1.0, 1.0 - joint), tied


def _topk_sets(s: torch.Tensor, *, k: int, tie_tol: float):
    """For scores [N, C]: ``above`` [N, C] (surely in the top-k), ``tie`` [N, C] (within
    ``tie_tol`` of the k-th score), ``r`` [N] (how many tied ones enter), ``n_tie`` [N]."""
    kth = s.topk(k, dim=1).values[:, -1:]  # [N, 1]
    above = s > kth + tie_tol
    tie = (s - kth).abs() <= tie_tol
    return above, tie, k - above.sum(1).double(), tie.sum(1).double()


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
    items = zste_items(inputs.class_names, inputs.pairs, seq_keys=inputs.seq_keys,
                       rev_keys=inputs.rev_keys, mix_keys=inputs.mix_keys,
                       single_keys=inputs.single_keys, single_labels=inputs.single_labels,
                       templates=tpl, phrasings=phrasings, tasks=tasks, seed=seed)
    if not items.tasks:
        raise ValueError(f"tasks {tuple(tasks)}: none can be scored with these phrasings (each "
                         f"needs templates for the relations its captions use)")
    d = _shape2(inputs.seq_audio, "seq_audio")[1]
    emb = embed_text(list(items.texts))
    if _shape2(emb, "embed_text(texts)") != (len(items.texts), d):
        raise ValueError(f"embed_text(texts): expected [U={len(items.texts)}, d={d}] (one row "
                         f"per text, the audio dimension), got {_shape2(emb, 'embed_text')}")
    t = _unit(emb)  # [U, d]
    sources = ("single", "seq", "rev", "mix")
    audio = torch.cat([_unit(getattr(inputs, f"{s}_audio")) for s in sources])  # [M + 3P, d]
    start = dict(zip(sources, np.cumsum([0, *(len(getattr(inputs, f"{s}_keys")) for s in sources)])))
    texts = np.asarray(items.texts, dtype=object)
    frames = {}
    for task, it in items.tasks.items():
        if it.parts is not None:
            continue
        at = np.array([start[s] for s in it.source], dtype=np.int64) + it.row  # [N]
        sc = _gather_scores(audio[torch.as_tensor(at)], t, it.candidates)  # [N, C]
        frames[task] = _score_frame(it, sc, texts, tie_tol=tie_tol)
    if "3A-c" in items.tasks:
        frames["3A-c"] = consistency_frame(items.tasks["3A-c"], frames["3A"])
    frames = {t_: f for t_, f in frames.items() if t_ in tasks}
    return result_from_frames(frames, items, n_boot=n_boot, seed=seed)


def item_ids(it: TaskItems) -> pd.DataFrame:
    """The identity columns of ``items[task]`` (``ZsteResult`` doc) for task items ``it``."""
    ids = {"row": it.row, "audio": it.source}
    ids.update({"label": it.i} if it.task == "1A" else {"i": it.i, "j": it.j})
    ids.update(key=it.key, cluster=it.cluster, phrasing=it.phrasing)
    return pd.DataFrame(ids)


def _score_frame(it: TaskItems, sc: torch.Tensor, texts: np.ndarray, *, tie_tol: float) -> pd.DataFrame:
    """Per-item frame of task items ``it`` with cosines ``sc [N, C]``."""
    idx, top = it.candidates, it.top
    credit, tied = topk_credit(sc, it.correct, k=top, rule=it.rule, tie_tol=tie_tol)
    order = torch.sort(sc, dim=1, descending=True, stable=True).indices.numpy()  # [N, C]
    ranked = np.take_along_axis(idx, order, axis=1)  # [N, C] text indices, best first
    shown = np.zeros(idx.shape, dtype=bool)
    shown[:, :top] = True
    note = np.full(len(idx), "", dtype=object)
    if tied.any():  # show every candidate that could be drawn
        above, tie, r, n_tie = _topk_sets(sc, k=top, tie_tol=tie_tol)
        drawable = np.take_along_axis((above | tie).numpy(), order, axis=1)
        rows = tied.numpy()
        shown[rows] = drawable[rows]
        note[rows] = [f" (tie: {a:.0f} of {b:.0f} drawn)" for a, b in
                      zip(r.numpy()[rows], n_tie.numpy()[rows])]
    out = item_ids(it)
    out["score"], out["tied"] = credit.numpy(), tied.numpy()
    out["predicted"] = _join(np.where(shown, texts[ranked], "")) + note
    out["target"] = _join(np.where(it.correct, texts[idx], ""))
    return out


def consistency_frame(it: TaskItems, frame_3a: pd.DataFrame) -> pd.DataFrame:
    """3A-c items (SPEC §4): P(seq and rev both correct in 3A) = product of the 3A credits."""
    s, r = (frame_3a.iloc[it.parts[:, n]].reset_index(drop=True) for n in (0, 1))
    out = item_ids(it)
    out["score"] = s.score.to_numpy() * r.score.to_numpy()
    out["tied"] = s.tied.to_numpy() | r.tied.to_numpy()
    out["predicted"] = s.predicted.to_numpy() + " / " + r.predicted.to_numpy()
    out["target"] = s.target.to_numpy() + " / " + r.target.to_numpy()
    return out


def result_from_frames(frames: dict[str, pd.DataFrame], items: ZsteItems, *, n_boot: int,
                       seed: int) -> ZsteResult:
    """The table (value, chance, clustered interval, n, n_clusters) of per-item ``frames``."""
    chance = chance_levels(items.n_classes, n_candidates_4=items.n_candidates_4,
                           n_candidates_5b=items.n_candidates_5b)
    records, kept = [], {}
    for pos, task in enumerate(TASKS):
        if task not in frames:
            continue
        df = kept[task] = frames[task]
        score, cluster = df.score.to_numpy(), df.cluster.to_numpy()
        lo, hi = cluster_interval(score, cluster, n_boot=n_boot, seed=(seed, pos))
        records.append(dict(task=task, value=100 * score.mean(), chance=100 * chance[task],
                            ci_low=100 * lo, ci_high=100 * hi, n=len(df),
                            n_clusters=len(np.unique(cluster))))
    return ZsteResult(table=pd.DataFrame.from_records(records), items=kept)


def cluster_interval(score: np.ndarray, cluster: np.ndarray, *, n_boot: int,
                     seed) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the item mean of ``score [N]``, resampling whole
    clusters (``cluster [N]`` ids) with replacement: each draw's value is Σ scores / Σ items of
    the drawn clusters (SPEC §4 "Intervals"). ``n_boot <= 0`` or no items → NaN."""
    if n_boot <= 0 or len(score) == 0:
        return float("nan"), float("nan")
    ids, inverse = np.unique(cluster, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=score, minlength=len(ids))  # [G]
    counts = np.bincount(inverse.ravel(), minlength=len(ids)).astype(np.float64)  # [G]
    draw = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)  # [n_boot]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _join(strings: np.ndarray) -> np.ndarray:
    """[N, C] object array → [N] strings, non-empty entries joined by " | "."""
    return np.array([" | ".join(s for s in row if s) for row in strings.tolist()], dtype=object)


def _gather_scores(audio: torch.Tensor, t: torch.Tensor, idx) -> torch.Tensor:
    """Cosines [N, C] of unit ``audio [N, d]`` with unit ``t[idx]`` (idx [N, C]), in chunks."""
    idx = torch.as_tensor(np.ascontiguousarray(idx), dtype=torch.long)
    step = max(1, _CHUNK // max(1, idx.shape[1] * t.shape[1]))
    out = [torch.bmm(t[idx[s : s + step]], audio[s : s + step, :, None])[..., 0]
           for s in range(0, len(idx), step)]
    return torch.cat(out) if out else torch.zeros(idx.shape, dtype=torch.float64)


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
