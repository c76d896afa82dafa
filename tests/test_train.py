"""The stage runner: training, checkpoints, resume, refusal to overwrite, MLflow metrics."""
import math

import mlflow
import pytest
import torch
from torch import nn

from teminal import losses, tracking, train


class LinearTask:
    """A contrastive task on fixed random features through a trainable linear head."""

    def __init__(self, model, n_train=48, n_val=16, dim=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.model, self.n_train, self.n_val = model, n_train, n_val
        self.x = {"train": torch.randn(n_train, dim, generator=g), "val": torch.randn(n_val, dim, generator=g)}
        self.y = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in self.x.items()}

    def loss(self, rows, *, split):
        return losses.info_nce(self.model(self.x[split][rows]), self.y[split][rows], 10.0)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(x)

    def head_state_dict(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_head_state_dict(self, state):
        self.load_state_dict(state)


@pytest.fixture()
def store(tmp_path):
    tracking.setup(f"sqlite:///{tmp_path}/mlflow.db")
    yield tmp_path


def _fit(out, epochs, store, seed=0):
    model = Head()
    task = LinearTask(model)
    config = train.TrainConfig(epochs=epochs, batch_size=16, lr=0.05, seed=seed, schedule="constant")
    with tracking.run(run_name="t", tracking_uri=f"sqlite:///{store}/mlflow.db"):
        result = train.fit(task=task, model=model, params=list(model.parameters()), config=config,
                           out_dir=out, device=torch.device("cpu"), progress=False)
    return model, result


def test_validation_loss_falls_and_checkpoints_written(store):
    model, result = _fit(store / "ck", 6, store)
    vals = [h["val_loss"] for h in result.history]
    assert vals[-1] < vals[0]
    assert (store / "ck" / "best.pt").exists() and (store / "ck" / "last.pt").exists()
    assert result.best_val == pytest.approx(min(vals))


def test_resume_after_interruption_matches_uninterrupted_run(store):
    full, _ = _fit(store / "full", 4, store)
    # Emulate a 4-epoch run interrupted after epoch 2: its folder holds the state of a
    # 2-epoch run under the 4-epoch run's fingerprint.
    _fit(store / "part", 4, store)
    state = torch.load(store / "part" / "last.pt", weights_only=False)
    two, _ = _fit(store / "two", 2, store)
    state2 = torch.load(store / "two" / "last.pt", weights_only=False)
    state2["fingerprint"] = state["fingerprint"]  # as if the 4-epoch run had stopped after epoch 2
    torch.save(state2, store / "part" / "last.pt")
    resumed, result = _fit(store / "part", 4, store)
    assert result.resumed_from == 2
    for a, b in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)


def test_finished_folder_is_reused_not_retrained(store):
    _fit(store / "ck", 2, store)
    before = (store / "ck" / "last.pt").stat().st_mtime_ns
    _, result = _fit(store / "ck", 2, store)
    assert result.resumed_from == 2
    assert (store / "ck" / "last.pt").stat().st_mtime_ns == before


def test_other_configuration_never_overwrites(store):
    _fit(store / "ck", 2, store)
    with pytest.raises(FileExistsError, match="another configuration"):
        _fit(store / "ck", 3, store)


def test_exception_ends_run_failed(store):
    with pytest.raises(RuntimeError):
        with tracking.run(run_name="boom", tracking_uri=f"sqlite:///{store}/mlflow.db") as active:
            run_id = active.info.run_id
            raise RuntimeError("boom")
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FAILED"


def test_metrics_logged_with_steps(store):
    model = Head()
    task = LinearTask(model)
    config = train.TrainConfig(epochs=2, batch_size=16, lr=0.05)
    with tracking.run(run_name="m", tracking_uri=f"sqlite:///{store}/mlflow.db") as active:
        train.fit(task=task, model=model, params=list(model.parameters()), config=config,
                  out_dir=store / "m", device=torch.device("cpu"), progress=False)
    client = mlflow.MlflowClient()
    steps = [m.step for m in client.get_metric_history(active.info.run_id, "train/loss")]
    assert steps == list(range(6))
    assert len(client.get_metric_history(active.info.run_id, "val/loss")) == 2


@pytest.mark.parametrize("field,value", [("epochs", 0), ("lr", 0.0), ("optimizer", "sgd"), ("schedule", "step")])
def test_bad_config_is_named(field, value):
    with pytest.raises(ValueError, match=field):
        train.TrainConfig(**{field: value})


def test_cosine_schedule_ends_at_zero():
    f = train.lr_lambda(train.TrainConfig(schedule="cosine", warmup_steps=2), total_steps=10)
    assert f(0) == pytest.approx(0.5) and f(2) == pytest.approx(1.0) and math.isclose(f(10), 0.0, abs_tol=1e-9)
