"""Typed run parameters: the one place their defaults live (SPEC §1–§5).

A run configuration (``params/*.yaml``) is a ``RunConfig``: a few top-level fields and one
section per notebook. Every section is a pydantic model with ``extra="forbid"``, ``Literal``
options and real lists, so a YAML file, a command-line ``-p name=value`` and a notebook's
parameters cell go through the same validation, and an unknown or ill-typed value is an error
naming it. **The defaults are the smoke configuration**: what nbval runs and what a notebook
opened on its own uses; ``params/default.yaml`` (``make run``) and ``params/paper.yaml``
override them.

Which notebook owns which section, and which of its fields appear in the notebook's
parameters cell, is ``NOTEBOOKS`` below; a test checks every cell against it.
"""
from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NonNeg = Annotated[float, Field(ge=0)]
Setting = tuple[NonNeg, NonNeg, NonNeg, NonNeg, NonNeg]
"""(α_st, α_ct, α_so, α_co, β) of stage B (SPEC §3, paper Table 2)."""

PAPER_GRID: list[Setting] = [(0, 0, 0, 0, 1), (1, 0, 1, 0, 1), (0, 1, 0, 1, 1), (1, 1, 1, 1, 1)]
"""The paper's Table 2 grid (SPEC §5)."""


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
"""A run name: a plain folder name (it becomes ``runs/<name>-<time>``), no path separators."""


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool (``bool``, ``bool | None``, …)."""
    if annotation is bool:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_takes_bool(a) for a in typing.get_args(annotation))
    return False


def _no_bool_for_numbers(model: type[BaseModel], data: Any) -> Any:
    """Refuse ``true``/``false`` for a number (pydantic would take ``true`` as 1): ``-p
    epochs=true`` is an error naming the parameter, not one epoch."""
    if isinstance(data, dict):
        for name, value in data.items():
            f = model.model_fields.get(name)
            if f is not None and isinstance(value, bool) and not _takes_bool(f.annotation):
                raise ValueError(f"{name}: expected a number, got {value!r}")
    return data


class Section(BaseModel):
    """A group of parameters: unknown names and ill-typed values are errors; NaN and ±inf
    are refused everywhere; a bool is never taken for a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _strict_numbers(cls, data: Any) -> Any:
        return _no_bool_for_numbers(cls, data)


class DataParams(Section):
    """00_data_synthesis: the base set, the pairs and how composites sound (SPEC §1)."""

    dataset: Literal["embedded", "esc50", "folder"] = "embedded"
    data_root: str = ""  # esc50: where ESC-50 lives ("" = <workdir>/data/ESC-50); folder: required
    download: bool = False  # esc50: fetch it when data_root holds no copy (needs network)
    allow_partial: bool = False  # continue without missing / damaged clips
    classes: int | list[str] | None = None  # a class subset: a count or label names (None = all)
    class_seed: int | None = None  # with a count: draw the classes with this seed (None = first K)
    world_classes: int = Field(10, ge=3)  # embedded world: sound classes
    world_clips_per_class: int = Field(10, ge=2)  # embedded world: clips per class over 5 folds
    world_clip_seconds: float = Field(0.5, gt=0)  # embedded world: clip length
    world_sample_rate: int = Field(16000, ge=8000)  # embedded world: sample rate (Hz)
    world_seed: int = 0  # embedded world: generator seed
    pairing: Literal["folds", "paper"] = "folds"  # SPEC §1
    test_fold: int | None = None  # folds: the evaluation fold (None = the highest)
    val_fold: int | None = None  # fold of validation singles (None = the one below test_fold)
    test_fraction: float = Field(0.3, gt=0, lt=1)  # unordered class pairs held out for evaluation
    val_fraction: float = Field(0.1, ge=0, lt=1)  # of the training class pairs, kept for val/loss
    train_repeats: int = Field(1, ge=1)  # folds: clip draws per unordered training pair
    eval_repeats: int = Field(1, ge=1)  # folds: clip draws per unordered evaluation pair
    pair_seed: int = 0  # clip draws, phrasings, pair splits
    level_rms: float | None = Field(0.1, gt=0)  # parts brought to this RMS (None = off)
    renormalize: bool = True  # composite brought back to level_rms after combining
    peak_limit: float | None = Field(0.99, gt=0)  # composite scaled down to this peak (None = off)
    crest_limit: float | None = Field(3.0, ge=1)  # renormalized composite limited to this peak / RMS (None = off)
    limit_range_db: float = Field(20.0, gt=0)  # the most the crest limiter lowers a peak (dB)
    tile_overlay: bool = True  # overlay looped to the length of the concatenation
    loop_single: bool = True  # stage-A single looped to the length of a double
    caption_single: str = "single sound of {x}"  # stage A (paper B.2)
    caption_double: str = "combined sound of {x} and {y}"
    caption_before: str = "{x} before {y}"  # stage B, x heard first
    caption_after: str = "{y} after {x}"
    caption_while: str = "{x} while {y}"
    caption_class: str = "a recording of {x}"  # single clips: pretraining, replay (not ZSTE's wording)

    @model_validator(mode="after")
    def _root_needed(self) -> "DataParams":
        if self.dataset == "folder" and not self.data_root:
            raise ValueError("dataset 'folder' needs data_root: the folder holding "
                             "meta/esc50.csv and audio/")
        return self


