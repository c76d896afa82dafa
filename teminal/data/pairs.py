"""Temporal pair manifests: which clips are paired, with which captions, on which split.

SPEC §1 and paper Algorithm 1. Every ordered class pair ``(i, j)``, ``i ≠ j``, gives one stage-B
row (three samples: forward ``a_i ⊕ a_j``, reversed ``a_j ⊕ a_i`` with the same clips, overlay
``a_i ∧ a_j``) and one stage-A row (a single and a double). Splits are drawn on *unordered* class
pairs, so ``(i, j)`` and ``(j, i)`` always share a side.

- ``pairing="paper"``: one clip per class (by seed); unordered pairs split ``test_fraction`` →
  test, then ``val_fraction`` of the rest → val, the rest → train (paper B.5).
- ``pairing="folds"``: test rows are all ordered pairs drawn from clips of ``test_fold``; train and
  val rows from the other folds, ``val_fraction`` of unordered pairs → val. No test-fold clip is
  ever in train or val (SPEC §1, stricter than the paper).

Manifests hold clip filenames and captions only; audio is composed on the fly (``clips.render``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from teminal.data.esc50 import BaseSet

SPLITS = ("train", "val", "test")
PHRASINGS = ("before", "after")
SINGLES_COLUMNS = ["clip", "target", "label", "caption", "split"]
STAGE_A_COLUMNS = ["pair", "i", "j", "clip_i", "clip_j", "label_i", "label_j",
                   "caption_single", "caption_double", "split"]
STAGE_B_COLUMNS = ["pair", "i", "j", "clip_i", "clip_j", "label_i", "label_j", "phrasing",
                   "caption_f", "caption_r", "caption_o", "split"]
INT_COLUMNS = ("pair", "i", "j", "target")
FILES = {"singles": "singles.csv", "stage_a": "stage_a.csv", "stage_b": "stage_b.csv"}


@dataclass(frozen=True, kw_only=True)
class CaptionTemplates:
    """Caption templates (SPEC §1, paper B.2). ``{x}`` is the FIRST event in time, ``{y}`` the
    second: the forward audio ``a_i ⊕ a_j`` reads ``"x_i before x_j"`` or ``"x_j after x_i"``."""

    single: str = "single sound of {x}"
    double: str = "combined sound of {x} and {y}"
    before: str = "{x} before {y}"
    after: str = "{y} after {x}"
    while_: str = "{x} while {y}"
    class_prompt: str = "the sound of {x}"

    def __post_init__(self) -> None:
        for name in ("single", "double", "before", "after", "while_", "class_prompt"):
            want = {"x"} if name in ("single", "class_prompt") else {"x", "y"}
            text = getattr(self, name)
            try:
                found = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except (ValueError, TypeError) as exc:
                raise ValueError(f"CaptionTemplates.{name}={text!r} is not a format string: {exc}")
            if found != want:
                raise ValueError(f"CaptionTemplates.{name}={text!r} must use exactly the "
                                 f"placeholders {sorted(want)}, found {sorted(found)}")

    def sequence(self, first: str, second: str, phrasing: str) -> str:
        """Caption of ``first ⊕ second`` in ``phrasing`` (``before``/``after``)."""
        if phrasing not in PHRASINGS:
            raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
        return getattr(self, phrasing).format(x=first, y=second)


@dataclass(frozen=True, kw_only=True)
class PairingConfig:
    """How pairs are drawn and split (SPEC §1). ``val_fold`` only splits the singles table;
    ``train_repeats``/``eval_repeats`` (clip draws per ordered pair for train / val and test)
    apply to ``folds`` only: ``paper`` has one clip per class."""

    pairing: str = "folds"
    seed: int = 0
    test_fraction: float = 0.3
    val_fraction: float = 0.1
    test_fold: int = 5
    val_fold: int = 4
    train_repeats: int = 1
    eval_repeats: int = 1

    def __post_init__(self) -> None:
        def count(x: object, low: int) -> bool:
            return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= low

        checks = {
            "pairing": self.pairing in ("paper", "folds"),
            "seed": count(self.seed, 0),
            "test_fraction": 0 < self.test_fraction < 1,
            "val_fraction": 0 <= self.val_fraction < 1,
            "test_fold": count(self.test_fold, 1),
            "val_fold": count(self.val_fold, 1) and self.val_fold != self.test_fold,
            "train_repeats": count(self.train_repeats, 1),
            "eval_repeats": count(self.eval_repeats, 1),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"PairingConfig: invalid {bad[0]}={getattr(self, bad[0])!r} "
                             f"(pairing in 'paper'/'folds', fractions in [0, 1), "
                             f"val_fold != test_fold, repeats >= 1)")


@dataclass(frozen=True, kw_only=True, eq=False)
class Manifests:
    """The three tables (columns in docs/CONTRACTS.md), their hashes and the config."""

    singles: pd.DataFrame
    stage_a: pd.DataFrame
    stage_b: pd.DataFrame
    hashes: dict[str, str]
    config: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"singles": self.singles, "stage_a": self.stage_a, "stage_b": self.stage_b}

    def counts(self) -> dict[str, dict[str, int]]:
        return {k: {s: int((df["split"] == s).sum()) for s in SPLITS}
                for k, df in self.tables().items()}


# ----------------------------------------------------------------------------------- building
def build_manifests(base: BaseSet, *, pairing: PairingConfig,
                    templates: CaptionTemplates | None = None) -> Manifests:
    """Singles, stage-A and stage-B tables of ``base`` (SPEC §1; deterministic in the seed)."""
    templates = templates or CaptionTemplates()
    k = len(base.classes)
    if k < 3:
        raise ValueError(f"base set {base.name} has {k} classes; pairs need at least 3")
    clips = base.clips[["filename", "fold", "target"]].sort_values(["target", "filename"])
    if pairing.pairing == "paper":
        chosen = one_clip_per_class(clips, k, seed=pairing.seed)
        split = np.where(clips["filename"].isin(chosen), "train", "test")
        rows = paper_rows(k, chosen, pairing)
    else:
        split = fold_split(clips, base.name, pairing)
        rows = folds_rows(k, clips, base.name, pairing)
    singles = pd.DataFrame({"clip": clips["filename"].to_numpy(), "target": clips["target"].to_numpy()})
    singles["label"] = [base.classes[t] for t in singles["target"]]
    singles["caption"] = [templates.class_prompt.format(x=x) for x in singles["label"]]
    singles["split"] = split
    rows["label_i"] = [base.classes[t] for t in rows["i"]]
    rows["label_j"] = [base.classes[t] for t in rows["j"]]
    stage_a, stage_b = stage_a_table(rows, templates), stage_b_table(rows, templates, pairing.seed)
    config = {"pairing": asdict(pairing), "templates": asdict(templates),
              "base": {"name": base.name, "fingerprint": base.fingerprint, "n_classes": k,
                       "n_clips": int(len(clips))}}
    tables = {"singles": singles[SINGLES_COLUMNS].reset_index(drop=True),
              "stage_a": stage_a, "stage_b": stage_b}
    return Manifests(**tables, hashes={n: manifest_hash(df) for n, df in tables.items()},
                     config=config)


def one_clip_per_class(clips: pd.DataFrame, k: int, *, seed: int) -> np.ndarray:
    """The ``paper`` choice: one clip of each class, drawn by ``seed``. (K,) filenames."""
    rng = np.random.default_rng([seed, 0])
    return np.array([rng.choice(clips.loc[clips["target"] == t, "filename"].to_numpy())
                     for t in range(k)])


def unordered_sides(k: int, *, test_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    """(K, K) split name of each class pair, symmetric: ``(i, j)`` and ``(j, i)`` agree."""
    a, b = np.triu_indices(k, 1)
    order = np.random.default_rng([seed, 1]).permutation(len(a))
    n_test = int(round(test_fraction * len(a)))
    n_val = int(round(val_fraction * (len(a) - n_test)))
    if n_test + n_val >= len(a):
        raise ValueError(f"{k} classes give {len(a)} unordered pairs: too few for "
                         f"test_fraction={test_fraction}, val_fraction={val_fraction}")
    side = np.full(len(a), "train", dtype=object)
    side[order[:n_test]] = "test"
    side[order[n_test:n_test + n_val]] = "val"
    table = np.full((k, k), "", dtype=object)
    table[a, b] = side
    table[b, a] = side
    return table


def ordered_pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``(i, j)``, ``i ≠ j``, in row-major order: K(K-1) pairs."""
    i, j = np.nonzero(~np.eye(k, dtype=bool))
    return i, j


