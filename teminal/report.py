"""``python -m teminal report runs/<run>``: the Results tables of a run, from its MLflow records
(read by :mod:`teminal.report_collect`; every cell formatted by :mod:`teminal.eval.tables`).

Per figure (SPEC §4 "Intervals", :mod:`teminal.eval.seed_stats`): the across-seed mean, a 95 %
interval covering seed and evaluation sampling, and with several seeds the seed range, in bold
with ⚠ when the seeds disagree (range wider than the evaluation margin of error). Then paired
differences for the main comparisons (same items, same seeds; bold when the interval excludes 0)
and seen vs held-out combinations (different items: an independent difference). A run logged
before per-item scores were stored shows its tables' own intervals.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from teminal.eval import seed_stats, tables
from teminal.eval.probe import auc_table as probe_auc_table
from teminal.eval.tables import markdown
from teminal.eval.tasks import ALL_TASKS
from teminal.eval.zste import PAPER_TABLE3
from teminal.report_collect import SETS, Evaluated, collect
from teminal.run.keys import Kind


@dataclass(frozen=True)
class Aggregator:
    """Turns an ``Evaluated`` into cells: seed-aware figures from the items when stored."""

    n_boot: int
    seed: int

    def figure(self, ev: Evaluated, set_name: str, task: str) -> seed_stats.Figure:
        items = [ev.items[s] for s in ev.tables]
        return seed_stats.figure(items, set_name, task, n_boot=self.n_boot, seed=self.seed)

    def column(self, ev: Evaluated, set_name: str) -> pd.Series:
        """task → cell of ``ev`` on ``set_name``."""
        first = next(iter(ev.tables.values())).get(set_name)
        if first is None:
            return pd.Series(dtype=object)
        if not ev.seeded:
            return tables.cells(first, missing="–")
        return pd.Series({t: tables.figure_cell(self.figure(ev, set_name, t))
                          for t in first["task"]})


def _chance(evs: dict[str, Evaluated], set_name: str) -> pd.Series:
    for ev in evs.values():
        t = next(iter(ev.tables.values())).get(set_name)
        if t is not None:
            return tables.chance_cells(t)
    return pd.Series(dtype=object)


def seeds_note(ev: Evaluated) -> str:
    seeds = [s for s in ev.tables if s is not None]
    return "not trained" if not seeds else f"{len(seeds)} seed{'s' * (len(seeds) > 1)}"


def stopped_note(found: dict) -> str:
    """Why a run has no (or not every) table: its status, where it stopped, and each stopped
    notebook with its reason (the MLflow tag ``teminal.failed_reason``, else its run status)."""
    status = found.get("status") or "unknown"
    where = f", stopped at {found['stopped_at']}" if found.get("stopped_at") else ""
    if found["zste"] or found["ablations"]:
        lines = [f"**Run status: {status}{where}.** Not every notebook finished:"]
    else:
        lines = [f"**Run status: {status}.** There are no results.",
                 f"No results: the run's status is {status}{where}, and no notebook of it "
                 "logged ZSTE tables (03_zste / 04_ablations). Continue it with `resume` or see "
                 "its executed notebooks."]
    lines += [f"- `{nb}` stopped: {why}" for nb, why in found["stopped"].items()]
    return "\n".join(lines)


def _task_order(tasks) -> list[str]:
    """ZSTE's tasks in ``ALL_TASKS`` order, then any other (e.g. a probe's own task) as found."""
    tasks = list(tasks)
    return [t for t in ALL_TASKS if t in tasks] + [t for t in tasks if t not in ALL_TASKS]


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    return df.reindex(_task_order(df.index))


def zste_tables(found: dict, agg: Aggregator, several: bool) -> list[str]:
    """ZSTE per set (Table 3 layout with the paper's columns) and the probe."""
    parts = []
    models = {k: v for k, v in found["zste"].items() if v.kind is not Kind.PROBE}
    name = lambda k, v: f"{k} ({seeds_note(v)})" if several else k  # noqa: E731
    for set_name, title in SETS.items():
        cols = {name(k, v): agg.column(v, set_name) for k, v in models.items()}
        cols = {k: c for k, c in cols.items() if not c.empty}
        if not cols:
            continue
        df = pd.DataFrame({"chance": _chance(models, set_name), **cols})
        df = _ordered(df[df[list(cols)].notna().any(axis=1)])
        if set_name == "zste":
            df = df.join(tables.paper_columns(PAPER_TABLE3, df.index))
        df.index.name = "task"
        parts.append(f"### ZSTE — {title}\n\n" + markdown(df.fillna("")))
    for label, ev in found["zste"].items():
        if label in models:
            continue
        df = _ordered(pd.DataFrame({"chance": _chance({label: ev}, "zste"),
                                    label: agg.column(ev, "zste")}))
        df.index.name = "task"
        parts.append(f"### Level/duration probe (`{label}`)\n\n" + markdown(df.fillna("")))
        aucs = next(iter(ev.tables.values())).get("probe_auc")
        if aucs is not None:  # AUC of each statistic alone, per task and split
            df = probe_auc_table(aucs)
            parts.append(f"### Level/duration probe — AUC per statistic (`{label}`)\n\n"
                         + markdown(df.map(lambda v: tables.number(v, digits=3, missing=""))))
    return parts


def ablation_tables(found: dict, agg: Aggregator, several: bool) -> list[str]:
    """Table 2 layout on held-out pairs and phrasings; held-out templates one by one."""
    rows, parts = found["ablations"], []
    name = lambda k, v: f"{k} ({seeds_note(v)})" if several else k  # noqa: E731
    for set_name, title in (("zste", "Ablations (Table 2 layout, held-out pairs)"),
                            ("zste_heldout", "Ablations — held-out phrasings")):
        cols = {name(r, ev): agg.column(ev, set_name) for r, ev in rows.items()}
        cols = {r: c for r, c in cols.items() if not c.empty}
        if not cols:
            continue
        df = pd.DataFrame(cols)
        df = _ordered(df).T
        if set_name == "zste":
            df.loc["chance"] = _chance({r: e for r, e in rows.items()
                                        if e.kind is not Kind.PROBE}, "zste")
        df.index.name = "setting"
        parts.append(f"### {title}\n\n" + markdown(df.fillna("")))
    by = {name(r, ev): _templates(ev) for r, ev in rows.items()}
    by = {r: t for r, t in by.items() if t is not None}
    if by:
        held = {r: t[t.family == "held-out"].groupby(["task", "template"])["value"].mean()
                for r, t in by.items()}
        df = pd.DataFrame(held).T.map(lambda v: tables.number(v, missing=""))
        df.columns = [f"{task}: `{tpl}`" for task, tpl in df.columns]
        df.index.name = "setting"
        parts.append("### Ablations — held-out phrasings, template by template\n\n"
                     + markdown(df.fillna("")))
        parts.append(order_templates(by))
    return parts


def _templates(ev: Evaluated) -> pd.DataFrame | None:
    """Every seed's per-template table (``family``, ``order`` filled for older runs), or None."""
    from teminal.eval.evaluate import with_family

    found = [with_family(t["phrasings"]) for t in ev.tables.values() if "phrasings" in t]
    return pd.concat(found, ignore_index=True) if found else None


ORDER_TEMPLATE_TASKS = ("3A-o", "3A-c", "3A-a", "5A")


def order_templates(by: dict[str, pd.DataFrame]) -> str:
    """Issue 23: every order task (3A-o, 3A-c, 3A-a, 5A) per row, phrasing family, word order
    (``direct``: the first event named first; ``mirror``: named second) and template, on the
    held-out pairs; the mean over seeds, with the lowest seed after ``≥`` when seeds differ."""
    out = []
    for row, t in by.items():
        t = t[t.task.isin(ORDER_TEMPLATE_TASKS)]
        per_seed = t.groupby(["family", "order", "template", "task"], sort=False)["value"]
        mean, low, n = per_seed.mean(), per_seed.min(), per_seed.size()
        cells = {k: tables.number(mean[k]) + (f" (≥ {tables.number(low[k])})" if n[k] > 1 else "")
                 for k in mean.index}
        for (family, order, template), group in pd.Series(cells).groupby(level=[0, 1, 2],
                                                                         sort=False):
            line = {"setting": row, "phrasing": family, "word order": order or "—",
                    "template": f"`{template}`"}
            line |= {task: group.get((family, order, template, task), "")
                     for task in ORDER_TEMPLATE_TASKS}
            out.append(line)
    df = pd.DataFrame(out).set_index("setting")
    df = df.sort_values(["phrasing", "word order"], kind="stable", key=lambda c: c.map(
        {"held-out": 0, "trained": 1, "direct": 0, "mirror": 1, "—": 2}))
    df = df.loc[list(by)]  # rows in ablation order, held-out phrasings first
    return ("### Order tasks — template by template (held-out pairs)\n\n"
            + markdown(df.fillna("")))


def differences(found: dict, agg: Aggregator) -> str | None:
    """Paired differences of the main comparisons on held-out pairs, and seen − held-out."""
    lines: dict[str, dict[str, str]] = {}
    zs = found["zste"]
    by_ref = {ev.ref: (label, ev) for label, ev in zs.items() if ev.ref}
    pairs = []
    if "B" in by_ref and "pretrained" in by_ref:
        pairs.append((by_ref["B"], by_ref["pretrained"]))
    abl = found["ablations"]
    pairs += [((c["a"], abl[c["a"]]), (c["b"], abl[c["b"]])) for c in found["comparisons"]
              if c["a"] in abl and c["b"] in abl]
    for (na, a), (nb, b) in pairs:
        if not (a.seeded and b.seeded):
            continue
        tasks = next(iter(a.tables.values()))["zste"]["task"]
        lines[f"{na} − {nb}"] = {t: tables.difference_cell(seed_stats.paired(
            a.items, b.items, "zste", t, n_boot=agg.n_boot, seed=agg.seed)) for t in tasks}
    if "B" in by_ref and by_ref["B"][1].seeded:
        label, ev = by_ref["B"]
        first = next(iter(ev.tables.values()))
        if "zste_seen" in first:
            lines[f"{label}: seen − held-out combinations"] = {
                t: tables.difference_cell(seed_stats.independent_difference(
                    agg.figure(ev, "zste_seen", t).interval, agg.figure(ev, "zste", t).interval))
                for t in first["zste_seen"]["task"]}
    if not lines:
        return None
    df = pd.DataFrame(lines).T
    df = df[_task_order(df.columns)]
    df.index.name = "difference (points)"
    return ("### Paired differences (held-out pairs)\n\n"
            "Percentage points, 95 % interval over seeds and items; the same items and seeds "
            "on both sides (the pretrained model, trained by no seed, pairs with every seed). "
            "Bold: the interval excludes 0. Seen − held-out compares different items: the "
            "difference of the two figures with independent errors (MOVER).\n\n"
            + markdown(df.fillna("")))


def report(run_dir: str | Path) -> str:
    """Markdown: ZSTE (Table 3 layout) per set, the probe, the ablation tables (Table 2) and
    the paired differences, every figure over the run's training seeds."""
    found = collect(run_dir)
    config = found["config"]
    seeds = list(config.training_seeds)
    several = len(seeds) > 1
    agg = Aggregator(n_boot=config.zste.n_boot, seed=config.zste.zste_seed)
    parts = [f"Results of run `{found['run']}` (MLflow parent run `{found['parent']}`), "
             f"{len(seeds)} training seed{'s' * several} {seeds}: % as the mean over seeds with a "
             "95 % interval covering seed and evaluation sampling (a bootstrap over classes, "
             "each with its clips and pairs; SPEC §4 \"Intervals\")"
             + ("; `· seeds a–b` is the seed range, **bold ⚠** where the seeds disagree "
                "(their range is wider than the evaluation margin of error)." if several
                else ".")]
    if found["stopped"] or not (found["zste"] or found["ablations"]):
        parts.append(stopped_note(found))
    parts += zste_tables(found, agg, several)
    parts += ablation_tables(found, agg, several)
    diff = differences(found, agg)
    if diff:
        parts.append(diff)
    return "\n\n".join(parts) + "\n"

