"""ZSTE items: the prompts, candidate lists and clusters of one evaluation, built once (SPEC §4).

An **item** is one question: an audio identity (its key), the candidate texts, the correct ones,
and its cluster. Texts are deduplicated into ``ZsteItems.texts``; each task reads its candidates
through integer index arrays into it. Candidate order is irrelevant: :mod:`teminal.eval.zste` scores
ties by their expectation under a uniformly random tie break.

**Which audio** (SPEC §4 table). Tasks on ``a_i ⊕ a_j`` (2A, 2B, 3A, 3A-o, 4A, 5A) ask about every
sequential audio of the set: the ``seq`` (``a_i ⊕ a_j``) and the ``rev`` (``a_j ⊕ a_i``, the same
clips swapped) of each row; for ``rev`` the roles of i and j swap (correct: ``"x_j before x_i"``,
``first x_j`` / ``second x_i``). Tasks on ``a_i ∧ a_j`` (2C, 2D, 3B, 4B, 5B) ask about each row's
``mix``; 1A about each single clip. 3A-c pairs the 3A items of a row's ``seq`` and ``rev``.

**Identical items are one item** (SPEC §4 "Intervals"): same audio key, same candidate set and
same correct set → kept once (first occurrence). To make the two ordered rows of one unordered
pair really produce identical items: overlay captions are canonical (``"x_a while x_b"``, a < b)
and the distractors of 4A/4B and 5B are drawn from ``default_rng([seed, task, a, b])`` for the
unordered class pair ``{a, b}``, never by row position.

**3W** (SPEC §4 "Balanced while score") pairs, per row and phrasing, the 3A items of the row's
``seq`` and ``rev`` with the 3B item of its ``mix``; each unit (the set of the three) once.

**Clusters**: the unordered class pair ``{i, j}`` for tasks 2–5, the clip for 1A (SPEC §4).

**Phrasings** (SPEC §4 "Held-out phrasings"): a list of ``Phrasing(sequence, overlay,
position)``; every item is built under every phrasing, so a family with several templates per
relation scores each item under every combination of templates it uses (3A/3B/4A/4B: sequence ×
overlay; 3A-o and 3A-c: sequence; 5A: position) — combinations that give the same candidates
collapse into one item by the rule above. All of them stay in the item's cluster.

Candidate lists per raw item (first = a, second = b; for a mix a, b = the row's i, j):
``classes`` K prompts ``"The sound of {x}"``; 3A/3B ``[a before b, b before a, lo while hi]``;
3A-o the first two; 4A/4B the three then ``n4 - 3`` distractors (a before or while caption
naming a class outside ``{a, b}``); 5A ``[first a, second b, first b, second a]``; 5B
``[sim(a, b), sim(b, a)]`` then ``n5b - 2`` other ordered pairs.

Where things live: the task list, caption kinds, ``ZsteTemplates``, ``Phrasing``, the item
containers ``TaskItems`` / ``ZsteItems`` and the input checks are in :mod:`teminal.eval.tasks`
(import them from there); this module builds the items (:func:`zste_items`);
:mod:`teminal.eval.zste` scores them.
"""
from __future__ import annotations

import numpy as np

from teminal.data.vocabulary import unordered_pair_ids
from teminal.eval.tasks import (BEFORE, CLASS, FIRST, ORDER_TASKS, SECOND, SIMULTANEOUS, TASKS,
                                WHILE, Phrasing, TaskItems, ZsteItems, ZsteTemplates,
                                check_class_names, check_eval_pairs, check_keys, check_pairs,
                                default_phrasing)

__all__ = ["zste_items"]

_AUDIO = {"1A": "single", "2A": "seq", "2B": "seq", "2C": "mix", "2D": "mix", "3A": "seq",
          "3A-o": "seq", "3B": "mix", "4A": "seq", "4B": "mix", "5A": "seq", "5B": "mix"}
_TOP_RULE = {"1A": (1, "frac"), "2A": (2, "all"), "2B": (2, "any"), "2C": (2, "all"),
             "2D": (2, "any"), "5A": (2, "frac"), "5B": (2, "frac")}
