"""ZSTE — zero-shot temporal evaluation on precomputed embeddings (SPEC §4; paper B.4, Alg. 2-3).

Per task: cosine similarity between each audio and its candidate prompts, softmax over the
candidates, top-k (SPEC §4). The softmax is monotone, so the ranking is taken on the cosines.

**Ties.** Candidates whose cosine lies within ``tie_tol`` of the k-th best are tied; an item's
score is its *expected* score under a uniformly random tie break, computed exactly (e.g. a
correct caption tied with two others at the top scores 1/3). A constant model therefore
scores exactly the chance level, and the fixed position of correct captions in the candidate
lists cannot help. ``items[task].tied`` marks items whose outcome depended on a tie; their
``predicted`` lists every candidate that could be drawn, with ``(tie: r of n drawn)``.

**Reverse audio (our reading).** ``a_j ⊕ a_i`` is a held-out ordering as well, so with
``rev_in_order_tasks=True`` (default) the order-sensitive tasks 3A, 3A-o, 4A and 5A score both
the ``seq`` and the ``rev`` audio of every row (2P items; on ``rev`` the correct caption is
``"x_j before x_i"``, resp. ``first x_j`` / ``second x_i``). 3A-c (SPEC §4) is, per row, the
probability that both are answered correctly in 3A (the two tie breaks independent: chance
1/9). The bootstrap resamples evaluation rows, keeping a row's items together.

Figures are percent; ``items`` scores are in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd
import torch

from teminal.zste_prompts import (
    ZstePrompts,
    ZsteTemplates,
    check_class_names,
    check_pairs,
    zste_prompts,
)

__all__ = [
    "PAPER_TABLE3", "TASKS", "ZsteInputs", "ZstePrompts", "ZsteResult", "ZsteTemplates",
    "chance_levels", "evaluate", "topk_credit", "zste_prompts",
]

TASKS = ("1A", "2A", "2B", "2C", "2D", "3A", "3A-o", "3A-c", "3B", "4A", "4B", "5A", "5B")
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


@dataclass
class ZsteInputs:
    """Precomputed audio embeddings of one ZSTE evaluation (SPEC §4). Arrays or tensors.

    class_names:   [K] label texts, K ≥ 3.
    single_audio:  [M, d] single clips; single_labels [M] their class indices (task 1A).
    pairs:         [P, 2] classes ``(i, j)`` of each evaluation row.
    seq_audio:     [P, d] ``a_i ⊕ a_j``; rev_audio [P, d] ``a_j ⊕ a_i`` (same clips swapped);
    mix_audio:     [P, d] ``a_i ∧ a_j``.
    """

    class_names: list[str]
    single_audio: object
    single_labels: object
    pairs: object
    seq_audio: object
    rev_audio: object
    mix_audio: object

    def __post_init__(self) -> None:
        k = check_class_names(self.class_names)
        p = check_pairs(self.pairs, k).shape[0]
        m, d = _shape2(self.single_audio, "single_audio")
        if m < 1:
            raise ValueError("single_audio: expected at least one single clip (task 1A)")
        labels = _np(self.single_labels)
        if labels.shape != (m,) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"single_labels: expected integer [M={m}], got {labels.dtype} {labels.shape}"
            )
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"single_labels: class indices must lie in [0, {k})")
        for name in ("seq_audio", "rev_audio", "mix_audio"):
            got = _shape2(getattr(self, name), name)
            if got != (p, d):
                raise ValueError(f"{name}: expected [P={p}, d={d}], got {got}")


@dataclass
class ZsteResult:
    """ZSTE figures. ``table``: one row per task in :data:`TASKS` order, columns ``task, value,
    chance, ci_low, ci_high, n`` (percent; ``n`` = items scored; 95 % percentile bootstrap over
    evaluation rows). ``items[task]``: per-item ``row, audio, i, j, score, tied, predicted,
    target`` (``label`` instead of ``i, j`` for 1A), for a "which pairs fail" view."""

    table: pd.DataFrame
    items: dict[str, pd.DataFrame]

    def metrics(self) -> dict[str, float]:
        """``{"zste/1A": value, …, "zste/3A-o": …, "zste/3A-c": …}`` in percent."""
        return {f"zste/{t}": float(v) for t, v in zip(self.table.task, self.table.value)}


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
    prompts: ZstePrompts,
    text_emb,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    rev_in_order_tasks: bool = True,
    tie_tol: float = 1e-6,
) -> ZsteResult:
    """Score all ZSTE subtasks (SPEC §4) from precomputed embeddings.

    text_emb: [len(prompts.texts), d] embeddings of ``prompts.texts`` (any scale; normalized
    here). ``n_boot`` bootstrap resamples (0 → NaN intervals) drawn from ``seed``.
    """
    _check_prompts(inputs, prompts, text_emb)
    texts = np.asarray(prompts.texts, dtype=object)  # [U]
    t = _unit(text_emb)  # [U, d]
    aud = {n: _unit(getattr(inputs, f"{n}_audio")) for n in ("single", "seq", "rev", "mix")}
    pr, k = prompts.pairs, len(inputs.class_names)
    labels = _np(inputs.single_labels).astype(np.int64)  # [M]
    specs = _task_specs(prompts, labels, k)
    items: dict[str, pd.DataFrame] = {}
    for name, parts in specs.items():
        frames = {
            audio: _score_items(aud[audio], t, texts, idx, correct, top=top, rule=rule,
                                tie_tol=tie_tol, ids=_ids(audio, labels, pr))
            for audio, idx, correct, top, rule in parts
        }
        if name == "3A":
            items["3A-c"] = _consistency(frames["seq"], frames["rev"])
        keep = [f for audio, f in frames.items() if audio != "rev" or rev_in_order_tasks]
        items[name] = pd.concat(keep, ignore_index=True)

    chance = chance_levels(k, n_candidates_4=prompts.n_candidates_4,
                           n_candidates_5b=prompts.n_candidates_5b)
    records = []
    for pos, name in enumerate(TASKS):
        df = items[name]
        unit = df.groupby("row", sort=True)["score"].mean().to_numpy()  # [rows]
        lo, hi = _bootstrap(unit, n_boot=n_boot, seed=(seed, pos))
        records.append(dict(task=name, value=100 * unit.mean(), chance=100 * chance[name],
                            ci_low=100 * lo, ci_high=100 * hi, n=len(df)))
    return ZsteResult(table=pd.DataFrame.from_records(records),
                      items={name: items[name] for name in TASKS})


def _task_specs(prompts: ZstePrompts, labels: np.ndarray, k: int) -> dict[str, list[tuple]]:
    """SPEC §4 table as data: task → [(audio, candidates [N, C], correct [N, C], k, rule)].

    Order tasks list both ``seq`` and ``rev``; ``evaluate`` drops ``rev`` when asked to.
    """
    pr, p = prompts.pairs, len(prompts.pairs)
    classes = np.broadcast_to(prompts.classes, (p, k))  # [P, K]
    in_pair = np.zeros((p, k), dtype=bool)
    in_pair[np.arange(p), pr[:, 0]] = in_pair[np.arange(p), pr[:, 1]] = True

    def at(n_cand: int, *cols: int) -> np.ndarray:  # [P, n_cand], True at ``cols``
        m = np.zeros((p, n_cand), dtype=bool)
        m[:, list(cols)] = True
        return m

    n4, n5 = prompts.n_candidates_4, prompts.n_candidates_5b
    order = (("seq", 0), ("rev", 1))  # correct caption: "x_i before x_j" / "x_j before x_i"
    return {
        "1A": [("single", np.broadcast_to(prompts.classes, (len(labels), k)),
                np.eye(k, dtype=bool)[labels], 1, "frac")],
        "2A": [("seq", classes, in_pair, 2, "all")],
        "2B": [("seq", classes, in_pair, 2, "any")],
        "2C": [("mix", classes, in_pair, 2, "all")],
        "2D": [("mix", classes, in_pair, 2, "any")],
        "3A": [(a, prompts.temporal, at(3, c), 1, "frac") for a, c in order],
        "3A-o": [(a, prompts.temporal[:, :2], at(2, c), 1, "frac") for a, c in order],
        "3B": [("mix", prompts.temporal, at(3, 2), 1, "frac")],
        "4A": [(a, prompts.task4, at(n4, c), 1, "frac") for a, c in order],
        "4B": [("mix", prompts.task4, at(n4, 2), 1, "frac")],
        "5A": [(a, prompts.position, at(4, 2 * c, 2 * c + 1), 2, "frac") for a, c in order],
        "5B": [("mix", prompts.simultaneous, at(n5, 0, 1), 2, "frac")],
    }


def _score_items(audio, t, texts, idx, correct, *, top, rule, tie_tol, ids) -> pd.DataFrame:
    """Per-item frame of one (task, audio): ``ids`` plus ``score, tied, predicted, target``."""
    idx = np.asarray(idx)
    sc = _gather_scores(audio, t, idx)  # [N, C]
    credit, tied = topk_credit(sc, correct, k=top, rule=rule, tie_tol=tie_tol)
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
    ids["score"], ids["tied"] = credit.numpy(), tied.numpy()
    ids["predicted"] = _join(np.where(shown, texts[ranked], "")) + note
    ids["target"] = _join(np.where(correct, texts[idx], ""))
    return ids


def _consistency(seq: pd.DataFrame, rev: pd.DataFrame) -> pd.DataFrame:
    """3A-c per row (SPEC §4): P(seq and rev both correct in 3A) = product of the 3A credits."""
    out = seq[["row", "i", "j"]].copy()
    out.insert(1, "audio", "seq+rev")
    out["score"] = seq.score.to_numpy() * rev.score.to_numpy()
    out["tied"] = seq.tied.to_numpy() | rev.tied.to_numpy()
    out["predicted"] = seq.predicted.to_numpy() + " / " + rev.predicted.to_numpy()
    out["target"] = seq.target.to_numpy() + " / " + rev.target.to_numpy()
    return out


def _ids(audio: str, labels: np.ndarray, pairs: np.ndarray) -> pd.DataFrame:
    if audio == "single":
        return pd.DataFrame({"row": np.arange(len(labels)), "audio": audio, "label": labels})
    return pd.DataFrame(
        {"row": np.arange(len(pairs)), "audio": audio, "i": pairs[:, 0], "j": pairs[:, 1]}
    )


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


def _bootstrap(unit: np.ndarray, *, n_boot: int, seed) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``unit [U]`` (resampling units)."""
    if n_boot <= 0 or len(unit) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = unit[rng.integers(0, len(unit), size=(n_boot, len(unit)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


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


def _check_prompts(inputs: ZsteInputs, prompts: ZstePrompts, text_emb) -> None:
    if list(prompts.class_names) != list(inputs.class_names):
        raise ValueError("prompts: built for other class_names than inputs.class_names")
    if not np.array_equal(prompts.pairs, check_pairs(inputs.pairs, len(inputs.class_names))):
        raise ValueError("prompts: built for other pairs than inputs.pairs")
    u, d = _shape2(text_emb, "text_emb")
    d_audio = _shape2(inputs.seq_audio, "seq_audio")[1]
    if (u, d) != (len(prompts.texts), d_audio):
        raise ValueError(
            f"text_emb: expected [len(prompts.texts)={len(prompts.texts)}, d={d_audio}], "
            f"got {(u, d)}"
        )
