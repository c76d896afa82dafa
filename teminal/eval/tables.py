"""Tables and interval cells: where every ZSTE figure a reader sees becomes text (SPEC §4
"Intervals", §5).

``python -m teminal report`` (and so the README's Results, checked against it), the notebooks'
tables (03_zste through ``teminal.run.steps``, 04_ablations through ``teminal.ablation``), the
report card of 05_evaluate_model (``teminal.eval.card``) and the figures (``teminal.viz.plots``)
format their cells here and nowhere else:

- :func:`interval_cell` — ``value [low, high]``: a figure and its 95 % interval (percent, one
  decimal); the value alone when it has no interval; ``missing`` when there is no value;
- :func:`figure_cell` — the same over training seeds: with several seeds
  `` · seeds min–max`` (the range of the per-seed means), in bold with ``⚠`` when the seeds
  disagree (``teminal.eval.seed_stats.Figure.disagree``);
- :func:`difference_cell` — ``+d [low, high]``, in bold when the interval excludes 0;
- :func:`number` — a bare figure (chance levels, template means, a signed difference),
  ``missing`` when absent; numeric tables round to ``DIGITS``;
- :func:`zste_table` — the paper's Table 3 layout (tasks × chance, models, paper columns);
- :func:`markdown` — a pipe table (no tabulate dependency).

Imports nothing of ``teminal`` but the :class:`~teminal.eval.intervals.Interval` type: every
layer above may use it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from teminal.eval.intervals import Interval

ZSTE_COLUMNS = ("task", "value", "chance", "ci_low", "ci_high")
"""The columns of a ZSTE table (percent): what :func:`zste_table` and the plots read."""
DIGITS = 1  # decimals of every figure (percent)


def finite(v) -> float | None:
    """A finite float, or None for a missing / null / NaN / infinite value."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def number(v, *, digits: int = DIGITS, missing: str = "–", signed: bool = False) -> str:
    """One figure with ``digits`` decimals (with its sign, ``+3.0``, when ``signed``: a
    difference), ``missing`` when absent."""
    v = finite(v)
    if v is None:
        return missing
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def interval_cell(value, low, high, *, digits: int = DIGITS, missing: str = "") -> str:
    """``value [low, high]``; ``value`` without an interval (a bound missing); ``missing``
    without a value."""
    value, low, high = finite(value), finite(low), finite(high)
    if value is None:
        return missing
    if low is None or high is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def row_cell(row, *, digits: int = DIGITS, missing: str = "") -> str:
    """:func:`interval_cell` of a ZSTE table row (attributes ``value``, ``ci_low``,
    ``ci_high``; an absent one counts as missing)."""
    return interval_cell(*(getattr(row, k, None) for k in ("value", "ci_low", "ci_high")),
                         digits=digits, missing=missing)


def cells(table: pd.DataFrame, *, missing: str = "") -> pd.Series:
    """task → :func:`row_cell` of a ZSTE table (``task, value, ci_low, ci_high``)."""
    return pd.Series({r.task: row_cell(r, missing=missing) for r in table.itertuples()},
                     dtype=object)


def chance_cells(table: pd.DataFrame) -> pd.Series:
    """task → the chance level of a ZSTE table as :func:`number`."""
    return table.set_index("task")["chance"].map(number)


def figure_cell(fig) -> str:
    """A figure over training seeds (``fig.interval``: an :class:`Interval` in percent;
    ``fig.disagree``): ``mean [low, high]``, with several seeds `` · seeds min–max``, in bold
    with ``⚠`` when the seeds disagree."""
    iv: Interval = fig.interval
    text = interval_cell(iv.value, iv.low, iv.high)
    if iv.n_seeds <= 1:
        return text
    text += f" · seeds {iv.seed_min:.{DIGITS}f}–{iv.seed_max:.{DIGITS}f}"
    return f"**{text} ⚠**" if fig.disagree else text


def difference_cell(iv: Interval) -> str:
    """``+d [low, high]`` (signed), in bold when the interval excludes 0."""
    d = DIGITS
    text = f"{iv.value:+.{d}f} [{iv.low:+.{d}f}, {iv.high:+.{d}f}]"
    return f"**{text}**" if iv.low > 0 or iv.high < 0 else text


def paper_cell(v) -> str:
    """A figure of the paper's Table 3 as printed there (``%g``), ``""`` where it has none."""
    v = finite(v)
    return "" if v is None else f"{v:g}"


def zste_frame(table: object, model: str) -> pd.DataFrame:
    """The ZSTE table of ``table`` (a DataFrame or anything with ``.table``), checked."""
    df = getattr(table, "table", table)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"tables[{model!r}]: expected a DataFrame or a ZsteResult, "
                         f"got {type(df).__name__}")
    missing = [c for c in ZSTE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"tables[{model!r}]: missing ZSTE columns {missing} "
                         f"(need {list(ZSTE_COLUMNS)})")
    return df


def long_table(tables: Mapping[str, object]) -> pd.DataFrame:
    """All models' ZSTE tables stacked with a ``model`` column, tasks in first-seen order."""
    if not tables:
        raise ValueError("tables: expected at least one model's ZSTE table")
    frames = [zste_frame(t, str(m)).assign(model=str(m)) for m, t in tables.items()]
    return pd.concat(frames, ignore_index=True)


def zste_table(tables: Mapping[str, object], *, paper: pd.DataFrame | None = None,
               digits: int = DIGITS) -> pd.DataFrame:
    """Paper-Table-3 layout (SPEC §5): rows = tasks, columns = chance, models, paper columns.

    Args:
        tables: model name → ZSTE table or ``ZsteResult`` (percent).
        paper: optional reference figures with a ``task`` column (or task index) and one
            column per model, e.g. ``teminal.eval.zste.PAPER_TABLE3``; each becomes a column
            ``"paper: <name>"`` (a ``paper_`` prefix is dropped). Tasks the paper does not
            report are empty.
        digits: decimals of our figures.

    Returns:
        String DataFrame indexed by ``task`` (the tasks of ``tables``, first seen first):
        ``"chance"`` then one column per model with :func:`interval_cell` cells (empty where a
        model lacks the task), then the paper's columns. Differing chance levels are joined
        with ``" / "``.
    """
    long = long_table(tables)
    order = list(dict.fromkeys(long["task"]))
    out = pd.DataFrame(index=pd.Index(order, name="task"))
    chance = long.groupby("task", sort=False)["chance"].agg(lambda c: " / ".join(
        number(v, digits=digits) for v in dict.fromkeys(c.round(digits)) if np.isfinite(v)))
    out["chance"] = chance.reindex(order).fillna("")
    for model in map(str, tables):
        part = long[long["model"] == model].drop_duplicates("task").set_index("task")
        got = {t: row_cell(r, digits=digits) for t, r in part.iterrows()}
        out[model] = [got.get(t, "") for t in order]
    if paper is not None:
        out = out.join(paper_columns(paper, order))
    return out


def paper_columns(paper: pd.DataFrame, tasks) -> pd.DataFrame:
    """``"paper: <name>"`` columns of ``paper`` (a ``task`` column or task index; a
    ``paper_`` prefix dropped) on ``tasks``, as :func:`paper_cell`."""
    ref = paper.set_index("task") if "task" in paper.columns else paper
    return pd.DataFrame({f"paper: {str(c).removeprefix('paper_')}":
                         [paper_cell(v) for v in ref[c].reindex(list(tasks))]
                         for c in ref.columns}, index=pd.Index(list(tasks), name="task"))


def markdown(df: pd.DataFrame) -> str:
    """A pipe table of ``df``: its index (named by ``df.index.name``) then its columns."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)
