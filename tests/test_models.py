"""Heads, the embedded TinyClap backbone and build_backbone (SPEC §2)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from model_fixtures import info_nce

from teminal.models import build_backbone
from teminal.models.base import AudioFeatures
from teminal.models.heads import OrderAwareAudioHead, PooledAudioHead, time_pool
from teminal.models.tiny import TinyClap, TinyConfig

TEXTS = ["a dog barks", "rain falls on a roof", "a siren before an engine"]


@pytest.fixture(scope="module")
def tiny() -> TinyClap:
    return TinyClap(config=TinyConfig())


@pytest.fixture(scope="module")
def waves() -> torch.Tensor:
    return torch.randn(3, 16000, generator=torch.Generator().manual_seed(0)) * 0.1  # (B, S) 1 s


# ---- heads --------------------------------------------------------------------------------
def _frames(b=4, t=10, c=32, seed=0):
    return torch.randn(b, t, c, generator=torch.Generator().manual_seed(seed)).relu()


def test_pooled_head_shapes_and_shared_modules():
    head = PooledAudioHead(in_dim=32, hidden=48, embed_dim=16)
    fr = _frames()
    assert head(AudioFeatures(pooled=time_pool(fr))).shape == (4, 16)
    wrapped = PooledAudioHead.from_modules(fc1=head.fc1, projection=head.projection)
    assert wrapped.fc1.weight is head.fc1.weight
    with pytest.raises(ValueError):
        PooledAudioHead(in_dim=32, hidden=48, embed_dim=16, fc1=torch.nn.Linear(8, 48))


def test_order_head_equals_pooled_at_init_then_order_sensitive():
    pooled = PooledAudioHead(in_dim=32, hidden=48, embed_dim=16).eval()
    order = OrderAwareAudioHead(pooled=pooled, max_frames=16, d_model=24, n_heads=4).eval()
    fr = _frames()
    feats = AudioFeatures(pooled=time_pool(fr), frames=fr)
    swapped = AudioFeatures(pooled=time_pool(fr), frames=torch.cat([fr[:, 5:], fr[:, :5]], 1))
    with torch.no_grad():
        assert torch.equal(order(feats), pooled(feats))  # exact: zero-init residual
        assert torch.allclose(order(swapped), order(feats), atol=1e-6)  # max + mean: no order
        torch.nn.init.normal_(order.mixer.up.weight, std=0.5)
        assert not torch.allclose(order(swapped), order(feats), atol=1e-4)
    with pytest.raises(ValueError, match="max_frames=16"):
        order(AudioFeatures(pooled=fr[:, 0], frames=_frames(t=17)))
    with pytest.raises(ValueError, match="frames"):
        order(AudioFeatures(pooled=fr[:, 0]))


# ---- TinyClap -----------------------------------------------------------------------------
def test_tiny_shapes(tiny, waves):
    feats = tiny.audio_trunk(waves, frames=True)
    c = tiny.config.channels[-1] * tiny.config.freq_bands  # channels × kept frequency bands
    assert feats.pooled.shape == (3, c) and feats.frames.shape == (3, 12, c)  # ~12 fps
    assert torch.equal(feats.pooled, time_pool(feats.frames))
    assert tiny.audio_trunk(waves).frames is None
    text = tiny.text_trunk(TEXTS)
    assert text.hidden.shape[:2] == text.mask.shape and text.hidden.shape[2] == 384
    assert tiny.audio_head(feats).shape == (3, 256) and tiny.text_head(text).shape == (3, 256)
    assert tiny.encode_audio(waves).shape == (3, 256)
    assert tiny.logit_scale.item() == pytest.approx(1 / 0.07)
    assert not tiny.needs_frames and tiny.sample_rate == 16000 and tiny.embed_dim == 256


def test_tiny_text_split_equals_full_minilm(tiny):
    tok = tiny.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        full = tiny.text_model(**tok).last_hidden_state  # (B, L, 384)
        m = tok["attention_mask"].unsqueeze(-1).float()
        ref = tiny.text_projection((full * m).sum(1) / m.sum(1))
        ours = tiny.text_head(tiny.text_trunk(TEXTS))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_tiny_trainable_selection(tiny):
    names = {n for n, p in tiny.named_parameters() if p.requires_grad}
    expected = {n for n, _ in tiny.named_parameters()
                if n.startswith(("text_model.encoder.layer.5.", "text_projection.",
                                 "audio_head_module."))}
    assert names == expected
    assert {id(p) for p in tiny.trainable_parameters()} == {
        id(p) for n, p in tiny.named_parameters() if n in expected}
    assert not tiny.logit_scale_log.requires_grad


def test_tiny_trunk_frozen_heads_get_gradients(tiny, waves):
    tiny.train()
    try:
        for m in tiny.frozen_modules():
            assert not m.training
        assert tiny.audio_head_module.training and tiny.text_projection.training
        feats = tiny.audio_trunk(waves, frames=True)
        text = tiny.text_trunk(TEXTS)
        assert not feats.pooled.requires_grad and not text.hidden.requires_grad
        tiny.zero_grad()
        info_nce(tiny.audio_head(feats), tiny.text_head(text), tiny.logit_scale).backward()
        for p in tiny.trainable_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
        assert all(p.grad is None for m in tiny.frozen_modules() for p in m.parameters())
    finally:
        tiny.zero_grad()
        tiny.eval()


def test_tiny_cache_key_tracks_trunk_not_head(tiny):
    key = tiny.cache_key()
    with torch.no_grad():
        tiny.audio_head_module.fc1.weight.add_(1.0)
        assert tiny.cache_key() == key
        tiny.audio_head_module.fc1.weight.sub_(1.0)
        tiny.blocks[0].conv1.weight[0, 0, 0, 0] += 1e-3
        changed = tiny.cache_key()
        tiny.blocks[0].conv1.weight[0, 0, 0, 0] -= 1e-3
    assert changed != key


def test_tiny_save_load_roundtrip_and_order_head(tiny, waves, tmp_path):
    path = tmp_path / "tiny.pt"
    tiny.save(path)
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"config", "state_dict"} and blob["config"]["audio_head"] == "pooled"
    again = TinyClap.load(path)
    assert again.cache_key() == tiny.cache_key()
    order = TinyClap.load(path, audio_head="order")
    assert order.needs_frames and order.cache_key() == tiny.cache_key()
    feats = tiny.audio_trunk(waves, frames=True)
    with torch.no_grad():
        ref = tiny.audio_head(feats)
        assert torch.equal(again.audio_head(feats), ref)
        assert torch.equal(order.audio_head(feats), ref)  # zero-init order module
        assert torch.equal(again.text_head(again.text_trunk(TEXTS)), tiny.text_head(tiny.text_trunk(TEXTS)))
    assert {id(p) for p in order.audio_head_module.mixer.parameters()} <= {
        id(p) for p in order.trainable_parameters()}
    order.save(tmp_path / "order.pt")
    with pytest.raises(ValueError, match="order"):
        TinyClap.load(tmp_path / "order.pt", audio_head="pooled")


def test_tiny_pretraining_mode(tiny, waves):
    n_pre = sum(p.numel() for p in tiny.pretrain_parameters())
    n_head = sum(p.numel() for p in tiny.trainable_parameters())
    n_cnn = sum(p.numel() for m in tiny._audio_trunk_modules() for p in m.parameters())
    assert n_pre == n_head + n_cnn + 1  # + logit scale
    tiny.pretraining(True).train()
    try:
        assert tiny.bn0.training and tiny.blocks.training
        assert not tiny.text_model.embeddings.training
        feats = tiny.audio_trunk(waves)
        assert feats.pooled.requires_grad
        tiny.zero_grad()
        info_nce(tiny.audio_head(feats), tiny.text_head(tiny.text_trunk(TEXTS)),
                 tiny.logit_scale).backward()
        assert tiny.blocks[0].conv1.weight.grad is not None and tiny.logit_scale_log.grad is not None
    finally:
        tiny.pretraining(False).eval()
        tiny.zero_grad()
    assert not tiny.bn0.training and not tiny.blocks[0].conv1.weight.requires_grad
    assert not tiny.audio_trunk(waves).pooled.requires_grad


def test_build_backbone_names_and_lazy_import():
    with pytest.raises(ValueError, match="tiny, msclap-2022, msclap-2023"):
        build_backbone(name="clap")
    code = ("import sys, teminal.models as m; "
            "assert 'teminal.models.tiny' not in sys.modules and 'msclap' not in sys.modules "
            "and not [k for k in sys.modules if k.startswith('teminal.models.msclap')]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_backbone_tiny_order(tmp_path, tiny):
    model = build_backbone(name="tiny", audio_head="order", max_frames=64)
    assert isinstance(model, TinyClap) and model.needs_frames
    assert model.config.max_frames == 64
    tiny.save(tmp_path / "t.pt")
    loaded = build_backbone(name="tiny", audio_head="order", checkpoint=tmp_path / "t.pt")
    assert loaded.needs_frames and loaded.cache_key() == tiny.cache_key()
