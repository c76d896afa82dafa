"""The run folder: where a run's configuration, data decisions, checkpoints and results live.

::

    runs/<name>-<timestamp>/
      config.yaml            the final parameters of the run (after -p overrides)
      pipeline.json          notebooks run, their MLflow runs, status, where it stopped
      data.json              base set (root, fingerprint, classes) and manifest hashes
      manifests/             singles.csv, stage_a.csv, stage_b.csv, manifest.json (SPEC §1)
      checkpoints/<tag>/     model.pt (pretrained embedded backbone) or best.pt / last.pt
                             (trained heads) and meta.json (role, input key, history)
      evaluations/<tag>.json ZSTE tables of a model (held out, seen, held-out phrasings)
      notebooks/             executed copies
      profile.jsonl          seconds per notebook phase (benchmarks/profile_run.py)

Later notebooks read what earlier ones decided from here. Nothing here is ever overwritten
with different content: a second result for the same role under other inputs gets its own tag;
a stage that was interrupted (its ``meta.json`` says ``"finished": false`` with its input key)
keeps its folder and resumes there from ``last.pt``. Every JSON record is written atomically
with a checksum (``teminal.integrity``); a damaged one is an ``IntegrityError`` naming it.
``workdir`` (``TEMINAL_WORKDIR`` or the repository root) holds ``runs/``, ``data/``, ``cache/``.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import hints, integrity, tracking
from .config import ConfigError, to_yaml, validate, yaml_load
from .params import RENAMED, RunConfig



def workdir() -> Path:
    return tracking.workdir()


def write_json(path: Path, obj: Any) -> None:
    """Write a JSON record atomically with its checksum; NaN/inf become null
    (``teminal.integrity.write_json``)."""
    integrity.write_json(path, obj)


def read_json(path: Path) -> Any:
    """A JSON record written by ``write_json``, checked (``IntegrityError`` naming it)."""
    return integrity.read_json(path)


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """A fresh ``<root>/<name>-<timestamp>`` folder; never an existing one."""
    base = (root or workdir() / "runs").resolve()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    first = (base / f"{name}-{stamp}").resolve()
    if first.parent != base:
        raise ConfigError(f"name {name!r} would make the run folder {first} outside {base}; use "
                          "a plain name (-p name=my-run)")
    base.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        candidate = base / (f"{name}-{stamp}" if k == 1 else f"{name}-{stamp}-{k}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"could not make a new run folder under {base}")


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run folder and the small records kept in it."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def data_file(self) -> Path:
        return self.root / "data.json"

    @property
    def record_file(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    def checkpoint(self, tag: str) -> Path:
        return self.root / "checkpoints" / tag

    def evaluation(self, tag: str) -> Path:
        return self.root / "evaluations" / f"{tag}.json"

    # ---- configuration -------------------------------------------------------------------
    def write_config(self, config: RunConfig) -> None:
        """Record the run's final parameters; an existing, different record is an error."""
        text = to_yaml(config)
        if self.config_file.exists() and self.config_file.read_text() != text:
            raise FileExistsError(f"{self.config_file} records other parameters; a run folder "
                                  "keeps the configuration it was made with")
        integrity.write_atomic(self.config_file, lambda p: p.write_text(text))

    def read_config(self) -> RunConfig:
        if not self.config_file.is_file():
            raise ConfigError(f"{self.root} is not a run folder: no config.yaml (make one with "
                              f"`{hints.teminal()} run params/<name>.yaml`, or leave run_dir "
                              "empty for a standalone run)")
        return validate(yaml_load(self.config_file.read_text(), source=str(self.config_file)) or {},
                        source=str(self.config_file))

    def read_recorded_config(self) -> RunConfig:
        """The configuration a finished run recorded, for reading its results (``report``):
        a run written before a parameter was renamed (``params.RENAMED``) keeps its old names
        in ``config.yaml``; LEGACY-RECORD READING moves a value whose meaning is unchanged to
        its new name and drops a training budget given in epochs (what ``report`` reads does
        not depend on it). Running or resuming such a folder still refuses the old names."""
        raw = yaml_load(self.config_file.read_text(), source=str(self.config_file)) or {} \
            if self.config_file.is_file() else None
        if raw is None:
            return self.read_config()  # the error that names what is missing
        for old, (new, _) in RENAMED.items():
            section, name = old.split(".", 1)
            if name not in (raw.get(section) or {}):
                continue
            value = raw[section].pop(name)
            if not new.endswith("optimizer_steps") and not new.endswith("order_steps"):
                target, field = new.split(".", 1)
                raw.setdefault(target, {}).setdefault(field, value)
        return validate(raw, source=str(self.config_file))

    # ---- records -------------------------------------------------------------------------
    def read_record(self) -> dict:
        return read_json(self.record_file) if self.record_file.exists() else {}

    def write_record(self, record: dict) -> None:
        write_json(self.record_file, record)

    def tags(self) -> list[str]:
        folder = self.root / "checkpoints"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def read_meta(self, tag: str) -> dict | None:
        meta = self.checkpoint(tag) / "meta.json"
        return read_json(meta) if meta.exists() else None

    def find_key(self, key: str) -> str | None:
        """The tag of a finished checkpoint whose inputs hash to ``key``, if any."""
        for tag in self.tags():
            meta = self.read_meta(tag)
            if meta and meta.get("key") == key and meta.get("finished"):
                return tag
        return None

    def free_tag(self, role: str, key: str) -> str:
        """``role`` when free or holding this very key (finished, or started and interrupted:
        ``meta.json`` with ``"finished": false``, so the stage resumes there), else
        ``role-<key[:8]>``: a second result for one role never replaces the first."""
        meta = self.read_meta(role)
        if meta is None and not self.checkpoint(role).exists():
            return role
        if meta is not None and meta.get("key") == key:
            return role
        return f"{role}-{key[:8]}"

    # ---- profile -------------------------------------------------------------------------
    @contextmanager
    def phase(self, notebook: str, name: str) -> Iterator[None]:
        """Time a phase of a notebook into ``profile.jsonl`` (benchmarks/profile_run.py)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add_phase(notebook, name, time.perf_counter() - start)

    def add_phase(self, notebook: str, name: str, seconds: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "profile.jsonl", "a") as fh:
            fh.write(json.dumps({"notebook": notebook, "phase": name,
                                 "seconds": round(seconds, 3)}) + "\n")
