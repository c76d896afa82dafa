"""Run the notebooks in order with papermill: ``python -m teminal run params/<name>.yaml``.

One pipeline = one new folder ``runs/<name>-<timestamp>/`` (never reused, so a rerun cannot
overwrite an earlier run's manifests or checkpoints) and one MLflow parent run with a child run
per notebook. The runner creates each child run and passes ``parent_run_id`` and
``mlflow_run_id`` to the notebook; the executed copy is logged to the child run as an artifact.
A failing notebook stops the pipeline with a message naming the notebook, the failing cell
and the executed copy.

YAML layout::

    name: default
    notebooks: [00_data_synthesis, ...]   # optional: a subset, in pipeline order
    params: {seed: 0, ...}                # injected into every notebook that declares them
    notebook_params:                      # optional per-notebook overrides
      04_ablations: {grid: "..."}
"""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import tracking

NOTEBOOKS = (
    "00_data_synthesis",
    "00_pretrained_baseline",
    "01_stage_a",
    "02_stage_b",
    "03_zste",
    "04_ablations",
)
"""Pipeline order. Every notebook here exists in ``notebooks/``."""

RUNNER_PARAMS = ("run_dir", "parent_run_id", "mlflow_run_id", "tracking_uri")
"""Parameters the runner sets itself; a YAML file may not set them."""


class PipelineError(RuntimeError):
    """A notebook failed or the configuration is wrong; the message says where."""


@dataclass(kw_only=True)
class PipelineConfig:
    name: str
    notebooks: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    notebook_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None


