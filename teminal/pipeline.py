"""Run the notebooks in order with papermill: ``python -m teminal run params/<name>.yaml``.

One pipeline = one new folder ``runs/<name>-<timestamp>/`` (never reused, so a run cannot
overwrite an earlier run's manifests or checkpoints) and one MLflow parent run with a child run
per notebook. The runner records the final configuration (``config.yaml``, after ``-p``
overrides), creates each notebook's MLflow run (its id reaches the kernel as
``TEMINAL_MLFLOW_RUN_ID``), injects the notebook's cell parameters, starts each kernel under
the deterministic CPU mode when the run asks for it (``deterministic: true``,
``teminal.determinism``), and keeps ``pipeline.json`` up to date: which notebooks ran, their
runs and seconds, and where the pipeline stopped.

- A failing notebook stops the pipeline with the notebook, the cell and the executed copy;
  its runs are FAILED.
- Ctrl-C or SIGTERM marks the open runs KILLED and records where it stopped;
  ``python -m teminal resume runs/<run>`` continues with the first unfinished notebook in the
  same folder (a stage resumes from its last checkpoint; finished notebooks are not touched;
  the interrupted notebook's partial copy is kept under another name).
- ``rerun`` executes one notebook of a run again into a new copy and a new child run.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

from . import determinism, tracking
from .run.config import cell_values
from .run.layout import RunLayout, new_run_dir
from .run.params import PIPELINE, RunConfig
from .run.session import RUN_ID_ENV


class PipelineError(RuntimeError):
    """A notebook failed or the configuration is wrong; the message says where."""


class Interrupted(KeyboardInterrupt):
    """The pipeline was stopped by Ctrl-C or SIGTERM."""


def notebooks_dir() -> Path:
    return tracking.repo_root() / "notebooks"


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def execute_notebook(*, notebook: str, layout: RunLayout, config: RunConfig, output: Path,
                     run_name: str, parent_run_id: str, tags: dict[str, str] | None = None,
                     record: bool = True) -> str:
    """Execute ``notebook`` into ``output`` as an MLflow child run of ``parent_run_id``.

    Returns the child run id. On failure the run is FAILED, the executed copy is logged and
    ``PipelineError`` names the notebook, the cell and the copy. On Ctrl-C / SIGTERM the run is
    KILLED and ``Interrupted`` propagates. ``record``: keep the notebook's entry of
    ``pipeline.json`` (run, status, seconds) up to date (a rerun records itself elsewhere).
    """
    import mlflow
    import papermill as pm

    run_id = tracking.create_run(run_name=run_name, parent_run_id=parent_run_id,
                                 tags={"teminal.notebook": notebook, **(tags or {})})
    entry = {"run_id": run_id, "status": "RUNNING",
             "executed": str(output.relative_to(layout.root))}
    if record:
        _record_notebook(layout, notebook, entry)
    params = dict(cell_values(config, notebook), run_dir=str(layout.root))
    output.parent.mkdir(parents=True, exist_ok=True)
    os.environ[RUN_ID_ENV] = run_id
    status, error, start = "FINISHED", None, time.perf_counter()
    try:
        with determinism.for_children(config.deterministic):  # the kernel starts in the mode
            pm.execute_notebook(str(notebooks_dir() / f"{notebook}.ipynb"), str(output),
                                parameters=params, kernel_name="python3",
                                cwd=str(notebooks_dir()), progress_bar=False)
    except pm.PapermillExecutionError as exc:
        status = "KILLED" if exc.ename == "KeyboardInterrupt" else "FAILED"
        error = PipelineError(
            f"notebook {notebook}.ipynb failed in cell {exc.cell_index} (execution count "
            f"{exc.exec_count}): {exc.ename}: {exc.evalue}\n  executed copy: {output}")
    except KeyboardInterrupt:
        status = "KILLED"
    except Exception as exc:  # kernel died, missing kernel, bad notebook JSON, ...
        status = "FAILED"
        error = PipelineError(f"notebook {notebook}.ipynb could not run: {exc!r}\n"
                              f"  executed copy (if any): {output}")
    finally:
        os.environ.pop(RUN_ID_ENV, None)
        client = mlflow.MlflowClient()
        if output.exists():
            client.log_artifact(run_id, str(output), artifact_path="notebook")
        client.set_terminated(run_id, status=status)
        seconds = round(time.perf_counter() - start, 1)
        if record:
            _record_notebook(layout, notebook, dict(entry, status=status, seconds=seconds))
        if status == "FINISHED":
            client.log_metric(parent_run_id, f"time/{notebook}", seconds)
    if status == "KILLED":
        raise Interrupted(f"{notebook} was interrupted")
    if error is not None:
        raise error
    return run_id


def _record_notebook(layout: RunLayout, notebook: str, entry: dict) -> None:
    record = layout.read_record()
    record.setdefault("notebooks", {})[notebook] = entry
    layout.write_record(record)


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Interrupted("SIGTERM")


def _execute_all(layout: RunLayout, config: RunConfig, notebooks: list[str]) -> None:
    """Run ``notebooks`` in order under the parent run; statuses go to pipeline.json."""
    import mlflow

    record = layout.read_record()
    parent = record["parent_run_id"]
    client = mlflow.MlflowClient()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    status, stopped_at = "FINISHED", None
    try:
        for nb in notebooks:
            stopped_at = nb
            print(f"teminal: ▶ {nb}", flush=True)
            start = time.perf_counter()
            child = execute_notebook(notebook=nb, layout=layout, config=config,
                                     output=layout.notebooks / f"{nb}.ipynb", run_name=nb,
                                     parent_run_id=parent)
            print(f"teminal: ✓ {nb} in {time.perf_counter() - start:.0f} s (run {child})",
                  flush=True)
        stopped_at = None
    except KeyboardInterrupt:
        status = "KILLED"
        raise Interrupted(str(layout.root)) from None
    except BaseException:
        status = "FAILED"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        record = layout.read_record()
        record["status"], record["stopped_at"] = status, stopped_at
        layout.write_record(record)
        client.set_terminated(parent, status=status)


def run_pipeline(config: RunConfig, *, source: Path | None = None, overrides: list[str] = (),
                 tracking_uri: str = "", runs_root: Path | None = None) -> Path:
    """Execute ``config.notebooks`` in order in a new run folder; returns the folder."""
    import mlflow

    tracking.setup(tracking_uri)
    layout = RunLayout(new_run_dir(config.name, runs_root))
    layout.write_config(config)
    parent = tracking.create_run(run_name=layout.root.name,
                                 tags={"teminal.pipeline": config.name,
                                       "teminal.run_dir": str(layout.root)})
    client = mlflow.MlflowClient()
    client.log_artifact(parent, str(layout.config_file), artifact_path="params")
    client.log_param(parent, "overrides", " ".join(overrides)[:6000])
    layout.write_record({
        "name": config.name, "parent_run_id": parent, "tracking_uri": mlflow.get_tracking_uri(),
        "params_file": str(source.resolve()) if source else "", "overrides": list(overrides),
        "planned": list(config.notebooks), "notebooks": {}, "status": "RUNNING"})
    print(f"teminal: pipeline {config.name!r} → {layout.root}  (MLflow parent run {parent})",
          flush=True)
    _execute_all(layout, config, list(config.notebooks))
    return layout.root


def _open(run_dir: str | Path, tracking_uri: str = "") -> tuple[RunLayout, dict, RunConfig]:
    layout = RunLayout(Path(run_dir).expanduser().resolve())
    record = layout.read_record()
    if not record:
        raise PipelineError(f"{layout.root} is not a pipeline run folder (no pipeline.json); "
                            "run `python -m teminal run params/<name>.yaml` first")
    tracking.setup(tracking_uri or record["tracking_uri"])
    return layout, record, layout.read_config()


def resume(run_dir: str | Path, *, tracking_uri: str = "") -> Path:
    """Continue an interrupted or failed pipeline with its first unfinished notebook."""
    import mlflow

    layout, record, config = _open(run_dir, tracking_uri)
    done = {nb for nb, r in record.get("notebooks", {}).items() if r.get("status") == "FINISHED"}
    todo = [nb for nb in record["planned"] if nb not in done]
    if not todo:
        raise PipelineError(f"{layout.root}: every notebook already finished; nothing to resume")
    first = todo[0]
    partial = layout.notebooks / f"{first}.ipynb"
    if partial.exists():  # the interrupted copy is kept, under a name of its own
        old = record["notebooks"].get(first, {}).get("status", "partial").lower()
        partial.rename(partial.with_name(f"{first}.{old}-{_stamp()}.ipynb"))
    mlflow.MlflowClient().update_run(record["parent_run_id"], status="RUNNING")
    record.setdefault("resumes", []).append({"at": _stamp(), "from": first})
    record["status"] = "RUNNING"
    layout.write_record(record)
    print(f"teminal: resuming {layout.root.name} at {first} ({len(todo)} notebooks left)",
          flush=True)
    _execute_all(layout, config, todo)
    return layout.root


def rerun_notebook(run_dir: str | Path, notebook: str, *, tracking_uri: str = "") -> str:
    """Execute one notebook of a run again, into the same folder, as a new copy
    (``notebooks/<nb>.rerun-<timestamp>.ipynb``) and a new child run; nothing earlier is
    overwritten. The notebook reuses what it can (finished stages, evaluations)."""
    layout, record, config = _open(run_dir, tracking_uri)
    if notebook not in record["planned"]:
        raise PipelineError(f"{notebook!r} is not a notebook of this pipeline: {record['planned']}")
    output = layout.notebooks / f"{notebook}.rerun-{_stamp()}.ipynb"
    k = 2
    while output.exists():
        output, k = layout.notebooks / f"{notebook}.rerun-{_stamp()}-{k}.ipynb", k + 1
    print(f"teminal: ▶ {notebook} again in {layout.root}", flush=True)
    start = time.perf_counter()
    child = execute_notebook(notebook=notebook, layout=layout, config=config, output=output,
                             run_name=f"{notebook} (rerun)", parent_run_id=record["parent_run_id"],
                             tags={"teminal.rerun": "true"}, record=False)
    record = layout.read_record()
    record.setdefault("reruns", []).append({"notebook": notebook, "run_id": child,
                                            "seconds": round(time.perf_counter() - start, 1),
                                            "executed": output.name})
    layout.write_record(record)
    print(f"teminal: ✓ {notebook} → {output}", flush=True)
    return child


def planned(config: RunConfig, *, notebooks: str = "", start: str = "", until: str = "") -> list[str]:
    """The notebooks to run: ``--notebooks a,b`` or the range ``--from`` … ``--until``."""
    chosen = list(config.notebooks)
    if notebooks:
        chosen = [n.strip() for n in notebooks.split(",") if n.strip()]
    for flag, name in (("--from", start), ("--until", until)):
        if name and name not in PIPELINE:
            raise PipelineError(f"{flag} {name}: unknown notebook; choose from {list(PIPELINE)}")
    if start:
        chosen = [n for n in chosen if PIPELINE.index(n) >= PIPELINE.index(start)]
    if until:
        chosen = [n for n in chosen if PIPELINE.index(n) <= PIPELINE.index(until)]
    if not chosen:
        raise PipelineError("no notebook left to run (check --notebooks / --from / --until)")
    return chosen