class ModelParams(Section):
    """00_pretrained_baseline: the backbone every stage starts from (SPEC §2)."""

    backbone: Literal["tiny", "msclap-2022", "msclap-2023"] = "tiny"
    msclap_weights: str = ""  # local CLAP_weights_<version>.pth ("" = msclap's hub download)
    msclap_tokenizer: str = ""  # local tokenizer folder ("" = from the hub)
    eval_batch_size: int = Field(256, ge=1)  # clips per trunk pass
    pretrain_epochs: int = Field(8, ge=1)  # tiny: CLAP-style pretraining epochs
    pretrain_batch_size: int = Field(16, ge=2)  # tiny: pretraining batch size
    pretrain_lr: float = Field(0.002, gt=0)  # tiny: pretraining learning rate
    tiny_width: int = Field(16, ge=4)  # tiny: channels of the first CNN block (doubling)
    tiny_hop: int = Field(160, ge=16)  # tiny: STFT hop (samples)


class TrainParams(Section):
    """Optimisation shared by every stage (paper B.5: Adam, lr 1e-4, batch 256)."""

    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0)  # 0 = off
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    replay_weight: float = Field(0.0, ge=0)  # λ_replay (not in the paper)
    checkpoint_every_s: float = Field(300.0, gt=0)  # last.pt at most this often (and at the end)
    bf16: bool = False  # bf16 autocast on CUDA and on CPUs with native bf16 (smoke: off, exact)


class StageAParams(Section):
    """01_stage_a: TeminAL A (SPEC §3)."""

    epochs: int = Field(2, ge=1)
    batch_size: int = Field(16, ge=2)  # pairs per batch (paper: 256)
    lr: float = Field(0.001, gt=0)
    alpha_same: float = Field(1.0, ge=0)
    alpha_diff: float = Field(1.0, ge=0)
    beta_a: float = Field(1.0, ge=0)
    audio_head: Literal["pooled", "order"] = "pooled"


class StageBParams(Section):
    """02_stage_b: TeminAL B, or the T-CLAP baseline loss (SPEC §3)."""

    start_from: Literal["A", "pretrained"] = "A"  # T-AB or T-B
    loss: Literal["teminal", "tclap"] = "teminal"
    alpha_st: float = Field(1.0, ge=0)
    alpha_ct: float = Field(1.0, ge=0)
    alpha_so: float = Field(1.0, ge=0)
    alpha_co: float = Field(1.0, ge=0)
    beta: float = Field(1.0, ge=0)
    weights_by: Literal["meaning", "block"] = "meaning"
    captions: Literal["paper", "paraphrase"] = "paraphrase"
    tclap_lambda: float = Field(0.5, ge=0)
    audio_head: Literal["pooled", "order"] = "pooled"
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(0.001, gt=0)
    order_lr: float | None = Field(None, gt=0)  # the order module's own lr (None = lr)

    @property
    def setting(self) -> Setting:
        return (self.alpha_st, self.alpha_ct, self.alpha_so, self.alpha_co, self.beta)


