"""The composition operators of SPEC §1 (teminal.audio), audio keys, T and clip rendering."""
from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import soundfile as sf

from teminal.audio import RELATIONS, Recipe, compose, concat, overlay, peak_limit, read_audio, rms, tile
from teminal.data.clips import ClipStore, audio_key, parse_key, render, temporal_inverse
from teminal.data.base_set import load

RAW = Recipe(sample_rate=8000, level_rms=None, peak_limit=None, crest_limit=None, tile_overlay=False)


@pytest.fixture
def ab():
    rng = np.random.default_rng(0)
    a = (0.2 * rng.standard_normal(800)).astype(np.float32)
    b = (0.05 * rng.standard_normal(500)).astype(np.float32)
    return a, b


def test_concat_length_and_order(ab):
    a, b = ab
    out = concat(a, b)
    assert len(out) == len(a) + len(b)
    np.testing.assert_array_equal(out[: len(a)], a)
    np.testing.assert_array_equal(out[len(a):], b)


def test_seq_begins_with_first_clip(ab):
    a, b = ab
    np.testing.assert_array_equal(compose(a, b, "seq", RAW)[: len(a)], a)
    levelled = compose(a, b, "seq", Recipe(sample_rate=8000, peak_limit=None, crest_limit=None))
    np.testing.assert_allclose(levelled[: len(a)], a * (0.1 / rms(a)), rtol=1e-5)


def test_temporal_inverse_twice_is_identity():
    key = "seq|a.wav|b.wav"
    assert temporal_inverse(key) == "seq|b.wav|a.wav"
    assert temporal_inverse(temporal_inverse(key)) == key
    mix = "mix|a.wav|a2.wav|b.wav|b2.wav"
    assert temporal_inverse(mix) == mix  # the overlay has no order
    with pytest.raises(ValueError, match="one sound"):
        temporal_inverse("single|a.wav")
    with pytest.raises(ValueError, match="one sound"):
        temporal_inverse("span|a.wav|a2.wav")


def test_seq_swapped_is_order_reversed_not_time_reversed(ab):
    a, b = ab
    fwd, rev = compose(a, b, "seq", RAW), compose(b, a, "seq", RAW)
    np.testing.assert_array_equal(rev[: len(b)], b)  # b first, b's samples not reversed
    np.testing.assert_array_equal(np.sort(fwd), np.sort(rev))


def test_overlay_is_a_sum(ab):
    a, b = ab
    out = overlay(a, b)
    assert len(out) == max(len(a), len(b))
    expected = a.copy()
    expected[: len(b)] += b
    np.testing.assert_allclose(out, expected)
    padded = np.pad(expected, (0, min(len(a), len(b))))  # zero-padded to a ⊕ b's length
    np.testing.assert_allclose(compose(a, b, "mix", RAW), padded)


def test_overlay_tiled_to_concat_length(noise):
    """No second clips given: the loop of ``pairing: paper`` ((a ⊕ a) ∧ (b ⊕ b))."""
    a, b = noise
    out = compose(a, b, "mix", Recipe(sample_rate=8000, level_rms=None, peak_limit=None))
    assert len(out) == len(compose(a, b, "seq", RAW)) == len(a) + len(b)
    np.testing.assert_allclose(out[len(a): len(a) + 500], overlay(a, b)[:500])
    assert len(tile(np.arange(3, dtype=np.float32), 7)) == 7


