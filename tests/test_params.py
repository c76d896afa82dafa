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
    config, notes = apply_overrides(RunConfig(), ["optimizer_steps=30", "dataset=folder",
                                                    "data_root=/x"])
    assert config.pretrain.optimizer_steps == config.stage_a.optimizer_steps == config.stage_b.optimizer_steps == 30
    assert config.data.dataset == "folder"
    assert notes[0] == ("-p optimizer_steps=30 → pretrain.optimizer_steps, "
                        "stage_a.optimizer_steps, stage_b.optimizer_steps")


def test_qualified_override_sets_one_section():
    config, _ = apply_overrides(RunConfig(), ["stage_b.optimizer_steps=5"])
    assert config.stage_b.optimizer_steps == 5 and config.stage_a.optimizer_steps == RunConfig().stage_a.optimizer_steps


@pytest.mark.parametrize("item,match", [
    ("optimizer_step=3", r"unknown parameter — did you mean 'optimizer_steps'"),
    ("stage_c.optimizer_steps=3", "unknown section"),
    ("stage_b.optimizer_step=3", "did you mean stage_b.optimizer_steps"),
    ("optimizer_steps", "expected name=value"),
    ("optimizer_steps=three", "stage_a.optimizer_steps"),
    ("pairing=random", "pairing"),
    ("device=tpu", "device"),
    ("dataset=folder", "data_root"),
])
def test_bad_overrides_are_named(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), [item])


def test_notebook_cell_goes_through_the_same_validation():
    config = with_cell(RunConfig(), "02_stage_b", {"optimizer_steps": 4, "captions": "paper"})
    assert config.stage_b.optimizer_steps == 4 and config.stage_b.captions == "paper"
    with pytest.raises(ConfigError, match=r"02_stage_b parameters cell: stage_b.captions"):
        with_cell(RunConfig(), "02_stage_b", {"captions": "poetry"})
    with pytest.raises(ConfigError, match="not a parameter of this notebook"):
        with_cell(RunConfig(), "02_stage_b", {"tiny_width": 8})
    # 00_pretrained_baseline's cell sets fields of two sections, each in its own
    config = with_cell(RunConfig(), "00_pretrained_baseline", {"optimizer_steps": 9, "tiny_width": 8})
    assert (config.pretrain.optimizer_steps, config.model.tiny_width) == (9, 8)
    assert config.stage_a.optimizer_steps == RunConfig().stage_a.optimizer_steps


def test_every_cell_field_belongs_to_its_section():
    for notebook, spec in NOTEBOOKS.items():
        assert spec.section in SECTIONS
        for section, name in spec.cell:
            assert name in SECTIONS[section].model_fields, (notebook, section, name)
        assert len(set(spec.names)) == len(spec.names), notebook  # one variable per field
        assert list(cell_values(RunConfig(), notebook)) == list(spec.names)


def test_notebooks_subset_must_keep_pipeline_order():
    with pytest.raises(ConfigError, match="pipeline order"):
        validate({"notebooks": ["01_stage_a", "00_data_synthesis"]}, source="x")
    with pytest.raises(ConfigError, match="unknown notebooks"):
        validate({"notebooks": ["05_extra"]}, source="x")


def _fields_without_a_comment() -> list[str]:
    """``section.field`` of every field of ``run/params.py`` whose line has no ``#`` comment."""
    import ast
    import inspect

    from teminal.run import params

    lines = inspect.getsource(params).splitlines()
    missing = []
    for section, model in [*SECTIONS.items(), ("", RunConfig)]:
        tree = ast.parse(inspect.getsource(model))
        first = inspect.getsourcelines(model)[1]
        for node in tree.body[0].body:
            if isinstance(node, ast.AnnAssign) and node.target.id in model.model_fields:
                text = lines[first - 1 + node.end_lineno - 1]
                if section and "  # " not in text:
                    missing.append(f"{section}.{node.target.id}")
    return missing


