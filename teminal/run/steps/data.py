"""Data steps: the base set, this run's manifests, how composites are rendered (SPEC §1).

``prepare_data`` (00_data_synthesis) builds the base set — the embedded world (generated if
absent), the real ESC-50 (strict) or any ESC-50-shaped folder, optionally a class subset — writes
the manifests into the run folder and records the decision in ``data.json`` (with the sha1 of
every audio file). ``load_data`` (every later notebook) reads that decision back, or makes it
now in a standalone run; a base set whose content no longer matches ``data.json`` is refused,
naming the changed files (``check_same_base``), so one run never mixes two data sets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlflow
import numpy as np
import pandas as pd

from ... import gates
from ...audio import Recipe
from ...data import base_set, download
from ...data.captions import (HELDOUT_FAMILY, TRAINING_FAMILY, check_no_eval_wording,
                              training_wording)
from ...data.clips import ClipStore, render
from ...data.manifest_files import Manifests, read_manifests, write_manifests
from ...data.pairs import build_manifests, eval_pair_count, looped_rows
from ...data.base_set import DatasetError, changed_files
from ...data.subsets import select_classes
from ...data.synth_world import make_world
from ...data.vocabulary import CLIP_COLUMNS, STAGE_A, STAGE_B, unordered_pairs
from teminal.eval.retrieval import ZERO_SHOT_PROMPT
from teminal.eval.tasks import ZsteTemplates, evaluation_wording
from ..configs import pairing, templates, world_config
from ..layout import RunLayout, read_json, workdir, write_json
from ..params import DataParams
from ..session import Session


@dataclass
class RunData:
    """The base set and manifests of a run, and the recipe composites are made with."""

    base: base_set.BaseSet
    manifests: Manifests
    manifest_dir: Path
    params: DataParams

    def recipe(self, sample_rate: int) -> Recipe:
        """How composites are made (SPEC §1) at the backbone's ``sample_rate``."""
        p = self.params
        return Recipe(sample_rate=sample_rate, level_rms=p.level_rms, renormalize=p.renormalize,
                      peak_limit=p.peak_limit, crest_limit=p.crest_limit,
                      limit_range_db=p.limit_range_db, tile_overlay=p.tile_overlay,
                      loop_single=p.loop_single)

    def renderer(self, sample_rate: int) -> Callable[[str], np.ndarray]:
        """audio key → samples at ``sample_rate`` (clips read lazily, bounded memory)."""
        store, recipe = ClipStore(self.base, sample_rate=sample_rate), self.recipe(sample_rate)
        return lambda key: render(key, store, recipe)

    @property
    def classes(self) -> list[str]:
        return list(self.base.classes)


def data_root(p: DataParams) -> Path:
    """``data_root``, or ``<workdir>/data/embedded-world-<hash>`` / ``<workdir>/data/ESC-50``."""
    if p.data_root:
        return Path(p.data_root).expanduser().resolve()
    if p.dataset == "embedded":
        return workdir() / "data" / f"embedded-world-{world_config(p).hash[:10]}"
    return workdir() / "data" / "ESC-50"


def load_base(p: DataParams) -> base_set.BaseSet:
    """The base set of ``p`` (generated / downloaded when asked), restricted to ``classes``."""
    root = data_root(p)
    if p.dataset == "embedded":
        make_world(root, world_config(p))
        base = base_set.load(root, allow_partial=p.allow_partial)
    elif p.dataset == "esc50":
        if p.download and not download.has_valid_copy(root):
            download.download(root)
        base = base_set.load_esc50(root, allow_partial=p.allow_partial)
    else:
        base = base_set.load(root, allow_partial=p.allow_partial)
    return select_classes(base, p.classes, seed=p.class_seed)


def check_wording(p: DataParams) -> None:
    """SPEC §1: no training caption template (stage A, stage B, paraphrases, the class caption
    the embedded backbone pretrains on) shares three words in a row with a ZSTE prompt or a
    held-out phrasing; a ``ValueError`` names the parameter (``data.caption_*``) otherwise."""
    check_no_eval_wording(training_wording(templates(p), TRAINING_FAMILY),
                          evaluation_wording(ZsteTemplates(), HELDOUT_FAMILY,
                                             zero_shot_prompt=ZERO_SHOT_PROMPT))


def prepare_data(S: Session) -> RunData:
    """Build the base set and write this run's manifests (never replacing other ones)."""
    p = S.config.data
    check_wording(p)
    with S.phase("data"):
        base = load_base(p)
        manifests = build_manifests(base, pairing=pairing(p), templates=templates(p))
        check_eval_pairs(manifests)
        report_loops(manifests)
        write_manifests(manifests, S.layout.manifests)
        write_json(S.layout.data_file, {
            "base_root": str(base.root), "base_name": base.name, "fingerprint": base.fingerprint,
            "classes": list(base.classes), "sample_rate": base.sample_rate,
            "clip_seconds": base.clip_seconds, "hashes": manifests.hashes,
            "files": base.file_hashes})
    S.data = RunData(base=base, manifests=manifests, manifest_dir=S.layout.manifests, params=p)
    return S.data


