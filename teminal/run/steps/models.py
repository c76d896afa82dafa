"""Model steps: the pretrained baseline, the trunk cache and the feature bank (SPEC §2, §6).

``pretrained_model(S)`` is the model every comparison starts from. For msclap it is the
published weights (``msclap_weights`` or msclap's own download). For the embedded backbone it is
this run's ``checkpoints/pretrained/model.pt``, made by ``pretrain(S)`` (00_pretrained_baseline,
or now, in a run that has none yet). Pretraining that ends under twice chance on its own
training singles has failed (SPEC §6): the run stops, with the reason as an MLflow tag.
"""
from __future__ import annotations

import mlflow
from ... import determinism, gates
from ...cache import TrunkCache
from ...features import FeatureBank, build_bank
from ...models import build_backbone
from ...models.base import Backbone
from ...models.tiny import TinyClap
from ...training.pretrain import pretrain_tiny
from .. import configs, keys
from ..layout import workdir, write_json
from ..session import Session
from .data import load_data

PRETRAINED = "pretrained"


def inputs(S: Session) -> keys.Inputs:
    """What the run's keys need beyond its configuration (``teminal.run.keys``): the manifests'
    hashes, the base set's content and the msclap weights' sha1 (read once per notebook)."""
    data = load_data(S)
    if "weights" not in S.caches:  # hashing 0.8 GB of weights once per notebook is enough
        S.caches["weights"] = keys.weights_digest(S.config.model)
    return keys.Inputs(manifests=data.manifests.hashes, base=data.base.fingerprint,
                       weights=S.caches["weights"])


def pretrained_key(S: Session) -> str:
    """The pretrained backbone's key (``keys.pretrained``)."""
    return keys.pretrained(S.config, inputs(S))


def pretrain(S: Session) -> tuple[Backbone, list[dict]]:
    """The embedded backbone pretrained CLAP-style on the run's pretraining singles (SPEC §1:
    every clip no evaluation item uses), saved to ``checkpoints/pretrained/model.pt``.
    Returns (model, history); an existing pretrained model of this run is loaded instead."""
    if S.config.model.backbone != "tiny":
        return pretrained_model(S), []
    data = load_data(S)
    folder = S.layout.checkpoint(PRETRAINED)
    meta = S.layout.read_meta(PRETRAINED)
    key = pretrained_key(S)
    if meta and meta.get("finished"):
        print(f"this run already holds a pretrained backbone ({folder.name}/model.pt)")
        other = keys.changed_inputs(meta, key)
        if other:  # one pretrained backbone per run folder: every stage and cache starts there
            print("note: it was pretrained with other inputs than this configuration's ("
                  + "; ".join(other[:8]) + "); start a new run to pretrain with these")
        return pretrained_model(S), meta.get("history", [])
    model = TinyClap(config=configs.tiny_config(S.config.model, sample_rate=data.base.sample_rate,
                                                seed=S.config.seed)).to(S.device)
    singles = data.manifests.singles
    config, budget = configs.pretrain_config(
        p=S.config.pretrain, shared=S.config.train, seed=S.config.seed,
        n_train=int((singles["split"] == "train").sum()))
    budget.log(prefix="pretrain/")
    with S.phase("pretraining"):
        result = pretrain_tiny(
            model=model, singles=data.manifests.singles, render=data.renderer(model.sample_rate),
            class_names=data.classes, class_prompt=data.params.caption_class, config=config,
            keep=S.config.pretrain.keep, out_dir=folder, device=S.device, fingerprint_extra={"key": key})
    with S.phase("checkpoint writes"):
        model.save(folder / "model.pt")
    write_json(folder / "meta.json", {"role": PRETRAINED, "tag": PRETRAINED, "key": key,
                                      "inputs": key.inputs,
                                      "kind": keys.Kind.PRETRAINED.value, "audio_head": "pooled",
                                      "steps": budget.total_steps, "epochs": budget.epochs,
                                      "history": result.history, "finished": True})
    S.models.clear()
    return pretrained_model(S), result.history


