"""Progress bars as a saved notebook shows them: TEMINAL_PROGRESS=text prints each bar's final
state once, as a plain line; 0 prints nothing."""
import torch

from teminal import progress, train


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
    train.fit(task=LinearTask(model), model=model, params=list(model.parameters()),
              config=train.TrainConfig(epochs=2, batch_size=16, lr=0.05), out_dir=tmp_path / "a",
              device=torch.device("cpu"), label="A")
    train.fit(task=LinearTask(model), model=model, params=list(model.parameters()),
              config=train.TrainConfig(epochs=2, batch_size=16, lr=0.05), out_dir=tmp_path / "p",
              device=torch.device("cpu"), metric_prefix="pretrain/")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["A", "pretrain"], lines
    assert all("100%" in line and "2/2" in line for line in lines)