def paper_rows(k: int, chosen: np.ndarray, cfg: PairingConfig) -> pd.DataFrame:
    sides = unordered_sides(k, test_fraction=cfg.test_fraction,
                            val_fraction=cfg.val_fraction, seed=cfg.seed)
    i, j = ordered_pairs(k)
    rows = pd.DataFrame({"pair": i * k + j, "i": i, "j": j, "clip_i": chosen[i],
                         "clip_j": chosen[j], "split": sides[i, j]})
    return order_rows(rows)


def fold_split(clips: pd.DataFrame, name: str, cfg: PairingConfig) -> np.ndarray:
    """Singles split in ``folds`` mode: test_fold → test, val_fold → val, the rest → train."""
    folds = set(clips["fold"])
    for param in ("test_fold", "val_fold"):
        if getattr(cfg, param) not in folds:
            raise ValueError(f"PairingConfig.{param}={getattr(cfg, param)} is not a fold of "
                             f"base set {name} (folds {sorted(folds)})")
    fold = clips["fold"].to_numpy()
    return np.where(fold == cfg.test_fold, "test", np.where(fold == cfg.val_fold, "val", "train"))


def folds_rows(k: int, clips: pd.DataFrame, name: str, cfg: PairingConfig) -> pd.DataFrame:
    """Test rows from test-fold clips; train/val rows from the other folds' clips."""
    sides = unordered_sides(k, test_fraction=0.0, val_fraction=cfg.val_fraction, seed=cfg.seed)
    i, j = ordered_pairs(k)
    is_test = clips["fold"].to_numpy() == cfg.test_fold
    rng = np.random.default_rng([cfg.seed, 3])
    parts = [draw(rng, clips[is_test], i, j, k, cfg.eval_repeats, "test", name)]
    for split, repeats in (("train", cfg.train_repeats), ("val", cfg.eval_repeats)):
        keep = sides[i, j] == split
        parts.append(draw(rng, clips[~is_test], i[keep], j[keep], k, repeats, split, name))
    return order_rows(pd.concat(parts, ignore_index=True))