def report_loops(manifests: Manifests) -> dict[str, int]:
    """SPEC §1: composites loop a clip only where a split holds one clip of a class (always with
    ``pairing: paper``); the run says so — a printed note and the MLflow tag
    ``teminal.looped_composites`` (rows per table) on the active run, if any."""
    looped = looped_rows(manifests)
    if any(looped.values()):
        note = ", ".join(f"{n} of {len(getattr(manifests, t))} {t} rows"
                         for t, n in looped.items())
        print(f"note: {note} loop a clip (a split holds one clip of a class, e.g. pairing: "
              "paper): their overlay and stage-A single repeat it instead of a second clip "
              "(SPEC §1)")
        if mlflow.active_run() is not None:
            mlflow.set_tag("teminal.looped_composites", note)
    return looped


def check_eval_pairs(manifests: Manifests) -> None:
    """SPEC §6: an evaluation set of fewer than ``MIN_EVAL_PAIRS`` unordered class pairs gives
    meaningless intervals — stop before anything is trained on it."""
    n = eval_pair_count(manifests, "test")
    if n < gates.MIN_EVAL_PAIRS:
        raise gates.SanityError(
            f"the held-out evaluation set has {n} unordered class pairs, fewer than "
            f"{gates.MIN_EVAL_PAIRS} (SPEC §6): its intervals would be meaningless. Use more "
            "classes (data.classes / data.world_classes) or a larger data.test_fraction")


def load_data(S: Session) -> RunData:
    """The run's data as 00_data_synthesis left it (built now in a run that has none)."""
    if S.data is not None:
        return S.data
    if not S.layout.data_file.exists():
        print("no manifests in this run folder yet: building them (as 00_data_synthesis does)")
        return prepare_data(S)
    p = S.config.data
    with S.phase("data"):
        base = load_base(p)
        check_same_base(S.layout, base)
        manifests = read_manifests(S.layout.manifests)
    S.data = RunData(base=base, manifests=manifests, manifest_dir=S.layout.manifests, params=p)
    return S.data


def check_same_base(layout: RunLayout, base: base_set.BaseSet) -> None:
    """``DatasetError`` when ``base`` is not the base set the run recorded in ``data.json``
    (its content fingerprint differs), naming the changed files (SPEC §1: a run's numbers
    come from one data set)."""
    if not layout.data_file.exists():
        return
    record = read_json(layout.data_file)
    if record.get("fingerprint") in (None, base.fingerprint):
        return
    if "files" not in record:
        named = "this run's data.json predates per-file hashes, so the files cannot be named"
    else:
        changed = changed_files(record["files"], base)
        named = (f"changed files ({len(changed)}): {', '.join(changed[:10])}"
                 + (" …" if len(changed) > 10 else "")) if changed else "the clip table changed"
    raise DatasetError(
        f"the base set at {base.root} changed since this run recorded it in {layout.data_file} "
        f"(fingerprint {record['fingerprint']} → {base.fingerprint}); {named}. This run's "
        "models and manifests belong to the old data: restore those files, or start a new run")


def base_summary(base: base_set.BaseSet) -> pd.DataFrame:
    """Clips per class and fold."""
    table = base.clips.pivot_table(index="label", columns="fold", values="filename",
                                   aggfunc="count")
    return table.fillna(0).astype(int)


def manifest_counts(data: RunData) -> pd.DataFrame:
    """Rows and samples per manifest and split, and distinct unordered class pairs."""
    rows = []
    for name, df in data.manifests.tables().items():
        per_row = {"stage_b": len(STAGE_B), "stage_a": len(STAGE_A)}.get(name, 1)  # composites
        for split, part in df.groupby("split", sort=False):
            pairs = len(unordered_pairs(part["i"], part["j"])) if "i" in part else pd.NA
            rows.append({"manifest": name, "split": split, "rows": len(part),
                         "samples": per_row * len(part), "class_pairs": pairs})
    out = pd.DataFrame(rows)
    out["class_pairs"] = out["class_pairs"].astype("Int64")
    return out


def log_manifests(S: Session, data: RunData) -> pd.DataFrame:
    """Counts (metrics ``data/<manifest>/<split>``), hashes (params), files (artifacts)."""
    counts = manifest_counts(data)
    mlflow.log_metrics({f"data/{r.manifest}/{r.split}": r.rows for r in counts.itertuples()})
    mlflow.log_params({f"hash/{k}": v for k, v in data.manifests.hashes.items()}
                      | {"base/fingerprint": data.base.fingerprint, "base/name": data.base.name})
    mlflow.log_artifacts(str(data.manifest_dir), artifact_path="manifests")
    return counts


def leak_check(data: RunData) -> pd.DataFrame:
    """What a reviewer asks first: does any unordered class pair or clip of an evaluation set
    also appear in training (train/val rows, or pretraining singles)? One row per set."""
    sb, singles = data.manifests.stage_b, data.manifests.singles
    train = sb[sb["split"].isin(["train", "val"])]
    train_pairs = unordered_pairs(train["i"], train["j"])
    train_clips = set(train[list(CLIP_COLUMNS)].to_numpy().ravel())
    train_clips |= set(singles.loc[singles["split"].isin(["train", "val"]), "clip"])
    out = []
    for split in ("test", "seen"):
        part = sb[sb["split"] == split]
        if part.empty:
            continue
        pairs = unordered_pairs(part["i"], part["j"])
        clips = set(part[list(CLIP_COLUMNS)].to_numpy().ravel())
        out.append({"set": split, "class_pairs": len(pairs),
                    "pairs_also_in_training": len(pairs & train_pairs),
                    "clips": len(clips), "clips_also_in_training": len(clips & train_clips)})
    return pd.DataFrame(out)
