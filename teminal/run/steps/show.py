"""What the evaluation notebooks show and log: ZSTE tables (cells by :mod:`teminal.eval.tables`),
the probe's AUCs, the views the widgets read (SPEC §4)."""
from __future__ import annotations

import mlflow
import pandas as pd

from teminal import tracking
from teminal.eval import evaluate as lib
from teminal.eval import tables, zste
from teminal.eval.probe import auc_table
from teminal.eval.tasks import ALL_TASKS
from teminal.viz.views import BatchView, PairView
from ..session import Session
from .data import load_data
from .evaluate import Evaluation
from .models import feature_bank, trunk_cache
from .stages import Trained, build_task


def zste_table(results: dict[str, Evaluation]) -> pd.DataFrame:
    """03_zste's Table 3 layout of the held-out pairs: every evaluation of ``results`` (the
    probe's too) with the chance column and the paper's columns (SPEC §5)."""
    return tables.zste_table({k: r.tables["zste"] for k, r in results.items()},
                             paper=zste.PAPER_TABLE3)


def probe_auc_table(ev: Evaluation) -> pd.DataFrame:
    """The probe's AUC per statistic (rows) × task and split (columns): 0.5 = no information."""
    if ev.aucs is None or ev.aucs.empty:
        raise ValueError(f"{ev.label}: no per-statistic AUCs (not a probe evaluation)")
    return auc_table(ev.aucs).round(3)


def last_model(results: dict[str, Evaluation]) -> Evaluation:
    """The last evaluated model (not the probe)."""
    return [ev for ev in results.values() if ev.model is not None][-1]


def set_comparison(results: dict[str, Evaluation]) -> pd.DataFrame:
    """Tasks × (model, set): held-out pairs vs seen combinations vs held-out phrasings."""
    cols = {}
    names = {"zste": "held-out pairs", "zste_seen": "seen", "zste_heldout": "held-out phrasing"}
    for label, ev in results.items():
        for name, title in names.items():
            if name in ev.tables:
                cols[f"{label}: {title}"] = tables.cells(ev.tables[name])
    order = [t for t in ALL_TASKS if any(t in c.index for c in cols.values())]
    return pd.DataFrame(cols).reindex(order).fillna("")


def phrasing_comparison(results: dict[str, Evaluation]) -> pd.DataFrame:
    """(task, family, word order, template) × model: the mean score (%) under each held-out and
    each training phrasing (issue 23: a model that learned before/after reads both word orders)."""
    index = ["task", "family", "order", "template"]
    cols = {label: lib.with_family(ev.phrasings).set_index(index)["value"].round(tables.DIGITS)
            for label, ev in results.items() if ev.phrasings is not None and not ev.phrasings.empty}
    return pd.DataFrame(cols)


def pair_view(S: Session, ev: Evaluation) -> PairView:
    """The explorer's view of the held-out pairs for an evaluated model."""
    data = load_data(S)
    rows, _ = lib.eval_rows(data.manifests, "test")
    return PairView(backbone=ev.model, bank=feature_bank(S, ev.model),
                    cache=trunk_cache(S, ev.model), rows=rows, device=S.device)


def batch_view(S: Session, trained: Trained, *, batch_size: int = 8) -> BatchView:
    """The explorer's view of a trained stage's validation (or training) batches."""
    task = build_task(S, trained)
    split = "val" if task.n_val >= 2 else "train"
    return BatchView(task=task, split=split, batch_size=min(batch_size, max(2, task.n_val)))


def history_table(trained: Trained) -> pd.DataFrame:
    """The per-epoch losses of a stage, rounded for display."""
    return pd.DataFrame(trained.history).round(3).tail(5)


def log_table(df: pd.DataFrame, name: str) -> None:
    tracking.log_dataframe(df.reset_index() if df.index.name else df, f"{name}.json")


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)
