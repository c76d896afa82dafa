"""Read a pipeline run's evaluations back from MLflow: what ``python -m teminal report`` tabulates
(:mod:`teminal.report`); SPEC §4: each figure once per training seed, with its per-item
scores for the intervals.

Everything is read from MLflow — the pipeline's parent run, the evaluation runs under
``03_zste`` (tag ``teminal.model``, and ``teminal.ref``: pretrained / A / B) and the row runs of
``04_ablations`` (tag ``teminal.ablation_row``), each evaluation once per training seed (tag
``teminal.seed``; none for what no seed trains) — so the README's numbers always come from a
named run. Each evaluation run holds ``tables/<set>.json`` and its per-item scores
``items/*.items.parquet`` for the sets ``zste`` (held-out class pairs and clips), ``zste_seen``
(seen class combinations) and ``zste_heldout`` (held-out phrasings).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from teminal import tracking
from teminal.run.keys import KIND_TAG, SEED_TAG, Kind, record_kind

SETS = {"zste": "held-out pairs", "zste_seen": "seen combinations",
        "zste_heldout": "held-out phrasings"}


@dataclass
class Evaluated:
    """One model or ablation row: per training seed (None: not trained) its tables and items."""

    tables: dict = field(default_factory=dict)  # seed → {set: DataFrame}
    items: dict = field(default_factory=dict)  # seed → item table (absent in older runs)
    ref: str = ""  # 03_zste: pretrained / A / B
    kind: Kind = Kind.STAGE  # what was evaluated (tag ``teminal.kind``)

    @property
    def seeded(self) -> bool:
        return bool(self.items) and len(self.items) == len(self.tables)


def _children(client, run_id: str) -> list:
    exp = client.get_run(run_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=1000)


def _descendants(client, run_id: str) -> list:
    out = []
    for child in _children(client, run_id):
        out += [child, *_descendants(client, child.info.run_id)]
    return out


def _tables(client, run_id: str) -> dict[str, pd.DataFrame]:
    out = {}
    for name in (*SETS, "phrasings", "probe_auc"):
        try:
            path = client.download_artifacts(run_id, f"tables/{name}.json")
        except Exception:  # noqa: BLE001 — a set the run did not evaluate
            continue
        out[name] = pd.DataFrame(json.loads(Path(path).read_text()))
    return out


def _item_table(client, run_id: str) -> pd.DataFrame | None:
    found = [a.path for a in client.list_artifacts(run_id, "items") if a.path.endswith(".parquet")]
    return pd.read_parquet(client.download_artifacts(run_id, found[0])) if found else None


def _add(into: dict, name: str, client, run) -> None:
    """Add an evaluation run (one with ``zste/…`` metrics) under ``name`` and its seed."""
    if not any(m.startswith("zste/") for m in run.data.metrics):
        return
    seed = run.data.tags.get(SEED_TAG)
    seed = None if seed is None else int(seed)
    tags = run.data.tags
    ev = into.setdefault(name, Evaluated())
    ev.ref = ev.ref or tags.get("teminal.ref", "")
    ev.kind = record_kind(tags.get(KIND_TAG), ref=tags.get("teminal.ref", ""),
                          label=tags.get("teminal.model", ""))
    ev.tables[seed] = _tables(client, run.info.run_id)
    items = _item_table(client, run.info.run_id)
    if items is not None:
        ev.items[seed] = items


def collect(run_dir: str | Path) -> dict:
    """The evaluations of a pipeline run: ``{"zste": {label: Evaluated}, "ablations": {row:
    Evaluated}, "comparisons": [{name, a, b}], "run", "parent", "config"}``."""
    import mlflow

    from .run.layout import RunLayout

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    layout = RunLayout(Path(run_dir).expanduser().resolve())
    record = layout.read_record()
    if not record:
        raise FileNotFoundError(f"{layout.root} is not a pipeline run folder (no pipeline.json)")
    tracking.setup(record["tracking_uri"])
    client = mlflow.MlflowClient()
    out = {"run": layout.root.name, "parent": record["parent_run_id"], "zste": {},
           "ablations": {}, "comparisons": [], "config": layout.read_recorded_config(),
           "status": client.get_run(record["parent_run_id"]).info.status, "stopped": {},
           "stopped_at": record.get("stopped_at")}
    for child in _children(client, record["parent_run_id"]):
        notebook = child.data.tags.get("teminal.notebook")
        if child.info.status in ("FAILED", "KILLED"):
            out["stopped"][notebook] = child.data.tags.get("teminal.failed_reason", "") \
                or child.info.status
        if notebook == "03_zste":
            for run in _descendants(client, child.info.run_id):
                if run.data.tags.get("teminal.model"):
                    _add(out["zste"], run.data.tags["teminal.model"], client, run)
        elif notebook == "04_ablations":
            for run in _descendants(client, child.info.run_id):
                if run.data.tags.get("teminal.ablation_row"):
                    _add(out["ablations"], run.data.tags["teminal.ablation_row"], client, run)
            try:
                path = client.download_artifacts(child.info.run_id, "comparisons.json")
                out["comparisons"] = json.loads(Path(path).read_text())
            except Exception:  # noqa: BLE001 — a run from before the comparisons were logged
                pass
    return out
