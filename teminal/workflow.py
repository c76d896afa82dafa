"""Glue between a notebook's flat parameters and the library — so notebooks stay thin.

Every notebook's first code cell holds plain scalars (its parameters); the next cell calls
``notebook_params(globals())`` to collect them into one dict ``P``. The functions here turn
``P`` into configured library objects and resolve where things live:

- ``<workdir>/data/``   base sets (the embedded world, ESC-50), reused across runs;
- ``<workdir>/cache/``  frozen-trunk features keyed by backbone, weights and recipe;
- ``<workdir>/runs/<name>-<timestamp>/``  one pipeline run: manifests, checkpoints, notebooks.

``workdir`` is the repository root unless ``TEMINAL_WORKDIR`` is set (the tests set it).
A notebook run on its own (``run_dir = ""``) gets a fresh standalone run folder and builds the
earlier steps it needs for real, at the size its parameters say.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from . import tracking
from .audio import Recipe
from .data import esc50
from .data.clips import ClipStore, render
from .data.pairs import CaptionTemplates, Manifests, PairingConfig, build_manifests, read_manifests, write_manifests
from .data.synth_world import WorldConfig, make_world

SCALARS = (str, int, float, bool)


def notebook_params(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters cell's values: every public plain scalar in ``namespace``.

    Call it right after the parameters cell (and papermill's injected cell), before any
    other assignment, so the dict holds exactly the parameters.
    """
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and type(v) in SCALARS and k not in {"In", "Out"}}


workdir = tracking.workdir


