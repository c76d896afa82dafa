"""Typed run parameters: the one place their defaults and their explanations live (SPEC §1–§6).

Read it top to bottom: one section per step, one line per parameter, its default and what it
does (with the paper's value where the paper gives one). A run configuration
(``params/*.yaml``) is a ``RunConfig``: a few top-level fields and these sections. YAML, ``-p
section.name=value`` and a notebook's parameters cell go through the same validation
(``run/section.py``): an unknown or ill-typed value is an error naming it. **The defaults are
the smoke configuration** (what nbval runs and a notebook opened on its own uses);
``params/default.yaml`` (``make run``) and ``params/paper.yaml`` override them.

Training budgets are **optimizer steps**: a stage runs ``epochs = ceil(steps /
steps_per_epoch)`` whole epochs (``steps_per_epoch = training rows // batch_size``), so a small
data set gets as many updates as a large one; both numbers are logged (``run/configs.py``).
The library configs (``train.TrainConfig``, the loss weights, ``TinyConfig``) are built from
these sections in ``run/configs.py`` only. Renamed parameters are in ``RENAMED``; which
notebook's cell shows which field is ``NOTEBOOKS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .section import (STRICT, NonNeg, Section, check_device, check_name, check_order,
                      check_seeds, no_bool_for_numbers)

Setting = tuple[NonNeg, NonNeg, NonNeg, NonNeg, NonNeg]
"""A stage-B weight setting ``(α_st, α_ct, α_so, α_co, β)`` in the order of
``losses.StageBWeights`` (SPEC §3 table; the paper's Table 2 grid is ``losses.TABLE2_GRID``)."""

Optimizer = Literal["adam", "adamw"]
Schedule = Literal["constant", "cosine"]  # per step after warmup: constant | cosine decay to 0
AudioHead = Literal["pooled", "order"]  # pooled: the paper's head | order: order-aware (frames)
Dataset = Literal["embedded", "esc50", "folder"]  # embedded world | ESC-50 | ESC-50-shaped folder
BackboneName = Literal["tiny", "msclap-2022", "msclap-2023"]
ExtraRow = Literal["tclap", "order-head", "order-head-other-captions", "order-head-binding"]


class DataParams(Section):
    """00_data_synthesis: the base set, the pairs and how composites sound (SPEC §1)."""

    dataset: Dataset = "embedded"  # the base set (Dataset above)
    data_root: str = ""  # esc50: where ESC-50 lives ("" = <workdir>/data/ESC-50); folder: required
    download: bool = False  # esc50: fetch it when data_root holds no copy (needs network)
    allow_partial: bool = False  # continue without missing / damaged clips
    classes: int | list[str] | None = None  # a class subset: a count or label names (None = all)
    class_seed: int | None = None  # with a count: draw the classes with this seed (None = first K)
    world_classes: int = Field(10, ge=3)  # embedded world: sound classes
    world_clips_per_class: int = Field(10, ge=2)  # embedded world: clips per class over 5 folds
    world_clip_seconds: float = Field(0.5, gt=0)  # embedded world: clip length (s)
    world_sample_rate: int = Field(16000, ge=8000)  # embedded world: sample rate (Hz)
    world_seed: int = 0  # embedded world: generator seed
    pairing: Literal["folds", "paper"] = "folds"  # held out: clips and pairs | 1 clip/class (B.5)
    test_fold: int | None = None  # folds: the evaluation fold (None = the highest)
    val_fold: int | None = None  # folds: validation singles' fold (None = the one below test_fold)
    test_fraction: float = Field(0.3, gt=0, lt=1)  # class pairs held out to evaluate (paper: 0.3)
    val_fraction: float = Field(0.1, ge=0, lt=1)  # training pairs kept for val/loss (paper: none)
    train_repeats: int = Field(1, ge=1)  # folds: clip draws per unordered training pair
    eval_repeats: int = Field(1, ge=1)  # folds: clip draws per unordered evaluation pair
    pair_seed: int = 0  # clip draws, phrasings, pair splits
    level_rms: float | None = Field(0.1, gt=0)  # parts brought to this RMS to combine (None = off)
    renormalize: bool = True  # composite brought back to level_rms after combining
    peak_limit: float | None = Field(0.99, gt=0)  # composite scaled down to this peak (None = off)
    crest_limit: float | None = Field(None, ge=1)  # composites limited to this peak/RMS (None = off)
    limit_range_db: float = Field(20.0, gt=0)  # the most the crest limiter lowers a peak (dB)
    tile_overlay: bool = True  # overlay looped to the length of the concatenation
    loop_single: bool = True  # stage-A single looped to the length of a double
    caption_single: str = "single sound of {x}"  # stage A single (paper B.2)
    caption_double: str = "combined sound of {x} and {y}"  # stage A double (paper B.2)
    caption_before: str = "{x} before {y}"  # stage B, x heard first (paper)
    caption_after: str = "{y} after {x}"  # stage B, x heard first (paper)
    caption_while: str = "{x} while {y}"  # stage B overlay (paper)
    caption_class: str = "a recording of {x}"  # singles: pretraining, replay (not ZSTE's wording)

    @model_validator(mode="after")
    def _root_needed(self) -> "DataParams":
        if self.dataset == "folder" and not self.data_root:
            raise ValueError("dataset 'folder' needs data_root: the folder holding "
                             "meta/esc50.csv and audio/")
        return self


class ModelParams(Section):
    """00_pretrained_baseline: the backbone every stage starts from (SPEC §2)."""

    backbone: BackboneName = "tiny"  # tiny: pretrained here (no weights exist); paper: msclap-2022
    msclap_weights: str = ""  # local CLAP_weights_<version>.pth ("" = msclap's hub download)
    msclap_tokenizer: str = ""  # local tokenizer folder ("" = from the hub)
    eval_batch_size: int = Field(256, ge=1)  # clips per trunk pass (cache, zero-shot)
    tiny_width: int = Field(16, ge=4)  # tiny: channels of the first CNN block (doubling per block)
    tiny_hop: int = Field(160, ge=16)  # tiny: STFT hop (samples)


class PretrainParams(Section):
    """00_pretrained_baseline, tiny backbone only: CLAP-style pretraining on the training
    singles (SPEC §2; msclap's published weights need none). Not in the paper."""

    optimizer_steps: int = Field(24, ge=1)  # the budget (smoke: 8 epochs × 3; default.yaml: 120)
    batch_size: int = Field(16, ge=2)  # clips per batch (false negatives of one class masked)
    lr: float = Field(0.002, gt=0)  # peak learning rate
    optimizer: Optimizer = "adamw"  # whole audio CNN + text head train: AdamW
    weight_decay: float = Field(1e-4, ge=0)  # weight decay (decoupled with adamw)
    schedule: Schedule = "cosine"  # learning-rate schedule (see Schedule)
    warmup_steps: int = Field(0, ge=0)  # linear warmup steps
    grad_clip: float = Field(1.0, ge=0)  # max global gradient norm (0 = off)
    keep: Literal["best", "last"] = "best"  # the lowest pretrain/val/loss | the last step's model


class TrainParams(Section):
    """Optimisation shared by stage A and stage B (paper B.5: Adam, constant lr, no clipping);
    ``bf16`` and ``checkpoint_every_s`` also apply to pretraining."""

    optimizer: Optimizer = "adam"  # paper B.5: adam
    weight_decay: float = Field(0.0, ge=0)  # paper: 0
    grad_clip: float = Field(1.0, ge=0)  # max global gradient norm, 0 = off (paper: off)
    schedule: Schedule = "cosine"  # per step after warmup (paper: constant)
    warmup_steps: int = Field(0, ge=0)  # linear warmup steps (paper: 0)
    replay_weight: float = Field(0.0, ge=0)  # λ_replay: singles' InfoNCE (SPEC §3; paper: none)
    checkpoint_every_s: float = Field(300.0, gt=0)  # last.pt at most this often; no result changes
    bf16: bool = False  # bf16 autocast on CUDA / CPUs with native bf16 (smoke: off, exact fp32)


class StageAParams(Section):
    """01_stage_a: TeminAL A, one sound vs two (SPEC §3, paper eq. 8–9, 22–26)."""

    optimizer_steps: int = Field(6, ge=1)  # the budget (smoke: 2 epochs × 3; default.yaml: 136)
    batch_size: int = Field(16, ge=2)  # pairs per batch, 2N × 2N logits (paper B.5: 256)
    lr: float = Field(0.001, gt=0)  # heads' learning rate (paper B.5: 1e-4 on msclap)
    alpha_same: float = Field(1.0, ge=0)  # α_same: negatives sharing the anchor's class (B.3: 1)
    alpha_diff: float = Field(1.0, ge=0)  # α_diff: negatives sharing no class (B.3: 1)
    beta_a: float = Field(1.0, ge=0)  # β_A in L_A = L_a2t + β_A L_t2a (paper B.3: 1)
    audio_head: AudioHead = "pooled"  # the trained audio head (paper: pooled)


class StageBParams(Section):
    """02_stage_b: TeminAL B (or the T-CLAP baseline loss), order and overlap (SPEC §3)."""

    start_from: Literal["A", "pretrained"] = "A"  # A: T-AB (paper's headline) | pretrained: T-B
    loss: Literal["teminal", "tclap"] = "teminal"  # TeminAL B | T-CLAP (a reading of its abstract)
    alpha_st: float = Field(1.0, ge=0)  # α_st: the same pair's reversed caption (paper: 0 or 1)
    alpha_ct: float = Field(1.0, ge=0)  # α_ct: other pairs' reversed captions (paper: 0 or 1)
    alpha_so: float = Field(1.0, ge=0)  # α_so: the same pair's overlay caption (paper: 0 or 1)
    alpha_co: float = Field(1.0, ge=0)  # α_co: other pairs' overlay captions (paper: 0 or 1)
    beta: float = Field(1.0, ge=0)  # β in L_B = L_a2t + β L_t2a (paper: 1; Table 3 T-AB: all 1)
    weights_by: Literal["meaning", "block"] = "meaning"  # same pair = same classes | row (eq. 4)
    captions: Literal["paper", "paraphrase"] = "paraphrase"  # paper: before/after/while | family
    tclap_lambda: float = Field(0.5, ge=0)  # T-CLAP: λ in L = L_c + λ L_t (T-CLAP: 0.5)
    audio_head: AudioHead = "pooled"  # also the head of T-AB's stage A (logged.start_of)
    optimizer_steps: int = Field(6, ge=1)  # the budget (smoke: 2 epochs × 3; default.yaml: 204)
    batch_size: int = Field(16, ge=2)  # pairs per batch, 3N × 3N logits (paper B.5: 256)
    lr: float = Field(0.001, gt=0)  # heads' learning rate (paper B.5: 1e-4 on msclap)
    order_lr: float | None = Field(None, gt=0)  # the order module's own lr (None = lr)
    mirror_share: float | None = Field(None, ge=0, le=1)  # share captioned "{y} after {x}"-style
    # (issue 23: mirror-worded, redrawn every step; the rest "{x} before {y}"-style, both from
    # BINDING_FAMILY); None = the `captions` columns. Not in the paper.

    @model_validator(mode="after")
    def _mirror(self) -> "StageBParams":
        if self.mirror_share is not None and self.loss != "teminal":
            raise ValueError(f"mirror_share applies to the TeminAL loss; loss {self.loss!r} "
                             f"takes the `captions` columns (-p stage_b.mirror_share=null)")
        return self


PROBE_FEATURES = ("duration_s", "rms", "peak", "crest", "env_cv", "env_range_db", "silent_share",
                  "onset_rate")
"""The probe's statistics (``teminal.eval.probe.FEATURES``; a test keeps the two equal)."""
PROBE_CUE_FEATURES = ("duration_s", "rms", "peak", "crest", "silent_share")
"""SPEC §4's level and length statistics (silent share: the sounding length), the decision's
default (``probe.CUE_FEATURES``)."""
ProbeFeature = Literal["duration_s", "rms", "peak", "crest", "env_cv", "env_range_db",
                       "silent_share", "onset_rate"]


class ZsteParams(Section):
    """03_zste: which models, which sets, how many bootstrap resamples (SPEC §4)."""

    models: list[Literal["pretrained", "A", "B"]] = ["pretrained", "B"]  # rows of the ZSTE table
    n_boot: int = Field(200, ge=0)  # bootstrap resamples of the 95 % intervals (0 = none)
    zste_seed: int = 0  # distractor prompts and bootstrap
    seen: bool = True  # also the seen-combinations set (pairing folds)
    heldout: bool = True  # also the held-out phrasings
    probe: bool = True  # the level/duration probe row (what loudness and length alone decide)
    probe_features: list[ProbeFeature] = list(PROBE_CUE_FEATURES)  # statistics its decision uses


class EvaluateParams(Section):
    """05_evaluate_model: any audio–language model on the same items (SPEC §2, §4)."""

    models: list[str] = ["pretrained", "B"]  # run rows (pretrained, A, B, order-head) or specs
    n_boot: int = Field(200, ge=0)  # bootstrap resamples of the 95 % intervals
    seen: bool = True  # also the seen-combinations set (pairing folds)
    heldout: bool = True  # also the held-out phrasings
    triples: int = Field(20, ge=0)  # 3C (05 and 03_zste): held-out class triples drawn (0 = no 3C)
    triple_template: str = "{x} before {y} before {z}"  # 3C candidates, x heard first

    @field_validator("triple_template")
    @classmethod
    def _three_slots(cls, v: str) -> str:
        from teminal.data.captions import check_template

        check_template(v, {"x", "y", "z"}, owner="evaluate.triple_template")
        return v
    batch: int = Field(32, ge=1)  # clips rendered and embedded per call
    captioned: Literal["none", "clotho", "audiocaps"] = "none"  # retrieval set (paper Table 1)
    captioned_root: str = ""  # its local folder (Clotho / AudioCaps layout, teminal.eval.retrieval)
    captioned_split: str = ""  # its split ("" = evaluation / test)
    captioned_allow_missing: bool = False  # score without clips whose audio file is absent
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

    grid: list[Setting] = [(1, 1, 1, 1, 1)]  # settings (paper: the 4 of losses.TABLE2_GRID)
    starts: list[Literal["pretrained", "A"]] = ["A"]  # T-B and/or T-AB per setting (paper: both)
    extra_rows: list[ExtraRow] = []  # rows beyond the grid
    order_setting: Setting = (1, 1, 1, 1, 1)  # α/β of the order-aware head's T-AB row
    order_steps: int = Field(6, ge=1)  # the order-head row's budget (default.yaml: 340)
    order_lr: float | None = Field(None, gt=0)  # its order module's lr (None = stage_b.lr)
    binding_share: float = Field(0.5, ge=0, le=1)  # mirror_share of the order-head-binding row


SECTIONS: dict[str, type[Section]] = {
    "data": DataParams, "model": ModelParams, "pretrain": PretrainParams, "train": TrainParams,
    "stage_a": StageAParams, "stage_b": StageBParams, "zste": ZsteParams,
    "ablations": AblationParams, "evaluate": EvaluateParams,
}
TOP_LEVEL = ("name", "seed", "seeds", "device", "deterministic", "notebooks")

_STEPS = "budgets are optimizer steps: steps = epochs × the logged budget/steps_per_epoch"
_OWN = "pretraining has its own section"
RENAMED: dict[str, tuple[str, str]] = {
    "model.pretrain_epochs": ("pretrain.optimizer_steps", _STEPS),
    "model.pretrain_batch_size": ("pretrain.batch_size", _OWN),
    "model.pretrain_lr": ("pretrain.lr", _OWN),
    "stage_a.epochs": ("stage_a.optimizer_steps", _STEPS),
    "stage_b.epochs": ("stage_b.optimizer_steps", _STEPS),
    "ablations.order_epochs": ("ablations.order_steps", _STEPS),
}
"""Old ``section.name`` → (new name, why): given in YAML or ``-p``, an old name is an error
naming the new one."""


@dataclass(frozen=True)
class NotebookSpec:
    """A notebook's own section (its MLflow run logs it) and its parameters cell: ``cell``
    lists ``(section, field)``; the cell's variable is the field's name (the rest comes from
    the run folder's configuration)."""

    section: str
    cell: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The cell's variable names, in cell order."""
        return tuple(name for _, name in self.cell)


def _cell(section: str, *names: str) -> tuple[tuple[str, str], ...]:
    return tuple((section, name) for name in names)


NOTEBOOKS: dict[str, NotebookSpec] = {
    "00_data_synthesis": NotebookSpec("data", _cell(
        "data", "dataset", "data_root", "classes", "world_classes", "world_clips_per_class",
        "world_clip_seconds", "pairing", "test_fraction", "train_repeats", "level_rms",
        "renormalize")),
    "00_pretrained_baseline": NotebookSpec("model", _cell(
        "model", "backbone", "msclap_weights", "tiny_width") + _cell(
        "pretrain", "optimizer_steps", "batch_size", "lr")),
    "01_stage_a": NotebookSpec("stage_a", _cell(
        "stage_a", "optimizer_steps", "batch_size", "lr", "alpha_same", "alpha_diff", "beta_a",
        "audio_head")),
    "02_stage_b": NotebookSpec("stage_b", _cell(
        "stage_b", "start_from", "loss", "alpha_st", "alpha_ct", "alpha_so", "alpha_co", "beta",
        "weights_by", "captions", "audio_head", "optimizer_steps", "batch_size", "lr", "order_lr")),
    "03_zste": NotebookSpec("zste", _cell("zste", "models", "n_boot", "seen", "heldout", "probe")),
    "04_ablations": NotebookSpec("ablations", _cell(
        "ablations", "grid", "starts", "extra_rows", "order_setting", "order_steps", "order_lr")),
    "05_evaluate_model": NotebookSpec("evaluate", _cell(
        "evaluate", "models", "n_boot", "triples", "captioned", "captioned_root", "compa_csv",
        "compa_audio_dir")),
}
PIPELINE = tuple(NOTEBOOKS)
"""Pipeline order."""


class RunConfig(BaseModel):
    """A whole run: the top-level fields below, the notebooks to run, and every section."""

    model_config = STRICT

    name: str = "smoke"  # the run folder is runs/<name>-<time> (letters, digits, . _ -)
    seed: int = 0  # torch / numpy seed of every notebook; the pretrained backbone's seed
    seeds: int | list[int] = 1  # training seeds: a count N (seed, seed+1, …) or a list
    device: str = "cpu"  # "auto" | "cpu" | "cuda" | "cuda:N" (smoke: cpu, so outputs compare)
    deterministic: bool = False  # CPU mode: the same numbers on any x86-64 CPU (determinism.py)
    notebooks: list[str] = list(PIPELINE)  # a subset of PIPELINE, in pipeline order
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    pretrain: PretrainParams = PretrainParams()
    train: TrainParams = TrainParams()
    stage_a: StageAParams = StageAParams()
    stage_b: StageBParams = StageBParams()
    zste: ZsteParams = ZsteParams()
    ablations: AblationParams = AblationParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="before")
    @classmethod
    def _strict_numbers(cls, data: Any) -> Any:
        return no_bool_for_numbers(cls, data)

    _name = field_validator("name")(lambda cls, v: check_name(v))
    _device = field_validator("device")(lambda cls, v: check_device(v))
    _seeds = field_validator("seeds")(lambda cls, v: check_seeds(v))
    _notebooks = field_validator("notebooks")(lambda cls, v: check_order(v, PIPELINE))

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """The seeds every training-dependent result is trained with: ``seeds`` as a list, or
        ``seed, seed + 1, …`` for a count (one seed = ``seed``: the single-seed run)."""
        if isinstance(self.seeds, list):
            return tuple(self.seeds)
        return tuple(self.seed + k for k in range(self.seeds))

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        heads = (self.stage_a.audio_head, self.stage_b.audio_head)
        if self.model.backbone == "msclap-2023" and "order" in heads:
            raise ValueError("msclap-2023 has no order-aware audio head; use audio_head: pooled")
        if self.stage_b.start_from == "A" and heads[0] != heads[1]:
            raise ValueError(
                f"stage_b.audio_head {heads[1]!r} with start_from A continues stage A's head, "
                f"but stage_a.audio_head is {heads[0]!r}: set both (-p audio_head="
                f"{heads[1]}), or start_from: pretrained")
        return self

    def section(self, name: str) -> Section:
        return getattr(self, name)
