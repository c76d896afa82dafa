"""Backbones (SPEC §2): ``build_backbone`` picks one by exact name; nothing loads at import."""
from __future__ import annotations

from .base import AudioFeatures, Backbone, TextFeatures

__all__ = ["AudioFeatures", "Backbone", "TextFeatures", "BACKBONE_NAMES", "build_backbone"]


def _tiny(*, audio_head: str, checkpoint=None, **kwargs) -> Backbone:
    """``TinyClap``: ``checkpoint=path`` loads a ``TinyClap.save`` file (its head kind is
    overridden by ``audio_head``), otherwise the kwargs are ``TinyConfig`` fields."""
    from .tiny import TinyClap, TinyConfig

    if checkpoint is not None:
        if kwargs:
            raise ValueError(f"tiny: with checkpoint= no other options apply, got {sorted(kwargs)}")
        return TinyClap.load(checkpoint, audio_head=audio_head)
    return TinyClap(config=TinyConfig(audio_head=audio_head, **kwargs))


def _msclap_2022(**kwargs) -> Backbone:
    from .msclap_2022 import MsClap2022

    return MsClap2022(**kwargs)


def _msclap_2023(**kwargs) -> Backbone:
    from .msclap_2023 import MsClap2023

    return MsClap2023(**kwargs)


BUILDERS = {"tiny": _tiny, "msclap-2022": _msclap_2022, "msclap-2023": _msclap_2023}
"""Backbone name → builder (imports its module on call: importing ``teminal.models`` loads
neither msclap nor transformers)."""
BACKBONE_NAMES = tuple(BUILDERS)


def build_backbone(*, name: str, audio_head: str = "pooled", device: str = "cpu",
                   **kwargs) -> Backbone:
    """Build a backbone by exact ``name`` ∈ ``BACKBONE_NAMES``.

    - ``tiny``: ``TinyClap`` (see ``_tiny``);
    - ``msclap-2022`` / ``msclap-2023``: ``MsClap2022`` / ``MsClap2023`` with ``kwargs``
      (``weights``, ``tokenizer``, ``download``, ``random_init``, … of ``MsClapBase``).
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")
    return BUILDERS[name](audio_head=audio_head, **kwargs).to(device)