def test_overlay_spans_with_second_clips_and_never_repeats(noise):
    """SPEC §1: (a ⊕ a2) ∧ (b ⊕ b2), as long as a ⊕ b, its two halves different."""
    a, b = noise
    rng = np.random.default_rng(5)
    a2, b2 = (rng.standard_normal(len(a)).astype(np.float32) for _ in range(2))
    plain = Recipe(sample_rate=8000, level_rms=None, peak_limit=None)
    out = compose(a, b, "mix", plain, a2=a2, b2=b2)
    assert len(out) == len(a) + len(b)
    np.testing.assert_allclose(out, np.concatenate([a + b, a2 + b2]), rtol=1e-6)
    assert not np.array_equal(out[: len(a)], out[len(a):])
    padded = compose(a, b, "mix", replace(plain, tile_overlay=False), a2=a2, b2=b2)
    np.testing.assert_array_equal(padded[len(a):], 0)  # the paper's zero-padded overlay
    np.testing.assert_allclose(padded[: len(a)], a + b, rtol=1e-6)
    span = compose(a, a2, "span", plain)
    np.testing.assert_array_equal(span, np.concatenate([a, a2]))
    with pytest.raises(ValueError, match="second clips"):
        compose(a, b, "seq", plain, a2=a2)


def test_levelling_brings_parts_to_same_rms(ab):
    a, b = ab
    r = Recipe(sample_rate=8000, level_rms=0.1, peak_limit=None, crest_limit=None)
    out = compose(a, b, "seq", r)
    assert rms(out[: len(a)]) == pytest.approx(0.1, rel=1e-4)
    assert rms(out[len(a):]) == pytest.approx(0.1, rel=1e-4)
    silence = np.zeros(100, np.float32)
    assert not compose(silence, None, "single", r).any()


def test_peak_limit_scales_down_never_up(ab):
    a, b = ab
    loud = Recipe(sample_rate=8000, level_rms=0.9, peak_limit=0.99)
    assert np.max(np.abs(compose(a, b, "mix", loud))) <= 0.99 + 1e-6
    quiet = np.full(10, 0.1, np.float32)
    np.testing.assert_array_equal(peak_limit(quiet, 0.99), quiet)


def test_read_audio_mono_and_resampled(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 100 * t), np.zeros_like(t)], axis=1) * 0.5
    path = tmp_path / "s.wav"
    sf.write(str(path), stereo.astype(np.float32), 8000, subtype="FLOAT")
    same = read_audio(path)
    assert same.ndim == 1 and same.dtype == np.float32 and len(same) == 8000
    np.testing.assert_allclose(same, stereo.mean(axis=1), atol=1e-6)
    up = read_audio(path, sample_rate=16000)
    assert len(up) == 16000


def test_errors(tmp_path, ab):
    a, b = ab
    with pytest.raises(ValueError, match="relation"):
        compose(a, b, "reverse", RAW)
    with pytest.raises(ValueError, match="two clips"):
        compose(a, None, "seq", RAW)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not a wav at all" * 10)
    with pytest.raises(ValueError, match="garbage.wav"):
        read_audio(garbage)
    with pytest.raises(ValueError, match="empty"):
        tile(np.zeros(0, np.float32), 5)


def test_audio_keys_roundtrip_and_errors():
    assert audio_key("single", "a.wav") == "single|a.wav"
    assert audio_key("span", "a.wav", "a2.wav") == "span|a.wav|a2.wav"
    assert audio_key("seq", "a.wav", "b.wav") == "seq|a.wav|b.wav"
    assert audio_key("seq", "b.wav", "a.wav") == "seq|b.wav|a.wav"  # order matters in a sequence
    for key in ("single|a.wav", "span|a.wav|a2.wav", "seq|a.wav|b.wav", "seq|b.wav|a.wav",
                "mix|a.wav|a2.wav|b.wav|b2.wav", "mix|a.wav|a.wav|b.wav|b.wav"):
        relation, clips = parse_key(key)
        assert audio_key(relation, *clips) == key
    assert parse_key("single|a.wav") == ("single", ("a.wav",))
    assert parse_key("span|a.wav|a2.wav") == ("span", ("a.wav", "a2.wav"))
    for bad in ("a.wav", "seq|a.wav", "single|a.wav|b.wav", "span|a.wav", "mix|a.wav|b.wav",
                "mix||a2.wav|b.wav|b2.wav", "rev|a.wav|b.wav", "", "loop|a.wav",
                "mix|b.wav|b2.wav|a.wav|a2.wav"):
        with pytest.raises(ValueError, match="bad audio key"):
            parse_key(bad)
    with pytest.raises(ValueError, match="takes 2 clip"):
        audio_key("seq", "a.wav")
    with pytest.raises(ValueError, match="takes 1 clip"):
        audio_key("single", "a.wav", "b.wav")
    with pytest.raises(ValueError, match="relation"):
        audio_key("concat", "a.wav", "b.wav")


