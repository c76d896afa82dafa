"""Embedded pretraining as a library function: trains the audio CNN, renders per batch,
resumes, refuses a training split smaller than a batch (SPEC §2, §6)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from fit_configs import pretrain_fit_config

from teminal.audio import Recipe, read_audio
from teminal.data.clips import compose_key
from teminal.gates import SanityError
from teminal.models.tiny import TinyClap, TinyConfig
from teminal.training.checkpoints import load_checkpoint_head
from teminal.training.pretrain import Augment, PretrainTask, pretrain_tiny

SR = 8000
PROMPT = "a recording of {x}"


class Render:
    """``render(key)`` of single clips with the real operators; counts calls."""

    def __init__(self, root) -> None:
        self.root, self.recipe, self.calls = root, Recipe(sample_rate=SR), 0

    def __call__(self, key: str) -> np.ndarray:
        self.calls += 1
        read = lambda name: read_audio(self.root / "audio" / name, sample_rate=SR)  # noqa: E731
        return compose_key(key, read, self.recipe)


@pytest.fixture(scope="module")
def base_model() -> TinyClap:
    config = TinyConfig(sample_rate=SR, channels=(8, 16, 32, 64), audio_hidden=64, embed_dim=32)
    return TinyClap(config=config)


@pytest.fixture()
def model(base_model) -> TinyClap:
    return copy.deepcopy(base_model)


@pytest.fixture(scope="module")
def singles(esc50_like) -> pd.DataFrame:
    meta = pd.read_csv(esc50_like / "meta" / "esc50.csv")
    split = meta.fold.map({1: "train", 2: "train", 3: "train", 4: "val", 5: "test"})
    return pd.DataFrame({"clip": meta.filename, "target": meta.target, "split": split})


@pytest.fixture(scope="module")
def class_names(esc50_like) -> list[str]:
    meta = pd.read_csv(esc50_like / "meta" / "esc50.csv").drop_duplicates("target").sort_values("target")
    return list(meta.category.str.replace("_", " "))


def pretrain(model, singles, class_names, render, out_dir, keep="best", **config):
    config = pretrain_fit_config(**{"epochs": 2, "batch_size": 8, "lr": 1e-3, **config})
    return pretrain_tiny(model=model, singles=singles, render=render, class_names=class_names,
                         class_prompt=PROMPT, config=config, keep=keep, out_dir=out_dir,
                         device=torch.device("cpu"), fingerprint_extra={"data": "esc50-like"},
                         progress=False)


def test_pretraining_trains_the_cnn_and_freezes_it_again(model, singles, class_names, esc50_like, tmp_path):
    start = {k: v.clone() for k, v in model.state_dict().items()}
    render = Render(esc50_like)
    result = pretrain(model, singles, class_names, render, tmp_path / "pre")
    assert [h["epoch"] for h in result.history] == [1, 2] and result.steps == 2 * (24 // 8)
    assert all(np.isfinite(h["val_loss"]) for h in result.history)  # fold 4 is the val split
    # every batch rendered when drawn: 3 training batches of 8 and the 8 val clips, per epoch
    assert render.calls == 2 * (3 * 8 + 8)
    assert not torch.equal(model.blocks[0].conv1.weight, start["blocks.0.conv1.weight"])
    assert not model._pretraining and not model.blocks[0].conv1.weight.requires_grad
    best = load_checkpoint_head(tmp_path / "pre" / "best.pt")
    for name, value in best.items():
        torch.testing.assert_close(model.state_dict()[name], value)  # best.pt loaded


def test_a_finished_folder_is_reused(model, base_model, singles, class_names, esc50_like, tmp_path):
    first = pretrain(model, singles, class_names, Render(esc50_like), tmp_path / "pre")
    again, render = copy.deepcopy(base_model), Render(esc50_like)
    result = pretrain(again, singles, class_names, render, tmp_path / "pre")
    assert result.resumed_from == 2 and result.steps == 0 and render.calls == 0
    assert result.history == first.history
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(FileExistsError, match="another configuration"):
        pretrain_tiny(model=again, singles=singles, render=render, class_names=class_names,
                      class_prompt="the sound of {x}", keep="best", config=pretrain_fit_config(
                          epochs=2, batch_size=8, lr=1e-3),
                      out_dir=tmp_path / "pre", device=torch.device("cpu"),
                      fingerprint_extra={"data": "esc50-like"}, progress=False)


def test_keep_chooses_the_checkpoint_left_in_the_model(model, base_model, singles, class_names,
                                                       esc50_like, tmp_path):
    """pretrain.keep: "best" loads best.pt (lowest val loss), "last" the last step's last.pt (a
    small folder's val loss can be lowest after step 1 while its top-1 still rises)."""
    from teminal.integrity import load_torch, save_torch

    pretrain(model, singles, class_names, Render(esc50_like), tmp_path / "pre")
    best = load_torch(tmp_path / "pre" / "best.pt", weights_only=False)
    best["head"] = {k: v + 1 if v.is_floating_point() else v for k, v in best["head"].items()}
    save_torch(best, tmp_path / "pre" / "best.pt")  # now surely unlike last.pt
    for keep in ("best", "last"):
        again = copy.deepcopy(base_model)
        pretrain(again, singles, class_names, Render(esc50_like), tmp_path / "pre", keep=keep)
        kept = load_checkpoint_head(tmp_path / "pre" / f"{keep}.pt")
        for name, value in kept.items():
            torch.testing.assert_close(again.state_dict()[name], value, msg=f"{keep}: {name}")
    with pytest.raises(ValueError, match="keep must be one of"):
        pretrain(copy.deepcopy(base_model), singles, class_names, Render(esc50_like),
                 tmp_path / "pre", keep="median")


def test_training_singles_fewer_than_a_batch_are_refused(model, singles, class_names, esc50_like, tmp_path):
    with pytest.raises(SanityError, match=r"'train' has 24 rows.*batch_size=32"):
        pretrain(model, singles, class_names, Render(esc50_like), tmp_path / "pre", batch_size=32)
    assert not model._pretraining  # left frozen even on failure


def test_bad_targets_are_named(model, singles, class_names, esc50_like, tmp_path):
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        pretrain(model, singles, class_names[:3], Render(esc50_like), tmp_path / "pre")


def test_task_renders_only_the_batch(model, singles, class_names, esc50_like):
    render = Render(esc50_like)
    train_part = singles[singles.split == "train"]
    task = PretrainTask(model=model, clips={"train": list(train_part["clip"]), "val": []},
                        targets={"train": torch.tensor(train_part.target.to_numpy())},
                        render=render, class_text=model.text_trunk([PROMPT.format(x=c) for c in class_names]),
                        augment=Augment(), device=torch.device("cpu"), seed=0)
    assert render.calls == 0 and task.n_train == 24 and task.n_val == 0
    loss = task.loss(torch.tensor([3, 0, 7, 11]), split="train")
    assert render.calls == 4 and torch.isfinite(loss)
    waves = task.waves(torch.tensor([5]), split="train")
    expected = render("single|" + train_part["clip"].iloc[5])
    np.testing.assert_array_equal(waves[0].numpy(), expected)
