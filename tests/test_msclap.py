"""msclap 2022 / 2023 as backbones, built offline from msclap's real classes (SPEC §2)."""
from __future__ import annotations

from pathlib import Path

import msclap
import pytest
import torch
from model_fixtures import info_nce, make_bert_tokenizer, make_gpt2_tokenizer

from teminal.models import build_backbone
from teminal.models.base import AudioFeatures
from teminal.models.heads import OrderAwareAudioHead
from teminal.models.msclap_2022 import MsClap2022
from teminal.models.msclap_2023 import MsClap2023
from teminal.models.msclap_base import MsClapBase

TEXTS_22 = ["the dog barks", "rain", "a bird sound before a siren"]
TEXTS_23 = ["a dog barks", "rain", "dog before dog"]  # no '!' (GPT-2's pad token)


def _count(model: MsClapBase, prefixes: tuple[str, ...]) -> int:
    return sum(p.numel() for n, p in model.clap.named_parameters() if n.startswith(prefixes))


@pytest.fixture(scope="module")
def m22(tmp_path_factory) -> MsClap2022:
    tok = make_bert_tokenizer(tmp_path_factory.mktemp("bert_tok"))
    return MsClap2022(random_init=True, tokenizer=tok)


@pytest.fixture(scope="module")
def m23(tmp_path_factory) -> MsClap2023:
    tok = make_gpt2_tokenizer(tmp_path_factory.mktemp("gpt2_tok"))
    return MsClap2023(random_init=True, tokenizer=tok)


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    return torch.randn(2, 44100, generator=torch.Generator().manual_seed(0)) * 0.1  # (B, S) 1 s


def test_2022_parameter_counts_are_the_papers(m22):
    assert _count(m22, ("caption_encoder.",)) == 111_319_296
    assert _count(m22, ("audio_encoder.",)) == 84_984_847
    assert _count(m22, m22.TEXT_HEAD) == 9_515_520
    assert _count(m22, m22.AUDIO_HEAD) == 8_423_951
    assert sum(p.numel() for p in m22.trainable_parameters()) == 9_515_520 + 8_423_951
    trainable = {n for n, p in m22.clap.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in m22.clap.named_parameters() if m22.is_head(n)}
    assert m22.sample_rate == 44100 and m22.embed_dim == 1024 and not m22.needs_frames


def test_2023_parameter_counts(m23):
    assert _count(m23, ("caption_encoder.",)) == 126_276_864
    assert _count(m23, ("audio_encoder.",)) == 33_162_199
    assert _count(m23, m23.TEXT_HEAD) == 8_926_464  # h.11 + ln_f + projection
    assert _count(m23, m23.AUDIO_HEAD) == 8_933_664  # last Swin block + norm + projection
    assert sum(p.numel() for p in m23.trainable_parameters()) == 8_926_464 + 8_933_664
    assert m23.needs_frames


def test_hub_names_match_clapwrapper():
    src = (Path(msclap.__file__).parent / "CLAPWrapper.py").read_text()
    assert f'model_repo = "{MsClapBase.HUB_REPO}"' in src
    for cls in (MsClap2022, MsClap2023):
        assert f"'{cls.WEIGHTS_FILE}'" in src


def test_2022_audio_split_equals_msclap(m22, wave):
    feats = m22.audio_trunk(wave, frames=True)
    assert feats.pooled.shape == (2, 2048) and feats.frames.shape == (2, 4, 2048)
    with torch.no_grad():
        ref = m22.clap.audio_encoder(wave)[0]  # what AudioEncoder.forward gives in eval mode
        assert torch.allclose(m22.audio_head(feats), ref, atol=1e-5)


def test_2022_text_split_equals_msclap(m22):
    for padding in ("longest", "max_length"):  # CLAPWrapper pads to text_len = 100
        tok = m22.tokenizer(TEXTS_22, padding=padding, max_length=100, truncation=True,
                            return_tensors="pt")
        with torch.no_grad():
            ref = m22.clap.caption_encoder(dict(tok))
            ours = m22.text_head(m22.text_trunk(TEXTS_22))
        assert torch.allclose(ours, ref, atol=1e-5)


def test_2023_splits_equal_msclap(m23):
    wave = torch.randn(1, 329_000, generator=torch.Generator().manual_seed(1)) * 0.1  # 7.46 s
    feats = m23.audio_trunk(wave, frames=True)  # > 1024 frames: msclap's crop path, one crop,
    assert feats.frames.shape == (1, 128, 768)  # plus one ending at the clip's end (SPEC §2)
    tok = m23.tokenizer([t + " <|endoftext|>" for t in TEXTS_23], padding="max_length",
                        max_length=77, return_tensors="pt")
    short = wave[:, :220_500]  # 5 s (< 1024 frames): no crop, msclap reads it whole as we do
    with torch.no_grad():
        assert torch.allclose(m23.audio_head(m23.audio_trunk(short, frames=True)),
                              m23.clap.audio_encoder(short)[0], atol=1e-5)
        ref = m23.clap.caption_encoder(dict(tok))
        assert torch.allclose(m23.text_head(m23.text_trunk(TEXTS_23)), ref, atol=1e-4)


def test_2023_head_averages_crops(m23):
    tokens = torch.randn(2, 3 * 64, 768, generator=torch.Generator().manual_seed(3))  # K = 3
    head = m23.audio_head_module
    with torch.no_grad():
        latents = [head.norm(head.block(tokens[:, k * 64:(k + 1) * 64])[0]).mean(1)
                   for k in range(3)]  # msclap: mean over tokens per crop, then over crops
        ref = head.projection(sum(latents) / 3)
        assert torch.allclose(m23.audio_head(AudioFeatures(pooled=tokens.mean(1), frames=tokens)),
                              ref, atol=1e-5)


