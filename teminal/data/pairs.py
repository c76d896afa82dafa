"""Temporal pair manifests: which clips are paired, with which captions, on which split.

SPEC §1 and paper Algorithm 1. Every ordered class pair ``(i, j)``, ``i ≠ j``, gives stage-B rows
(three samples each: forward ``a_i ⊕ a_j``, reversed ``a_j ⊕ a_i`` with the same clips, overlay
``(a_i ⊕ a_i') ∧ (a_j ⊕ a_j')``) and stage-A rows (the single ``a_i ⊕ a_i'`` and the double
``a_i ⊕ a_j``); ``a_i'`` (column ``clip_i2``) is another clip of class i from the same split, so
no composite repeats itself — only where a split holds one clip of a class (always with
``pairing="paper"``) is it the same clip, a loop (``looped_rows`` counts them). Clips are drawn
per UNORDERED class pair: draw ``d`` of ``{i, j}`` is used by both rows ``(i, j)`` and ``(j, i)``,
so row ``(i, j)``'s forward audio is row ``(j, i)``'s reversed audio. Unordered pairs
are split by one seeded rule (``unordered_sides``): ``test_fraction`` → held out, then
``val_fraction`` of the rest → val, the rest → train; ``(i, j)`` and ``(j, i)`` share a side.

Pair-table splits (column ``split``, ``SPLITS``):

- ``pairing="folds"``: "test" = held-out class pairs with clips ONLY from the test fold;
  "train"/"val" = their class pairs with clips only from the other folds; "seen" = TRAIN class
  pairs with test-fold clips (the seen-combinations evaluation set). No class pair and no clip
  is in both a training (train/val) row and a "test" row; no clip is in a training and a
  "seen" row. ``train_repeats`` / ``eval_repeats``: clip draws per unordered pair.
- ``pairing="paper"``: one clip per class (seeded) for every row (paper B.5); no "seen" rows.

Singles (``SINGLE_SPLITS``): "test" = Task-1 clips (the test fold; with ``paper`` those not
drawn for pairs); "paired" = clips drawn for pairs that a test pair row uses (``paper``: neither
pretraining nor Task 1); every other clip may pretrain the embedded backbone: "val" in the val
fold, else "train".

Stage-B rows carry the paper captions (``caption_f/r/o``, ``phrasing`` before/after seeded per
row; ``T`` keeps the phrasing and swaps the events) and one paraphrase draw per row from the
training family (``para_f/r/o``; r uses f's template with the events swapped). Manifests hold
clip filenames and captions only; audio is composed on the fly (``clips.render``).

Where things live: drawing and splitting the pairs (``PairingConfig``, ``build_manifests``) here;
the column names and what a row's composites are in :mod:`teminal.data.vocabulary`; the splits
(``SPLITS``), the ``Manifests`` container and its files (hash, write, read) in
:mod:`teminal.data.manifest_files`; the captions in :mod:`teminal.data.captions`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from teminal.data.base_set import BaseSet
from teminal.data.captions import (HELDOUT_FAMILY, TRAINING_FAMILY, CaptionTemplates,
                                   PhrasingFamily, check_disjoint, stage_a_captions,
                                   stage_b_captions)
from teminal.data.manifest_files import SPLITS, Manifests, manifest_hash
from teminal.data.vocabulary import (CLIP_COLUMNS, SINGLE_CAPTION, SINGLES_COLUMNS,
                                     STAGE_A_COLUMNS, STAGE_B_COLUMNS, unordered_pairs)
from teminal.gates import MIN_CLASSES, SanityError


@dataclass(frozen=True, kw_only=True)
class PairingConfig:
    """How pairs are drawn and split (SPEC §1). ``test_fold=None`` → the highest fold label of
    the base set; ``val_fold=None`` → the next lower fold (the next higher if the test fold is
    the lowest) when the base set has ≥ 3 folds, else no val fold. ``train_repeats`` /
    ``eval_repeats``: clip draws per unordered class pair for train / val, test and seen
    (``folds`` only: ``paper`` has one clip per class)."""

    pairing: str = "folds"
    seed: int = 0
    test_fraction: float = 0.3
    val_fraction: float = 0.1
    test_fold: int | None = None
    val_fold: int | None = None
    train_repeats: int = 1
    eval_repeats: int = 1

    def __post_init__(self) -> None:
        def integer(x: object) -> bool:
            return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

        checks = {
            "pairing": self.pairing in ("paper", "folds"),
            "seed": integer(self.seed) and self.seed >= 0,
            "test_fraction": 0 < self.test_fraction < 1,
            "val_fraction": 0 <= self.val_fraction < 1,
            "test_fold": self.test_fold is None or integer(self.test_fold),
            "val_fold": self.val_fold is None or (integer(self.val_fold)
                                                  and self.val_fold != self.test_fold),
            "train_repeats": integer(self.train_repeats) and self.train_repeats >= 1,
            "eval_repeats": integer(self.eval_repeats) and self.eval_repeats >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"PairingConfig: invalid {bad[0]}={getattr(self, bad[0])!r} "
                             f"(pairing in 'paper'/'folds', fractions in [0, 1), folds integers "
                             f"or None with val_fold != test_fold, repeats >= 1)")

    def resolve_folds(self, folds: list[int], *, name: str = "base set") -> tuple[int, int | None]:
        """``(test_fold, val_fold or None)`` for a base set with fold labels ``folds``."""
        for param in ("test_fold", "val_fold"):
            value = getattr(self, param)
            if value is not None and value not in folds:
                raise ValueError(f"PairingConfig.{param}={value} is not a fold of {name} (its "
                                 f"folds: {folds}); set {param} to one of them, or None for "
                                 f"the default")
        test = max(folds) if self.test_fold is None else int(self.test_fold)
        if self.val_fold is not None:
            if self.val_fold == test:
                raise ValueError(f"PairingConfig.val_fold={self.val_fold} is the test fold of "
                                 f"{name}; pick another val_fold (or set test_fold)")
            return test, int(self.val_fold)
        if len(folds) < 3:
            return test, None
        lower = [f for f in folds if f < test]
        return test, (max(lower) if lower else min(f for f in folds if f > test))


def eval_pair_count(manifests: Manifests, split: str) -> int:
    """Distinct unordered class pairs among the stage-B rows of ``split`` (SPEC §6 gate)."""
    rows = manifests.stage_b[manifests.stage_b["split"] == split]
    return len(unordered_pairs(rows["i"], rows["j"]))


# ----------------------------------------------------------------------------------- building
def build_manifests(base: BaseSet, *, pairing: PairingConfig,
                    templates: CaptionTemplates | None = None,
                    family: PhrasingFamily = TRAINING_FAMILY,
                    heldout: PhrasingFamily = HELDOUT_FAMILY) -> Manifests:
    """Singles, stage-A and stage-B tables of ``base`` (SPEC §1; deterministic in the seed).

    ``family``: the training paraphrases (``para_*`` columns); ``heldout``: the ZSTE-only family,
    checked to share no phrasing with ``family`` or ``templates`` (``check_disjoint``). Raises
    ``SanityError`` under 3 classes and ``ValueError`` naming the class, split and fold(s) when
    a split needs a clip the base set lacks.
    """
    templates = templates or CaptionTemplates()
    k = len(base.classes)
    if k < MIN_CLASSES:
        raise SanityError(f"base set {base.name} has {k} classes; pairs need at least "
                          f"{MIN_CLASSES} (SPEC §6)")
    if not family.sequence or not family.overlay:
        raise ValueError("the training family needs at least one sequence and one overlay "
                         "template")
    check_disjoint(family, heldout)
    check_disjoint(templates.family(), heldout)
    test_fold, val_fold = pairing.resolve_folds(base.folds, name=f"base set {base.name}")
    if pairing.pairing == "folds" and len(base.folds) < 2:
        raise ValueError(f"pairing: folds needs at least 2 folds (training clips from other "
                         f"folds than the test fold); base set {base.name} has folds "
                         f"{base.folds}: use pairing: paper")
    clips = base.clips[["filename", "fold", "target"]].sort_values(["target", "filename"])
    sides = unordered_sides(k, test_fraction=pairing.test_fraction,
                            val_fraction=pairing.val_fraction, seed=pairing.seed)
    if pairing.pairing == "paper":
        rows = paper_rows(k, one_clip_per_class(clips, k, seed=pairing.seed), sides)
    else:
        rows = folds_rows(clips, base, sides, pairing, test_fold=test_fold)
    rows["label_i"] = [base.classes[t] for t in rows["i"]]
    rows["label_j"] = [base.classes[t] for t in rows["j"]]
    singles = singles_table(clips, base, rows, templates, paper=pairing.pairing == "paper",
                            test_fold=test_fold, val_fold=val_fold)
    tables = {"singles": singles, "stage_a": stage_a_table(rows, templates),
              "stage_b": stage_b_table(rows, templates, family, pairing.seed)}
    config = {"pairing": {**asdict(pairing), "test_fold": test_fold, "val_fold": val_fold,
                          "folds": base.folds},
              "templates": asdict(templates),
              "families": {"training": asdict(family), "heldout": asdict(heldout)},
              "base": {"name": base.name, "fingerprint": base.fingerprint, "n_classes": k,
                       "n_clips": int(len(clips))}}
    return Manifests(**tables, hashes={n: manifest_hash(df) for n, df in tables.items()},
                     config=config)


def one_clip_per_class(clips: pd.DataFrame, k: int, *, seed: int) -> np.ndarray:
    """The ``paper`` choice: one clip of each class, drawn by ``seed``. (K,) filenames."""
    rng = np.random.default_rng([seed, 0])
    return np.array([rng.choice(clips.loc[clips["target"] == t, "filename"].to_numpy())
                     for t in range(k)])


def unordered_sides(k: int, *, test_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    """(K, K) split name of each class pair, symmetric: ``(i, j)`` and ``(j, i)`` agree."""
    a, b = np.triu_indices(k, 1)
    order = np.random.default_rng([seed, 1]).permutation(len(a))
    n_test = int(round(test_fraction * len(a)))
    n_val = int(round(val_fraction * (len(a) - n_test)))
    if n_test + n_val >= len(a):
        raise ValueError(f"{k} classes give {len(a)} unordered pairs: too few for "
                         f"test_fraction={test_fraction}, val_fraction={val_fraction}")
    side = np.full(len(a), "train", dtype=object)
    side[order[:n_test]] = "test"
    side[order[n_test:n_test + n_val]] = "val"
    table = np.full((k, k), "", dtype=object)
    table[a, b] = side
    table[b, a] = side
    return table


def ordered_pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``(i, j)``, ``i ≠ j``, in row-major order: K(K-1) pairs."""
    i, j = np.nonzero(~np.eye(k, dtype=bool))
    return i, j


