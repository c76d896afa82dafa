"""The ablation planner: rows, dependencies, parameter validation."""
import json
from types import SimpleNamespace

import pytest

from teminal import ablation

BASE = {"grid": ablation.PAPER_GRID, "starts": "pretrained,A", "extra_rows": "tclap,order-head",
        "order_setting": "1,1,1,1,1", "stage_a_epochs": 3, "stage_a_from": "",
        "order_epochs": 7}


def test_paper_grid_gives_table2_rows():
    plan = ablation.plan(BASE)
    b_rows = plan[plan.notebook == "02_stage_b"]
    assert len(b_rows) == 4 * 2 + 2  # Table 2 × {T-B, T-AB} + T-CLAP + order head
    assert {r["start_from"] for r in b_rows.params} == {"pretrained", "A"}
    assert list(plan.row[:3]) == ["stage A", "stage A (order head)", "pretrained"]
    order = plan[plan.row.str.startswith("T-AB+order-head")].iloc[0]
    assert order.params["audio_head"] == "order" and order.depends_on == "abl-A-order"
    assert order.params["epochs"] == 7  # order_epochs
    tags = [r["tag"] for r in plan.params if "tag" in r]
    assert len(tags) == len(set(tags))  # every row its own checkpoint folder


def test_t_b_rows_need_no_stage_a():
    plan = ablation.plan(dict(BASE, starts="pretrained", extra_rows=""))
    assert "01_stage_a" not in set(plan.notebook)
    assert all(d == "" for d in plan.depends_on)


@pytest.mark.parametrize("key,value,match", [
    ("grid", "1,1,1", "grid"), ("grid", "1,a,1,1,1", "grid"), ("grid", "1,-1,1,1,1", "grid"),
    ("starts", "B", "starts"), ("extra_rows", "clap", "extra_rows"), ("order_setting", "1", "order_setting"),
])
def test_bad_parameters_are_named(key, value, match):
    with pytest.raises(ValueError, match=match):
        ablation.plan(dict(BASE, **{key: value}))


def test_child_params_reject_unknown_overrides():
    with pytest.raises(ValueError, match="no parameters"):
        ablation.child_params({"seed": 0}, "02_stage_b", {"not_a_param": 1})
    params = ablation.child_params({"seed": 3, "run_dir": "x", "grid": "g"}, "02_stage_b", {"alpha_st": 0.0})
    assert params == {"seed": 3, "alpha_st": 0.0}


def test_stage_a_from_reuses_the_run_folders_stage_a():
    plan = ablation.plan(dict(BASE, stage_a_from="A", extra_rows=""))
    assert "01_stage_a" not in set(plan.notebook)  # no ablation-trained stage A
    t_ab = plan[plan.row.str.startswith("T-AB")]
    assert set(t_ab.depends_on) == {"A"} and {p["stage_a_tag"] for p in t_ab.params} == {"A"}


def _ckpt(run_dir, tag, head):
    d = run_dir / "checkpoints" / tag
    d.mkdir(parents=True)
    (d / "best.pt").write_bytes(b"x")
    (d / "meta.json").write_text(json.dumps({"tag": tag, "audio_head": head}))


def test_missing_start_checkpoint_is_named_before_anything_runs(tmp_path):
    S = SimpleNamespace(run_dir=tmp_path)
    plan = ablation.plan(dict(BASE, stage_a_from="A", extra_rows=""))
    with pytest.raises(FileNotFoundError, match=r"checkpoints/A/best.pt.*stage_a_from"):
        ablation.check_starts(S, plan)
    _ckpt(tmp_path, "A", "pooled")
    ablation.check_starts(S, plan)  # present: fine
    ablation.check_starts(S, ablation.plan(BASE))  # rows written by the ablation's own stage A


def test_start_checkpoint_with_the_other_head_is_refused(tmp_path):
    _ckpt(tmp_path, "A-order", "order")
    plan = ablation.plan(dict(BASE, stage_a_from="A-order", extra_rows=""))
    with pytest.raises(ValueError, match="order-head checkpoint"):
        ablation.check_starts(SimpleNamespace(run_dir=tmp_path), plan)
