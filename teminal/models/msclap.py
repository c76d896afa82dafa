"""``MsClap``: Microsoft CLAP (msclap 1.3.4) split into frozen trunks and trainable heads (SPEC §2).

The model is msclap's own ``CLAP`` tree (``audio_encoder`` = ``AudioEncoder``, ``caption_encoder``
= ``TextEncoder``, ``logit_scale``) so state-dict keys equal the released
``CLAP_weights_{2022,2023}.pth`` files (``{'model': state_dict}``). ``TextEncoder.__init__``
calls ``AutoModel.from_pretrained`` (the hub), so the text base is built offline from its
config (``BertConfig()`` = bert-base-uncased, ``GPT2Config()`` = gpt2) and the weights come from
the checkpoint.

- 2022 (Cnn14 + BERT-base), the paper's setting. Audio trunk = Cnn14 up to the conv blocks,
  mean over frequency → frames (B, T', 2048), pooled = max_t + mean_t; head = dropout, fc1,
  ReLU, dropout, projection (``Cnn14.forward`` + ``AudioEncoder.forward``). Text trunk =
  embeddings + layers 0..10; head = layer 11 → [CLS] → projection. Trainable (SPEC §2):
  text layer.11 + pooler + projection = 9,515,520; audio fc1 + fc_audioset + projection =
  8,423,951 (pooler and fc_audioset are selected by the paper but do not reach z).
- 2023 (HTSAT + GPT-2): the analogous, exact split. Audio trunk = HTSAT up to the input of
  its last Swin block, on msclap's eval path (the whole clip if ≤ 1024 mel frames, ~7.4 s;
  else crops of 689 frames starting every 344 frames below T − 690, msclap's hard-coded
  values, so up to ~2.5 s at the end of a long clip can fall outside every crop) → frames =
  tokens (B, K·64, 768) for K crops; head = last block + final norm + mean over tokens and
  crops + projection, so ``needs_frames`` is True. Text trunk = GPT-2 embeddings + blocks
  0..10; head = block 11 + ln_f → last real token → projection. Trainable: audio 8,933,664
  of 33,162,199; text 8,926,464 of 126,276,864.

Text is tokenized like ``CLAPWrapper.preprocess_text`` (GPT-2: `` <|endoftext|>`` appended, pad
token ``!``) but padded to the longest text instead of ``text_len``: padding is masked (BERT)
or after the last token (GPT-2, causal), so outputs are the same. GPT-2's last token is taken
from the attention mask (msclap counts ids ≠ 0, i.e. it miscounts captions containing "!").
Audio is used at its full length (``CLAPWrapper`` crops or repeats it to 5 s / 7 s). Input
audio: 44.1 kHz mono (both versions; HTSAT's internal config says 32 kHz, msclap feeds 44.1).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import msclap
import numpy as np
import torch
import yaml
from msclap.models.clap import CLAP, AudioEncoder, Projection, TextEncoder
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, GPT2Config

from ..cache import fingerprint
from ..integrity import save_torch
from .base import AudioFeatures, Backbone, TextFeatures
from .heads import (HtsatAudioHead, OrderAwareAudioHead, PooledAudioHead, build_audio_head,
                    causal_additive_mask, run_bert_layers, time_pool)


@dataclass(frozen=True, kw_only=True)
class _Version:
    text_config: type  # transformers config class of the text base (defaults = the hub model)
    text_kind: str  # "bert" (CLS pooling) or "gpt2" (last-token pooling)
    text_suffix: str  # appended to each caption before tokenizing (CLAPWrapper)
    weights_file: str  # file name in the hub repo (CLAPWrapper.model_name)
    text_head: tuple[str, ...]  # trainable prefixes (SPEC §2)
    audio_head: tuple[str, ...]


class MsClap(Backbone):
    """msclap CLAP 2022/2023 as a ``Backbone`` (SPEC §2)."""

    HUB_REPO = "microsoft/msclap"  # as CLAPWrapper.model_repo
    LEGACY_KEYS = ("embeddings.position_ids", "attn.bias", "attn.masked_bias")  # old buffers
    HTSAT_CROP, HTSAT_HOP = 689, 344  # HTSAT_Swin_Transformer.forward, eval mode
    VERSIONS = {
        "2022": _Version(text_config=BertConfig, text_kind="bert", text_suffix="",
                         weights_file="CLAP_weights_2022.pth",
                         text_head=("caption_encoder.base.encoder.layer.11.",
                                    "caption_encoder.base.pooler.", "caption_encoder.projection."),
                         audio_head=("audio_encoder.base.fc1.", "audio_encoder.base.fc_audioset.",
                                     "audio_encoder.projection.")),
        "2023": _Version(text_config=GPT2Config, text_kind="gpt2", text_suffix=" <|endoftext|>",
                         weights_file="CLAP_weights_2023.pth",
                         text_head=("caption_encoder.base.h.11.", "caption_encoder.base.ln_f.",
                                    "caption_encoder.projection."),
                         audio_head=("audio_encoder.base.htsat.layers.3.blocks.1.",
                                     "audio_encoder.base.htsat.norm.", "audio_encoder.projection.")),
    }

    def __init__(self, *, version: str = "2022", weights: str | Path | None = None,
                 tokenizer: str | Path | None = None, download: bool = True,
                 random_init: bool = False, audio_head: str = "pooled",
                 trainable_logit_scale: bool = False, cache_dir: str | Path | None = None,
                 seed: int = 0, max_frames: int = 512, order_dim: int = 256,
                 order_heads: int = 4) -> None:
        """``weights``: a local ``CLAP_weights_<version>.pth``; None → msclap's hub download
        when ``download`` (offline: ``RuntimeError`` saying what to fetch), or random weights
        when ``random_init`` (tests, benchmarks). ``tokenizer``: a local tokenizer folder; None →
        the hub (``download``) or none (``text_trunk`` then raises)."""
        super().__init__()
        if version not in self.VERSIONS:
            raise ValueError(f"msclap version must be one of {sorted(self.VERSIONS)}, got {version!r}")
        if random_init and weights is not None:
            raise ValueError("random_init=True and weights= exclude each other")
        self.version, self.spec = version, self.VERSIONS[version]
        if self.spec.text_kind == "gpt2" and audio_head != "pooled":
            raise ValueError("msclap 2023 has no order-aware head (HTSAT frames are "
                             "time-frequency tokens); use audio_head='pooled'")
        self.args = yaml.safe_load(
            (Path(msclap.__file__).parent / "configs" / f"config_{version}.yml").read_text())
        self.sample_rate, self.embed_dim = int(self.args["sampling_rate"]), int(self.args["d_proj"])
        self.trainable_logit_scale = trainable_logit_scale
        self._no_tokenizer = "this MsClap has no tokenizer: pass tokenizer=<local folder>"
        path = None if random_init else self._resolve_weights(weights, download, cache_dir)
        blob = None if path is None else self._read_weights(path)  # fail fast, before building
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.clap = self._build_clap()
            if self.spec.text_kind == "gpt2":
                h = self.clap.audio_encoder.base.htsat
                res = h.layers[-1].input_resolution
                self.audio_head_module = HtsatAudioHead(
                    block=h.layers[-1].blocks[-1], norm=h.norm, tokens_per_crop=res[0] * res[1],
                    projection=self.clap.audio_encoder.projection)
            else:
                pooled = PooledAudioHead.from_modules(
                    fc1=self.clap.audio_encoder.base.fc1,
                    projection=self.clap.audio_encoder.projection, dropout=0.5)
                self.audio_head_module = build_audio_head(
                    kind=audio_head, pooled=pooled, max_frames=max_frames, d_model=order_dim,
                    n_heads=order_heads)
        if blob is not None:
            self._apply_weights(blob, path)
        self.tokenizer = self._load_tokenizer(tokenizer, download and not random_init)
        self._freeze()
        self.eval()

    # ---- building and loading -----------------------------------------------------------
    def _build_clap(self) -> CLAP:
        a = self.args
        clap = CLAP.__new__(CLAP)  # CLAP.__init__ would fetch the text model from the hub
        nn.Module.__init__(clap)
        clap.audio_encoder = AudioEncoder(
            a["audioenc_name"], a["out_emb"], a["d_proj"], a["sampling_rate"], a["window_size"],
            a["hop_size"], a["mel_bins"], a["fmin"], a["fmax"], a["num_classes"])
        text = TextEncoder.__new__(TextEncoder)
        nn.Module.__init__(text)
        text.text_model = a["text_model"]
        text.base = AutoModel.from_config(self.spec.text_config())
        text.projection = Projection(a["transformer_embed_dim"], a["d_proj"])
        clap.caption_encoder = text
        clap.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        return clap

    def _resolve_weights(self, weights, download: bool, cache_dir) -> Path:
        name, url = self.spec.weights_file, f"https://huggingface.co/{self.HUB_REPO}"
        how = (f"download {name} from {url} (resolve/main/{name}) and pass its path as "
               f"MsClap(weights=...) / build_backbone(name='msclap-{self.version}', weights=...)")
        if weights is not None:
            if not Path(weights).is_file():
                raise FileNotFoundError(f"msclap {self.version} weights not found at {weights}: {how}")
            return Path(weights)
        if not download:
            raise ValueError(f"no msclap {self.version} weights: pass weights=, download=True "
                             f"or random_init=True ({how})")
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.HUB_REPO, name, cache_dir=cache_dir))
        except Exception as exc:  # offline, no access, ...
            raise RuntimeError(f"could not download msclap {self.version} weights {name} from "
                               f"{url} ({type(exc).__name__}): {how}") from exc

    def he_init_audio_convs(self, *, seed: int = 0) -> "MsClap":
        """Redraw every conv layer of the audio encoder with He init, for rehearsals with random
        weights: msclap's own init shrinks the activations layer after layer, so every clip
        would embed to one direction (cosine > 0.9999) and no evaluation could tell clips apart."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.clap.audio_encoder.base.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
        return self

    def load_weights(self, path: str | Path) -> None:
        """Load a ``{'model': state_dict}`` file (msclap's release format or ``save``'s)."""
        self._apply_weights(self._read_weights(path), path)

    def _read_weights(self, path: str | Path) -> dict:
        try:
            try:  # memory-mapped when the file allows it (fast), else a plain read
                blob = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:
                blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RuntimeError(f"cannot read msclap weights {path}: {exc}") from exc
        if not isinstance(blob, dict) or "model" not in blob:
            raise RuntimeError(f"{path} is not an msclap checkpoint ({{'model': state_dict}})")
        saved = blob.get("teminal_meta", {}).get("version", self.version)
        if saved != self.version:
            raise ValueError(f"{path} holds msclap {saved} weights, this model is {self.version}")
        return blob

    def _apply_weights(self, blob: dict, path: str | Path) -> None:
        own = self.clap.state_dict()
        state = {k.removeprefix("module."): v for k, v in blob["model"].items()}
        state = {k: v for k, v in state.items() if k in own or not k.endswith(self.LEGACY_KEYS)}
        missing, unexpected = self.clap.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{path} does not match msclap {self.version}: missing "
                               f"{missing[:5]}, unexpected {unexpected[:5]}")
        order = blob.get("teminal_order_head")
        if isinstance(self.audio_head_module, OrderAwareAudioHead) and order is not None:
            self.audio_head_module.mixer.load_state_dict(order)
        elif order is not None:
            raise ValueError(f"{path} holds a trained order-aware head; load it with audio_head='order'")

    def _load_tokenizer(self, tokenizer, download: bool):
        if tokenizer is not None:
            if not Path(tokenizer).is_dir():
                raise FileNotFoundError(f"MsClap(tokenizer=...): no tokenizer folder at {tokenizer}")
            tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        elif download:
            try:
                tok = AutoTokenizer.from_pretrained(self.args["text_model"])
            except Exception as exc:  # audio still works; text_trunk raises this message
                self._no_tokenizer = (f"could not fetch the {self.args['text_model']} tokenizer "
                                      f"from the hub ({type(exc).__name__}); save it to a folder "
                                      "and pass MsClap(tokenizer=<folder>)")
                return None
        else:
            return None
        if self.spec.text_kind == "gpt2":
            tok.add_special_tokens({"pad_token": "!"})  # as CLAPWrapper
        return tok

    def save(self, path: str | Path) -> None:
        """Write ``{'model': clap.state_dict()}`` (msclap's format; extra keys for teminal)."""
        blob = {"model": {k: v.detach().cpu() for k, v in self.clap.state_dict().items()},
                "teminal_meta": {"version": self.version}}
        if isinstance(self.audio_head_module, OrderAwareAudioHead):
            blob["teminal_order_head"] = {k: v.detach().cpu() for k, v in
                                          self.audio_head_module.mixer.state_dict().items()}
        save_torch(blob, Path(path))

    # ---- parameter groups ---------------------------------------------------------------
    def is_head(self, name: str) -> bool:
        """Whether the CLAP parameter ``name`` (msclap naming) is in the paper's selection."""
        return name.startswith(self.spec.text_head + self.spec.audio_head)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The SPEC §2 selection (+ the order module, + the logit scale when trainable)."""
        params = [p for n, p in self.clap.named_parameters() if self.is_head(n)]
        if isinstance(self.audio_head_module, OrderAwareAudioHead):
            params += list(self.audio_head_module.mixer.parameters())
        return params + ([self.clap.logit_scale] if self.trainable_logit_scale else [])

    def _freeze(self) -> None:
        ids = {id(p) for p in self.trainable_parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) in ids)

    def frozen_modules(self) -> list[nn.Module]:
        base, text = self.clap.audio_encoder.base, self.clap.caption_encoder.base
        if self.spec.text_kind == "bert":
            audio = [base.spectrogram_extractor, base.logmel_extractor, base.bn0] + [
                getattr(base, f"conv_block{i}") for i in range(1, 7)]
            return audio + [text.embeddings, *text.encoder.layer[:-1]]
        h = base.htsat
        audio = [h.spectrogram_extractor, h.logmel_extractor, h.bn0, h.patch_embed, h.pos_drop,
                 *h.layers[:-1], *h.layers[-1].blocks[:-1]]
        return audio + [text.wte, text.wpe, text.drop, *text.h[:-1]]

    @property
    def needs_frames(self) -> bool:
        return self.spec.text_kind == "gpt2" or isinstance(self.audio_head_module,
                                                           OrderAwareAudioHead)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clap.logit_scale.exp()

    def cache_key(self) -> str:
        """Hash of version, preprocessing, tokenizer and trunk weights (not heads) (SPEC §2)."""
        trunk = ((k, v) for k, v in self.clap.state_dict().items()
                 if not self.is_head(k) and k != "logit_scale")
        vocab = (None if self.tokenizer is None else hashlib.sha1(json.dumps(
            sorted(self.tokenizer.get_vocab().items())).encode()).hexdigest())
        extra = {"backbone": "msclap", "version": self.version, "args": self.args,
                 "vocab": vocab, "suffix": self.spec.text_suffix, "windows": "covering"}
        return f"msclap{self.version}-" + fingerprint(trunk, extra=extra)

    # ---- trunks and heads ---------------------------------------------------------------
    def _eval_trunk(self) -> None:
        for m in self.frozen_modules():
            m.eval()

    def audio_trunk(self, wave: torch.Tensor, *, frames: bool = False) -> AudioFeatures:
        """wave (B, S) at 44.1 kHz → frozen features (no grad, eval mode)."""
        self._eval_trunk()
        with torch.no_grad():
            if self.spec.text_kind == "gpt2":
                tokens = self._htsat_tokens(wave.float())  # (B, K·N, C)
                return AudioFeatures(pooled=tokens.mean(1), frames=tokens)
            b = self.clap.audio_encoder.base
            x = b.logmel_extractor(b.spectrogram_extractor(wave.float()))  # (B, 1, T, 64)
            x = b.bn0(x.transpose(1, 3)).transpose(1, 3)
            for i in range(1, 7):
                x = getattr(b, f"conv_block{i}")(x, pool_size=(1, 1) if i == 6 else (2, 2),
                                                 pool_type="avg")  # (B, C, T/2^i, F/2^i)
            fr = x.mean(dim=3).transpose(1, 2)  # (B, T', 2048)
            return AudioFeatures(pooled=time_pool(fr), frames=fr if frames else None)

    def _htsat_tokens(self, wave: torch.Tensor) -> torch.Tensor:
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

    def audio_head(self, feats: AudioFeatures) -> torch.Tensor:
        return self.audio_head_module(feats)  # (B, d)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            raise RuntimeError(self._no_tokenizer)
        texts = [t + self.spec.text_suffix for t in texts]
        tok = self.tokenizer(texts, padding=True, truncation=True,
                             max_length=int(self.args["text_len"]), return_tensors="pt")
        return {k: v.to(self.clap.logit_scale.device) for k, v in tok.items()}

    def text_trunk(self, texts: list[str]) -> TextFeatures:
        """Tokenize and run the frozen lower text layers (no grad, eval mode)."""
        self._eval_trunk()
        tok, base = self.tokenize(list(texts)), self.clap.caption_encoder.base
        with torch.no_grad():
            if self.spec.text_kind == "gpt2":
                out = base(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                           output_hidden_states=True, use_cache=False)
                hidden = out.hidden_states[-2]  # input of the last block, (B, L, 768)
            else:
                hidden = base.embeddings(input_ids=tok["input_ids"],
                                         token_type_ids=tok.get("token_type_ids"))
                hidden = run_bert_layers(base.encoder.layer[:-1], hidden, tok["attention_mask"])
        return TextFeatures(hidden=hidden, mask=tok["attention_mask"].long())

    def text_head(self, feats: TextFeatures) -> torch.Tensor:
        enc, h, mask = self.clap.caption_encoder, feats.hidden, feats.mask
        if self.spec.text_kind == "gpt2":
            bias = causal_additive_mask(mask, h.dtype)  # (B, 1, L, L)
            h = enc.base.ln_f(enc.base.h[-1](h, attention_mask=bias)[0])  # (B, L, 768)
            last = mask.long().sum(1) - 1  # the appended <|endoftext|>
            out = h[torch.arange(h.shape[0], device=h.device), last]  # (B, 768)
        else:
            out = run_bert_layers(enc.base.encoder.layer[-1:], h, mask)[:, 0]  # [CLS], (B, 768)
        return enc.projection(out)  # (B, d)



def covering_starts(n_frames: int, *, crop: int, hop: int) -> list[int]:
    """HTSAT window starts every ``hop`` frames (msclap's ``range(0, T - crop - 1, hop)``), plus
    one at ``T - crop`` when the last window would end before the last frame, so every frame is
    read and no event of a long composite is cut away (SPEC §2)."""
    starts = list(range(0, n_frames - crop - 1, hop)) or [0]
    if starts[-1] + crop < n_frames:
        starts.append(n_frames - crop)
    return starts
