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

One truth for run state: every exit path (a failed cell, Ctrl-C/SIGTERM, a dead kernel, a full
disk) ends the notebook's MLflow run, every run nested under it and the parent, and records the
same status in ``pipeline.json``; what a killed runner could not record, the next ``resume``
does (``reconcile``). Arguments are validated before any folder or run is made. ``resume`` and
``rerun`` refuse a base set whose content changed since the run recorded it, and a folder that
another runner is executing (a lock, ``.pipeline.lock``).
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

from . import determinism, hints, progress, tracking
from .run.config import apply_overrides, cell_values, to_yaml, validate
from .run.layout import RunLayout, new_run_dir
from .run.params import PIPELINE, RunConfig
from .run.session import RUN_ID_ENV
from .runstate import (PipelineError, close_notebook, close_parent, hint, locked, mlflow_client,
                       reconcile, record_notebook, try_step)


KERNEL_ARGS = ("--IPKernelApp.log_level=ERROR",)
"""The notebooks' kernels log errors only: its "running over TCP without encryption" warning
(a local kernel on 127.0.0.1) would otherwise be printed by every notebook of every run."""


class Interrupted(KeyboardInterrupt):
    """The pipeline was stopped by Ctrl-C or SIGTERM."""


def notebooks_dir() -> Path:
    return tracking.repo_root() / "notebooks"


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def execute_notebook(*, notebook: str, layout: RunLayout, config: RunConfig, output: Path,
                     run_name: str, parent_run_id: str, tags: dict[str, str] | None = None,
                     record: bool = True, extra: dict[str, str] | None = None) -> str:
    """Execute ``notebook`` into ``output`` as an MLflow child run of ``parent_run_id``.

    Returns the child run id. On failure the run (and every run nested under it) is FAILED,
    the executed copy is logged and ``PipelineError`` names the notebook, the cell and the copy
    (a dead kernel: a hint about memory). On Ctrl-C / SIGTERM the runs are KILLED and
    ``Interrupted`` propagates. ``record``: keep the notebook's entry of ``pipeline.json`` (run,
    status, seconds) up to date (a rerun records itself elsewhere). ``extra``: more notebook
    parameters (a rerun's ``config``). The kernel prints progress as final lines
    (``teminal.progress``); the copy is logged without jupytext pairing and with its HTML
    rendering (``teminal.executed``). The notebook's ``TeminalWarning``s are printed after it
    (read back from its MLflow run).
    """
    import papermill as pm

    run_id = tracking.create_run(run_name=run_name, parent_run_id=parent_run_id,
                                 tags={"teminal.notebook": notebook, **(tags or {})})
    entry = {"run_id": run_id, "status": "RUNNING",
             "executed": str(output.relative_to(layout.root))}
    params = dict(cell_values(config, notebook), run_dir=str(layout.root), **(extra or {}))
    saved = {k: os.environ.get(k) for k in (RUN_ID_ENV, progress.ENV)}
    status, error, start = "FINISHED", None, time.perf_counter()
    try:
        if record:
            record_notebook(layout, notebook, entry)
        output.parent.mkdir(parents=True, exist_ok=True)
        os.environ[RUN_ID_ENV] = run_id
        if progress.mode() != "off":  # a saved copy shows each bar's final state
            os.environ[progress.ENV] = "text"
        with determinism.for_children(config.deterministic):  # the kernel starts in the mode
            pm.execute_notebook(str(notebooks_dir() / f"{notebook}.ipynb"), str(output),
                                parameters=params, kernel_name="python3",
                                cwd=str(notebooks_dir()), progress_bar=False,
                                extra_arguments=list(KERNEL_ARGS))
    except pm.PapermillExecutionError as exc:
        status = "KILLED" if exc.ename == "KeyboardInterrupt" else "FAILED"
        error = PipelineError(
            f"notebook {notebook}.ipynb failed in cell {exc.cell_index} (execution count "
            f"{exc.exec_count}): {exc.ename}: {exc.evalue}\n  executed copy: {output}")
    except KeyboardInterrupt:
        status = "KILLED"
    except Exception as exc:  # kernel died, missing kernel, bad notebook JSON, full disk, ...
        status, error = "FAILED", PipelineError(
            f"notebook {notebook}.ipynb could not run: {exc!r}{hint(exc)}\n"
            f"  executed copy (if any): {output}")
    finally:
        _restore_env(saved)
        seconds = round(time.perf_counter() - start, 1)
        problems = close_notebook(layout, notebook, run_id, status, output,
                                  dict(entry, status=status, seconds=seconds) if record else None)
        if status == "FINISHED" and not problems:
            try_step(lambda: mlflow_client().log_metric(parent_run_id, f"time/{notebook}", seconds))
    if status == "KILLED":
        raise Interrupted(f"{notebook} was interrupted")
    if error is not None:
        raise error
    if problems:
        raise PipelineError(f"{notebook} finished but its state could not be recorded "
                            f"({'; '.join(problems)}); `resume` records it")
    return run_id


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Interrupted("SIGTERM")


