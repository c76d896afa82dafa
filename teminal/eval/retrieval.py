"""Zero-shot classification, audio–text retrieval and local dataset readers (SPEC §4, paper
Tables 1, 4 and 7). Metrics work on precomputed embeddings and are **fractions in [0, 1]**
(multiply by 100 for the paper's percent; ZSTE tables are already percent).

**Retrieval metrics.** Cosine similarity; for each query the candidates are ranked by it.
Ties are ranked *against* the query (a tied irrelevant candidate is placed before a relevant
one), so a degenerate model cannot gain from ties. R@k: share of queries with at least one
relevant item in the top k (a2t: any of the audio's captions is a hit). mAP@10 (DCASE 2022
task 6b / Clotho convention): per query ``AP@10 = Σ_{r ≤ 10, rel_r} P@r / min(n_rel, 10)``
with ``P@r`` the precision at rank r and ``n_rel`` the number of relevant items; for t2a
(one relevant audio) this is ``1/rank`` when rank ≤ 10, else 0; for a2t with Clotho's 5
captions it is the sum over the audio's captions in the top 10 of ``hits/rank``, divided by 5.
Audios without any caption stay candidates for t2a but are not a2t queries.

**Zero-shot classification** prompts ``ZERO_SHOT_PROMPT`` = ``"The sound of a {x}"`` (paper
Table 4) and uses the ZSTE tie rule (expected accuracy under a random tie
break, :func:`teminal.eval.scoring.topk_credit`), so it equals ZSTE task 1A on the same prompts.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from teminal.eval.scoring import topk_credit

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
ZERO_SHOT_PROMPT = "The sound of a {x}"
"""Class prompt of zero-shot classification (paper Table 4; SPEC §4). ZSTE 1A and 2A–2D use
``"The sound of {x}"`` (``teminal.eval.tasks.ZsteTemplates.class_prompt``)."""
_ROWS = 1024  # queries ranked per chunk


def zero_shot_prompts(class_names, prompt: str = ZERO_SHOT_PROMPT) -> list[str]:
    """One prompt per class [K]: ``prompt`` with ``{x}`` = the class label text (SPEC §4)."""
    fields = {f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None}
    if fields != {"x"}:
        raise ValueError(f"prompt: expected a template whose only placeholder is {{x}}, got {prompt!r}")
    return [prompt.format(x=n) for n in class_names]


def zero_shot_accuracy(audio, labels, class_text, *, tie_tol: float = 1e-6) -> float:
    """Top-1 accuracy in [0, 1] of ``audio [M, d]`` (``labels [M]``) over ``class_text [K, d]``."""
    return zero_shot_topk_accuracy(audio, labels, class_text, k=1, tie_tol=tie_tol)


def zero_shot_topk_accuracy(audio, labels, class_text, *, k: int, tie_tol: float = 1e-6) -> float:
    """Share in [0, 1] of clips ``audio [M, d]`` whose class ``labels [M]`` is among the ``k``
    class texts ``class_text [K, d]`` most similar to them."""
    a, c = _unit(audio, "audio"), _unit(class_text, "class_text")
    if a.shape[1] != c.shape[1]:
        raise ValueError(f"class_text: dimension {c.shape[1]} != audio dimension {a.shape[1]}")
    y = _index(labels, "labels", n=len(a), high=len(c))
    if not 1 <= k <= len(c):
        raise ValueError(f"k: expected 1 <= k <= K={len(c)}, got {k}")
    correct = torch.zeros(len(a), len(c), dtype=torch.bool)
    correct[torch.arange(len(a)), torch.as_tensor(y)] = True
    credit, _ = topk_credit(a @ c.T, correct, k=k, rule="frac", tie_tol=tie_tol)
    return float(credit.mean())


def retrieval_metrics(audio, text, text_to_audio) -> dict[str, float]:
    """R@1/5/10 and mAP@10 in [0, 1], both ways (module doc). audio [N, d], text [T, d],
    text_to_audio [T] long: the audio each caption describes. Keys ``t2a/R@1``, ``t2a/R@5``,
    ``t2a/R@10``, ``t2a/mAP@10`` and the same with ``a2t/``."""
    a, t = _unit(audio, "audio"), _unit(text, "text")
    if a.shape[1] != t.shape[1]:
        raise ValueError(f"text: dimension {t.shape[1]} != audio dimension {a.shape[1]}")
    owner = _index(text_to_audio, "text_to_audio", n=len(t), high=len(a))
    sim = (t @ a.T).numpy()  # [T, N]
    rel = np.zeros(sim.shape, dtype=bool)
    rel[np.arange(len(t)), owner] = True
    has_caption = rel.any(axis=0)
    out = {}
    for name, s, r in (("t2a", sim, rel), ("a2t", sim.T[has_caption], rel.T[has_caption])):
        top = _ranked_relevance(s, r, depth=10)  # [Q, 10]
        n_rel = np.minimum(r.sum(axis=1), 10)
        for k in (1, 5, 10):
            out[f"{name}/R@{k}"] = float(top[:, :k].any(axis=1).mean())
        prec = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
        out[f"{name}/mAP@10"] = float(((prec * top).sum(axis=1) / n_rel).mean())
    return out


def _ranked_relevance(scores: np.ndarray, relevant: np.ndarray, *, depth: int) -> np.ndarray:
    """Relevance [Q, depth] of each query's candidates sorted by score, ties irrelevant-first."""
    depth = min(depth, scores.shape[1])
    out = np.empty((len(scores), depth), dtype=bool)
    for s in range(0, len(scores), _ROWS):
        sc, rl = scores[s : s + _ROWS], relevant[s : s + _ROWS]
        order = np.lexsort((rl, -sc), axis=1)[:, :depth]  # primary: score desc; then rel False
        out[s : s + _ROWS] = np.take_along_axis(rl, order, axis=1)
    return out


