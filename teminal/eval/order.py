"""Order in both directions, the Winoground trio, and three events (SPEC §4).

**3A-a and the trio.** For one unordered clip pair ``{a_i, a_j}`` the two audios are
``A0 = a_i ⊕ a_j`` and ``A1 = a_j ⊕ a_i`` and the two captions ``T0 = "x_i before x_j"``,
``T1 = "x_j before x_i"``; ``s(A, T)`` is their cosine. Then

- ``3A-a`` (one item per caption): the caption picks its own audio — ``s(A0,T0) > s(A1,T0)``,
  resp. ``s(A1,T1) > s(A0,T1)``; chance 1/2;
- ``3A-text``: both audios pick their own caption; chance 1/4;
- ``3A-audio``: both captions pick their own audio; chance 1/4;
- ``3A-group``: all four comparisons; chance 1/6.

This is CompA-order's scoring (``evaluation/benchmark_eval.py`` of ``Sreyan88/CompA``: its
``f``, ``g``, ``h`` scores are text, audio, group), so the figures read against its table.

**Ties** as everywhere in ZSTE: cosines within ``tie_tol`` are tied and an item scores its
expected value under a uniformly random tie break — exactly: the share of the 24 orderings of
the four cosines that agree with every strict comparison and satisfy the condition. A constant
model scores exactly the chance levels above.

**Items** carry the columns of every ZSTE item (``row, audio, i, j, key, cluster, phrasing,
score, tied, predicted, target``): ``audio = "seq+rev"``, ``key = "<seq key> + <rev key>"``,
``(i, j)`` the row's classes (the units :mod:`teminal.eval.intervals` resamples), ``cluster`` the
unordered class pair (``min·K + max``, as the other tasks). Each unordered clip pair is one item per
phrasing (rows (i, j) and (j, i) with the same clips are the same question, counted once);
``3A-a`` has two items per pair and phrasing (``caption`` column: 0 for T0, 1 for T1).

**3C, three events** (evaluation only): the audio ``a_x ⊕ a_y ⊕ a_z`` of three distinct
classes whose unordered pairs are all held out, each part level-matched; candidates the six
orders ``"{x} before {y} before {z}"``; top-1 = the played order; chance 1/6. All six orders of
a triple's clips are items, so a text side that prefers one phrasing cannot score above chance.
3C items have ``i, j, k`` = the classes in played order (all three resampled by
:func:`teminal.eval.intervals.item_groups`) and ``cluster`` = the unordered triple
(``(lo·K + mid)·K + hi``).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from teminal.data.vocabulary import unordered_pair_ids
from teminal.eval.tasks import ORDER_TASKS

CHANCE = {"3A-a": 1 / 2, "3A-text": 1 / 4, "3A-audio": 1 / 4, "3A-group": 1 / 6, "3C": 1 / 6}
COLUMNS = ["row", "audio", "i", "j", "key", "cluster", "phrasing", "score", "tied", "predicted",
           "target"]

_PERMS = np.array(list(itertools.permutations(range(4))))  # (24, 4) cells, best first
_BEFORE = np.argsort(_PERMS, axis=1)[:, :, None] < np.argsort(_PERMS, axis=1)[:, None, :]
"""(24, 4, 4): in ordering p, cell a ranks above cell b. Cells: 0 = s(A0,T0), 1 = s(A0,T1),
2 = s(A1,T0), 3 = s(A1,T1)."""
_WANT = {
    "T0": _BEFORE[:, 0, 2], "T1": _BEFORE[:, 3, 1],  # 3A-a, per caption
    "3A-text": _BEFORE[:, 0, 1] & _BEFORE[:, 3, 2],
    "3A-audio": _BEFORE[:, 0, 2] & _BEFORE[:, 3, 1],
}
_WANT["3A-group"] = _WANT["3A-text"] & _WANT["3A-audio"]
_COMPARED = ((0, 1), (3, 2), (0, 2), (3, 1))


def winoground_credit(sim, *, tie_tol: float = 1e-6) -> dict[str, np.ndarray]:
    """sim (N, 2, 2) = s(audio, caption) → expected credit (N,) of ``T0``, ``T1`` (3A-a),
    ``3A-text``, ``3A-audio``, ``3A-group`` under a random tie break, and ``tied`` (N,) bool."""
    v = torch.as_tensor(sim, dtype=torch.float64).reshape(-1, 4).numpy()  # (N, 4)
    strict = v[:, :, None] > v[:, None, :] + tie_tol  # (N, 4, 4) a beats b surely
    consistent = ~(strict[:, None] & ~_BEFORE[None]).any(axis=(2, 3))  # (N, 24)
    n = consistent.sum(1)
    out = {name: (consistent & want[None]).sum(1) / n for name, want in _WANT.items()}
    out["tied"] = np.any([np.abs(v[:, a] - v[:, b]) <= tie_tol for a, b in _COMPARED], axis=0)
    return out


def unit_rows(x) -> torch.Tensor:
    """Rows of ``x [N, d]`` (array or tensor of any float dtype) at unit norm, float64 on CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _pair_rows(pairs: np.ndarray, seq_keys, rev_keys) -> np.ndarray:
    """Rows of the first occurrence of each unordered clip pair {seq key, rev key}."""
    seen, keep = set(), []
    for r, (s, t) in enumerate(zip(seq_keys, rev_keys)):
        canon = (min(s, t), max(s, t))
        if canon not in seen:
            seen.add(canon)
            keep.append(r)
    return np.asarray(keep, dtype=np.int64)


