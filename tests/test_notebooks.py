"""The committed notebooks: stripped, parameterised with plain scalars, valid configs."""
from pathlib import Path

import nbformat
import pytest

from teminal import pipeline
from teminal.notebook_tools import check_parameters, parameters_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_pipeline_notebook_exists():
    assert [p.stem for p in NOTEBOOKS] == sorted(pipeline.NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs (run `make clean-notebooks`)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_plain_scalars(path):
    nb = nbformat.read(str(path), as_version=4)
    assert check_parameters(parameters_cell(nb)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """papermill skips a line with two '=' (e.g. in its comment): every name must survive."""
    import ast

    nb = nbformat.read(str(path), as_version=4)
    names = [node.targets[0].id for node in ast.parse(parameters_cell(nb)).body]
    assert list(pipeline.declared_parameters(path)) == names


def test_parameters_cell_checker_rejects_computed_values():
    assert check_parameters("a = 1\nb = 'x'  # comment\n") == []
    assert check_parameters("a = 1 + 2\n")
    assert check_parameters("a = [1, 2]\n")
    assert check_parameters("import os\n")


@pytest.mark.parametrize("name", ["default", "paper", "ci"])
def test_params_files_are_valid(name):
    config = pipeline.load_config(ROOT / "params" / f"{name}.yaml")
    assert config.notebooks == list(pipeline.NOTEBOOKS)


def test_unknown_parameter_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nparams:\n  world_clases: 8\n")
    with pytest.raises(pipeline.PipelineError, match="world_clases"):
        pipeline.load_config(bad)


def test_runner_parameters_cannot_be_set(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  run_dir: /tmp/x\n")
    with pytest.raises(pipeline.PipelineError, match="set by the runner"):
        pipeline.load_config(bad)


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    a = pipeline.new_run_dir("x", tmp_path)
    b = pipeline.new_run_dir("x", tmp_path)
    assert a != b and a.exists() and b.exists()
