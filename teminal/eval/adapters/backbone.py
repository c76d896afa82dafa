"""This repo's backbones (tiny CLAP, msclap 2022/2023, trained heads) as evaluation models (SPEC §2).

Input rules (:class:`teminal.eval.models.InputRule`):

- **tiny** and **msclap 2022** (Cnn14): convolutional over the whole clip, frames pooled
  (max + mean over time), so any length is read in full, nothing is filled or cut. (msclap's own
  ``CLAPWrapper`` crops a long clip to 5 s at a random offset; this adapter never does.)
- **msclap 2023** (HTSAT): a clip of ≤ 1024 mel frames (≈ 7.4 s at 44.1 kHz) is read whole
  (stretched to 1024 frames as msclap does); a longer one in windows of 689 frames every 344
  frames — msclap's eval-path values — **plus one window ending at the last frame**, so the
  end of a clip is never dropped (msclap's own windows stop up to ≈ 2.5 s before the end, which
  would lose the second event of a 10 s composite). Tokens of all windows are averaged.
"""
from __future__ import annotations

import torch

from teminal.eval.models import InputRule, ModelAdapter
from teminal.models.base import Backbone
from teminal.models.msclap_2023 import MsClap2023


class BackboneModel(ModelAdapter):
    """A :class:`teminal.models.base.Backbone` (trunk + head) as an evaluation model."""

    def __init__(self, backbone: Backbone, *, name: str, batch_size: int = 8) -> None:
        self.backbone, self.name, self.batch_size = backbone.eval(), name, batch_size
        if isinstance(backbone, MsClap2023):  # its audio_trunk reads covering windows
            crop, hop = backbone.HTSAT_CROP, backbone.HTSAT_HOP  # mel frames
            sec = backbone.args["hop_size"] / backbone.sample_rate  # of one mel frame
            self.rule = InputRule(
                sample_rate=backbone.sample_rate, window_seconds=round(1024 * sec, 2),
                longer=f"windows of {round(crop * sec, 2)} s every {round(hop * sec, 2)} s plus "
                       f"one ending at the clip's end; tokens averaged",
                shorter="read whole (stretched to the window, as msclap)")
        else:
            how = ("frames attended by the order-aware head" if backbone.needs_frames
                   else "frames pooled over time")
            self.rule = InputRule(sample_rate=backbone.sample_rate, window_seconds=None,
                                  longer=f"read whole (convolution, {how})",
                                  shorter="read whole")

    def _embed_batch(self, wave: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        return bb.encode_audio(wave.to(bb.logit_scale.device))  # (b, d)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.backbone.encode_text(texts)