def order_frames(inputs, embed_text: Callable[[list[str]], object], *, sequences: list[str | None],
                 tasks=ORDER_TASKS, tie_tol: float = 1e-6) -> dict[str, pd.DataFrame]:
    """Per-item frames of ``3A-a`` and the trio (module doc) on a ``ZsteInputs``.

    ``sequences``: the sequence template (``{x}``, ``{y}``) of each phrasing (its index is the
    ``phrasing`` column; ``None`` = that phrasing has none, skipped)."""
    wanted = [t for t in ORDER_TASKS if t in tasks]
    first: dict[str, int] = {}  # phrasings sharing a sequence template ask the same question
    for p, tpl in enumerate(sequences):
        if tpl is not None:
            first.setdefault(tpl, p)
    phr = [(p, tpl) for tpl, p in first.items()]
    if not wanted or not phr:
        return {}
    names, pairs = list(inputs.class_names), np.asarray(inputs.pairs, dtype=np.int64)
    seq_keys, rev_keys = list(inputs.seq_keys), list(inputs.rev_keys)
    rows = _pair_rows(pairs, seq_keys, rev_keys)
    i, j, k = pairs[rows, 0], pairs[rows, 1], len(names)
    captions = [(tpl.format(x=names[a], y=names[b]), tpl.format(x=names[b], y=names[a]))
                for _, tpl in phr for a, b in zip(i, j)]  # phrasing-major
    texts = sorted({t for c in captions for t in c})
    t = unit_rows(embed_text(texts))  # (U, d)
    at = {s: n for n, s in enumerate(texts)}
    cap = torch.as_tensor([[at[c0], at[c1]] for c0, c1 in captions])  # (R, 2)
    audio = torch.stack([unit_rows(inputs.seq_audio)[rows],
                         unit_rows(inputs.rev_audio)[rows]], 1)  # (P', 2 audios, d)
    audio = audio.repeat(len(phr), 1, 1)  # (R, 2, d), phrasing-major
    sim = torch.einsum("rad,rcd->rac", audio, t[cap])  # (R, 2 audios, 2 captions)
    credit = winoground_credit(sim, tie_tol=tie_tol)
    n_rows = len(rows)
    base = pd.DataFrame({
        "row": np.tile(rows, len(phr)), "audio": "seq+rev", "i": np.tile(i, len(phr)),
        "j": np.tile(j, len(phr)),
        "key": np.tile([f"{seq_keys[r]} + {rev_keys[r]}" for r in rows], len(phr)),
        "cluster": np.tile(unordered_pair_ids(i, j, n_classes=k), len(phr)),
        "phrasing": np.repeat([p for p, _ in phr], n_rows), "tied": credit["tied"]})
    best = sim.argmax(2).numpy()  # (R, 2) caption each audio prefers
    base["predicted"] = [f"{c[b0]} / {c[b1]}" for c, (b0, b1) in zip(captions, best)]
    base["target"] = [f"{c0} / {c1}" for c0, c1 in captions]
    out = {}
    for task in wanted:
        if task == "3A-a":
            halves = []
            for n, name in enumerate(("T0", "T1")):
                half = base.assign(score=credit[name], caption=n,
                                   target=[c[n] for c in captions],
                                   predicted=np.where(sim[:, n, n] >= sim[:, 1 - n, n], "own audio",
                                                      "other audio"))
                halves.append(half)
            out[task] = pd.concat(halves, ignore_index=True)[COLUMNS + ["caption"]]
        else:
            out[task] = base.assign(score=credit[task])[COLUMNS]
    return out
