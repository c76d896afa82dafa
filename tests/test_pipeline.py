"""The whole pipeline through papermill on tiny parameters (params/ci.yaml)."""
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from teminal import pipeline, tracking

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    tracking.setup(uri)
    return root, uri


@pytest.fixture(scope="module")
def ci_run(store):
    root, uri = store
    config = pipeline.load_config(ROOT / "params" / "ci.yaml")
    run_dir = pipeline.run_pipeline(config, tracking_uri=uri, runs_root=root / "runs")
    return run_dir, uri


def _children(client, parent):
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_pipeline_leaves_parent_and_children(ci_run):
    run_dir, uri = ci_run
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    record = __import__("json").loads((run_dir / "pipeline.json").read_text())
    assert record["status"] == "FINISHED"
    parent = client.get_run(record["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = {r.data.tags["teminal.notebook"]: r for r in _children(client, parent.info.run_id)}
    assert set(children) == set(pipeline.NOTEBOOKS)
    for nb, run in children.items():
        assert run.info.status == "FINISHED", nb
        arts = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
        assert arts == [f"notebook/{nb}.ipynb"]
        assert (run_dir / "notebooks" / f"{nb}.ipynb").exists()


def test_pipeline_logs_data_training_and_zste(ci_run):
    run_dir, uri = ci_run
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    parent = __import__("json").loads((run_dir / "pipeline.json").read_text())["parent_run_id"]
    children = {r.data.tags["teminal.notebook"]: r for r in _children(client, parent)}
    data = children["00_data_synthesis"].data
    assert data.metrics["data/stage_b/test"] == 8 * 7
    assert any(k.startswith("hash/") for k in data.params)
    stage_a = children["01_stage_a"]
    assert "train/loss" in stage_a.data.metrics and "val/loss" in stage_a.data.metrics
    assert len(client.get_metric_history(stage_a.info.run_id, "train/loss")) >= 1
    assert (run_dir / "checkpoints" / "A" / "best.pt").exists()
    assert (run_dir / "checkpoints" / "T-AB" / "best.pt").exists()
    zste_runs = {r.data.tags["teminal.model"]: r for r in _children(client, children["03_zste"].info.run_id)}
    assert {"pretrained", "T-AB"} <= set(zste_runs)
    for run in zste_runs.values():
        for task in ("1A", "2A", "2B", "2C", "2D", "3A", "3B", "4A", "4B", "5A", "5B", "3A-c"):
            assert f"zste/{task}" in run.data.metrics
    abl = children["04_ablations"]
    names = [a.path for a in client.list_artifacts(abl.info.run_id)]
    assert "ablation_table.json" in names and "ablation_heatmap.png" in names


def test_ablation_rerun_reuses_finished_rows_and_keeps_earlier_files(ci_run):
    run_dir, uri = ci_run
    first_copy = (run_dir / "notebooks" / "04_ablations.ipynb").read_bytes()
    ckpts = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*.pt")}
    run_id = pipeline.rerun_notebook(run_dir, "04_ablations")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    record = __import__("json").loads((run_dir / "pipeline.json").read_text())
    assert [r["run_id"] for r in record["reruns"]] == [run_id]
    rerun = client.get_run(run_id)
    assert rerun.data.tags["mlflow.parentRunId"] == record["parent_run_id"]
    assert _children(client, run_id) == []  # every row reused: no stage notebook ran again
    assert (run_dir / "notebooks" / record["reruns"][0]["executed"]).exists()
    assert (run_dir / "notebooks" / "04_ablations.ipynb").read_bytes() == first_copy
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*.pt")} == ckpts
    first = client.get_run(record["notebooks"]["04_ablations"]["run_id"])
    tables = [__import__("json").loads(Path(client.download_artifacts(r.info.run_id, "ablation_table.json")).read_text())
              for r in (first, rerun)]
    assert tables[0] == tables[1]


def test_rerun_of_a_folder_without_a_record_is_a_clear_error(tmp_path):
    with pytest.raises(pipeline.PipelineError, match="not a pipeline run folder"):
        pipeline.rerun_notebook(tmp_path, "04_ablations")


def test_failing_notebook_names_cell_and_copy(store, tmp_path):
    root, uri = store
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnotebooks: [00_data_synthesis]\nparams:\n  pairing: bogus\n")
    config = pipeline.load_config(bad)
    with pytest.raises(pipeline.PipelineError) as err:
        pipeline.run_pipeline(config, tracking_uri=uri, runs_root=root / "runs")
    msg = str(err.value)
    assert "00_data_synthesis.ipynb failed in cell" in msg and "pairing" in msg
    assert "executed copy:" in msg
    copy = Path(msg.split("executed copy:")[1].strip())
    assert copy.exists()
    record = __import__("json").loads((copy.parent.parent / "pipeline.json").read_text())
    assert record["status"] == "FAILED"
    mlflow.set_tracking_uri(uri)
    assert MlflowClient().get_run(record["parent_run_id"]).info.status == "FAILED"


def test_cli_exit_code_on_bad_params(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  not_a_param: 1\n")
    assert pipeline.main(["run", str(bad)]) == 1
    assert "not_a_param" in capsys.readouterr().err
