"""Notebook hygiene: ``python -m teminal.notebook_tools strip notebooks/*.ipynb``.

Notebooks are committed with outputs stripped (executed copies are MLflow artifacts), and
their parameters cell holds only plain scalar assignments (papermill injects ``params/*.yaml``).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat


def strip(path: str | Path) -> bool:
    """Remove outputs and execution counts; returns True when the file changed."""
    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
    if changed:
        nbformat.write(nb, str(path))
    return changed


def parameters_cell(nb) -> str:
    """Source of the cell tagged ``parameters``; a clear error when there is none."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise ValueError("no cell tagged 'parameters'")


def check_parameters(source: str) -> list[str]:
    """Problems with a parameters cell: anything but ``name = <plain scalar literal>``."""
    problems = []
    for node in ast.parse(source).body:
        ok = (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
              and type(node.value.value) in (str, int, float, bool))
        if not ok:
            problems.append(f"line {node.lineno}: {ast.unparse(node)[:60]!r} is not `name = scalar`")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "strip":
        print("usage: python -m teminal.notebook_tools strip NOTEBOOK...", file=sys.stderr)
        return 2
    for p in argv[1:]:
        if strip(p):
            print(f"stripped {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
