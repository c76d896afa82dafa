"""Progress bars as a saved notebook shows them: TEMINAL_PROGRESS=text prints each bar's final
state once, as a plain line; 0 prints nothing."""
import torch

from fit_configs import fit_config

from teminal import progress
from teminal.training.fit import fit


def test_text_mode_prints_the_final_state_once(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV, "text")
    bar = progress.progress(range(3), desc="T-B (1,1,1,1,1)", unit="epoch")
    for _ in bar:
        bar.set_postfix(train="0.500")
    bar.close()  # a second close prints nothing more
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("T-B (1,1,1,1,1): 100%") and "3/3" in lines[0]
    assert "train=0.500" in lines[0] and "\r" not in out and err == ""


def test_off_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV, "0")
    for _ in progress.progress(range(3), desc="x"):
        pass
    assert capsys.readouterr() == ("", "")


def test_training_bar_is_labelled_with_what_trains(monkeypatch, capsys, tmp_path):
    from test_train import Head, LinearTask

    monkeypatch.setenv(progress.ENV, "text")
    model = Head()
    fit(task=LinearTask(model), model=model, params=list(model.parameters()),
              config=fit_config(), out_dir=tmp_path / "a",
              device=torch.device("cpu"), label="A")
    fit(task=LinearTask(model), model=model, params=list(model.parameters()),
              config=fit_config(), out_dir=tmp_path / "p",
              device=torch.device("cpu"), metric_prefix="pretrain/")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["A", "pretrain"], lines
    assert all("100%" in line and "2/2" in line for line in lines)


def _run_in_kernel(mode: str, monkeypatch) -> list[dict]:
    """The outputs a Jupyter kernel saves for a bar over 3 items under TEMINAL_PROGRESS=mode."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv(progress.ENV, mode)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from teminal.progress import progress\nfor _ in progress(range(3), desc='A'):\n    pass")]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    return nb.cells[0].outputs


def test_saved_kernel_output_shows_the_final_state(monkeypatch):
    text = _run_in_kernel("text", monkeypatch)  # what the pipeline's notebooks run with
    assert [o["output_type"] for o in text] == ["stream"]
    assert text[0]["text"].startswith("A: 100%") and "3/3" in text[0]["text"]
    live = _run_in_kernel("1", monkeypatch)  # JupyterLab: the widget, then the same line
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in live)
    lines = [o["text"] for o in live if o["output_type"] == "stream" and o["name"] == "stdout"]
    assert len(lines) == 1 and lines[0].startswith("A: 100%") and "3/3" in lines[0]
