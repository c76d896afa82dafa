"""The whole pipeline through papermill on the smoke configuration (params/ci.yaml): MLflow
records, run-folder records, executed copies with figures and widget state, the report, and
re-running a notebook without retraining."""
import json
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow import MlflowClient

from teminal import cli, pipeline, report, tracking, zste
from teminal.data.pairs import read_manifests
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
        assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")] == [f"notebook/{nb}.ipynb"]
    assert (run_dir / "config.yaml").exists()


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
        assert all(f"zste/{t}" in metrics for t in zste.TASKS)
        assert all(f"zste_seen/{t}" in metrics for t in zste.TASKS if t != "1A")
        assert all(f"zste_heldout/{t}" in metrics for t in zste.PHRASING_TASKS)
    probe = models["probe:level-duration"].data.metrics
    assert probe["zste/3A-o"] == pytest.approx(50.0)
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
        assert all(f"zste/{t}" in metrics for t in zste.ALL_TASKS)  # 3A-a, the trio, 3C
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


def test_rerun_of_a_folder_without_a_record_is_a_clear_error(tmp_path):
    with pytest.raises(pipeline.PipelineError, match="not a pipeline run folder"):
        pipeline.rerun_notebook(tmp_path, "04_ablations")


def test_cli_exit_code_on_bad_params(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  not_a_param: 1\n")
    assert cli.main(["run", str(bad)]) == 1
    assert "data.not_a_param: unknown parameter" in capsys.readouterr().err
    assert cli.main(["run", str(ROOT / "params" / "ci.yaml"), "-p", "epoch=3"]) == 1
    assert "did you mean 'epochs'" in capsys.readouterr().err