def paper_rows(k: int, chosen: np.ndarray, sides: np.ndarray) -> pd.DataFrame:
    """Every ordered pair once (draw 0) with the chosen clip of each class."""
    i, j = ordered_pairs(k)
    rows = pd.DataFrame({"pair": i * k + j, "i": i, "j": j, "draw": 0, "clip_i": chosen[i],
                         "clip_j": chosen[j], "clip_i2": chosen[i], "clip_j2": chosen[j],
                         "split": sides[i, j]})  # one clip per class: the second is a loop
    return order_rows(rows)


def folds_rows(clips: pd.DataFrame, base: BaseSet, sides: np.ndarray, cfg: PairingConfig, *,
               test_fold: int) -> pd.DataFrame:
    """train/val rows from non-test-fold clips, test/seen rows from test-fold clips."""
    in_test = clips["fold"].to_numpy() == test_fold
    other = [f for f in base.folds if f != test_fold]
    plan = [("train", "train", ~in_test, other, cfg.train_repeats),
            ("val", "val", ~in_test, other, cfg.eval_repeats),
            ("test", "test", in_test, [test_fold], cfg.eval_repeats),
            ("seen", "train", in_test, [test_fold], cfg.eval_repeats)]
    a, b = np.triu_indices(len(base.classes), 1)
    parts = []
    for n, (split, side, pool, folds, repeats) in enumerate(plan):
        keep = sides[a, b] == side
        rng = np.random.default_rng([cfg.seed, 3, n])  # one stream per split
        parts.append(draw_unordered(rng, clips[pool], a[keep], b[keep], base=base,
                                    repeats=repeats, split=split, folds=folds))
    return order_rows(pd.concat(parts, ignore_index=True))


