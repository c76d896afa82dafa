"""ZSTE prompt sets: every text the eleven subtasks need, built once (SPEC §4; paper B.4).

The caller encodes ``ZstePrompts.texts`` once and passes the embeddings to
:func:`teminal.zste.evaluate`; each task reads its candidates through integer index arrays
into ``texts``. Candidate lists keep the correct caption(s) at fixed leading positions; this
is harmless because :mod:`teminal.zste` scores ties by their expectation under a uniformly
random tie break, never by position.

Candidate layouts (row ``p`` of ``pairs`` = classes ``(i, j)``):

- ``classes [K]``: ``"The sound of {x_k}"`` (1A, 2A–2D);
- ``temporal [P, 3]``: ``"x_i before x_j"``, ``"x_j before x_i"``, ``"x_i while x_j"`` (3A, 3B);
- ``task4 [P, n4]``: the three above, then ``n4 - 3`` distractors (4A, 4B): a ``before`` or
  ``while`` caption of an ordered class pair ``(a, b)`` with ``{a, b} ⊄ {i, j}``, i.e. naming at
  least one class outside the pair; drawn without replacement, seeded;
- ``position [P, 4]``: ``first x_i``, ``second x_j``, ``first x_j``, ``second x_i`` (5A); the
  first two are correct for ``a_i ⊕ a_j``, the last two for ``a_j ⊕ a_i``;
- ``simultaneous [P, n5b]``: ``"Simultaneous sound of {x} and {y}"`` for ``(i, j)``, ``(j, i)``,
  then ``n5b - 2`` other ordered pairs drawn without replacement, seeded (5B).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CHUNK_ROWS = 256  # rows per vectorized draw of distractors (bounds memory at K = 50)


@dataclass(frozen=True, kw_only=True)
class ZsteTemplates:
    """Prompt templates and candidate counts of ZSTE (SPEC §4; defaults from paper B.4).

    ``position`` takes ``{pos}`` ∈ {``first``, ``second``} and ``{x}``; ``n_candidates_4`` is the
    size of the 4A/4B candidate list (3 true captions + distractors); ``n_candidates_5b`` the
    number of ``simultaneous`` prompts in 5B (the 2 correct orderings + distractors).
    """

    class_prompt: str = "The sound of {x}"
    before: str = "{x} before {y}"
    while_: str = "{x} while {y}"
    position: str = "In this concatenated sound, the {pos} sound is {x}"
    simultaneous: str = "Simultaneous sound of {x} and {y}"
    n_candidates_4: int = 50
    n_candidates_5b: int = 50


@dataclass(frozen=True)
class ZstePrompts:
    """All ZSTE prompt strings, deduplicated, with per-task index arrays into ``texts``.

    texts:        [U] unique strings; encode them once into ``text_emb [U, d]``.
    class_names:  [K] class label texts; ``pairs [P, 2]`` the evaluation rows ``(i, j)``.
    classes:      [K] index of ``"The sound of {x_k}"``.
    temporal:     [P, 3], task4 [P, n4], position [P, 4], simultaneous [P, n5b] (module doc).
    """

    texts: list[str]
    class_names: list[str]
    pairs: np.ndarray
    classes: np.ndarray
    temporal: np.ndarray
    task4: np.ndarray
    position: np.ndarray
    simultaneous: np.ndarray

    @property
    def n_candidates_4(self) -> int:
        return int(self.task4.shape[1])

    @property
    def n_candidates_5b(self) -> int:
        return int(self.simultaneous.shape[1])


def check_class_names(class_names: list[str]) -> int:
    """K of ``class_names``; ValueError unless K ≥ 3 distinct names (SPEC §4)."""
    names = list(class_names)
    if len(names) < 3:
        raise ValueError(f"class_names: ZSTE needs K >= 3 classes, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError("class_names: names must be distinct")
    return len(names)


def check_pairs(pairs, n_classes: int, *, name: str = "pairs") -> np.ndarray:
    """``pairs`` as int64 [P, 2] with ``0 <= i, j < K`` and ``i != j``, P ≥ 1; else ValueError."""
    arr = np.asarray(pairs.cpu() if hasattr(pairs, "cpu") else pairs)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name}: expected shape [P, 2] with P >= 1, got {tuple(arr.shape)}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"{name}: class indices must lie in [0, {n_classes})")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise ValueError(f"{name}: a row pairs a class with itself (i == j)")
    return arr


def _ordered_code(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Index of the ordered pair (a, b), a != b, in [0, K(K-1))."""
    return a * (k - 1) + b - (b > a)