def device_from(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available here; use device='cpu' or 'auto'")
    return torch.device(name)


def resolve_run_dir(P: Mapping[str, Any], notebook: str) -> Path:
    """``P['run_dir']`` (made by the pipeline) or a new ``runs/standalone-<nb>-<time>``."""
    if P.get("run_dir"):
        path = Path(P["run_dir"])
        path.mkdir(parents=True, exist_ok=True)
        return path
    from .pipeline import new_run_dir

    return new_run_dir(f"standalone-{notebook}", workdir() / "runs")


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- data (SPEC §1)
def world_config(P: Mapping[str, Any]) -> WorldConfig:
    return WorldConfig(n_classes=int(P["world_classes"]), clips_per_class=int(P["world_clips_per_class"]),
                       clip_seconds=float(P["world_clip_seconds"]),
                       sample_rate=int(P["world_sample_rate"]), seed=int(P["world_seed"]))


def data_root(P: Mapping[str, Any]) -> Path:
    """Where the base set lives: ``P['data_root']`` or ``<workdir>/data/<dataset>[-<hash>]``."""
    if P.get("data_root"):
        return Path(P["data_root"]).expanduser().resolve()
    if P["dataset"] == "embedded":
        return workdir() / "data" / f"embedded-world-{world_config(P).hash[:10]}"
    return workdir() / "data" / "ESC-50"


def load_base(P: Mapping[str, Any]) -> esc50.BaseSet:
    """The base set: the embedded world (generated if absent) or ESC-50 (downloaded if asked)."""
    root = data_root(P)
    if P["dataset"] == "embedded":
        make_world(root, world_config(P))
        return esc50.load(root, expect_classes=int(P["world_classes"]),
                          allow_partial=bool(P["allow_partial"]))
    if P["dataset"] == "esc50":
        if P.get("esc50_download") and not esc50.has_valid_copy(root):
            esc50.download(root)
        return esc50.load(root, expect_classes=50, allow_partial=bool(P["allow_partial"]))
    raise ValueError(f"dataset must be 'embedded' or 'esc50', got {P['dataset']!r}")


def pairing_config(P: Mapping[str, Any]) -> PairingConfig:
    return PairingConfig(pairing=P["pairing"], seed=int(P["pair_seed"]),
                         test_fraction=float(P["test_fraction"]), val_fraction=float(P["val_fraction"]),
                         train_repeats=int(P["train_repeats"]), eval_repeats=int(P["eval_repeats"]))


def caption_templates(P: Mapping[str, Any]) -> CaptionTemplates:
    return CaptionTemplates(single=P["caption_single"], double=P["caption_double"],
                            before=P["caption_before"], after=P["caption_after"],
                            while_=P["caption_while"], class_prompt=P["caption_class"])


def recipe(P: Mapping[str, Any], sample_rate: int) -> Recipe:
    """How composite clips are made (SPEC §1); ``level_rms`` / ``peak_limit`` ≤ 0 turn them off."""
    lv, pk = float(P["level_rms"]), float(P["peak_limit"])
    return Recipe(sample_rate=sample_rate, level_rms=lv if lv > 0 else None,
                  peak_limit=pk if pk > 0 else None)


@dataclass
class RunData:
    """The base set and the manifests of one run, and how to render any audio key."""

    base: esc50.BaseSet
    manifests: Manifests
    manifest_dir: Path

    def renderer(self, recipe_: Recipe) -> Callable[[str], np.ndarray]:
        store = ClipStore(self.base, sample_rate=recipe_.sample_rate)
        return lambda key: render(key, store, recipe_)


def prepare_data(P: Mapping[str, Any], run_dir: Path) -> RunData:
    """Build or load the base set and write this run's manifests (never overwriting others)."""
    base = load_base(P)
    manifests = build_manifests(base, pairing=pairing_config(P), templates=caption_templates(P))
    out = run_dir / "manifests"
    write_manifests(manifests, out)
    (run_dir / "data.json").write_text(json.dumps(
        {"base_root": str(base.root), "manifests": str(out), "hashes": manifests.hashes}, indent=2))
    return RunData(base=base, manifests=manifests, manifest_dir=out)


def load_data(P: Mapping[str, Any], run_dir: Path) -> RunData:
    """This run's data as the data notebook left it; built now when the run has none yet."""
    out = run_dir / "manifests"
    if not (run_dir / "data.json").exists():
        print(f"no manifests in {run_dir} yet: building them now (as 00_data_synthesis does)")
        return prepare_data(P, run_dir)
    base = load_base(P)
    return RunData(base=base, manifests=read_manifests(out), manifest_dir=out)


def base_summary(base: esc50.BaseSet) -> "pd.DataFrame":
    """Clips per class and fold of a base set."""
    table = base.clips.pivot_table(index="label", columns="fold", values="filename", aggfunc="count")
    return table.fillna(0).astype(int)


def log_manifests(data: RunData) -> "pd.DataFrame":
    """Log manifest counts (metrics), content hashes (params) and files (artifacts); return counts."""
    import mlflow
    import pandas as pd

    m = data.manifests
    rows = []
    for name, df in (("singles", m.singles), ("stage_a", m.stage_a), ("stage_b", m.stage_b)):
        for split, n in df["split"].value_counts().reindex(["train", "val", "test"], fill_value=0).items():
            samples = n * (3 if name == "stage_b" else 2 if name == "stage_a" else 1)
            rows.append({"manifest": name, "split": split, "rows": int(n), "samples": int(samples)})
    counts = pd.DataFrame(rows)
    mlflow.log_metrics({f"data/{r.manifest}/{r.split}": r.rows for r in counts.itertuples()})
    mlflow.log_params({f"hash/{k}": v for k, v in m.hashes.items()})
    mlflow.log_artifacts(str(data.manifest_dir), artifact_path="manifests")
    return counts


def split_list(text: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``."""
    return [t.strip() for t in str(text).split(",") if t.strip()]


def log_table(df: "pd.DataFrame", name: str) -> None:
    """Log a DataFrame as an MLflow table (``<name>.json``) and CSV."""
    tracking.log_dataframe(df.reset_index() if df.index.name else df, f"{name}.json")


@dataclass
class Session:
    """One notebook execution: its parameters, run folder, device and active MLflow run."""

    notebook: str
    P: dict[str, Any]
    run_dir: Path
    device: torch.device
    run_id: str
    _data: RunData | None = None
    _cache: Any = None

    def data(self) -> RunData:
        """This run's base set and manifests (built now if the run has none yet)."""
        if self._data is None:
            self._data = load_data(self.P, self.run_dir)
        return self._data

    def close(self) -> None:
        tracking.close_run("FINISHED")


def start(notebook: str, namespace: Mapping[str, Any], *, tags: dict[str, str] | None = None) -> Session:
    """Collect the parameters, resolve the run folder, seed, open the MLflow run and log
    every parameter. The first call of every notebook after its parameters cell."""
    P = notebook_params(namespace)
    run_dir = resolve_run_dir(P, notebook)
    P["run_dir"] = str(run_dir)
    seed_everything(int(P.get("seed", 0)))
    device = device_from(str(P.get("device", "cpu")))
    active = tracking.open_run(run_id=P.get("mlflow_run_id", ""), run_name=notebook,
                               parent_run_id=P.get("parent_run_id", ""),
                               tracking_uri=P.get("tracking_uri", ""),
                               tags={"teminal.notebook": notebook, "teminal.run_dir": str(run_dir),
                                     **(tags or {})})
    tracking.log_params({k: v for k, v in P.items() if k not in ("mlflow_run_id",)})
    print(f"{notebook}: run folder {run_dir}, MLflow run {active.info.run_id}, device {device}")
    return Session(notebook=notebook, P=P, run_dir=run_dir, device=device, run_id=active.info.run_id)
