"""TrunkCache: cached and uncached paths agree, and a stale cache is never reused (SPEC §2)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_fixtures import grads, info_nce, synth_wave

from teminal.audio import Recipe
from teminal.cache import TrunkCache, pack, unpack
from teminal.models.msclap import MsClap
from teminal.models.tiny import TinyClap, TinyConfig

SINGLES = ["single|a.wav", "single|b.wav", "single|c.wav", "single|d.wav"]
TEXTS = ["a dog barks", "rain falls", "a siren wails", "an engine hums"]


class Renderer:
    """``render(key)`` for the cache, counting calls."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate, self.calls = sample_rate, []

    def __call__(self, key: str) -> np.ndarray:
        self.calls.append(key)
        return synth_wave(key, sample_rate=self.sample_rate)


@pytest.fixture(scope="module")
def tiny() -> TinyClap:
    return TinyClap(config=TinyConfig())


@pytest.fixture()
def recipe() -> Recipe:
    return Recipe(sample_rate=16000)


def _cache(root, model, recipe, **kw) -> TrunkCache:
    return TrunkCache(root=root, backbone=model, recipe=recipe, batch_size=3, progress=False, **kw)


def _loss_and_grads(model, audio, text):
    model.zero_grad()
    loss = info_nce(model.audio_head(audio), model.text_head(text), model.logit_scale)
    loss.backward()
    out = loss.detach(), grads(model.trainable_parameters())
    model.zero_grad()
    return out


def test_cached_equals_uncached(tiny, recipe, tmp_path):
    render = Renderer(16000)
    wave = torch.from_numpy(np.stack([synth_wave(k, sample_rate=16000) for k in SINGLES]))
    direct_a, direct_t = tiny.audio_trunk(wave), tiny.text_trunk(TEXTS)
    cache = _cache(tmp_path, tiny, recipe)
    cached_a, cached_t = cache.audio(SINGLES, render, frames=False), cache.text(TEXTS)
    assert cached_a.pooled.dtype == torch.float32 and cached_a.frames is None
    assert torch.allclose(cached_a.pooled, direct_a.pooled, rtol=2e-3, atol=2e-3)
    assert torch.equal(cached_t.mask, direct_t.mask)
    real = direct_t.mask.bool()
    assert torch.allclose(cached_t.hidden[real], direct_t.hidden[real], rtol=2e-3, atol=2e-3)
    assert (cached_t.hidden[~real] == 0).all()
    loss_d, grads_d = _loss_and_grads(tiny, direct_a, direct_t)
    loss_c, grads_c = _loss_and_grads(tiny, cached_a, cached_t)
    assert abs(loss_d.item() - loss_c.item()) < 1e-3
    for gd, gc in zip(grads_d, grads_c):
        assert gd is not None and torch.allclose(gd, gc, rtol=2e-2, atol=1e-4)


def test_order_duplicates_and_only_missing_computed(tiny, recipe, tmp_path):
    render = Renderer(16000)
    cache = _cache(tmp_path, tiny, recipe)
    first = cache.audio(SINGLES[:3], render, frames=False)
    assert sorted(render.calls) == sorted(SINGLES[:3])
    keys = [SINGLES[3], SINGLES[0], SINGLES[3], SINGLES[1], SINGLES[0]]
    again = cache.audio(keys, render, frames=False)
    assert render.calls[3:] == [SINGLES[3]]  # only the missing one, once
    assert torch.equal(again.pooled[1], first.pooled[0]) and torch.equal(again.pooled[3], first.pooled[1])
    assert torch.equal(again.pooled[0], again.pooled[2]) and torch.equal(again.pooled[1], again.pooled[4])
    text = cache.text([TEXTS[1], TEXTS[0], TEXTS[1]])
    assert torch.equal(text.hidden[0], text.hidden[2])
    assert text.hidden.shape[1] == int(text.mask.sum(1).max())  # padded to the longest


def test_frames_on_request_and_reopen(tiny, recipe, tmp_path):
    render = Renderer(16000)
    cache = _cache(tmp_path, tiny, recipe)
    cache.audio(SINGLES, render, frames=False)
    feats = cache.audio(SINGLES, render, frames=True)  # stored without frames: computed now
    assert len(render.calls) == 2 * len(SINGLES)
    width = tiny.config.channels[-1] * tiny.config.freq_bands
    assert feats.frames.shape == (4, 6, width)  # 0.5 s at ~12.5 frames per second
    with pytest.raises(ValueError, match="different lengths"):
        cache.audio(SINGLES + ["seq|a.wav|b.wav"], render, frames=True)
    n = len(render.calls)
    reopened = _cache(tmp_path, tiny, recipe)
    again = reopened.audio(SINGLES, render, frames=True)
    text_a, text_b = cache.text(TEXTS), reopened.text(TEXTS)
    assert len(render.calls) == n
    assert torch.equal(again.frames, feats.frames) and torch.equal(again.pooled, feats.pooled)
    assert torch.equal(text_a.hidden, text_b.hidden)
    assert not list(tmp_path.rglob("*.tmp"))
    index = json.loads((cache.dir / "audio" / "index.json").read_text())
    assert set(index) == set(SINGLES) | {"seq|a.wav|b.wav"}