def test_2023_forward_backward(m23):
    wave = torch.randn(2, 44100, generator=torch.Generator().manual_seed(2)) * 0.1
    m23.train()
    try:
        feats = m23.audio_trunk(wave, frames=True)
        assert feats.frames.shape == (2, 64, 768)
        m23.zero_grad()
        info_nce(m23.audio_head(feats), m23.text_head(m23.text_trunk(TEXTS_23[:2])),
                 m23.logit_scale).backward()
        h = m23.clap.audio_encoder.base.htsat
        assert h.layers[-1].blocks[-1].attn.qkv.weight.grad is not None
        assert m23.clap.caption_encoder.base.h[11].attn.c_attn.weight.grad is not None
        assert all(p.grad is None for m in m23.frozen_modules() for p in m.parameters())
    finally:
        m23.zero_grad()
        m23.eval()
    with pytest.raises(ValueError, match="order"):
        MsClap2023(random_init=True, audio_head="order")


def test_2022_trunk_frozen_forward_backward(m22, wave):
    m22.train()
    try:
        for m in m22.frozen_modules():
            assert not m.training
        feats = m22.audio_trunk(wave)
        text = m22.text_trunk(TEXTS_22[:2])
        assert not feats.pooled.requires_grad and not text.hidden.requires_grad
        m22.zero_grad()
        info_nce(m22.audio_head(feats), m22.text_head(text), m22.logit_scale).backward()
        named = dict(m22.clap.named_parameters())
        for name in ("audio_encoder.base.fc1.weight", "audio_encoder.projection.linear1.weight",
                     "caption_encoder.base.encoder.layer.11.output.dense.weight",
                     "caption_encoder.projection.linear2.weight"):
            assert named[name].grad is not None and torch.isfinite(named[name].grad).all()
        assert all(p.grad is None for m in m22.frozen_modules() for p in m.parameters())
    finally:
        m22.zero_grad()
        m22.eval()


def test_2022_save_real_format_and_load_into_order_head(m22, wave, tmp_path):
    path = tmp_path / "CLAP_weights_2022.pth"
    m22.save(path)
    blob = torch.load(path, weights_only=True, mmap=True)
    keys = set(blob["model"])
    assert keys == set(m22.clap.state_dict())
    assert {k.split(".")[0] for k in keys} == {"audio_encoder", "caption_encoder", "logit_scale"}
    assert any(k.startswith("caption_encoder.base.encoder.layer.11.") for k in keys)
    loaded = MsClap2022(weights=path, audio_head="order",
                    tokenizer=Path(m22.tokenizer.name_or_path))
    assert isinstance(loaded.audio_head_module, OrderAwareAudioHead) and loaded.needs_frames
    feats = m22.audio_trunk(wave, frames=True)
    with torch.no_grad():
        assert torch.equal(loaded.audio_head(feats), m22.audio_head(feats))  # zero-init order
        assert torch.allclose(loaded.text_head(loaded.text_trunk(TEXTS_22)),
                              m22.text_head(m22.text_trunk(TEXTS_22)), atol=1e-6)
        loaded.audio_head_module.mixer.up.weight.normal_(std=0.1)  # order-sensitive now
        # random-init Cnn14 features are ~1e-4: bring them to unit scale so content, not just
        # the positional encoding, reaches the mixer
        scale = feats.frames.std()
        feats = AudioFeatures(pooled=feats.pooled / scale, frames=feats.frames / scale)
        swapped = AudioFeatures(pooled=feats.pooled, frames=feats.frames.flip(1))
        assert not torch.allclose(loaded.audio_head(swapped), loaded.audio_head(feats), atol=1e-4)
    assert {id(p) for p in loaded.audio_head_module.mixer.parameters()} <= {
        id(p) for p in loaded.trainable_parameters()}
    with pytest.raises(ValueError, match="2022"):
        MsClap2023(weights=path, random_init=False)


def test_missing_weights_give_clear_errors(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match=r"CLAP_weights_2022\.pth.*huggingface\.co/microsoft/msclap"):
        MsClap2022(download=True, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"CLAP_weights_2023\.pth.*weights="):
        build_backbone(name="msclap-2023", weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="random_init"):
        MsClap2022(download=False)
    with pytest.raises(ValueError, match="msclap-2022, msclap-2023"):
        build_backbone(name="msclap-2021")


def test_without_tokenizer_text_fails_clearly(m22, monkeypatch):
    monkeypatch.setattr(m22, "tokenizer", None)
    with pytest.raises(RuntimeError, match="tokenizer="):
        m22.text_trunk(["a dog"])


def test_he_init_keeps_random_clips_apart(tmp_path):
    """msclap's own random init maps every clip to one direction; the He re-init used by the
    paper rehearsal (tests/test_paper_config.py) and benchmarks/paper_gpu.py does not."""
    model = MsClap2022(random_init=True, tokenizer=make_bert_tokenizer(tmp_path))
    t = torch.arange(44100) / 44100
    clips = torch.stack([0.1 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 880.0, 3520.0)])

    def max_cos() -> float:
        z = torch.nn.functional.normalize(model.encode_audio(clips), dim=-1)  # (3, d)
        return float((z @ z.T).masked_fill(torch.eye(3, dtype=torch.bool), -1).max())

    assert max_cos() > 0.999
    model.he_init_audio_convs(seed=0)
    assert max_cos() < 0.999
