"""The ablation planner: rows from the typed configuration, validation through pydantic."""
import pytest

from teminal import ablation, losses
from teminal.run.config import ConfigError, apply_overrides
from teminal.run.keys import Kind
from teminal.run.params import RunConfig

PAPER_GRID = [s.weights.setting for s in losses.TABLE2_GRID]  # SPEC §5 Table 2


def config(**ablations) -> RunConfig:
    return RunConfig.model_validate({"ablations": ablations})


def test_paper_grid_gives_table2_rows():
    rows = ablation.plan(config(grid=PAPER_GRID, starts=["pretrained", "A"],
                                extra_rows=["tclap", "order-head"], order_steps=7))
    names = [r.name for r in rows]
    b_rows = [r for r in rows if r.params is not None]
    assert len(b_rows) == 4 * 2 + 2  # Table 2 × {T-B, T-AB} + T-CLAP + order head
    assert names[0] == "pretrained" and names[-1] == "probe:level-duration"
    assert {r.params.start_from for r in b_rows} == {"pretrained", "A"}
    order = next(r for r in rows if r.name.startswith("T-AB+order-head"))
    assert order.params.audio_head == "order" and order.params.optimizer_steps == 7
    assert order.params.start_from == "A"
    tclap = next(r for r in rows if r.name == "T-CLAP loss")
    assert tclap.params.loss == "tclap" and tclap.params.start_from == "pretrained"
    assert len(set(names)) == len(names)


def test_the_grid_is_the_papers_table2_in_weight_order():
    """SPEC §5: the four settings in (α_st, α_ct, α_so, α_co, β) order, the order of
    ``StageBWeights``'s fields (one home; a row's stage-B fields are set through it)."""
    assert losses.SETTING_FIELDS == ("alpha_st", "alpha_ct", "alpha_so", "alpha_co", "beta")
    assert PAPER_GRID == [(0, 0, 0, 0, 1), (1, 0, 1, 0, 1), (0, 1, 0, 1, 1), (1, 1, 1, 1, 1)]
    row = ablation.plan(config(grid=[(0.5, 0, 2, 0, 1)]))[1]
    assert (row.params.alpha_st, row.params.alpha_so, row.params.beta) == (0.5, 2, 1)


def test_configured_row_equals_the_configured_stage_b():
    """The T-AB row of the configured setting has exactly 02_stage_b's parameters, so its
    input key is the same and the run folder's checkpoint is reused (not retrained)."""
    c = RunConfig()
    row = next(r for r in ablation.plan(c) if r.name == "T-AB (1,1,1,1,1)")
    assert row.params == c.stage_b


def test_other_captions_row_differs_from_the_order_row_only_in_captions():
    c = RunConfig.model_validate({"ablations": {"extra_rows": ["order-head", "order-head-other-captions"]}})
    rows = {r.name: r.params for r in ablation.plan(c)}
    order, other = rows["T-AB+order-head (1,1,1,1,1)"], rows["T-AB+order-head (1,1,1,1,1) paper captions"]
    assert order.captions == "paraphrase" and other.captions == "paper"
    assert order.model_dump(exclude={"captions"}) == other.model_dump(exclude={"captions"})


def test_probe_row_follows_zste_probe():
    assert [r.kind for r in ablation.plan(RunConfig())][-1] is Kind.PROBE
    c = RunConfig.model_validate({"zste": {"probe": False}})
    assert all(r.kind is not Kind.PROBE for r in ablation.plan(c))


def test_rows_have_kinds_and_distinct_folders_from_their_typed_fields():
    """A trained row's checkpoint folder comes from its parameters (stage, head, setting,
    captions), never from its display name; the baseline and the probe train nothing."""
    rows = ablation.plan(config(grid=PAPER_GRID, starts=["pretrained", "A"],
                                extra_rows=["tclap", "order-head", "order-head-other-captions"]))
    trained = [r for r in rows if r.params is not None]
    assert {r.kind for r in trained} == {Kind.ABLATION_ROW}
    assert [r.kind for r in rows if r.params is None] == [Kind.PRETRAINED, Kind.PROBE]
    folders = {r.name: r.folder for r in trained}
    assert len(set(folders.values())) == len(folders)
    assert folders["T-B (1,0,1,0,1)"] == "abl-T-B-1-0-1-0-1-paraphrase"
    assert folders["T-AB+order-head (1,1,1,1,1) paper captions"] == "abl-T-AB-order-1-1-1-1-1-paper"
    assert folders["T-CLAP loss"] == "abl-T-CLAP-paraphrase"
    with pytest.raises(ValueError, match="trains nothing"):
        rows[0].folder


