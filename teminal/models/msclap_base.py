"""``MsClapBase``: what Microsoft CLAP (msclap 1.3.4) 2022 and 2023 share as a ``Backbone`` (SPEC §2).

The model is msclap's own ``CLAP`` tree (``audio_encoder`` = ``AudioEncoder``, ``caption_encoder``
= ``TextEncoder``, ``logit_scale``) so state-dict keys equal the released
``CLAP_weights_{2022,2023}.pth`` files (``{'model': state_dict}``). ``TextEncoder.__init__``
calls ``AutoModel.from_pretrained`` (the hub), so the text base is built offline from its
config (``TEXT_CONFIG()``: ``BertConfig()`` = bert-base-uncased, ``GPT2Config()`` = gpt2) and
the weights come from the checkpoint.

Shared here: building the tree, finding and reading the weights (a clear error naming the file
to download and where to pass it), the tokenizer, ``save``, the trainable selection by name
prefix (``TEXT_HEAD`` + ``AUDIO_HEAD``), the trunk-cache key and tokenization. Each version is
a subclass that sets the class constants and implements its trunks and heads:
``msclap_2022.MsClap2022`` (Cnn14 + BERT-base, the paper's) and ``msclap_2023.MsClap2023``
(HTSAT + GPT-2).

Text is tokenized like ``CLAPWrapper.preprocess_text`` (``TEXT_SUFFIX`` appended) but padded
to the longest text instead of ``text_len``: padding is masked (BERT) or after the last token
(GPT-2, causal), so outputs are the same. Audio is used at its full length (``CLAPWrapper``
crops or repeats it to 5 s / 7 s). Input audio: 44.1 kHz mono (both versions; HTSAT's internal
config says 32 kHz, msclap feeds 44.1).
"""
from __future__ import annotations

import abc
import hashlib
import json
from pathlib import Path

import msclap
import numpy as np
import torch
import yaml
from msclap.models.clap import CLAP, AudioEncoder, Projection, TextEncoder
from torch import nn
from transformers import AutoModel, AutoTokenizer

from ..cache import fingerprint
from ..integrity import save_torch
from .base import AudioFeatures, Backbone, TextFeatures
from .heads import OrderAwareAudioHead


