"""The ablation grid: the paper's Table 2 α/β settings × {T-B, T-AB}, baselines, extra rows.

``plan`` turns the configuration into typed rows (``Row.kind``: the pretrained baseline, a
stage-B ablation row, the probe); ``teminal.run.steps.ablation_rows`` trains (or reuses) and
evaluates each row in-process, as a child MLflow run of the ablation notebook's run — no
notebook per row. A row whose stage-B key (``teminal.run.keys``) matches a finished checkpoint
of the run folder (e.g. the configured T-AB, trained by 02_stage_b) reuses it, and an evaluation
with the same key (e.g. 03_zste's pretrained baseline) is read back, not recomputed. ``table`` /
``values`` / ``summary`` read the rows' ZSTE tables back from that outcome.

With several training seeds (``-p seeds=5``) every trained row trains and evaluates once per
seed, each in a child run ``seed <n>`` of the row's run (tag ``teminal.seed``); the pretrained and
probe rows do not depend on the seed. The notebook's tables show the first seed; ``report``
aggregates the seeds. ``comparisons`` names the rows the report compares by paired differences
(T-AB vs T-B, the order-aware head vs the paper's head; T-AB vs pretrained is 03_zste's), chosen
from the rows' parameters and logged as ``comparisons.json``.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .eval import tables
from .run import configs
from .run.keys import Kind, stage_role
from .run.params import RunConfig, Setting, StageBParams


@dataclass(frozen=True)
class Row:
    """One ablation row: its name in the table, what it is, and the stage-B parameters it trains
    (None for the pretrained baseline and the level/duration probe)."""

    name: str
    kind: Kind
    params: StageBParams | None = None

    @property
    def folder(self) -> str:
        """The checkpoint folder of a trained row, from its typed fields: ``abl-<stage>`` (with
        ``-order`` for the order-aware head), its α/β setting (TeminAL loss) and its caption
        family (and its mirror-worded share), e.g. ``abl-T-B-1-0-1-0-1-paraphrase`` (``free_tag``
        keeps two keys apart)."""
        p = self.params
        if p is None:
            raise ValueError(f"row {self.name!r} ({self.kind.value}) trains nothing")
        setting = ["-".join(f"{v:g}" for v in configs.setting_of(p))] if p.loss == "teminal" else []
        binding = [f"mirror{p.mirror_share:g}"] if p.mirror_share is not None else []
        return "-".join(["abl", stage_role(p), *setting, p.captions, *binding])


def setting_label(setting: Setting) -> str:
    return "(" + ",".join(f"{v:g}" for v in setting) + ")"


def _variant(base: StageBParams, **update) -> StageBParams:
    """``base`` with ``update`` applied and validated."""
    return StageBParams.model_validate(base.model_dump() | update)


def order_head_params(config: RunConfig) -> StageBParams:
    """The order-aware row's stage B (``ablations.order_setting``, from stage A): the
    ablation's ``T-AB+order-head`` row and 05_evaluate_model's ``order-head``."""
    a = config.ablations
    return _variant(config.stage_b, **configs.with_setting(a.order_setting),
                    start_from="A", loss="teminal", audio_head="order",
                    optimizer_steps=a.order_steps,
                    order_lr=a.order_lr)


def plan(config: RunConfig) -> list[Row]:
    """The rows of ``config.ablations`` (SPEC §5 Table 2 grid) in a fixed order."""
    p, b = config.ablations, config.stage_b
    rows = [Row("pretrained", Kind.PRETRAINED)]
    for setting in p.grid:
        for start in p.starts:
            params = _variant(b, **configs.with_setting(setting), start_from=start,
                              loss="teminal", audio_head="pooled", order_lr=None)
            rows.append(Row(f"{'T-AB' if start == 'A' else 'T-B'} {setting_label(setting)}",
                            Kind.ABLATION_ROW, params))
    if "tclap" in p.extra_rows:
        rows.append(Row("T-CLAP loss", Kind.ABLATION_ROW, _variant(
            b, loss="tclap", start_from="pretrained", audio_head="pooled", order_lr=None,
            mirror_share=None)))
    order = order_head_params(config)
    if "order-head" in p.extra_rows:
        rows.append(Row(f"T-AB+order-head {setting_label(p.order_setting)}", Kind.ABLATION_ROW,
                        order))
    if "order-head-other-captions" in p.extra_rows:  # does paraphrase training move 5A, …?
        other = "paper" if order.captions == "paraphrase" else "paraphrase"
        rows.append(Row(f"T-AB+order-head {setting_label(p.order_setting)} {other} captions",
                        Kind.ABLATION_ROW, _variant(order, captions=other)))
    if "order-head-binding" in p.extra_rows:  # issue 23: mirror-worded captions force binding
        rows.append(Row(f"T-AB+order-head {setting_label(p.order_setting)} binding",
                        Kind.ABLATION_ROW,
                        _variant(order, mirror_share=p.binding_share)))
    if config.zste.probe:
        rows.append(Row("probe:level-duration", Kind.PROBE))
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
    (each setting with both starts), the order-aware head vs the paper's head (same setting,
    start and captions) and the binding recipe (``mirror_share`` set) vs the order-aware row
    without it. (T-AB vs the pretrained baseline is 03_zste's.)"""
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
            if o.params.audio_head == "order" and _matches(o, **same) \
                    and o.params.mirror_share is None:
                out.append(Comparison(f"{o.name} vs {r.name}", o.name, r.name))
    order = [r for r in trained if r.params.audio_head == "order"]
    for o in order:  # issue 23: the binding recipe vs the same order-aware row without it
        for t in order:
            if o.params.mirror_share is not None and t.params.mirror_share is None \
                    and _matches(t, setting=configs.setting_of(o.params), captions=o.params.captions):
                out.append(Comparison(f"{o.name} vs {t.name}", o.name, t.name))
    return out


