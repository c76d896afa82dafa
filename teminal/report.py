"""``python -m teminal report runs/<run>``: the Results tables of a run, from its MLflow records.

Everything is read from MLflow — the pipeline's parent run, the evaluation runs nested under
``03_zste`` (tag ``teminal.model``) and the row runs of ``04_ablations`` — so the README's
numbers always come from a named run. Each evaluation run holds ``tables/<set>.json`` (one row
per ZSTE task: value, chance, 95 % interval, items, clusters) for the sets ``zste`` (held-out
class pairs and clips), ``zste_seen`` (seen class combinations) and ``zste_heldout`` (held-out
phrasings).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import tracking
from .zste import PAPER_TABLE3

SETS = {"zste": "held-out pairs", "zste_seen": "seen combinations",
        "zste_heldout": "held-out phrasings"}


def _children(client, run_id: str) -> list:
    exp = client.get_run(run_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=1000)


def _tables(client, run_id: str) -> dict[str, pd.DataFrame]:
    out = {}
    for name in (*SETS, "phrasings", "probe_auc"):
        try:
            path = client.download_artifacts(run_id, f"tables/{name}.json")
        except Exception:  # noqa: BLE001 — a set the run did not evaluate
            continue
        out[name] = pd.DataFrame(json.loads(Path(path).read_text()))
    return out


def cell(row) -> str:
    if row.ci_low != row.ci_low:  # NaN: no interval
        return f"{row.value:.1f}"
    return f"{row.value:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]"


def wide(models: dict[str, pd.DataFrame], *, chance: bool = True) -> pd.DataFrame:
    """Tasks × models, ``value [low, high]``, with a chance column."""
    first = next(iter(models.values())).set_index("task")
    out = pd.DataFrame(index=first.index)
    if chance:
        out["chance"] = first["chance"].map(lambda v: f"{v:.1f}")
    for name, t in models.items():
        out[name] = t.set_index("task").apply(cell, axis=1)
    return out.fillna("")


def markdown(df: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def collect(run_dir: str | Path) -> dict:
    """The evaluation runs of a pipeline run: ``{"zste": {label: tables}, "ablations":
    {row: tables}, "run": name, "parent": id}``."""
    import os

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
           "ablations": {}}
    for child in _children(client, record["parent_run_id"]):
        notebook = child.data.tags.get("teminal.notebook")
        if notebook == "03_zste":
            for run in _children(client, child.info.run_id):
                label = run.data.tags.get("teminal.model")
                if label:
                    out["zste"][label] = _tables(client, run.info.run_id)
        elif notebook == "04_ablations":
            for run in _children(client, child.info.run_id):
                row = run.data.tags.get("teminal.ablation_row")
                if row:
                    out["ablations"][row] = _tables(client, run.info.run_id)
    return out


def report(run_dir: str | Path) -> str:
    """Markdown: ZSTE (Table 3 layout) per set, the probe, the ablation table (Table 2)."""
    found = collect(run_dir)
    parts = [f"Results of run `{found['run']}` (MLflow parent run `{found['parent']}`); "
             "% with a 95 % interval (bootstrap over unordered class pairs; Task 1 over clips)."]
    models = {k: v for k, v in found["zste"].items() if not k.startswith("probe")}
    for set_name, title in SETS.items():
        tables = {m: t[set_name] for m, t in models.items() if set_name in t}
        if not tables:
            continue
        df = wide(tables)
        if set_name == "zste":
            paper = PAPER_TABLE3.set_index("task")
            for col in paper.columns:
                df[f"paper: {col.removeprefix('paper_')}"] = paper[col].reindex(df.index) \
                    .map(lambda v: "" if v != v else f"{v:g}")
        df.index.name = "task"
        parts.append(f"### ZSTE — {title}\n\n" + markdown(df.fillna("")))
    probes = {k: v["zste"] for k, v in found["zste"].items() if k.startswith("probe") and "zste" in v}
    for label, t in probes.items():
        df = wide({label: t})
        df.index.name = "task"
        parts.append(f"### Level/duration probe (`{label}`)\n\n" + markdown(df))
        aucs = found["zste"][label].get("probe_auc")
        if aucs is not None:  # AUC of each statistic alone, per task and split
            df = aucs.pivot_table(index="feature", columns=["task", "split"], values="auc")
            df.columns = [f"{task} {split}" for task, split in df.columns]
            df.index.name = "statistic"
            parts.append(f"### Level/duration probe — AUC per statistic (`{label}`)\n\n"
                         + markdown(df.map(lambda v: f"{v:.3f}")))
    if found["ablations"]:
        rows = {r: t["zste"] for r, t in found["ablations"].items() if "zste" in t}
        df = pd.DataFrame({r: t.set_index("task").apply(cell, axis=1) for r, t in rows.items()}).T
        chance = next((t for r, t in rows.items() if not r.startswith("probe")), None)
        if chance is not None:
            df.loc["chance"] = chance.set_index("task")["chance"].map(lambda v: f"{v:.1f}")
        df.index.name = "setting"
        parts.append("### Ablations (Table 2 layout, held-out pairs)\n\n" + markdown(df.fillna("")))
        held = {r: t["zste_heldout"] for r, t in found["ablations"].items() if "zste_heldout" in t}
        if held:
            df = pd.DataFrame({r: t.set_index("task").apply(cell, axis=1)
                               for r, t in held.items()}).T
            df.index.name = "setting"
            parts.append("### Ablations — held-out phrasings\n\n" + markdown(df.fillna("")))
        by = {r: t["phrasings"].set_index(["task", "template"])["value"]
              for r, t in found["ablations"].items() if "phrasings" in t}
        if by:
            df = pd.DataFrame(by).T.map(lambda v: f"{v:.1f}")
            df.columns = [f"{task}: `{tpl}`" for task, tpl in df.columns]
            df.index.name = "setting"
            parts.append("### Ablations — held-out phrasings, template by template\n\n"
                         + markdown(df.fillna("")))
    return "\n\n".join(parts) + "\n"
