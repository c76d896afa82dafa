"""A notebook session: the configuration, the run folder, the device and the MLflow run.

Every notebook's first code cell after its parameters is ``S = session.start("<notebook>",
globals())``. ``start`` reads three things from the notebook's namespace — ``run_dir``,
``config`` and the notebook's own cell parameters (``params.NOTEBOOKS``) — and:

- with ``run_dir`` (a folder made by ``teminal run``): loads the run's recorded
  configuration (or ``config``, when given: ``teminal rerun … -p name=value`` passes the run's
  configuration with its overrides) and applies the cell on top (so a notebook reopened in JupyterLab with an edited
  cell uses the edit, and every other decision comes from the run folder);
- without: starts a **standalone** run ``runs/standalone-<notebook>-<time>`` on ``config`` (a
  ``params/*.yaml`` path; empty = the smoke defaults) and the cell; earlier steps it needs (data,
  a pretrained backbone, stage A) are built in that folder when first asked for.

The MLflow run is the one the pipeline created for this notebook (``TEMINAL_MLFLOW_RUN_ID`` in
the kernel's environment, set by the runner) or a new one. Its parameters are the effective
parameters of what the notebook computes, flattened (``teminal.run.logged.for_notebook``): the
top-level fields, the shared sections and the notebook's own section (a stage-B notebook also
the stage A it starts from).

``Session`` also carries memos of heavy objects the steps build once per notebook (the run's
data, backbones by audio head, feature banks); they are plain fields, filled only by
``teminal.run.steps``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .. import determinism, tracking
from ..warn import record_to
from .config import load_config, with_cell
from . import logged
from .layout import RunLayout, new_run_dir, workdir
from .params import NOTEBOOKS, RunConfig

RUN_ID_ENV = "TEMINAL_MLFLOW_RUN_ID"  # set by the pipeline runner for the notebook it executes


def device_from(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available here; use device: cpu "
                           "or auto (e.g. -p device=auto)")
    return torch.device(name)


@dataclass
class Session:
    """One notebook execution (see the module docstring)."""

    notebook: str
    config: RunConfig
    layout: RunLayout
    device: torch.device
    run_id: str
    standalone: bool
    data: Any = None  # teminal.run.steps.data.RunData, once loaded
    models: dict = field(default_factory=dict)  # audio head → pretrained Backbone
    banks: dict = field(default_factory=dict)  # (trunk key, frames) → FeatureBank
    caches: dict = field(default_factory=dict)  # pretrained key → TrunkCache; the msclap key

    @property
    def run_dir(self) -> Path:
        return self.layout.root

    @property
    def params(self):
        """This notebook's section of the configuration."""
        return self.config.section(NOTEBOOKS[self.notebook].section)

    def phase(self, name: str):
        """``with S.phase("training"):`` times a phase into the run's profile."""
        return self.layout.phase(self.notebook, name)

    def show(self, fig, artifact: str) -> None:
        """Show a figure in the notebook (as a PNG output, whatever the matplotlib backend, so
        it stays in the executed copy) and log it to the notebook's MLflow run."""
        import mlflow
        from IPython.display import Image, display

        from teminal.viz.plots import png

        mlflow.log_figure(fig, artifact)
        display(Image(data=png(fig), format="png"))  # at plots.DPI: the sizes plots.py chose

    def close(self) -> None:
        tracking.close_run("FINISHED")


def _cell(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    spec = NOTEBOOKS[notebook]
    missing = [k for k in spec.names if k not in namespace]
    if missing:
        raise NameError(f"{notebook}: the parameters cell must define {missing}")
    return {k: namespace[k] for k in spec.names}


def start(notebook: str, namespace: Mapping[str, Any], *,
          tags: dict[str, str] | None = None) -> Session:
    """Open a notebook session (module docstring). Call it right after the parameters cell."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; choose from {list(NOTEBOOKS)}")
    run_dir, config_path = str(namespace.get("run_dir", "")), str(namespace.get("config", ""))
    cell = _cell(notebook, namespace)
    if run_dir:
        layout = RunLayout(Path(run_dir).expanduser().resolve())
        base = load_config(_find(config_path)) if config_path else layout.read_config()
        standalone = False
    else:
        base = load_config(_find(config_path)) if config_path else RunConfig()
        layout = RunLayout(new_run_dir(f"standalone-{notebook}", workdir() / "runs"))
        standalone = True
    config = with_cell(base, notebook, cell)
    if standalone:
        layout.write_config(config)
    device = deterministic_device(config)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    record = layout.read_record()
    active = tracking.open_run(
        run_id=os.environ.get(RUN_ID_ENV, ""), run_name=notebook,
        parent_run_id=record.get("parent_run_id", ""),
        tracking_uri=record.get("tracking_uri", ""),
        tags={"teminal.notebook": notebook, "teminal.run_dir": str(layout.root), **(tags or {})})
    tracking.log_params(logged.for_notebook(config, NOTEBOOKS[notebook].section)
                        | {"deterministic": config.deterministic or determinism.requested()})
    record_to(_warnings_to_mlflow())
    print(f"{notebook}: run folder {layout.root.name}, device {device.type}")
    return Session(notebook=notebook, config=config, layout=layout, device=device,
                   run_id=active.info.run_id, standalone=standalone)


def _warnings_to_mlflow():
    """A receiver for ``TeminalWarning``s (``teminal.warn.record_to``): all of this notebook's
    so far as the active run's tag ``teminal.warnings`` (blank-line separated) and artifact
    ``warnings.txt``; the command line prints them after the notebook."""
    import mlflow

    seen: list[str] = []

    def receive(text: str) -> None:
        seen.append(text)
        if mlflow.active_run() is None:
            return
        joined = "\n\n".join(seen)
        mlflow.set_tag("teminal.warnings", joined[:5000])
        mlflow.log_text(joined + "\n", "warnings.txt")

    return receive


def deterministic_device(config: RunConfig) -> torch.device:
    """The run's device, after ``determinism.apply()`` when the run asks for the mode
    (``deterministic: true``) or the kernel started under it (nbval, ``make notebooks``)."""
    device = device_from(config.device)
    if config.deterministic or determinism.requested():
        if device.type != "cpu":
            raise ValueError(f"deterministic: true is a CPU mode, but device={config.device!r} "
                             f"gives {device}; add -p device=cpu")
        determinism.apply()
    return device


def _find(path: str) -> Path:
    """A configuration path as given, or relative to the repository root."""
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists():
        p = tracking.repo_root() / p
    return p
