"""The command line as a user drives it: -p overrides, partial runs, the SPEC §6 gates, a real
ESC-50-shaped folder whose folds are not 1–5, and an interrupted pipeline resumed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from teminal import cli

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "params" / "ci.yaml")
pytestmark = pytest.mark.slow


def runs_dir() -> Path:
    return Path(os.environ["TEMINAL_WORKDIR"]) / "runs"


def newest(before: set) -> Path:
    new = sorted(set(runs_dir().glob("*")) - before, key=lambda p: p.stat().st_mtime)
    assert new, "no run folder was made"
    return new[-1]


def run(*args: str) -> tuple[int, Path]:
    before = set(runs_dir().glob("*")) if runs_dir().exists() else set()
    code = cli.main(["run", CI, *args])
    return code, newest(before)


def test_partial_run_with_overrides_records_the_final_parameters(capsys):
    code, run_dir = run("--notebooks", "00_data_synthesis", "-p", "world_classes=12",
                        "-p", "stage_b.optimizer_steps=5")
    assert code == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["world_classes"] == 12 and config["stage_b"]["optimizer_steps"] == 5
    assert config["notebooks"] == ["00_data_synthesis"]
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert list(record["notebooks"]) == ["00_data_synthesis"] and record["status"] == "FINISHED"
    assert record["overrides"] == ["world_classes=12", "stage_b.optimizer_steps=5"]
    assert "-p world_classes=12 → data.world_classes" in capsys.readouterr().out


def failure(capsys) -> str:
    return capsys.readouterr().err


def test_gate_class_subset_under_three_classes(capsys):
    code, run_dir = run("--notebooks", "00_data_synthesis", "-p", "classes=2")
    assert code == 1
    assert "SanityError" in failure(capsys)
    assert json.loads((run_dir / "pipeline.json").read_text())["status"] == "FAILED"


def test_gate_evaluation_set_under_ten_pairs(capsys):
    code, _ = run("--notebooks", "00_data_synthesis", "-p", "world_classes=6")
    assert code == 1
    assert "fewer than 10 (SPEC §6)" in failure(capsys)


def test_gate_training_split_smaller_than_one_batch(capsys):
    code, _ = run("--notebooks", "00_pretrained_baseline", "-p", "pretrain.batch_size=4096")
    assert code == 1
    err = failure(capsys)
    assert "SanityError" in err and "4096" in err and "batch_size" in err


def test_gate_pretraining_that_learned_nothing(capsys):
    code, run_dir = run("--notebooks", "00_pretrained_baseline", "-p", "pretrain.lr=1e-9",
                        "-p", "pretrain.optimizer_steps=1")
    assert code == 1
    assert "pretraining failed (SPEC §6)" in failure(capsys)
    record = json.loads((run_dir / "pipeline.json").read_text())
    mlflow.set_tracking_uri(record["tracking_uri"])
    run_ = MlflowClient().get_run(record["notebooks"]["00_pretrained_baseline"]["run_id"])
    assert run_.info.status == "FAILED" and "teminal.failed_reason" in run_.data.tags


def test_real_folder_with_folds_two_to_five_and_pairing_paper(make_esc50_like, tmp_path):
    root = make_esc50_like(tmp_path / "lab_sounds", n_classes=9, clips_per_fold=3, n_folds=4,
                           seconds=0.5)
    table = root / "meta" / "esc50.csv"  # renumber the folds 1..4 → 2..5
    lines = table.read_text().splitlines()
    head, rows = lines[0], [r.split(",") for r in lines[1:]]
    k = head.split(",").index("fold")
    for r in rows:
        r[k] = str(int(r[k]) + 1)
    table.write_text("\n".join([head] + [",".join(r) for r in rows]) + "\n")
    code, run_dir = run("--until", "03_zste", "-p", "dataset=folder", "-p", f"data_root={root}",
                        "-p", "pairing=paper", "-p", "zste.n_boot=20")
    assert code == 0
    data = json.loads((run_dir / "data.json").read_text())
    assert len(data["classes"]) == 9
    singles = (run_dir / "manifests" / "singles.csv").read_text().splitlines()
    pretraining = [s for s in singles[1:] if s.endswith(",train") or s.endswith(",val")]
    assert len(pretraining) > 9 * 2  # every clip no evaluation item uses, not one per class


def test_interrupted_pipeline_is_killed_cleanly_and_resumes(tmp_path):
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "teminal", "run", CI, "--until", "01_stage_a"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    run_dir, deadline = None, time.time() + 600
    while time.time() < deadline:  # wait until 01_stage_a is running
        line = proc.stdout.readline()
        if line.startswith("teminal: pipeline"):
            run_dir = Path(line.split("→ ")[1].split("  (MLflow")[0])
        if line.startswith("teminal: ▶ 01_stage_a"):
            break
    assert run_dir is not None
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert f"teminal resume {run_dir}" in out  # .venv/bin/teminal: no active venv needed
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert record["status"] == "KILLED" and record["stopped_at"] == "01_stage_a"
    mlflow.set_tracking_uri(record["tracking_uri"])
    client = MlflowClient()
    assert client.get_run(record["parent_run_id"]).info.status == "KILLED"
    assert client.get_run(record["notebooks"]["01_stage_a"]["run_id"]).info.status == "KILLED"
    finished = {nb: (run_dir / "notebooks" / f"{nb}.ipynb").stat().st_mtime_ns
                for nb in ("00_data_synthesis", "00_pretrained_baseline")}

    assert cli.main(["resume", str(run_dir)]) == 0
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert record["status"] == "FINISHED"
    assert {nb: e["status"] for nb, e in record["notebooks"].items()} == dict.fromkeys(
        ("00_data_synthesis", "00_pretrained_baseline", "01_stage_a"), "FINISHED")
    assert client.get_run(record["parent_run_id"]).info.status == "FINISHED"
    for nb, mtime in finished.items():  # finished notebooks untouched
        assert (run_dir / "notebooks" / f"{nb}.ipynb").stat().st_mtime_ns == mtime
    assert list((run_dir / "notebooks").glob("01_stage_a.killed-*.ipynb"))  # partial copy kept
    assert (run_dir / "checkpoints" / "A" / "best.pt").exists()