def test_clip_store_and_render(esc50_like):
    base = load(esc50_like)
    store = ClipStore(base, sample_rate=16000)
    a, b = base.clips["filename"].iloc[:2]
    store.preload([a, b, a])
    assert len(store) == 2 and store[a] is store[a]  # memoized
    assert len(store[a]) == int(0.25 * 16000)  # resampled from 8 kHz
    recipe = Recipe(sample_rate=16000)
    fwd = render(audio_key("seq", a, b), store, recipe)
    np.testing.assert_allclose(fwd, compose(store[a], store[b], "seq", recipe))
    a2, b2 = base.clips["filename"].iloc[2:4]
    mix = render(audio_key("mix", a, a2, b, b2), store, recipe)
    np.testing.assert_array_equal(mix, compose(store[a], store[b], "mix", recipe, a2=store[a2],
                                               b2=store[b2]))
    assert len(mix) == len(fwd) == len(render(audio_key("span", a, a2), store, recipe))
    assert len(render(audio_key("single", a), store, recipe)) == len(store[a])
    with pytest.raises(KeyError, match="nope.wav"):
        store["nope.wav"]
    with pytest.raises(ValueError, match="sample_rate"):
        render(audio_key("single", a), store, Recipe(sample_rate=8000))


def test_mix_key_is_canonical():
    assert (audio_key("mix", "b.wav", "b2.wav", "a.wav", "a2.wav")
            == audio_key("mix", "a.wav", "a2.wav", "b.wav", "b2.wav")
            == "mix|a.wav|a2.wav|b.wav|b2.wav")
    assert audio_key("mix", "a.wav", "z.wav", "a.wav", "b.wav") == "mix|a.wav|b.wav|a.wav|z.wav"


@pytest.fixture
def noise():
    """Two independent noise clips of one length at very different levels."""
    rng = np.random.default_rng(1)
    return ((0.3 * rng.standard_normal(4000)).astype(np.float32),
            (0.02 * rng.standard_normal(4000)).astype(np.float32))


def test_mix_and_seq_have_same_level_and_length(noise):
    a, b = noise
    r = Recipe(sample_rate=8000)
    seq, mix = compose(a, b, "seq", r), compose(a, b, "mix", r)
    assert len(seq) == len(mix) == len(a) + len(b)
    assert rms(mix) == pytest.approx(rms(seq), rel=1e-3)
    assert rms(mix) == pytest.approx(0.1, rel=1e-3)
    assert np.max(np.abs(mix)) < 0.99  # the peak limiter did not act: the levels are the recipe's


def test_without_renormalize_mix_is_3db_louder(noise):
    a, b = noise
    r = Recipe(sample_rate=8000, renormalize=False)
    gain_db = 20 * np.log10(rms(compose(a, b, "mix", r)) / rms(compose(a, b, "seq", r)))
    assert gain_db == pytest.approx(10 * np.log10(2), abs=0.3)  # two independent parts: +3 dB


def test_renormalize_then_peak_limit(noise):
    a, b = noise
    loud = Recipe(sample_rate=8000, level_rms=0.5, peak_limit=0.9, crest_limit=None)
    out = compose(a, b, "mix", loud)
    assert np.max(np.abs(out)) == pytest.approx(0.9, rel=1e-6)  # limited after renormalizing
    assert rms(out) < 0.5


