"""Caption templates and phrasing families (SPEC §1 "Captions", §4 "Held-out phrasings").

- ``CaptionTemplates``: the paper's templates (stage A single/double, stage B before/after/while,
  the class prompt of single clips, which the embedded backbone pretrains on: a wording of its
  own, not ZSTE's "The sound of {x}", SPEC §1); ``{x}`` is the FIRST event in time, ``{y}`` the
  second.
- ``PhrasingFamily``: several phrasings per relation. ``TRAINING_FAMILY`` holds the paper's
  phrasings and paraphrases of them (one drawn per training sample); ``HELDOUT_FAMILY`` is
  never used in training and exists only for ZSTE (SPEC §4): its key words never occur in the
  training family, and ``check_disjoint`` proves no held-out caption equals a training one.

- ``BINDING_FAMILY`` (issue 23, SPEC §1 "mirror-worded"): the training sequence phrasings split
  by word order — ``direct`` ones name the first event first, ``mirror`` ones the second event
  first (``word_order``) — in equal numbers, so a stage-B share of mirror-worded samples
  (``stage_b.mirror_share``) is controlled exactly. ``VALIDATION_FAMILY``: phrasings used only
  to *choose* a binding recipe on validation pairs (``teminal.eval.selection``), neither trained on
  nor in the held-out family.

Small factories turn a template into a caption: ``sequence_caption``, ``overlay_caption``,
``position_caption``, and ``pair_captions`` (the three of a stage-B row); ``stage_a_captions`` /
``stage_b_captions`` caption manifest rows (columns from :mod:`teminal.data.vocabulary`).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from teminal.data.vocabulary import DOUBLE, FORWARD, REVERSED, SINGLE, STAGE_B

PHRASINGS = ("before", "after")
POSITIONS = ("first", "second")
WORD_ORDERS = ("direct", "mirror")
"""``direct``: the event heard first is named first (``"{x} before {y}"``); ``mirror``: the
event heard second is named first (``"{y} after {x}"``)."""


def placeholders(text: str, *, owner: str) -> set[str]:
    """The ``{name}`` fields of format string ``text``; ``ValueError`` naming ``owner`` if bad."""
    if not isinstance(text, str):
        raise ValueError(f"{owner}={text!r} must be a string")
    try:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{owner}={text!r} is not a format string: {exc}") from None


def check_template(text: str, want: set[str], *, owner: str) -> None:
    """``text`` must use exactly the placeholders ``want``."""
    found = placeholders(text, owner=owner)
    if found != want:
        raise ValueError(f"{owner}={text!r} must use exactly the placeholders {sorted(want)}, "
                         f"found {sorted(found)}")


def word_order(template: str) -> str:
    """``"direct"`` when the sequence ``template`` names ``{x}`` (the first event) before ``{y}``,
    ``"mirror"`` otherwise (SPEC §1): read from where the two fields stand, not from its words."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f in ("x", "y")]
    if sorted(fields) != ["x", "y"]:
        raise ValueError(f"word_order: {template!r} must name {{x}} and {{y}} once each")
    return WORD_ORDERS[0] if fields[0] == "x" else WORD_ORDERS[1]


def sequence_caption(template: str, first: str, second: str) -> str:
    """Caption of ``first ⊕ second`` (``{x}`` = first event, ``{y}`` = second)."""
    return template.format(x=first, y=second)


def overlay_caption(template: str, a: str, b: str) -> str:
    """Caption of ``a ∧ b`` (``{x}`` = a, ``{y}`` = b)."""
    return template.format(x=a, y=b)


def pair_captions(sequence: str, overlay: str, label_i: str, label_j: str) -> tuple[str, str, str]:
    """Captions of a pair row's forward ``a_i ⊕ a_j``, reversed ``a_j ⊕ a_i`` and overlay
    composites (the order of ``teminal.data.vocabulary.STAGE_B``; SPEC §1): ``sequence`` with
    class i first, with class j first, and ``overlay``. The reversed caption is T(forward)."""
    return (sequence_caption(sequence, label_i, label_j),
            sequence_caption(sequence, label_j, label_i),
            overlay_caption(overlay, label_i, label_j))


def position_caption(template: str, pos: str, x: str) -> str:
    """Caption saying event ``x`` is at position ``pos`` in ``POSITIONS`` (ZSTE 5A)."""
    if pos not in POSITIONS:
        raise ValueError(f"pos must be one of {POSITIONS}, got {pos!r}")
    return template.format(pos=pos, x=x)


