"""The run folder: recorded configuration, reuse by input key, tags that never replace a result."""
import json

import pytest

from teminal.run.config import ConfigError, apply_overrides
from teminal.run.layout import RunLayout, new_run_dir, write_json
from teminal.run.params import RunConfig


def finished(layout: RunLayout, tag: str, key: str) -> None:
    write_json(layout.checkpoint(tag) / "meta.json", {"tag": tag, "key": key, "finished": True})


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    a, b = new_run_dir("x", tmp_path), new_run_dir("x", tmp_path)
    assert a != b and a.exists() and b.exists()


def test_config_is_recorded_once_and_read_back(tmp_path):
    layout = RunLayout(tmp_path / "run")
    config, _ = apply_overrides(RunConfig(), ["optimizer_steps=3"])
    layout.write_config(config)
    assert layout.read_config() == config
    layout.write_config(config)  # the same record again: fine
    with pytest.raises(FileExistsError, match="records other parameters"):
        layout.write_config(RunConfig())


def test_a_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        RunLayout(tmp_path).read_config()


def test_find_key_returns_only_finished_checkpoints(tmp_path):
    layout = RunLayout(tmp_path)
    finished(layout, "T-AB", "k1")
    write_json(layout.checkpoint("T-B") / "meta.json", {"tag": "T-B", "key": "k2"})  # unfinished
    assert layout.find_key("k1") == "T-AB"
    assert layout.find_key("k2") is None and layout.find_key("k3") is None


def test_free_tag_never_replaces_an_earlier_result(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.free_tag("A", "key-one") == "A"
    finished(layout, "A", "key-one")
    assert layout.free_tag("A", "key-one") == "A"  # the same inputs: the same folder
    assert layout.free_tag("A", "key-two-abcdef") == "A-key-two-"  # other inputs: a new one


def test_phases_append_to_the_profile(tmp_path):
    layout = RunLayout(tmp_path)
    with layout.phase("01_stage_a", "training"):
        pass
    layout.add_phase("01_stage_a", "evaluation", 1.5)
    lines = [json.loads(x) for x in (tmp_path / "profile.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["training", "evaluation"]


def test_a_run_recorded_before_a_rename_still_reports_but_does_not_run(tmp_path):
    """``config.yaml`` of an older run names ``model.pretrain_lr`` and ``stage_a.epochs``: read
    for its results, the lr moves to ``pretrain.lr`` and the epoch budget is dropped; read to
    run it again, the old names are refused with the new ones named."""
    from teminal.run.config import ConfigError
    from teminal.run.layout import RunLayout

    layout = RunLayout(tmp_path)
    layout.config_file.parent.mkdir(parents=True, exist_ok=True)
    layout.config_file.write_text("model:\n  pretrain_lr: 0.005\nstage_a:\n  epochs: 3\n"
                                  "zste:\n  n_boot: 77\n")
    config = layout.read_recorded_config()
    assert config.pretrain.lr == 0.005 and config.zste.n_boot == 77
    assert config.stage_a.optimizer_steps == type(config.stage_a)().optimizer_steps
    with pytest.raises(ConfigError, match="pretrain.lr"):
        layout.read_config()
