"""Progress bars for long work, readable live and in a saved notebook.

Every bar of the library goes through ``progress``; ``TEMINAL_PROGRESS`` chooses how it shows:

- ``0`` — off (the tests and ``make notebooks`` set it, so a notebook's committed outputs do
  not depend on what an earlier test left in the cache);
- ``text`` — nothing while it runs, then its **final state as one plain line**
  (``T-B (1,1,1,1,1): 100%|██████████| 2/2 [00:03<00:00, train=0.512, val=0.601]``). The
  pipeline runner sets it for the notebooks it executes: an executed copy is read later, and a
  progress widget saved in it would show its first state (``0/2``), as if nothing ran;
- anything else (the default) — tqdm's own choice: a live widget in Jupyter, a text bar in a
  terminal. In Jupyter the widget is followed by the same final line when it closes, so a
  notebook saved from JupyterLab reads as it ran too.
"""
from __future__ import annotations

import io
import os

from tqdm import tqdm as tqdm_text
from tqdm.auto import tqdm as tqdm_auto
from tqdm.notebook import tqdm as tqdm_notebook

ENV = "TEMINAL_PROGRESS"
MODES = {"0": "off", "text": "text"}  # any other value: "auto"


def mode() -> str:
    """``off``, ``text`` or ``auto``, from ``TEMINAL_PROGRESS``."""
    return MODES.get(os.environ.get(ENV, "1").strip().lower(), "auto")


def enabled() -> bool:
    return mode() != "off"


class _FinalLine:
    """Mixin: print the bar's final state as a plain line when it closes (once)."""

    def close(self) -> None:
        line = None if self.disable else str(self)  # tqdm sets disable on its first close
        super().close()
        if line is not None:
            print(line, flush=True)


class TextBar(_FinalLine, tqdm_text):
    """Draws nothing while it runs (to a buffer); its final state is printed on close."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["file"] = io.StringIO()
        super().__init__(*args, **kwargs)


class NotebookBar(_FinalLine, tqdm_notebook):
    """tqdm's Jupyter widget, followed by its final state as a line when it closes."""


def progress(iterable=None, *, disable: bool = False, **kwargs) -> tqdm_text:
    """A bar over ``iterable`` (tqdm's arguments), shown as ``TEMINAL_PROGRESS`` says (module
    docstring); ``disable`` turns it off."""
    chosen = mode()
    if disable or chosen == "off":
        return tqdm_text(iterable, disable=True, **kwargs)
    if chosen == "text":
        return TextBar(iterable, **kwargs)
    if issubclass(tqdm_auto, tqdm_notebook):  # running in a Jupyter kernel
        return NotebookBar(iterable, **kwargs)
    return tqdm_auto(iterable, **kwargs)