@dataclass(frozen=True, kw_only=True)
class CaptionTemplates:
    """The paper's caption templates (SPEC §1, paper B.2). ``{x}`` is the FIRST event in time,
    ``{y}`` the second: the forward audio ``a_i ⊕ a_j`` reads ``"x_i before x_j"`` or
    ``"x_j after x_i"``."""

    single: str = "single sound of {x}"
    double: str = "combined sound of {x} and {y}"
    before: str = "{x} before {y}"
    after: str = "{y} after {x}"
    while_: str = "{x} while {y}"
    class_prompt: str = "a recording of {x}"

    def __post_init__(self) -> None:
        for name in ("single", "double", "before", "after", "while_", "class_prompt"):
            want = {"x"} if name in ("single", "class_prompt") else {"x", "y"}
            check_template(getattr(self, name), want, owner=f"CaptionTemplates.{name}")

    def phrasing(self, phrasing: str) -> str:
        """The sequence template of ``phrasing`` (``before``/``after``)."""
        if phrasing not in PHRASINGS:
            raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
        return getattr(self, phrasing)

    def sequence(self, first: str, second: str, phrasing: str) -> str:
        """Caption of ``first ⊕ second`` in ``phrasing`` (``before``/``after``)."""
        return sequence_caption(self.phrasing(phrasing), first, second)

    def family(self) -> "PhrasingFamily":
        """The stage-B phrasings of these templates as a family (no position phrasing)."""
        return PhrasingFamily(sequence=(self.before, self.after), overlay=(self.while_,))


@dataclass(frozen=True, kw_only=True)
class PhrasingFamily:
    """Phrasings per relation (SPEC §1 "paraphrases"). ``sequence``: templates of ``x ⊕ y`` with
    ``{x}`` = the FIRST event and ``{y}`` = the second; ``overlay``: templates of ``x ∧ y``;
    ``position``: templates with ``{pos}`` ∈ ``POSITIONS`` and ``{x}`` (ZSTE 5A). Lists are
    turned into tuples; placeholders and duplicates are checked."""

    sequence: tuple[str, ...]
    overlay: tuple[str, ...]
    position: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        want = {"sequence": {"x", "y"}, "overlay": {"x", "y"}, "position": {"pos", "x"}}
        for name, fields in want.items():
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)):
                raise ValueError(f"PhrasingFamily.{name} must be a tuple of templates, "
                                 f"got {value!r}")
            object.__setattr__(self, name, tuple(value))  # frozen: lists become tuples
            for n, text in enumerate(value):
                check_template(text, fields, owner=f"PhrasingFamily.{name}[{n}]")
            if len(set(value)) != len(value):
                raise ValueError(f"PhrasingFamily.{name} lists a template twice: {value!r}")

    def captions(self, names: tuple[str, str]) -> set[str]:
        """Every caption the family makes for the two class names, in both orders."""
        a, b = names
        out = {sequence_caption(t, x, y) for t in self.sequence for x, y in ((a, b), (b, a))}
        out |= {overlay_caption(t, x, y) for t in self.overlay for x, y in ((a, b), (b, a))}
        out |= {position_caption(t, p, x) for t in self.position for p in POSITIONS for x in (a, b)}
        return out

    def templates(self) -> set[str]:
        return set(self.sequence) | set(self.overlay) | set(self.position)


TRAINING_FAMILY = PhrasingFamily(
    sequence=("{x} before {y}", "{y} after {x}", "{x} followed by {y}", "{x}, then {y}",
              "first {x}, then {y}", "{y} follows {x}"),
    overlay=("{x} while {y}", "{x} and {y} at the same time"),
    position=(),  # ZSTE 5A's paper prompt is never trained on
)
"""The training paraphrases (SPEC §1); the paper's templates are members. Two name the second
event first ("{y} after {x}", "{y} follows {x}"), so word order alone never predicts audio order;
none shares three words in a row with a ZSTE prompt (``check_no_eval_wording``)."""

HELDOUT_FAMILY = PhrasingFamily(
    sequence=("{x} precedes {y}", "{y} comes later than {x}"),
    overlay=("{x} together with {y}", "{x} overlapping with {y}"),
    position=("{x} is heard {pos}",),
)
"""Phrasings only ZSTE uses (SPEC §4 "Held-out phrasings"): their key words (precedes, comes
later than, together with, overlapping with, heard) never occur in ``TRAINING_FAMILY``."""


BINDING_FAMILY = PhrasingFamily(
    sequence=("{x} before {y}", "{x} followed by {y}", "{x}, then {y}", "first {x}, then {y}",
              "{y} after {x}", "{y} follows {x}", "{y}, following {x}", "{y} once {x} is over"),
    overlay=TRAINING_FAMILY.overlay,
)
"""Training phrasings that force binding (issue 23, SPEC §1): ``TRAINING_FAMILY``'s sequence
phrasings plus two mirror-worded ones, four ``direct`` and four ``mirror`` (``word_order``), so
with ``stage_b.mirror_share: 0.5`` the class named first is heard first in exactly half of the
sequential samples and word order alone never predicts audio order. Drawn into the manifest
columns ``direct_f/r`` and ``mirror_f/r``; none of its words is a held-out key word."""

