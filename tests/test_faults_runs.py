"""Fault injection (issue 18), run state: an interrupted stage resumed bit-identical, MLflow
and ``pipeline.json`` after a dead runner or a full disk, bad arguments, two runs creating one
MLflow store, warnings that reach the user, changed data on rerun/resume. Damaged files and
non-finite values are in ``test_faults.py``; SIGKILL end to end in ``test_faults_slow.py``."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient
from test_train import Head, LinearTask

from teminal import cli, integrity, pipeline, report, runstate, tracking
from teminal.data import base_set
from teminal.run import keys
from teminal.run.config import ConfigError
from teminal.run.layout import RunLayout, new_run_dir
from teminal.run.params import RunConfig, StageAParams
from teminal.run.session import Session
from teminal.run.steps import stages
from teminal.run.steps.data import check_same_base
from teminal.warn import TeminalWarning, record_to, warn

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "params" / "ci.yaml")


@pytest.fixture()
def uri(tmp_path) -> str:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    tracking.setup(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


# ---- 3. resume resumes ----------------------------------------------------------------------
class _Model(Head):
    def trainable_parameters(self):
        return list(self.parameters())


def _session(root: Path) -> Session:
    config = RunConfig().model_copy(update={"train": RunConfig().train.model_copy(
        update={"checkpoint_every_s": 1e-9})})
    return Session(notebook="01_stage_a", config=config, layout=RunLayout(root),
                   device=torch.device("cpu"), run_id="", standalone=True)


KEY = keys.Key({"stage": "a"})


def _stage(S: Session, fail_at_call=None) -> stages.Trained:
    params = StageAParams(optimizer_steps=12, batch_size=16, lr=0.05)  # 4 epochs × 3 steps
    model = _Model(dropout=0.3)
    with tracking.run(run_name="A"):
        return stages._fit(S, role="A", key=KEY, label="A", model=model,
                           task=LinearTask(model, fail_at_call=fail_at_call), params=params,
                           start_tag="pretrained", seed=0)


def test_an_interrupted_stage_resumes_in_its_folder_bit_identical(tmp_path, uri):
    full = _stage(_session(tmp_path / "full"))
    S = _session(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        _stage(S, fail_at_call=2 * 3 + 2)  # 3 steps per epoch: inside epoch 3
    assert S.layout.read_meta("A") == S.layout.read_meta("A") | {"finished": False,
                                                                 "key": KEY}
    assert S.layout.free_tag("A", KEY) == "A"
    torch.manual_seed(123)
    resumed = _stage(S)
    assert S.layout.tags() == ["A"]  # no A-<hash>/: the same folder
    assert S.layout.read_meta("A")["finished"] is True
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert S.layout.free_tag("A", "other-key") == "A-other-ke"  # other inputs: a new folder


# ---- 4. one truth for run state -------------------------------------------------------------
def _runs(uri: str) -> int:
    mlflow.set_tracking_uri(uri)
    exp = MlflowClient().get_experiment_by_name(tracking.EXPERIMENT)
    return 0 if exp is None else len(MlflowClient().search_runs([exp.experiment_id]))


@pytest.mark.parametrize("args, match", [
    (["--notebooks", "00_data"], r"--notebooks 00_data: unknown notebook — did you mean"),
    (["--notebooks", "01_stage_a,00_data_synthesis"], "must keep the pipeline order"),
    (["--notebooks", "00_data_synthesis,00_data_synthesis"], "listed more than once"),
    (["-p", "name=../../x"], "name must be a plain folder name"),
])
def test_bad_arguments_make_no_folder_and_no_run(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.setenv("TEMINAL_WORKDIR", str(tmp_path / "work"))
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    assert cli.main(["run", CI, "--tracking-uri", uri, *args]) == 1
    assert match in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "work" / "runs").exists() or not any((tmp_path / "work" / "runs").iterdir())
    assert not (tmp_path / "x").exists()
    assert _runs(uri) == 0


def test_new_run_dir_never_leaves_runs(tmp_path):
    with pytest.raises(ConfigError, match="outside"):
        new_run_dir("../escape", tmp_path / "runs")
    assert not (tmp_path / "escape").exists() and not list(tmp_path.glob("escape*"))


def test_two_runs_setting_up_a_new_store_together(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"
    code = f"from teminal import tracking; print(tracking.setup({uri!r}))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # one experiment, made once


def _pipeline_folder(tmp_path: Path, uri: str) -> tuple[RunLayout, str, str]:
    layout = RunLayout(tmp_path / "run")
    layout.write_config(RunConfig())
    parent = tracking.create_run(run_name="run")
    child = tracking.create_run(run_name="01_stage_a", parent_run_id=parent)
    nested = tracking.create_run(run_name="train: A", parent_run_id=child)
    layout.write_record({"parent_run_id": parent, "tracking_uri": uri, "planned": ["01_stage_a"],
                         "status": "RUNNING", "notebooks": {"01_stage_a": {
                             "run_id": child, "status": "RUNNING", "executed": "x.ipynb"}}})
    return layout, parent, nested


def test_what_a_killed_runner_left_running_is_marked_killed(tmp_path, uri):
    layout, parent, nested = _pipeline_folder(tmp_path, uri)
    orphan = tracking.create_run(run_name="never recorded", parent_run_id=parent)
    record = runstate.reconcile(layout, layout.read_record())
    client = MlflowClient()
    child = record["notebooks"]["01_stage_a"]["run_id"]
    assert layout.read_record()["notebooks"]["01_stage_a"]["status"] == "KILLED"
    assert [client.get_run(r).info.status for r in (child, nested, orphan)] == ["KILLED"] * 3


def test_the_parent_is_ended_even_when_the_record_cannot_be_written(tmp_path, uri, capsys):
    layout, parent, nested = _pipeline_folder(tmp_path, uri)
    record_file = layout.record_file
    record_file.unlink()
    record_file.mkdir()  # every write of pipeline.json now fails, as on a full disk
    runstate.close_parent(layout, parent, "FAILED", "01_stage_a")
    assert MlflowClient().get_run(parent).info.status == "FAILED"
    assert MlflowClient().get_run(nested).info.status == "FAILED"
    assert "`resume` records it" in capsys.readouterr().err


def test_a_dead_kernel_gets_a_memory_hint():
    from nbclient.exceptions import DeadKernelError

    assert "memory" in runstate.hint(DeadKernelError("Kernel died"))
    assert "disk is full" in runstate.hint(OSError(errno.ENOSPC, "No space left on device"))


# ---- 5. warnings reach the user -------------------------------------------------------------
def test_teminal_warnings_survive_a_global_ignore_and_are_recorded():
    seen: list[str] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")  # what `import msclap` does
        record_to(seen.append)
        with pytest.warns(TeminalWarning):
            warn("3 clips dropped")
        warnings.resetwarnings()
        warnings.filterwarnings("ignore")
        warn("4 clips dropped")
    assert seen[-1] == "4 clips dropped"


def test_teminal_warnings_show_after_import_msclap_with_pythonwarnings_ignore():
    code = ("import msclap, teminal.warn as w; w.warn('clips dropped: 1-100-A-0.wav'); "
            "import warnings; warnings.warn('third-party noise')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT)),
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "TeminalWarning: clips dropped: 1-100-A-0.wav" in out.stderr
    assert "third-party noise" not in out.stderr


# ---- 6. data identity on reuse --------------------------------------------------------------
def test_rerun_after_the_data_changed_refuses_naming_the_file(esc50_copy, tmp_path, uri):
    layout, parent, _ = _pipeline_folder(tmp_path, uri)
    config = RunConfig(data={"dataset": "folder", "data_root": str(esc50_copy)})
    (layout.root / "config.yaml").unlink()
    layout.write_config(config)
    base = base_set.load(esc50_copy)
    integrity.write_json(layout.data_file, {"fingerprint": base.fingerprint,
                                            "files": base.file_hashes})
    check_same_base(layout, base_set.load(esc50_copy))  # unchanged: fine
    clip = sorted((esc50_copy / "audio").glob("*.wav"))[5]
    x, sr = sf.read(str(clip))
    sf.write(str(clip), 0.5 * x, sr, subtype="PCM_16")
    before = _runs(uri)
    with pytest.raises(base_set.DatasetError, match=rf"changed files \(1\): {clip.name}"):
        pipeline.rerun_notebook(layout.root, "00_pretrained_baseline")
    with pytest.raises(base_set.DatasetError, match=clip.name):
        pipeline.resume(layout.root)
    assert _runs(uri) == before  # refused before any run was made


def test_a_notebooks_warnings_reach_mlflow_and_the_command_output(uri, capsys):
    from teminal.run.session import _warnings_to_mlflow

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        with tracking.run(run_name="00_data_synthesis", tracking_uri=uri) as active:
            record_to(_warnings_to_mlflow())
            warn("allow_partial dropped 2 clips: 1-100-A-0.wav, 1-101-A-0.wav")
            warn("a second one")
    run = MlflowClient().get_run(active.info.run_id)
    assert run.data.tags["teminal.warnings"].startswith("allow_partial dropped 2 clips")
    runstate.print_warnings(MlflowClient(), active.info.run_id, "00_data_synthesis")
    err = capsys.readouterr().err
    assert "teminal: warning from 00_data_synthesis: allow_partial dropped 2 clips" in err
    assert "teminal: warning from 00_data_synthesis: a second one" in err


def test_report_of_a_failed_run_says_why_there_is_nothing(tmp_path, uri):
    layout, parent, _ = _pipeline_folder(tmp_path, uri)
    runstate.close_parent(layout, parent, "FAILED", "01_stage_a")
    text = report.report(layout.root)
    assert "No results: the run's status is FAILED, stopped at 01_stage_a" in text


def test_a_damaged_evaluation_file_is_named_and_computed_again(tmp_path):
    import pandas as pd

    from teminal.eval import seed_stats
    from teminal.run.steps.evaluate import _read

    S = _session(tmp_path / "run")
    path = S.layout.evaluation("B")
    items = path.with_suffix(".items.parquet")
    seed_stats.write_items(pd.DataFrame({"task": ["1A"], "score": [0.5]}), items)
    integrity.write_json(path, {"label": "T-AB", "tag": "B", "key": "k", "zero_shot": None,
                                "tables": {"zste": [{"task": "1A", "value": 50.0, "ci_low": None}]},
                                "items_sha256": seed_stats.file_sha256(items)})
    ev = _read(S, "B", "k")
    assert ev.reused and ev.tables["zste"]["ci_low"].dtype == float  # null reads as NaN
    path.write_text(path.read_text().replace("50.0", "45.0"))
    with pytest.warns(TeminalWarning, match="B.json is damaged"):
        assert _read(S, "B", "k") is None
