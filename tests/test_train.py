"""The stage runner: sanity gate, checkpoints, exact resume, parameter groups, MLflow metrics."""
import math

import mlflow
import pytest
import torch
from fit_configs import fit_config
from mlflow.tracking import MlflowClient
from torch import nn

from teminal import determinism, losses, tracking
from teminal.gates import SanityError
from teminal.training.config import lr_lambda, make_optimizer, param_groups
from teminal.training.fit import TIMED, fit, train_step
from teminal.training.precision import Precision, bf16_native


class LinearTask:
    """A contrastive task on fixed random features through a trainable linear head; training
    batches get noise from the task's own generator (like replay or augmentation)."""

    def __init__(self, model, n_train=48, n_val=16, dim=8, seed=0, fail_at_call=None):
        g = torch.Generator().manual_seed(seed)
        self.model, self.n_train, self.n_val = model, n_train, n_val
        self.x = {"train": torch.randn(n_train, dim, generator=g), "val": torch.randn(n_val, dim, generator=g)}
        self.y = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in self.x.items()}
        self.noise = torch.Generator().manual_seed(seed + 1)
        self.calls, self.fail_at_call = 0, fail_at_call

    def generators(self):
        return [self.noise]

    def loss(self, rows, *, split):
        x = self.x[split][rows]
        if split == "train":
            self.calls += 1
            if self.calls == self.fail_at_call:
                raise KeyboardInterrupt("interrupted")
            x = x + 0.05 * torch.randn(x.shape, generator=self.noise)
        return losses.info_nce(self.model(x), self.y[split][rows], 10.0)


class Head(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            self.lin = nn.Linear(8, 8)
            self.out = nn.Linear(8, 8)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.out(self.drop(self.lin(x)))

    def head_state_dict(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_head_state_dict(self, state):
        self.load_state_dict(state)


@pytest.fixture()
def store(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    yield tmp_path
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _fit(out, epochs, store=None, *, model=None, task=None, **config):
    model = model or Head()
    task = task or LinearTask(model)
    config = fit_config(**{"epochs": epochs, "schedule": "constant", **config})
    kw = dict(task=task, model=model, params=list(model.parameters()), config=config,
              out_dir=out, device=torch.device("cpu"), progress=False)
    if store is None:
        return model, fit(**kw)
    with tracking.run(run_name="t", tracking_uri=f"sqlite:///{store}/mlflow.db"):
        return model, fit(**kw)


def test_validation_loss_falls_and_checkpoints_written(store):
    model, result = _fit(store / "ck", 6, store)
    vals = [h["val_loss"] for h in result.history]
    assert vals[-1] < vals[0]
    assert (store / "ck" / "best.pt").exists() and (store / "ck" / "last.pt").exists()
    assert result.best_val == pytest.approx(min(vals))
    best = torch.load(store / "ck" / "best.pt", weights_only=False)
    assert best["epoch"] == 1 + vals.index(min(vals)) and set(best) >= {"head", "val_loss"}
    assert "optimizer" not in best  # heads only
    assert result.steps == 6 * 3 and result.steps_per_epoch == 3
    assert set(result.timings) == set(TIMED) and min(result.timings.values()) >= 0


def test_training_split_smaller_than_a_batch_is_refused(tmp_path):
    model = Head()
    with pytest.raises(SanityError, match=r"'train' has 12 rows.*batch_size=16.*lower batch_size to ≤ 12"):
        _fit(tmp_path / "ck", 2, model=model, task=LinearTask(model, n_train=12))
    assert not (tmp_path / "ck").exists()  # nothing written
    with pytest.raises(SanityError, match="batch_size=1"):
        _fit(tmp_path / "ck", 2, batch_size=1)
    with pytest.raises(SanityError, match="more data"):
        _fit(tmp_path / "ck", 2, model=model, task=LinearTask(model, n_train=1), batch_size=2)


def test_last_partial_batch_is_dropped(store):
    model = Head()
    _, result = _fit(store / "ck", 2, model=model, task=LinearTask(model, n_train=47))
    assert result.steps_per_epoch == 2 and result.steps == 4  # 47 // 16
    assert [h["step"] for h in result.history] == [2, 4]


def test_resume_after_interruption_is_exact(tmp_path):
    """A 4-epoch run with dropout, a task generator and a cosine schedule, interrupted in
    epoch 3 and resumed, ends with the weights of the uninterrupted run."""
    cfg = dict(schedule="cosine", warmup_steps=2, checkpoint_every_s=0)

    def run(out, fail_at_call=None):
        torch.manual_seed(0)  # dropout draws from the global generator
        model = Head(dropout=0.3)
        return _fit(out, 4, model=model, task=LinearTask(model, fail_at_call=fail_at_call), **cfg)

    full, _ = run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "part", fail_at_call=2 * 3 + 2)  # 3 steps per epoch: inside epoch 3
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=False)["epoch"] == 2
    torch.manual_seed(123)  # whatever the global state now, resume restores the saved one
    model = Head(dropout=0.3)
    resumed, result = _fit(tmp_path / "part", 4, model=model, task=LinearTask(model), **cfg)
    assert result.resumed_from == 2 and result.steps == 2 * 3
    for a, b in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_last_checkpoint_waits_for_checkpoint_every_s(tmp_path):
    model = Head()
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "ck", 4, model=model, task=LinearTask(model, fail_at_call=2 * 3 + 2),
             checkpoint_every_s=1e9)
    assert not (tmp_path / "ck" / "last.pt").exists()  # only written after the last epoch
    assert (tmp_path / "ck" / "best.pt").exists()  # val improved
    _, result = _fit(tmp_path / "ck", 4, checkpoint_every_s=1e9)
    assert result.resumed_from == 0 and (tmp_path / "ck" / "last.pt").exists()


