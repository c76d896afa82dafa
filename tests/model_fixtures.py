"""Helpers shared by the model and cache tests: tiny offline tokenizers, a plain InfoNCE, and
deterministic synthetic audio. (Not fixtures themselves, so no conftest is needed.)"""
from __future__ import annotations

import json
import string
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BERT_WORDS = ("[PAD] [UNK] [CLS] [SEP] [MASK] a the dog cat bark ##s rain bird sound of single "
              "combined and before after while in this siren engine crying baby").split()


def make_bert_tokenizer(folder: Path) -> Path:
    """A tiny BERT WordPiece tokenizer folder (ids < 30, inside bert-base's vocabulary)."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def make_gpt2_tokenizer(folder: Path) -> Path:
    """A tiny byte-level BPE tokenizer with GPT-2's conventions ('!' = id 0, <|endoftext|>)."""
    from transformers import GPT2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(["!"] + list(string.ascii_lowercase) + ["Ġ"])}
    merges = [("Ġ", "d"), ("Ġd", "o"), ("Ġdo", "g")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    return folder


def info_nce(z_a: torch.Tensor, z_c: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with the diagonal as positives (written here, not from losses.py)."""
    logits = scale * F.normalize(z_a, dim=-1) @ F.normalize(z_c, dim=-1).T  # (B, B)
    target = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def synth_wave(key: str, *, sample_rate: int, seconds_per_part: float = 0.5) -> np.ndarray:
    """A deterministic waveform for an audio key: one part per clip named in the key."""
    parts = key.split("|")[1:] or [key]
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    n = int(sample_rate * seconds_per_part) * len(parts)
    t = np.arange(n) / sample_rate
    tone = np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
    return (0.3 * tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


def grads(params) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


def make_roberta_tokenizer(folder: Path) -> Path:
    """A tiny byte-level BPE tokenizer with RoBERTa's conventions (<s>=0, <pad>=1, </s>=2)."""
    from transformers import RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for c in list(string.ascii_lowercase) + ["Ġ"]:
        vocab[c] = len(vocab)
    merges = [("Ġ", "d"), ("Ġd", "o"), ("Ġdo", "g")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    return folder