def _ordered_pair(code: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`_ordered_code`."""
    a = code // (k - 1)
    b = code % (k - 1)
    return a, b + (b >= a)


def _draw_excluding(
    rng: np.random.Generator, *, universe: int, forbidden: np.ndarray, n: int
) -> np.ndarray:
    """For each row, ``n`` distinct draws from ``[0, universe)`` minus that row's ``forbidden``.

    forbidden: [P, F] distinct codes per row. Returns [P, n]. Draws ``n`` of the
    ``universe - F`` free slots (random keys + argpartition, in row chunks) and maps each slot
    past the sorted forbidden codes.
    """
    n_rows, n_forb = forbidden.shape
    if n == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    free = universe - n_forb
    out = np.empty((n_rows, n), dtype=np.int64)
    for start in range(0, n_rows, _CHUNK_ROWS):
        keys = rng.random((min(_CHUNK_ROWS, n_rows - start), free))
        out[start : start + len(keys)] = np.argpartition(keys, n - 1, axis=1)[:, :n]
    for f in np.sort(forbidden, axis=1).T:  # ascending forbidden codes: shift past each
        out += out >= f[:, None]
    return out


def zste_prompts(
    class_names: list[str], pairs, templates: ZsteTemplates | None = None, *, seed: int
) -> ZstePrompts:
    """Every ZSTE prompt for ``class_names [K]`` and evaluation rows ``pairs [P, 2]`` (SPEC §4).

    Distractors of 4A/4B and 5B are drawn per row with ``numpy.random.default_rng(seed)``.
    Raises ValueError (naming the argument) for K < 3, bad ``pairs`` or candidate counts
    larger than the pool of admissible distractors.
    """
    tpl = templates if templates is not None else ZsteTemplates()
    k = check_class_names(class_names)
    pr = check_pairs(pairs, k)
    n4, n5 = tpl.n_candidates_4, tpl.n_candidates_5b
    n_ordered = k * (k - 1)
    if not 3 <= n4 <= 2 * n_ordered:
        raise ValueError(
            f"templates.n_candidates_4: need 3 <= n <= {2 * n_ordered} (3 true captions + "
            f"distractors naming a class outside the pair, K={k}), got {n4}"
        )
    if not 2 <= n5 <= n_ordered:
        raise ValueError(
            f"templates.n_candidates_5b: need 2 <= n <= K(K-1) = {n_ordered}, got {n5}"
        )
    rng = np.random.default_rng(seed)
    i, j = pr[:, 0], pr[:, 1]
    ij, ji = _ordered_code(i, j, k), _ordered_code(j, i, k)

    # Caption universe of 4A/4B: u = rel * K(K-1) + ordered(a, b), rel 0 = before, 1 = while.
    forb4 = np.stack([ij, ji, n_ordered + ij, n_ordered + ji], axis=1)
    u4 = _draw_excluding(rng, universe=2 * n_ordered, forbidden=forb4, n=n4 - 3)
    forb5 = np.stack([ij, ji], axis=1)
    u5 = _draw_excluding(rng, universe=n_ordered, forbidden=forb5, n=n5 - 2)

    # Semantic codes: kind * K^2 + a * K + b; kinds below.
    kc, kb, kw, kf, ks, km = range(6)  # class, before, while, first, second, simultaneous

    def code(kind: int, a, b=0) -> np.ndarray:
        return (kind * k + np.asarray(a)) * k + np.asarray(b)

    a4, b4 = _ordered_pair(u4 % n_ordered, k)
    d4 = np.where(u4 < n_ordered, code(kb, a4, b4), code(kw, a4, b4))
    a5, b5 = _ordered_pair(u5, k)
    blocks = {
        "classes": code(kc, np.arange(k)),
        "temporal": np.stack([code(kb, i, j), code(kb, j, i), code(kw, i, j)], axis=1),
        "position": np.stack(
            [code(kf, i), code(ks, j), code(kf, j), code(ks, i)], axis=1
        ),
        "simultaneous": np.concatenate(
            [np.stack([code(km, i, j), code(km, j, i)], axis=1), code(km, a5, b5)], axis=1
        ),
    }
    blocks["task4"] = np.concatenate([blocks["temporal"], d4], axis=1)

    uniq, inverse = np.unique(
        np.concatenate([v.ravel() for v in blocks.values()]), return_inverse=True
    )
    names = list(class_names)
    formats = {
        kc: lambda a, b: tpl.class_prompt.format(x=names[a]),
        kb: lambda a, b: tpl.before.format(x=names[a], y=names[b]),
        kw: lambda a, b: tpl.while_.format(x=names[a], y=names[b]),
        kf: lambda a, b: tpl.position.format(pos="first", x=names[a]),
        ks: lambda a, b: tpl.position.format(pos="second", x=names[a]),
        km: lambda a, b: tpl.simultaneous.format(x=names[a], y=names[b]),
    }
    index: dict[str, int] = {}  # identical strings (e.g. colliding templates) share one slot
    slot = np.array(
        [
            index.setdefault(formats[c // (k * k)]((c // k) % k, c % k), len(index))
            for c in uniq.tolist()
        ],
        dtype=np.int64,
    )
    flat = slot[inverse]
    out, start = {}, 0
    for name, v in blocks.items():
        out[name] = flat[start : start + v.size].reshape(v.shape)
        start += v.size
    return ZstePrompts(texts=list(index), class_names=names, pairs=pr, **out)
