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

from dataclasses import dataclass
from typing import Any

import mlflow

from teminal.eval import retrieval
from teminal import tracking
from ...ablation import order_head_params
from ...eval.adapters.backbone import BackboneModel
from ...eval.card import card_figure, card_markdown
from ...eval.compa import read_compa_order
from ...eval.specs import RUN_ROWS, load_model
from ...warn import warn
from ...eval.suite import EvalData, EvalOptions, ModelReport, eval_data, evaluate_any, with_triples
from .. import keys
from ..session import Session
from .data import load_data
from .models import PRETRAINED, inputs, pretrained_key, pretrained_model
from .stages import stage_a, stage_b


def run_items(S: Session) -> EvalData:
    """The run's evaluation items (+ 3C triples when ``evaluate.triples`` > 0: the triples
    03_zste scores too, drawn with ``zste.zste_seed``)."""
    data, p = load_data(S), S.config.evaluate
    items = eval_data(base=data.base, manifests=data.manifests, recipe_at=data.recipe)
    if p.triples == 0:
        return items
    return with_triples(items, template=p.triple_template, max_triples=p.triples,
                        seed=S.config.zste.zste_seed)


def options(S: Session) -> EvalOptions:
    """Scoring options, with the captioned set and CompA-order read when configured."""
    p = S.config.evaluate
    captioned = None
    if p.captioned != "none":
        reader = {"clotho": retrieval.read_clotho, "audiocaps": retrieval.read_audiocaps}[p.captioned]
        split = p.captioned_split or ("evaluation" if p.captioned == "clotho" else "test")
        captioned = reader(p.captioned_root, split, allow_missing=p.captioned_allow_missing)
        if captioned.missing:
            warn(f"evaluate.captioned_root={p.captioned_root}: {len(captioned.missing)} clips of "
                 f"its {split!r} CSV have no audio file; retrieval is scored without them "
                 f"(evaluate.captioned_allow_missing=true)")
    compa = read_compa_order(p.compa_csv, p.compa_audio_dir) if p.compa_csv else None
    return EvalOptions(n_boot=p.n_boot, seed=S.config.zste.zste_seed, seen=p.seen,
                       heldout=p.heldout, batch=p.batch, captioned=captioned, compa=compa)


@dataclass(frozen=True)
class Chosen:
    """A model of ``evaluate.models``: what it is and the key of its weights (a run row's
    ``teminal.run.keys`` key; ``""`` for an adapter spec, whose spec names it)."""

    model: Any  # an evaluation model (``teminal.eval.models``)
    kind: keys.Kind
    model_key: str


def model_for(S: Session, spec: str) -> Chosen:
    """A run row (trained or reused) or an adapter spec → an evaluation model."""
    if spec not in RUN_ROWS:
        return Chosen(load_model(spec), keys.Kind.EXTERNAL, "")
    if spec == PRETRAINED:
        return Chosen(BackboneModel(pretrained_model(S), name=PRETRAINED), keys.Kind.PRETRAINED,
                      pretrained_key(S))
    trained = {"A": lambda: stage_a(S), "B": lambda: stage_b(S),
               "order-head": lambda: stage_b(S, order_head_params(S.config))}[spec]()
    return Chosen(BackboneModel(trained.model, name=trained.label), trained.kind, trained.key)


def _log(report: ModelReport, spec: str, tags: dict[str, str]) -> None:
    with tracking.run(run_name=f"evaluate: {report.name}"):  # nested under the notebook's run
        mlflow.log_metrics(report.metrics())
        for name, table in report.tables.items():
            mlflow.log_text(table.to_json(orient="records", indent=1), f"tables/{name}.json")
        mlflow.log_text(report.zero_shot.to_json(orient="records", indent=1),
                        "tables/zero_shot.json")
        mlflow.set_tags({"teminal.model": report.name, "teminal.adapter": spec,
                         "teminal.input_rule": str(report.rule)[:5000]} | tags)


def evaluate_all(S: Session) -> dict[str, ModelReport]:
    """Every model of ``evaluate.models`` on the same items, each logged (module doc)."""
    items, opts = run_items(S), options(S)
    reports = {}
    for spec in S.config.evaluate.models:
        chosen = model_for(S, spec)
        with S.phase("evaluation"):
            report = evaluate_any(chosen.model, items, opts)
        if report.name in reports:
            raise ValueError(f"evaluate.models: two models are named {report.name!r}; give one "
                             f"a label (e.g. '{spec},label=<name>')")
        key = keys.external(S.config, spec=spec, model=chosen.model_key, inputs=inputs(S))
        _log(report, spec, {keys.KIND_TAG: chosen.kind.value, "teminal.key": key})
        reports[report.name] = report
    return reports


def report_card(S: Session, reports: dict[str, ModelReport]) -> str:
    """The card's markdown and figure, logged as ``report_card.md`` / ``report_card.png``."""
    text = card_markdown(reports, title=f"Report card · {S.layout.root.name}")
    mlflow.log_text(text, "report_card.md")
    S.show(card_figure(reports), "report_card.png")
    return text