WIDE_BINDING_FAMILY = PhrasingFamily(
    sequence=BINDING_FAMILY.sequence[:4] + (
        "{x} ahead of {y}", "{x} prior to {y}", "{x} and afterwards {y}", "{x} gives way to {y}",
        "{x}, next {y}", "{x}, {y} right after it", "{x} until {y} starts", "{x}, and {y} after")
    + BINDING_FAMILY.sequence[4:] + (
        "{y} subsequent to {x}", "{y} succeeds {x}", "{y} in the wake of {x}",
        "{y} when {x} has ended", "{y} behind {x}", "{y}, {x} right before it",
        "{y} once {x} stops", "{y}, and {x} before"),
    overlay=TRAINING_FAMILY.overlay,
)
"""``BINDING_FAMILY`` with many more relation words (issue 23): twelve ``direct`` and twelve
``mirror`` sequence phrasings, "before" and "after" each in both word orders ("{x}, {y} right
after it" names the first event first), so neither word order nor a single relation word tells
the order (SPEC §1: word order alone never predicts audio order); none of its words is a
held-out or validation key word. Used by ``benchmarks/text_binding.py``; no pipeline row
trains on it."""

VALIDATION_FAMILY = PhrasingFamily(
    sequence=("{x} leads into {y}", "{y} trails {x}"),
    overlay=("{x} alongside {y}",),
)
"""Phrasings for choosing a binding recipe on validation pairs (``teminal.eval.selection``), one per
word order: never trained on and disjoint from ``HELDOUT_FAMILY``, so the held-out family stays
unseen by every choice (SPEC §4)."""


def split_by_word_order(family: PhrasingFamily) -> dict[str, tuple[str, ...]]:
    """The sequence templates of ``family`` by ``word_order`` (``WORD_ORDERS`` keys)."""
    out = {w: tuple(t for t in family.sequence if word_order(t) == w) for w in WORD_ORDERS}
    empty = [w for w, ts in out.items() if not ts]
    if empty:
        raise ValueError(f"the phrasing family has no {empty} sequence template: a share of "
                         f"mirror-worded captions needs both word orders")
    return out


def normalize(text: str) -> str:
    """Lower case, punctuation removed, single spaces: "A, then B" and "a then b" are equal."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def check_disjoint(train: PhrasingFamily, heldout: PhrasingFamily, *,
                   names: tuple[str, str] = ("dog bark", "rain")) -> None:
    """Raise ``ValueError`` if a held-out template, or a caption it makes for the two class
    ``names`` (both orders), equals a training one, up to case and punctuation (SPEC §4)."""
    train_t = {normalize(t): t for t in train.templates()}
    same = sorted(t for t in heldout.templates() if normalize(t) in train_t)
    if same:
        raise ValueError(f"held-out phrasings {same} are also training phrasings; the held-out "
                         f"family must never be trained on: reword them")
    train_c = {normalize(c) for c in train.captions(names)}
    clash = sorted(c for c in heldout.captions(names) if normalize(c) in train_c)
    if clash:
        raise ValueError(f"held-out captions {clash} equal training captions for classes "
                         f"{names}; reword the held-out family")


MIN_SHARED_RUN = 3
"""SPEC §1: no training template shares a run of this many words with an evaluation prompt."""


def word_runs(template: str, *, n: int = MIN_SHARED_RUN) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive words of ``template`` that no class slot interrupts
    (SPEC §1 "No evaluation wording in training"): ``{x}``, ``{y}``, ``{z}`` split the text;
    ``{pos}`` is a word, expanded to each of ``POSITIONS``. Words are ``normalize``d."""
    texts = [template.replace("{pos}", p) for p in POSITIONS] if "{pos}" in template else [template]
    runs = set()
    for text in texts:
        for segment in re.split(r"\{[^{}]*\}", text):
            words = normalize(segment).split()
            runs |= {tuple(words[k:k + n]) for k in range(len(words) - n + 1)}
    return runs