_USES = {"3A": ("sequence", "overlay"), "3A-o": ("sequence",), "3A-c": ("sequence", "overlay"),
         "3B": ("sequence", "overlay"), "3W": ("sequence", "overlay"), "4A": ("sequence", "overlay"),
         "4B": ("sequence", "overlay"), "5A": ("position",)}
"""Relations whose templates a task's candidates use (the others use none of a family's)."""


def _check_identities(key: np.ndarray, a: np.ndarray, b: np.ndarray, what: str) -> None:
    """One audio key must always denote the same classes (a, b): else the inputs contradict."""
    seen: dict[str, tuple[int, int]] = {}
    for k, x, y in zip(key.tolist(), a.tolist(), b.tolist()):
        if seen.setdefault(k, (x, y)) != (x, y):
            raise ValueError(f"{what}: audio {k!r} is listed with classes {seen[k]} and {(x, y)}; "
                             f"one audio key must name one composite (check the manifest rows)")


def zste_items(class_names, pairs, *, seq_keys, rev_keys, mix_keys, single_keys=None,
               single_labels=None, templates: ZsteTemplates | None = None,
               phrasings: list[Phrasing] | None = None, tasks=TASKS, seed: int) -> ZsteItems:
    """The items of ``tasks`` for rows ``pairs [P, 2]`` with audio keys ``seq_keys``,
    ``rev_keys``, ``mix_keys`` [P] (and ``single_keys``, ``single_labels`` [M] for 1A).

    SPEC §4/§6: SanityError for K < 3 or fewer than ``MIN_EVAL_PAIRS`` unordered pairs;
    ValueError (naming the argument) for bad rows, contradictory keys, or candidate counts
    larger than the pool of admissible distractors. Tasks whose phrasing has no template for a
    relation they use are left out (e.g. 5A for a family without position templates).
    """
    tpl = templates if templates is not None else ZsteTemplates()
    phr = phrasings if phrasings is not None else default_phrasing(tpl)
    k = check_class_names(class_names)
    pr = check_pairs(pairs, k)
    check_eval_pairs(pr)
    tasks = [t for t in tasks if t not in ORDER_TASKS]  # scored by teminal.eval.order
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks: unknown {unknown}; expected a subset of {TASKS}")
    keys = {s: check_keys(v, len(pr), f"{s}_keys")
            for s, v in (("seq", seq_keys), ("rev", rev_keys), ("mix", mix_keys))}
    n4, n5 = tpl.n_candidates_4, tpl.n_candidates_5b
    if {"4A", "4B"} & set(tasks) and not 3 <= n4 <= 3 * k * (k - 1) // 2:
        raise ValueError(f"templates.n_candidates_4: need 3 <= n <= {3 * k * (k - 1) // 2} (3 true "
                         f"captions + distractors naming a class outside the pair, K={k}), got {n4}")
    if "5B" in tasks and not 2 <= n5 <= k * (k - 1):
        raise ValueError(f"templates.n_candidates_5b: need 2 <= n <= K(K-1) = {k * (k - 1)}, got {n5}")
    i, j, rows = pr[:, 0], pr[:, 1], np.arange(len(pr))
    sequential = {"key": np.concatenate([keys["seq"], keys["rev"]]), "a": np.concatenate([i, j]),
                  "b": np.concatenate([j, i]), "row": np.concatenate([rows, rows]),
                  "source": np.repeat(np.array(["seq", "rev"], dtype=object), len(pr))}
    mix = {"key": keys["mix"], "a": i, "b": j, "row": rows,
           "source": np.full(len(pr), "mix", dtype=object)}
    _check_identities(sequential["key"], sequential["a"], sequential["b"], "seq_keys/rev_keys")
    _check_identities(mix["key"], np.minimum(i, j), np.maximum(i, j), "mix_keys")
    both = set(sequential["key"].tolist()) & set(mix["key"].tolist())
    if both:
        raise ValueError(f"mix_keys: {sorted(both)[0]!r} is also a sequential (seq/rev) key")
    raw = {"seq": sequential, "mix": mix}
    if "1A" in tasks:
        raw["single"] = _singles(single_keys, single_labels, k)
    draws = _Draws(k, seed=seed, n4=n4, n5=n5)
    needs = {"3A"} if {"3A-c", "3W"} & set(tasks) else set()
    needs |= {"3B"} if "3W" in tasks else set()
    wanted = [t for t in TASKS if t in tasks or t in needs]
    built, codes = {}, []
    for task in wanted:
        if task in ("3A-c", "3W") or not all(getattr(p, r) is not None for p in phr
                                             for r in _USES.get(task, ())):
            continue
        built[task] = _raw_task(task, raw[_AUDIO[task]], k, len(phr), draws)
        codes.append(built[task]["codes"])
    texts, lookup = _texts(codes, list(class_names), tpl, phr, k)
    out = {t: _dedup_task(t, r, lookup, k, len(phr)) for t, r in built.items()}
    if "3A-c" in tasks and "3A" in out:
        out["3A-c"] = _consistency_items(out["3A"], built["3A"], len(pr), k)
    if "3W" in tasks and "3A" in out and "3B" in out:
        out["3W"] = _balanced_items(out["3A"], built["3A"], built["3B"], len(pr), k)
    ordered = {t: out[t] for t in TASKS if t in out and (t in tasks or t in needs)}
    return ZsteItems(texts=texts, tasks=ordered, n_classes=k, n_candidates_4=n4, n_candidates_5b=n5)


