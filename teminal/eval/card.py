"""The report card: one page comparing models task by task (SPEC §4, §5).

Markdown: each model's input rule; the ZSTE table of the held-out pairs (Table 3 layout, cells
``value [95 % interval]``, the chance column and the paper's Table 3 columns, via
:func:`teminal.eval.tables.zste_table`: every cell of the card is formatted by
:mod:`teminal.eval.tables`); the order scores in both directions and 3C; seen combinations and
held-out phrasings (values only); zero-shot classification; retrieval and CompA-order (with
intervals) when measured. Figure: every task of the held-out
pairs per model with its interval and chance (:func:`teminal.viz.plots.zste_bars`).
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.figure import Figure

from teminal.eval import tables
from teminal.eval.tables import markdown
from teminal.eval.zste import PAPER_TABLE3
from teminal.viz import plots


def _md(df: pd.DataFrame, *, index: bool = True) -> str:
    if df.empty:
        return "_(none)_"
    return markdown(df if index else df.set_index(df.columns[0]))


def _values(reports: Mapping, name: str) -> pd.DataFrame:
    """task × model values (%) of set ``name``, with the chance column."""
    cols = {m: r.tables[name].set_index("task").value for m, r in reports.items()
            if name in r.tables}
    if not cols:
        return pd.DataFrame()
    first = next(r.tables[name] for r in reports.values() if name in r.tables)
    chance = first.set_index("task").chance.rename("chance")
    return pd.concat([chance, pd.DataFrame(cols)], axis=1).map(
        lambda v: tables.number(v, missing=""))


def card_markdown(reports: Mapping, *, title: str = "Report card") -> str:
    """One-page markdown of ``reports`` (model name → ``ModelReport``)."""
    rules = pd.DataFrame([{"model": m, "rate (Hz)": r.rule.sample_rate or "as given",
                           "window (s)": r.rule.window_seconds or "any length",
                           "longer clips": r.rule.longer, "shorter clips": r.rule.shorter}
                          for m, r in reports.items()], dtype=object)
    table = tables.zste_table({m: r.tables["zste"] for m, r in reports.items()}, paper=PAPER_TABLE3)
    zs = pd.DataFrame({m: r.zero_shot.set_index("split").top1 for m, r in reports.items()}) \
        .map(lambda v: tables.number(v, missing=""))
    parts = [f"# {title}", "",
             "Every model is scored on the same items (held-out class pairs and clips of one "
             "run). Percent; 95 % intervals resample classes (SPEC §4, `teminal.eval.intervals`); "
             "`paper:` columns are the paper's Table 3 (its models, its ESC-50 split: compare "
             "directions, not values).", "", "## Input rules", "", _md(rules, index=False), "",
             "## ZSTE, held-out pairs", "", _md(table), "",
             "3A-a: the caption picks its audio of the two orders (chance 50); 3A-text / "
             "3A-audio / 3A-group: CompA-order's Winoground scores on each unordered pair "
             "(25 / 25 / 16.7); 3C: three events, the six orders (16.7).", ""]
    for name, head in (("zste_seen", "Seen combinations"), ("zste_heldout", "Held-out phrasings")):
        vals = _values(reports, name)
        if not vals.empty:
            parts += [f"## {head}", "", _md(vals), ""]
    parts += ["## Zero-shot classification (top-1, %)", "", _md(zs), ""]
    ret = pd.DataFrame({m: {k: tables.number(100 * v) for k, v in r.retrieval.items()}
                        for m, r in reports.items() if r.retrieval})
    if not ret.empty:
        parts += ["## Retrieval (%)", "", _md(ret), ""]
    compa = {m: r.compa for m, r in reports.items() if r.compa is not None}
    if compa:
        parts += ["## CompA-order (%)", "", _md(tables.zste_table(compa)), ""]
    return "\n".join(parts)


def card_figure(reports: Mapping) -> Figure:
    """Every held-out-pairs task per model, with intervals and chance."""
    return plots.zste_bars({m: r.tables["zste"] for m, r in reports.items()},
                           title="ZSTE, held-out pairs: every model on the same items")
