"""Executed notebook copies: what the pipeline runner does to a copy after papermill wrote it.

- ``unpair``: drop the ``jupytext`` metadata the committed notebooks carry (their pairing with
  the ``.py`` twin). A copy that kept it would make JupyterLab's jupytext write a twin (and more)
  into the run folder the moment the copy is trusted or saved; a copy is a record, not a source.
- ``render_html``: the copy as one HTML file (nbconvert, lab template, images inline), which the
  MLflow UI shows as a page. Widgets appear as their static pictures (``teminal.snapshot``):
  the page has no widget manager, so the live-widget output is never chosen.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HTML_PRIORITY = ("application/javascript", "text/html", "text/markdown", "image/svg+xml",
                 "text/latex", "image/png", "image/jpeg", "text/plain")
"""nbconvert's HTML priority without the live widget (which needs a widget manager)."""


def unpair(path: str | Path) -> bool:
    """Remove the jupytext pairing metadata of the notebook at ``path``; True if it had any."""
    nb = nbformat.read(str(path), as_version=4)
    if "jupytext" not in nb.metadata:
        return False
    del nb.metadata["jupytext"]
    nbformat.write(nb, str(path))
    return True


def render_html(path: str | Path) -> Path:
    """Write ``<copy>.html`` beside the executed copy ``path``; returns its path."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    path = Path(path)
    config = Config({"NbConvertBase": {"display_data_priority": list(HTML_PRIORITY)}})
    body, _ = HTMLExporter(config=config, template_name="lab").from_filename(str(path))
    out = path.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def log_copy(client, run_id: str, output: Path) -> None:
    """The executed copy, without jupytext pairing, and its HTML rendering, as artifacts
    ``notebook/<copy>.ipynb`` and ``notebook/<copy>.html`` (the MLflow UI shows the page)."""
    unpair(output)
    client.log_artifact(run_id, str(output), artifact_path="notebook")
    try:
        page = render_html(output)
    except Exception as exc:  # noqa: BLE001 — the copy is the record; the page is a view of it
        print(f"teminal: no HTML rendering of {Path(output).name}: {exc!r}", flush=True)
        return
    client.log_artifact(run_id, str(page), artifact_path="notebook")
