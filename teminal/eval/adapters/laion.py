"""LAION-CLAP (and CompA-CLAP, same checkpoint format) as an evaluation model (SPEC §2).

Built offline from the ``laion-clap`` package's own classes (``clap_module.create_model``):
HTSAT-tiny or HTSAT-base audio, RoBERTa-base text, with or without feature fusion. The package
fetches ``roberta-base`` from the hub while building (and its ``laion_clap/__init__`` fetches
three tokenizers at import), so this adapter imports ``clap_module`` directly and builds the
text branch from the roberta-base configuration (``ROBERTA_BASE``; weights come from the
checkpoint) and the tokenizer from a local folder.

Checkpoint: a local ``.pt`` in the release format — ``{"state_dict": {"module.<name>": …},
…}`` (``630k-audioset-best.pt``, ``630k-audioset-fusion-best.pt`` from
https://huggingface.co/lukewys/laion_clap; CompA-CLAP's released checkpoints share it).

**Input rule** (deterministic; the package's ``get_audio_embedding_*`` crop a long clip at a
random offset, and the fusion model picks its three local chunks at random): 48 kHz, int16
quantised as the package does, a window of 10 s.
- shorter than 10 s: zero-padded (``filling="pad"``, the default: repeating a composite
  ``a ⊕ b`` would add a ``b`` before ``a``) or repeated then padded (``"repeatpad"``, the
  package's choice);
- longer, no fusion: windows of 10 s evenly spaced from the start to the end (⌈L / 10 s⌉ of
  them), the mean of their embeddings, so every event is heard;
- longer, fusion: the package's global view (the whole clip shrunk to 10 s) plus three local
  10 s chunks taken at the start of the first third, the middle of the second and the end of
  the last third of the admissible offsets (the package draws each at random).
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from teminal.eval.models import InputRule, ModelAdapter

AUDIO_MODELS = ("HTSAT-tiny", "HTSAT-base")
FILLINGS = ("pad", "repeatpad")
ROBERTA_BASE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, max_position_embeddings=514,
                    type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
                    eos_token_id=2)
"""roberta-base's configuration (the hub's config.json), so the text branch builds offline."""
WEIGHTS_URL = "https://huggingface.co/lukewys/laion_clap"
TOKENIZER_URL = "https://huggingface.co/FacebookAI/roberta-base"


def clap_module():
    """The package's ``clap_module`` without running ``laion_clap/__init__`` (which reaches the
    hub at import). ImportError with the install command when the package is missing."""
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or spec.origin is None:
        raise ImportError("LAION-CLAP needs the laion-clap package: pip install laion-clap")
    folder = str(Path(spec.origin).parent)
    if folder not in sys.path:
        sys.path.append(folder)  # as laion_clap/__init__ does: its modules import clap_module
    import clap_module as cm

    return cm


class LaionClap(ModelAdapter):
    """LAION-CLAP / CompA-CLAP (module doc)."""

    def __init__(self, *, checkpoint: str | Path | None = None, tokenizer: str | Path | None = None,
                 amodel: str = "HTSAT-tiny", fusion: bool = False, random_init: bool = False,
                 filling: str = "pad", seed: int = 0, name: str | None = None,
                 batch_size: int = 8) -> None:
        if amodel not in AUDIO_MODELS:
            raise ValueError(f"laion-clap amodel: expected one of {AUDIO_MODELS}, got {amodel!r}")
        if filling not in FILLINGS:
            raise ValueError(f"laion-clap filling: expected one of {FILLINGS}, got {filling!r}")
        if random_init == (checkpoint is not None):
            raise ValueError("laion-clap: pass checkpoint=<file.pt> (or random_init=true for a "
                             "rehearsal with random weights), not both")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"laion-clap checkpoint not found at {checkpoint}: download "
                f"630k-audioset-best.pt (fusion=false) or 630k-audioset-fusion-best.pt "
                f"(fusion=true) from {WEIGHTS_URL} (or a CompA-CLAP checkpoint) and pass its path")
        self.tokenizer = _load_tokenizer(tokenizer)
        self.fusion, self.filling, self.batch_size = bool(fusion), filling, batch_size
        self.name = name or f"laion-clap-{amodel}{'-fusion' if fusion else ''}"
        self.model, self.cfg = _build(amodel=amodel, fusion=self.fusion, seed=seed)
        if checkpoint is not None:
            self.load(checkpoint)
        self.model.eval()
        self.audio_cfg = self.cfg["audio_cfg"]
        rate, samples = int(self.audio_cfg["sample_rate"]), int(self.audio_cfg["clip_samples"])
        self.window = samples
        self.rule = InputRule(
            sample_rate=rate, window_seconds=samples / rate,
            longer=("global view + 3 local chunks at fixed offsets (start, middle, end)"
                    if self.fusion else "10 s windows evenly spaced from start to end, embeddings "
                                        "averaged"),
            shorter="zero-padded" if filling == "pad" else "repeated, then zero-padded")

    # ---- weights ------------------------------------------------------------------------
    def load(self, path: str | Path) -> None:
        """Load a release-format checkpoint; RuntimeError naming the file on a mismatch."""
        try:
            blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RuntimeError(f"cannot read laion-clap checkpoint {path}: {exc}") from exc
        state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
        if not isinstance(state, dict) or not state:
            raise RuntimeError(f"{path} is not a laion-clap checkpoint ({{'state_dict': …}})")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = self.model.state_dict()
        state = {k: v for k, v in state.items() if k in own or not k.endswith("position_ids")}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            hint = (" (fusion checkpoints hold audio_branch.fusion_model.*: set fusion to match)"
                    if any("fusion" in k for k in [*missing, *unexpected]) else "")
            raise RuntimeError(f"{path} does not match laion-clap {self.name}: missing "
                               f"{missing[:4]}, unexpected {unexpected[:4]}{hint}")

    def save(self, path: str | Path) -> None:
        """Write the release format (``module.`` prefixes, as the distributed training saves)."""
        state = {f"module.{k}": v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"epoch": 0, "name": self.name, "state_dict": state}, Path(path))

    # ---- embeddings ---------------------------------------------------------------------
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(texts, padding="max_length", truncation=True, max_length=77,
                             return_tensors="pt")
        return self.model.get_text_embedding({k: tok[k] for k in ("input_ids", "attention_mask")})

    def _embed_batch(self, wave: torch.Tensor) -> torch.Tensor:
        wave = torch.round(wave.clamp(-1, 1) * 32767.0) / 32767.0  # int16 round trip, as the package
        n, w = wave.shape[1], self.window
        if n <= w or self.fusion:
            return self.model.get_audio_embedding([self._features(x) for x in wave])  # (b, d)
        starts = np.linspace(0, n - w, math.ceil(n / w)).round().astype(int)  # cover the clip
        z = [self.model.get_audio_embedding([self._features(x[s : s + w]) for x in wave])
             for s in starts]  # each (b, d), unit norm
        return torch.stack(z).mean(0)  # (b, d)

    def _features(self, x: torch.Tensor) -> dict:
        """One clip (S,) → the package's input dict (``get_audio_features``, deterministic)."""
        w = self.window
        if len(x) < w and self.filling == "repeatpad":
            x = x.repeat(w // len(x))
        if len(x) < w:
            x = F.pad(x, (0, w - len(x)))
        out = {"longer": torch.tensor([False]), "waveform": x[:w]}
        if self.fusion:
            mel = self._mel(x)  # (T, 64)
            chunk = w // self.audio_cfg["hop_size"] + 1
            if mel.shape[0] <= chunk:
                out["mel_fusion"] = torch.stack([mel[:chunk]] * 4)  # (4, chunk, 64)
            else:
                out["mel_fusion"] = _fusion_views(mel, chunk)
                out["longer"] = torch.tensor([True])
        return out

    def _mel(self, x: torch.Tensor) -> torch.Tensor:
        """The package's log-mel (``training.data.get_mel``): (S,) → (T, mel_bins)."""
        import torchaudio

        c = self.audio_cfg
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=c["sample_rate"], n_fft=c["window_size"], win_length=c["window_size"],
            hop_length=c["hop_size"], center=True, pad_mode="reflect", power=2.0, norm=None,
            onesided=True, n_mels=c["mel_bins"], f_min=c["fmin"], f_max=c["fmax"])(x)
        return torchaudio.transforms.AmplitudeToDB(top_db=None)(mel).T  # (T, mel_bins)


