"""ZSTE scoring: expected top-k credit under random tie breaks, per-item frames, the table with
its chance levels and 95 % intervals (SPEC §4; :mod:`teminal.eval.intervals`).

The rules (ties, 3A-c as a product of credits, clusters, percent figures) are stated in
:mod:`teminal.eval.zste`, which drives these functions; import them from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd
import torch

from teminal.eval.intervals import item_groups, item_interval
from teminal.eval.tasks import ALL_TASKS, TaskItems, ZsteItems

_CHUNK = 1 << 22  # elements per gathered candidate block in scoring


@dataclass
class ZsteResult:
    """ZSTE figures. ``table``: one row per task (``TASKS`` order), columns ``task, value,
    chance, ci_low, ci_high, n, n_clusters`` (percent; :mod:`teminal.eval.zste` doc).
    ``items[task]``: per item ``row, audio, i, j, key, cluster, phrasing, score, tied,
    predicted, target`` (``label`` instead of ``i, j`` for 1A; ``audio`` = seq / rev / mix /
    single / seq+rev), for a "which pairs fail" view."""

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
        "3A-c": 1 / 9, "3B": 1 / 3, "3W": 1 / 2, "4A": 1 / n_candidates_4, "4B": 1 / n_candidates_4,
        "5A": 0.5, "5B": 2 / n_candidates_5b,
        "3A-a": 1 / 2, "3A-text": 1 / 4, "3A-audio": 1 / 4, "3A-group": 1 / 6, "3C": 1 / 6,
    }


def topk_credit(
    scores, correct, *, k: int, rule: str, tie_tol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected score of each row's top-k under a uniformly random tie break
    (:mod:`teminal.eval.zste` doc).

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


def item_ids(it: TaskItems) -> pd.DataFrame:
    """The identity columns of ``items[task]`` (``ZsteResult`` doc) for task items ``it``."""
    ids = {"row": it.row, "audio": it.source}
    ids.update({"label": it.i} if it.task == "1A" else {"i": it.i, "j": it.j})
    ids.update(key=it.key, cluster=it.cluster, phrasing=it.phrasing)
    return pd.DataFrame(ids)


def score_frame(it: TaskItems, sc: torch.Tensor, texts: np.ndarray, *, tie_tol: float) -> pd.DataFrame:
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


def balanced_frame(it: TaskItems, frame_3a: pd.DataFrame, seq_credit: np.ndarray,
                   frame_3b: pd.DataFrame) -> pd.DataFrame:
    """3W items (SPEC §4 "Balanced while score"): each unit holds a pair's two sequential
    clips (its 3A items) and its overlay (its 3B item); score = ½ · (mean over the two of
    P(a sequential caption is chosen), ``seq_credit`` [N_3A]) + ½ · P(the while caption is
    chosen) (the 3B credit). Its mean over units is the mean of the two shares; a constant
    answer scores ½."""
    s, r, m = it.parts[:, 0], it.parts[:, 1], it.parts[:, 2]
    seq = (np.asarray(seq_credit)[s] + np.asarray(seq_credit)[r]) / 2
    b = frame_3b.iloc[m].reset_index(drop=True)
    out = item_ids(it)
    out["score"] = 0.5 * seq + 0.5 * b.score.to_numpy()
    out["tied"] = frame_3a.tied.to_numpy()[s] | frame_3a.tied.to_numpy()[r] | b.tied.to_numpy()
    out["predicted"] = (frame_3a.predicted.to_numpy()[s] + " / " + frame_3a.predicted.to_numpy()[r]
                        + " / " + b.predicted.to_numpy())
    out["target"] = "a sequential caption / a sequential caption / " + b.target.to_numpy()
    return out


def result_from_frames(frames: dict[str, pd.DataFrame], items: ZsteItems | None, *, n_boot: int,
                       seed: int, extra_chance: dict[str, float] | None = None) -> ZsteResult:
    """The table (value, chance, 95 % interval, n, n_clusters) of per-item ``frames``:
    ZSTE tasks (chance from ``items``) in ``TASKS`` order, then tasks of ``extra_chance``
    (task → chance fraction; the probe's ``A-sd``); the interval is
    :func:`teminal.eval.intervals.item_interval` over the items' classes (SPEC §4)."""
    chance = {} if items is None else chance_levels(
        items.n_classes, n_candidates_4=items.n_candidates_4, n_candidates_5b=items.n_candidates_5b)
    chance |= extra_chance or {}
    records, kept = [], {}
    for pos, task in enumerate(ALL_TASKS + tuple(extra_chance or ())):
        if task not in frames:
            continue
        df = kept[task] = frames[task]
        score = df.score.to_numpy()
        iv = item_interval(score, item_groups(df), n_boot=n_boot, seed=(seed, pos)).percent()
        records.append(dict(task=task, value=iv.value, chance=100 * chance[task],
                            ci_low=iv.low, ci_high=iv.high, n=len(df),
                            n_clusters=len(np.unique(df.cluster.to_numpy()))))
    return ZsteResult(table=pd.DataFrame.from_records(records), items=kept)


def _join(strings: np.ndarray) -> np.ndarray:
    """[N, C] object array → [N] strings, non-empty entries joined by " | "."""
    return np.array([" | ".join(s for s in row if s) for row in strings.tolist()], dtype=object)


def gather_scores(audio: torch.Tensor, t: torch.Tensor, idx) -> torch.Tensor:
    """Cosines [N, C] of unit ``audio [N, d]`` with unit ``t[idx]`` (idx [N, C]), in chunks."""
    idx = torch.as_tensor(np.ascontiguousarray(idx), dtype=torch.long)
    step = max(1, _CHUNK // max(1, idx.shape[1] * t.shape[1]))
    out = [torch.bmm(t[idx[s : s + step]], audio[s : s + step, :, None])[..., 0]
           for s in range(0, len(idx), step)]
    return torch.cat(out) if out else torch.zeros(idx.shape, dtype=torch.float64)
