"""Pipeline benchmark: wall time of each notebook of ``make run``.

Runs ``python -m teminal run <params>`` (default ``params/default.yaml``, the embedded default)
in a child process, or reads the ``pipeline.json`` of an existing run folder (``--run-dir``),
where the runner records each notebook's seconds, and prints notebook → seconds, the total and
the machine. ``TEMINAL_WORKDIR`` / ``TEMINAL_TRACKING_URI`` are passed through, so a trial run
can stay out of the repository's ``runs/`` and ``mlruns/``:

    TEMINAL_WORKDIR=/tmp/bench_ci TEMINAL_TRACKING_URI=sqlite:////tmp/bench_ci/mlruns/mlflow.db \\
        .venv/bin/python benchmarks/pipeline.py --params params/ci.yaml --out /tmp/bench_ci/pipeline.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import busy_seconds, describe, machine_info, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DONE = re.compile(r"^teminal: done → (.+)$")
STARTED = re.compile(r"^teminal: pipeline .* → (.+?)  \(MLflow")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params/default.yaml",
                   help="pipeline YAML to run (relative to the repository root or absolute)")
    p.add_argument("--run-dir", default="",
                   help="read this run folder's pipeline.json instead of running the pipeline")
    p.add_argument("--out", default="", help="write the figures to this JSON file")
    return p.parse_args(argv)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_pipeline(params: str) -> tuple[Path, float, float | None]:
    """Run the pipeline in a child process, echoing its output; its run folder, wall time and
    the CPU-seconds other processes of the machine used meanwhile (None if unknown)."""
    path = Path(params)
    path = path if path.is_absolute() else REPO / path
    if not path.is_file():
        raise SystemExit(f"--params {params}: no such file (see {REPO / 'params'})")
    cmd = [sys.executable, "-m", "teminal", "run", str(path)]
    print("running:", " ".join(cmd), flush=True)
    run_dir = None
    busy0, cpu0, start = busy_seconds(), _children_cpu(), time.perf_counter()
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, env=dict(os.environ, PYTHONUNBUFFERED="1")) as proc:
        for line in proc.stdout:
            if "[IPKernelApp] WARNING" not in line:  # one per notebook kernel, says nothing here
                print("  | " + line, end="", flush=True)
            found = DONE.match(line.rstrip("\n")) or STARTED.match(line.rstrip("\n"))
            if found:
                run_dir = Path(found.group(1).strip())
        code = proc.wait()
    wall = time.perf_counter() - start
    busy1 = busy_seconds()
    other = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - (_children_cpu() - cpu0))
    if code != 0:
        where = f"; its record is in {run_dir / 'pipeline.json'}" if run_dir else ""
        raise SystemExit(f"the pipeline failed (exit code {code}) after {wall:.0f} s{where}")
    if run_dir is None:
        raise SystemExit("the pipeline finished but printed no run folder (teminal: done → …)")
    return run_dir, wall, other


def read_record(run_dir: Path) -> dict:
    record_file = run_dir / "pipeline.json"
    if not record_file.is_file():
        raise SystemExit(f"{record_file} not found: not a pipeline run folder")
    record = json.loads(record_file.read_text())
    if not record.get("notebooks"):
        raise SystemExit(f"{record_file} records no finished notebook (status {record.get('status')})")
    return record


def table(record: dict) -> tuple[list[dict], float]:
    rows = [{"notebook": nb, "seconds": float(v["seconds"])} for nb, v in record["notebooks"].items()]
    total = sum(r["seconds"] for r in rows)
    for r in rows:
        r["share"] = r["seconds"] / total if total else 0.0
    return rows, total


def main(argv=None) -> dict:
    args = parse_args(argv)
    info = machine_info(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    wall = other = None
    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        run_dir, wall, other = run_pipeline(args.params)
    record = read_record(run_dir)
    rows, total = table(record)
    print(describe(info))
    print(f"pipeline {record.get('name')!r} ({record.get('status')}), run folder {run_dir}")
    width = max(len(r["notebook"]) for r in rows)
    print(f"{'notebook':<{width}}  {'seconds':>9}  {'share':>6}")
    for r in rows:
        print(f"{r['notebook']:<{width}}  {r['seconds']:>9.1f}  {100 * r['share']:>5.1f}%")
    print(f"{'total (notebooks)':<{width}}  {total:>9.1f}")
    if wall is not None:
        print(f"{'wall (incl. start-up)':<{width}}  {wall:>9.1f}")
    if other is not None and other > 0.1 * (wall or 0) + 1:
        print(f"warning: other processes used {other:.0f} CPU-s during the run: the times are inflated")
    figures = {"machine": info, "params": None if args.run_dir else args.params, "run_dir": str(run_dir),
               "pipeline": record.get("name"), "status": record.get("status"), "notebooks": rows,
               "total_seconds": total, "wall_seconds": wall, "other_cpu_seconds": other,
               "env": {k: os.environ.get(k, "") for k in ("TEMINAL_WORKDIR", "TEMINAL_TRACKING_URI")}}
    write_json(args.out, figures)
    return figures


if __name__ == "__main__":
    main()