def _matches(row: Row, *, setting, captions) -> bool:
    return configs.setting_of(row.params) == setting and row.params.captions == captions


def values(outcome: pd.DataFrame, *, set_name: str = "zste") -> pd.DataFrame:
    """Rows = settings, columns = ZSTE subtasks, values in %."""
    wide = {r.row: r.evaluation.tables[set_name].set_index("task")["value"]
            for r in outcome.itertuples() if set_name in r.evaluation.tables}
    return pd.DataFrame(wide).T


def table(outcome: pd.DataFrame, *, set_name: str = "zste") -> pd.DataFrame:
    """Table 2 layout: ``value [ci_low, ci_high]`` per cell, the chance level in the last row."""
    cells, chance = {}, None
    for r in outcome.itertuples():
        t = r.evaluation.tables.get(set_name)
        if t is None:
            continue
        cells[r.row] = tables.cells(t)
        if r.kind is not Kind.PROBE:
            chance = tables.chance_cells(t)
    df = pd.DataFrame(cells).T
    if chance is not None:
        df.loc["chance"] = chance
    df.index.name = "setting"
    return df.fillna("")


def phrasings(outcome: pd.DataFrame) -> pd.DataFrame:
    """(task, family, word order, template) × rows: the mean score (%) under each held-out and
    each training phrasing (``teminal.eval.evaluate.phrasing_tables``; issue 23)."""
    from teminal.eval.evaluate import with_family

    index = ["task", "family", "order", "template"]
    cols = {r.row: with_family(r.evaluation.phrasings).set_index(index)["value"]
            .round(tables.DIGITS)
            for r in outcome.itertuples()
            if r.evaluation.phrasings is not None and not r.evaluation.phrasings.empty}
    return pd.DataFrame(cols)


def summary(outcome: pd.DataFrame) -> str:
    """The largest gain and loss per subtask against the pretrained baseline."""
    probes = [r.row for r in outcome.itertuples() if r.kind is Kind.PROBE]
    v = values(outcome).drop(index=probes)
    v = v.dropna(axis=1, how="all")  # tasks only the probe has (A-sd)
    if "pretrained" not in v.index or len(v) < 2:
        return "Not enough rows for a comparison with the pretrained baseline."
    base = v.loc["pretrained"]
    delta = v.drop(index="pretrained") - base
    lines = ["Largest changes against the pretrained baseline (percentage points):"]
    num, diff = tables.number, lambda x: tables.number(x, signed=True)  # noqa: E731
    for task in delta.columns:
        best, worst = delta[task].idxmax(), delta[task].idxmin()
        lines.append(f"- {task}: best {best} {num(v.loc[best, task])} "
                     f"({diff(delta.loc[best, task])}); worst {worst} {num(v.loc[worst, task])} "
                     f"({diff(delta.loc[worst, task])}); baseline {num(base[task])}")
    overall = delta.mean(axis=1).sort_values(ascending=False)
    lines.append(f"Best row on average over subtasks: {overall.index[0]} "
                 f"({diff(overall.iloc[0])} pp).")
    return "\n".join(lines)
