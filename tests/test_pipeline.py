"""The whole pipeline through papermill on the smoke configuration (params/ci.yaml): MLflow
records, run-folder records, executed copies with figures and widget state, the report, and
re-running a notebook without retraining."""
import json
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow import MlflowClient

from teminal import cli, pipeline, report, tracking
from teminal.eval import zste
from teminal.eval.tasks import ALL_TASKS, TASKS
from teminal.data.manifest_files import read_manifests
from teminal.run.config import load_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return root, f"sqlite:///{root}/mlruns/mlflow.db"


@pytest.fixture(scope="module")
def ci_run(store):
    root, uri = store
    config = load_config(ROOT / "params" / "ci.yaml")
    run_dir = pipeline.run_pipeline(config, source=ROOT / "params" / "ci.yaml",
                                    tracking_uri=uri, runs_root=root / "runs")
    mlflow.set_tracking_uri(uri)
    return run_dir, uri


def children(client, parent):
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def record(run_dir):
    return json.loads((run_dir / "pipeline.json").read_text())


def printed(path) -> str:
    """Everything an executed notebook printed."""
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_parent_and_one_finished_child_per_notebook(ci_run):
    run_dir, _ = ci_run
    client = MlflowClient()
    rec = record(run_dir)
    assert rec["status"] == "FINISHED" and rec["stopped_at"] is None
    assert client.get_run(rec["parent_run_id"]).info.status == "FINISHED"
    kids = {r.data.tags["teminal.notebook"]: r for r in children(client, rec["parent_run_id"])}
    assert set(kids) == set(pipeline.PIPELINE)
    for nb, run in kids.items():
        assert run.info.status == "FINISHED", nb
        assert {a.path for a in client.list_artifacts(run.info.run_id, "notebook")} \
            == {f"notebook/{nb}.ipynb", f"notebook/{nb}.html"}  # the copy and its rendering
        copy = nbformat.read(str(run_dir / "notebooks" / f"{nb}.ipynb"), as_version=4)
        assert "jupytext" not in copy.metadata, f"{nb}: the copy is still paired with a twin"
        assert "TCP without encryption" not in printed(run_dir / "notebooks" / f"{nb}.ipynb")
    assert (run_dir / "config.yaml").exists()


def ablation_rows(client, run_dir) -> dict:
    kids = {r.data.tags["teminal.notebook"]: r for r in children(client, record(run_dir)["parent_run_id"])}
    return {r.data.tags["teminal.ablation_row"]: r
            for r in children(client, kids["04_ablations"].info.run_id)}


