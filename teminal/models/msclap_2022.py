"""``MsClap2022``: msclap 2022 (Cnn14 + BERT-base), the paper's backbone (SPEC §2).

Audio trunk = Cnn14 up to the conv blocks, mean over frequency → frames (B, T', 2048), pooled =
max_t + mean_t; head = dropout, fc1, ReLU, dropout, projection (``Cnn14.forward`` +
``AudioEncoder.forward``), or the order-aware head around it (``audio_head="order"``). Text
trunk = embeddings + layers 0..10; head = layer 11 → [CLS] → projection. Trainable (SPEC §2):
text layer.11 + pooler + projection = 9,515,520; audio fc1 + fc_audioset + projection =
8,423,951 (pooler and fc_audioset are selected by the paper but do not reach z).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig

from .base import AudioFeatures, TextFeatures
from .heads import (OrderAwareAudioHead, PooledAudioHead, build_audio_head, run_bert_layers,
                    time_pool)
from .msclap_base import MsClapBase


class MsClap2022(MsClapBase):
    """msclap 2022 as a ``Backbone`` (SPEC §2); construction: ``MsClapBase.__init__``."""

    VERSION = "2022"
    TEXT_CONFIG = BertConfig
    TEXT_SUFFIX = ""
    WEIGHTS_FILE = "CLAP_weights_2022.pth"
    TEXT_HEAD = ("caption_encoder.base.encoder.layer.11.", "caption_encoder.base.pooler.",
                 "caption_encoder.projection.")
    AUDIO_HEAD = ("audio_encoder.base.fc1.", "audio_encoder.base.fc_audioset.",
                  "audio_encoder.projection.")

    def _build_audio_head(self, *, kind: str, max_frames: int, d_model: int,
                          n_heads: int) -> nn.Module:
        pooled = PooledAudioHead.from_modules(
            fc1=self.clap.audio_encoder.base.fc1,
            projection=self.clap.audio_encoder.projection, dropout=0.5)
        return build_audio_head(kind=kind, pooled=pooled, max_frames=max_frames,
                                d_model=d_model, n_heads=n_heads)

    def frozen_modules(self) -> list[nn.Module]:
        base, text = self.clap.audio_encoder.base, self.clap.caption_encoder.base
        audio = [base.spectrogram_extractor, base.logmel_extractor, base.bn0] + [
            getattr(base, f"conv_block{i}") for i in range(1, 7)]
        return audio + [text.embeddings, *text.encoder.layer[:-1]]

    @property
    def needs_frames(self) -> bool:
        return isinstance(self.audio_head_module, OrderAwareAudioHead)

    def audio_trunk(self, wave: torch.Tensor, *, frames: bool = False) -> AudioFeatures:
        """wave (B, S) at 44.1 kHz → frozen Cnn14 features (no grad, eval mode)."""
        self._eval_trunk()
        with torch.no_grad():
            b = self.clap.audio_encoder.base
            x = b.logmel_extractor(b.spectrogram_extractor(wave.float()))  # (B, 1, T, 64)
            x = b.bn0(x.transpose(1, 3)).transpose(1, 3)
            for i in range(1, 7):
                x = getattr(b, f"conv_block{i}")(x, pool_size=(1, 1) if i == 6 else (2, 2),
                                                 pool_type="avg")  # (B, C, T/2^i, F/2^i)
            fr = x.mean(dim=3).transpose(1, 2)  # (B, T', 2048)
            return AudioFeatures(pooled=time_pool(fr), frames=fr if frames else None)

    def _text_hidden(self, tok: dict[str, torch.Tensor]) -> torch.Tensor:
        """BERT embeddings + layers 0..10 (padding masked)."""
        base = self.clap.caption_encoder.base
        hidden = base.embeddings(input_ids=tok["input_ids"],
                                 token_type_ids=tok.get("token_type_ids"))  # (B, L, 768)
        return run_bert_layers(base.encoder.layer[:-1], hidden, tok["attention_mask"])

    def text_head(self, feats: TextFeatures) -> torch.Tensor:
        enc = self.clap.caption_encoder
        hidden = run_bert_layers(enc.base.encoder.layer[-1:], feats.hidden, feats.mask)  # (B, L, 768)
        return enc.projection(hidden[:, 0])  # [CLS] → (B, d)
