"""One truth for run state: the MLflow runs and ``pipeline.json`` of a pipeline agree on every
exit path (SPEC §6: a run that stops says why, and nothing is left looking alive).

- ``close_notebook`` / ``close_parent``: end a notebook's run with every run nested under it,
  record its entry, log its executed copy, print its ``TeminalWarning``s — each step tried even
  when another fails (a full disk), what failed reported;
- ``reconcile``: what a runner killed with SIGKILL (or stopped by a full disk) left RUNNING is
  marked KILLED by the next ``resume``;
- ``locked``: one runner per run folder (an ``flock`` that dies with its process);
- ``hint``: the likely cause of a dead kernel (memory) or a full disk.
"""
from __future__ import annotations

import errno
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import executed, tracking
from .integrity import file_lock
from .run.layout import RunLayout


class PipelineError(RuntimeError):
    """A notebook failed or the configuration is wrong; the message says where."""


def mlflow_client():
    import mlflow

    return mlflow.MlflowClient()


def hint(exc: BaseException) -> str:
    """A likely cause for errors that do not say it themselves."""
    from nbclient.exceptions import DeadKernelError

    if isinstance(exc, DeadKernelError):
        return ("\n  the kernel died: most often it was killed for memory (the OOM killer; "
                "see `dmesg`): lower model.eval_batch_size or the stage batch sizes, or use "
                "fewer classes; then `resume`")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "\n  the disk is full: free space (e.g. old runs/ or cache/), then `resume`"
    return ""


def try_step(step) -> str | None:
    """Run one bookkeeping ``step``; its error as text (None when it worked)."""
    try:
        step()
    except Exception as exc:  # noqa: BLE001 — every bookkeeping step is tried
        return f"{exc!r}{hint(exc)}"
    return None


def close_notebook(layout: RunLayout, notebook: str, run_id: str, status: str,
                   output: Path, entry: dict | None) -> list[str]:
    """End the notebook's runs, record its entry, log its copy, print its warnings; each step
    is tried even when another fails (a full disk). Returns what failed."""
    client = mlflow_client()
    steps = [lambda: tracking.terminate(client, run_id, status)]
    if entry is not None:
        steps.append(lambda: record_notebook(layout, notebook, entry))
    if output.exists():
        steps.append(lambda: executed.log_copy(client, run_id, output))
    steps.append(lambda: print_warnings(client, run_id, notebook))
    problems = [p for p in map(try_step, steps) if p]
    for p in problems:
        print(f"teminal: could not record the end of {notebook}: {p}", file=sys.stderr)
    return problems


def print_warnings(client, run_id: str, notebook: str) -> None:
    text = client.get_run(run_id).data.tags.get("teminal.warnings", "")
    for line in filter(None, text.split("\n\n")):
        print(f"teminal: warning from {notebook}: {line}", file=sys.stderr, flush=True)


@contextmanager
def locked(layout: RunLayout) -> Iterator[None]:
    """The run folder's lock, held while a runner executes it; a second runner is refused."""
    try:
        with file_lock(layout.root / ".pipeline.lock", wait=False):
            yield
    except BlockingIOError:
        raise PipelineError(f"{layout.root} is being executed by another `teminal` process; "
                            "wait for it (or stop it) first") from None


def close_parent(layout: RunLayout, parent: str, status: str, stopped_at: str | None) -> None:
    """End the parent run (and anything still open under it) and record the pipeline's end;
    each step is tried even when the other fails."""
    def record() -> None:
        rec = layout.read_record()
        rec["status"], rec["stopped_at"] = status, stopped_at
        layout.write_record(rec)

    end = (try_step(lambda: tracking.terminate(mlflow_client(), parent, status)),
           try_step(record))
    for problem in filter(None, end):
        print(f"teminal: could not record the pipeline's end ({status}): {problem}; "
              "`resume` records it", file=sys.stderr)


def reconcile(layout: RunLayout, record: dict) -> dict:
    """Make MLflow and ``pipeline.json`` agree after a runner that could not record its end
    (SIGKILL, full disk); call it holding ``locked``, when nothing else runs in the folder. A
    notebook still RUNNING in the record becomes KILLED; every MLflow run still open under
    the parent ends with its notebook's recorded status (KILLED when it has none). Returns the
    updated record (written)."""
    client = mlflow_client()
    for nb, entry in record.get("notebooks", {}).items():
        if entry.get("status") in tracking.OPEN:
            entry["status"] = "KILLED"
            print(f"teminal: {nb} was left RUNNING by a runner that died; marked KILLED",
                  flush=True)
        if client.get_run(entry["run_id"]).info.status in tracking.OPEN:
            tracking.terminate(client, entry["run_id"], entry["status"])
    for run in tracking.descendants(client, record["parent_run_id"]):
        if run.info.status in tracking.OPEN:
            client.set_terminated(run.info.run_id, status="KILLED")
    layout.write_record(record)
    return record


def record_notebook(layout: RunLayout, notebook: str, entry: dict) -> None:
    """Set one notebook's entry of ``pipeline.json``."""
    record = layout.read_record()
    record.setdefault("notebooks", {})[notebook] = entry
    layout.write_record(record)
