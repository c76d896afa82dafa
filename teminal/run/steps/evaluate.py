"""Evaluation steps: ZSTE on the run's evaluation sets, zero-shot accuracy, the probe (SPEC §4).

An evaluation is identified by its key (``teminal.run.keys.evaluation``: the model's key, the
data and the ZSTE fields that change a table) and carries its ``kind``; its
tables are written to ``evaluations/<tag>.json`` of the run folder and its per-item scores to
``evaluations/<tag>.items.parquet`` (``seed_stats.item_table``), so an ablation row that
asks again for the same model (the pretrained baseline, the configured T-AB) reads them back.
Every evaluation is logged to an MLflow run tagged ``teminal.model`` (a nested run
``zste: <label>``, or the active run of an ablation row): metrics ``zste/<task>``,
``zste_seen/<task>``, ``zste_heldout/<task>``, the tables as ``tables/<set>.json`` and the
per-item scores as ``items/<tag>.items.parquet`` (what ``report`` aggregates over seeds). A
trained model is evaluated once per training seed (``seeds.for_seeds``); the pretrained model
and the probe do not depend on the seed and are evaluated once.

A model with non-finite weights, or a table with a non-finite value, stops the run naming the
model (SPEC §6); an evaluation file whose checksum does not match is a ``TeminalWarning`` naming
it and is computed again (``teminal.integrity``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import torch

from teminal.eval import evaluate as lib
from teminal import gates, tracking
from teminal.data.clips import ClipStore
from teminal.eval import seed_stats
from ...integrity import IntegrityError
from ...models.base import Backbone
from ...warn import warn
from .. import keys, logged
from ..layout import read_json, write_json
from ..session import Session
from .data import load_data
from .models import PRETRAINED, feature_bank, inputs, pretrained_key, pretrained_model, trunk_cache
from .seeds import SEED_TAG, for_seeds
from .stages import Trained, stage_a, stage_b

PROBE = "probe:level-duration"


@dataclass
class Evaluation:
    """ZSTE tables of one model by set (``zste``, ``zste_seen``, ``zste_heldout``), its
    zero-shot table, and — when computed in this notebook — the per-item tables and model."""

    label: str
    tag: str
    key: str
    kind: keys.Kind  # what was evaluated: the pretrained model, a stage, the probe
    tables: dict[str, pd.DataFrame]
    zero_shot: pd.DataFrame | None = None
    phrasings: pd.DataFrame | None = None  # order tasks template by template (held-out, trained)
    aucs: pd.DataFrame | None = None  # the probe: AUC per task, split and statistic
    items: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    model: Backbone | None = None
    reused: bool = False
    seed: int | None = None  # the training seed (None: the result does not depend on one)
    item_scores: pd.DataFrame | None = None  # compact per-item scores (seed_stats.item_table)


def _record(ev: Evaluation) -> dict:
    return {"label": ev.label, "tag": ev.tag, "key": ev.key, "kind": ev.kind.value,
            "seed": ev.seed,
            "tables": {k: t.to_dict(orient="records") for k, t in ev.tables.items()},
            "zero_shot": None if ev.zero_shot is None else ev.zero_shot.to_dict(orient="records"),
            "phrasings": None if ev.phrasings is None else ev.phrasings.to_dict(orient="records"),
            "aucs": None if ev.aucs is None else ev.aucs.to_dict(orient="records")}


def _items_path(S: Session, tag: str) -> Path:
    """``evaluations/<tag>.items.parquet``: the per-item scores beside the tables."""
    return S.layout.evaluation(tag).with_suffix(".items.parquet")


def _write(S: Session, ev: Evaluation) -> None:
    """The tables (JSON) and the per-item scores (parquet, written before the JSON record that
    makes the evaluation reusable)."""
    items = _items_path(S, ev.tag)
    seed_stats.write_items(ev.item_scores, items)
    write_json(S.layout.evaluation(ev.tag),
               _record(ev) | {"items_sha256": seed_stats.file_sha256(items)})


def _read(S: Session, tag: str, key: str) -> Evaluation | None:
    path, items = S.layout.evaluation(tag), _items_path(S, tag)
    if not path.exists() or not items.exists():
        return None
    try:
        rec = read_json(path)
    except IntegrityError as exc:
        warn(f"{exc}; evaluating again")
        return None
    if rec.get("key") != key:
        return None
    if rec.get("items_sha256") != seed_stats.file_sha256(items):
        warn(f"{items}: its content does not match the checksum in {path.name} (damaged or "
             "replaced); evaluating again")
        return None
    kind = keys.record_kind(rec.get("kind"), label=rec["label"])
    return Evaluation(label=rec["label"], tag=tag, key=key, kind=kind, reused=True,
                      seed=rec.get("seed"),
                      tables={k: _frame(v) for k, v in rec["tables"].items()},
                      zero_shot=_frame(rec.get("zero_shot")), phrasings=_frame(rec.get("phrasings")),
                      aucs=_frame(rec.get("aucs")), item_scores=pd.read_parquet(items))


NUMBERS = ("value", "chance", "ci_low", "ci_high")  # a missing one (null in JSON) reads as NaN


def _frame(records: list[dict] | None) -> pd.DataFrame | None:
    """A table read back from an evaluation file, its number columns float (null → NaN)."""
    if records is None:
        return None
    df = pd.DataFrame(records)
    for col in (c for c in NUMBERS if c in df):
        df[col] = pd.to_numeric(df[col]).astype(float)
    return df


def _log(S: Session, ev: Evaluation, tags: dict[str, str]) -> None:
    metrics = {}
    for name, table in ev.tables.items():
        metrics |= {f"{name}/{t}": float(v) for t, v in zip(table["task"], table["value"])}
        mlflow.log_text(table.to_json(orient="records", indent=1), f"tables/{name}.json")
    if ev.phrasings is not None:
        mlflow.log_text(ev.phrasings.to_json(orient="records", indent=1), "tables/phrasings.json")
    if ev.aucs is not None:  # probe_auc/<split>/<task>/<statistic>
        metrics |= {f"probe_auc/{r.split}/{r.task}/{r.feature}": float(r.auc)
                    for r in ev.aucs.itertuples() if r.auc == r.auc}
        mlflow.log_text(ev.aucs.to_json(orient="records", indent=1), "tables/probe_auc.json")
    if ev.zero_shot is not None:
        for r in ev.zero_shot.itertuples():
            metrics |= {f"zero_shot/{r.split}/top1": r.top1, f"zero_shot/{r.split}/top5": r.top5}
    mlflow.log_metrics(metrics)
    mlflow.log_artifact(str(_items_path(S, ev.tag)), "items")
    mlflow.set_tags({"teminal.model": ev.label, "teminal.checkpoint": ev.tag,
                     keys.KIND_TAG: ev.kind.value, "teminal.key": ev.key}
                    | ({"teminal.reused_evaluation": "true"} if ev.reused else {})
                    | ({SEED_TAG: str(ev.seed)} if ev.seed is not None else {}) | tags)


def _logged(S: Session, ev: Evaluation, nested: bool, tags: dict[str, str] | None = None,
            stage=None) -> Evaluation:
    """Log ``ev`` to the active run, or to a nested run ``zste: <label>`` that also records
    the evaluated model's effective parameters (``stage``: its stage parameters, None for the
    pretrained model and the probe)."""
    if nested:
        with tracking.run(run_name=f"zste: {ev.label}"):  # nested under the active run
            tracking.log_params(logged.for_stage(S.config, stage))
            _log(S, ev, tags or {})
    else:
        _log(S, ev, tags or {})
    return ev


def check_finite_model(model: Backbone, *, label: str, tag: str) -> None:
    """SPEC §6: a model with NaN/inf weights is not evaluated (its scores would be noise)."""
    heads = {id(p) for p in model.trainable_parameters()}  # the trunk is checked when trained
    bad = [n for n, p in model.named_parameters()
           if id(p) in heads and not torch.isfinite(p).all()]
    if bad:
        raise gates.SanityError(f"model {label} (checkpoints/{tag}) has non-finite weights in "
                                f"{bad[:5]}: it is not evaluated; train it again with a lower lr")


def check_finite_tables(tables: dict[str, pd.DataFrame], *, label: str) -> None:
    """SPEC §6: no NaN/inf value reaches an evaluation file or a report."""
    for name, table in tables.items():
        bad = [t for t, v in zip(table["task"], table["value"])
               if v is None or not math.isfinite(float(v))]
        if bad:
            raise gates.SanityError(f"{name} of model {label}: non-finite value for tasks {bad}")


def _three_events(S: Session, model: Backbone, cache):
    """3C items and audio embeddings of ``model`` (SPEC §4): ``evaluate.triples`` held-out
    triples drawn with ``zste.zste_seed`` — the items 05_evaluate_model scores — or None with
    ``evaluate.triples`` = 0."""
    data, p, rate = load_data(S), S.config.evaluate, model.sample_rate
    return lib.three_events(model, cache, data.manifests, data.classes,
                            read=ClipStore(data.base, sample_rate=rate).__getitem__,
                            recipe=data.recipe(rate), n_triples=p.triples,
                            seed=S.config.zste.zste_seed, template=p.triple_template)


def evaluate_model(S: Session, *, label: str, tag: str, kind: keys.Kind, model_key: str,
                   model: Backbone, seed: int | None = None, nested: bool = True,
                   reuse: bool = True, tags: dict[str, str] | None = None,
                   stage=None) -> Evaluation:
    """ZSTE on every evaluation set and zero-shot accuracy of ``model`` (SPEC §4), a result of
    ``kind`` whose key is ``model_key``; ``seed``:
    the training seed of ``model`` (None for a model no seed trained); ``tags``: more MLflow
    tags of its run; ``stage``: the parameters of the stage that trained it (None: the
    pretrained model)."""
    key = keys.evaluation(S.config, model=model_key, inputs=inputs(S))
    found = _read(S, tag, key) if reuse else None
    if found is not None:
        print(f"{label}: reusing the evaluation evaluations/{tag}.json (same inputs)")
        return _logged(S, found, nested, tags, stage)
    check_finite_model(model, label=label, tag=tag)
    data, z = load_data(S), S.config.zste
    bank, cache = feature_bank(S, model), trunk_cache(S, model)
    with S.phase("evaluation"):
        sets = lib.zste_sets(model, bank, cache, data.manifests, data.classes, device=S.device,
                             n_boot=z.n_boot, seed=z.zste_seed, seen=z.seen, heldout=z.heldout,
                             triples=_three_events(S, model, cache))
        zero_shot = lib.zero_shot_table(model, bank, cache, data.manifests, data.classes,
                                        device=S.device)
        phrasings = None if "zste_heldout" not in sets else lib.phrasing_tables(
            model, bank, cache, data.manifests, data.classes, sets["zste_heldout"],
            device=S.device, seed=z.zste_seed)
    items = {k: r.items for k, r in sets.items()}
    ev = Evaluation(label=label, tag=tag, key=key, kind=kind, model=model, zero_shot=zero_shot,
                    phrasings=phrasings, tables={k: r.table for k, r in sets.items()},
                    items=items, seed=seed, item_scores=seed_stats.item_table(items))
    check_finite_tables(ev.tables, label=label)
    _write(S, ev)
    return _logged(S, ev, nested, tags, stage)


def evaluate_trained(S: Session, trained: Trained, *, nested: bool = True,
                     tags: dict[str, str] | None = None) -> Evaluation:
    """The evaluation of a finished stage (``tags``: more MLflow tags of its run)."""
    return evaluate_model(S, label=trained.label, tag=trained.tag, kind=trained.kind,
                          model_key=trained.key, model=trained.model, seed=trained.seed,
                          nested=nested, tags=tags, stage=trained.params)


def evaluate_ref(S: Session, ref: str, *, seed: int | None = None, nested: bool = True,
                 reuse: bool = True, tags: dict[str, str] | None = None) -> Evaluation:
    """``pretrained`` / ``A`` / ``B`` (as configured; trained with ``seed``, None: the first
    training seed) → its evaluation."""
    if ref == PRETRAINED:
        return evaluate_model(S, label=PRETRAINED, tag=PRETRAINED, kind=keys.Kind.PRETRAINED,
                              model_key=pretrained_key(S), model=pretrained_model(S),
                              nested=nested, reuse=reuse, tags=tags)
    trained = stage_a(S, seed=seed) if ref == "A" else stage_b(S, seed=seed)
    return evaluate_model(S, label=trained.label, tag=trained.tag, kind=trained.kind,
                          model_key=trained.key, model=trained.model, seed=trained.seed,
                          nested=nested, reuse=reuse, tags=tags, stage=trained.params)


def _ref_label(S: Session, ref: str) -> str:
    return keys.stage_label(S.config.stage_a if ref == "A" else S.config.stage_b)


def evaluate_models(S: Session) -> dict[str, Evaluation]:
    """03_zste: every model of ``zste.models``, evaluated afresh (per-item tables included);
    a trained one once per training seed. Returns the first seed's evaluation per label (what
    the notebook shows); every seed's is logged. MLflow: ``zste: <label>`` per model (tag
    ``teminal.ref`` = pretrained / A / B), with a child run ``seed <n>`` per seed when the run
    has several."""
    out = {}
    for ref in S.config.zste.models:
        tags = {"teminal.ref": ref}
        if ref == PRETRAINED or len(S.config.training_seeds) == 1:
            ev = evaluate_ref(S, ref, reuse=False, tags=tags)
            out[ev.label] = ev
            continue
        label = _ref_label(S, ref)
        with tracking.run(run_name=f"zste: {label}", tags={"teminal.model": label, **tags}):
            runs = for_seeds(S, lambda seed: evaluate_ref(S, ref, seed=seed, nested=False,
                                                          reuse=False, tags=tags))
        out[label] = runs.base
    return out


def probe(S: Session, *, nested: bool = True) -> Evaluation:
    """The level/duration probe (SPEC §4) as a row of its own (``teminal.model =
    probe:level-duration``): its decisions on A-sd, 3B and 3W must sit at chance, or the data
    leak the answer; the AUC of each statistic alone is logged (``probe_auc/…`` metrics,
    ``tables/probe_auc.json``)."""
    data, z = load_data(S), S.config.zste
    key = keys.probe(S.config, inputs(S))
    found = _read(S, "probe", key)
    if found is None:
        rate = data.base.sample_rate
        with S.phase("evaluation"):
            sets, aucs = lib.probe_sets(data.manifests, data.classes, render=data.renderer(rate),
                                        sample_rate=rate, n_boot=z.n_boot, seed=z.zste_seed,
                                        features=tuple(z.probe_features))
        items = {k: r.items for k, r in sets.items()}
        found = Evaluation(label=PROBE, tag="probe", key=key, kind=keys.Kind.PROBE, aucs=aucs,
                           tables={k: r.table for k, r in sets.items()},
                           item_scores=seed_stats.item_table(items))
        _write(S, found)
    return _logged(S, found, nested, {"teminal.ref": "probe"})


def zero_shot(S: Session, model: Backbone) -> pd.DataFrame:
    """Zero-shot top-1 / top-5 per split with "The sound of a {x}" (paper Table 4), logged as
    ``zero_shot/<split>/top1|top5``. Builds the run's trunk cache on first use."""
    data = load_data(S)
    bank, cache = feature_bank(S, model), trunk_cache(S, model)
    with S.phase("evaluation"):
        table = lib.zero_shot_table(model, bank, cache, data.manifests, data.classes,
                                    device=S.device)
    mlflow.log_metrics({f"zero_shot/{r.split}/{m}": getattr(r, m)
                        for r in table.itertuples() for m in ("top1", "top5")})
    return table