def draw(rng: np.random.Generator, pool: pd.DataFrame, i: np.ndarray, j: np.ndarray, k: int,
         repeats: int, split: str, name: str) -> pd.DataFrame:
    """``repeats`` random clip draws (one clip of class i, one of class j) per ordered pair."""
    counts = np.bincount(pool["target"], minlength=k)
    if (counts == 0).any():
        raise ValueError(f"base set {name}: classes {np.nonzero(counts == 0)[0].tolist()} have "
                         f"no clip for the {split} split")
    files = pool["filename"].to_numpy()  # sorted by (target, filename)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    i, j = np.repeat(i, repeats), np.repeat(j, repeats)
    pick_i = start[i] + (rng.random(len(i)) * counts[i]).astype(int)
    pick_j = start[j] + (rng.random(len(j)) * counts[j]).astype(int)
    return pd.DataFrame({"pair": i * k + j, "i": i, "j": j, "clip_i": files[pick_i],
                         "clip_j": files[pick_j], "split": split})


def order_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered train, val, test, then by pair (stable: draws keep their order)."""
    key = rows["split"].map({s: n for n, s in enumerate(SPLITS)})
    return rows.assign(_k=key).sort_values(["_k", "pair"], kind="stable") \
        .drop(columns="_k").reset_index(drop=True)


def stage_a_table(rows: pd.DataFrame, t: CaptionTemplates) -> pd.DataFrame:
    out = rows.copy()
    out["caption_single"] = [t.single.format(x=x) for x in out["label_i"]]
    out["caption_double"] = [t.double.format(x=x, y=y) for x, y in zip(out["label_i"], out["label_j"])]
    return out[STAGE_A_COLUMNS]


def stage_b_table(rows: pd.DataFrame, t: CaptionTemplates, seed: int) -> pd.DataFrame:
    """f = ``a_i ⊕ a_j``, r = T(f) = ``a_j ⊕ a_i`` (same phrasing), o = ``x_i while x_j``."""
    out = rows.copy()
    rng = np.random.default_rng([seed, 2])
    out["phrasing"] = np.where(rng.random(len(out)) < 0.5, "before", "after")
    li, lj, ph = out["label_i"], out["label_j"], out["phrasing"]
    out["caption_f"] = [t.sequence(x, y, p) for x, y, p in zip(li, lj, ph)]
    out["caption_r"] = [t.sequence(y, x, p) for x, y, p in zip(li, lj, ph)]
    out["caption_o"] = [t.while_.format(x=x, y=y) for x, y in zip(li, lj)]
    return out[STAGE_B_COLUMNS]


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
            tmp = path.with_name(f".{fname}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
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
