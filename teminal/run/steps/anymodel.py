"""05_evaluate_model: any audio–language model on the same items of a run (SPEC §2, §4).

Each model of ``evaluate.models`` — a row of this run (``pretrained``, ``A``, ``B``,
``order-head``: trained here if the run has not, reused otherwise) or an adapter spec
(``teminal.eval.specs``) — is scored by :func:`teminal.eval.suite.evaluate_any` on the run's
held-out pairs, seen combinations, held-out phrasings and 3C triples, and logged to its own
nested MLflow run (tag ``teminal.model``; metrics ``zste/<task>``, ``zste_seen/<task>``,
``zste_heldout/<task>``, ``zero_shot/<split>/top1``, ``retrieval/…``, ``compa/…``; tables as
``tables/<set>.json``). The report card is logged on the notebook's run.
"""
from __future__ import annotations

import mlflow

from ... import retrieval, tracking
from ...eval.adapters.backbone import BackboneModel
from ...eval.card import card_figure, card_markdown
from ...eval.compa import read_compa_order
from ...eval.specs import RUN_ROWS, load_model
from ...eval.suite import EvalData, EvalOptions, ModelReport, eval_data, evaluate_any, with_triples
from .. import configs
from ..params import StageBParams
from ..session import Session
from .data import load_data
from .models import PRETRAINED, pretrained_model
from .stages import stage_a, stage_b


def run_items(S: Session) -> EvalData:
    """The run's evaluation items (+ 3C triples when ``evaluate.triples`` > 0)."""
    data, p = load_data(S), S.config.evaluate
    items = eval_data(base=data.base, manifests=data.manifests, recipe_at=data.recipe)
    if p.triples == 0:
        return items
    return with_triples(items, template=p.triple_template, max_triples=p.triples)


def options(S: Session) -> EvalOptions:
    """Scoring options, with the captioned set and CompA-order read when configured."""
    p = S.config.evaluate
    captioned = None
    if p.captioned != "none":
        reader = {"clotho": retrieval.read_clotho, "audiocaps": retrieval.read_audiocaps}[p.captioned]
        split = p.captioned_split or ("evaluation" if p.captioned == "clotho" else "test")
        captioned = reader(p.captioned_root, split)
    compa = read_compa_order(p.compa_csv, p.compa_audio_dir) if p.compa_csv else None
    return EvalOptions(n_boot=p.n_boot, seed=S.config.zste.zste_seed, seen=p.seen,
                       heldout=p.heldout, batch=p.batch, captioned=captioned, compa=compa)


def order_head_params(S: Session) -> StageBParams:
    """The ablation's order-aware row (``ablations.order_setting``, from stage A)."""
    a = S.config.ablations
    update = configs.with_setting(a.order_setting) | dict(
        start_from="A", loss="teminal", audio_head="order", optimizer_steps=a.order_steps,
        order_lr=a.order_lr)
    return StageBParams.model_validate(S.config.stage_b.model_dump() | update)


def model_for(S: Session, spec: str):
    """A run row (trained or reused) or an adapter spec → an evaluation model."""
    if spec not in RUN_ROWS:
        return load_model(spec)
    if spec == PRETRAINED:
        return BackboneModel(pretrained_model(S), name=PRETRAINED)
    trained = {"A": lambda: stage_a(S), "B": lambda: stage_b(S),
               "order-head": lambda: stage_b(S, order_head_params(S))}[spec]()
    return BackboneModel(trained.model, name=trained.label)


def _log(report: ModelReport, spec: str) -> None:
    with tracking.run(run_name=f"evaluate: {report.name}"):  # nested under the notebook's run
        mlflow.log_metrics(report.metrics())
        for name, table in report.tables.items():
            mlflow.log_text(table.to_json(orient="records", indent=1), f"tables/{name}.json")
        mlflow.log_text(report.zero_shot.to_json(orient="records", indent=1),
                        "tables/zero_shot.json")
        mlflow.set_tags({"teminal.model": report.name, "teminal.adapter": spec,
                         "teminal.input_rule": str(report.rule)[:5000]})


def evaluate_all(S: Session) -> dict[str, ModelReport]:
    """Every model of ``evaluate.models`` on the same items, each logged (module doc)."""
    items, opts = run_items(S), options(S)
    reports = {}
    for spec in S.config.evaluate.models:
        model = model_for(S, spec)
        with S.phase("evaluation"):
            report = evaluate_any(model, items, opts)
        if report.name in reports:
            raise ValueError(f"evaluate.models: two models are named {report.name!r}; give one "
                             f"a label (e.g. '{spec},label=<name>')")
        _log(report, spec)
        reports[report.name] = report
    return reports


def report_card(S: Session, reports: dict[str, ModelReport]) -> str:
    """The card's markdown and figure, logged as ``report_card.md`` / ``report_card.png``."""
    text = card_markdown(reports, title=f"Report card · {S.layout.root.name}")
    mlflow.log_text(text, "report_card.md")
    S.show(card_figure(reports), "report_card.png")
    return text
