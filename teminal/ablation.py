"""The ablation grid: the paper's Table 2 α/β settings × {T-B, T-AB}, baselines, extra rows.

``plan`` turns the configuration into rows; ``run`` trains (or reuses) and evaluates each row
in-process, as a child MLflow run of the ablation notebook's run — no notebook per row. A row
whose stage-B inputs match a finished checkpoint of the run folder (e.g. the configured T-AB,
trained by 02_stage_b) reuses it, and an evaluation with the same inputs (e.g. 03_zste's
pretrained baseline) is read back, not recomputed. ``table`` / ``values`` / ``summary`` read
the rows' ZSTE tables back from the run folder.

With several training seeds (``-p seeds=5``) every trained row trains and evaluates once per
seed, each in a child run ``seed <n>`` of the row's run (tag ``teminal.seed``); the pretrained and
probe rows do not depend on the seed. The notebook's tables show the first seed; ``report``
aggregates the seeds. ``comparisons`` names the rows the report compares by paired differences
(T-AB vs T-B, the order-aware head vs the paper's head; T-AB vs pretrained is 03_zste's), chosen
from the rows' parameters and logged as ``comparisons.json``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import mlflow
import pandas as pd

from . import tracking
from .run import configs, logged
from .run.params import RunConfig, Setting, StageBParams
from .run.session import Session


@dataclass(frozen=True)
class Row:
    """One ablation row: its name in the table, and the stage-B parameters it trains (None for
    the pretrained baseline and the level/duration probe)."""

    name: str
    params: StageBParams | None = None
    probe: bool = False


def setting_label(setting: Setting) -> str:
    return "(" + ",".join(f"{v:g}" for v in setting) + ")"


def _variant(base: StageBParams, **update) -> StageBParams:
    """``base`` with ``update`` applied and validated."""
    return StageBParams.model_validate(base.model_dump() | update)


def plan(config: RunConfig) -> list[Row]:
    """The rows of ``config.ablations`` (SPEC §5 Table 2 grid) in a fixed order."""
    p, b = config.ablations, config.stage_b
    rows = [Row("pretrained")]
    for setting in p.grid:
        for start in p.starts:
            params = _variant(b, **configs.with_setting(setting), start_from=start,
                              loss="teminal", audio_head="pooled", order_lr=None)
            rows.append(Row(f"{'T-AB' if start == 'A' else 'T-B'} {setting_label(setting)}", params))
    if "tclap" in p.extra_rows:
        rows.append(Row("T-CLAP loss", _variant(b, loss="tclap", start_from="pretrained",
                                                audio_head="pooled", order_lr=None)))
    order = _variant(b, **configs.with_setting(p.order_setting), start_from="A",
                     loss="teminal", audio_head="order", optimizer_steps=p.order_steps,
                     order_lr=p.order_lr)
    if "order-head" in p.extra_rows:
        rows.append(Row(f"T-AB+order-head {setting_label(p.order_setting)}", order))
    if "order-head-other-captions" in p.extra_rows:  # does paraphrase training move 5A, …?
        other = "paper" if order.captions == "paraphrase" else "paraphrase"
        rows.append(Row(f"T-AB+order-head {setting_label(p.order_setting)} {other} captions",
                        _variant(order, captions=other)))
    if config.zste.probe:
        rows.append(Row("probe:level-duration", probe=True))
    return rows


def plan_table(rows: list[Row]) -> pd.DataFrame:
    """What each row trains, for display."""
    out = []
    for r in rows:
        p = r.params
        out.append({"row": r.name, "start": "" if p is None else p.start_from,
                    "loss": "" if p is None else p.loss,
                    "setting": "" if p is None else setting_label(configs.setting_of(p)),
                    "head": "" if p is None else p.audio_head,
                    "captions": "" if p is None else p.captions,
                    "optimizer_steps": "" if p is None else p.optimizer_steps})
    return pd.DataFrame(out)


@dataclass(frozen=True)
class Comparison:
    """A paired difference ``a − b`` the report prints (row names)."""

    name: str
    a: str
    b: str


def comparisons(rows: list[Row]) -> list[Comparison]:
    """The README's main comparisons among ``rows``, matched by their parameters: T-AB vs T-B
    (each setting with both starts) and the order-aware head vs the paper's head (same setting,
    start and captions). (T-AB vs the pretrained baseline is 03_zste's.)"""
    trained = [r for r in rows if r.params is not None]
    pooled = [r for r in trained if r.params.audio_head == "pooled" and r.params.loss == "teminal"]
    out = []
    for r in pooled:
        if r.params.start_from != "A":
            continue
        same = dict(setting=configs.setting_of(r.params), captions=r.params.captions)
        for t in pooled:
            if t.params.start_from == "pretrained" and _matches(t, **same):
                out.append(Comparison(f"{r.name} vs {t.name}", r.name, t.name))
        for o in trained:
            if o.params.audio_head == "order" and _matches(o, **same):
                out.append(Comparison(f"{o.name} vs {r.name}", o.name, r.name))
    return out


def _matches(row: Row, *, setting, captions) -> bool:
    return configs.setting_of(row.params) == setting and row.params.captions == captions


def _trained_row(S: Session, row: Row, seed: int):
    from .run import steps

    role = "abl-" + re.sub(r"[^0-9A-Za-z]+", "-", row.name).strip("-")
    trained = steps.stage_b(S, row.params, seed=seed, own_run=True, role=role, label=row.name)
    ev = steps.evaluate_trained(S, trained, nested=False)
    status = "reused" if trained.reused else "trained"
    print(f"{status:>8}  {row.name}  ({trained.tag})")
    return status, trained.tag, ev


def run(S: Session, rows: list[Row]) -> pd.DataFrame:
    """Train (or reuse) and evaluate every row, each in a child MLflow run of the notebook's
    (a trained row once per training seed), with the row's effective parameters
    (``teminal.run.logged``: α/β, start, head, captions, seed, …; reused or not), so the
    MLflow UI can filter and plot them. One line per row: its first seed's evaluation."""
    from .run import steps

    out = []
    mlflow.log_text(pd.DataFrame([c.__dict__ for c in comparisons(rows)])
                    .to_json(orient="records", indent=1), "comparisons.json")
    for row in rows:
        tags = {"teminal.ablation_row": row.name}
        with tracking.run(run_name=row.name, parent_run_id=S.run_id, tags=tags):
            tracking.log_params(logged.for_stage(S.config, row.params))
            if row.params is not None:
                done = steps.for_seeds(S, lambda seed: _trained_row(S, row, seed), tags=tags)
                status, tag, ev = done.base
                out.append({"row": row.name, "status": status, "tag": tag, "evaluation": ev,
                            "seeds": len(done.seeds)})
                continue
            ev = steps.probe(S, nested=False) if row.probe else \
                steps.evaluate_ref(S, "pretrained", nested=False)
            status, tag = ("reused" if ev.reused else "ran"), ev.tag
        print(f"{status:>8}  {row.name}  ({tag})")
        out.append({"row": row.name, "status": status, "tag": tag, "evaluation": ev, "seeds": 1})
    return pd.DataFrame(out)


def values(outcome: pd.DataFrame, *, set_name: str = "zste") -> pd.DataFrame:
    """Rows = settings, columns = ZSTE subtasks, values in %."""
    wide = {r.row: r.evaluation.tables[set_name].set_index("task")["value"]
            for r in outcome.itertuples() if set_name in r.evaluation.tables}
    return pd.DataFrame(wide).T


def table(outcome: pd.DataFrame, *, set_name: str = "zste") -> pd.DataFrame:
    """Table 2 layout: ``value [ci_low, ci_high]`` per cell, the chance level in the last row."""
    cells, chance = {}, {}
    for r in outcome.itertuples():
        t = r.evaluation.tables.get(set_name)
        if t is None:
            continue
        t = t.set_index("task")
        cells[r.row] = {task: f"{v.value:.1f} [{v.ci_low:.1f}, {v.ci_high:.1f}]"
                        for task, v in t.iterrows()}
        if not r.evaluation.label.startswith("probe"):
            chance = {task: f"{v:.1f}" for task, v in t["chance"].items()}
    df = pd.DataFrame(cells).T
    if chance:
        df.loc["chance"] = pd.Series(chance)
    df.index.name = "setting"
    return df.fillna("")


def phrasings(outcome: pd.DataFrame) -> pd.DataFrame:
    """Rows × (task, held-out template): the mean score (%) under each held-out phrasing."""
    cols = {r.row: r.evaluation.phrasings.set_index(["task", "template"])["value"].round(1)
            for r in outcome.itertuples()
            if r.evaluation.phrasings is not None and not r.evaluation.phrasings.empty}
    return pd.DataFrame(cols).T


def summary(outcome: pd.DataFrame) -> str:
    """The largest gain and loss per subtask against the pretrained baseline."""
    v = values(outcome).drop(index=[n for n in values(outcome).index if n.startswith("probe")])
    v = v.dropna(axis=1, how="all")  # tasks only the probe has (A-sd)
    if "pretrained" not in v.index or len(v) < 2:
        return "Not enough rows for a comparison with the pretrained baseline."
    base = v.loc["pretrained"]
    delta = v.drop(index="pretrained") - base
    lines = ["Largest changes against the pretrained baseline (percentage points):"]
    for task in delta.columns:
        best, worst = delta[task].idxmax(), delta[task].idxmin()
        lines.append(f"- {task}: best {best} {v.loc[best, task]:.1f} ({delta.loc[best, task]:+.1f}); "
                     f"worst {worst} {v.loc[worst, task]:.1f} ({delta.loc[worst, task]:+.1f}); "
                     f"baseline {base[task]:.1f}")
    overall = delta.mean(axis=1).sort_values(ascending=False)
    lines.append(f"Best row on average over subtasks: {overall.index[0]} ({overall.iloc[0]:+.1f} pp).")
    return "\n".join(lines)