def _execute_all(layout: RunLayout, config: RunConfig, notebooks: list[str]) -> None:
    """Run ``notebooks`` in order under the parent run; statuses go to pipeline.json."""
    parent = layout.read_record()["parent_run_id"]
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
        close_parent(layout, parent, status, stopped_at)


def run_pipeline(config: RunConfig, *, source: Path | None = None, overrides: list[str] = (),
                 tracking_uri: str = "", runs_root: Path | None = None) -> Path:
    """Execute ``config.notebooks`` in order in a new run folder; returns the folder. The
    configuration is validated again first (``ConfigError``): nothing is made for a bad one."""
    import mlflow

    config = validate(config.model_dump(mode="json"), source="the run's parameters")
    tracking.setup(tracking_uri)
    layout = RunLayout(new_run_dir(config.name, runs_root))
    with locked(layout):
        layout.write_config(config)
        parent = tracking.create_run(run_name=layout.root.name,
                                     tags={"teminal.pipeline": config.name,
                                           "teminal.run_dir": str(layout.root)})
        layout.write_record({
            "name": config.name, "parent_run_id": parent,
            "tracking_uri": mlflow.get_tracking_uri(),
            "params_file": str(source.resolve()) if source else "", "overrides": list(overrides),
            "planned": list(config.notebooks), "notebooks": {}, "status": "RUNNING"})
        client = mlflow.MlflowClient()
        client.log_artifact(parent, str(layout.config_file), artifact_path="params")
        client.log_param(parent, "overrides", " ".join(overrides)[:6000])
        print(f"teminal: pipeline {config.name!r} → {layout.root}  (MLflow parent run {parent})",
              flush=True)
        _execute_all(layout, config, list(config.notebooks))
    return layout.root


def _open(run_dir: str | Path, tracking_uri: str = "") -> tuple[RunLayout, dict, RunConfig]:
    """A run folder's layout, record and configuration, after checking that its base set is
    the one it recorded (``DatasetError`` naming the changed files)."""
    from .run.steps.data import check_same_base, load_base

    layout = RunLayout(Path(run_dir).expanduser().resolve())
    record = layout.read_record()
    if not record:
        raise PipelineError(f"{layout.root} is not a pipeline run folder (no pipeline.json); "
                            f"run `{hints.teminal()} run params/<name>.yaml` first")
    tracking.setup(tracking_uri or record["tracking_uri"])
    config = layout.read_config()
    if layout.data_file.exists():
        check_same_base(layout, load_base(config.data))
    return layout, record, config


def resume(run_dir: str | Path, *, tracking_uri: str = "") -> Path:
    """Continue an interrupted or failed pipeline with its first unfinished notebook (after
    ``reconcile``: what a killed runner left RUNNING is marked KILLED first)."""
    layout, record, config = _open(run_dir, tracking_uri)
    with locked(layout):
        record = reconcile(layout, record)
        done = {nb for nb, r in record.get("notebooks", {}).items()
                if r.get("status") == "FINISHED"}
        todo = [nb for nb in record["planned"] if nb not in done]
        if not todo:
            if record.get("status") != "FINISHED":
                close_parent(layout, record["parent_run_id"], "FINISHED", None)
            raise PipelineError(f"{layout.root}: every notebook already finished; nothing to "
                                "resume")
        first = todo[0]
        partial = layout.notebooks / f"{first}.ipynb"
        if partial.exists():  # the interrupted copy is kept, under a name of its own
            old = record["notebooks"].get(first, {}).get("status", "partial").lower()
            partial.rename(partial.with_name(f"{first}.{old}-{_stamp()}.ipynb"))
        mlflow_client().update_run(record["parent_run_id"], status="RUNNING")
        record.setdefault("resumes", []).append({"at": _stamp(), "from": first})
        record["status"] = "RUNNING"
        layout.write_record(record)
        print(f"teminal: resuming {layout.root.name} at {first} ({len(todo)} notebooks left)",
              flush=True)
        _execute_all(layout, config, todo)
    return layout.root