# ---------------------------------------------------------------- local dataset readers


@dataclass(frozen=True)
class CaptionSet:
    """An (audio, captions) evaluation set. audio_paths [N]; audio_ids [N] (file name or
    youtube id); captions [T]; text_to_audio [T] int64 index into audio_paths; missing: ids
    listed in the CSV whose audio was not found (dropped when ``allow_missing``)."""

    root: Path
    split: str
    audio_paths: list[Path]
    audio_ids: list[str]
    captions: list[str]
    text_to_audio: np.ndarray
    missing: list[str] = field(default_factory=list)


def read_clotho(root, split: str = "evaluation", *, allow_missing: bool = False) -> CaptionSet:
    """Clotho from a local folder (no download). Expected layout::

        root/clotho_captions_{split}.csv   columns file_name, caption_1 … caption_5
        root/{split}/<file_name>           the audio files

    Captions keep CSV order (audio n's captions, then audio n+1's); empty captions are dropped.
    """
    root = Path(root)
    layout = f"{root}/clotho_captions_{split}.csv and {root}/{split}/<file_name>"
    csv = _need(root / f"clotho_captions_{split}.csv", "Clotho captions CSV", layout)
    audio_dir = _need(root / split, "Clotho audio folder", layout)
    cols = [f"caption_{n}" for n in range(1, 6)]
    df = _read_csv(csv, ["file_name", *cols])
    df["file_name"] = df["file_name"].astype(str)
    present = {p.name for p in audio_dir.iterdir()}
    found = df["file_name"].isin(present).to_numpy()
    missing = _check_missing(df["file_name"][~found].tolist(), allow_missing, audio_dir, "Clotho")
    df = df[found].reset_index(drop=True)
    caps = df[cols].to_numpy(dtype=object)  # [N, 5]
    owner = np.repeat(np.arange(len(df)), len(cols))
    flat = pd.Series(caps.ravel()).fillna("").astype(str).str.strip().to_numpy()
    keep = flat != ""
    return CaptionSet(
        root=root, split=split, audio_paths=[audio_dir / f for f in df["file_name"]],
        audio_ids=df["file_name"].tolist(), captions=flat[keep].tolist(),
        text_to_audio=owner[keep].astype(np.int64), missing=missing,
    )


