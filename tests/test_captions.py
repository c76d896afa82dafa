"""Phrasing families and caption factories (SPEC §1 "Captions", §4 "Held-out phrasings")."""
from __future__ import annotations

import pytest

from teminal.data.captions import (HELDOUT_FAMILY, POSITIONS, TRAINING_FAMILY, CaptionTemplates,
                                   PhrasingFamily, check_disjoint, normalize, overlay_caption,
                                   position_caption, sequence_caption)

STOP = {"is"}  # a function word both families may share


def words(family: PhrasingFamily) -> set[str]:
    text = " ".join(family.templates()).replace("{x}", " ").replace("{y}", " ").replace("{pos}", " ")
    return set(normalize(text).split())


def test_factories():
    assert sequence_caption("{x} before {y}", "dog bark", "rain") == "dog bark before rain"
    assert sequence_caption("{y} after {x}", "dog bark", "rain") == "rain after dog bark"
    assert overlay_caption("{x} while {y}", "dog bark", "rain") == "dog bark while rain"
    assert position_caption("{x} is heard {pos}", "second", "rain") == "rain is heard second"
    with pytest.raises(ValueError, match="pos"):
        position_caption("{x} is heard {pos}", "third", "rain")
    assert POSITIONS == ("first", "second")


def test_training_family_holds_the_paper_templates():
    paper = CaptionTemplates().family()
    assert set(paper.sequence) <= set(TRAINING_FAMILY.sequence)
    assert set(paper.overlay) <= set(TRAINING_FAMILY.overlay)
    assert len(TRAINING_FAMILY.sequence) == 6 and len(TRAINING_FAMILY.overlay) == 2
    assert TRAINING_FAMILY.position == ()


def test_every_sequence_template_puts_x_first():
    """``{x}`` is the first event: each template names x before y, or says y comes after x."""
    for t in TRAINING_FAMILY.sequence + HELDOUT_FAMILY.sequence:
        caption = sequence_caption(t, "AAA", "BBB")
        first_named = caption.index("AAA") < caption.index("BBB")
        assert first_named or "after" in t or "later" in t, t


def test_heldout_key_words_never_in_training():
    shared = words(HELDOUT_FAMILY) & words(TRAINING_FAMILY)
    assert shared - STOP - set(POSITIONS) == set()
    assert words(HELDOUT_FAMILY) - STOP - set(POSITIONS) >= {"precedes", "later", "together",
                                                              "overlapping", "heard"}
    check_disjoint(TRAINING_FAMILY, HELDOUT_FAMILY)
    check_disjoint(CaptionTemplates().family(), HELDOUT_FAMILY)


def test_check_disjoint_catches_shared_templates_and_captions():
    same = PhrasingFamily(sequence=("{x} followed by {y}",), overlay=("{x} overlapping with {y}",))
    with pytest.raises(ValueError, match="followed by"):
        check_disjoint(TRAINING_FAMILY, same)
    # different templates, same caption up to punctuation and case: "{x}, then {y}"
    reworded = PhrasingFamily(sequence=("{x} Then {y}",), overlay=("{x} with {y}",))
    with pytest.raises(ValueError, match="Then"):
        check_disjoint(TRAINING_FAMILY, reworded)
    # a template equal to a training caption only once filled: "{y} before {x}" names y first
    swapped = PhrasingFamily(sequence=("{y} before {x}",), overlay=("{x} with {y}",))
    with pytest.raises(ValueError, match="equal training captions"):
        check_disjoint(TRAINING_FAMILY, swapped)
    positional = PhrasingFamily(sequence=("{x} precedes {y}",), overlay=("{x} with {y}",),
                                position=("{x} is heard {pos}",))
    with pytest.raises(ValueError, match="heard"):
        check_disjoint(positional, PhrasingFamily(sequence=("{x} ahead of {y}",), overlay=(),
                                                  position=("{x} is heard {pos}!",)))


def test_family_validation():
    with pytest.raises(ValueError, match=r"PhrasingFamily.sequence\[1\]"):
        PhrasingFamily(sequence=("{x} before {y}", "{x} before"), overlay=())
    with pytest.raises(ValueError, match=r"PhrasingFamily.position\[0\]"):
        PhrasingFamily(sequence=(), overlay=(), position=("{x} is heard",))
    with pytest.raises(ValueError, match="twice"):
        PhrasingFamily(sequence=("{x} before {y}", "{x} before {y}"), overlay=())
    with pytest.raises(ValueError, match="tuple of templates"):
        PhrasingFamily(sequence="{x} before {y}", overlay=())
    with pytest.raises(ValueError, match="not a format string"):
        PhrasingFamily(sequence=("{x before {y}",), overlay=())
    fam = PhrasingFamily(sequence=["{x} before {y}"], overlay=["{x} while {y}"])
    assert fam.sequence == ("{x} before {y}",) and hash(fam)  # lists become tuples


def test_captions_cover_both_orders():
    fam = PhrasingFamily(sequence=("{x} before {y}",), overlay=("{x} while {y}",),
                         position=("{x} is heard {pos}",))
    assert fam.captions(("a", "b")) == {"a before b", "b before a", "a while b", "b while a",
                                        "a is heard first", "a is heard second",
                                        "b is heard first", "b is heard second"}
