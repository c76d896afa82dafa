"""Class subsets of a base set, for quick looks (SPEC §1 "A subset of classes", §6).

``select_classes(base, classes, *, seed=None)`` keeps some classes of ``base`` and re-indexes
their targets to ``0..K'-1`` (in order of the current target); ``source_target`` keeps the
target of the folder's csv. A subset under ``MIN_CLASSES`` (3) classes is a ``SanityError``
(SPEC §6: pair intervals would be meaningless).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from teminal.data.base_set import BaseSet, DatasetError
from teminal.gates import MIN_CLASSES, SanityError


def select_classes(base: BaseSet, classes: int | list[str] | None, *,
                   seed: int | None = None) -> BaseSet:
    """``base`` restricted to some classes (SPEC §1); all classes → ``base`` itself.

    ``classes``: ``None`` → ``base`` itself; an int K → the first K classes by target (with
    ``seed``: K classes drawn with that seed); a list → those classes, by label text
    (``"dog bark"``) or category (``"dog_bark"``). Unknown names or K larger than the base set
    → ``DatasetError``; fewer than 3 classes → ``SanityError``. The subset's ``name`` records
    the choice (``"esc50[10 classes]"``) and its ``fingerprint`` differs from the full set's.
    """
    if classes is None:
        return base
    k = len(base.classes)
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        keep, what = by_count(base, int(classes), seed=seed)
    elif isinstance(classes, (list, tuple)):
        if seed is not None:
            raise ValueError("select_classes: seed only applies to a class count, not to a "
                             "list of names; drop the seed")
        keep = by_name(base, list(classes))
        what = ", ".join(base.classes[t] for t in keep)
    else:
        raise ValueError(f"classes must be None, a class count or a list of class names, "
                         f"got {classes!r}")
    if keep == list(range(k)):
        return base  # every class: the same content, the same fingerprint
    return subset(base, keep, name=f"{base.name}[{what}]")


def by_count(base: BaseSet, count: int, *, seed: int | None) -> tuple[list[int], str]:
    """Targets of ``count`` classes: the first ones, or drawn with ``seed``; and a description."""
    k = len(base.classes)
    if count < MIN_CLASSES:
        raise SanityError(f"a class subset of {count} classes is under {MIN_CLASSES}: the pair "
                          f"tasks and their intervals would be meaningless (SPEC §6); ask for "
                          f"at least {MIN_CLASSES} classes")
    if count > k:
        raise DatasetError(f"cannot select {count} classes: base set {base.name} has {k}; ask "
                           f"for at most {k} (or None for all)")
    if seed is None:
        return list(range(count)), f"{count} classes"
    drawn = np.random.default_rng([seed, 5]).choice(k, size=count, replace=False)
    return sorted(int(t) for t in drawn), f"{count} classes, seed {seed}"


def by_name(base: BaseSet, names: list[str]) -> list[int]:
    """Targets of the classes named by label text or category; sorted by target."""
    lookup = {}
    for t, label in enumerate(base.classes):
        lookup[label] = t
        lookup[label.replace(" ", "_")] = t
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise DatasetError(f"unknown classes {unknown} for base set {base.name}; valid names "
                           f"(label text or category): {base.classes}")
    targets = [lookup[n] for n in names]
    twice = sorted({base.classes[t] for t in targets if targets.count(t) > 1})
    if twice:
        raise DatasetError(f"classes listed twice: {twice}; list each class once")
    if len(targets) < MIN_CLASSES:
        raise SanityError(f"a class subset of {len(targets)} classes ({names}) is under "
                          f"{MIN_CLASSES}: the pair tasks and their intervals would be "
                          f"meaningless (SPEC §6); list at least {MIN_CLASSES} classes")
    return sorted(targets)


def subset(base: BaseSet, keep: list[int], *, name: str) -> BaseSet:
    """A new ``BaseSet`` with the clips of targets ``keep`` (sorted), re-indexed 0..K'-1."""
    clips = base.clips[base.clips["target"].isin(keep)].copy()
    if "source_target" not in clips.columns:
        clips["source_target"] = clips["target"]
    clips["target"] = clips["target"].map({t: n for n, t in enumerate(keep)})
    return replace(base, clips=clips.reset_index(drop=True),
                   classes=[base.classes[t] for t in keep], name=name)
