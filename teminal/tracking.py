"""Small MLflow helpers, one job each.

The store is a SQLite database at ``<repo>/mlruns/mlflow.db`` with artifacts under
``<repo>/mlruns/artifacts`` (MLflow 3 refuses a bare ``./mlruns`` file store). The URI is
absolute, resolved from the repository root, so the pipeline, papermill kernels and nbval
all write to the same store. ``TEMINAL_TRACKING_URI`` (or an explicit ``tracking_uri``)
points elsewhere — the tests use it to keep the user's store untouched.

The store's first-time set-up (SQLite schema, the experiment) runs under a file lock
(``<db>.lock``), so two runs started together on a new store do not both create it.
``terminate`` ends a run and every run nested under it that is still open (a kernel killed
mid-notebook leaves its nested runs RUNNING).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import mlflow
from mlflow.tracking import MlflowClient

from .integrity import file_lock

EXPERIMENT = "teminal"
OPEN = ("RUNNING", "SCHEDULED")  # MLflow statuses of a run nobody has ended


def repo_root() -> Path:
    """The repository root: the folder above the ``teminal`` package."""
    return Path(__file__).resolve().parents[1]


def workdir() -> Path:
    """Where runs/, data/ and cache/ live: ``TEMINAL_WORKDIR`` or the repository root."""
    return Path(os.environ.get("TEMINAL_WORKDIR") or repo_root())


def default_tracking_uri() -> str:
    """``TEMINAL_TRACKING_URI`` if set, else ``sqlite:///<repo>/mlruns/mlflow.db``."""
    env = os.environ.get("TEMINAL_TRACKING_URI", "")
    if env:
        return env
    return f"sqlite:///{repo_root() / 'mlruns' / 'mlflow.db'}"


def artifact_root(tracking_uri: str) -> str:
    """Artifacts live beside the SQLite file: ``<dir of mlflow.db>/artifacts``."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
    return (repo_root() / "mlruns" / "artifacts").as_uri()


def setup(tracking_uri: str = "", experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and make sure ``experiment`` exists; returns its id."""
    for name in ("mlflow", "alembic"):  # their INFO lines (database set-up) are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = tracking_uri or default_tracking_uri()
    guard = nullcontext()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        db.parent.mkdir(parents=True, exist_ok=True)
        guard = file_lock(db.with_name(db.name + ".lock"))
    with guard:
        mlflow.set_tracking_uri(uri)
        client = MlflowClient()  # creates / migrates the SQLite schema on first use
        found = client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=f"{artifact_root(uri)}/{experiment}"
        )
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def descendants(client: MlflowClient, run_id: str) -> list:
    """Every run nested (at any depth) under ``run_id``."""
    exp = client.get_run(run_id).info.experiment_id
    out, todo = [], [run_id]
    while todo:
        parent = todo.pop()
        children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'",
                                      max_results=5000)
        out += children
        todo += [c.info.run_id for c in children]
    return out


def terminate(client: MlflowClient, run_id: str, status: str, *, nested: bool = True) -> None:
    """End ``run_id`` with ``status`` and, with ``nested``, every open run under it (a run
    already ended keeps its status)."""
    if nested:
        for run in descendants(client, run_id):
            if run.info.status in OPEN:
                client.set_terminated(run.info.run_id, status=status)
    client.set_terminated(run_id, status=status)


def create_run(*, run_name: str, parent_run_id: str = "", tags: dict[str, str] | None = None,
               experiment: str = EXPERIMENT) -> str:
    """Create a run (a child of ``parent_run_id`` when given) and return its id without
    making it active: the pipeline creates the run, the notebook fills it."""
    exp_id = setup(mlflow.get_tracking_uri(), experiment)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = MlflowClient().create_run(exp_id, run_name=run_name, tags=all_tags)
    return run.info.run_id


@contextmanager
def run(*, run_id: str = "", run_name: str = "", parent_run_id: str = "",
        tags: dict[str, str] | None = None, tracking_uri: str = "",
        experiment: str = EXPERIMENT) -> Iterator[mlflow.ActiveRun]:
    """Activate ``run_id`` (made by the pipeline) or start a new run; on an exception the
    run ends FAILED, never lost."""
    if not (tracking_uri == "" and mlflow.active_run() is not None):
        setup(tracking_uri, experiment)
    nested = mlflow.active_run() is not None
    if run_id:
        active = mlflow.start_run(run_id=run_id, nested=nested)
    else:
        active = mlflow.start_run(run_name=run_name or None, nested=nested,
                                  parent_run_id=parent_run_id or None)
    if tags:
        mlflow.set_tags(tags)
    try:
        yield active
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def open_run(*, run_id: str = "", run_name: str = "", parent_run_id: str = "",
             tags: dict[str, str] | None = None, tracking_uri: str = "",
             experiment: str = EXPERIMENT) -> mlflow.ActiveRun:
    """Notebook form of ``run``: activate or start a run and leave it active. Close it with
    ``close_run`` in the last cell; the pipeline marks it FAILED if the notebook fails."""
    setup(tracking_uri, experiment)
    while mlflow.active_run() is not None:  # a re-executed notebook in the same kernel
        mlflow.end_run()
    if run_id:
        active = mlflow.start_run(run_id=run_id)
    else:
        active = mlflow.start_run(run_name=run_name or None, parent_run_id=parent_run_id or None)
    if tags:
        mlflow.set_tags(tags)
    return active


def close_run(status: str = "FINISHED") -> None:
    if mlflow.active_run() is not None:
        mlflow.end_run(status=status)




def log_params(params: dict[str, Any]) -> None:
    """Log a whole parameter dict to the active run; values are stringified (``None`` as
    ``None``) and cut at 6000 characters (MLflow's limit)."""
    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


TRAINING_CURVES = ("train/loss", "train/lr", "train/epoch_loss", "val/loss")
"""The metrics ``teminal.training.fit.fit`` logs, all on the optimizer-step axis."""


def copy_curves(source_run_id: str, *, keys: tuple[str, ...] = TRAINING_CURVES) -> int:
    """Log ``source_run_id``'s history of ``keys`` (values, steps, timestamps) again to the
    active run — a reused stage shows the curves of the run that trained it. Returns the
    number of points copied (0 when the source run is not in this store)."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        points = [Metric(m.key, m.value, m.timestamp, m.step) for key in keys
                  for m in client.get_metric_history(source_run_id, key)]
    except MlflowException:  # a run of another store, or deleted
        return 0
    client.log_batch(mlflow.active_run().info.run_id, metrics=points)  # MLflow chunks it
    return len(points)


def config_hash(payload: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able dict (parameters and input identities)."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def file_sha1(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log_dataframe(df, artifact_file: str) -> None:
    """Log a DataFrame as an MLflow table (viewable in the UI) and as CSV."""
    mlflow.log_table(data=df.reset_index(drop=True), artifact_file=artifact_file)
    mlflow.log_text(df.to_csv(index=False), artifact_file.rsplit(".", 1)[0] + ".csv")
