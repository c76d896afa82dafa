"""The ablation planner: rows, dependencies, parameter validation."""
import pytest

from teminal import ablation

BASE = {"grid": ablation.PAPER_GRID, "starts": "pretrained,A", "extra_rows": "tclap,order-head",
        "order_setting": "1,1,1,1,1", "stage_a_epochs": 3}


def test_paper_grid_gives_table2_rows():
    plan = ablation.plan(BASE)
    b_rows = plan[plan.notebook == "02_stage_b"]
    assert len(b_rows) == 4 * 2 + 2  # Table 2 × {T-B, T-AB} + T-CLAP + order head
    assert {r["start_from"] for r in b_rows.params} == {"pretrained", "A"}
    assert list(plan.row[:3]) == ["stage A", "stage A (order head)", "pretrained"]
    order = plan[plan.row.str.startswith("T-AB+order-head")].iloc[0]
    assert order.params["audio_head"] == "order" and order.depends_on == "abl-A-order"
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
