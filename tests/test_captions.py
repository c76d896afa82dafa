"""Phrasing families and caption factories (SPEC §1 "Captions", §4 "Held-out phrasings")."""
from __future__ import annotations

from pathlib import Path

import pytest

import pandas as pd

from teminal.data.captions import (BINDING_FAMILY, HELDOUT_FAMILY, POSITIONS, TRAINING_FAMILY,
                                   WIDE_BINDING_FAMILY,
                                   VALIDATION_FAMILY, CaptionTemplates, PhrasingFamily,
                                   binding_captions, check_disjoint, normalize, overlay_caption,
                                   position_caption, sequence_caption, split_by_word_order,
                                   word_order)

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
        assert first_named or any(w in t for w in ("after", "later", "follows")), t


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


# ---- SPEC §1 "No evaluation wording in training"
def test_word_runs_split_at_class_slots_and_expand_positions():
    from teminal.data.captions import word_runs
    assert word_runs("combined sound of {x} and {y}") == {("combined", "sound", "of")}
    assert word_runs("{x}, then {y}") == set()
    assert ("the", "first", "sound") in word_runs("In this concatenated sound, the {pos} sound is {x}")
    assert ("the", "second", "sound") in word_runs("In this concatenated sound, the {pos} sound is {x}")
    assert word_runs("The Sound of {x}") == word_runs("the sound of {x}") == {("the", "sound", "of")}


def test_the_check_catches_evaluation_wording_and_names_the_parameter():
    from teminal.data.captions import check_no_eval_wording
    evaluation = {"zste.position": "In this concatenated sound, the {pos} sound is {x}",
                  "zste.class_prompt": "The sound of {x}"}
    old = {"paraphrase.sequence[5]": "the first sound is {x} and the second is {y}"}
    with pytest.raises(ValueError, match=r"paraphrase.sequence\[5\].*'the first sound'"):
        check_no_eval_wording(old, evaluation)
    with pytest.raises(ValueError, match="data.caption_class.*'the sound of'"):
        check_no_eval_wording({"data.caption_class": "the sound of {x}"}, evaluation)
    check_no_eval_wording({"data.caption_class": "a recording of {x}",
                           "data.caption_single": "single sound of {x}"}, evaluation)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "params").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_no_configuration_trains_on_evaluation_wording(path):
    """Every configuration in params/: its stage-A, stage-B, paraphrase and pretraining caption
    templates share no run of 3 words with any ZSTE prompt or held-out phrasing (SPEC §1)."""
    from teminal.data.captions import training_wording, word_runs
    from teminal.eval.retrieval import ZERO_SHOT_PROMPT
    from teminal.run.config import load_config
    from teminal.run.configs import templates
    from teminal.run.steps.data import check_wording
    from teminal.eval.tasks import ZsteTemplates, evaluation_wording
    config = load_config(path)
    check_wording(config.data)
    training = training_wording(templates(config.data), TRAINING_FAMILY)
    evaluation = evaluation_wording(ZsteTemplates(), HELDOUT_FAMILY, zero_shot_prompt=ZERO_SHOT_PROMPT)
    assert len(training) == 6 + len(TRAINING_FAMILY.templates()) + len(BINDING_FAMILY.sequence)
    assert len(evaluation) == 11
    shared = [(t, e) for t in training.values() for e in evaluation.values()
              if word_runs(t) & word_runs(e)]
    assert shared == []


def test_word_order_reads_where_the_events_are_named():
    assert word_order("{x} before {y}") == "direct" and word_order("{y} after {x}") == "mirror"
    assert word_order("first {x}, then {y}") == "direct"
    assert word_order("{y} comes later than {x}") == "mirror"
    with pytest.raises(ValueError, match="once each"):
        word_order("{x} before {x}")


@pytest.mark.parametrize("family,per_order", [(BINDING_FAMILY, 4), (WIDE_BINDING_FAMILY, 12)])
def test_binding_family_is_balanced_and_holds_no_evaluation_word(family, per_order):
    """Issue 23: as many mirror- as direct-worded training phrasings; every template still
    means "x first" (the check above); no held-out key word, and the validation phrasings
    (for choosing) are neither trained on nor held out."""
    by = split_by_word_order(family)
    assert len(by["direct"]) == len(by["mirror"]) == per_order
    assert set(TRAINING_FAMILY.sequence) <= set(family.sequence)
    for t in family.sequence + VALIDATION_FAMILY.sequence:
        caption = sequence_caption(t, "AAA", "BBB")
        first_named = caption.index("AAA") < caption.index("BBB")
        assert first_named == (word_order(t) == "direct")
    held = words(HELDOUT_FAMILY) - STOP - set(POSITIONS)
    assert held & (words(family) | words(VALIDATION_FAMILY)) == set()
    assert words(VALIDATION_FAMILY) & words(family) == set()
    check_disjoint(family, HELDOUT_FAMILY)
    check_disjoint(family, VALIDATION_FAMILY)
    from teminal.eval.retrieval import ZERO_SHOT_PROMPT
    from teminal.eval.tasks import ZsteTemplates, evaluation_wording
    evaluation = evaluation_wording(ZsteTemplates(), HELDOUT_FAMILY, zero_shot_prompt=ZERO_SHOT_PROMPT)
    from teminal.data.captions import check_no_eval_wording
    check_no_eval_wording({t: t for t in family.templates()}, evaluation)
    check_disjoint(VALIDATION_FAMILY, HELDOUT_FAMILY)
    with pytest.raises(ValueError, match="mirror"):
        split_by_word_order(PhrasingFamily(sequence=("{x} before {y}",), overlay=()))


def test_binding_captions_invert_and_mirror():
    rows = pd.DataFrame({"label_i": ["dog", "rain"] * 20, "label_j": ["rain", "dog"] * 20})
    out = binding_captions(rows, seed=3)
    direct = {sequence_caption(t, "dog", "rain") for t in split_by_word_order(BINDING_FAMILY)["direct"]}
    mirror = {sequence_caption(t, "dog", "rain") for t in split_by_word_order(BINDING_FAMILY)["mirror"]}
    assert set(out["direct_f"][::2]) <= direct and set(out["mirror_f"][::2]) <= mirror
    assert len(set(out["mirror_f"][::2])) > 1  # drawn per row, not one template
    for f, r in zip(out["mirror_f"], out["mirror_r"]):  # T: same wording, events swapped
        assert r == f.replace("dog", "#").replace("rain", "dog").replace("#", "rain")
    assert out == binding_captions(rows, seed=3) and out != binding_captions(rows, seed=4)