@pytest.mark.parametrize("override,match", [
    ("ablations.grid=[[1, 1, 1]]", "grid"),
    ("ablations.grid=[[1, -1, 1, 1, 1]]", "grid"),
    ("ablations.starts=[B]", "starts"),
    ("ablations.extra_rows=[clap]", "extra_rows"),
    ("ablations.order_setting=[1]", "order_setting"),
])
def test_bad_rows_are_named(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), [override])


def test_mlflow_filters_rows_by_their_logged_parameters(tmp_path):
    """As the MLflow UI searches: a filter on ``params.`stage_b.alpha_st``` returns exactly the
    rows trained with that weight (the pretrained baseline and the probe log no stage_b.*)."""
    import mlflow

    from teminal import tracking
    from teminal.run import logged

    c = config(grid=PAPER_GRID, starts=["pretrained", "A"], extra_rows=["tclap"])
    rows = ablation.plan(c)
    tracking.setup(f"sqlite:///{tmp_path}/mlflow.db")
    with tracking.run(run_name="04_ablations") as parent:
        for row in rows:
            with tracking.run(run_name=row.name, parent_run_id=parent.info.run_id,
                              tags={"teminal.ablation_row": row.name}):
                tracking.log_params(logged.for_stage(c, row.params))
    exp = mlflow.get_experiment_by_name(tracking.EXPERIMENT).experiment_id

    def names(where: str) -> set[str]:
        found = mlflow.MlflowClient().search_runs(
            [exp], filter_string=f"{where} and tags.`teminal.ablation_row` LIKE '%'")
        return {r.data.tags["teminal.ablation_row"] for r in found}

    want = {r.name for r in rows if r.params is not None and r.params.alpha_st == 1}
    assert want == {"T-B (1,0,1,0,1)", "T-AB (1,0,1,0,1)", "T-B (1,1,1,1,1)", "T-AB (1,1,1,1,1)",
                    "T-CLAP loss"}
    assert names("params.`stage_b.alpha_st` = '1.0'") == want
    assert names("params.`stage_b.alpha_st` = '0.0' and params.`stage_b.alpha_ct` = '1.0'") \
        == {"T-B (0,1,0,1,1)", "T-AB (0,1,0,1,1)"}
    assert names("params.`stage_b.start_from` = 'pretrained'") \
        == {r.name for r in rows if r.params is not None and r.params.start_from == "pretrained"}
    t_b = next(r for r in rows if r.name == "T-B (0,0,0,0,1)")
    t_ab = next(r for r in rows if r.name == "T-AB (0,0,0,0,1)")
    assert "stage_a.optimizer_steps" not in logged.for_stage(c, t_b.params)  # T-B has no stage A
    assert logged.for_stage(c, t_ab.params)["stage_a.optimizer_steps"] == c.stage_a.optimizer_steps
    for name in ("pretrained", "probe:level-duration"):
        run = mlflow.MlflowClient().search_runs(
            [exp], filter_string=f"tags.`teminal.ablation_row` = '{name}'")[0]
        assert not any(k.startswith("stage_") for k in run.data.params), name
        assert run.data.params["seed"] == str(c.seed)


def test_summary_ignores_tasks_only_the_probe_has():
    """The probe row has A-sd, which no model row has: the summary compares model rows only."""
    from types import SimpleNamespace

    import pandas as pd

    def ev(label, values):
        table = pd.DataFrame({"task": list(values), "value": list(values.values())})
        return SimpleNamespace(label=label, tables={"zste": table})
    outcome = pd.DataFrame({"row": ["pretrained", "T-AB", "probe:level-duration"],
                            "kind": [Kind.PRETRAINED, Kind.ABLATION_ROW, Kind.PROBE],
                            "evaluation": [ev("pretrained", {"3B": 40.0, "3W": 50.0}),
                                           ev("T-AB", {"3B": 90.0, "3W": 70.0}),
                                           ev("probe:level-duration", {"A-sd": 55.0, "3B": 35.0})]})
    text = ablation.summary(outcome)
    assert "- 3B: best T-AB 90.0 (+50.0)" in text and "A-sd" not in text
