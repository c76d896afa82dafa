"""Fault injection (issue 18): each damaged input or interrupted exit path ends in a correct
result or a clear error naming the file or parameter, with MLflow, ``pipeline.json`` and the
run folder agreeing. The end-to-end kill/resume case is in ``test_faults_slow.py``."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient
from model_fixtures import synth_wave
from test_cache import SINGLES, Renderer, _cache
from test_train import Head, LinearTask

from teminal import cli, integrity, pipeline, report, runstate, tracking, train
from teminal.audio import CancellingChannels, NonFiniteAudio, Recipe, read_audio
from teminal.cache import _ShardStore
from teminal.data import esc50
from teminal.integrity import IntegrityError
from teminal.models.tiny import TinyClap, TinyConfig
from teminal.run.config import ConfigError, apply_overrides, load_config
from teminal.run.layout import RunLayout, new_run_dir
from teminal.run.params import RunConfig, StageAParams
from teminal.run.session import Session
from teminal.run.steps import stages
from teminal.run.steps.data import check_same_base
from teminal.warn import TeminalWarning, record_to, warn

ROOT = Path(__file__).resolve().parents[1]
CI = str(ROOT / "params" / "ci.yaml")


@pytest.fixture(scope="module")
def tiny() -> TinyClap:
    return TinyClap(config=TinyConfig())


@pytest.fixture()
def recipe() -> Recipe:
    return Recipe(sample_rate=16000)


@pytest.fixture()
def uri(tmp_path) -> str:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    tracking.setup(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


# ---- 1. verified artifacts ------------------------------------------------------------------
def _flip_in_place(shard: Path) -> None:
    """Flip the sign of 10 % of a shard's stored float16 values, bytes changed in place (the
    checksum trailer kept): what a disk or copy error does."""
    raw = bytearray(shard.read_bytes())
    flat = torch.load(shard, weights_only=True)["fields"]["pooled"]["flat"]
    stored = flat.numpy().tobytes()
    at = raw.find(stored)  # the zip stores tensor bytes uncompressed
    assert at > 0 and flat.dtype == torch.float16
    for k in range(flat.numel() // 10):
        raw[at + 2 * k + 1] ^= 0x80  # the sign bit of a little-endian float16
    shard.write_bytes(bytes(raw))
    flipped = torch.load(shard, weights_only=True)["fields"]["pooled"]["flat"]
    assert torch.equal(flipped[: flat.numel() // 10], -flat[: flat.numel() // 10])


@pytest.mark.parametrize("damage", ["flip-in-place", "nan-resaved"])
def test_damaged_shard_is_named_and_recomputed(tiny, recipe, tmp_path, damage):
    render = Renderer(16000)
    want = _cache(tmp_path, tiny, recipe).audio(SINGLES, render, frames=False).pooled
    shards = sorted(_cache(tmp_path, tiny, recipe).audio_dir.glob("*.pt"))
    if damage == "flip-in-place":
        _flip_in_place(shards[0])
    else:  # NaN written over a shard with torch.save: no (valid) checksum
        blob = torch.load(shards[0], weights_only=True)
        for field in blob["fields"].values():
            field["flat"][:] = float("nan")
        torch.save(blob, shards[0])
    calls = len(render.calls)
    with pytest.warns(TeminalWarning, match=shards[0].name):
        got = _cache(tmp_path, tiny, recipe).audio(SINGLES, render, frames=False).pooled
    assert len(render.calls) > calls  # recomputed
    assert torch.isfinite(got).all() and torch.equal(got, want)
    assert not shards[0].exists()  # the damaged shard is gone once nothing points to it


def test_unreferenced_shards_and_temporary_files_are_removed(tiny, recipe, tmp_path):
    cache = _cache(tmp_path, tiny, recipe)
    cache.audio(SINGLES, Renderer(16000), frames=False)
    orphan = cache.audio_dir / "0123456789abcdef.pt"
    integrity.save_torch({"format": 2, "fields": {}}, orphan)
    stale = cache.audio_dir / ".index.json.deadbeef.tmp"
    stale.write_text("{")
    _cache(tmp_path, tiny, recipe)
    assert not orphan.exists() and not stale.exists()
    index = json.loads((cache.audio_dir / "index.json").read_text())
    assert {p.name for p in cache.audio_dir.glob("*.pt")} == {e["shard"] for e in index.values()}


def test_concurrent_writers_keep_one_consistent_index(tmp_path):
    folder = tmp_path / "shards"

    def writer(name: str) -> None:
        store = _ShardStore(folder, torch.float16)
        for k in range(15):
            store.put({f"{name}-{k}": {"pooled": torch.full((4,), float(k)).half()}})

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = _ShardStore(folder, torch.float16)
    assert len(store.index) == 45
    assert {p.name for p in folder.glob("*.pt")} == {e["shard"] for e in store.index.values()}
    store.load(list(store.index))
    assert torch.equal(store.mem["b-7"]["pooled"], torch.full((4,), 7.0).half())


def test_damaged_checkpoint_stops_the_run_naming_it(tmp_path):
    out = tmp_path / "ck"
    model = Head()
    cfg = train.TrainConfig(epochs=1, batch_size=16, lr=0.05, schedule="constant")
    train.fit(task=LinearTask(model), model=model, params=list(model.parameters()), config=cfg,
              out_dir=out, device=torch.device("cpu"), progress=False)
    raw = bytearray((out / "last.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (out / "last.pt").write_bytes(bytes(raw))
    model = Head()
    with pytest.raises(IntegrityError, match=str(out / "last.pt")):
        train.fit(task=LinearTask(model), model=model, params=list(model.parameters()),
                  config=cfg, out_dir=out, device=torch.device("cpu"), progress=False)


def test_damaged_model_file_is_refused_naming_it(tiny, tmp_path):
    tiny.save(tmp_path / "model.pt")
    assert integrity.verify_file(tmp_path / "model.pt") is True
    with open(tmp_path / "model.pt", "r+b") as fh:
        fh.seek(2000)
        fh.write(b"\x00" * 64)
    with pytest.raises(IntegrityError, match="model.pt"):
        TinyClap.load(tmp_path / "model.pt")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "pipeline.json"
    integrity.write_json(path, {"status": "RUNNING"})

    def full_disk(p: Path) -> None:
        p.write_text('{"sta')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        integrity.write_atomic(path, full_disk)
    assert integrity.read_json(path) == {"status": "RUNNING"}
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline.json"]


def test_json_records_are_checked_and_never_hold_nan(tmp_path):
    path = tmp_path / "evaluations" / "B.json"
    integrity.write_json(path, {"value": float("nan"), "n": [1.0, float("inf")]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert integrity.read_json(path) == {"value": None, "n": [1.0, None]}
    path.write_text(text.replace("1.0", "2.0"))
    with pytest.raises(IntegrityError, match="B.json"):
        integrity.read_json(path)


# ---- 2. non-finite values stop the run where they appear -------------------------------------
def _wav(path: Path, x: np.ndarray, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), x, 8000, subtype=subtype)
    return path


def test_audio_with_nan_or_inf_is_a_data_error_naming_the_file(esc50_copy):
    clip = sorted((esc50_copy / "audio").glob("*.wav"))[3]
    x = sf.read(str(clip), dtype="float32")[0]
    x[100], x[200] = np.nan, np.inf
    _wav(clip, x)
    with pytest.raises(NonFiniteAudio, match=clip.name):
        read_audio(clip)
    with pytest.raises(esc50.DatasetError, match=rf"non-finite \(1\): {clip.name}"):
        esc50.load(esc50_copy)
    with pytest.warns(TeminalWarning, match="-p data.allow_partial=true|allow_partial=true"):
        base = esc50.load(esc50_copy, allow_partial=True)
    assert clip.name not in set(base.clips["filename"])


def test_damaged_set_hint_names_the_command_line_flag(esc50_copy):
    clip = sorted((esc50_copy / "audio").glob("*.wav"))[0]
    clip.write_bytes(b"garbage")
    with pytest.raises(esc50.DatasetError, match="-p data.allow_partial=true"):
        esc50.load(esc50_copy)


def test_stereo_file_whose_channels_cancel_is_an_error_naming_it(tmp_path):
    x = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    path = _wav(tmp_path / "inverted.wav", np.stack([x, -x], axis=1), subtype="PCM_16")
    with pytest.raises(CancellingChannels, match="inverted.wav"):
        read_audio(path)
    ok = _wav(tmp_path / "stereo.wav", np.stack([x, 0.5 * x], axis=1), subtype="PCM_16")
    assert read_audio(ok).shape == (4000,)


def test_non_finite_loss_stops_training_at_that_step(tmp_path):
    model = Head()
    cfg = train.TrainConfig(epochs=3, batch_size=16, lr=float("inf"), schedule="constant",
                            grad_clip=0.0)
    with pytest.raises(train.NonFiniteLoss, match=r"stage ck, epoch 1.*optimizer step 1 \(lr=inf"):
        train.fit(task=LinearTask(model), model=model, params=list(model.parameters()),
                  config=cfg, out_dir=tmp_path / "ck", device=torch.device("cpu"), progress=False)
    assert not list((tmp_path / "ck").glob("*.pt"))  # nothing saved


def test_a_model_with_non_finite_weights_is_not_evaluated():
    from teminal.gates import SanityError
    from teminal.run.steps.evaluate import check_finite_model, check_finite_tables

    model = TinyClap(config=TinyConfig())
    check_finite_model(model, label="T-AB", tag="B")
    with torch.no_grad():
        model.trainable_parameters()[0].view(-1)[0] = float("nan")
    with pytest.raises(SanityError, match=r"model T-AB \(checkpoints/B\) has non-finite weights"):
        check_finite_model(model, label="T-AB", tag="B")
    import pandas as pd

    with pytest.raises(SanityError, match=r"zste of model T-AB: non-finite value for tasks \['1A'\]"):
        check_finite_tables({"zste": pd.DataFrame({"task": ["1A", "1B"], "value": [float("nan"), 50.0]})},
                            label="T-AB")


@pytest.mark.parametrize("item, match", [
    ("stage_b.lr=inf", r"stage_b.lr: Input should be a finite number"),
    ("stage_a.lr=-.inf", r"stage_a.lr: Input should be a finite number"),
    ("model.pretrain_lr=nan", r"model.pretrain_lr: Input should be a finite number"),
    ("epochs=true", r"stage_a: epochs: expected a number, got True"),
    ("seed=false", r"seed: expected a number"),
    ("name=../../x", r"name: name must be a plain folder name"),
    ("name=a/b", r"name: name must be a plain folder name"),
])
def test_bad_values_are_refused_naming_the_parameter(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), [item])


def test_duplicated_yaml_key_is_an_error_naming_it(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("stage_a:\n  epochs: 3\nstage_b:\n  epochs: 2\nstage_a:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: duplicated key 'stage_a' \(line 5\)"):
        load_config(path)


def test_report_never_crashes_on_a_missing_value():
    import pandas as pd

    rows = pd.DataFrame({"task": ["1A", "1B"], "value": [None, 50.0], "chance": [50.0, None],
                         "ci_low": [None, 40.0], "ci_high": [None, 60.0]})
    table = report.wide({"T-AB": rows})
    assert list(table["T-AB"]) == ["–", "50.0 [40.0, 60.0]"]
    assert list(table["chance"]) == ["50.0", "–"]


# ---- 3. resume resumes ----------------------------------------------------------------------
class _Model(Head):
    def trainable_parameters(self):
        return list(self.parameters())


def _session(root: Path) -> Session:
    config = RunConfig().model_copy(update={"train": RunConfig().train.model_copy(
        update={"checkpoint_every_s": 1e-9})})
    return Session(notebook="01_stage_a", config=config, layout=RunLayout(root),
                   device=torch.device("cpu"), run_id="", standalone=True)


def _stage(S: Session, fail_at_call=None) -> stages.Trained:
    params = StageAParams(epochs=4, batch_size=16, lr=0.05)
    model = _Model(dropout=0.3)
    with tracking.run(run_name="A"):
        return stages._fit(S, role="A", key="key-of-stage-a", label="A", model=model,
                           task=LinearTask(model, fail_at_call=fail_at_call), params=params,
                           start_tag="pretrained")


def test_an_interrupted_stage_resumes_in_its_folder_bit_identical(tmp_path, uri):
    full = _stage(_session(tmp_path / "full"))
    S = _session(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        _stage(S, fail_at_call=2 * 3 + 2)  # 3 steps per epoch: inside epoch 3
    assert S.layout.read_meta("A") == S.layout.read_meta("A") | {"finished": False,
                                                                 "key": "key-of-stage-a"}
    assert S.layout.free_tag("A", "key-of-stage-a") == "A"
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
    base = esc50.load(esc50_copy)
    integrity.write_json(layout.data_file, {"fingerprint": base.fingerprint,
                                            "files": base.file_hashes})
    check_same_base(layout, esc50.load(esc50_copy))  # unchanged: fine
    clip = sorted((esc50_copy / "audio").glob("*.wav"))[5]
    x, sr = sf.read(str(clip))
    sf.write(str(clip), 0.5 * x, sr, subtype="PCM_16")
    before = _runs(uri)
    with pytest.raises(esc50.DatasetError, match=rf"changed files \(1\): {clip.name}"):
        pipeline.rerun_notebook(layout.root, "00_pretrained_baseline")
    with pytest.raises(esc50.DatasetError, match=clip.name):
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
    from teminal.run.steps.evaluate import _read

    S = _session(tmp_path / "run")
    path = S.layout.evaluation("B")
    integrity.write_json(path, {"label": "T-AB", "tag": "B", "key": "k", "zero_shot": None,
                                "tables": {"zste": [{"task": "1A", "value": 50.0, "ci_low": None}]}})
    ev = _read(S, "B", "k")
    assert ev.reused and ev.tables["zste"]["ci_low"].dtype == float  # null reads as NaN
    path.write_text(path.read_text().replace("50.0", "45.0"))
    with pytest.warns(TeminalWarning, match="B.json is damaged"):
        assert _read(S, "B", "k") is None