def check_no_eval_wording(training: dict[str, str], evaluation: dict[str, str], *,
                          n: int = MIN_SHARED_RUN) -> None:
    """Raise ``ValueError`` listing every training template (name → template) that shares a run
    of ``n`` words (``word_runs``) with an evaluation prompt or held-out phrasing (SPEC §1)."""
    clashes = []
    for t_name, t_text in training.items():
        for e_name, e_text in evaluation.items():
            for run in sorted(word_runs(t_text, n=n) & word_runs(e_text, n=n)):
                clashes.append(f"{t_name}={t_text!r} and {e_name}={e_text!r} share "
                               f"{' '.join(run)!r}")
    if clashes:
        raise ValueError("training captions use evaluation wording (SPEC §1: no run of "
                         f"{n} words in common); reword the training template:\n  "
                         + "\n  ".join(clashes))


def training_wording(templates: CaptionTemplates, family: PhrasingFamily, *,
                     owner: str = "data") -> dict[str, str]:
    """Every training caption template by name: the stage-A / stage-B / class templates
    (``<owner>.caption_*``) and the paraphrase family (``paraphrase.<relation>[n]``)."""
    names = {"single": "caption_single", "double": "caption_double", "before": "caption_before",
             "after": "caption_after", "while_": "caption_while", "class_prompt": "caption_class"}
    out = {f"{owner}.{param}": getattr(templates, field) for field, param in names.items()}
    for relation in ("sequence", "overlay", "position"):
        out |= {f"paraphrase.{relation}[{n}]": t for n, t in enumerate(getattr(family, relation))}
    out |= {f"binding.sequence[{n}]": t for n, t in enumerate(BINDING_FAMILY.sequence)}
    return out


# ------------------------------------------------------------------------ manifest row captions
def stage_a_captions(rows: pd.DataFrame, t: CaptionTemplates) -> pd.DataFrame:
    """``rows`` [label_i, label_j] plus ``caption_single`` (of i) and ``caption_double``."""
    out = rows.copy()
    out[SINGLE.caption] = [t.single.format(x=x) for x in out["label_i"]]
    out[DOUBLE.caption] = [t.double.format(x=x, y=y) for x, y in zip(out["label_i"], out["label_j"])]
    return out


def stage_b_captions(rows: pd.DataFrame, t: CaptionTemplates, family: PhrasingFamily, *,
                     seed: int) -> pd.DataFrame:
    """``rows`` [label_i, label_j] plus the stage-B captions (SPEC §1): ``phrasing`` (before /
    after, seeded per row); ``caption_f`` of ``a_i ⊕ a_j``, ``caption_r`` = T(f) (same phrasing,
    events swapped), ``caption_o`` = ``"x_i while x_j"``; ``para_f/r/o``: one draw per row from
    ``family`` (r uses f's template with the events swapped); ``direct_f/r``, ``mirror_f/r``
    (``binding_captions``)."""
    out = rows.copy()
    rng = np.random.default_rng([seed, 2])
    out["phrasing"] = np.where(rng.random(len(out)) < 0.5, "before", "after")
    li, lj, ph = out["label_i"], out["label_j"], out["phrasing"]
    paper = [pair_captions(t.phrasing(p), t.while_, x, y) for x, y, p in zip(li, lj, ph)]
    para = np.random.default_rng([seed, 4])
    seq = [family.sequence[n] for n in para.integers(len(family.sequence), size=len(out))]
    ovl = [family.overlay[n] for n in para.integers(len(family.overlay), size=len(out))]
    paraphrased = [pair_captions(s, o, x, y) for s, o, x, y in zip(seq, ovl, li, lj)]
    for n, composite in enumerate(STAGE_B):  # f, r, o
        out[composite.caption] = [c[n] for c in paper]
        out[composite.paraphrase] = [c[n] for c in paraphrased]
    return out.assign(**binding_captions(out, seed=seed))


def binding_captions(rows: pd.DataFrame, *, seed: int,
                     family: PhrasingFamily = BINDING_FAMILY) -> dict[str, list[str]]:
    """Per row [label_i, label_j] one ``direct`` and one ``mirror`` template of ``family``
    (seeded), each with its temporal inversion (SPEC §1: ``T`` swaps the events, keeps the
    wording): ``direct_f`` / ``direct_r`` and ``mirror_f`` / ``mirror_r``
    (``vocabulary.BINDING_COLUMNS``). Stage B picks one of the two per sample
    (``stage_b.mirror_share``)."""
    by_order = split_by_word_order(family)
    rng = np.random.default_rng([seed, 5])
    li, lj, out = rows["label_i"], rows["label_j"], {}
    for order in WORD_ORDERS:
        pick = [by_order[order][n] for n in rng.integers(len(by_order[order]), size=len(rows))]
        out[getattr(FORWARD, order)] = [sequence_caption(s, x, y) for s, x, y in zip(pick, li, lj)]
        out[getattr(REVERSED, order)] = [sequence_caption(s, y, x)
                                         for s, x, y in zip(pick, li, lj)]
    return out