def _singles(single_keys, single_labels, k: int) -> dict:
    labels = np.asarray(single_labels.cpu() if hasattr(single_labels, "cpu") else single_labels)
    if labels.ndim != 1 or len(labels) < 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"single_labels: expected integer [M >= 1], got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"single_labels: class indices must lie in [0, {k})")
    key = check_keys(single_keys, len(labels), "single_keys")
    labels = labels.astype(np.int64)
    _check_identities(key, labels, labels, "single_keys")
    return {"key": key, "a": labels, "b": np.full(len(labels), -1), "row": np.arange(len(labels)),
            "source": np.full(len(labels), "single", dtype=object)}


class _Draws:
    """Distractors per unordered class pair, seeded by ``(seed, task, lo, hi)`` (module doc)."""

    def __init__(self, k: int, *, seed: int, n4: int, n5: int) -> None:
        self.k, self.seed, self.n4, self.n5 = k, seed, n4, n5
        a, b = (x.ravel() for x in np.meshgrid(np.arange(k), np.arange(k), indexing="ij"))
        off = a != b
        self.ordered = np.stack([a[off], b[off]], axis=1)  # [K(K-1), 2]
        lo = a < b
        self.pool4 = np.concatenate([  # [3K(K-1)/2, 3]: (kind, a, b), before ordered, while canonical
            np.column_stack([np.full(off.sum(), BEFORE), a[off], b[off]]),
            np.column_stack([np.full(lo.sum(), WHILE), a[lo], b[lo]])])
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def get(self, task: int, lo: int, hi: int) -> np.ndarray:
        """[n, 3] (kind, a, b) distractors of 4A/4B (task 4) or 5B (task 5) for ``{lo, hi}``."""
        if (task, lo, hi) not in self._cache:
            pool = self.pool4 if task == 4 else np.column_stack(
                [np.full(len(self.ordered), SIMULTANEOUS), self.ordered])
            n = self.n4 - 3 if task == 4 else self.n5 - 2
            free = np.flatnonzero(~np.isin(pool[:, 1], (lo, hi)) | ~np.isin(pool[:, 2], (lo, hi)))
            rng = np.random.default_rng([self.seed, task, lo, hi])
            self._cache[(task, lo, hi)] = pool[np.sort(rng.choice(free, size=n, replace=False))]
        return self._cache[(task, lo, hi)]


def _code(kind, phr, a, b, k: int, n_phr: int) -> np.ndarray:
    """Semantic code of a caption: ((kind · n_phr + phrasing) · K + a) · K + b."""
    return ((np.asarray(kind) * n_phr + np.asarray(phr)) * k + np.asarray(a)) * k + np.asarray(b)