PROBE_FEATURES = ("duration_s", "rms", "peak", "crest", "env_cv", "env_range_db", "silent_share",
                  "onset_rate")
"""The probe's statistics (``teminal.probe.FEATURES``; a test keeps the two equal)."""
ProbeFeature = Literal["duration_s", "rms", "peak", "crest", "env_cv", "env_range_db",
                       "silent_share", "onset_rate"]


class ZsteParams(Section):
    """03_zste: which models, which sets, how many bootstrap resamples (SPEC §4)."""

    models: list[Literal["pretrained", "A", "B"]] = ["pretrained", "B"]
    n_boot: int = Field(200, ge=0)
    zste_seed: int = 0  # distractor prompts and bootstrap
    seen: bool = True  # also the seen-combinations set (pairing folds)
    heldout: bool = True  # also the held-out phrasings
    probe: bool = True  # the level/duration probe row
    probe_features: list[ProbeFeature] = list(PROBE_FEATURES)  # statistics its decision uses


class EvaluateParams(Section):
    """05_evaluate_model: any audio–language model on the same items (SPEC §2, §4)."""

    models: list[str] = ["pretrained", "B"]  # run rows (pretrained, A, B, order-head) or specs
    n_boot: int = Field(200, ge=0)  # bootstrap resamples of the 95 % intervals
    seen: bool = True  # also the seen-combinations set (pairing folds)
    heldout: bool = True  # also the held-out phrasings
    triples: int = Field(20, ge=0)  # 3C: at most this many held-out class triples (0 = no 3C)
    triple_template: str = "{x} before {y} before {z}"  # 3C candidates, x heard first
    batch: int = Field(32, ge=1)  # clips rendered and embedded per call
    captioned: Literal["none", "clotho", "audiocaps"] = "none"  # retrieval set layout
    captioned_root: str = ""  # its local folder (Clotho / AudioCaps layout, teminal.retrieval)
    captioned_split: str = ""  # its split ("" = evaluation / test)
    compa_csv: str = ""  # CompA-order benchmark CSV ("" = not scored)
    compa_audio_dir: str = ""  # its CompA_order_files folder

    @field_validator("models")
    @classmethod
    def _specs(cls, v: list[str]) -> list[str]:
        from teminal.eval.specs import RUN_ROWS, parse_spec

        if not v:
            raise ValueError("models is empty")
        for spec in v:
            if spec not in RUN_ROWS:
                parse_spec(spec)  # ValueError naming the spec
        return v

    @model_validator(mode="after")
    def _complete(self) -> "EvaluateParams":
        if self.captioned != "none" and not self.captioned_root:
            raise ValueError(f"captioned {self.captioned!r} needs captioned_root (its folder)")
        if bool(self.compa_csv) != bool(self.compa_audio_dir):
            raise ValueError("compa_csv and compa_audio_dir go together")
        return self


class AblationParams(Section):
    """04_ablations: the paper's Table 2 grid × starts, plus extra rows (SPEC §5)."""

    grid: list[Setting] = [(1, 1, 1, 1, 1)]
    starts: list[Literal["pretrained", "A"]] = ["A"]
    extra_rows: list[Literal["tclap", "order-head", "order-head-other-captions"]] = []
    order_setting: Setting = (1, 1, 1, 1, 1)
    order_epochs: int = Field(2, ge=1)  # stage B epochs of the order-head row
    order_lr: float | None = Field(None, gt=0)  # the order module's lr in that row (None = lr)


SECTIONS: dict[str, type[Section]] = {
    "data": DataParams, "model": ModelParams, "train": TrainParams, "stage_a": StageAParams,
    "stage_b": StageBParams, "zste": ZsteParams, "ablations": AblationParams,
    "evaluate": EvaluateParams,
}
TOP_LEVEL = ("name", "seed", "seeds", "device", "deterministic", "notebooks")


@dataclass(frozen=True)
class NotebookSpec:
    """A notebook's section and the fields its parameters cell shows (the rest comes from the
    run folder's configuration)."""

    section: str
    cell: tuple[str, ...]