def draw_unordered(rng: np.random.Generator, pool: pd.DataFrame, a: np.ndarray, b: np.ndarray, *,
                   base: BaseSet, repeats: int, split: str, folds: list[int]) -> pd.DataFrame:
    """``repeats`` clip draws per unordered pair ``{a, b}`` [P], each giving rows (a, b) and
    (b, a) with the same two clips. ``pool``: clips sorted by (target, filename)."""
    k = len(base.classes)
    counts = np.bincount(pool["target"], minlength=k)
    need = sorted(set(a.tolist()) | set(b.tolist()))
    lacking = [base.classes[t] for t in need if counts[t] == 0]
    if lacking:
        raise ValueError(f"base set {base.name}: classes {lacking} have no clip in fold(s) "
                         f"{folds}, which the {split!r} pair rows need; pick other folds "
                         f"(test_fold) or leave those classes out (select_classes)")
    files = pool["filename"].to_numpy()
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    d = np.tile(np.arange(repeats), len(a))  # (P·repeats,) draw index
    a, b = np.repeat(a, repeats), np.repeat(b, repeats)  # (P·repeats,)
    na = (rng.random(len(a)) * counts[a]).astype(int)  # (P·repeats,) clip of a in its class
    nb = (rng.random(len(b)) * counts[b]).astype(int)
    ca, cb = files[start[a] + na], files[start[b] + nb]
    ca2, cb2 = (files[start[c] + _other(rng, n, counts[c])] for c, n in ((a, na), (b, nb)))
    i, j = np.concatenate([a, b]), np.concatenate([b, a])
    return pd.DataFrame({"pair": i * k + j, "i": i, "j": j, "draw": np.concatenate([d, d]),
                         "clip_i": np.concatenate([ca, cb]), "clip_j": np.concatenate([cb, ca]),
                         "clip_i2": np.concatenate([ca2, cb2]),
                         "clip_j2": np.concatenate([cb2, ca2]), "split": split})


