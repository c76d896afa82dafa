"""Glue between notebook parameters and models: which backbone, which checkpoint, which stage.

Checkpoints of a run live in ``<run_dir>/checkpoints/<tag>/``:
``pretrained/model.pt`` (the embedded backbone after CLAP-style pretraining, trunk and heads),
and per stage ``best.pt`` / ``last.pt`` (trained heads only) with ``meta.json`` saying which
audio head and starting point they belong to. A model is named by ``"pretrained"``, a tag of
this run (``"A"``, ``"T-AB"``, ``"T-B"``, …) or a path to a ``.pt`` head checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from . import losses, stages, train
from .features import FeatureBank, build_bank
from .models import build_backbone
from .models.base import Backbone
from .workflow import RunData, Session, recipe, workdir

PRETRAINED = "pretrained"


def checkpoint_dir(S: Session, tag: str) -> Path:
    return S.run_dir / "checkpoints" / tag


def pretrained_path(S: Session) -> Path:
    return checkpoint_dir(S, PRETRAINED) / "model.pt"


def base_backbone(S: Session, data: RunData, *, audio_head: str) -> Backbone:
    """The pretrained baseline with the requested audio head (SPEC §2).

    msclap: the published weights (``msclap_weights`` or msclap's own download). The embedded
    backbone: this run's pretrained checkpoint — pretrained now if the run has none yet.
    """
    P = S.P
    if P["backbone"] == "tiny":
        from .models.tiny import TinyClap

        path = pretrained_path(S)
        if not path.exists():
            from .pretrain import pretrain_embedded

            print(f"no pretrained embedded backbone in {path.parent}: pretraining it now "
                  "(as 00_pretrained_baseline does)")
            pretrain_embedded(S, data)
        return TinyClap.load(path, audio_head=audio_head).to(S.device)
    return build_backbone(name=P["backbone"], audio_head=audio_head, device=S.device,
                          weights=P["msclap_weights"] or None, tokenizer=P["msclap_tokenizer"] or None)


def load_model(S: Session, data: RunData, name: str, *, audio_head: str | None = None) -> Backbone:
    """``"pretrained"``, a checkpoint tag of this run, or a path to a head checkpoint."""
    head = audio_head or S.P.get("audio_head", "pooled")
    if name == PRETRAINED:
        return base_backbone(S, data, audio_head=head)
    path = Path(name) if name.endswith(".pt") else checkpoint_dir(S, name) / "best.pt"
    meta_file = path.parent / "meta.json"
    if not path.exists():
        known = sorted(p.name for p in (S.run_dir / "checkpoints").glob("*")) if (S.run_dir / "checkpoints").exists() else []
        raise FileNotFoundError(f"no checkpoint {path}; this run has: {known or 'none'} "
                                "(run the stage that writes it, or pass a .pt path)")
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    model = base_backbone(S, data, audio_head=meta.get("audio_head", head))
    model.load_head_state_dict(train.load_checkpoint_head(path))
    return model


def open_cache(S: Session, model: Backbone):
    from .cache import TrunkCache

    root = Path(S.P["cache_root"]) if S.P.get("cache_root") else workdir() / "cache"
    return TrunkCache(root=root, backbone=model, recipe=recipe(S.P, model.sample_rate),
                      device=S.device, batch_size=int(S.P.get("eval_batch_size", 256)))


def feature_bank(S: Session, model: Backbone, data: RunData) -> FeatureBank:
    """Every trunk feature of the run's manifests, from the on-disk cache (computed once)."""
    cache = open_cache(S, model)
    S._cache = cache
    rec = recipe(S.P, model.sample_rate)
    return build_bank(cache=cache, manifests=data.manifests, render=data.renderer(rec),
                      frames=model.needs_frames, device=S.device)


def train_config(P: Mapping[str, Any]) -> train.TrainConfig:
    return train.TrainConfig(epochs=int(P["epochs"]), batch_size=int(P["batch_size"]), lr=float(P["lr"]),
                             optimizer=P["optimizer"], weight_decay=float(P["weight_decay"]),
                             grad_clip=float(P["grad_clip"]), schedule=P["schedule"],
                             warmup_steps=int(P["warmup_steps"]), seed=int(P["seed"]))


def _replay(S: Session, bank: FeatureBank, data: RunData):
    return stages.Replay.build(bank=bank, singles=data.manifests.singles, weight=float(S.P["replay_weight"]),
                               batch_size=int(S.P["batch_size"]), seed=int(S.P["seed"]))


def stage_a_task(S: Session, model: Backbone, bank: FeatureBank, data: RunData) -> stages.StageATask:
    P = S.P
    weights = losses.StageAWeights(alpha_same=float(P["alpha_same"]), alpha_diff=float(P["alpha_diff"]),
                                   beta=float(P["beta_a"]))
    return stages.StageATask(weights=weights, backbone=model, bank=bank, manifest=data.manifests.stage_a,
                             n_classes=len(data.base.classes), replay=_replay(S, bank, data))


def stage_b_task(S: Session, model: Backbone, bank: FeatureBank, data: RunData) -> stages.StageBTask:
    P = S.P
    common = dict(backbone=model, bank=bank, manifest=data.manifests.stage_b,
                  n_classes=len(data.base.classes), replay=_replay(S, bank, data))
    if P["loss"] == "tclap":
        return stages.TclapTask(lam=float(P["tclap_lambda"]), **common)
    if P["loss"] != "teminal":
        raise ValueError(f"loss must be 'teminal' or 'tclap', got {P['loss']!r}")
    weights = losses.StageBWeights(alpha_st=float(P["alpha_st"]), alpha_ct=float(P["alpha_ct"]),
                                   alpha_so=float(P["alpha_so"]), alpha_co=float(P["alpha_co"]),
                                   beta=float(P["beta"]))
    return stages.StageBTask(weights=weights, **common)


def _suffix(P: Mapping[str, Any]) -> str:
    return "-order" if P.get("audio_head") == "order" else ""


def stage_tag(P: Mapping[str, Any], stage: str) -> str:
    """Checkpoint folder of a stage: ``P['tag']`` or A / T-AB / T-B / T-CLAP (+ ``-order``)."""
    if P.get("tag"):
        return str(P["tag"])
    if stage == "A":
        return "A" + _suffix(P)
    if P.get("loss") == "tclap":
        return "T-CLAP" + _suffix(P)
    return ("T-AB" if P["start_from"] == "A" else "T-B") + _suffix(P)


def stage_b_start(P: Mapping[str, Any]) -> str:
    """Stage B starts from stage A's checkpoint (T-AB) or the pretrained model (T-B)."""
    if P["start_from"] == "pretrained":
        return PRETRAINED
    if P["start_from"] != "A":
        raise ValueError(f"start_from must be 'A' or 'pretrained', got {P['start_from']!r}")
    return P.get("stage_a_tag") or "A" + _suffix(P)


def fit_stage(S: Session, model: Backbone, task, *, stage: str) -> train.FitResult:
    """Train a stage's heads; checkpoints and ``meta.json`` go to ``checkpoints/<tag>``."""
    P = S.P
    tag = stage_tag(P, stage)
    start = PRETRAINED if stage == "A" else stage_b_start(P)
    out = checkpoint_dir(S, tag)
    start_file = pretrained_path(S) if start == PRETRAINED else checkpoint_dir(S, start) / "best.pt"
    extra = {"stage": stage, "start": start, "audio_head": P["audio_head"], "backbone": model.cache_key(),
             "manifests": S.data().manifests.hashes,
             "start_sha1": _sha1(start_file) if start_file.exists() else "",
             "loss": {k: P.get(k) for k in ("loss", "alpha_same", "alpha_diff", "beta_a", "alpha_st", "alpha_ct",
                                            "alpha_so", "alpha_co", "beta", "tclap_lambda", "replay_weight")}}
    import mlflow

    mlflow.set_tags({"teminal.tag": tag, "teminal.start": start})
    result = train.fit(task=task, model=model, params=model.trainable_parameters(), config=train_config(P),
                       out_dir=out, device=S.device, fingerprint_extra=extra)
    (out / "meta.json").write_text(json.dumps({"tag": tag, "stage": stage, "start": start,
                                               "audio_head": P["audio_head"], "backbone": P["backbone"]}, indent=2))
    model.load_head_state_dict(train.load_checkpoint_head(out / "best.pt"))
    return result


def _sha1(path: Path) -> str:
    from .tracking import file_sha1

    return file_sha1(path)


@dataclass
class BatchView:
    """Similarity matrices of consecutive batches of a stage task, for the explorer widget."""

    task: Any
    split: str
    batch_size: int

    @property
    def n_batches(self) -> int:
        n = self.task.n_val if self.split == "val" else self.task.n_train
        return max(1, n // self.batch_size)

    def get(self, k: int) -> dict:
        n = self.task.n_val if self.split == "val" else self.task.n_train
        rows = torch.arange(k * self.batch_size, min((k + 1) * self.batch_size, n))
        with torch.no_grad():
            if isinstance(self.task, stages.StageBTask):
                z_a, z_c = self.task.embed(rows, split=self.split)
                c = self.task.cols[self.split]
                log_w = losses.stage_b_log_weights(len(rows), self.task.weights)
                labels, df = ["f", "r", "o"], self.task.frames[self.split].iloc[rows.numpy()]
                captions = list(df.caption_f) + list(df.caption_r) + list(df.caption_o)
            else:
                c = self.task.cols[self.split]
                bb, bank = self.task.backbone, self.task.bank
                z_a = torch.cat([bb.audio_head(bank.singles.take(c["single"][rows])),
                                 bb.audio_head(bank.pairs.take(c["double"][rows]))])
                z_c = bb.text_head(bank.text.take(torch.cat([c["t_single"][rows], c["t_double"][rows]])))
                log_w = losses.stage_a_log_weights(c["i"][rows], c["j"][rows], self.task.weights)
                labels, df = ["single", "double"], self.task.frames[self.split].iloc[rows.numpy()]
                captions = list(df.caption_single) + list(df.caption_double)
            sim = losses.logits(z_a, z_c, self.task.backbone.logit_scale)
        return {"sim": sim.float().cpu().numpy(), "log_weights": log_w.cpu().numpy(),
                "block_labels": labels, "row_captions": captions, "col_captions": captions}


def batch_views(task, *, split: str, batch_size: int) -> BatchView:
    return BatchView(task=task, split=split, batch_size=batch_size)


def pretrained_baseline(S: Session, data: RunData) -> tuple[Backbone, list[dict]]:
    """The model every comparison starts from, and its pretraining history (empty for msclap).
    The embedded backbone is pretrained here (once per run folder); msclap loads its weights."""
    if S.P["backbone"] != "tiny":
        return base_backbone(S, data, audio_head="pooled"), []
    from .models.tiny import TinyClap
    from .pretrain import pretrain_embedded

    path = pretrained_path(S)
    if path.exists():
        print(f"this run already holds a pretrained backbone: {path}")
        return TinyClap.load(path).to(S.device), []
    model, history = pretrain_embedded(S, data)
    return model, history
