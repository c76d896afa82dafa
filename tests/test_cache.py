"""TrunkCache: cached and uncached paths agree, and a stale cache is never reused (SPEC §2)."""
from __future__ import annotations

import dataclasses
import json
import weakref

import numpy as np
import pytest
import torch
from model_fixtures import grads, info_nce, synth_wave

from teminal.audio import Recipe
from teminal.cache import TrunkCache, pack, unpack
from teminal.integrity import save_torch
from teminal.models.msclap_2022 import MsClap2022
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


BASE = "base-fingerprint-0"


def _cache(root, model, recipe, **kw) -> TrunkCache:
    kw = {"base_fingerprint": BASE, "batch_size": 3, **kw}
    return TrunkCache(root=root, backbone=model, recipe=recipe, progress=False, **kw)


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
    index = json.loads((cache.audio_dir / "index.json").read_text())
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
    c = _cache(tmp_path, tiny, recipe)
    texts = ["a dog barks", "rain"]
    want = c.text(texts)
    for shard in c.text_dir.glob("*.pt"):  # rewrite as {key: {field: tensor}} (checksummed)
        save_torch(unpack(torch.load(shard, weights_only=True)), shard)
    again = _cache(tmp_path, tiny, recipe)
    again.backbone = None  # would fail if anything were recomputed
    got = again.text(texts)
    assert torch.equal(got.hidden, want.hidden) and torch.equal(got.mask, want.mask)


def test_broken_shard_is_recomputed(tiny, recipe, tmp_path):
    render = Renderer(16000)
    cache = _cache(tmp_path, tiny, recipe)
    cache.audio(SINGLES, render, frames=False)
    for shard in cache.audio_dir.glob("*.pt"):
        shard.write_bytes(b"garbage")
    _cache(tmp_path, tiny, recipe).audio(SINGLES, render, frames=False)
    assert len(render.calls) == 2 * len(SINGLES)


class CountingBackbone:
    """A real backbone whose trunk calls are counted (clips and texts sent through each trunk)."""

    def __init__(self, model) -> None:
        self.model, self.audio_batches, self.text_batches = model, [], []

    def __getattr__(self, name):  # cache_key, sample_rate, …: the wrapped model's
        return getattr(self.model, name)

    def audio_trunk(self, wave, *, frames=False):
        self.audio_batches.append(int(wave.shape[0]))
        return self.model.audio_trunk(wave, frames=frames)

    def text_trunk(self, texts):
        self.text_batches.append(len(texts))
        return self.model.text_trunk(texts)

    @property
    def calls(self) -> tuple[int, int]:
        """(clips, texts) sent through the trunks so far."""
        return sum(self.audio_batches), sum(self.text_batches)


def _changed(value):
    """A different value of a Recipe field (bool, number, None or text)."""
    if isinstance(value, bool):
        return not value
    if value is None:
        return 0.05
    if isinstance(value, str):
        return value + "-changed"
    return value * 0.5


def _run(root, model, recipe, **kw) -> tuple[TrunkCache, tuple[int, int]]:
    """A fresh cache (nothing in memory) asked for SINGLES and TEXTS; the trunk calls it made."""
    counting = CountingBackbone(model)
    cache = _cache(root, counting, recipe, **kw)
    cache.audio(SINGLES, Renderer(model.sample_rate), frames=False)
    cache.text(TEXTS)
    return cache, counting.calls


def test_identical_configuration_reuses_everything(tiny, recipe, tmp_path):
    first, calls = _run(tmp_path, tiny, recipe)
    assert calls == (len(SINGLES), len(TEXTS))
    again, calls = _run(tmp_path, tiny, recipe)
    assert calls == (0, 0)
    assert (again.audio_dir, again.text_dir) == (first.audio_dir, first.text_dir)
    assert again.audio_dir.parent == tmp_path / tiny.cache_key()
    assert again.text_dir == tmp_path / tiny.cache_key() / "text-float16"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Recipe)])
def test_each_recipe_field_keys_the_audio_not_the_text(tiny, recipe, field, tmp_path):
    """SPEC §2: every Recipe field (whatever fields it has) is in the audio key; text is shared."""
    base, _ = _run(tmp_path, tiny, recipe)
    value = getattr(recipe, field)
    if field == "sample_rate":  # the backbone fixes the rate: another one is refused outright
        with pytest.raises(ValueError, match="sample_rate"):
            _cache(tmp_path, tiny, dataclasses.replace(recipe, sample_rate=value * 2))
        return
    other = dataclasses.replace(recipe, **{field: _changed(value)})
    assert other != recipe
    moved, calls = _run(tmp_path, tiny, other)
    assert moved.audio_dir != base.audio_dir and moved.audio_dir.parent == base.audio_dir.parent
    assert calls == (len(SINGLES), 0)  # audio recomputed, captions reused
    assert moved.text_dir == base.text_dir
    meta = json.loads((moved.audio_dir / "meta.json").read_text())
    assert meta["recipe"][field] == getattr(other, field) and meta["base_fingerprint"] == BASE
    _, calls = _run(tmp_path, tiny, recipe)  # the first configuration is still there
    assert calls == (0, 0)


