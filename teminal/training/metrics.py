"""Training metrics to MLflow, batched: one ``log_batch`` per epoch instead of a call per
value, all on one axis — the number of optimizer steps done (SPEC §3)."""
from __future__ import annotations

import time

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


class MetricBatch:
    """Metrics collected in memory and sent with one ``MlflowClient.log_batch`` per flush;
    nothing is logged (or kept) when no MLflow run is active."""

    def __init__(self, *, prefix: str) -> None:
        self.prefix, self.pending = prefix, []  # e.g. "pretrain/"; Metrics not yet sent
        self.run = mlflow.active_run()

    def add(self, name: str, value: float, step: int) -> None:
        if self.run is not None:
            self.pending.append(Metric(key=self.prefix + name, value=float(value),
                                       timestamp=int(time.time() * 1000), step=int(step)))

    def add_steps(self, losses: list[float], lrs: list[float], *, first_step: int) -> None:
        """``train/loss`` and ``train/lr`` of consecutive optimizer steps, the first being
        ``first_step`` (a step's value is logged at the number of steps done after it)."""
        for k, (value, lr) in enumerate(zip(losses, lrs)):
            self.add("train/loss", value, first_step + k)
            self.add("train/lr", lr, first_step + k)

    def flush(self) -> None:
        if self.run is not None and self.pending:
            MlflowClient().log_batch(self.run.info.run_id, metrics=self.pending)
        self.pending = []

    def log_artifact(self, path, *, artifact_path: str) -> None:
        """``path`` to the active run (if any)."""
        if self.run is not None:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)
