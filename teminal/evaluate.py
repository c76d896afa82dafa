"""Evaluate any backbone on a run's held-out data: ZSTE (SPEC §4) and zero-shot classification.

Everything is computed from the feature bank (each unique clip through the frozen trunk once)
and one text pass over the unique prompts; the heads run in large batches without gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
import torch

from . import retrieval, tracking, zste
from .data.clips import audio_key
from .features import FeatureBank, embed_audio, embed_texts
from .models.base import Backbone
from .zste_prompts import ZsteTemplates, zste_prompts


def test_rows(data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The held-out stage-B rows and single clips of a run (split ``test``)."""
    sb, singles = data.manifests.stage_b, data.manifests.singles
    rows = sb[sb["split"] == "test"].reset_index(drop=True)
    clips = singles[singles["split"] == "test"].reset_index(drop=True)
    if rows.empty or clips.empty:
        raise ValueError(f"the run's manifests in {data.manifest_dir} have no test rows/clips to evaluate on")
    return rows, clips


def zste_inputs(backbone: Backbone, bank: FeatureBank, data) -> zste.ZsteInputs:
    """Embeddings of the held-out singles and of each test pair's seq / rev / mix audio."""
    rows, clips = test_rows(data)
    ci, cj = list(rows["clip_i"]), list(rows["clip_j"])
    return zste.ZsteInputs(
        class_names=list(data.base.classes),
        single_audio=embed_audio(backbone, bank.singles, [audio_key("single", c) for c in clips["clip"]]),
        single_labels=clips["target"].to_numpy().astype(np.int64),
        pairs=rows[["i", "j"]].to_numpy().astype(np.int64),
        seq_audio=embed_audio(backbone, bank.pairs, [audio_key("seq", a, b) for a, b in zip(ci, cj)]),
        rev_audio=embed_audio(backbone, bank.pairs, [audio_key("seq", b, a) for a, b in zip(ci, cj)]),
        mix_audio=embed_audio(backbone, bank.pairs, [audio_key("mix", a, b) for a, b in zip(ci, cj)]),
    )


def run_zste(backbone: Backbone, bank: FeatureBank, cache, data, *, device: torch.device,
             seed: int = 0, n_boot: int = 1000, templates: ZsteTemplates | None = None) -> zste.ZsteResult:
    """All ZSTE subtasks for ``backbone`` on the run's test split."""
    backbone.eval()
    inputs = zste_inputs(backbone, bank, data)
    prompts = zste_prompts(inputs.class_names, inputs.pairs, templates, seed=seed)
    text_emb = embed_texts(backbone, cache, prompts.texts, device=device)
    return zste.evaluate(inputs, prompts, text_emb, n_boot=n_boot, seed=seed)


def log_zste(result: zste.ZsteResult) -> None:
    """``zste/<task>`` metrics (percent) and the table (``zste/table.json`` and ``.csv``)."""
    mlflow.log_metrics(result.metrics())
    tracking.log_dataframe(result.table, "zste/table.json")


def zero_shot_table(backbone: Backbone, bank: FeatureBank, cache, data, *, device: torch.device,
                    prompt: str = "The sound of {x}") -> pd.DataFrame:
    """Zero-shot top-1 / top-5 accuracy (%) on the single clips of each split (paper Table 4)."""
    backbone.eval()
    classes = list(data.base.classes)
    class_text = embed_texts(backbone, cache, [prompt.format(x=c) for c in classes], device=device)
    rows = []
    singles = data.manifests.singles
    for split in ("train", "val", "test"):
        part = singles[singles["split"] == split]
        if part.empty:
            continue
        audio = embed_audio(backbone, bank.singles, [audio_key("single", c) for c in part["clip"]])
        labels = part["target"].to_numpy()
        rows.append({"split": split, "clips": len(part),
                     "top1": 100 * retrieval.zero_shot_accuracy(audio, labels, class_text),
                     "top5": 100 * retrieval.zero_shot_topk_accuracy(audio, labels, class_text,
                                                                      k=min(5, len(classes))),
                     "chance_top1": 100 / len(classes)})
    return pd.DataFrame(rows)