def notebooks_dir() -> Path:
    return tracking.repo_root() / "notebooks"


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell."""
    import papermill as pm

    return {k: v["default"] for k, v in pm.inspect_notebook(str(notebook)).items()}


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML; unknown keys or notebooks are errors naming them."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"no such parameter file: {path} (see params/*.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}") from exc
    unknown = set(raw) - {"name", "notebooks", "params", "notebook_params"}
    if unknown:
        raise PipelineError(f"{path}: unknown top-level keys {sorted(unknown)}")
    config = PipelineConfig(
        name=str(raw.get("name") or path.stem),
        notebooks=list(raw.get("notebooks") or NOTEBOOKS),
        params=dict(raw.get("params") or {}),
        notebook_params={k: dict(v or {}) for k, v in (raw.get("notebook_params") or {}).items()},
        source=path,
    )
    validate_config(config)
    return config


def validate_config(config: PipelineConfig) -> None:
    """Every notebook exists and every parameter is declared by some notebook it targets."""
    where = config.source or config.name
    for nb in list(config.notebooks) + list(config.notebook_params):
        if nb not in NOTEBOOKS:
            raise PipelineError(f"{where}: unknown notebook {nb!r}; choose from {list(NOTEBOOKS)}")
    order = [nb for nb in NOTEBOOKS if nb in config.notebooks]
    if order != config.notebooks:
        raise PipelineError(f"{where}: notebooks must keep the pipeline order {order}")
    declared = {nb: declared_parameters(notebooks_dir() / f"{nb}.ipynb") for nb in config.notebooks}
    everything = set().union(*declared.values()) if declared else set()
    for key in config.params:
        if key in RUNNER_PARAMS:
            raise PipelineError(f"{where}: parameter {key!r} is set by the runner, remove it")
        if key not in everything:
            raise PipelineError(
                f"{where}: parameter {key!r} is not declared by any notebook in the pipeline "
                "(typo? see each notebook's parameters cell)"
            )
    for nb, overrides in config.notebook_params.items():
        for key in overrides:
            if key not in declared.get(nb, {}):
                raise PipelineError(f"{where}: notebook {nb} has no parameter {key!r}")


def parameters_for(config: PipelineConfig, notebook: str) -> dict[str, Any]:
    """The YAML values the notebook declares: shared ``params`` then its overrides."""
    declared = declared_parameters(notebooks_dir() / f"{notebook}.ipynb")
    merged = {k: v for k, v in config.params.items() if k in declared}
    merged.update(config.notebook_params.get(notebook, {}))
    return merged


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """A fresh ``runs/<name>-<timestamp>`` folder; never an existing one."""
    base = root or tracking.workdir() / "runs"
    base.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        candidate = base / (f"{name}-{stamp}" if k == 1 else f"{name}-{stamp}-{k}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise PipelineError(f"could not make a new run folder under {base}")


def execute_notebook(*, notebook: Path, output: Path, parameters: dict[str, Any],
                     run_name: str, parent_run_id: str, tags: dict[str, str] | None = None,
                     tracking_uri: str = "") -> str:
    """Execute ``notebook`` into ``output`` as an MLflow child run of ``parent_run_id``.

    Returns the child run id. On failure the child run is FAILED, the executed copy is
    still logged, and ``PipelineError`` names the notebook, the cell and the copy.
    """
    import mlflow
    import papermill as pm

    tracking.setup(tracking_uri)
    run_id = tracking.create_run(
        run_name=run_name, parent_run_id=parent_run_id,
        tags={"teminal.notebook": notebook.stem, **(tags or {})},
    )
    params = dict(parameters, parent_run_id=parent_run_id, mlflow_run_id=run_id,
                  tracking_uri=mlflow.get_tracking_uri())
    output.parent.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=params, kernel_name="python3",
                            cwd=str(notebook.parent), progress_bar=False)
    except pm.PapermillExecutionError as exc:
        error = PipelineError(
            f"notebook {notebook.name} failed in cell {exc.cell_index} "
            f"(execution count {exc.exec_count}): {exc.ename}: {exc.evalue}\n"
            f"  executed copy: {output}"
        )
    except Exception as exc:  # kernel died, missing kernel, bad notebook JSON, ...
        error = PipelineError(f"notebook {notebook.name} could not run: {exc!r}\n"
                              f"  executed copy (if any): {output}")
    client = mlflow.MlflowClient()
    if output.exists():
        client.log_artifact(run_id, str(output), artifact_path="notebook")
    client.set_terminated(run_id, status="FAILED" if error else "FINISHED")
    if error:
        raise error
    return run_id


def run_pipeline(config: PipelineConfig, *, tracking_uri: str = "",
                 runs_root: Path | None = None) -> Path:
    """Execute the configured notebooks in order; returns the run folder."""
    import mlflow

    tracking.setup(tracking_uri)
    run_dir = new_run_dir(config.name, runs_root)
    parent = tracking.create_run(run_name=run_dir.name, tags={"teminal.pipeline": config.name})
    client = mlflow.MlflowClient()
    for key, value in config.params.items():
        client.log_param(parent, key, str(value))
    if config.source:
        client.log_artifact(parent, str(config.source), artifact_path="params")
    record = {"name": config.name, "parent_run_id": parent, "tracking_uri": mlflow.get_tracking_uri(),
              "params_file": str(config.source.resolve()) if config.source else "",
              "notebooks": {}, "status": "RUNNING"}
    _write_record(run_dir, record)
    print(f"teminal: pipeline {config.name!r} → {run_dir}  (MLflow parent run {parent})", flush=True)
    status = "FINISHED"
    try:
        for nb in config.notebooks:
            start = time.perf_counter()
            print(f"teminal: ▶ {nb}", flush=True)
            params = dict(parameters_for(config, nb), run_dir=str(run_dir))
            child = execute_notebook(
                notebook=notebooks_dir() / f"{nb}.ipynb",
                output=run_dir / "notebooks" / f"{nb}.ipynb",
                parameters=params, run_name=nb, parent_run_id=parent,
                tracking_uri=mlflow.get_tracking_uri(),
            )
            seconds = time.perf_counter() - start
            client.log_metric(parent, f"time/{nb}", seconds)
            record["notebooks"][nb] = {"run_id": child, "seconds": round(seconds, 1)}
            _write_record(run_dir, record)
            print(f"teminal: ✓ {nb} in {seconds:.0f} s (run {child})", flush=True)
    except BaseException:
        status = "FAILED"
        raise
    finally:
        record["status"] = status
        _write_record(run_dir, record)
        client.set_terminated(parent, status=status)
    return run_dir


def rerun_notebook(run_dir: str | Path, notebook: str, *, config: PipelineConfig | None = None,
                   tracking_uri: str = "") -> str:
    """Execute one notebook of a finished pipeline again, into the same run folder.

    The executed copy is a new file (``notebooks/<nb>.rerun-<timestamp>.ipynb``) and the MLflow
    run a new child of the pipeline's parent run; nothing earlier is overwritten. The notebook
    itself decides what it can reuse (``04_ablations`` reuses its finished child runs,
    ``train.fit`` a finished checkpoint). ``config`` defaults to the YAML file the pipeline ran
    with. Returns the new MLflow run id.
    """
    import mlflow

    run_dir = Path(run_dir).resolve()
    record_file = run_dir / "pipeline.json"
    if not record_file.is_file():
        raise PipelineError(f"{run_dir} is not a pipeline run folder (no pipeline.json); "
                            "run `python -m teminal run params/<name>.yaml` first")
    record = json.loads(record_file.read_text())
    if config is None:
        if not record.get("params_file"):
            raise PipelineError(f"{record_file} does not name its parameter file; pass --params")
        config = load_config(record["params_file"])
    if notebook not in config.notebooks:
        raise PipelineError(f"{notebook!r} is not a notebook of this pipeline: {config.notebooks}")
    tracking.setup(tracking_uri or record["tracking_uri"])
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    output = run_dir / "notebooks" / f"{notebook}.rerun-{stamp}.ipynb"
    k = 2
    while output.exists():
        output, k = run_dir / "notebooks" / f"{notebook}.rerun-{stamp}-{k}.ipynb", k + 1
    print(f"teminal: ▶ {notebook} again in {run_dir}", flush=True)
    start = time.perf_counter()
    child = execute_notebook(
        notebook=notebooks_dir() / f"{notebook}.ipynb", output=output,
        parameters=dict(parameters_for(config, notebook), run_dir=str(run_dir)),
        run_name=f"{notebook} (rerun)", parent_run_id=record["parent_run_id"],
        tracking_uri=mlflow.get_tracking_uri(), tags={"teminal.rerun": "true"},
    )
    seconds = time.perf_counter() - start
    record.setdefault("reruns", []).append({"notebook": notebook, "run_id": child,
                                            "seconds": round(seconds, 1), "executed": output.name})
    _write_record(run_dir, record)
    print(f"teminal: ✓ {notebook} in {seconds:.0f} s (run {child}) → {output}", flush=True)
    return child


def _write_record(run_dir: Path, record: dict) -> None:
    tmp = run_dir / "pipeline.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(run_dir / "pipeline.json")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m teminal", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the notebook pipeline on a params/*.yaml file")
    run_p.add_argument("params", help="e.g. params/default.yaml")
    run_p.add_argument("--tracking-uri", default="", help="MLflow store (default: mlruns/mlflow.db)")
    re_p = sub.add_parser("rerun", help="execute one notebook of a finished run again, in its folder "
                                        "(e.g. 04_ablations, which reuses its finished rows)")
    re_p.add_argument("run_dir", help="e.g. runs/default-20261122-101500")
    re_p.add_argument("notebook", help="e.g. 04_ablations")
    re_p.add_argument("--params", default="", help="parameter file (default: the one the run used)")
    re_p.add_argument("--tracking-uri", default="", help="MLflow store (default: the run's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "rerun":
            config = load_config(args.params) if args.params else None
            rerun_notebook(args.run_dir, args.notebook, config=config, tracking_uri=args.tracking_uri)
            return 0
        config = load_config(args.params)
        run_dir = run_pipeline(config, tracking_uri=args.tracking_uri)
    except PipelineError as exc:
        print(f"teminal: error: {exc}", file=sys.stderr)
        return 1
    print(f"teminal: done → {run_dir}\n  open MLflow: mlflow ui --backend-store-uri "
          f"{tracking.default_tracking_uri() if not args.tracking_uri else args.tracking_uri}")
    return 0
