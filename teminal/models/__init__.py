"""Backbones (SPEC §2): ``build_backbone`` picks one by exact name; nothing loads at import."""
from __future__ import annotations

from .base import AudioFeatures, Backbone, TextFeatures

BACKBONE_NAMES = ("tiny", "msclap-2022", "msclap-2023")

__all__ = ["AudioFeatures", "Backbone", "TextFeatures", "BACKBONE_NAMES", "build_backbone"]


def build_backbone(*, name: str, audio_head: str = "pooled", device: str = "cpu",
                   **kwargs) -> Backbone:
    """Build a backbone by exact ``name`` ∈ ``BACKBONE_NAMES``.

    - ``tiny``: ``TinyClap``; ``checkpoint=path`` loads a ``TinyClap.save`` file (its head kind
      is overridden by ``audio_head``), otherwise the other kwargs are ``TinyConfig`` fields.
    - ``msclap-2022`` / ``msclap-2023``: ``MsClap(version=..., **kwargs)`` (``weights``,
      ``tokenizer``, ``download``, ``random_init``, …).
    """
    if name == "tiny":
        from .tiny import TinyClap, TinyConfig

        checkpoint = kwargs.pop("checkpoint", None)
        if checkpoint is not None:
            if kwargs:
                raise ValueError(f"tiny: with checkpoint= no other options apply, got {sorted(kwargs)}")
            model = TinyClap.load(checkpoint, audio_head=audio_head)
        else:
            model = TinyClap(config=TinyConfig(audio_head=audio_head, **kwargs))
    elif name in ("msclap-2022", "msclap-2023"):
        from .msclap import MsClap

        version = {"msclap-2022": "2022", "msclap-2023": "2023"}[name]
        model = MsClap(version=version, audio_head=audio_head, **kwargs)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")
    return model.to(device)
