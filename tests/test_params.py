"""Typed parameters: one source of defaults, one validation for YAML, -p and notebook cells."""
from pathlib import Path

import pytest
import yaml

from teminal.run.config import (ConfigError, apply_overrides, cell_values, load_config,
                                parse_value, to_yaml, validate, with_cell)
from teminal.run.params import NOTEBOOKS, PIPELINE, SECTIONS, RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["default", "paper", "ci"])
def test_params_files_are_valid(name):
    config = load_config(ROOT / "params" / f"{name}.yaml")
    assert config.name == name and config.notebooks == list(PIPELINE)


def test_paraphrases_on_by_default_off_in_the_paper_configuration():
    assert load_config(ROOT / "params" / "default.yaml").stage_b.captions == "paraphrase"
    assert load_config(ROOT / "params" / "paper.yaml").stage_b.captions == "paper"


def test_the_paper_configuration_trains_as_paper_b5():
    """Adam, constant lr 1e-4, no gradient clipping, batch 256 (SPEC §5, paper B.5); the
    smoke / default departures (cosine, clipping) are named parameters."""
    config = load_config(ROOT / "params" / "paper.yaml")
    t = config.train
    assert (t.optimizer, t.schedule, t.grad_clip, t.weight_decay, t.warmup_steps) == \
        ("adam", "constant", 0.0, 0.0, 0)
    for stage in (config.stage_a, config.stage_b):
        assert (stage.lr, stage.batch_size) == (1e-4, 256)
    assert config.stage_b.order_lr is None and config.train.replay_weight == 0.0


def test_yaml_round_trip_keeps_every_value():
    config = load_config(ROOT / "params" / "default.yaml")
    assert validate(yaml.safe_load(to_yaml(config)), source="x") == config


def test_unknown_yaml_key_is_named_with_a_suggestion(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  world_clases: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: data.world_clases: unknown parameter "
                                          r"— did you mean 'world_classes'\?"):
        load_config(bad)


def test_ill_typed_yaml_value_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage_b:\n  alpha_st: many\n")
    with pytest.raises(ConfigError, match=r"stage_b.alpha_st.*'many'"):
        load_config(bad)


@pytest.mark.parametrize("text,value", [("3", 3), ("0.1", 0.1), ("true", True),
                                        ("null", None), ("[a, b]", ["a", "b"]), ("esc50", "esc50")])
def test_override_values_are_typed_like_yaml(text, value):
    assert parse_value(text) == value


def test_bare_override_sets_every_section_that_has_it():
    config, notes = apply_overrides(RunConfig(), ["epochs=3", "dataset=folder", "data_root=/x"])
    assert config.stage_a.epochs == config.stage_b.epochs == 3
    assert config.data.dataset == "folder"
    assert notes[0] == "-p epochs=3 → stage_a.epochs, stage_b.epochs"


def test_qualified_override_sets_one_section():
    config, _ = apply_overrides(RunConfig(), ["stage_b.epochs=5"])
    assert config.stage_b.epochs == 5 and config.stage_a.epochs == RunConfig().stage_a.epochs


@pytest.mark.parametrize("item,match", [
    ("epoch=3", r"unknown parameter — did you mean 'epochs'"),
    ("stage_c.epochs=3", "unknown section"),
    ("stage_b.epoch=3", "did you mean stage_b.epochs"),
    ("epochs", "expected name=value"),
    ("epochs=three", "stage_a.epochs"),
    ("pairing=random", "pairing"),
    ("device=tpu", "device"),
    ("dataset=folder", "data_root"),
])
def test_bad_overrides_are_named(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), [item])


def test_notebook_cell_goes_through_the_same_validation():
    config = with_cell(RunConfig(), "02_stage_b", {"epochs": 4, "captions": "paper"})
    assert config.stage_b.epochs == 4 and config.stage_b.captions == "paper"
    with pytest.raises(ConfigError, match=r"02_stage_b parameters cell: stage_b.captions"):
        with_cell(RunConfig(), "02_stage_b", {"captions": "poetry"})
    with pytest.raises(ConfigError, match="not a parameter of this notebook"):
        with_cell(RunConfig(), "02_stage_b", {"pretrain_epochs": 1})


def test_every_cell_field_belongs_to_its_section():
    for notebook, spec in NOTEBOOKS.items():
        assert spec.section in SECTIONS
        assert set(spec.cell) <= set(SECTIONS[spec.section].model_fields), notebook
        assert set(cell_values(RunConfig(), notebook)) == set(spec.cell)


def test_notebooks_subset_must_keep_pipeline_order():
    with pytest.raises(ConfigError, match="pipeline order"):
        validate({"notebooks": ["01_stage_a", "00_data_synthesis"]}, source="x")
    with pytest.raises(ConfigError, match="unknown notebooks"):
        validate({"notebooks": ["05_extra"]}, source="x")
