"""Stage steps: train TeminAL A and B (or the T-CLAP loss), reusing finished runs (SPEC §3).

A trained stage is identified by its key (``teminal.run.keys.stage_a`` / ``stage_b``): the hash of
what its result depends on — the model it starts from (its own key), the data, the fields of its
section and of ``train`` that change a result, and the seed; not ``train.checkpoint_every_s``
and the other fields ``keys`` declares result-free. Its checkpoint folder's ``meta.json`` holds that key, so any
notebook of the run that asks for the same stage (02_stage_b's T-AB, 03_zste's "B", the
ablation's T-AB row) gets the finished checkpoint instead of training again. A stage that is
trained again under other inputs gets its own folder (``layout.free_tag``); nothing is replaced.
A stage writes ``meta.json`` with ``"finished": false`` and its key before its first step, so an
interrupted stage is found again by ``resume`` and continues from its ``last.pt`` in the same
folder (``training.fit.fit``), bit-identical to an uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mlflow

from ... import tracking
from ...models.base import Backbone
from ...models.heads import OrderAwareAudioHead
from ...training import stages
from ...training.checkpoints import load_checkpoint_head
from ...training.fit import fit
from .. import configs, keys, logged
from ..layout import write_json
from ..params import StageAParams, StageBParams
from ..session import Session
from .data import RunData, load_data
from .models import PRETRAINED, feature_bank, fresh_model, inputs


@dataclass
class Trained:
    """A finished stage: its checkpoint tag, input key, label and the model with its heads."""

    tag: str
    key: str
    label: str  # the ``teminal.model`` tag, e.g. "T-AB", "T-AB+order-head", "T-CLAP"
    model: Backbone
    params: StageAParams | StageBParams
    seed: int  # the training seed (one of ``config.training_seeds``)
    history: list[dict] = field(default_factory=list)
    reused: bool = False
    start: str = ""  # the checkpoint tag it started from (``pretrained`` or stage A's tag)
    source_run_id: str = ""  # the MLflow run that trained it

    @property
    def kind(self) -> keys.Kind:
        return keys.Kind.STAGE




def seed_role(S: Session, role: str, seed: int) -> str:
    """The checkpoint folder of ``role`` trained with ``seed``: ``role`` for the first training
    seed (a single-seed run's folders are unchanged), ``role-s<seed>`` for the others."""
    return role if seed == S.config.training_seeds[0] else f"{role}-s{seed}"


def _param_groups(model: Backbone, lr: float, order_lr: float | None) -> list:
    """The heads' parameters; the order-aware module in a group of its own when ``order_lr``."""
    params = model.trainable_parameters()
    head = getattr(model, "audio_head_module", None)
    if order_lr is None or not isinstance(head, OrderAwareAudioHead):
        return params
    mixer = {id(p) for p in head.mixer.parameters()}
    return [{"params": [p for p in params if id(p) not in mixer], "lr": lr},
            {"params": [p for p in params if id(p) in mixer], "lr": order_lr}]


def _replay(S: Session, bank, data: RunData, batch_size: int, seed: int):
    return stages.Replay.build(bank=bank, singles=data.manifests.singles,
                               weight=S.config.train.replay_weight, batch_size=batch_size,
                               seed=seed)


def _reuse(S: Session, key: str, label: str, params, seed: int) -> Trained | None:
    """The finished checkpoint of this run whose inputs hash to ``key``, loaded; else None."""
    tag = S.layout.find_key(key)
    if tag is None:
        return None
    meta = S.layout.read_meta(tag)
    model = fresh_model(S, audio_head=params.audio_head)
    model.load_head_state_dict(load_checkpoint_head(S.layout.checkpoint(tag) / "best.pt"))
    print(f"{label}: reusing the finished checkpoint {tag}/ (same inputs)")
    return Trained(tag=tag, key=key, label=label, model=model.eval(), params=params, seed=seed,
                   history=meta.get("history", []), reused=True, start=meta.get("start", ""),
                   source_run_id=meta.get("mlflow_run_id", ""))


def _stage_tags(trained: Trained) -> dict[str, str]:
    """The tags of a run that trained or reused a stage: the same keys either way; a reused
    stage also names the checkpoint and the MLflow run that trained it."""
    tags = {"teminal.model": trained.label, "teminal.tag": trained.tag,
            "teminal.start": trained.start, "teminal.reused": str(trained.reused).lower(),
            "teminal.seed": str(trained.seed)}
    if trained.reused:
        tags |= {"teminal.reused_from": trained.tag,
                 "teminal.reused_run_id": trained.source_run_id}
    return tags


def _train_or_reuse(S: Session, *, key: str, label: str, params, seed: int, own_run: bool,
                    build) -> Trained:
    """Reuse a finished stage or train it (``build()``). ``own_run``: the active MLflow run is
    this stage's (01/02, an ablation row): a reused stage's curves are logged there again,
    copied from the run that trained it. Otherwise a stage trained as a prerequisite gets a
    nested run ``train: <label>`` with its effective parameters."""
    found = _reuse(S, key, label, params, seed)
    if found is not None:
        if own_run:
            own = found.source_run_id == mlflow.active_run().info.run_id  # a re-executed cell
            if not own and not (found.source_run_id and tracking.copy_curves(found.source_run_id)):
                _log_history(found.history, prefix="")
            mlflow.set_tags(_stage_tags(found))
        return found
    if own_run:
        return build()
    with tracking.run(run_name=f"train: {label}",  # nested
                      tags={"teminal.model": label, "teminal.seed": str(seed)}):
        tracking.log_params(logged.for_stage(S.config, params))
        return build()


def _log_history(history: list[dict], *, prefix: str) -> None:
    """Re-log a reused stage's per-epoch curve to the active run (one batch): the fallback
    when the run that trained it is not in this store."""
    if mlflow.active_run() is None or not history:
        return
    from mlflow.entities import Metric

    metrics = []
    for h in history:
        for name, col in (("train/epoch_loss", "train_loss"), ("val/loss", "val_loss")):
            v = h.get(col)
            if v is not None and v == v:  # not NaN
                metrics.append(Metric(f"{prefix}{name}", float(v), 0, int(h["step"])))
    mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=metrics)