def rerun_notebook(run_dir: str | Path, notebook: str, *, overrides: list[str] = (),
                   tracking_uri: str = "") -> str:
    """Execute one notebook of a run again, into the same folder, as a new copy
    (``notebooks/<nb>.rerun-<timestamp>.ipynb``) and a new child run; nothing earlier is
    overwritten. The notebook reuses what it can (finished stages, evaluations).
    ``overrides``: ``-p name=value`` on the run's configuration, validated as ``run`` does;
    the result is written to ``reruns/<nb>-<timestamp>.yaml`` and given to the notebook as its
    ``config`` (a changed stage trains into a checkpoint folder of its own)."""
    if notebook not in PIPELINE:
        raise PipelineError(f"unknown notebook {notebook!r}; choose from {list(PIPELINE)}")
    layout, record, config = _open(run_dir, tracking_uri)
    if notebook not in record["planned"]:
        raise PipelineError(f"{notebook!r} is not a notebook of this pipeline: {record['planned']}")
    config, notes = apply_overrides(config, overrides)
    for note in notes:
        print(f"teminal: {note}", flush=True)
    with locked(layout):
        stamp = _stamp()
        output = layout.notebooks / f"{notebook}.rerun-{stamp}.ipynb"
        k = 2
        while output.exists():
            output, k = layout.notebooks / f"{notebook}.rerun-{stamp}-{k}.ipynb", k + 1
        extra = {}
        if overrides:
            path = layout.root / "reruns" / f"{output.stem.replace('.rerun', '')}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(to_yaml(config))
            extra = {"config": str(path)}
        print(f"teminal: ▶ {notebook} again in {layout.root}", flush=True)
        start = time.perf_counter()
        child = execute_notebook(notebook=notebook, layout=layout, config=config, output=output,
                                 run_name=f"{notebook} (rerun)",
                                 parent_run_id=record["parent_run_id"],
                                 tags={"teminal.rerun": "true"}, record=False, extra=extra)
        if overrides:
            mlflow_client().log_param(child, "overrides", " ".join(overrides)[:6000])
        record = layout.read_record()
        record.setdefault("reruns", []).append({"notebook": notebook, "run_id": child,
                                                "seconds": round(time.perf_counter() - start, 1),
                                                "executed": output.name,
                                                "overrides": list(overrides)})
        layout.write_record(record)
    print(f"teminal: ✓ {notebook} → {output}", flush=True)
    return child


def planned(config: RunConfig, *, notebooks: str = "", start: str = "", until: str = "") -> list[str]:
    """The notebooks to run: ``--notebooks a,b`` or the range ``--from`` … ``--until``.

    Raises ``PipelineError`` for an unknown, repeated or out-of-order name (before any folder
    or MLflow run is made)."""
    chosen = list(config.notebooks)
    if notebooks:
        chosen = [n.strip() for n in notebooks.split(",") if n.strip()]
        _check_names(chosen)
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


def _check_names(chosen: list[str]) -> None:
    """``--notebooks``: known names, each once, in pipeline order."""
    import difflib

    for name in chosen:
        if name not in PIPELINE:
            close = difflib.get_close_matches(name, PIPELINE, n=1, cutoff=0.5)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise PipelineError(f"--notebooks {name}: unknown notebook{hint}; choose from "
                                f"{list(PIPELINE)}")
    twice = sorted({n for n in chosen if chosen.count(n) > 1})
    if twice:
        raise PipelineError(f"--notebooks: {twice} listed more than once")
    ordered = sorted(chosen, key=PIPELINE.index)
    if ordered != chosen:
        raise PipelineError(f"--notebooks must keep the pipeline order: {','.join(ordered)}")


EVALUATE_NOTEBOOK = "05_evaluate_model"


def evaluate(*, models: list[str], run_dir: str | Path = "", config: RunConfig | None = None,
             overrides: list[str] = (), source: Path | None = None,
             tracking_uri: str = "") -> Path:
    """``python -m teminal evaluate``: notebook 05 with ``models`` (README "Evaluate any
    audio–language model"). In ``run_dir``: on that run's items, as a new copy and child run
    (its rows are reused); only the notebook's cell fields may change there. Without: a new run
    folder running 05 alone on ``config`` (a fresh data set; run rows are trained in it)."""
    from .run.config import ConfigError, with_cell
    from .run.params import NOTEBOOKS

    def with_models(cfg: RunConfig) -> RunConfig:
        return with_cell(cfg, EVALUATE_NOTEBOOK, {"models": list(models)}) if models else cfg

    if not run_dir:
        cfg = with_models(config or RunConfig())
        return run_pipeline(cfg.model_copy(update={"notebooks": [EVALUATE_NOTEBOOK]}),
                            source=source, overrides=list(overrides), tracking_uri=tracking_uri)
    layout, record, base = _open(run_dir, tracking_uri)
    cfg = with_models(config or base)
    cell = NOTEBOOKS[EVALUATE_NOTEBOOK].names
    changed = {k for k, v in cfg.model_dump().items() if k != "evaluate" and v != base.model_dump()[k]}
    changed |= {f"evaluate.{k}" for k, v in cfg.evaluate.model_dump().items()
                if k not in cell and v != getattr(base.evaluate, k)}
    if changed:
        raise ConfigError(f"{layout.root.name}: in an existing run only the 05 cell's fields "
                          f"{list(cell)} can change, not {sorted(changed)} (name them "
                          f"-p evaluate.<field>)")
    output = layout.notebooks / f"{EVALUATE_NOTEBOOK}.evaluate-{_stamp()}.ipynb"
    print(f"teminal: ▶ {EVALUATE_NOTEBOOK} in {layout.root} with {len(cfg.evaluate.models)} "
          f"models", flush=True)
    execute_notebook(notebook=EVALUATE_NOTEBOOK, layout=layout, config=cfg, output=output,
                     run_name=f"{EVALUATE_NOTEBOOK} (evaluate)",
                     parent_run_id=record["parent_run_id"], tags={"teminal.rerun": "true"},
                     record=False)
    return layout.root
