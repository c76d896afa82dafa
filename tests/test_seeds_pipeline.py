"""Seeds as an axis through the whole pipeline (papermill, ``params/ci.yaml``, 2 seeds, a
reduced ablation): one child run per seed, what is shared across seeds, and the report's seed
columns and paired differences."""
import json
import os
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow import MlflowClient

from teminal import cli, report

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_seeds():
    runs = Path(os.environ["TEMINAL_WORKDIR"]) / "runs"
    before = set(runs.glob("*")) if runs.exists() else set()
    code = cli.main(["run", str(ROOT / "params" / "ci.yaml"), "-p", "seeds=2",
                     "-p", "ablations.extra_rows=[order-head]", "-p", "zste.n_boot=50"])
    assert code == 0
    (run_dir,) = set(runs.glob("*")) - before
    record = json.loads((run_dir / "pipeline.json").read_text())
    mlflow.set_tracking_uri(record["tracking_uri"])
    return run_dir, record


def _kids(client, run_id):
    exp = client.get_run(run_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")


def test_one_child_run_per_seed_and_shared_what_no_seed_changes(two_seeds):
    run_dir, record = two_seeds
    client = MlflowClient()
    notebooks = {nb: e["run_id"] for nb, e in record["notebooks"].items()}
    for nb in ("01_stage_a", "02_stage_b"):
        kids = _kids(client, notebooks[nb])
        assert sorted(r.data.tags["teminal.seed"] for r in kids) == ["0", "1"], nb
        assert all("train/loss" in r.data.metrics for r in kids), nb
    zste = {r.data.tags["teminal.model"]: r for r in _kids(client, notebooks["03_zste"])}
    assert not _kids(client, zste["pretrained"].info.run_id)  # evaluated once, no seed
    assert "teminal.seed" not in zste["pretrained"].data.tags
    seeds = _kids(client, zste["T-AB"].info.run_id)
    assert sorted(r.data.tags["teminal.seed"] for r in seeds) == ["0", "1"]
    assert all(any(a.path.endswith(".items.parquet") for a in
                   client.list_artifacts(r.info.run_id, "items")) for r in seeds)
    tags = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert {"A", "A-s1", "T-AB", "T-AB-s1", "pretrained"} <= set(tags)
    assert not any(t.startswith("pretrained-") for t in tags)  # one backbone for every seed
    meta = json.loads((run_dir / "checkpoints" / "T-AB-s1" / "meta.json").read_text())
    assert meta["seed"] == 1
    a0 = json.loads((run_dir / "checkpoints" / "A" / "meta.json").read_text())["history"]
    a1 = json.loads((run_dir / "checkpoints" / "A-s1" / "meta.json").read_text())["history"]
    assert a0 != a1  # the seed changes the training


def test_ablation_reuses_every_seeds_stage_and_the_seedless_evaluation(two_seeds):
    run_dir, _ = two_seeds
    nb = nbformat.read(str(run_dir / "notebooks" / "04_ablations.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "reused  T-AB (1,1,1,1,1)  (T-AB)" in text
    assert "reused  T-AB (1,1,1,1,1)  (T-AB-s1)" in text
    assert "reusing the evaluation evaluations/pretrained.json" in text


def test_report_shows_seed_ranges_and_paired_differences(two_seeds):
    run_dir, _ = two_seeds
    text = report.report(run_dir)
    assert "2 training seeds [0, 1]" in text
    assert "| T-AB (2 seeds) |" in text
    assert "pretrained (not trained)" in text
    held_out = text.split("### ZSTE — held-out pairs")[1].split("###")[0]
    row_3b = next(line for line in held_out.splitlines() if line.startswith("| 3B |"))
    assert "· seeds" in row_3b
    diffs = text.split("### Paired differences")[1]
    for name in ("T-AB − pretrained", "T-AB (1,1,1,1,1) − T-B (1,1,1,1,1)",
                 "T-AB+order-head (1,1,1,1,1) − T-AB (1,1,1,1,1)",
                 "T-AB: seen − held-out combinations"):
        assert f"| {name} |" in diffs, name