def pretrained_model(S: Session, *, audio_head: str = "pooled") -> Backbone:
    """The pretrained baseline with the requested audio head, on the session's device (built
    once per notebook; callers that train must not reuse it — see ``fresh_model``)."""
    if audio_head in S.models:
        return S.models[audio_head]
    m = S.config.model
    if m.backbone == "tiny":
        folder = S.layout.checkpoint(PRETRAINED)
        meta = S.layout.read_meta(PRETRAINED)
        if meta is None or not meta.get("finished"):
            print("no pretrained backbone in this run folder yet: pretraining it "
                  "(as 00_pretrained_baseline does)")
            pretrain(S)
            meta = S.layout.read_meta(PRETRAINED)
        if meta.get("gate") == "failed":
            raise gates.SanityError(f"{folder}: {meta['gate_reason']}")
        model = TinyClap.load(folder / "model.pt", audio_head=audio_head)
    else:
        model = build_backbone(name=m.backbone, audio_head=audio_head, device="cpu",
                               weights=m.msclap_weights or None,
                               tokenizer=m.msclap_tokenizer or None)
    model = model.to(S.device).eval()
    S.models[audio_head] = model
    return model


def fresh_model(S: Session, *, audio_head: str = "pooled") -> Backbone:
    """A new copy of the pretrained baseline (its heads untouched by earlier training)."""
    import copy

    base = pretrained_model(S, audio_head=audio_head)
    heads = {id(p) for p in base.trainable_parameters()}
    memo = {id(p): p for p in base.parameters() if id(p) not in heads}
    memo.update({id(b): b for b in base.buffers()})
    return copy.deepcopy(base, memo)


def trunk_cache(S: Session, model: Backbone) -> TrunkCache:
    """The on-disk trunk cache of ``model``'s trunks for this run's base set and recipe.

    Every model of a session shares the pretrained baseline's trunks, so one cache serves
    them all (its key hashes the trunk weights once, which takes a second on msclap). Under
    the deterministic CPU mode it lives in ``cache-deterministic/``: features computed by this
    CPU's own kernels (same published weights, same key) are never reused there."""
    data = load_data(S)
    key = pretrained_key(S)
    if key not in S.caches:
        root = workdir() / ("cache-deterministic" if determinism.active() else "cache")
        S.caches[key] = TrunkCache(
            root=root, backbone=model, recipe=data.recipe(model.sample_rate),
            base_fingerprint=data.base.fingerprint, device=S.device,
            batch_size=S.config.model.eval_batch_size)
    return S.caches[key]


def feature_bank(S: Session, model: Backbone) -> FeatureBank:
    """Every trunk feature of the run's manifests (each unique clip through the trunk once)."""
    cache = trunk_cache(S, model)
    memo = (cache.key, model.needs_frames)  # one bank with frames, one without
    if memo not in S.banks:
        data = load_data(S)
        with S.phase("trunk cache"):
            S.banks[memo] = build_bank(cache=cache, manifests=data.manifests,
                                       render=data.renderer(model.sample_rate),
                                       frames=model.needs_frames, device=S.device)
    return S.banks[memo]


def check_pretrained(S: Session, zero_shot) -> None:
    """SPEC §6: the embedded backbone must reach 2× chance top-1 on its own training singles;
    msclap's published weights under that get a loud warning (tag ``teminal.warning``)."""
    train_rows = zero_shot[zero_shot["split"] == "train"]
    if train_rows.empty:
        return
    top1, chance = float(train_rows["top1"].iloc[0]), float(train_rows["chance_top1"].iloc[0])
    if top1 >= gates.ZERO_SHOT_FACTOR * chance:
        return
    reason = (f"zero-shot top-1 on its own training singles is {top1:.1f} %, under "
              f"{gates.ZERO_SHOT_FACTOR:g} × chance = {gates.ZERO_SHOT_FACTOR * chance:.1f} % "
              f"(chance {chance:.1f} %): the backbone learned nothing usable; every later "
              "number would be noise")
    if S.config.model.backbone == "tiny":
        fix = ("train longer (-p pretrain.optimizer_steps=…), lower pretrain.batch_size, keep "
               "the last step's model when pretrain/val/loss is lowest early (-p "
               "pretrain.keep=last), or use more data")
        mlflow.set_tags({"teminal.failed_reason": reason})
        meta = S.layout.read_meta(PRETRAINED) or {}
        write_json(S.layout.checkpoint(PRETRAINED) / "meta.json",
                   meta | {"gate": "failed", "gate_reason": reason})
        raise gates.SanityError(f"pretraining failed (SPEC §6): {reason}. Fix: {fix}")
    mlflow.set_tags({"teminal.warning": reason})
    print(f"WARNING — msclap baseline: {reason} (are the weights the published ones?)")