NOTEBOOKS: dict[str, NotebookSpec] = {
    "00_data_synthesis": NotebookSpec("data", (
        "dataset", "data_root", "classes", "world_classes", "world_clips_per_class",
        "world_clip_seconds", "pairing", "test_fraction", "train_repeats", "level_rms",
        "renormalize")),
    "00_pretrained_baseline": NotebookSpec("model", (
        "backbone", "msclap_weights", "pretrain_epochs", "pretrain_batch_size", "pretrain_lr",
        "tiny_width")),
    "01_stage_a": NotebookSpec("stage_a", (
        "epochs", "batch_size", "lr", "alpha_same", "alpha_diff", "beta_a", "audio_head")),
    "02_stage_b": NotebookSpec("stage_b", (
        "start_from", "loss", "alpha_st", "alpha_ct", "alpha_so", "alpha_co", "beta",
        "weights_by", "captions", "audio_head", "epochs", "batch_size", "lr", "order_lr")),
    "03_zste": NotebookSpec("zste", ("models", "n_boot", "seen", "heldout", "probe")),
    "04_ablations": NotebookSpec("ablations", (
        "grid", "starts", "extra_rows", "order_setting", "order_epochs", "order_lr")),
    "05_evaluate_model": NotebookSpec("evaluate", (
        "models", "n_boot", "triples", "captioned", "captioned_root", "compa_csv",
        "compa_audio_dir")),
}
PIPELINE = tuple(NOTEBOOKS)
"""Pipeline order."""


class RunConfig(BaseModel):
    """A whole run: ``name``, ``seed``, ``device``, ``deterministic``, the notebooks to run, and
    every section."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)

    name: str = "smoke"  # the run folder is runs/<name>-<time> (letters, digits, . _ -)
    seed: int = 0  # torch / numpy seed of every notebook; the pretrained backbone's seed
    seeds: int | list[int] = 1  # training seeds: a count N (seed, seed+1, …) or a list
    device: str = "cpu"  # "auto" | "cpu" | "cuda" | "cuda:N" (smoke: cpu, so outputs compare)
    deterministic: bool = False  # CPU mode: the same numbers on any x86-64 CPU (determinism.py)
    notebooks: list[str] = list(PIPELINE)
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    stage_a: StageAParams = StageAParams()
    stage_b: StageBParams = StageBParams()
    zste: ZsteParams = ZsteParams()
    ablations: AblationParams = AblationParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="before")
    @classmethod
    def _strict_numbers(cls, data: Any) -> Any:
        return _no_bool_for_numbers(cls, data)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.fullmatch(v) or ".." in v:
            raise ValueError("name must be a plain folder name (letters, digits, '.', '_', "
                             "'-'; no '/' or '..')")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"seeds must be a count ≥ 1 or a list of seeds, got {v}")
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {v}")
        return v

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """The seeds every training-dependent result is trained with: ``seeds`` as a list, or
        ``seed, seed + 1, …`` for a count (one seed = ``seed``: the single-seed run)."""
        if isinstance(self.seeds, list):
            return tuple(self.seeds)
        return tuple(self.seed + k for k in range(self.seeds))

    @field_validator("notebooks")
    @classmethod
    def _notebooks(cls, v: list[str]) -> list[str]:
        unknown = [nb for nb in v if nb not in NOTEBOOKS]
        if unknown:
            raise ValueError(f"unknown notebooks {unknown}; choose from {list(PIPELINE)}")
        if not v:
            raise ValueError("notebooks is empty")
        twice = sorted({nb for nb in v if v.count(nb) > 1})
        if twice:
            raise ValueError(f"notebooks {twice} listed more than once")
        ordered = [nb for nb in PIPELINE if nb in v]
        if ordered != list(v):
            raise ValueError(f"notebooks must keep the pipeline order {ordered}")
        return list(v)

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.model.backbone == "msclap-2023" and "order" in (self.stage_a.audio_head,
                                                                 self.stage_b.audio_head):
            raise ValueError("msclap-2023 has no order-aware audio head; use audio_head: pooled")
        return self

    def section(self, name: str) -> Section:
        return getattr(self, name)
