"""What a training or evaluation MLflow run records, so the MLflow UI can compare runs.

Every such run — a notebook's run, an ablation row, a nested ``train: <label>`` or
``zste: <label>`` run — logs its **full effective parameters**, flattened to
``<section>.<field>`` (``stage_b.alpha_st``, ``train.lr``, ``data.pairing``, …) plus the
top-level ``name``, ``seed`` and ``device``. "Effective" means what the run's result depends on:
a stage-B row logs the stage-B parameters it trained with (its α/β, start, head, captions —
SPEC §3, §5 Table 2), and ``stage_a.*`` only when it starts from stage A (the stage A it
starts from, with the row's audio head); the pretrained baseline and the probe log neither
stage section, so a filter such as ``params.`stage_b.alpha_st` = '1.0'`` returns exactly the
runs trained with that weight.

Values are logged as MLflow stores them (strings): ``1.0`` for a float weight, ``A`` /
``pretrained`` for ``stage_b.start_from``, ``None`` for an unset optional field.
"""
from __future__ import annotations

from typing import Any

from .keys import start_of
from .params import RunConfig, StageAParams, StageBParams

TOP_LEVEL = ("name", "seed", "seeds", "device", "deterministic")
SHARED_SECTIONS = ("data", "model", "pretrain", "train", "zste")
"""Sections every training or evaluation result depends on (the stage sections are chosen per
run, ``ablations`` only describes the notebook that plans rows)."""
STAGE_SECTIONS = ("stage_a", "stage_b")


def _section(name: str, section) -> dict[str, Any]:
    return {f"{name}.{k}": v for k, v in section.model_dump(mode="json").items()}


def flat(config: RunConfig, *, stage_a: StageAParams | None = None,
         stage_b: StageBParams | None = None) -> dict[str, Any]:
    """``name``, ``seed``, ``device``, the shared sections and the given stage sections,
    flattened to ``section.field``."""
    out: dict[str, Any] = {k: getattr(config, k) for k in TOP_LEVEL}
    for name in SHARED_SECTIONS:
        out |= _section(name, config.section(name))
    if stage_a is not None:
        out |= _section("stage_a", stage_a)
    if stage_b is not None:
        out |= _section("stage_b", stage_b)
    return out


def for_stage(config: RunConfig, params: StageAParams | StageBParams | None) -> dict[str, Any]:
    """The effective parameters of a run that trains (or evaluates) a stage with ``params``;
    ``None``: the pretrained model (no stage section)."""
    if params is None:
        return flat(config)
    if isinstance(params, StageAParams):
        return flat(config, stage_a=params)
    return flat(config, stage_a=start_of(config, params), stage_b=params)


def for_notebook(config: RunConfig, section: str) -> dict[str, Any]:
    """A notebook run's parameters: ``for_stage`` of the notebook's stage section (none for
    the others), plus its own section (``ablations`` for 04)."""
    stage = config.section(section) if section in STAGE_SECTIONS else None
    return for_stage(config, stage) | _section(section, config.section(section))