@dataclass
class PairView:
    """The 3 audios × 3 captions of test pair ``k`` for the similarity explorer."""

    backbone: Backbone
    bank: FeatureBank
    cache: object
    rows: pd.DataFrame
    device: torch.device

    @property
    def n_batches(self) -> int:
        return len(self.rows)

    def get(self, k: int) -> dict:
        r = self.rows.iloc[k]
        keys = [audio_key("seq", r.clip_i, r.clip_j), audio_key("seq", r.clip_j, r.clip_i),
                audio_key("mix", r.clip_i, r.clip_j)]
        captions = [f"{r.label_i} before {r.label_j}", f"{r.label_j} before {r.label_i}",
                    f"{r.label_i} while {r.label_j}"]
        z_a = embed_audio(self.backbone, self.bank.pairs, keys)
        z_c = embed_texts(self.backbone, self.cache, captions, device=self.device)
        sim = torch.nn.functional.normalize(z_a, dim=-1) @ torch.nn.functional.normalize(z_c, dim=-1).T
        return {"sim": sim.cpu().numpy(), "log_weights": None, "block_labels": ["f", "r", "o"],
                "row_captions": [f"audio {k}" for k in ("i⊕j", "j⊕i", "i∧j")], "col_captions": captions}


# ------------------------------------------------------------ notebook-level (a Session S)
def model_label(name: str) -> str:
    """The ``teminal.model`` tag of a model name: ``T-AB-order`` → ``T-AB+order-head``."""
    return name[: -len("-order")] + "+order-head" if name.endswith("-order") else name


def zero_shot_report(S, model: Backbone, data, *, bank: FeatureBank | None = None) -> pd.DataFrame:
    """Zero-shot top-1/top-5 per split, logged as ``zero_shot/<split>/top1|top5`` and a table."""
    from .modeling import feature_bank

    bank = bank or feature_bank(S, model, data)
    table = zero_shot_table(model, bank, S._cache, data, device=S.device)
    for r in table.itertuples():
        mlflow.log_metrics({f"zero_shot/{r.split}/top1": r.top1, f"zero_shot/{r.split}/top5": r.top5})
    tracking.log_dataframe(table, "zero_shot.json")
    return table


def zste_for(S, model: Backbone, data, *, bank: FeatureBank | None = None) -> zste.ZsteResult:
    """ZSTE of ``model`` on the run's test split, logged to the active run."""
    from .modeling import feature_bank

    bank = bank or feature_bank(S, model, data)
    result = run_zste(model, bank, S._cache, data, device=S.device, seed=int(S.P["zste_seed"]),
                      n_boot=int(S.P["n_boot"]))
    log_zste(result)
    return result


def evaluate_model(S, data, name: str) -> zste.ZsteResult:
    """Load ``name`` (pretrained / tag / path) and run ZSTE and zero-shot classification in
    its own MLflow run nested under the notebook's run, tagged ``teminal.model``."""
    from .modeling import feature_bank, load_model

    model = load_model(S, data, name)
    with tracking.run(run_name=f"zste: {name}", parent_run_id=S.run_id,
                      tags={"teminal.model": model_label(name), "teminal.checkpoint": name}):
        bank = feature_bank(S, model, data)
        result = zste_for(S, model, data, bank=bank)
        zero_shot_report(S, model, data, bank=bank)
    S._views = getattr(S, "_views", {})
    S._views[name] = PairView(backbone=model, bank=bank, cache=S._cache,
                              rows=test_rows(data)[0], device=S.device)
    return result


def eval_pair_views(S, data, name: str) -> PairView:
    """The similarity explorer's data for the test pairs of a model evaluated above."""
    views = getattr(S, "_views", {})
    if name not in views:
        evaluate_model(S, data, name)
    return S._views[name]
