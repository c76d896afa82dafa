"""``MsClap2023``: msclap 2023 (HTSAT + GPT-2), split like the 2022 model (SPEC §2).

Audio trunk = HTSAT up to the input of its last Swin block, on msclap's eval path (the whole
clip if ≤ 1024 mel frames, ~7.4 s; else crops of 689 frames starting every 344 frames —
msclap's hard-coded values — plus one crop ending at the last frame, ``covering_starts``, so no
event of a long composite is cut away) → frames = tokens (B, K·64, 768) for K crops; head =
last block + final norm + mean over tokens and crops + projection, so ``needs_frames`` is
True and there is no order-aware head. Text trunk = GPT-2 embeddings + blocks 0..10; head =
block 11 + ln_f → last real token → projection. Trainable: audio 8,933,664 of 33,162,199; text
8,926,464 of 126,276,864.

GPT-2 text as ``CLAPWrapper``: `` <|endoftext|>`` appended, pad token ``!``. The last token is
taken from the attention mask (msclap counts ids ≠ 0, i.e. it miscounts captions containing "!").
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import GPT2Config

from .base import AudioFeatures, TextFeatures
from .heads import HtsatAudioHead, causal_additive_mask
from .msclap_base import MsClapBase


class MsClap2023(MsClapBase):
    """msclap 2023 as a ``Backbone`` (SPEC §2); construction: ``MsClapBase.__init__``."""

    VERSION = "2023"
    TEXT_CONFIG = GPT2Config
    TEXT_SUFFIX = " <|endoftext|>"
    WEIGHTS_FILE = "CLAP_weights_2023.pth"
    TEXT_HEAD = ("caption_encoder.base.h.11.", "caption_encoder.base.ln_f.",
                 "caption_encoder.projection.")
    AUDIO_HEAD = ("audio_encoder.base.htsat.layers.3.blocks.1.", "audio_encoder.base.htsat.norm.",
                  "audio_encoder.projection.")
    HTSAT_CROP, HTSAT_HOP = 689, 344  # HTSAT_Swin_Transformer.forward, eval mode (mel frames)

    @classmethod
    def _check_audio_head(cls, kind: str) -> None:
        if kind != "pooled":
            raise ValueError("msclap 2023 has no order-aware head (HTSAT frames are "
                             f"time-frequency tokens); use audio_head='pooled', got {kind!r}")

    def _build_audio_head(self, *, kind: str, max_frames: int, d_model: int,
                          n_heads: int) -> nn.Module:
        h = self.clap.audio_encoder.base.htsat
        res = h.layers[-1].input_resolution
        return HtsatAudioHead(block=h.layers[-1].blocks[-1], norm=h.norm,
                              tokens_per_crop=res[0] * res[1],
                              projection=self.clap.audio_encoder.projection)

    def _prepare_tokenizer(self, tok):
        tok.add_special_tokens({"pad_token": "!"})  # as CLAPWrapper
        return tok

    def frozen_modules(self) -> list[nn.Module]:
        h, text = self.clap.audio_encoder.base.htsat, self.clap.caption_encoder.base
        audio = [h.spectrogram_extractor, h.logmel_extractor, h.bn0, h.patch_embed, h.pos_drop,
                 *h.layers[:-1], *h.layers[-1].blocks[:-1]]
        return audio + [text.wte, text.wpe, text.drop, *text.h[:-1]]

    @property
    def needs_frames(self) -> bool:
        return True

    def audio_trunk(self, wave: torch.Tensor, *, frames: bool = False) -> AudioFeatures:
        """wave (B, S) at 44.1 kHz → HTSAT tokens of windows covering the clip (always with
        frames: the head reads them; no grad, eval mode)."""
        self._eval_trunk()
        with torch.no_grad():
            tokens = self.htsat_tokens(wave.float())  # (B, K·N, C)
            return AudioFeatures(pooled=tokens.mean(1), frames=tokens)

    def htsat_tokens(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, S) → the tokens entering HTSAT's last block, crops concatenated (B, K·N, 768)."""
        h = self.clap.audio_encoder.base.htsat
        x = h.logmel_extractor(h.spectrogram_extractor(wave))  # (B, 1, T, 64)
        x = h.bn0(x.transpose(1, 3)).transpose(1, 3)
        if x.shape[2] > h.freq_ratio * h.spec_size:
            starts = covering_starts(x.shape[2], crop=self.HTSAT_CROP, hop=self.HTSAT_HOP)
            crops = [x[:, :, s : s + self.HTSAT_CROP] for s in starts]  # (B, 1, crop, 64) each
        else:
            crops = [x]
        out = []
        for crop in crops:
            t = h.pos_drop(h.patch_embed(h.reshape_wav2img(crop)))  # (B, N0, 96)
            for layer in h.layers[:-1]:
                t, _ = layer(t)
            for block in h.layers[-1].blocks[:-1]:
                t, _ = block(t)
            out.append(t)  # (B, N, 768)
        return torch.cat(out, dim=1)  # (B, K·N, 768)

    def _text_hidden(self, tok: dict[str, torch.Tensor]) -> torch.Tensor:
        """GPT-2 embeddings + blocks 0..10: the input of the last block."""
        out = self.clap.caption_encoder.base(
            input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
            output_hidden_states=True, use_cache=False)
        return out.hidden_states[-2]  # (B, L, 768)

    def text_head(self, feats: TextFeatures) -> torch.Tensor:
        enc, h, mask = self.clap.caption_encoder, feats.hidden, feats.mask
        bias = causal_additive_mask(mask, h.dtype)  # (B, 1, L, L)
        h = enc.base.ln_f(enc.base.h[-1](h, attention_mask=bias)[0])  # (B, L, 768)
        last = mask.long().sum(1) - 1  # the appended <|endoftext|>
        out = h[torch.arange(h.shape[0], device=h.device), last]  # (B, 768)
        return enc.projection(out)  # (B, d)


def covering_starts(n_frames: int, *, crop: int, hop: int) -> list[int]:
    """HTSAT window starts every ``hop`` frames (msclap's ``range(0, T - crop - 1, hop)``), plus
    one at ``T - crop`` when the last window would end before the last frame, so every frame is
    read and no event of a long composite is cut away (SPEC §2)."""
    starts = list(range(0, n_frames - crop - 1, hop)) or [0]
    if starts[-1] + crop < n_frames:
        starts.append(n_frames - crop)
    return starts
