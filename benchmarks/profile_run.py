"""Where the time of ``make run`` goes: per notebook, per phase, with peak RSS.

Runs ``python -m teminal run <params>`` under ``/usr/bin/time -v`` in a fresh, empty work
folder (no data/, cache/ or mlruns/ to reuse), or reads an existing run folder (``--run-dir``),
and breaks each notebook's seconds down into phases:

- **kernel start and imports** — from papermill's start to the end of the notebook's first code
  cell after the parameters (kernel, imports, ``session.start``);
- **data**, **pretraining**, **trunk cache**, **train steps**, **validation**,
  **checkpoints and metrics** (checkpoint writes and the per-epoch MLflow batch),
  **evaluation**, **checkpoint writes** — timed inside the library (``profile.jsonl`` of the
  run folder, written by ``RunLayout.phase``);
- **other** — the rest of the notebook (figures, tables, MLflow artifacts, widgets).

    .venv/bin/python benchmarks/profile_run.py                       # params/default.yaml
    .venv/bin/python benchmarks/profile_run.py --params params/ci.yaml --out out/ci.json
    .venv/bin/python benchmarks/profile_run.py --run-dir runs/default-20261130-101500
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
PHASES = ("kernel start and imports", "data", "pretraining", "trunk cache", "train steps",
          "validation", "checkpoints and metrics", "evaluation", "checkpoint writes", "other")
NESTED = {"training"}  # sums of finer phases (train steps, validation, checkpoints and metrics)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params/default.yaml", help="pipeline YAML to run")
    p.add_argument("-p", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="passed on to `python -m teminal run`")
    p.add_argument("--run-dir", default="", help="profile this finished run instead of running")
    p.add_argument("--out", default="", help="also write the figures to this JSON file")
    return p.parse_args(argv)


def run(params: str, overrides: list[str], extra: list[str] = ()) -> tuple[Path, float, float]:
    """Run the pipeline in an empty temporary work folder; (run folder, wall s, peak RSS MiB).
    ``extra``: more arguments of ``python -m teminal run`` (e.g. ``["--until", "02_stage_b"]``)."""
    work = Path(tempfile.mkdtemp(prefix="teminal-profile-"))
    env = dict(os.environ, TEMINAL_WORKDIR=str(work), TEMINAL_PROGRESS="0",
               TEMINAL_TRACKING_URI=f"sqlite:///{work}/mlruns/mlflow.db")
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "teminal", "run", params]
    cmd += [x for o in overrides for x in ("-p", o)] + list(extra)
    print("running:", " ".join(cmd), f"(work folder {work})", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"the pipeline failed:\n{log[-4000:]}")
    run_dir = Path(re.search(r"teminal: done → (.+)", log).group(1).strip())
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", log).group(1)
    seconds = sum(float(x) * 60 ** k for k, x in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 1024
    return run_dir, seconds, rss


def _time(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def startup(path: Path) -> float:
    """Seconds from papermill's start to the end of the first code cell after the parameters."""
    nb = nbformat.read(str(path), as_version=4)
    start = _time(nb.metadata["papermill"]["start_time"])
    code = [c for c in nb.cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    first = next(c for c, t in zip(code, tags)
                 if "parameters" not in t and "injected-parameters" not in t)
    return (_time(first.metadata["papermill"]["end_time"]) - start).total_seconds()


def profile(run_dir: Path) -> dict:
    record = json.loads((run_dir / "pipeline.json").read_text())
    phases: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    lines = (run_dir / "profile.jsonl").read_text().splitlines()
    for entry in map(json.loads, lines):
        if entry["phase"] not in NESTED:
            phases[entry["notebook"]][entry["phase"]] += entry["seconds"]
    table = {}
    for nb, rec in record["notebooks"].items():
        row = dict(phases[nb])
        row["kernel start and imports"] = startup(run_dir / rec["executed"])
        row["other"] = max(0.0, rec["seconds"] - sum(row.values()))
        table[nb] = {"total": rec["seconds"], **{p: round(row.get(p, 0.0), 1) for p in PHASES}}
    return table


def markdown(table: dict) -> str:
    cols = [p for p in PHASES if any(r[p] for r in table.values())]
    lines = ["| notebook | total | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for nb, r in table.items():
        lines.append(f"| `{nb}` | {r['total']:.1f} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + " |")
    sums = {c: sum(r[c] for r in table.values()) for c in cols}
    total = sum(r["total"] for r in table.values())
    lines.append(f"| **all** | **{total:.1f}** | " + " | ".join(f"{sums[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from _common import describe, machine_info

    info = machine_info(torch.device("cpu"))
    if args.run_dir:
        run_dir, wall, rss = Path(args.run_dir), None, None
    else:
        run_dir, wall, rss = run(args.params, args.overrides)
    table = profile(run_dir)
    print(describe(info))
    print(f"run folder: {run_dir}")
    print(markdown(table))
    if wall is not None:
        print(f"make run wall time (/usr/bin/time): {wall:.1f} s; peak RSS {rss:.0f} MiB")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"machine": info, "run_dir": str(run_dir),
                                              "wall_s": wall, "peak_rss_mib": rss,
                                              "notebooks": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
