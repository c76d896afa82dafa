"""Manifest tables as data and files: their splits and columns, the ``Manifests`` container, and
``write_manifests`` / ``read_manifests`` with the sha1 of each table's canonical CSV (SPEC §1).

What the rows mean and how they are drawn is in :mod:`teminal.data.pairs`, which re-exports
everything here; callers import from there.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..integrity import write_atomic

SPLITS = ("train", "val", "test", "seen")  # pair tables (stage A, stage B)
SINGLE_SPLITS = ("train", "val", "test", "paired")  # singles table
TRAINING_SPLITS = ("train", "val")
SINGLES_COLUMNS = ["clip", "target", "label", "caption", "split"]
PAIR_COLUMNS = ["pair", "i", "j", "draw", "clip_i", "clip_j", "clip_i2", "clip_j2", "label_i",
                "label_j"]  # clip_i2 / clip_j2: second clips of class i / j (SPEC §1)
STAGE_A_COLUMNS = PAIR_COLUMNS + ["caption_single", "caption_double", "split"]
STAGE_B_COLUMNS = PAIR_COLUMNS + ["phrasing", "caption_f", "caption_r", "caption_o",
                                  "para_f", "para_r", "para_o", "direct_f", "direct_r",
                                  "mirror_f", "mirror_r", "split"]
INT_COLUMNS = ("pair", "i", "j", "draw", "target")
FILES = {"singles": "singles.csv", "stage_a": "stage_a.csv", "stage_b": "stage_b.csv"}


@dataclass(frozen=True, kw_only=True, eq=False)
class Manifests:
    """The three tables (:mod:`teminal.data.pairs` docstring; docs/CONTRACTS.md), their
    hashes and the config."""

    singles: pd.DataFrame
    stage_a: pd.DataFrame
    stage_b: pd.DataFrame
    hashes: dict[str, str]
    config: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"singles": self.singles, "stage_a": self.stage_a, "stage_b": self.stage_b}

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per split of each table."""
        return {k: {s: int((df["split"] == s).sum())
                    for s in (SINGLE_SPLITS if k == "singles" else SPLITS)}
                for k, df in self.tables().items()}


# -------------------------------------------------------------------------------------- files
def canonical_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def manifest_hash(df: pd.DataFrame) -> str:
    """sha1 of the table's canonical CSV (the exact bytes ``write_manifests`` writes)."""
    return hashlib.sha1(canonical_csv(df).encode()).hexdigest()


def write_manifests(m: Manifests, out_dir: str | Path) -> Path:
    """Write the three CSVs and ``manifest.json`` to ``out_dir``; identical files are left as
    they are, a file with different content → ``FileExistsError`` naming it (nothing written)."""
    out = Path(out_dir)
    tables = m.tables()
    fresh = {n: manifest_hash(df) for n, df in tables.items()}
    if fresh != m.hashes:
        raise ValueError("Manifests.hashes do not match its tables (were they modified?)")
    texts = {FILES[n]: canonical_csv(df) for n, df in tables.items()}
    texts["manifest.json"] = json.dumps({"hashes": m.hashes, "counts": m.counts(),
                                         "config": m.config}, indent=2, sort_keys=True,
                                        default=lambda o: o.item()) + "\n"  # numpy scalars
    for fname, text in texts.items():
        path = out / fname
        if path.exists() and path.read_text() != text:
            raise FileExistsError(f"{path} exists with different content; earlier manifests are "
                                  f"never overwritten: write to another folder")
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in texts.items():
        path = out / fname
        if not path.exists():
            write_atomic(path, lambda p, text=text: p.write_text(text))
    return out


def read_manifests(out_dir: str | Path) -> Manifests:
    """Read what ``write_manifests`` wrote, checking every CSV against its recorded hash."""
    out = Path(out_dir)
    meta_path = out / "manifest.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: no manifests in {out}")
    meta = json.loads(meta_path.read_text())
    tables = {}
    for name, fname in FILES.items():
        path = out / fname
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (listed in {meta_path})")
        text = path.read_text()
        found, want = hashlib.sha1(text.encode()).hexdigest(), meta["hashes"][name]
        if found != want:
            raise ValueError(f"{path}: sha1 {found} does not match {want} recorded in "
                             f"{meta_path}; the file was changed after it was written")
        df = pd.read_csv(io.StringIO(text), keep_default_na=False,
                         dtype={c: (np.int64 if c in INT_COLUMNS else str) for c in text.split("\n", 1)[0].split(",")})
        if manifest_hash(df) != want:
            raise ValueError(f"{path}: does not read back to the table it was written from")
        tables[name] = df
    return Manifests(**tables, hashes=dict(meta["hashes"]), config=meta["config"])