def _fusion_views(mel: torch.Tensor, chunk: int) -> torch.Tensor:
    """mel (T, F), T > chunk → (4, chunk, F): the whole clip shrunk to ``chunk`` frames, then
    chunks at the first, middle and last offset of the three thirds of ``0..T-chunk``."""
    import torchvision

    ranges = np.array_split(np.arange(mel.shape[0] - chunk + 1), 3)
    picks = [ranges[0][0], ranges[1][len(ranges[1]) // 2] if len(ranges[1]) else 0,
             ranges[2][-1] if len(ranges[2]) else 0]
    shrink = torchvision.transforms.Resize(size=[chunk, mel.shape[1]])(mel[None])[0]
    return torch.stack([shrink, *(mel[p : p + chunk] for p in picks)])  # (4, chunk, F)


def _build(*, amodel: str, fusion: bool, seed: int):
    """``clap_module.create_model`` with the roberta text branch built from ``ROBERTA_BASE``
    instead of fetched (the package calls ``RobertaModel.from_pretrained('roberta-base')``)."""
    from transformers import RobertaConfig, RobertaModel

    cm = clap_module()

    class _OfflineRoberta:
        @staticmethod
        def from_pretrained(*_args, **_kwargs):
            return RobertaModel(RobertaConfig(**ROBERTA_BASE))

    kwargs = {"fusion_type": "aff_2d"} if fusion else {}
    with torch.random.fork_rng(devices=[]), mock.patch.object(cm.model, "RobertaModel", _OfflineRoberta):
        torch.manual_seed(seed)
        model, cfg = cm.create_model(amodel, "roberta", precision="fp32", device="cpu",
                                     enable_fusion=fusion, **kwargs)
    return model, cfg


def _load_tokenizer(folder):
    how = (f"save the roberta-base tokenizer (vocab.json, merges.txt) from {TOKENIZER_URL} to a "
           f"folder and pass tokenizer=<folder>")
    if folder is None:
        raise ValueError(f"laion-clap needs a local tokenizer: {how}")
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"laion-clap tokenizer: no folder at {folder}: {how}")
    from transformers import RobertaTokenizer

    return RobertaTokenizer.from_pretrained(str(folder), local_files_only=True)
