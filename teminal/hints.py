"""Commands to print in hints, spelled so they work without activating the virtual environment.

The console script ``teminal`` (``[project.scripts]`` in pyproject.toml) and ``mlflow`` live
beside the Python running this code (``.venv/bin/``); a hint names them by that path — relative
to the working folder when they are under it (``.venv/bin/teminal report runs/…``) — so it can be
pasted into any shell.
"""
from __future__ import annotations

import sys
from pathlib import Path


def _short(path: Path) -> str:
    """``path`` relative to the working folder when it lies under it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def teminal() -> str:
    """``.venv/bin/teminal`` (the console script beside this Python), else
    ``<this python> -m teminal``."""
    script = Path(sys.executable).with_name("teminal")
    if script.exists():
        return _short(script)
    return f"{_short(Path(sys.executable))} -m teminal"


def mlflow_ui(tracking_uri: str) -> str:
    """The MLflow UI on ``tracking_uri`` (the ``mlflow`` beside this Python)."""
    exe = Path(sys.executable).with_name("mlflow")
    return f"{_short(exe) if exe.exists() else 'mlflow'} ui --backend-store-uri {tracking_uri}"
