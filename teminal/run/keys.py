"""Every reuse key of a run, in one place: a result is reused when its key matches (SPEC §2–§4).

A key is the hash of what a result depends on and nothing else: the parameter fields that change
it, the data it is computed on (``Inputs``: the manifests' hashes, the base set's content, the
msclap weights' content) and the key of the model it starts from. Every field of every parameter
section is in the keys of the results it affects, unless it is declared here:

- ``RESULT_FREE``: changes no result (where files live, how often ``last.pt`` is written, how
  many clips one inference pass embeds);
- ``PLATFORM``: the same computation on other hardware (floating-point rounding may differ);
- ``SELECTION``: chooses which results a run computes, never what one of them is;
- ``ONLY_WHEN``: a field that matters only for some value of another one (``tclap_lambda`` only
  with ``loss: tclap``); elsewhere it is left out of the key.

``tests/test_keys.py`` changes every field of every section (iterating the parameter models, so
a new field is covered) and checks that it either changes a key or is declared here.

Results carry a typed ``Kind``; stored records name it (``kind`` in an evaluation file, the MLflow
tag ``teminal.kind``). Records written before kinds were stored are read by ``record_kind``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import tracking
from ..training.config import NOT_FINGERPRINTED
from .params import ModelParams, RunConfig, Section, StageAParams, StageBParams

TOP = "run"  # the name of RunConfig's top-level fields in the declarations below


class Kind(enum.Enum):
    """What a result is (stored as its ``value``)."""

    PRETRAINED = "pretrained"  # the backbone every stage starts from
    STAGE = "stage"  # stage A or B (T-AB, T-B, T-CLAP loss, order-aware head) as configured
    ABLATION_ROW = "ablation-row"  # a stage-B row of 04_ablations' grid
    PROBE = "probe"  # the level/duration probe (SPEC §4)
    EXTERNAL = "external"  # a model given by an adapter spec (05_evaluate_model)


KIND_TAG = "teminal.kind"  # the MLflow tag holding ``Kind.value``
SEED_TAG = "teminal.seed"  # the MLflow tag holding a result's seed (a multi-seed run)

RESULT_FREE: dict[str, tuple[str, ...]] = {
    TOP: ("name",),  # the run folder's name
    "data": ("data_root", "download"),  # where the base set lives; its content is in the key
    "model": ("eval_batch_size",),  # clips per trunk pass (the trunk runs in eval mode)
    "train": NOT_FINGERPRINTED,  # checkpoint_every_s: how often last.pt is written
    "evaluate": ("batch",),  # clips embedded per call
}
"""Fields that change no result."""

PLATFORM: dict[str, tuple[str, ...]] = {TOP: ("device", "deterministic")}
"""Where a result is computed: the same method; rounding may differ (a stage trained on a GPU
is reused on a CPU)."""

SELECTION: dict[str, tuple[str, ...]] = {
    TOP: ("seeds", "notebooks"),  # which training seeds (each seed's result has its own key)
    "zste": ("models", "probe"),  # which models 03_zste evaluates, whether the probe row runs
    "ablations": ("grid", "starts", "extra_rows"),  # which rows 04_ablations trains
    "evaluate": ("models",),  # which models 05_evaluate_model scores
}
"""Fields that choose which results are computed, never what one of them is."""


def _tiny(m: ModelParams) -> bool:
    return m.backbone == "tiny"


def _msclap(m: ModelParams) -> bool:
    return m.backbone != "tiny"


def _embedded(d: Section) -> bool:
    return d.dataset == "embedded"


def _teminal_loss(b: StageBParams) -> bool:
    return b.loss == "teminal"


def _tclap_loss(b: StageBParams) -> bool:
    return b.loss == "tclap"


def _order_head(b: StageBParams) -> bool:
    return b.audio_head == "order"


ONLY_WHEN: dict[str, dict[str, Callable[[Any], bool]]] = {
    "data": {f: _embedded for f in ("world_classes", "world_clips_per_class",
                                    "world_clip_seconds", "world_sample_rate", "world_seed")},
    "model": {**{f: _tiny for f in ("tiny_width", "tiny_hop")},
              **{f: _msclap for f in ("msclap_weights", "msclap_tokenizer")}},
    "stage_b": {**{f: _teminal_loss for f in ("alpha_st", "alpha_ct", "alpha_so", "alpha_co",
                                              "beta", "weights_by")},
                "tclap_lambda": _tclap_loss, "order_lr": _order_head},
}
"""Section → field → when the field is part of a result (given the section's other fields)."""


def unkeyed(section: str) -> set[str]:
    """The fields of ``section`` that are in no key."""
    return {f for table in (RESULT_FREE, PLATFORM, SELECTION) for f in table.get(section, ())}


def fields(params: Section, section: str) -> dict[str, Any]:
    """The fields of ``params`` (section ``section``) that change a result, as JSON values."""
    skip, when = unkeyed(section), ONLY_WHEN.get(section, {})
    return {k: v for k, v in params.model_dump(mode="json").items()
            if k not in skip and when.get(k, lambda _: True)(params)}


@dataclass(frozen=True)
class Inputs:
    """What the keys need beyond the configuration."""

    manifests: Mapping[str, str]  # manifest name → content hash (``Manifests.hashes``)
    base: str  # the base set's content fingerprint (``BaseSet.fingerprint``)
    weights: str = "hub"  # msclap: sha1 of the weights file ("hub": msclap's own download)


def weights_digest(m: ModelParams) -> str:
    """The msclap weights' identity: the sha1 of ``msclap_weights`` (a 0.8 GB read: the steps
    keep it per notebook), ``hub`` for msclap's download; ``""`` for the embedded backbone."""
    if m.backbone == "tiny":
        return ""
    path = Path(m.msclap_weights) if m.msclap_weights else None
    return tracking.file_sha1(path) if path is not None and path.is_file() else "hub"


class Key(str):
    """A key: the hex digest of ``inputs`` (usable wherever a key string is), remembering
    ``inputs`` so that a result computed anew can say what differs (``differences``)."""

    inputs: dict[str, Any]

    def __new__(cls, inputs: dict[str, Any]) -> "Key":
        key = super().__new__(cls, tracking.config_hash(inputs))
        key.inputs = inputs
        return key


def _hash(what: str, **payload: Any) -> Key:
    return Key({"what": what, **payload})


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_inputs(meta: Mapping[str, Any], key: Key) -> list[str]:
    """What differs between the result a checkpoint's ``meta.json`` records and ``key`` (empty
    when the keys match)."""
    if meta.get("key") == key:
        return []
    if meta.get("inputs") is None:
        return ["its meta.json predates recorded inputs"]
    return differences(meta["inputs"], key.inputs)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``path: old → new`` for every input of two keys that differs (``start`` is the key of
    the model a stage starts from: it differs when that model's inputs do)."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k, '—')} → {b.get(k, '—')}" for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)]


def _data(config: RunConfig, inputs: Inputs) -> dict[str, Any]:
    """The data a result is computed on: manifests, base-set content, recipe and captions."""
    return {"manifests": dict(inputs.manifests), "base": inputs.base,
            "params": fields(config.data, "data")}


def pretrained(config: RunConfig, inputs: Inputs) -> Key:
    """The pretrained backbone: msclap's weights, or the embedded backbone's pretraining (its
    parameters, the run seed, the data it pretrains on, bf16)."""
    model = fields(config.model, "model")
    if config.model.backbone != "tiny":
        model.pop("msclap_weights")  # its content is ``inputs.weights``
        return _hash("pretrained", model=model, weights=inputs.weights)
    return _hash("pretrained", model=model, pretrain=fields(config.pretrain, "pretrain"),
                 seed=config.seed, data=_data(config, inputs), bf16=config.train.bf16)


def stage_a(config: RunConfig, params: StageAParams, *, seed: int, inputs: Inputs) -> Key:
    """Stage A with ``params`` and training seed ``seed``, from the pretrained backbone."""
    return _hash("stage", stage="stage_a", start=pretrained(config, inputs),
                 params=fields(params, "stage_a"), train=fields(config.train, "train"),
                 seed=seed, data=_data(config, inputs))


def start_of(config: RunConfig, params: StageBParams) -> StageAParams | None:
    """The stage A a stage-B run starts from, or None for a start from the pretrained model
    (T-B, T-CLAP). The rule: T-AB continues stage A's audio head, so its stage A is the
    configured ``stage_a`` with the stage-B row's ``audio_head`` (the ablation's order-head
    row trains an order-head stage A). In a configuration the two heads must agree
    (``RunConfig`` refuses otherwise); the rule matters for ablation rows, and the stage A's
    effective head is what ``stage_a.audio_head`` logs."""
    if params.start_from != "A":
        return None
    return config.stage_a.model_copy(update={"audio_head": params.audio_head})


def stage_b(config: RunConfig, params: StageBParams, *, seed: int, inputs: Inputs) -> Key:
    """Stage B (any ablation row, T-CLAP, the order-aware head) with ``params`` and ``seed``,
    from its stage A of the same seed or the pretrained backbone."""
    a = start_of(config, params)
    start = (pretrained(config, inputs) if a is None
             else stage_a(config, a, seed=seed, inputs=inputs))
    return _hash("stage", stage="stage_b", start=start, params=fields(params, "stage_b"),
                 train=fields(config.train, "train"), seed=seed, data=_data(config, inputs))


def evaluation(config: RunConfig, *, model: str, inputs: Inputs) -> Key:
    """ZSTE and zero-shot tables (SPEC §4) of the model whose key is ``model``."""
    zste = fields(config.zste, "zste")
    zste.pop("probe_features")  # the probe's alone
    e = config.evaluate  # 3C's items (03 scores the triples 05 scores)
    return _hash("evaluation", model=model, zste=zste, triples=[e.triples, e.triple_template],
                 data=_data(config, inputs))


PROBE_VERSION = 3  # raised when the probe's computation changes


def probe(config: RunConfig, inputs: Inputs) -> Key:
    """The level/duration probe (SPEC §4): the data and the ZSTE options only."""
    return _hash("probe", version=PROBE_VERSION, zste=fields(config.zste, "zste"),
                 data=_data(config, inputs))


def external(config: RunConfig, *, spec: str, model: str, inputs: Inputs) -> Key:
    """05_evaluate_model's report of one model: its spec (or run row's key ``model``), the
    evaluation options and the run's items. Recorded as the tag ``teminal.key``; 05 always
    scores afresh."""
    return _hash("external", spec=spec, model=model, evaluate=fields(config.evaluate,
                                                                       "evaluate"),
                 zste_seed=config.zste.zste_seed, data=_data(config, inputs))


def record_kind(stored: str | None, *, ref: str = "", label: str = "") -> Kind:
    """The ``Kind`` a stored record names (``stored``: its ``kind`` field / ``teminal.kind``
    tag).

    LEGACY-RECORD READING: evaluation files and MLflow runs written before kinds were stored
    have none; for them only, and only here, the kind is read from what they did store — the
    03_zste ref (``probe``, ``pretrained``) or the label the probe and the baseline always had.
    Everything else they hold is a trained stage."""
    if stored:
        return Kind(stored)
    if ref == "probe" or label == "probe:level-duration":
        return Kind.PROBE
    if ref == "pretrained" or label == "pretrained":
        return Kind.PRETRAINED
    return Kind.STAGE


# ---- names of a stage, from its typed fields ------------------------------------------------
def stage_name(params: StageAParams | StageBParams) -> str:
    """``A`` / ``T-AB`` / ``T-B`` / ``T-CLAP``."""
    if isinstance(params, StageAParams):
        return "A"
    if params.loss == "tclap":
        return "T-CLAP"
    return "T-AB" if params.start_from == "A" else "T-B"


def stage_label(params: StageAParams | StageBParams) -> str:
    """The ``teminal.model`` tag: ``stage_name`` with ``+order-head`` for the order-aware head."""
    return stage_name(params) + ("+order-head" if params.audio_head == "order" else "")


def stage_role(params: StageAParams | StageBParams) -> str:
    """The checkpoint folder: ``stage_name`` with ``-order`` for the order-aware head."""
    return stage_name(params) + ("-order" if params.audio_head == "order" else "")