def read_audiocaps(root, split: str = "test", *, allow_missing: bool = False) -> CaptionSet:
    """AudioCaps from a local folder (no download). Expected layout::

        root/{split}.csv  (or root/dataset/{split}.csv, the official repository's place)
                          columns audiocap_id, youtube_id, start_time, caption
        root/{split}/     audio files (.wav .flac .mp3 .ogg) named by youtube_id
                          (``<youtube_id>.wav``, or AudioSet-style ``Y<youtube_id>.wav``)
                          or by audiocap_id (``<audiocap_id>.wav``)

    One audio per (youtube_id, start_time); its captions are the CSV rows of that clip. The
    file is looked up by youtube_id first, then by any of the clip's audiocap_ids.
    """
    root = Path(root)
    layout = (f"{root}/{split}.csv (or {root}/dataset/{split}.csv) and "
              f"{root}/{split}/<youtube_id or audiocap_id>.wav")
    places = (root / f"{split}.csv", root / "dataset" / f"{split}.csv")
    csv = next((p for p in places if p.is_file()), places[0])
    csv = _need(csv, "AudioCaps CSV", layout)
    audio_dir = _need(root / split, "AudioCaps audio folder", layout)
    df = _read_csv(csv, ["audiocap_id", "youtube_id", "start_time", "caption"])
    df = df.astype({"audiocap_id": str, "youtube_id": str})
    df["caption"] = df["caption"].fillna("").astype(str).str.strip()
    files = {p.stem: p for p in sorted(audio_dir.iterdir()) if p.suffix.lower() in AUDIO_EXTENSIONS}
    clip = df.groupby(["youtube_id", "start_time"], sort=False).ngroup().to_numpy()  # [T]
    paths, ids, missing = {}, [], []
    for c, group in df.groupby(clip, sort=True):
        yid = group["youtube_id"].iloc[0]
        stems = [yid, f"Y{yid}", *group["audiocap_id"]]
        path = next((files[s] for s in stems if s in files), None)
        if path is None:
            missing.append(yid)
        else:
            paths[c] = path
        ids.append(yid)
    missing = _check_missing(missing, allow_missing, audio_dir, "AudioCaps")
    kept = np.array(sorted(paths), dtype=np.int64)
    new_index = np.full(clip.max() + 1 if len(clip) else 0, -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    rows = (new_index[clip] >= 0) & (df["caption"].to_numpy() != "")
    return CaptionSet(
        root=root, split=split, audio_paths=[paths[c] for c in kept],
        audio_ids=[ids[c] for c in kept], captions=df["caption"][rows].tolist(),
        text_to_audio=new_index[clip][rows], missing=missing,
    )


def _need(path: Path, what: str, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}. Expected layout: {layout}")
    return path


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    df = pd.read_csv(path)
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ValueError(f"{path}: missing columns {absent}; expected columns {columns}")
    return df


def _check_missing(missing: list[str], allow: bool, folder: Path, name: str) -> list[str]:
    if missing and not allow:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise FileNotFoundError(f"{name}: {len(missing)} audio file(s) listed in the CSV are not "
                                f"in {folder}: {shown} (allow_missing=True drops them)")
    return list(missing)


def _unit(x, name: str) -> torch.Tensor:
    x = np.asarray(x.detach().to("cpu", torch.float64) if isinstance(x, torch.Tensor) else x)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array [N, d], got shape {x.shape}")
    x = torch.as_tensor(x, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _index(x, name: str, *, n: int, high: int) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if arr.shape != (n,) or arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer [{n}], got {arr.dtype} {arr.shape}")
    if n and (arr.min() < 0 or arr.max() >= high):
        raise ValueError(f"{name}: indices must lie in [0, {high})")
    return arr.astype(np.int64)