def test_order_head_on_cached_frames_equals_pooled_at_init(tiny, recipe, tmp_path):
    tiny.save(tmp_path / "tiny.pt")
    order = TinyClap.load(tmp_path / "tiny.pt", audio_head="order")
    assert order.cache_key() == tiny.cache_key()  # same trunk: the same cache serves both
    feats = _cache(tmp_path / "c", order, recipe).audio(SINGLES, Renderer(16000), frames=True)
    with torch.no_grad():
        assert torch.allclose(order.audio_head(feats), tiny.audio_head(feats), atol=1e-2)


def test_pack_round_trip_keeps_every_tensor():
    items = {"a": {"pooled": torch.randn(8).half(), "frames": torch.randn(5, 8).half(),
                   "mask": torch.tensor([1, 1, 0])},
             "b": {"pooled": torch.randn(8).half(), "frames": torch.randn(2, 8).half(),
                   "mask": torch.tensor([1])},
             "c": {"pooled": torch.randn(8).half()}}
    back = unpack(pack(items))
    assert back.keys() == items.keys()
    for k, fields in items.items():
        assert back[k].keys() == fields.keys()
        for name, t in fields.items():
            assert back[k][name].dtype == t.dtype and torch.equal(back[k][name], t)
    with pytest.raises(ValueError, match="pooled"):
        pack({"a": {"pooled": torch.zeros(2)}, "b": {"pooled": torch.zeros(2, 2)}})


def test_shards_of_the_earlier_unpacked_format_are_still_read(tiny, recipe, tmp_path):
    c = TrunkCache(root=tmp_path, backbone=tiny, recipe=recipe, progress=False)
    texts = ["a dog barks", "rain"]
    want = c.text(texts)
    for shard in (c.dir / "text").glob("*.pt"):  # rewrite as {key: {field: tensor}}
        torch.save(unpack(torch.load(shard, weights_only=True)), shard)
    again = TrunkCache(root=tmp_path, backbone=tiny, recipe=recipe, progress=False)
    again.backbone = None  # would fail if anything were recomputed
    got = again.text(texts)
    assert torch.equal(got.hidden, want.hidden) and torch.equal(got.mask, want.mask)


def test_broken_shard_is_recomputed(tiny, recipe, tmp_path):
    render = Renderer(16000)
    cache = _cache(tmp_path, tiny, recipe)
    cache.audio(SINGLES, render, frames=False)
    for shard in (cache.dir / "audio").glob("*.pt"):
        shard.write_bytes(b"garbage")
    _cache(tmp_path, tiny, recipe).audio(SINGLES, render, frames=False)
    assert len(render.calls) == 2 * len(SINGLES)


def test_changed_recipe_or_trunk_is_never_reused(tiny, recipe, tmp_path):
    render = Renderer(16000)
    base = _cache(tmp_path, tiny, recipe)
    base.audio(SINGLES, render, frames=False)
    other_recipe = Recipe(sample_rate=16000, level_rms=0.2)
    moved = _cache(tmp_path, tiny, other_recipe)
    assert moved.dir != base.dir
    moved.audio(SINGLES, render, frames=False)
    assert len(render.calls) == 2 * len(SINGLES)
    with torch.no_grad():
        tiny.bn0.running_mean += 0.5
    try:
        changed = _cache(tmp_path, tiny, recipe)
        assert changed.dir.parent != base.dir.parent
        feats = changed.audio(SINGLES, render, frames=False)
        assert len(render.calls) == 3 * len(SINGLES)
        assert torch.allclose(feats.pooled, tiny.audio_trunk(torch.from_numpy(
            np.stack([synth_wave(k, sample_rate=16000) for k in SINGLES]))).pooled, atol=2e-2)
    finally:
        with torch.no_grad():
            tiny.bn0.running_mean -= 0.5
    with pytest.raises(ValueError, match="sample_rate"):
        _cache(tmp_path, tiny, Recipe(sample_rate=44100))


def test_msclap_weights_file_changes_the_cache(tmp_path):
    model = MsClap(version="2022", random_init=True, seed=3)
    recipe, render = Recipe(sample_rate=44100), Renderer(44100)
    path_a, path_b = tmp_path / "a.pth", tmp_path / "b.pth"
    model.save(path_a)
    with torch.no_grad():
        model.clap.audio_encoder.base.conv_block1.conv1.weight.mul_(1.5)  # a trunk weight
    model.save(path_b)
    model.load_weights(path_a)
    cache_a = _cache(tmp_path, model, recipe)
    feats_a = cache_a.audio(SINGLES[:2], render, frames=False)
    model.load_weights(path_b)
    cache_b = _cache(tmp_path, model, recipe)
    assert cache_b.dir != cache_a.dir
    feats_b = cache_b.audio(SINGLES[:2], render, frames=False)
    assert len(render.calls) == 4  # nothing reused across weights files
    assert not torch.allclose(feats_a.pooled, feats_b.pooled)
    model.load_weights(path_a)
    assert _cache(tmp_path, model, recipe).dir == cache_a.dir
