"""The committed notebooks: paired with their jupytext twins, short typed parameters cells whose
defaults are the one source of defaults (``teminal.run.params``), committed with outputs."""
import json
from pathlib import Path

import nbformat
import pytest

import jupytext

from teminal import notebook_tools
from teminal.notebook_tools import check_pair, parameters, parameters_cell
from teminal.run.params import NOTEBOOKS, PIPELINE, RunConfig

ROOT = Path(__file__).resolve().parents[1]
PATHS = [ROOT / "notebooks" / f"{nb}.ipynb" for nb in PIPELINE]


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def test_every_pipeline_notebook_and_twin_exists():
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(PIPELINE)
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.py")) == sorted(PIPELINE)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_and_twin_are_in_sync(path):
    assert check_pair(path) == []


def test_a_drifted_twin_is_caught(tmp_path):
    src = PATHS[0]
    (tmp_path / src.name).write_bytes(src.read_bytes())
    twin = src.with_suffix(".py").read_text().replace("S = session.start", "S  = session.start")
    (tmp_path / src.with_suffix(".py").name).write_text(twin)
    assert check_pair(tmp_path / src.name)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_parameters_cell_is_short_and_its_defaults_are_the_configs(path):
    source = parameters_cell(read(path))
    assert len(source.splitlines()) <= 20
    values = parameters(source)  # literals only: nothing computed
    spec = NOTEBOOKS[path.stem]
    assert list(values) == ["run_dir", "config", *spec.names]
    assert values["run_dir"] == "" and values["config"] == ""
    defaults = RunConfig().model_dump(mode="json")
    as_json = json.loads(json.dumps(values))  # tuples → lists, as the model dumps them
    assert {name: as_json[name] for name in spec.names} == \
        {name: defaults[section][name] for section, name in spec.cell}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """papermill skips a line with a second '=' (e.g. in its comment): every name must survive."""
    import papermill as pm

    names = list(parameters(parameters_cell(read(path))))
    assert list(pm.inspect_notebook(str(path))) == names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_committed_with_outputs_and_only_widgets_ignored(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert sum(bool(c.outputs) for c in code) >= 3, "run `make notebooks` to store the outputs"
    for c in code:
        if "NBVAL_IGNORE_OUTPUT" in c.source:
            assert "widgets." in c.source, f"only widget cells may skip nbval: {c.source[:60]!r}"


def test_parameters_checker_rejects_computed_values():
    assert parameters("a = 1\nb = 'x'  # comment\nc = [1, (2, 3)]\nd = None\n") == {
        "a": 1, "b": "x", "c": [1, (2, 3)], "d": None}
    for bad in ("a = 1 + 2\n", "a = f(1)\n", "import os\n"):
        with pytest.raises(ValueError, match="not `name = literal`"):
            parameters(bad)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_kernelspec_is_the_one_jupyterlab_saves(path):
    """JupyterLab writes the running kernel's spec on save: the committed one must equal it,
    or merely saving a notebook would change it (``Python 3`` → ``Python 3 (ipykernel)``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3").display_name
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata["kernelspec"]["display_name"] == installed == notebook_tools.KERNEL["display_name"]
    assert jupytext.read(notebook_tools.twin(path)).metadata["kernelspec"]["display_name"] == installed


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_import_shadows_a_cell_parameter(path):
    """``session.start`` reads the cell's names from the notebook's globals after the imports:
    an import of the same name (``from teminal.run import steps``) would silently replace a
    parameter (a cell variable ``steps`` would arrive as the module)."""
    import ast

    nb = read(path)
    cell = parameters_cell(nb)
    imported = set()
    for c in nb.cells:
        if c.cell_type != "code" or c.source == cell:
            continue
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    assert imported & set(NOTEBOOKS[path.stem].names) == set()