def test_mix_is_symmetric_bit_for_bit(noise, ab):
    for a, b in (noise, ab):  # equal and unequal lengths
        for r in (Recipe(sample_rate=8000), RAW, Recipe(sample_rate=8000, renormalize=False)):
            np.testing.assert_array_equal(compose(a, b, "mix", r), compose(b, a, "mix", r))
            np.testing.assert_array_equal(compose(a, b, "mix", r, a2=b[::-1].copy(), b2=a[::-1].copy()),
                                          compose(b, a, "mix", r, a2=a[::-1].copy(), b2=b[::-1].copy()))


def test_span_single_has_the_length_of_a_double(noise):
    a, b = noise
    r = Recipe(sample_rate=8000, crest_limit=None)  # a single is not crest limited; the loop would be
    loop = compose(a, a, "span", r)  # one clip of the class in the split: a loop
    assert len(loop) == len(compose(a, b, "seq", r)) == 2 * len(a)
    np.testing.assert_array_equal(loop[: len(a)], loop[len(a):])  # looped, not stretched
    np.testing.assert_allclose(loop[: len(a)], compose(a, None, "single", r), rtol=1e-6)
    assert rms(loop) == pytest.approx(0.1, rel=1e-3)
    assert rms(compose(a, b, "span", r)) == pytest.approx(0.1, rel=1e-3)
    plain = compose(a, b, "span", replace(r, loop_single=False))
    np.testing.assert_array_equal(plain, compose(a, None, "single", r))
    with pytest.raises(ValueError, match="two clips"):
        compose(a, None, "mix", r)
    assert RELATIONS == ("single", "span", "seq", "mix")


def test_recipe_hash_covers_every_field():
    r = Recipe(sample_rate=8000)
    changed = {"sample_rate": 16000, "level_rms": 0.2, "peak_limit": None, "tile_overlay": False,
               "renormalize": False, "loop_single": False, "crest_limit": 3.0,
               "limit_range_db": 6.0}
    assert set(changed) == {f.name for f in fields(Recipe)}
    hashes = {r.hash} | {replace(r, **{k: v}).hash for k, v in changed.items()}
    assert len(hashes) == len(changed) + 1
    assert Recipe(sample_rate=8000).hash == r.hash  # deterministic