def _raw_task(task: str, raw: dict, k: int, n_phr: int, draws: _Draws) -> dict:
    """Every raw item of ``task`` under every phrasing: codes [R, C], correct [R, C], ids."""
    a, b, n = raw["a"], raw["b"], len(raw["a"])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n_loop = n_phr if _USES.get(task) else 1  # tasks without phrased captions: once
    blocks, correct_cols = [], None
    for p in range(n_loop):
        c = lambda kind, x, y=0: _code(kind, p, x, y, k, n_phr)  # noqa: E731
        if task in ("1A", "2A", "2B", "2C", "2D"):
            cand = np.broadcast_to(_code(CLASS, 0, np.arange(k), 0, k, n_phr), (n, k))
        elif task == "5A":
            cand = np.stack([c(FIRST, a), c(SECOND, b), c(FIRST, b), c(SECOND, a)], axis=1)
            correct_cols = [0, 1]
        elif task == "5B":
            extra = np.stack([draws.get(5, x, y) for x, y in zip(lo.tolist(), hi.tolist())])
            sim = lambda x, y: _code(SIMULTANEOUS, 0, x, y, k, n_phr)  # noqa: E731
            cand = np.concatenate([np.stack([sim(a, b), sim(b, a)], axis=1),
                                   sim(extra[..., 1], extra[..., 2])], axis=1)
            correct_cols = [0, 1]
        else:  # 3A, 3A-o, 3B, 4A, 4B
            cand = np.stack([c(BEFORE, a, b), c(BEFORE, b, a), c(WHILE, lo, hi)], axis=1)
            if task == "3A-o":
                cand = cand[:, :2]
            if task in ("4A", "4B"):
                extra = np.stack([draws.get(4, x, y) for x, y in zip(lo.tolist(), hi.tolist())])
                cand = np.concatenate([cand, c(extra[..., 0], extra[..., 1], extra[..., 2])], axis=1)
            correct_cols = [2] if _AUDIO[task] == "mix" else [0]
        blocks.append(cand)
    codes = np.concatenate(blocks)  # [n_loop · n, C], phrasing-major
    correct = np.zeros(codes.shape, dtype=bool)
    if correct_cols is None:  # class prompts: the item's classes
        r = np.arange(len(codes))
        correct[r, np.tile(a, n_loop)] = True
        if task != "1A":
            correct[r, np.tile(b, n_loop)] = True
    else:
        correct[:, correct_cols] = True
    tile = {name: np.tile(v, n_loop) for name, v in raw.items()}
    return {**tile, "phrasing": np.repeat(np.arange(n_loop), n), "codes": codes, "correct": correct}


