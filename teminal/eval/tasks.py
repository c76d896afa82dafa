"""ZSTE vocabulary: tasks, caption kinds, templates and phrasings, item containers, input checks.

SPEC §4 (tasks, prompts, held-out phrasings) and §6 (the gates ``check_class_names`` and
``check_eval_pairs`` apply). What an item is, and how :func:`teminal.eval.prompts.zste_items`
builds the items of one evaluation from these pieces, is described in
:mod:`teminal.eval.prompts`; callers import these names from here.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from teminal.data.captions import check_template
from teminal.data.vocabulary import unordered_pairs
from teminal.gates import MIN_CLASSES, MIN_EVAL_PAIRS, SanityError

TASKS = ("1A", "2A", "2B", "2C", "2D", "3A", "3A-o", "3A-c", "3B", "3W", "4A", "4B", "5A", "5B")
ORDER_TASKS = ("3A-a", "3A-text", "3A-audio", "3A-group")  # both directions (teminal.eval.order)
TASKS = TASKS + ORDER_TASKS
ALL_TASKS = TASKS + ("3C",)
"""``TASKS`` are scored from pair inputs; ``3C`` needs three-event audio (``ZsteInputs.triples``)."""
ITEM_TASKS = tuple(t for t in TASKS if t not in ORDER_TASKS)  # built by ``zste_items``
CLASS, BEFORE, WHILE, FIRST, SECOND, SIMULTANEOUS = range(6)  # caption kinds (``TaskItems.kind``)


@dataclass(frozen=True, kw_only=True)
class ZsteTemplates:
    """Prompt templates and candidate counts of ZSTE (SPEC §4; defaults from paper B.4).

    ``before``/``while_`` take ``{x}`` (the FIRST event) and ``{y}``; ``position`` takes
    ``{pos}`` ∈ {first, second} and ``{x}``; ``n_candidates_4``: size of the 4A/4B list (3 true
    captions + distractors); ``n_candidates_5b``: ``simultaneous`` prompts in 5B (2 correct +
    distractors).
    """

    class_prompt: str = "The sound of {x}"
    before: str = "{x} before {y}"
    while_: str = "{x} while {y}"
    position: str = "In this concatenated sound, the {pos} sound is {x}"
    simultaneous: str = "Simultaneous sound of {x} and {y}"
    n_candidates_4: int = 50
    n_candidates_5b: int = 50

    def __post_init__(self) -> None:
        for name, want in (("class_prompt", {"x"}), ("before", {"x", "y"}), ("while_", {"x", "y"}),
                           ("position", {"pos", "x"}), ("simultaneous", {"x", "y"})):
            check_template(getattr(self, name), want, owner=f"ZsteTemplates.{name}")


def evaluation_wording(templates: ZsteTemplates, heldout, *,
                       zero_shot_prompt: str) -> dict[str, str]:
    """Every evaluation prompt template by name (SPEC §1 "No evaluation wording in training"):
    the ZSTE prompts, the zero-shot classification prompt and the held-out phrasing family
    (a ``PhrasingFamily``-like object with tuples ``sequence``, ``overlay``, ``position``)."""
    out = {f"zste.{name}": getattr(templates, name)
           for name in ("class_prompt", "before", "while_", "position", "simultaneous")}
    out["zero_shot.prompt"] = zero_shot_prompt
    for relation in ("sequence", "overlay", "position"):
        out |= {f"heldout.{relation}[{n}]": t for n, t in enumerate(getattr(heldout, relation))}
    return out


@dataclass(frozen=True)
class Phrasing:
    """One template per relation; ``None`` = the family has none (tasks using it are skipped)."""

    sequence: str | None
    overlay: str | None
    position: str | None


def default_phrasing(templates: ZsteTemplates) -> list[Phrasing]:
    return [Phrasing(templates.before, templates.while_, templates.position)]


def family_phrasings(family) -> list[Phrasing]:
    """Every combination of a ``PhrasingFamily``-like object's templates (attributes
    ``sequence``, ``overlay``, ``position``: tuples of templates; an empty tuple → ``None``)."""
    lists = []
    for name, want in (("sequence", {"x", "y"}), ("overlay", {"x", "y"}), ("position", {"pos", "x"})):
        value = getattr(family, name, None)
        if isinstance(value, str) or not isinstance(value, (tuple, list)):
            raise ValueError(f"family.{name}: expected a tuple of templates, got {value!r}")
        for n, text in enumerate(value):
            check_template(text, want, owner=f"family.{name}[{n}]")
        lists.append(tuple(value) or (None,))
    return [Phrasing(*combo) for combo in itertools.product(*lists)]


@dataclass(frozen=True, kw_only=True, eq=False)
class TaskItems:
    """The deduplicated items of one task (:mod:`teminal.eval.prompts` doc). Arrays have one entry per item [N].

    key: audio identity; source: ``single``/``seq``/``rev``/``mix`` and row: where its audio is
    in the inputs (first occurrence); i, j: that row's classes (1A: i = label, j = -1);
    cluster; phrasing: index into the phrasing list; candidates [N, C] text indices,
    correct [N, C] bool, kind [N, C] caption kinds; top, rule: how ``topk_credit`` scores it.
    3A-c only: parts [N, 2] = positions of its seq and rev item in the 3A items (C = 0);
    3W only: parts [N, 3] = its seq and rev item in the 3A items and its mix item in 3B.
    """

    task: str
    key: np.ndarray
    source: np.ndarray
    row: np.ndarray
    i: np.ndarray
    j: np.ndarray
    cluster: np.ndarray
    phrasing: np.ndarray
    candidates: np.ndarray
    correct: np.ndarray
    kind: np.ndarray
    top: int
    rule: str
    parts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.key)


@dataclass(frozen=True, kw_only=True, eq=False)
class ZsteItems:
    """All items of one evaluation: ``texts [U]`` (encode once) and ``tasks`` (task → items,
    in ``TASKS`` order; 3A is present whenever 3A-c or 3W is, 3B whenever 3W is)."""

    texts: list[str]
    tasks: dict[str, TaskItems]
    n_classes: int
    n_candidates_4: int
    n_candidates_5b: int


def check_class_names(class_names) -> int:
    """K of ``class_names``; SanityError unless K ≥ ``gates.MIN_CLASSES`` distinct names (SPEC §6)."""
    names = list(class_names)
    if len(names) < MIN_CLASSES:
        raise SanityError(f"class_names: ZSTE needs K >= {MIN_CLASSES} classes, got {len(names)}; "
                          f"evaluate on a larger class subset")
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


def check_eval_pairs(pairs: np.ndarray) -> int:
    """Distinct unordered class pairs of ``pairs [P, 2]``; SanityError under ``MIN_EVAL_PAIRS``."""
    n = len(unordered_pairs(pairs[:, 0], pairs[:, 1]))  # pairs [P, 2]
    if n < MIN_EVAL_PAIRS:
        raise SanityError(
            f"ZSTE evaluation set: {n} distinct unordered class pairs, fewer than "
            f"gates.MIN_EVAL_PAIRS={MIN_EVAL_PAIRS}; the bootstrap over pairs would be "
            f"meaningless (SPEC §6). Use more classes or a larger test_fraction.")
    return n


def check_keys(keys, n: int, name: str) -> np.ndarray:
    """Audio identities as an object array [n] of non-empty strings; else ValueError."""
    arr = np.asarray(list(keys), dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} audio keys (one per row), got shape {arr.shape}")
    bad = [k for k in arr.tolist() if not isinstance(k, str) or not k]
    if bad:
        raise ValueError(f"{name}: audio keys must be non-empty strings, got {bad[0]!r}")
    return arr