def why_anew(S: Session, folder: str, key: keys.Key, label: str) -> list[str]:
    """Why a stage trains although ``checkpoints/<folder>/`` holds one: the inputs that differ
    (``keys.differences``; ``start`` differs when the model it starts from does), printed."""
    meta = S.layout.read_meta(folder)
    why = [] if meta is None else keys.changed_inputs(meta, key)
    if why:
        print(f"{label}: training anew — checkpoints/{folder}/ holds this stage with other inputs: "
              + "; ".join(why[:8]) + (" …" if len(why) > 8 else ""))
    return why


def _fit(S: Session, *, role: str, key: keys.Key, label: str, model: Backbone, task, params,
         start_tag: str, seed: int) -> Trained:
    folder = seed_role(S, role, seed)
    why_anew(S, folder, key, label)
    tag = S.layout.free_tag(folder, key)
    out = S.layout.checkpoint(tag)
    run_id = mlflow.active_run().info.run_id
    mlflow.set_tags(_stage_tags(Trained(tag=tag, key=key, label=label, model=model,
                                        params=params, seed=seed, start=start_tag)))
    about = {"role": role, "tag": tag, "key": key, "inputs": key.inputs,
             "kind": keys.Kind.STAGE.value, "label": label, "start": start_tag,
             "seed": seed, "audio_head": params.audio_head,
             "params": params.model_dump(mode="json")}
    if S.layout.read_meta(tag) is None:  # claims the folder: a resume finds it by its key
        write_json(out / "meta.json", about | {"finished": False})
    config, budget = configs.stage_config(shared=S.config.train, stage=params, seed=seed,
                                          n_train=task.n_train, where=f"stage {tag}")
    budget.log()
    with S.phase("training"):
        order_lr = getattr(params, "order_lr", None)
        result = fit(task=task, model=model, params=_param_groups(model, params.lr, order_lr),
                     config=config, out_dir=out, device=S.device,
                     fingerprint_extra={"key": key}, label=label)
    for name, seconds in getattr(result, "timings", {}).items():
        S.layout.add_phase(S.notebook, name, seconds)
    model.load_head_state_dict(load_checkpoint_head(out / "best.pt"))
    write_json(out / "meta.json", about | {
        "history": result.history, "mlflow_run_id": run_id, "finished": True})
    return Trained(tag=tag, key=key, label=label, model=model.eval(), params=params, seed=seed,
                   history=result.history, start=start_tag, source_run_id=run_id)


