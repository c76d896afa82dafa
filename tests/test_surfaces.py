"""What a researcher reads: report on a failed run, hints without an active venv, rerun's -p
validation, executed copies without jupytext pairing and their HTML rendering."""
import json
import sys
from pathlib import Path

import mlflow
import nbformat
import pandas as pd

from teminal import cli, executed, hints, report, tracking
from teminal.viz import widgets
from teminal.run.config import to_yaml
from teminal.run.params import RunConfig


def fake_run(root: Path, *, failed_reason: str = "") -> Path:
    """A run folder whose 00_pretrained_baseline child run FAILED (with ``failed_reason``)."""
    uri = f"sqlite:///{root}/mlflow.db"
    tracking.setup(uri)
    parent = tracking.create_run(run_name="r")
    child = tracking.create_run(run_name="00_pretrained_baseline", parent_run_id=parent,
                                tags={"teminal.notebook": "00_pretrained_baseline"})
    client = mlflow.MlflowClient()
    if failed_reason:
        client.set_tag(child, "teminal.failed_reason", failed_reason)
    client.set_terminated(child, status="FAILED")
    client.set_terminated(parent, status="FAILED")
    run_dir = root / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(RunConfig()))
    (run_dir / "pipeline.json").write_text(json.dumps({
        "parent_run_id": parent, "tracking_uri": uri, "planned": ["00_pretrained_baseline"],
        "notebooks": {}, "status": "FAILED"}))
    return run_dir


def test_report_on_a_failed_run_says_why(tmp_path):
    run_dir = fake_run(tmp_path, failed_reason="zero-shot top-1 is 9.0 %, under 2 × chance")
    text = report.report(run_dir)
    assert "Run status: FAILED" in text and "There are no results" in text
    assert "`00_pretrained_baseline` stopped: zero-shot top-1 is 9.0 %, under 2 × chance" in text


def test_report_on_a_failed_run_without_a_reason_names_the_status(tmp_path):
    assert "`00_pretrained_baseline` stopped: FAILED" in report.report(fake_run(tmp_path))


def test_rerun_validates_p_like_run(tmp_path, capsys):
    run_dir = fake_run(tmp_path)
    assert cli.main(["rerun", str(run_dir), "00_pretrained_baseline", "-p", "optimizer_step=1"]) == 1
    assert "did you mean 'optimizer_steps'" in capsys.readouterr().err
    assert not (run_dir / "notebooks").exists() and not (run_dir / "reruns").exists()


def test_hints_name_commands_that_work_without_an_active_venv():
    program = hints.teminal().split()[0]
    assert Path(program).exists() and Path(program).absolute().parent == Path(sys.executable).parent
    assert Path(hints.mlflow_ui("sqlite:///x").split()[0]).exists()


def _executed_copy(path: Path) -> None:
    """A notebook as papermill leaves it: jupytext metadata, a figure, a widget output."""
    box = widgets.failure_view({"3A": pd.DataFrame({"i": [0], "j": [1], "score": [0.0]})},
                               class_names=["dog", "rain"])
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    cell = nbformat.v4.new_code_cell("widgets.failure_view(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=box._repr_mimebundle_())]
    nb.cells = [cell]
    nbformat.write(nb, str(path))


def test_executed_copy_is_unpaired_and_rendered_with_static_pictures(tmp_path):
    copy = tmp_path / "03_zste.ipynb"
    _executed_copy(copy)
    assert executed.unpair(copy) and "jupytext" not in nbformat.read(str(copy), 4).metadata
    assert not executed.unpair(copy)  # nothing left to remove
    page = executed.render_html(copy).read_text()
    assert "static picture of an interactive view" in page and "dog | rain" in page
    assert "VBox(" not in page


def test_lab_works_on_unpaired_copies_and_keeps_the_users(tmp_path):
    from teminal import notebook_tools

    committed = Path(notebook_tools.__file__).resolve().parents[1] / "notebooks"
    before = {p.name: p.read_bytes() for p in committed.glob("*")}
    lines = notebook_tools.lab_copies(committed, tmp_path / "lab")
    copies = sorted((tmp_path / "lab").glob("*.ipynb"))
    assert [p.name for p in copies] == sorted(p.name for p in committed.glob("[0-9][0-9]_*.ipynb"))
    assert len(lines) == len(copies) and not list((tmp_path / "lab").glob("*.py"))
    first = nbformat.read(str(copies[0]), as_version=4)
    assert "jupytext" not in first.metadata and first.cells[0].source  # cells and outputs kept
    first.cells[0].source = "# my edit"
    nbformat.write(first, str(copies[0]))
    again = notebook_tools.lab_copies(committed, tmp_path / "lab")
    assert nbformat.read(str(copies[0]), as_version=4).cells[0].source == "# my edit"
    assert "differ" in again[0] and all("kept" in line for line in again)
    assert {p.name: p.read_bytes() for p in committed.glob("*")} == before