def test_every_parameter_is_explained_where_it_is_declared():
    """nanoGPT-style: each field of every section carries its comment on its line."""
    assert _fields_without_a_comment() == []


@pytest.mark.parametrize("old,new", [("stage_a.epochs", "stage_a.optimizer_steps"),
                                     ("model.pretrain_epochs", "pretrain.optimizer_steps"),
                                     ("model.pretrain_lr", "pretrain.lr"),
                                     ("ablations.order_epochs", "ablations.order_steps")])
def test_a_renamed_parameter_names_the_new_one(old, new, tmp_path):
    with pytest.raises(ConfigError, match=rf"-p {old}: renamed: use '{new}'"):
        apply_overrides(RunConfig(), [f"{old}=3"])
    section, field = old.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(f"{section}:\n  {field}: 3\n")
    with pytest.raises(ConfigError, match=rf"old.yaml: {old}: renamed: use '{new}'"):
        load_config(path)
    with pytest.raises(ConfigError, match=rf"-p {field}: renamed: use .*{new}"):
        apply_overrides(RunConfig(), [f"{field}=3"])


def test_a_t_ab_stage_b_must_continue_stage_as_head():
    """SPEC §3: T-AB continues stage A's heads, so a configured T-AB with another audio head
    than stage A is an error naming the fix; -p audio_head sets both; T-B may differ."""
    with pytest.raises(ConfigError, match=r"stage_b.audio_head 'order' with start_from A.*"
                                          r"-p audio_head=order"):
        apply_overrides(RunConfig(), ["stage_b.audio_head=order"])
    both, _ = apply_overrides(RunConfig(), ["audio_head=order"])
    assert both.stage_a.audio_head == both.stage_b.audio_head == "order"
    t_b, _ = apply_overrides(RunConfig(), ["stage_b.start_from=pretrained",
                                           "stage_b.audio_head=order"])
    assert t_b.stage_a.audio_head == "pooled"


def test_pretraining_reads_its_own_section():
    from teminal.run import configs

    p = RunConfig().pretrain.model_copy(update={"optimizer": "adam", "weight_decay": 0.5,
                                                "schedule": "constant", "lr": 0.3,
                                                "optimizer_steps": 7})
    config, budget = configs.pretrain_config(p=p, shared=RunConfig().train, seed=3,
                                             n_train=20)
    assert (config.optimizer, config.weight_decay, config.schedule, config.lr) == \
        ("adam", 0.5, "constant", 0.3)
    assert (config.batch_size, config.seed, config.bf16) == (p.batch_size, 3, RunConfig().train.bf16)
    assert (budget.steps_per_epoch, budget.epochs, budget.total_steps) == (1, 7, 7)


@pytest.mark.parametrize("steps,n_train,batch,epochs,total", [
    (6, 56, 16, 2, 6),  # the smoke world's stage A: 3 steps per epoch, exactly the budget
    (7, 56, 16, 3, 9),  # not a multiple: whole epochs, at least the budget
    (120, 72, 64, 120, 120),  # a 72-clip folder: one step per epoch, 120 epochs
])
def test_a_step_budget_runs_whole_epochs(steps, n_train, batch, epochs, total):
    from teminal.run import configs

    b = configs.budget(steps=steps, n_train=n_train, batch_size=batch, where="stage A")
    assert (b.steps_per_epoch, b.epochs, b.total_steps) == (n_train // batch, epochs, total)
    stage = RunConfig().stage_a.model_copy(update={"optimizer_steps": steps, "batch_size": batch})
    config, _ = configs.stage_config(shared=RunConfig().train, stage=stage, seed=0,
                                     n_train=n_train, where="A")
    assert config.epochs == epochs


def test_a_split_smaller_than_one_batch_has_no_budget():
    from teminal.gates import SanityError
    from teminal.run import configs

    with pytest.raises(SanityError, match=r"stage A: the training split 'train' has 10 rows"):
        configs.budget(steps=6, n_train=10, batch_size=16, where="stage A")