class MsClapBase(Backbone):
    """msclap CLAP as a ``Backbone``; a subclass per released version (SPEC §2)."""

    HUB_REPO = "microsoft/msclap"  # as CLAPWrapper.model_repo
    LEGACY_KEYS = ("embeddings.position_ids", "attn.bias", "attn.masked_bias")  # old buffers
    VERSION: str  # "2022" | "2023": msclap's config_<VERSION>.yml, the saved-file tag
    TEXT_CONFIG: type  # transformers config class of the text base (defaults = the hub model)
    TEXT_SUFFIX: str  # appended to each caption before tokenizing (CLAPWrapper)
    WEIGHTS_FILE: str  # file name in the hub repo (CLAPWrapper.model_name)
    TEXT_HEAD: tuple[str, ...]  # trainable parameter-name prefixes of the text side (SPEC §2)
    AUDIO_HEAD: tuple[str, ...]  # trainable parameter-name prefixes of the audio side

    def __init__(self, *, weights: str | Path | None = None,
                 tokenizer: str | Path | None = None, download: bool = True,
                 random_init: bool = False, audio_head: str = "pooled",
                 trainable_logit_scale: bool = False, cache_dir: str | Path | None = None,
                 seed: int = 0, max_frames: int = 512, order_dim: int = 256,
                 order_heads: int = 4) -> None:
        """``weights``: a local ``CLAP_weights_<version>.pth``; None → msclap's hub download
        when ``download`` (offline: ``RuntimeError`` saying what to fetch), or random weights
        when ``random_init`` (tests, benchmarks). ``tokenizer``: a local tokenizer folder; None →
        the hub (``download``) or none (``text_trunk`` then raises). ``audio_head``: "pooled"
        or "order" (2022 only); ``max_frames``, ``order_dim``, ``order_heads``: the order-aware
        head's size (``heads.OrderAwareAudioHead``)."""
        super().__init__()
        if random_init and weights is not None:
            raise ValueError("random_init=True and weights= exclude each other")
        self._check_audio_head(audio_head)
        self.args = yaml.safe_load(
            (Path(msclap.__file__).parent / "configs" / f"config_{self.VERSION}.yml").read_text())
        self.sample_rate, self.embed_dim = int(self.args["sampling_rate"]), int(self.args["d_proj"])
        self.trainable_logit_scale = trainable_logit_scale
        self._no_tokenizer = f"this {type(self).__name__} has no tokenizer: pass tokenizer=<local folder>"
        path = None if random_init else self._resolve_weights(weights, download, cache_dir)
        blob = None if path is None else self._read_weights(path)  # fail fast, before building
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.clap = self._build_clap()
            self.audio_head_module = self._build_audio_head(
                kind=audio_head, max_frames=max_frames, d_model=order_dim, n_heads=order_heads)
        if blob is not None:
            self._apply_weights(blob, path)
        self.tokenizer = self._load_tokenizer(tokenizer, download and not random_init)
        self._freeze()
        self.eval()

    # ---- what each version supplies -----------------------------------------------------
    @classmethod
    def _check_audio_head(cls, kind: str) -> None:
        """Refuse an ``audio_head`` kind this version cannot build, before anything loads."""

    @abc.abstractmethod
    def _build_audio_head(self, *, kind: str, max_frames: int, d_model: int,
                          n_heads: int) -> nn.Module:
        """The trainable audio head over ``self.clap``'s own modules."""

    @abc.abstractmethod
    def _text_hidden(self, tok: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokens → hidden states (B, L, H) entering the trainable text layer (no grad)."""

    def _prepare_tokenizer(self, tok):
        """Version-specific tokenizer settings (e.g. a pad token); the tokenizer itself."""
        return tok

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
        text.base = AutoModel.from_config(self.TEXT_CONFIG())
        text.projection = Projection(a["transformer_embed_dim"], a["d_proj"])
        clap.caption_encoder = text
        clap.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        return clap

    def _resolve_weights(self, weights, download: bool, cache_dir) -> Path:
        name, url = self.WEIGHTS_FILE, f"https://huggingface.co/{self.HUB_REPO}"
        how = (f"download {name} from {url} (resolve/main/{name}) and pass its path as "
               f"{type(self).__name__}(weights=...) / "
               f"build_backbone(name='msclap-{self.VERSION}', weights=...)")
        if weights is not None:
            if not Path(weights).is_file():
                raise FileNotFoundError(f"msclap {self.VERSION} weights not found at {weights}: {how}")
            return Path(weights)
        if not download:
            raise ValueError(f"no msclap {self.VERSION} weights: pass weights=, download=True "
                             f"or random_init=True ({how})")
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.HUB_REPO, name, cache_dir=cache_dir))
        except Exception as exc:  # offline, no access, ...
            raise RuntimeError(f"could not download msclap {self.VERSION} weights {name} from "
                               f"{url} ({type(exc).__name__}): {how}") from exc

    def he_init_audio_convs(self, *, seed: int = 0) -> "MsClapBase":
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
        saved = blob.get("teminal_meta", {}).get("version", self.VERSION)
        if saved != self.VERSION:
            raise ValueError(f"{path} holds msclap {saved} weights, this model is {self.VERSION}")
        return blob

    def _apply_weights(self, blob: dict, path: str | Path) -> None:
        own = self.clap.state_dict()
        state = {k.removeprefix("module."): v for k, v in blob["model"].items()}
        state = {k: v for k, v in state.items() if k in own or not k.endswith(self.LEGACY_KEYS)}
        missing, unexpected = self.clap.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{path} does not match msclap {self.VERSION}: missing "
                               f"{missing[:5]}, unexpected {unexpected[:5]}")
        order = blob.get("teminal_order_head")
        if isinstance(self.audio_head_module, OrderAwareAudioHead) and order is not None:
            self.audio_head_module.mixer.load_state_dict(order)
        elif order is not None:
            raise ValueError(f"{path} holds a trained order-aware head; load it with audio_head='order'")

    def _load_tokenizer(self, tokenizer, download: bool):
        if tokenizer is not None:
            if not Path(tokenizer).is_dir():
                raise FileNotFoundError(f"{type(self).__name__}(tokenizer=...): no tokenizer "
                                        f"folder at {tokenizer}")
            tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        elif download:
            try:
                tok = AutoTokenizer.from_pretrained(self.args["text_model"])
            except Exception as exc:  # audio still works; text_trunk raises this message
                self._no_tokenizer = (f"could not fetch the {self.args['text_model']} tokenizer "
                                      f"from the hub ({type(exc).__name__}); save it to a folder "
                                      f"and pass {type(self).__name__}(tokenizer=<folder>)")
                return None
        else:
            return None
        return self._prepare_tokenizer(tok)

    def save(self, path: str | Path) -> None:
        """Write ``{'model': clap.state_dict()}`` (msclap's format; extra keys for teminal)."""
        blob = {"model": {k: v.detach().cpu() for k, v in self.clap.state_dict().items()},
                "teminal_meta": {"version": self.VERSION}}
        if isinstance(self.audio_head_module, OrderAwareAudioHead):
            blob["teminal_order_head"] = {k: v.detach().cpu() for k, v in
                                          self.audio_head_module.mixer.state_dict().items()}
        save_torch(blob, Path(path))

    # ---- parameter groups ---------------------------------------------------------------
    def is_head(self, name: str) -> bool:
        """Whether the CLAP parameter ``name`` (msclap naming) is in the paper's selection."""
        return name.startswith(self.TEXT_HEAD + self.AUDIO_HEAD)

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

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clap.logit_scale.exp()

    def cache_key(self) -> str:
        """Hash of version, preprocessing, tokenizer and trunk weights (not heads) (SPEC §2)."""
        trunk = ((k, v) for k, v in self.clap.state_dict().items()
                 if not self.is_head(k) and k != "logit_scale")
        vocab = (None if self.tokenizer is None else hashlib.sha1(json.dumps(
            sorted(self.tokenizer.get_vocab().items())).encode()).hexdigest())
        extra = {"backbone": "msclap", "version": self.VERSION, "args": self.args,
                 "vocab": vocab, "suffix": self.TEXT_SUFFIX, "windows": "covering"}
        return f"msclap{self.VERSION}-" + fingerprint(trunk, extra=extra)

    # ---- trunks and heads ---------------------------------------------------------------
    def _eval_trunk(self) -> None:
        for m in self.frozen_modules():
            m.eval()

    def audio_head(self, feats: AudioFeatures) -> torch.Tensor:
        return self.audio_head_module(feats)  # (B, d)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            raise RuntimeError(self._no_tokenizer)
        texts = [t + self.TEXT_SUFFIX for t in texts]
        tok = self.tokenizer(texts, padding=True, truncation=True,
                             max_length=int(self.args["text_len"]), return_tensors="pt")
        return {k: v.to(self.clap.logit_scale.device) for k, v in tok.items()}

    def text_trunk(self, texts: list[str]) -> TextFeatures:
        """Tokenize and run the frozen lower text layers (no grad, eval mode)."""
        self._eval_trunk()
        tok = self.tokenize(list(texts))
        with torch.no_grad():
            hidden = self._text_hidden(tok)  # (B, L, H)
        return TextFeatures(hidden=hidden, mask=tok["attention_mask"].long())
