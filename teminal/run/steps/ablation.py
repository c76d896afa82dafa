"""04_ablations: train (or reuse) and evaluate the planned rows (SPEC §5; rows: ``teminal.ablation``).

Each row runs in a child MLflow run of the notebook's run, tagged ``teminal.ablation_row`` (its
name) and ``teminal.kind`` (``ablation-row``, ``pretrained`` or ``probe``), with the row's
effective parameters (``teminal.run.logged``). A stage-B row trains once per training seed (a
child run ``seed <n>``); its checkpoint folder is ``Row.folder``, and a finished checkpoint with
the same key (``teminal.run.keys.stage_b``, e.g. 02_stage_b's T-AB) is reused. The pretrained
and probe rows do not depend on the seed: their evaluations are read back when 03_zste made them.
"""
from __future__ import annotations

import mlflow
import pandas as pd

from ... import tracking
from ...ablation import Row, comparisons
from .. import keys, logged
from ..session import Session
from .evaluate import Evaluation, evaluate_ref, evaluate_trained, probe
from .seeds import for_seeds
from .stages import stage_b


def _trained_row(S: Session, row: Row, seed: int) -> tuple[str, str, Evaluation]:
    """One seed of a stage-B row: (``trained`` / ``reused``, checkpoint tag, evaluation)."""
    trained = stage_b(S, row.params, seed=seed, own_run=True, role=row.folder, label=row.name)
    ev = evaluate_trained(S, trained, nested=False, tags={keys.KIND_TAG: row.kind.value})
    status = "reused" if trained.reused else "trained"
    print(f"{status:>8}  {row.name}  ({trained.tag})")
    return status, trained.tag, ev


def _untrained_row(S: Session, row: Row) -> Evaluation:
    """The pretrained baseline's or the probe's evaluation."""
    if row.kind is keys.Kind.PROBE:
        return probe(S, nested=False)
    return evaluate_ref(S, "pretrained", nested=False)


def ablation_rows(S: Session, rows: list[Row]) -> pd.DataFrame:
    """Train (or reuse) and evaluate every row (module docstring). One line per row — ``row``,
    ``kind``, ``status``, ``tag``, ``evaluation`` (its first seed's), ``seeds`` — what
    ``teminal.ablation.table`` / ``values`` / ``summary`` read. The rows' comparisons
    (``teminal.ablation.comparisons``) are logged as ``comparisons.json``."""
    out = []
    mlflow.log_text(pd.DataFrame([c.__dict__ for c in comparisons(rows)])
                    .to_json(orient="records", indent=1), "comparisons.json")
    for row in rows:
        tags = {"teminal.ablation_row": row.name, keys.KIND_TAG: row.kind.value}
        with tracking.run(run_name=row.name, parent_run_id=S.run_id, tags=tags):
            tracking.log_params(logged.for_stage(S.config, row.params))
            if row.params is not None:
                done = for_seeds(S, lambda seed: _trained_row(S, row, seed), tags=tags)
                status, tag, ev = done.base
                seeds = len(done.seeds)
            else:
                ev = _untrained_row(S, row)
                status, tag, seeds = ("reused" if ev.reused else "ran"), ev.tag, 1
                print(f"{status:>8}  {row.name}  ({tag})")
        out.append({"row": row.name, "kind": row.kind, "status": status, "tag": tag,
                    "evaluation": ev, "seeds": seeds})
    return pd.DataFrame(out)