def test_clip_store_memory_is_bounded(esc50_like):
    base = load(esc50_like)
    one = int(0.25 * 8000) * 4  # bytes of one decoded clip (float32)
    store = ClipStore(base, sample_rate=8000, max_bytes=3 * one)
    names = base.clips["filename"].tolist()
    first = store[names[0]].copy()
    for name in names:  # 40 clips through a 3-clip store
        store[name]
        assert store.nbytes <= 3 * one and len(store) <= 3
    assert len(store) == 3 and store.reads == len(names)
    np.testing.assert_array_equal(store[names[0]], first)  # evicted, read again from disk
    assert store.reads == len(names) + 1
    store[names[-1]]  # recently used: still in memory
    assert store.reads == len(names) + 1
    tiny = ClipStore(base, sample_rate=8000, max_bytes=one // 2)  # no clip fits: nothing kept
    np.testing.assert_array_equal(tiny[names[0]], first)
    assert len(tiny) == 0 and tiny.nbytes == 0


def test_render_a_loop_and_a_canonical_mix(esc50_like):
    base = load(esc50_like)
    store = ClipStore(base, sample_rate=8000)
    a, b = base.clips["filename"].iloc[[0, 12]]
    r = Recipe(sample_rate=8000)
    assert len(render(audio_key("span", a, a), store, r)) == len(render(audio_key("seq", a, b), store, r))
    np.testing.assert_array_equal(render(audio_key("mix", b, b, a, a), store, r),
                                  compose(store[a], store[b], "mix", r))


def test_the_composite_version_is_in_the_recipe_hash(monkeypatch):
    """Composites changed for the same keys (v2: no loops) → the trunk-cache key changes."""
    import teminal.audio as audio_module
    r = Recipe(sample_rate=8000)
    before = r.hash
    monkeypatch.setattr(audio_module, "COMPOSITE_VERSION", audio_module.COMPOSITE_VERSION - 1)
    assert r.hash != before


def test_crest_limit_gives_every_limited_composite_the_same_crest(noise):
    """SPEC §1: the limiter bounds peak / RMS for every composite alike, at the recipe's level;
    a tonal composite under the bound is left as it is, a lone click keeps its crest."""
    a, b = noise
    r = Recipe(sample_rate=8000, crest_limit=3.0)
    assert Recipe(sample_rate=8000).crest_limit is None  # off unless asked for
    rng = np.random.default_rng(1)
    spiky = (0.05 * rng.laplace(size=4000)).astype(np.float32)  # crest ≈ 7
    for out in (compose(a, b, "seq", r), compose(a, b, "mix", r), compose(a, spiky, "seq", r),
                compose(a, spiky, "span", r), compose(a, b, "mix", r, a2=spiky, b2=spiky)):
        assert rms(out) == pytest.approx(0.1, rel=1e-5)
        assert np.max(np.abs(out)) / rms(out) == pytest.approx(3.0, rel=1e-4)
        assert np.max(np.abs(out)) / rms(out) <= 3.0 * (1 + 1e-6)
    free = replace(r, crest_limit=None)
    assert np.max(np.abs(compose(a, spiky, "seq", free))) / 0.1 > 5  # what the limiter removed
    t = np.arange(4000) / 8000
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    np.testing.assert_array_equal(compose(tone, tone[::-1].copy(), "seq", r),
                                  compose(tone, tone[::-1].copy(), "seq", free))  # crest 1.41
    click = np.zeros(4000, np.float32)
    click[100:110] = 1.0  # a lone click: limiting only scales it
    out = compose(click, click, "seq", r)
    assert np.max(np.abs(out)) / rms(out) > 15 and np.max(np.abs(out)) <= 0.99 + 1e-6  # peak limited
    for range_db in (3.0, 6.0):  # at most range_db of limiting: the crest falls by no more
        mild = compose(click, a, "seq", replace(r, limit_range_db=range_db))
        crest_free = np.max(np.abs(compose(click, a, "seq", replace(free, peak_limit=None)))) / 0.1
        assert np.max(np.abs(mild)) / rms(mild) >= crest_free * 10 ** (-range_db / 20) * (1 - 1e-6)
        assert np.max(np.abs(mild)) / rms(mild) > 3.0
    single = compose(spiky, None, "single", r)  # a single clip is not a composite: not limited
    np.testing.assert_array_equal(single, compose(spiky, None, "single", free))
    with pytest.raises(ValueError, match="crest_limit"):
        compose(a, b, "seq", replace(r, crest_limit=0.5))


def test_the_limiter_never_passes_its_threshold_and_has_no_jumps():
    from teminal.audio import LIMIT_WINDOW_S, limit

    rng = np.random.default_rng(2)
    z = rng.standard_normal(8000)
    x = np.sign(z) * (0.5 + np.abs(z) ** 3)  # |x| >= 0.5: the gain y / x is well defined
    y = limit(x, 2.0, 8000)
    assert np.max(np.abs(y)) <= 2.0 and np.max(np.abs(x)) > 10
    gain = y / x
    assert np.all(gain <= 1 + 1e-12)
    steps = np.abs(np.diff(gain))  # a mean over 2w+1 samples moves by at most 1/(2w+1) per sample
    assert steps.max() <= 1 / (2 * round(LIMIT_WINDOW_S * 8000) + 1) + 1e-9
    quiet = 0.1 * x / np.max(np.abs(x))
    np.testing.assert_array_equal(limit(quiet, 2.0, 8000), quiet)  # under the threshold: untouched
