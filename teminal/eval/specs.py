"""``--model`` specs: one string names a model and its options (SPEC §2).

``KIND[,key=value]...`` — values typed like YAML (``fusion=true``, ``seed=3``); ``label=``
names the row in tables. ``KIND`` is one of ``ADAPTERS`` or ``RUN_ROWS`` (exact names) or
``module:callable`` for a model of your own (``my_pkg.my_module:make_model``: called with the
other options as keyword arguments, it returns an object with ``embed_audio(waves,
sample_rate)`` and ``embed_text(texts)``)::

    tiny,checkpoint=runs/<run>/checkpoints/pretrained/model.pt
    msclap-2022,weights=CLAP_weights_2022.pth,tokenizer=tok/bert-base-uncased
    msclap-2023,random_init=true,tokenizer=tok/gpt2,label=msclap23-random
    laion-clap,checkpoint=630k-audioset-best.pt,tokenizer=tok/roberta-base,amodel=HTSAT-tiny
    laion-clap,checkpoint=compa_clap.pt,tokenizer=tok/roberta-base,fusion=true,label=CompA-CLAP
    my_pkg.my_module:make_model,size=small
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import yaml

from teminal.eval.models import CustomModel, ModelAdapter

ADAPTERS = ("tiny", "msclap-2022", "msclap-2023", "laion-clap")
RUN_ROWS = ("pretrained", "A", "B", "order-head")
"""Models of a pipeline run (resolved by ``teminal.run.steps.anymodel``, not here): the
pretrained baseline, stage A, stage B as configured, the ablation's order-aware row."""


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A parsed ``--model`` string."""

    kind: str  # an ADAPTERS name or "module:callable"
    options: dict = field(default_factory=dict)  # keyword arguments of the adapter
    label: str = ""  # the row's name ("" = the adapter's own)


def parse_spec(text: str) -> ModelSpec:
    """``KIND[,key=value]...`` → ModelSpec; ValueError naming the spec when malformed."""
    parts = [p.strip() for p in str(text).split(",")]
    kind, options = parts[0], {}
    if not kind:
        raise ValueError(f"--model {text!r}: empty model kind")
    if kind not in ADAPTERS + RUN_ROWS:
        module, _, attr = kind.partition(":")
        if not module or not attr:
            raise ValueError(f"--model {text!r}: kind must be one of {', '.join(ADAPTERS)} or "
                             f"module:callable (e.g. my_pkg.my_module:make_model)")
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--model {text!r}: option {part!r} is not key=value")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    label = str(options.pop("label", ""))
    return ModelSpec(kind=kind, options=options, label=label)


def load_model(spec: ModelSpec | str) -> ModelAdapter:
    """Build the model a spec names (SPEC §2). Errors name the spec and what is missing."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.kind in RUN_ROWS:
        raise ValueError(f"--model {spec.kind}: a row of a pipeline run; evaluate it through "
                         f"`python -m teminal evaluate` or notebook 05_evaluate_model")
    opts, label = dict(spec.options), spec.label or None
    if spec.kind == "laion-clap":
        from teminal.eval.adapters.laion import LaionClap

        return LaionClap(name=label, **opts)
    if spec.kind in ("tiny", "msclap-2022", "msclap-2023"):
        from teminal.eval.adapters.backbone import BackboneModel
        from teminal.models import build_backbone

        he_init = bool(opts.pop("he_init", False))
        backbone = build_backbone(name=spec.kind, **opts)
        if he_init:  # random msclap rehearsals (MsClapBase.he_init_audio_convs)
            backbone.he_init_audio_convs()
        return BackboneModel(backbone, name=label or spec.kind)
    module, _, attr = spec.kind.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--model {spec.kind}: cannot import {attr} from {module} ({exc})") from exc
    return CustomModel(factory(**opts), name=label or spec.kind)