def test_checkpoint_every_s_does_not_change_the_fingerprint(tmp_path):
    _fit(tmp_path / "ck", 2, checkpoint_every_s=0)
    _, result = _fit(tmp_path / "ck", 2, checkpoint_every_s=60)
    assert result.resumed_from == 2 and result.steps == 0


def test_finished_folder_is_reused_not_retrained(store):
    _fit(store / "ck", 2, store)
    before = (store / "ck" / "last.pt").stat().st_mtime_ns
    _, result = _fit(store / "ck", 2, store)
    assert result.resumed_from == 2 and result.steps == 0
    assert (store / "ck" / "last.pt").stat().st_mtime_ns == before


def test_other_configuration_never_overwrites(store):
    _fit(store / "ck", 2, store)
    with pytest.raises(FileExistsError, match="another configuration"):
        _fit(store / "ck", 3, store)


def test_parameter_groups_get_their_own_learning_rates(tmp_path):
    model = Head()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    groups = [{"params": list(model.lin.parameters())},  # TrainConfig.lr
              {"params": list(model.out.parameters()), "lr": 0.0}]  # frozen by its own lr
    config = fit_config(schedule="cosine", warmup_steps=3)
    fit(task=LinearTask(model), model=model, params=groups, config=config,
              out_dir=tmp_path / "ck", device=torch.device("cpu"), progress=False)
    assert not torch.equal(model.lin.weight, start["lin.weight"])
    assert torch.equal(model.out.weight, start["out.weight"])
    saved = torch.load(tmp_path / "ck" / "last.pt", weights_only=False)["optimizer"]["param_groups"]
    factor = lr_lambda(config, total_steps=6)(6)
    assert [g["lr"] for g in saved] == pytest.approx([0.05 * factor, 0.0])

    model = Head()
    scaled = [{"params": list(model.lin.parameters()), "lr": 0.1},
              {"params": list(model.out.parameters()), "lr": 0.01}]
    optimizer = make_optimizer(scaled, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, 6))
    for _ in range(4):
        optimizer.step()
        schedule.step()
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs[0] == pytest.approx(10 * lrs[1]) and lrs[1] > 0  # the schedule scales both


def test_bad_params_are_named():
    model = Head()
    with pytest.raises(ValueError, match="mixes"):
        param_groups([{"params": list(model.lin.parameters())}, model.out.weight])
    with pytest.raises(ValueError, match="empty"):
        param_groups([])
    with pytest.raises(ValueError, match="group 0"):
        param_groups([{"lr": 0.1}])