def build_task(S: Session, trained_or_params, model: Backbone | None = None, *,
               seed: int | None = None):
    """The stage task (``teminal.training.stages``) of a stage's parameters on ``model``'s feature bank
    (replay drawn with ``seed``); ``build_task(S, trained)`` rebuilds the task a finished stage
    trained on (for its views)."""
    params = getattr(trained_or_params, "params", trained_or_params)
    model = model if model is not None else trained_or_params.model
    seed = seed if seed is not None else getattr(trained_or_params, "seed",
                                                 S.config.training_seeds[0])
    data = load_data(S)
    bank = feature_bank(S, model)
    common = dict(backbone=model, bank=bank, n_classes=len(data.classes),
                  replay=_replay(S, bank, data, params.batch_size, seed))
    if isinstance(params, StageAParams):
        return stages.StageATask(weights=configs.stage_a_weights(params),
                                 manifest=data.manifests.stage_a, **common)
    common["manifest"] = data.manifests.stage_b
    if params.loss == "tclap":
        return stages.TclapTask(lam=params.tclap_lambda, captions=params.captions, **common)
    return stages.StageBTask(weights=configs.stage_b_weights(params), weights_by=params.weights_by,
                             captions=params.captions, mirror_share=params.mirror_share,
                             seed=seed, **common)


def stage_a(S: Session, params: StageAParams | None = None, *, seed: int | None = None,
            own_run: bool = False) -> Trained:
    """TeminAL A from the pretrained baseline (SPEC §3) trained with ``seed`` (None: the first
    training seed), or the finished run with its inputs."""
    params = params or S.config.stage_a
    seed = S.config.training_seeds[0] if seed is None else seed
    label = keys.stage_label(params)
    key = keys.stage_a(S.config, params, seed=seed, inputs=inputs(S))

    def build() -> Trained:
        model = fresh_model(S, audio_head=params.audio_head)
        return _fit(S, role=keys.stage_role(params), key=key, label=label, model=model,
                    task=build_task(S, params, model, seed=seed), params=params,
                    start_tag=PRETRAINED, seed=seed)

    return _train_or_reuse(S, key=key, label=label, params=params, seed=seed, own_run=own_run,
                           build=build)


def stage_b(S: Session, params: StageBParams | None = None, *, seed: int | None = None,
            own_run: bool = False, role: str | None = None, label: str | None = None) -> Trained:
    """TeminAL B (or the T-CLAP loss) from stage A (T-AB: stage A of the same seed) or the
    pretrained model (T-B), trained with ``seed`` (None: the first training seed); ``label``
    (default ``keys.stage_label``, an ablation row its name) tags its run and labels its
    progress bar; ``role`` (default ``keys.stage_role``) names its checkpoint folder."""
    params = params or S.config.stage_b
    seed = S.config.training_seeds[0] if seed is None else seed
    label = label or keys.stage_label(params)
    first = keys.start_of(S.config, params)
    if first is not None and first.audio_head != S.config.stage_a.audio_head:  # keys.start_of
        print(f"{label}: T-AB continues stage A's audio head, so its stage A trains with "
              f"audio_head {first.audio_head!r} (stage_a.audio_head is "
              f"{S.config.stage_a.audio_head!r}; logged as stage_a.audio_head)")
    start = None if first is None else stage_a(S, first, seed=seed)
    start_tag = PRETRAINED if start is None else start.tag
    key = keys.stage_b(S.config, params, seed=seed, inputs=inputs(S))

    def build() -> Trained:
        model = fresh_model(S, audio_head=params.audio_head)
        if start is not None:
            model.load_head_state_dict(start.model.head_state_dict())
        return _fit(S, role=role or keys.stage_role(params), key=key, label=label, model=model,
                    task=build_task(S, params, model, seed=seed), params=params,
                    start_tag=start_tag, seed=seed)

    return _train_or_reuse(S, key=key, label=label, params=params, seed=seed, own_run=own_run,
                           build=build)