def test_ablation_rows_are_comparable_in_mlflow(ci_run):
    """Every row logs its effective parameters and the same tags, reused or not; the reused
    T-AB row shows the curves of the run that trained it; the UI's filter finds the rows."""
    run_dir, _ = ci_run
    client = MlflowClient()
    rows = ablation_rows(client, run_dir)
    trained = {n: r for n, r in rows.items() if n not in ("pretrained", "probe:level-duration")}
    assert set(trained) == {"T-B (1,1,1,1,1)", "T-AB (1,1,1,1,1)", "T-CLAP loss",
                            "T-AB+order-head (1,1,1,1,1)"}
    for name, run in trained.items():
        p, tags = run.data.params, run.data.tags
        assert p["stage_b.alpha_st"] == "1.0" and p["stage_b.beta"] == "1.0", name
        assert {"stage_b.start_from", "stage_b.audio_head", "stage_b.captions", "seed"} <= set(p)
        assert tags["teminal.tag"] and tags["teminal.start"] and tags["teminal.reused"] in ("true", "false")
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        val = [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")]
        assert steps and val and set(val) <= set(steps), f"{name}: train/loss and val/loss apart"
    assert trained["T-B (1,1,1,1,1)"].data.params["stage_b.start_from"] == "pretrained"
    assert trained["T-AB+order-head (1,1,1,1,1)"].data.params["stage_b.audio_head"] == "order"
    reused = trained["T-AB (1,1,1,1,1)"]
    assert reused.data.tags["teminal.reused"] == "true"
    source = reused.data.tags["teminal.reused_run_id"]
    assert client.get_run(source).data.tags["teminal.notebook"] == "02_stage_b"
    assert [(m.step, m.value) for m in client.get_metric_history(reused.info.run_id, "train/loss")] \
        == [(m.step, m.value) for m in client.get_metric_history(source, "train/loss")]
    exp = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    found = client.search_runs([exp], filter_string="params.`stage_b.start_from` = 'pretrained' "
                               "and tags.`teminal.ablation_row` LIKE '%'")
    assert {r.data.tags["teminal.ablation_row"] for r in found} == {"T-B (1,1,1,1,1)", "T-CLAP loss"}
    for name in ("pretrained", "probe:level-duration"):
        assert not any(k.startswith("stage_") for k in rows[name].data.params), name


def test_no_class_pair_or_clip_of_the_held_out_set_is_trained_on(ci_run):
    run_dir, _ = ci_run
    m = read_manifests(run_dir / "manifests")
    sb, singles = m.stage_b, m.singles
    train = sb[sb.split.isin(["train", "val"])]
    test = sb[sb.split == "test"]
    pairs = lambda df: {(min(i, j), max(i, j)) for i, j in zip(df.i, df.j)}  # noqa: E731
    clips = lambda df: set(df.clip_i) | set(df.clip_j)  # noqa: E731
    assert pairs(train) and pairs(test) and not pairs(train) & pairs(test)
    pretrain = set(singles[singles.split.isin(["train", "val"])]["clip"])
    assert not clips(test) & (clips(train) | pretrain)
    assert not clips(sb[sb.split == "seen"]) & (clips(train) | pretrain)


def test_zste_of_every_set_for_pretrained_and_t_ab_and_the_probe(ci_run):
    run_dir, _ = ci_run
    client = MlflowClient()
    kids = {r.data.tags["teminal.notebook"]: r for r in children(client, record(run_dir)["parent_run_id"])}
    models = {r.data.tags["teminal.model"]: r for r in children(client, kids["03_zste"].info.run_id)}
    assert {"pretrained", "T-AB", "probe:level-duration"} <= set(models)
    for label in ("pretrained", "T-AB"):
        metrics = models[label].data.metrics
        assert all(f"zste/{t}" in metrics for t in ALL_TASKS)  # 3C too
        assert all(f"zste_seen/{t}" in metrics for t in TASKS if t != "1A")
        assert all(f"zste_heldout/{t}" in metrics for t in zste.PHRASING_TASKS)
    probe = models["probe:level-duration"].data.metrics
    assert {"zste/A-sd", "zste/3B", "zste/3W"} <= set(probe) and "zste/3A-o" not in probe
    assert "probe_auc/test/while/crest" in probe and "probe_auc/train/A-sd/duration_s" in probe
    stage_a = kids["01_stage_a"]
    assert len(client.get_metric_history(stage_a.info.run_id, "train/loss")) >= 2
    assert "val/loss" in stage_a.data.metrics


def test_evaluate_model_scores_the_runs_rows_on_the_same_items_with_a_card(ci_run):
    run_dir, _ = ci_run
    client = MlflowClient()
    kids = {r.data.tags["teminal.notebook"]: r for r in children(client, record(run_dir)["parent_run_id"])}
    nb = kids["05_evaluate_model"].info.run_id
    models = {r.data.tags["teminal.model"]: r for r in children(client, nb)}
    assert {"pretrained", "T-AB"} <= set(models)
    for run in models.values():
        metrics = run.data.metrics
        assert all(f"zste/{t}" in metrics for t in ALL_TASKS)  # 3A-a, the trio, 3C
        assert all(f"zste_heldout/{t}" in metrics for t in zste.PHRASING_TASKS)
    assert {"report_card.md", "report_card.png"} <= {a.path for a in client.list_artifacts(nb)}


def test_executed_copies_hold_their_figures_and_widget_state(ci_run):
    run_dir, _ = ci_run
    for nb in pipeline.PIPELINE:
        copy = nbformat.read(str(run_dir / "notebooks" / f"{nb}.ipynb"), as_version=4)
        images = [o for c in copy.cells if c.cell_type == "code" for o in c.outputs
                  if "image/png" in o.get("data", {})]
        assert images, f"{nb}: no figure in the executed copy"
        source = "".join(c.source for c in copy.cells)
        if "widgets." in source:
            state = copy.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
            assert state.get("state"), f"{nb}: widget state not saved"


def test_ablation_reuses_the_pipelines_stages_and_evaluations(ci_run):
    run_dir, _ = ci_run
    text = printed(run_dir / "notebooks" / "04_ablations.ipynb")
    assert "reused  T-AB (1,1,1,1,1)  (T-AB)" in text  # 02_stage_b's checkpoint
    assert "reusing the evaluation evaluations/pretrained.json" in text  # 03_zste's


def test_report_writes_the_results_tables_from_mlflow(ci_run):
    run_dir, _ = ci_run
    text = report.report(run_dir)
    assert f"`{run_dir.name}`" in text
    for heading in ("ZSTE — held-out pairs", "ZSTE — seen combinations", "held-out phrasings",
                    "Level/duration probe", "Ablations (Table 2 layout"):
        assert heading in text
    assert "| 3A-c | 11.1 |" in text
    assert "Level/duration probe — AUC per statistic" in text and "| 3W | 50.0 |" in text


def test_report_check_passes_a_true_readme_and_lists_a_wrong_figure(ci_run, tmp_path, capsys):
    """``report --check README``: a Results section built from this run's own report (a table
    and a prose figure) passes; one changed figure fails with exit 1 and is named."""
    run_dir, _ = ci_run
    text = report.report(run_dir)
    start = text.index("### ZSTE — held-out pairs")
    table = text[start:text.index("\n\n###", start)]
    row = next(line for line in table.splitlines() if line.startswith("| 3B |"))
    figure = row.split(" | ")[2]  # the first model's 3B, as report prints it
    readme = tmp_path / "README.md"
    body = (f"## Results\n\nThe output of `python -m teminal report runs/{run_dir.name}`.\n\n"
            f"#{table}\n\nThe pretrained model answers while to {figure} of overlays.\n")
    readme.write_text(body)
    assert cli.main(["report", str(run_dir), "--check", str(readme)]) == 0
    value = float(figure.split(" [")[0])
    readme.write_text(body.replace(f"to {figure}", f"to {value + 0.1:.1f} [0.0, 1.0]"))
    capsys.readouterr()
    assert cli.main(["report", str(run_dir), "--check", str(readme)]) == 1
    out = capsys.readouterr().out
    assert out.count("mismatch:") == 1 and f"{value + 0.1:.1f} [0.0, 1.0]" in out


def test_rerun_reuses_every_row_and_keeps_earlier_files(ci_run):
    run_dir, _ = ci_run
    first_copy = (run_dir / "notebooks" / "04_ablations.ipynb").read_bytes()
    ckpts = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*.pt")}
    run_id = pipeline.rerun_notebook(run_dir, "04_ablations")
    rec = record(run_dir)
    assert [r["run_id"] for r in rec["reruns"]] == [run_id]
    client = MlflowClient()
    assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == rec["parent_run_id"]
    text = printed(run_dir / "notebooks" / rec["reruns"][0]["executed"])
    assert " trained " not in text and "reused" in text  # every row reused, none retrained
    assert (run_dir / "notebooks" / "04_ablations.ipynb").read_bytes() == first_copy
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*.pt")} == ckpts


def test_rerun_with_p_evaluates_with_the_override(ci_run):
    run_dir, _ = ci_run
    run_id = pipeline.rerun_notebook(run_dir, "03_zste", overrides=["zste.n_boot=7"])
    client = MlflowClient()
    assert client.get_run(run_id).data.params["zste.n_boot"] == "7"
    evaluations = [r for r in children(client, run_id) if r.data.tags.get("teminal.model") == "T-AB"]
    assert evaluations and evaluations[0].data.params["zste.n_boot"] == "7"
    assert load_config(run_dir / "config.yaml").zste.n_boot != 7  # the run's record unchanged
    assert record(run_dir)["reruns"][-1]["overrides"] == ["zste.n_boot=7"]


def test_rerun_of_a_folder_without_a_record_is_a_clear_error(tmp_path):
    with pytest.raises(pipeline.PipelineError, match="not a pipeline run folder"):
        pipeline.rerun_notebook(tmp_path, "04_ablations")


def test_cli_exit_code_on_bad_params(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  not_a_param: 1\n")
    assert cli.main(["run", str(bad)]) == 1
    assert "data.not_a_param: unknown parameter" in capsys.readouterr().err
    assert cli.main(["run", str(ROOT / "params" / "ci.yaml"), "-p", "optimizer_step=3"]) == 1
    assert "did you mean 'optimizer_steps'" in capsys.readouterr().err