def _other(rng: np.random.Generator, n: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per entry, an index in ``[0, count)`` other than ``n`` (uniform), or ``n`` itself where
    ``count == 1`` (a loop: the split holds one clip of that class)."""
    shift = 1 + (rng.random(len(n)) * np.maximum(count - 1, 1)).astype(int)
    return np.where(count > 1, (n + shift) % np.maximum(count, 1), n)


def looped_rows(manifests: Manifests) -> dict[str, int]:
    """Pair rows per table whose composites loop a clip (``clip_i2 == clip_i`` or
    ``clip_j2 == clip_j``): SPEC §1 allows it only where a split holds one clip of a class."""
    out = {}
    for name in ("stage_a", "stage_b"):
        df = getattr(manifests, name)
        out[name] = int(((df["clip_i2"] == df["clip_i"]) | (df["clip_j2"] == df["clip_j"])).sum())
    return out


def order_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered train, val, test, seen, then by pair and draw."""
    key = rows["split"].map({s: n for n, s in enumerate(SPLITS)})
    return rows.assign(_k=key).sort_values(["_k", "pair", "draw"], kind="stable") \
        .drop(columns="_k").reset_index(drop=True)


def singles_table(clips: pd.DataFrame, base: BaseSet, rows: pd.DataFrame, t: CaptionTemplates, *,
                  paper: bool, test_fold: int, val_fold: int | None) -> pd.DataFrame:
    """One row per clip; split as in the module docstring (SPEC §1 "Single clips")."""
    fold = clips["fold"].to_numpy()
    used = list(CLIP_COLUMNS)
    drawn = clips["filename"].isin(pd.concat([rows[c] for c in used])).to_numpy()
    evals = rows[rows["split"].isin(["test", "seen"])]
    in_eval = clips["filename"].isin(pd.concat([evals[c] for c in used])).to_numpy()
    task1 = (fold == test_fold) & ~(drawn & paper)  # paper: clips drawn for pairs are not Task 1
    in_val = (fold == val_fold) if val_fold is not None else np.zeros(len(fold), bool)
    split = np.where(task1, "test", np.where(in_eval, "paired", np.where(in_val, "val", "train")))
    out = pd.DataFrame({"clip": clips["filename"].to_numpy(), "target": clips["target"].to_numpy()})
    out["label"] = [base.classes[c] for c in out["target"]]
    out[SINGLE_CAPTION] = [t.class_prompt.format(x=x) for x in out["label"]]
    out["split"] = split
    return out[SINGLES_COLUMNS].reset_index(drop=True)


def stage_a_table(rows: pd.DataFrame, t: CaptionTemplates) -> pd.DataFrame:
    """Single = ``a_i ⊕ a_i'`` (key ``span``), double = ``a_i ⊕ a_j`` (SPEC §1, paper B.2)."""
    return stage_a_captions(rows, t)[STAGE_A_COLUMNS]


def stage_b_table(rows: pd.DataFrame, t: CaptionTemplates, family: PhrasingFamily,
                  seed: int) -> pd.DataFrame:
    """f = ``a_i ⊕ a_j``, r = T(f) = ``a_j ⊕ a_i``, o = ``(a_i ⊕ a_i') ∧ (a_j ⊕ a_j')``, with
    their captions."""
    return stage_b_captions(rows, t, family, seed=seed)[STAGE_B_COLUMNS]
