"""Notebook hygiene: paired jupytext twins, committed smoke outputs, parameters cells.

Every pipeline notebook ``notebooks/NN_name.ipynb`` has a percent-format twin
``notebooks/NN_name.py`` (the reviewable source). Edit either: ``jupytext --sync`` (or
JupyterLab with jupytext) carries the edit to the other, and ``check_pair`` (a test) fails when
the two disagree. The ``.ipynb`` files are committed **with the outputs of their smoke
configuration** (the parameters cell's defaults); nbval re-executes them in ``make test`` and
compares, so a changed number fails. After an intended change::

    make notebooks        # = python -m teminal.notebook_tools refresh notebooks/*.ipynb

executes every notebook exactly as nbval does (a fresh temporary work folder and MLflow store,
progress bars off, the deterministic CPU mode of ``teminal.determinism``) and writes the
outputs back. Executed copies of real runs are MLflow artifacts, never committed. JupyterLab
(``make lab``) works on copies in ``lab/`` (``lab_copies``), so using it never changes a
committed notebook.
"""
from __future__ import annotations

import ast
import os
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
"""The kernelspec the committed notebooks record: ipykernel's own, as JupyterLab writes it, so
saving a notebook from JupyterLab does not change it."""


def test_environment(root: str | Path) -> dict[str, str]:
    """The environment nbval's and refresh's kernels share (the tests set the same), the
    deterministic CPU mode included (``teminal.determinism``): the stored outputs are the same
    numbers on every x86-64 CPU."""
    from . import determinism

    root = Path(root)
    return {**determinism.environment(), "TEMINAL_WORKDIR": str(root),
            "TEMINAL_TRACKING_URI": f"sqlite:///{root}/mlruns/mlflow.db",
            "MPLBACKEND": "Agg", "TEMINAL_PROGRESS": "0", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONWARNINGS": "ignore"}


def twin(path: str | Path) -> Path:
    return Path(path).with_suffix(".py")


def cells_of(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source, tags) of every cell: what the pair must agree on."""
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", [])))
            for c in nb.cells]


def check_pair(path: str | Path) -> list[str]:
    """Differences between ``NN_name.ipynb`` and its twin ``NN_name.py`` (empty: in sync)."""
    path = Path(path)
    if not twin(path).is_file():
        return [f"{path.name}: no jupytext twin {twin(path).name}"]
    a = cells_of(nbformat.read(str(path), as_version=4))
    b = cells_of(jupytext.read(twin(path)))
    problems = []
    if len(a) != len(b):
        problems.append(f"{path.name} has {len(a)} cells, {twin(path).name} has {len(b)}")
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            problems.append(f"cell {k}: {path.name} and {twin(path).name} differ "
                            f"({x[1][:50]!r} vs {y[1][:50]!r})")
    return problems


def parameters_cell(nb) -> str:
    """Source of the cell tagged ``parameters``; a clear error when there is none."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise ValueError("no cell tagged 'parameters'")


def parameters(source: str) -> dict:
    """``name = literal`` lines of a parameters cell → {name: value}; anything else (a
    computation, an import) is a ``ValueError`` naming the line."""
    out = {}
    for node in ast.parse(source).body:
        ok = isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.targets[0], ast.Name)
        try:
            value = ast.literal_eval(node.value) if ok else None
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"line {node.lineno}: {ast.unparse(node)[:60]!r} is not "
                             "`name = literal` (nothing computed in a parameters cell)")
        out[node.targets[0].id] = value
    return out


def execute(path: Path, *, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run a notebook on its defaults in ``notebooks/`` as nbval does; returns it executed."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["kernelspec"] = dict(KERNEL)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = NotebookClient(nb, kernel_name="python3", timeout=1800, record_timing=False,
                                store_widget_state=False,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def refresh(paths: list[str]) -> None:
    """Execute each notebook on its smoke defaults and write the outputs back (both twins)."""
    with tempfile.TemporaryDirectory(prefix="teminal-refresh-") as root:
        env = test_environment(root)
        for p in map(Path, paths):
            problems = check_pair(p)
            if problems:
                raise SystemExit(f"{p} and its twin disagree; run `jupytext --sync {p}` "
                                 "first:\n  " + "\n  ".join(problems))
            print(f"executing {p} …", flush=True)
            nb = execute(p, env=env)
            nbformat.write(nb, str(p))
            jupytext.write(nb, twin(p), fmt="py:percent")


def lab_copies(notebooks: Path, dest: Path) -> list[str]:
    """Working copies of the committed notebooks for JupyterLab (``make lab``), in ``dest``
    (ignored by git). What a lab session runs and autosaves lands in the copies; the committed
    ``notebooks/NN_*.ipynb`` (nbval's reference outputs) and their twins stay as committed.
    A missing copy is made (without jupytext pairing, so no twin is written beside it); an
    existing one is the user's work and is kept, with a note when its cells differ from the
    committed notebook's. Returns one line per notebook."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = []
    for src in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb")):
        target, nb = dest / src.name, nbformat.read(str(src), as_version=4)
        if target.exists():
            same = cells_of(nbformat.read(str(target), as_version=4)) == cells_of(nb)
            lines.append(f"{target}: kept" + ("" if same else f" (its cells differ from {src}; "
                                                             "delete it for a fresh copy)"))
            continue
        nb.metadata.pop("jupytext", None)
        nbformat.write(nb, str(target))
        lines.append(f"{target}: copied from {src}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("refresh", "check", "lab"):
        print("usage: python -m teminal.notebook_tools refresh|check NOTEBOOK.ipynb... | lab DEST",
              file=sys.stderr)
        return 2
    if argv[0] == "refresh":
        refresh(argv[1:])
        return 0
    if argv[0] == "lab":
        print("\n".join(lab_copies(Path(__file__).resolve().parents[1] / "notebooks",
                                    Path(argv[1]))))
        return 0
    bad = [msg for p in argv[1:] for msg in check_pair(p)]
    print("\n".join(bad) or "in sync")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
