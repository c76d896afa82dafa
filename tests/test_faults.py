"""Fault injection (issue 18), files and values: damaged cache shards, checkpoints and records,
concurrent cache writers, failed writes, NaN/inf audio, losses, weights and parameters, and
the smaller input errors. Each ends in a correct result or a clear error naming the file or
parameter. Run state and resume: ``test_faults_runs.py``; SIGKILL: ``test_faults_slow.py``."""
from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cache import SINGLES, Renderer, _cache
from fit_configs import fit_config
from test_train import Head, LinearTask

from teminal import gates, integrity
from teminal.eval import tables
from teminal.audio import CancellingChannels, NonFiniteAudio, read_audio
from teminal.cache import _ShardStore
from teminal.data import base_set
from teminal.integrity import IntegrityError
from teminal.models.tiny import TinyClap, TinyConfig
from teminal.run.config import ConfigError, apply_overrides, load_config
from teminal.run.params import RunConfig
from teminal.training.fit import fit
from teminal.warn import TeminalWarning


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
    cfg = fit_config(epochs=1, schedule="constant")
    fit(task=LinearTask(model), model=model, params=list(model.parameters()), config=cfg,
              out_dir=out, device=torch.device("cpu"), progress=False)
    raw = bytearray((out / "last.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (out / "last.pt").write_bytes(bytes(raw))
    model = Head()
    with pytest.raises(IntegrityError, match=str(out / "last.pt")):
        fit(task=LinearTask(model), model=model, params=list(model.parameters()),
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
    with pytest.raises(base_set.DatasetError, match=rf"non-finite \(1\): {clip.name}"):
        base_set.load(esc50_copy)
    with pytest.warns(TeminalWarning, match="-p data.allow_partial=true|allow_partial=true"):
        base = base_set.load(esc50_copy, allow_partial=True)
    assert clip.name not in set(base.clips["filename"])


def test_damaged_set_hint_names_the_command_line_flag(esc50_copy):
    clip = sorted((esc50_copy / "audio").glob("*.wav"))[0]
    clip.write_bytes(b"garbage")
    with pytest.raises(base_set.DatasetError, match="-p data.allow_partial=true"):
        base_set.load(esc50_copy)


def test_stereo_file_whose_channels_cancel_is_an_error_naming_it(tmp_path):
    x = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    path = _wav(tmp_path / "inverted.wav", np.stack([x, -x], axis=1), subtype="PCM_16")
    with pytest.raises(CancellingChannels, match="inverted.wav"):
        read_audio(path)
    ok = _wav(tmp_path / "stereo.wav", np.stack([x, 0.5 * x], axis=1), subtype="PCM_16")
    assert read_audio(ok).shape == (4000,)


def test_non_finite_loss_stops_training_at_that_step(tmp_path):
    model = Head()
    cfg = fit_config(epochs=3, lr=float("inf"), schedule="constant", grad_clip=0.0)
    with pytest.raises(gates.NonFiniteLoss, match=r"stage ck, epoch 1.*optimizer step 2 \(lr=inf"):
        fit(task=LinearTask(model), model=model, params=list(model.parameters()),
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
    ("pretrain.lr=nan", r"pretrain.lr: Input should be a finite number"),
    ("optimizer_steps=true", r"pretrain: optimizer_steps: expected a number, got True"),
    ("seed=false", r"seed: expected a number"),
    ("name=../../x", r"name: name must be a plain folder name"),
    ("name=a/b", r"name: name must be a plain folder name"),
])
def test_bad_values_are_refused_naming_the_parameter(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(RunConfig(), [item])


def test_duplicated_yaml_key_is_an_error_naming_it(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("stage_a:\n  optimizer_steps: 3\nstage_b:\n  lr: 0.2\nstage_a:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: duplicated key 'stage_a' \(line 5\)"):
        load_config(path)


def test_report_never_crashes_on_a_missing_value():
    import pandas as pd

    rows = pd.DataFrame({"task": ["1A", "1B"], "value": [None, 50.0], "chance": [50.0, None],
                         "ci_low": [None, 40.0], "ci_high": [None, 60.0]})
    assert list(tables.cells(rows, missing="–")) == ["–", "50.0 [40.0, 60.0]"]
    assert [tables.number(v) for v in rows["chance"]] == ["50.0", "–"]
