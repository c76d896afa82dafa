"""teminal's own warnings: a category that third-party filters cannot silence.

``import msclap`` calls ``warnings.filterwarnings("ignore")`` for the whole process, and the
test and notebook environments set ``PYTHONWARNINGS=ignore``. ``warn`` emits a
``TeminalWarning`` with a filter of its own in front of every other one, so it is always shown
(stderr: the command's output, the executed notebook). ``record_to`` adds a second receiver for
every ``TeminalWarning`` shown — the notebook session passes one that keeps them on the MLflow
run (tag ``teminal.warnings`` and artifact ``warnings.txt``), where the command line reads them
back after each notebook.
"""
from __future__ import annotations

import warnings
from typing import Callable


class TeminalWarning(UserWarning):
    """Something a user must know that does not stop the run (e.g. clips dropped by
    ``allow_partial``)."""


def warn(message: str, *, stacklevel: int = 2) -> None:
    """Show ``message`` as a ``TeminalWarning`` whatever filters are installed."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", TeminalWarning)
        warnings.warn(message, TeminalWarning, stacklevel=stacklevel + 1)


def record_to(receiver: Callable[[str], None]) -> None:
    """Also pass the text of every ``TeminalWarning`` shown from now on to ``receiver``
    (wraps ``warnings.showwarning``, replacing an earlier receiver; other categories are
    untouched)."""
    shown = getattr(warnings.showwarning, "teminal_base", warnings.showwarning)

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if isinstance(category, type) and issubclass(category, TeminalWarning):
            receiver(str(message))
        shown(message, category, filename, lineno, file, line)

    showwarning.teminal_base = shown
    warnings.showwarning = showwarning
