"""Fault injection end to end (issue 18): the runner and its kernel killed with SIGKILL during
01_stage_a once ``checkpoints/A/last.pt`` exists; ``resume`` marks what was left RUNNING as
KILLED and continues stage A from its checkpoint in the same folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow import MlflowClient

from teminal import cli, tracking

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "params" / "ci.yaml")
pytestmark = pytest.mark.slow


def _start(*args: str) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-m", "teminal", "run", CI, *args], cwd=ROOT,
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("teminal: pipeline"):
            return proc, Path(line.split("→ ")[1].split("  (MLflow")[0])
        assert line or proc.poll() is None, "the run ended before it started"
    raise AssertionError("no run folder announced")


def _printed(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_sigkill_during_stage_a_then_resume_continues_in_the_same_folder():
    proc, run_dir = _start("--until", "01_stage_a", "-p", "stage_a.optimizer_steps=120",
                           "-p", "train.checkpoint_every_s=0.001")
    last = run_dir / "checkpoints" / "A" / "last.pt"
    deadline = time.time() + 900
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), "stage A never wrote last.pt"
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, no chance to clean up
    proc.wait(timeout=60)
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert record["status"] == "RUNNING" and record["notebooks"]["01_stage_a"]["status"] == "RUNNING"
    killed_child = record["notebooks"]["01_stage_a"]["run_id"]
    meta = json.loads((run_dir / "checkpoints" / "A" / "meta.json").read_text())
    assert meta["finished"] is False

    assert cli.main(["resume", str(run_dir)]) == 0
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert record["status"] == "FINISHED"
    assert {e["status"] for e in record["notebooks"].values()} == {"FINISHED"}
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["A", "pretrained"]
    assert json.loads((run_dir / "checkpoints" / "A" / "meta.json").read_text())["finished"]
    assert "resuming" in _printed(run_dir / "notebooks" / "01_stage_a.ipynb")
    mlflow.set_tracking_uri(record["tracking_uri"])
    client = MlflowClient()
    assert client.get_run(record["parent_run_id"]).info.status == "FINISHED"
    assert client.get_run(killed_child).info.status == "KILLED"
    still_open = [r.info.run_name for r in tracking.descendants(client, record["parent_run_id"])
                  if r.info.status in tracking.OPEN]
    assert still_open == []
