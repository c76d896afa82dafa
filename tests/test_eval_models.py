"""Any model as two functions (SPEC §2 "Any model can be evaluated"): the adapters are
deterministic and hear every event of a composite, offline, with random weights saved in the
real checkpoint formats."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import make_gpt2_tokenizer, make_roberta_tokenizer

from teminal.models.msclap_2023 import covering_starts
from teminal.eval.specs import load_model, parse_spec


def _clip(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)
            + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _changed(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm())


def _hears_every_part(model, *, seconds: float, parts: int, rate: int) -> list[float]:
    """Relative embedding change when each part of a concatenation of ``parts`` clips changes."""
    clips = [_clip(seconds, rate, seed) for seed in range(parts)]
    z0 = model.embed_audio([np.concatenate(clips)], rate)
    changes = []
    for n in range(parts):
        other = list(clips)
        other[n] = _clip(seconds, rate, 100 + n)
        changes.append(_changed(z0, model.embed_audio([np.concatenate(other)], rate)))
    return changes


def test_covering_starts_reach_the_last_frame():
    assert covering_starts(1310, crop=689, hop=344) == [0, 344, 621]  # msclap alone: [0, 344]
    assert covering_starts(1379, crop=689, hop=344) == [0, 344, 688, 690]
    for n in range(700, 3000, 97):
        s = covering_starts(n, crop=689, hop=344)
        assert s[-1] + 689 == n
        assert all(b - a <= 344 for a, b in zip(s, s[1:]))


def test_spec_parsing_and_errors():
    spec = parse_spec("laion-clap,checkpoint=a.pt,fusion=true,label=CompA-CLAP")
    assert spec.kind == "laion-clap" and spec.options == {"checkpoint": "a.pt", "fusion": True}
    assert spec.label == "CompA-CLAP"
    with pytest.raises(ValueError, match="module:callable"):
        parse_spec("laion")
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("tiny,checkpoint")


def test_own_model_from_module_callable():
    model = load_model("my_models:make_model,dim=12,label=mine")
    assert model.name == "mine" and model.rule.sample_rate == 8000
    z = model.embed_audio([_clip(1.0, 16000, 0), _clip(0.5, 16000, 1)], 16000)  # resampled
    assert z.shape == (2, 12)
    assert model.embed_text(["dog before rain", "rain"]).shape == (2, 12)
    with pytest.raises(ValueError, match="cannot import"):
        load_model("my_models:no_such_factory")


def test_tiny_is_deterministic_and_hears_both_halves():
    model = load_model("tiny")
    rate = model.rule.sample_rate
    waves = [_clip(2.0, rate, 0), _clip(3.0, rate, 1), _clip(2.0, rate, 2)]
    z1, z2 = model.embed_audio(waves, rate), model.embed_audio(waves, rate)
    assert torch.equal(z1, z2) and z1.shape == (3, model.backbone.embed_dim)
    one = model.embed_audio([waves[1]], rate)  # batching by length keeps the order
    assert torch.allclose(one[0], z1[1], atol=1e-5)
    assert min(_hears_every_part(model, seconds=5.0, parts=2, rate=rate)) > 1e-4
    with pytest.raises(ValueError, match="waves\\[0\\]"):
        model.embed_audio([np.zeros(0, np.float32)], rate)


@pytest.fixture(scope="module")
def msclap23(tmp_path_factory):
    tok = make_gpt2_tokenizer(tmp_path_factory.mktemp("gpt2_tok"))
    return load_model(f"msclap-2023,random_init=true,tokenizer={tok}")


def test_msclap_2023_reads_the_end_of_a_long_composite(msclap23):
    rate = msclap23.rule.sample_rate
    assert msclap23.rule.window_seconds == pytest.approx(7.43, abs=0.01)
    clips = [_clip(4.75, rate, 0), _clip(4.75, rate, 1)]  # 9.5 s: msclap reads 0 … 7.5 s
    late = [clips[0], np.concatenate([clips[1][: int(3.25 * rate)], _clip(1.5, rate, 7)])]
    wave, wave_late = (torch.from_numpy(np.concatenate(c))[None] for c in (clips, late))
    # msclap's own windows (range(0, T - crop - 1, hop)) never reach the last 1.5 s; the
    # backbone's and the adapter's (models.msclap_2023.covering_starts) do
    bb = msclap23.backbone
    assert _changed(bb.encode_audio(wave), bb.encode_audio(wave_late)) > 1e-4
    z, z_late = msclap23.embed_audio(wave, rate), msclap23.embed_audio(wave_late, rate)
    assert _changed(z, z_late) > 1e-4
    assert torch.equal(z, msclap23.embed_audio(wave, rate))


@pytest.fixture(scope="module")
def roberta_tok(tmp_path_factory):
    return make_roberta_tokenizer(tmp_path_factory.mktemp("roberta_tok"))


@pytest.fixture(scope="module")
def laion_ckpt(tmp_path_factory, roberta_tok):
    """Random LAION-CLAP HTSAT-tiny weights saved in the release format."""
    from teminal.eval.adapters.laion import LaionClap

    model = LaionClap(random_init=True, tokenizer=roberta_tok, seed=3)
    path = tmp_path_factory.mktemp("laion") / "630k-audioset-best.pt"
    model.save(path)
    blob = torch.load(path, weights_only=True)  # release files (older transformers) hold this too
    blob["state_dict"]["module.text_branch.embeddings.position_ids"] = torch.arange(514)[None]
    torch.save(blob, path)
    yield path
    path.unlink()  # ~600 MB


def test_laion_clap_loads_release_format_deterministic_and_hears_every_part(laion_ckpt, roberta_tok):
    model = load_model(f"laion-clap,checkpoint={laion_ckpt},tokenizer={roberta_tok}")
    blob = torch.load(laion_ckpt, weights_only=True)
    assert all(k.startswith("module.") for k in blob["state_dict"])
    rate = model.rule.sample_rate
    assert rate == 48000 and model.rule.window_seconds == 10.0
    waves = [_clip(10.0, rate, 0), _clip(3.0, rate, 1)]
    z1 = model.embed_audio(waves, rate)
    assert torch.equal(z1, model.embed_audio(waves, rate)) and z1.shape == (2, 512)
    t = model.embed_text(["dog before dog", "a dog"])
    assert t.shape == (2, 512) and torch.equal(t, model.embed_text(["dog before dog", "a dog"]))
    assert min(_hears_every_part(model, seconds=5.0, parts=2, rate=rate)) > 1e-4  # 10 s
    assert min(_hears_every_part(model, seconds=5.0, parts=3, rate=rate)) > 1e-4  # 15 s


def test_laion_clap_fusion_is_deterministic_and_hears_every_part(roberta_tok):
    model = load_model(f"laion-clap,random_init=true,fusion=true,tokenizer={roberta_tok}")
    rate = model.rule.sample_rate
    wave = [np.concatenate([_clip(5.0, rate, n) for n in range(3)])]
    assert torch.equal(model.embed_audio(wave, rate), model.embed_audio(wave, rate))
    assert min(_hears_every_part(model, seconds=5.0, parts=3, rate=rate)) > 1e-4


def test_laion_clap_real_loading_path_says_what_to_download(tmp_path, roberta_tok):
    from teminal.eval.adapters.laion import LaionClap

    with pytest.raises(FileNotFoundError, match="630k-audioset-best.pt.*huggingface"):
        LaionClap(checkpoint=tmp_path / "missing.pt", tokenizer=roberta_tok)
    with pytest.raises(ValueError, match="roberta-base"):
        LaionClap(random_init=True)
    with pytest.raises(ValueError, match="amodel"):
        LaionClap(random_init=True, tokenizer=roberta_tok, amodel="HTSAT-huge")


def test_msclap_2022_is_deterministic_and_hears_both_halves(tmp_path):
    from model_fixtures import make_bert_tokenizer

    tok = make_bert_tokenizer(tmp_path / "bert")
    model = load_model(f"msclap-2022,random_init=true,he_init=true,tokenizer={tok}")
    rate = model.rule.sample_rate
    wave = [np.concatenate([_clip(5.0, rate, 0), _clip(5.0, rate, 1)])]
    assert torch.equal(model.embed_audio(wave, rate), model.embed_audio(wave, rate))
    assert min(_hears_every_part(model, seconds=5.0, parts=2, rate=rate)) > 1e-4
    assert model.embed_text(["the dog barks"]).shape == (1, 1024)


def test_evaluate_models_are_checked_when_configured():
    from teminal.run.config import ConfigError, validate

    cfg = validate({"evaluate": {"models": ["pretrained", "laion-clap,checkpoint=x.pt"]}},
                   source="x")
    assert cfg.evaluate.models[1].startswith("laion-clap")
    with pytest.raises(ConfigError, match="evaluate.models.*module:callable"):
        validate({"evaluate": {"models": ["laion"]}}, source="x")
    with pytest.raises(ConfigError, match="compa_csv and compa_audio_dir"):
        validate({"evaluate": {"compa_csv": "a.csv"}}, source="x")
