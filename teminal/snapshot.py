"""A static HTML picture of an ipywidgets view in its current state.

A widget shows only where a live widget manager renders it: an executed copy opened untrusted
in JupyterLab, its nbconvert HTML rendering or the MLflow UI shows the widget's ``text/plain``
(``VBox(children=(Dropdown(…``) instead. ``Pictured`` widgets (``teminal.viz.widgets``) add this
picture to their display bundle as ``text/html``: a live, trusted notebook still shows the
widget (its renderer ranks first), everything else the picture — figures as PNG images, tables,
captions, the chosen option of each control.
"""
from __future__ import annotations

import base64
import html

import ipywidgets as widgets


def _output(out: widgets.Output) -> str:
    parts = []
    for o in out.outputs:
        data = o.get("data", {})
        if "text/html" in data:
            parts.append(data["text/html"])
        elif "image/png" in data:
            parts.append(f"<img src='data:image/png;base64,{data['image/png']}'>")
        elif "text/plain" in data or "text" in o:
            parts.append(f"<pre>{html.escape(str(data.get('text/plain', o.get('text', ''))))}</pre>")
    return "".join(parts)


def _control(w: widgets.Widget) -> str:
    """A control's description and its chosen value, as text."""
    if isinstance(w, widgets.Dropdown):
        value = w.label
    elif isinstance(w, widgets.IntSlider):
        value = f"{w.value} (of {w.min}–{w.max})"
    else:
        value = w.value
    return f"<div><b>{html.escape(w.description)}</b>: {html.escape(str(value))}</div>"


def html_of(w: widgets.Widget) -> str:
    """``w`` and its children as static HTML (hidden parts left out)."""
    if getattr(getattr(w, "layout", None), "display", None) == "none":
        return ""
    if isinstance(w, widgets.Box):
        inner = [html_of(c) for c in w.children]
        if isinstance(w, widgets.HBox):
            cells = "".join(f"<div style='flex:1;min-width:0'>{c}</div>" for c in inner if c)
            return f"<div style='display:flex;gap:8px'>{cells}</div>"
        return "".join(f"<div>{c}</div>" for c in inner if c)
    if isinstance(w, widgets.HTML):
        return w.value
    if isinstance(w, widgets.Image):
        if not w.value:
            return ""
        data = base64.b64encode(bytes(w.value)).decode()
        return f"<img src='data:image/{w.format};base64,{data}' style='max-width:100%'>"
    if isinstance(w, widgets.Output):
        return _output(w)
    if isinstance(w, (widgets.Dropdown, widgets.IntSlider)):
        return _control(w)
    return f"<pre>{html.escape(type(w).__name__)}</pre>"


def picture(w: widgets.Widget) -> str:
    """The static picture of ``w``: its HTML under a note saying what it is."""
    note = ("<div style='color:#666;font-size:90%'>static picture of an interactive view "
            "(run the notebook to use it)</div>")
    return f"<div class='teminal-static-widget'>{note}{html_of(w)}</div>"