def test_metrics_logged_in_one_batch_per_epoch(store, monkeypatch):
    batches = []
    real = MlflowClient.log_batch

    def counting(self, run_id, metrics=(), **kw):
        batches.append(list(metrics))
        return real(self, run_id, metrics=metrics, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", counting)
    model = Head()
    config = fit_config()
    with tracking.run(run_name="m", tracking_uri=f"sqlite:///{store}/mlflow.db") as active:
        fit(task=LinearTask(model), model=model, params=list(model.parameters()),
            config=config, out_dir=store / "m", device=torch.device("cpu"),
            metric_prefix="pretrain/", progress=False)
    assert len(batches) == 2  # one per epoch
    client = MlflowClient()
    run_id = active.info.run_id

    def steps(name):
        return [m.step for m in client.get_metric_history(run_id, name)]

    assert steps("pretrain/train/loss") == list(range(1, 7))  # one axis: optimizer steps done
    assert steps("pretrain/train/lr") == list(range(1, 7))
    assert steps("pretrain/train/epoch_loss") == [3, 6] and steps("pretrain/val/loss") == [3, 6]
    assert "train/loss" not in client.get_run(run_id).data.metrics
    artifacts = {a.path for a in client.list_artifacts(run_id, "checkpoints/m")}
    assert artifacts == {"checkpoints/m/best.pt"}


def test_no_active_run_logs_nothing(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    assert mlflow.active_run() is None
    _, result = _fit(tmp_path / "ck", 2)
    assert mlflow.active_run() is None  # fit did not start one
    assert len(result.history) == 2
    experiment = MlflowClient().get_experiment_by_name("Default")
    runs = [] if experiment is None else MlflowClient().search_runs([experiment.experiment_id])
    assert runs == []


def test_exception_ends_run_failed(store):
    with pytest.raises(RuntimeError):
        with tracking.run(run_name="boom", tracking_uri=f"sqlite:///{store}/mlflow.db") as active:
            run_id = active.info.run_id
            raise RuntimeError("boom")
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FAILED"


@pytest.mark.parametrize("field,value", [("epochs", 0), ("lr", 0.0), ("optimizer", "sgd"),
                                         ("schedule", "step"), ("checkpoint_every_s", -1.0)])
def test_bad_config_is_named(field, value):
    with pytest.raises(ValueError, match=field):
        fit_config(**{field: value})


def test_cosine_schedule_ends_at_zero():
    f = lr_lambda(fit_config(schedule="cosine", warmup_steps=2), total_steps=10)
    assert f(0) == pytest.approx(0.5) and f(2) == pytest.approx(1.0) and math.isclose(f(10), 0.0, abs_tol=1e-9)


def test_train_step_is_the_step_fit_takes(tmp_path):
    """A plain loop of ``train_step`` (what the benchmarks time) on fit's shuffles ends with
    fit's weights, bit for bit: fit has no step of its own."""
    cfg = dict(epochs=2, batch_size=16, lr=0.05, schedule="constant", grad_clip=0.05, bf16=True)
    trained, _ = _fit(tmp_path / "ck", **cfg)
    model = Head()
    task, params = LinearTask(model), list(model.parameters())
    config = fit_config(**cfg)
    optimizer = make_optimizer(params, config)
    precision = Precision.of(bf16=config.bf16, device=torch.device("cpu"))
    shuffle = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    for _ in range(config.epochs):
        model.train()
        for rows in torch.randperm(task.n_train, generator=shuffle).view(3, 16):  # (S, B)
            train_step(lambda: task.loss(rows, split="train"), optimizer=optimizer,
                       params=params, grad_clip=config.grad_clip, precision=precision)
    for a, b in zip(trained.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = Head()
    train_step(lambda: LinearTask(other).loss(torch.arange(16), split="train"),
               optimizer=make_optimizer(list(other.parameters()), config),
               params=list(other.parameters()), grad_clip=config.grad_clip, precision=precision)
    assert not torch.equal(other.lin.weight, Head().lin.weight)  # a step moves the weights


def test_precision_autocasts_only_where_bf16_is_native():
    cpu, x = torch.device("cpu"), torch.randn(4, 4)
    assert not Precision.of(bf16=False, device=cpu).bf16
    assert Precision.of(bf16=True, device=cpu).bf16 == bf16_native(cpu)
    if determinism.active():
        assert not bf16_native(cpu)  # the deterministic mode keeps fp32
    with Precision(device_type="cpu", bf16=True).autocast():
        assert (x @ x).dtype == torch.bfloat16
    with Precision(device_type="cpu", bf16=False).autocast():
        assert (x @ x).dtype == torch.float32


def test_training_imports_only_downward():
    """teminal/training/ reads models, losses, data, features and the cache (and small
    helpers), never a notebook session (teminal.run) or evaluation."""
    import ast
    from pathlib import Path

    import teminal.training

    allowed = {"training", "models", "losses", "data", "features", "cache", "gates", "integrity",
               "tracking", "progress", "determinism", "audio"}
    found = {}
    for path in Path(teminal.training.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:  # relative: teminal.<first>
                first = "training" if node.level == 1 else (node.module or "").split(".")[0]
                names = [first] if first else [a.name for a in node.names]
                found.update({name: path.name for name in names})
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                found.update({m.split(".")[1]: path.name for m in mods
                              if m and m.startswith("teminal.")})
    assert {"models", "losses", "features", "training"} <= set(found)  # the walk sees imports
    assert set(found) <= allowed, {k: v for k, v in found.items() if k not in allowed}
