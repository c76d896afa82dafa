"""The deterministic CPU mode (teminal.determinism; issue 17 item 1).

The slow test runs a smoke training (``teminal.smoke``: world → pretraining → stage A →
stage B → ZSTE → probe) in subprocesses under emulated CPUs: instruction-set caps of ATen,
oneDNN, MKL, numpy and glibc, and thread counts. With the mode every fingerprint is identical; without it
the ATen/oneDNN kernels of this CPU and the portable ones give different trainings.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from teminal import determinism

ROOT = Path(__file__).resolve().parents[1]
AVX512 = "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"
CPUS = {  # what a different CPU would change underneath, emulated by caps
    "this CPU": {},
    "AVX2, no AVX-512": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                         "MKL_ENABLE_INSTRUCTIONS": "AVX2", "NPY_DISABLE_CPU_FEATURES": AVX512,
                         "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512DQ"},
    "two threads": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
}
PORTABLE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}  # kernels only
EMULATED = {k for cpu in CPUS.values() for k in cpu} | set(PORTABLE)


def run(code_or_args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the mode (conftest sets it) or any emulation."""
    drop = set(determinism.environment()) | EMULATED
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def fingerprint(env: dict[str, str]) -> dict:
    proc = run(["-m", "teminal.determinism", "check", "--json"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for timing in ("seconds", "cpu_seconds"):
        out.pop(timing)
    return out


def test_the_environment_is_what_the_docs_promise():
    env = determinism.environment()
    assert env["ATEN_CPU_CAPABILITY"] == "default" and env["MKL_CBWR"] == "COMPATIBLE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert set(env["NPY_DISABLE_CPU_FEATURES"].split()) >= {"AVX2", "AVX512F", "AVX512_SKX"}
    assert not any(k.startswith("OPENBLAS") for k in env)  # the workplace's, never ours


def test_for_children_sets_the_mode_and_restores_the_environment(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv(determinism.FLAG, raising=False)
    with determinism.for_children(True):
        assert os.environ["ATEN_CPU_CAPABILITY"] == "default" and determinism.requested()
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and determinism.FLAG not in os.environ
    with determinism.for_children(False):
        assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"


CHECK = ("import torch, json; from teminal import determinism as d; a = d.apply(); "
         "print(json.dumps([a.aten_capability, a.threads, list(a.numpy_simd), "
         "torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.enabled, "
         "d.active()]))")


def test_apply_under_the_mode_sets_what_python_must_set():
    proc = run(["-c", CHECK], {**clean_env(OMP_NUM_THREADS="2"), **determinism.environment()})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == ["DEFAULT", 1, [], True, False, True]


def test_apply_without_the_environment_is_a_clear_error():
    proc = run(["-c", CHECK], clean_env())
    assert proc.returncode != 0
    assert "DeterminismError" in proc.stderr and "ATEN_CPU_CAPABILITY" in proc.stderr
    assert "python -m teminal.determinism exec" in proc.stderr


@pytest.mark.slow
def test_a_smoke_training_is_bit_identical_across_emulated_cpus_with_the_mode():
    mode = determinism.environment()
    on = {name: fingerprint({**clean_env(**cpu), **mode}) for name, cpu in CPUS.items()}
    first = on["this CPU"]
    for name, got in on.items():
        assert got == first, f"with the mode, {name!r} differs from this CPU: {got} vs {first}"
    assert first["stage_b"] and first["zste"]["3A"]
    # the test can fail: without the mode, this CPU's kernels and the portable ones differ
    native, portable = fingerprint(clean_env()), fingerprint(clean_env(**PORTABLE))
    assert native["world"] == portable["world"]
    assert native["pretrained"] != portable["pretrained"], "kernels did not change a thing"
    assert native != first


@pytest.mark.slow
def test_a_run_with_deterministic_true_starts_its_kernels_in_the_mode(tmp_path, monkeypatch):
    import mlflow

    from teminal import pipeline
    from teminal.run.config import load_config

    for key in determinism.environment():  # as a user's shell: no mode in the parent process
        monkeypatch.delenv(key, raising=False)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    config = load_config(ROOT / "params" / "ci.yaml").model_copy(
        update={"deterministic": True, "notebooks": ["00_data_synthesis"]})
    run_dir = pipeline.run_pipeline(config, tracking_uri=uri, runs_root=tmp_path / "runs")
    assert not determinism.requested()  # the parent's environment is restored
    record = json.loads((run_dir / "pipeline.json").read_text())
    child = record["notebooks"]["00_data_synthesis"]
    assert child["status"] == "FINISHED"  # session.start → apply() found the mode's environment
    mlflow.set_tracking_uri(uri)
    assert mlflow.get_run(child["run_id"]).data.params["deterministic"] == "True"
