"""Deterministic CPU mode: the same numbers on every x86-64 CPU (issue 17, item 1).

The SPEC fixes what is computed; this module fixes how, so that it is the same computation on
any CPU.

A CPU picks its kernels by instruction set (ATen's AVX2/AVX-512 kernels, oneDNN's convolutions,
MKL's GEMM and FFT code paths, numpy's SIMD loops for exp/log/sin …) and by thread count; they
round differently, and training amplifies the difference (issue 17: an Intel Xeon reproduced
none of the smoke numbers an AMD EPYC stored). The mode takes every such choice away:

- ``ATEN_CPU_CAPABILITY=default``: ATen's scalar-width kernels, on any CPU;
- ``ONEDNN_MAX_CPU_ISA=SSE41`` and ``torch.backends.mkldnn.enabled = False`` (``apply``): oneDNN
  is bypassed, and capped should anything still reach it;
- ``MKL_CBWR=COMPATIBLE``: MKL's conditional numerical reproducibility (one SSE2 code path on
  every x86-64 CPU, Intel or AMD), with ``MKL_DYNAMIC=FALSE``;
- one thread: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` = 1, ``torch.set_num_threads(1)`` and
  one inter-op thread (``apply``);
- ``torch.use_deterministic_algorithms(True)`` and bf16 autocast off (``apply``,
  ``training.precision.bf16_native``);
- ``NPY_DISABLE_CPU_FEATURES``: numpy's dispatched SIMD loops off (its baseline SSE3 loops
  everywhere; the AVX-512 loops compute exp/log/sin with their own rounding).

OpenBLAS (numpy's BLAS) is not steered here: ``OPENBLAS_*`` variables are the workplace's. No
stored number goes through it: the level/duration probe, the one numpy linear-algebra user on
that path, does its products and its Newton solve without BLAS (``teminal.eval.probe``).

Most of this is read once, when torch and numpy are imported, so the mode is an environment a
process must *start* in (``environment()``) plus what only Python can set (``apply()``). The
pipeline's papermill kernels (``-p deterministic=true``), nbval's and ``make notebooks``'
kernels (``notebook_tools.test_environment``) start in it; ``session.start`` calls ``apply``.
By hand::

    python -m teminal.determinism env             # export lines for a shell
    python -m teminal.determinism exec -- CMD ... # run CMD under the mode (e.g. jupyter lab)
    python -m teminal.determinism check [--json]  # a smoke training's fingerprint (teminal.smoke)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass

FLAG = "TEMINAL_DETERMINISTIC"  # "1" in a process started under the mode: apply() is due
NUMPY_DISPATCH = ("SSSE3", "SSE41", "POPCNT", "SSE42", "AVX", "F16C", "FMA3", "AVX2", "AVX512F",
                  "AVX512CD", "AVX512_KNL", "AVX512_KNM", "AVX512_SKX", "AVX512_CLX",
                  "AVX512_CNL", "AVX512_ICL", "AVX512_SPR")  # numpy's dispatchable SIMD targets


class DeterminismError(RuntimeError):
    """The mode was asked for in a process that did not start in its environment."""


def environment() -> dict[str, str]:
    """The variables a process must start with (they are read at import; module docstring)."""
    return {FLAG: "1", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_CBWR": "COMPATIBLE", "MKL_DYNAMIC": "FALSE", "MKL_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "NPY_DISABLE_CPU_FEATURES": " ".join(NUMPY_DISPATCH)}


@contextlib.contextmanager
def for_children(enabled: bool):
    """``with for_children(True):`` processes started inside (papermill / nbval kernels) start
    under the mode; this process's environment is restored after. A no-op when disabled."""
    mode = environment() if enabled else {}
    saved = {k: os.environ.get(k) for k in mode}
    os.environ.update(mode)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def requested() -> bool:
    """True in a process started under the mode's environment."""
    return os.environ.get(FLAG) == "1"


def active() -> bool:
    """True once ``apply`` ran in this process (deterministic algorithms on, oneDNN off)."""
    import torch

    return requested() and torch.are_deterministic_algorithms_enabled() \
        and not torch.backends.mkldnn.enabled


@dataclass(frozen=True)
class Applied:
    """What ``apply`` found and set (shown by ``check``)."""

    aten_capability: str
    threads: int
    interop_threads: int
    numpy_simd: tuple[str, ...]  # dispatched numpy features still on (empty under the mode)


def problems() -> list[str]:
    """Why this process is not under the mode: variables missing or read too late."""
    import torch

    out = [f"{k}={os.environ.get(k)!r} (needs {v!r})" for k, v in environment().items()
           if os.environ.get(k) != v]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        out.append(f"torch was imported with ATen kernels {capability} (needs DEFAULT)")
    if numpy_simd():
        out.append(f"numpy was imported with SIMD loops {list(numpy_simd())} on")
    return out


def numpy_simd() -> tuple[str, ...]:
    """numpy's dispatched SIMD features in use in this process."""
    try:  # numpy ≥ 2
        from numpy._core._multiarray_umath import __cpu_features__ as on
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as on

    return tuple(f for f in NUMPY_DISPATCH if on.get(f, False))


def apply() -> Applied:
    """Set what Python must set (threads, deterministic algorithms, oneDNN off) after checking
    that the process started under ``environment()``; a ``DeterminismError`` says how to."""
    import torch

    bad = problems()
    if bad:
        raise DeterminismError(
            "the deterministic CPU mode (-p deterministic=true, or TEMINAL_DETERMINISTIC=1) "
            "needs its environment before torch and numpy are imported: " + "; ".join(bad)
            + ". Start the process under it: `python -m teminal.determinism exec -- <command>` "
            "(e.g. jupyter lab), or `eval \"$(python -m teminal.determinism env)\"`")
    torch.set_num_threads(1)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before inter-op work; unused by teminal anyway
            pass
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False
    return Applied(aten_capability=torch.backends.cpu.get_cpu_capability(),
                   threads=torch.get_num_threads(),
                   interop_threads=torch.get_num_interop_threads(), numpy_simd=numpy_simd())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m teminal.determinism",
                                description="the deterministic CPU mode (teminal.determinism)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print `export NAME=value` lines of the mode's environment")
    ex = sub.add_parser("exec", help="run a command under the mode: exec -- CMD ARGS")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    ck = sub.add_parser("check", help="a smoke training in this process; print its fingerprint")
    ck.add_argument("--json", action="store_true", help="one JSON object, nothing else")
    ck.add_argument("--work-dir", default="", help="where the smoke world goes (default: temp)")
    return p


def main(argv: list[str] | None = None) -> int:
    import shlex

    args = _parser().parse_args(argv)
    if args.command == "env":
        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in environment().items()))
        return 0
    if args.command == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            print("usage: python -m teminal.determinism exec -- CMD [ARGS...]", file=sys.stderr)
            return 2
        os.execvpe(cmd[0], cmd, {**os.environ, **environment()})
    from .smoke import smoke_fingerprint

    applied = apply() if requested() else None
    out = smoke_fingerprint(work_dir=args.work_dir or None)
    out["mode"] = None if applied is None else {**vars(applied),
                                                "numpy_simd": list(applied.numpy_simd)}
    print(json.dumps(out, sort_keys=True, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