def test_base_fingerprint_keys_the_audio_not_the_text(tiny, recipe, tmp_path):
    base, _ = _run(tmp_path, tiny, recipe)
    moved, calls = _run(tmp_path, tiny, recipe, base_fingerprint="base-fingerprint-1")
    assert moved.audio_dir != base.audio_dir and moved.text_dir == base.text_dir
    assert calls == (len(SINGLES), 0)
    assert json.loads((moved.audio_dir / "meta.json").read_text())["base_fingerprint"] == "base-fingerprint-1"
    with pytest.raises(ValueError, match="base_fingerprint"):
        _cache(tmp_path, tiny, recipe, base_fingerprint="")


def test_dtype_keys_audio_and_text(tiny, recipe, tmp_path):
    base, _ = _run(tmp_path, tiny, recipe)
    moved, calls = _run(tmp_path, tiny, recipe, dtype=torch.float32)
    assert moved.audio_dir != base.audio_dir and moved.text_dir != base.text_dir
    assert moved.text_dir.name == "text-float32"
    assert calls == (len(SINGLES), len(TEXTS))
    meta = json.loads((moved.text_dir / "meta.json").read_text())
    assert meta["kind"] == "text" and meta["dtype"] == "float32" and meta["cache_key"] == tiny.cache_key()
    stored = {k: v for shard in moved.audio_dir.glob("*.pt")
              for k, v in unpack(torch.load(shard, weights_only=True)).items()}
    assert set(stored) == set(SINGLES)
    assert all(v["pooled"].dtype == torch.float32 for v in stored.values())


@pytest.mark.parametrize("module", ["bn0", "text_trunk"])
def test_trunk_weights_key_audio_and_text(recipe, module, tmp_path):
    """A changed audio-trunk or text-trunk weight moves both folders and recomputes both."""
    model = TinyClap(config=TinyConfig())
    base, _ = _run(tmp_path, model, recipe)
    frozen = {"bn0": model.bn0.running_mean,  # audio trunk
              "text_trunk": model.text_model.encoder.layer[0].attention.self.query.weight}
    weight = frozen[module]
    assert not weight.requires_grad  # a trunk weight, not a head one
    with torch.no_grad():
        weight += 0.5
    moved, calls = _run(tmp_path, model, recipe)
    assert moved.audio_dir.parent != base.audio_dir.parent and moved.text_dir != base.text_dir
    assert calls == (len(SINGLES), len(TEXTS))
    feats = moved.audio(SINGLES, Renderer(16000), frames=False)
    direct = model.audio_trunk(torch.from_numpy(np.stack([synth_wave(k, sample_rate=16000) for k in SINGLES])))
    assert torch.allclose(feats.pooled, direct.pooled, rtol=2e-3, atol=2e-3)


def test_head_weights_do_not_key_the_cache(recipe, tmp_path):
    model = TinyClap(config=TinyConfig())
    _run(tmp_path, model, recipe)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.1)
    _, calls = _run(tmp_path, model, recipe)
    assert calls == (0, 0)  # heads train on cached trunk features: same key


def test_missing_audio_is_encoded_in_bounded_batches(tiny, recipe, tmp_path):
    """Renders are encoded in batches of one length, at most batch_size clips; at most
    2 · batch_size rendered waves are alive at once (no list of every wave)."""
    alive: list[weakref.ref] = []
    peak = []

    def render(key: str) -> np.ndarray:
        peak.append(sum(r() is not None for r in alive))
        wave = synth_wave(key, sample_rate=16000)
        alive.append(weakref.ref(wave))
        return wave

    # three lengths interleaved (1, 2 and 3 parts), 30 clips
    keys = [f"{['single', 'seq', 'tri'][n % 3]}|" + "|".join(f"c{n}-{m}.wav" for m in range(n % 3 + 1))
            for n in range(30)]
    counting = CountingBackbone(tiny)
    cache = _cache(tmp_path, counting, recipe, batch_size=4)
    feats = cache.audio(keys, render, frames=False)
    assert max(peak) <= 2 * 4 and max(counting.audio_batches) <= 4
    assert sum(counting.audio_batches) == len(keys) and len(peak) == len(keys)
    for n in (0, 1, 2, 29):
        direct = tiny.audio_trunk(torch.from_numpy(synth_wave(keys[n], sample_rate=16000))[None])
        assert torch.allclose(feats.pooled[n], direct.pooled[0], rtol=2e-3, atol=2e-3)


def test_msclap_weights_file_changes_the_cache(tmp_path):
    model = MsClap2022(random_init=True, seed=3)
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
    assert cache_b.audio_dir != cache_a.audio_dir and cache_b.text_dir != cache_a.text_dir
    feats_b = cache_b.audio(SINGLES[:2], render, frames=False)
    assert len(render.calls) == 4  # nothing reused across weights files
    assert not torch.allclose(feats_a.pooled, feats_b.pooled)
    model.load_weights(path_a)
    assert _cache(tmp_path, model, recipe).audio_dir == cache_a.audio_dir