def _texts(codes: list[np.ndarray], names: list[str], tpl: ZsteTemplates, phr: list[Phrasing],
           k: int) -> tuple[list[str], tuple[np.ndarray, np.ndarray]]:
    """Unique strings of every code; ``lookup = (sorted codes, text index of each)``."""
    uniq = np.unique(np.concatenate([c.ravel() for c in codes])) if codes else np.zeros(0, np.int64)
    n_phr = len(phr)
    fmt = {
        CLASS: lambda p, x, y: tpl.class_prompt.format(x=names[x]),
        BEFORE: lambda p, x, y: p.sequence.format(x=names[x], y=names[y]),
        WHILE: lambda p, x, y: p.overlay.format(x=names[x], y=names[y]),
        FIRST: lambda p, x, y: p.position.format(pos="first", x=names[x]),
        SECOND: lambda p, x, y: p.position.format(pos="second", x=names[x]),
        SIMULTANEOUS: lambda p, x, y: tpl.simultaneous.format(x=names[x], y=names[y]),
    }
    index: dict[str, int] = {}  # identical strings (colliding templates) share one slot
    slot = [index.setdefault(fmt[c // (n_phr * k * k)](phr[(c // (k * k)) % n_phr], (c // k) % k, c % k),
                             len(index)) for c in uniq.tolist()]
    return list(index), (uniq, np.asarray(slot, dtype=np.int64))


def _first_occurrences(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of int ``matrix [R, W]``: first occurrence of each distinct row (in row order)
    and the position of every row's distinct row in that list."""
    _, first, inverse = np.unique(matrix, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    position = np.empty(len(first), dtype=np.int64)
    position[order] = np.arange(len(first))
    return first[order], position[inverse.ravel()]


def _dedup_task(task: str, raw: dict, lookup, k: int, n_phr: int) -> TaskItems:
    """Identical raw items (same key, candidate set and correct set) → one item (module doc)."""
    uniq, slot = lookup
    cand = slot[np.searchsorted(uniq, raw["codes"])]  # [R, C] text indices
    key_id = np.unique(raw["key"].astype(str), return_inverse=True)[1].ravel()
    right = np.sort(np.where(raw["correct"], cand, -1), axis=1)
    first, position = _first_occurrences(np.column_stack([key_id, np.sort(cand, axis=1), right]))
    raw["position"] = position
    top, rule = _TOP_RULE.get(task, (1, "frac"))
    a, b = raw["a"][first], raw["b"][first]
    rev = raw["source"][first] == "rev"
    i, j = np.where(rev, b, a), np.where(rev, a, b)  # the row's (i, j)
    cluster = key_id[first] if task == "1A" else unordered_pair_ids(i, j, n_classes=k)
    return TaskItems(task=task, key=raw["key"][first], source=raw["source"][first],
                     row=raw["row"][first], i=i, j=j, cluster=cluster,
                     phrasing=raw["phrasing"][first], candidates=cand[first],
                     correct=raw["correct"][first],
                     kind=(raw["codes"][first] // (n_phr * k * k)).astype(np.int8), top=top, rule=rule)


def _consistency_items(items3a: TaskItems, raw3a: dict, n_rows: int, k: int) -> TaskItems:
    """3A-c (SPEC §4): per row and phrasing, its seq and rev 3A items; each unordered clip pair
    (the set of the two items) once."""
    pos = raw3a["position"].reshape(-1, 2, n_rows)  # [n_phr, (seq, rev), P]
    seq, rev = pos[:, 0].ravel(), pos[:, 1].ravel()  # [n_phr · P]
    raw_seq = (np.arange(len(pos))[:, None] * 2 * n_rows + np.arange(n_rows)).ravel()
    first, _ = _first_occurrences(np.column_stack([np.minimum(seq, rev), np.maximum(seq, rev)]))
    s, r, at = seq[first], rev[first], raw_seq[first]
    i, j, n = raw3a["a"][at], raw3a["b"][at], len(first)
    return TaskItems(task="3A-c", key=items3a.key[s] + " + " + items3a.key[r],
                     source=np.full(n, "seq+rev", dtype=object), row=raw3a["row"][at], i=i, j=j,
                     cluster=unordered_pair_ids(i, j, n_classes=k),
                     phrasing=raw3a["phrasing"][at], candidates=np.zeros((n, 0), np.int64),
                     correct=np.zeros((n, 0), bool), kind=np.zeros((n, 0), np.int8), top=1,
                     rule="frac", parts=np.stack([s, r], axis=1))


def _balanced_items(items3a: TaskItems, raw3a: dict, raw3b: dict, n_rows: int, k: int) -> TaskItems:
    """3W (SPEC §4): per row and phrasing, its seq and rev 3A items and its mix 3B item; each
    unit (the set of the three) once. Same identity columns and cluster as the 3A items."""
    pos = raw3a["position"].reshape(-1, 2, n_rows)  # [n_phr, (seq, rev), P]
    seq, rev = pos[:, 0].ravel(), pos[:, 1].ravel()  # [n_phr · P]
    mix = raw3b["position"].reshape(-1, n_rows).ravel()  # [n_phr · P]
    raw_seq = (np.arange(len(pos))[:, None] * 2 * n_rows + np.arange(n_rows)).ravel()
    first, _ = _first_occurrences(np.column_stack([np.minimum(seq, rev), np.maximum(seq, rev), mix]))
    s, r, m, at = seq[first], rev[first], mix[first], raw_seq[first]
    i, j, n = raw3a["a"][at], raw3a["b"][at], len(first)
    key = items3a.key[s] + " + " + items3a.key[r] + " + " + raw3b["key"][first]  # same layout
    return TaskItems(task="3W", key=key,
                     source=np.full(n, "seq+rev+mix", dtype=object), row=raw3a["row"][at], i=i, j=j,
                     cluster=unordered_pair_ids(i, j, n_classes=k),
                     phrasing=raw3a["phrasing"][at], candidates=np.zeros((n, 0), np.int64),
                     correct=np.zeros((n, 0), bool), kind=np.zeros((n, 0), np.int8), top=1,
                     rule="frac", parts=np.stack([s, r, m], axis=1))
