"""Three events, task ``3C`` (SPEC §4; evaluation only; rules in :mod:`teminal.eval.order`).

A triple is three classes whose three unordered pairs are all held-out evaluation pairs; its
clips are the ones those evaluation rows use (class x's clip: the first row of the triple's
pairs that holds x). Each of the six orders of the three clips is one audio
``level(a_x) ⊕ level(a_y) ⊕ level(a_z)``, brought back to the level and peak limited like every
composite (:func:`compose_three`, SPEC §1), asked to pick its order among the six captions
``"{x} before {y} before {z}"``.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from teminal.audio import Recipe, finish, level
from teminal.eval.order import unit_rows
from teminal.data.captions import check_template
from teminal.data.vocabulary import unordered_pairs
from teminal.eval.scoring import topk_credit

TRIPLE_TEMPLATE = "{x} before {y} before {z}"
ORDERS = list(itertools.permutations(range(3)))  # the six orders of a triple


@dataclass(frozen=True, kw_only=True)
class TripleItems:
    """Items of 3C: one per (triple, order). Arrays have one entry per item [N]."""

    key: np.ndarray  # "seq3|<clip x>|<clip y>|<clip z>"
    clips: np.ndarray  # [N, 3] clip filenames in played order
    classes: np.ndarray  # [N, 3] classes in played order
    cluster: np.ndarray  # the unordered triple, (lo·K + mid)·K + hi
    texts: list[str]  # unique captions
    candidates: np.ndarray  # [N, 6] indices into texts
    correct: np.ndarray  # [N, 6] bool

    def __len__(self) -> int:
        return len(self.key)


def held_out_triples(pairs, n_classes: int) -> np.ndarray:
    """Sorted class triples [Q, 3] whose three unordered pairs all appear in ``pairs [P, 2]``."""
    arr = np.asarray(pairs).reshape(-1, 2)  # [P, 2]
    have = unordered_pairs(arr[:, 0], arr[:, 1])
    return np.array([t for t in itertools.combinations(range(n_classes), 3)
                     if all(p in have for p in itertools.combinations(t, 2))],
                    dtype=np.int64).reshape(-1, 3)


def pick_triples(triples: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """``n`` of ``triples [Q, 3]`` drawn without replacement with ``seed`` (all of them when
    ``n`` ≥ Q), in their sorted order. A draw, not the first ``n``: the first triples of the
    sorted list all share the lowest classes, and a class bootstrap over two classes says
    nothing."""
    if n >= len(triples):
        return triples
    pick = np.random.default_rng(seed).choice(len(triples), size=n, replace=False)
    return triples[np.sort(pick)]


def triple_clips(rows: pd.DataFrame, triples: np.ndarray) -> np.ndarray:
    """[Q, 3] clip of each class of each triple, from evaluation ``rows`` (columns i, j,
    clip_i, clip_j): the first row of the triple's pairs that holds the class."""
    out = []
    for t in triples.tolist():
        inside = rows[rows["i"].isin(t) & rows["j"].isin(t)]
        clip = {}
        for r in inside.itertuples():
            clip.setdefault(int(r.i), r.clip_i)
            clip.setdefault(int(r.j), r.clip_j)
        out.append([clip[c] for c in t])
    return np.array(out, dtype=object).reshape(-1, 3)


def triple_items(triples: np.ndarray, clips: np.ndarray, class_names: list[str], *,
                 template: str = TRIPLE_TEMPLATE) -> TripleItems:
    """Every order of every triple (module doc)."""
    check_template(template, {"x", "y", "z"}, owner="3C template")
    if len(triples) == 0:
        raise ValueError("3C: no class triple has all three unordered pairs held out; use more "
                         "classes or a larger test_fraction")
    k = len(class_names)
    texts: dict[str, int] = {}
    keys, cl, cls, cand, clus = [], [], [], [], []
    for t, c in zip(triples.tolist(), clips.tolist()):
        caps = [texts.setdefault(template.format(x=class_names[t[a]], y=class_names[t[b]],
                                                 z=class_names[t[d]]), len(texts))
                for a, b, d in ORDERS]
        lo, mid, hi = sorted(t)
        for a, b, d in ORDERS:
            keys.append("|".join(["seq3", c[a], c[b], c[d]]))
            cl.append([c[a], c[b], c[d]])
            cls.append([t[a], t[b], t[d]])
            cand.append(caps)
            clus.append((lo * k + mid) * k + hi)
    n = len(keys)
    correct = np.zeros((n, 6), dtype=bool)
    correct[np.arange(n), np.tile(np.arange(6), n // 6)] = True  # order o ↔ caption o
    return TripleItems(key=np.array(keys, dtype=object), clips=np.array(cl, dtype=object),
                       classes=np.array(cls, dtype=np.int64), cluster=np.array(clus),
                       texts=list(texts), candidates=np.array(cand, dtype=np.int64),
                       correct=correct)


def compose_three(parts: list[np.ndarray], recipe: Recipe) -> np.ndarray:
    """``level(a) ⊕ level(b) ⊕ level(c)``, back to ``level_rms``, crest and peak limited as
    every composite (``teminal.audio.finish``, SPEC §1)."""
    if recipe.level_rms is not None:
        parts = [level(p, recipe.level_rms) for p in parts]
    return finish(np.concatenate(parts).astype(np.float32), recipe, composite=True)


def render_triple(key: str, read: Callable[[str], np.ndarray], recipe: Recipe) -> np.ndarray:
    """Samples of a 3C audio key ``seq3|<clip x>|<clip y>|<clip z>`` (``TripleItems.key``):
    :func:`compose_three` of the clips ``read(filename)``, in played order."""
    kind, *clips = key.split("|")
    if kind != "seq3" or len(clips) != 3:
        raise ValueError(f"{key!r} is not a three-event audio key ('seq3|x|y|z')")
    return compose_three([read(c) for c in clips], recipe)


def three_event_frame(items: TripleItems, audio, embed_text: Callable[[list[str]], object], *,
                      tie_tol: float = 1e-6) -> pd.DataFrame:
    """Per-item 3C frame (ZSTE item columns + ``k``) from audio embeddings [N, d] of the items."""
    a = unit_rows(audio)  # (N, d)
    if a.shape[0] != len(items):
        raise ValueError(f"3C audio: expected {len(items)} rows (one per item), got {a.shape[0]}")
    t = unit_rows(embed_text(items.texts))  # (U, d)
    sim = torch.einsum("nd,ncd->nc", a, t[torch.as_tensor(items.candidates)])  # (N, 6)
    credit, tied = topk_credit(sim, items.correct, k=1, rule="frac", tie_tol=tie_tol)
    texts = np.asarray(items.texts, dtype=object)
    best = items.candidates[np.arange(len(items)), sim.argmax(1).numpy()]
    right = items.candidates[items.correct]
    return pd.DataFrame({
        "row": np.arange(len(items)), "audio": "seq3", "i": items.classes[:, 0],
        "j": items.classes[:, 1], "k": items.classes[:, 2], "key": items.key,
        "cluster": items.cluster, "phrasing": 0, "score": credit.numpy(), "tied": tied.numpy(),
        "predicted": texts[best], "target": texts[right]})
