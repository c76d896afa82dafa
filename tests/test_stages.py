"""Feature bank + stage tasks on real clips, the real operators, a real trunk cache and a small
TinyClap: keys, shapes, captions, and each task's loss against the same loss computed through
the uncached trunk (SPEC §1–3)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from teminal import losses
from teminal.training import stages
from teminal.audio import Recipe, read_audio
from teminal.cache import TrunkCache
from teminal.data.clips import audio_key, compose_key, parse_key
from teminal.features import build_bank, manifest_audio_keys, manifest_texts
from teminal.models.tiny import TinyClap, TinyConfig

SR = 8000
K = 4
VAL_PAIRS = ({0, 3}, {1, 2})


class Render:
    """``render(key)`` with ``teminal.audio.compose`` on the folder's clips; counts calls."""

    def __init__(self, root, recipe: Recipe) -> None:
        self.root, self.recipe, self.calls = root, recipe, 0

    def __call__(self, key: str) -> np.ndarray:
        self.calls += 1
        read = lambda name: read_audio(self.root / "audio" / name, sample_rate=SR)  # noqa: E731
        return compose_key(key, read, self.recipe)


def _mix_keys(rows) -> list[str]:
    """``mix|a|a2|b|b2`` of each row, its halves sorted (written out, not via audio_key)."""
    return ["mix|" + "|".join(x for h in sorted([(a, a2), (b, b2)]) for x in h)
            for a, a2, b, b2 in zip(rows.clip_i, rows.clip_i2, rows.clip_j, rows.clip_j2)]


def _pair_rows(meta: pd.DataFrame, fold: int, split_of) -> tuple[list[dict], list[dict]]:
    label = dict(zip(meta.target, meta.category.str.replace("_", " ")))
    clip = {t: meta[(meta.target == t) & (meta.fold == fold)].filename.iloc[0] for t in range(K)}
    clip2 = {t: meta[(meta.target == t) & (meta.fold == fold)].filename.iloc[-1] for t in range(K)}
    stage_b, stage_a = [], []
    for i in range(K):
        for j in range(K):
            split = split_of({i, j})
            if i == j or split is None:
                continue
            xi, xj = label[i], label[j]
            common = dict(pair=i * K + j, i=i, j=j, clip_i=clip[i], clip_j=clip[j],
                          clip_i2=clip2[i], clip_j2=clip2[j], label_i=xi, label_j=xj, split=split)
            stage_b.append(dict(common, phrasing="before", draw=0, caption_f=f"{xi} before {xj}",
                                caption_r=f"{xj} before {xi}", caption_o=f"{xi} while {xj}",
                                para_f=f"{xi}, then {xj}", para_r=f"{xj}, then {xi}",
                                para_o=f"{xi} and {xj} at the same time",
                                direct_f=f"first {xi}, then {xj}", direct_r=f"first {xj}, then {xi}",
                                mirror_f=f"{xj} follows {xi}", mirror_r=f"{xi} follows {xj}"))
            stage_a.append(dict(common, caption_single=f"single sound of {xi}",
                                caption_double=f"combined sound of {xi} and {xj}"))
    return stage_b, stage_a


def make_manifests(root) -> SimpleNamespace:
    """Train/val rows from fold-1 clips (rows (i, j) and (j, i) share clips), test rows of the
    val class pairs from fold-5 clips, and every clip as a single."""
    meta = pd.read_csv(root / "meta" / "esc50.csv")
    b, a = _pair_rows(meta, 1, lambda p: "val" if p in VAL_PAIRS else "train")
    b_test, a_test = _pair_rows(meta, 5, lambda p: "test" if p in VAL_PAIRS else None)
    singles = pd.DataFrame({"clip": meta.filename, "target": meta.target,
                            "label": meta.category.str.replace("_", " "),
                            "split": meta.fold.map({1: "train", 2: "train", 3: "train", 4: "val",
                                                    5: "test"})})
    singles["caption"] = "the sound of " + singles["label"]
    return SimpleNamespace(singles=singles, stage_a=pd.DataFrame(a + a_test),
                           stage_b=pd.DataFrame(b + b_test))


@pytest.fixture(scope="module")
def model() -> TinyClap:
    config = TinyConfig(sample_rate=SR, channels=(8, 16, 32, 64), audio_hidden=64, embed_dim=32)
    return TinyClap(config=config).eval()  # eval: no dropout, so tasks and references agree


@pytest.fixture(scope="module")
def world(esc50_like, model, tmp_path_factory):
    recipe = Recipe(sample_rate=SR)
    render = Render(esc50_like, recipe)
    cache = TrunkCache(root=tmp_path_factory.mktemp("cache"), backbone=model, recipe=recipe,
                       base_fingerprint="esc50-like", dtype=torch.float32, batch_size=16,
                       progress=False)
    manifests = make_manifests(esc50_like)
    bank = build_bank(cache=cache, manifests=manifests, render=render, frames=False,
                      device=torch.device("cpu"))
    return SimpleNamespace(manifests=manifests, render=render, cache=cache, bank=bank,
                           recipe=recipe)


def keys_of(table, rows: torch.Tensor) -> list[str]:
    names = {v: k for k, v in table.index.items()}
    return [names[int(r)] for r in rows]


def encode(model, render, keys) -> torch.Tensor:
    """z_a [B, d] through the uncached trunk and the head (the reference path)."""
    wave = torch.from_numpy(np.stack([render(k) for k in keys]))  # (B, S)
    with torch.no_grad():
        return model.audio_head(model.audio_trunk(wave))


def embed_text(model, texts) -> torch.Tensor:
    with torch.no_grad():
        return model.text_head(model.text_trunk(list(texts)))


def task_kwargs(model, world, table: str) -> dict:
    return dict(backbone=model, bank=world.bank, manifest=getattr(world.manifests, table),
                n_classes=K)


# --------------------------------------------------------------------------- feature bank


def test_bank_holds_every_clip_of_every_split(world):
    m, bank = world.manifests, world.bank
    single_keys, pair_keys = manifest_audio_keys(m)
    assert list(bank.singles.index) == single_keys and len(single_keys) == len(m.singles)
    assert list(bank.pairs.index) == pair_keys
    sb = m.stage_b
    for ci, ci2, cj, cj2 in zip(sb.clip_i, sb.clip_i2, sb.clip_j, sb.clip_j2):  # test rows included
        assert {audio_key("seq", ci, cj), audio_key("seq", cj, ci),
                audio_key("mix", ci, ci2, cj, cj2)} <= set(pair_keys)
    mixes = [k for k in pair_keys if parse_key(k)[0] == "mix"]
    halves = zip(zip(sb.clip_i, sb.clip_i2), zip(sb.clip_j, sb.clip_j2))
    assert len(mixes) == len({frozenset(p) for p in halves})  # canonical
    sa = m.stage_a
    assert {audio_key("span", c, c2) for c, c2 in zip(sa.clip_i, sa.clip_i2)} <= set(pair_keys)
    assert bank.singles.feats.frames is None and bank.pairs.feats.frames is None
    assert set(manifest_texts(m)) >= set(sb.para_f) | set(sb.para_o) | set(sb.caption_r)
    assert len(bank.text.index) == len(manifest_texts(m))


def test_frames_were_cached_with_the_pooled_bank(world):
    """A later order-aware head reads frames without running the trunk again."""
    calls = world.render.calls
    bank = build_bank(cache=world.cache, manifests=world.manifests, render=world.render,
                      frames=True, device=torch.device("cpu"))
    assert world.render.calls == calls  # nothing rendered, so nothing recomputed
    frames = bank.pairs.feats.frames
    assert frames.dtype == torch.float16 and frames.shape[0] == len(bank.pairs.index)
    taken = bank.pairs.take(torch.tensor([0, 3]))
    assert taken.frames.dtype == torch.float32 and taken.frames.shape == (2, *frames.shape[1:])
    torch.testing.assert_close(taken.pooled, world.bank.pairs.feats.pooled[[0, 3]])


def test_unlooped_singles_are_refused_only_by_the_order_head(esc50_like, model, tmp_path):
    recipe = Recipe(sample_rate=SR, loop_single=False)
    cache = TrunkCache(root=tmp_path, backbone=model, recipe=recipe, base_fingerprint="x",
                       batch_size=16, progress=False)
    m = make_manifests(esc50_like)
    kw = dict(cache=cache, manifests=m, render=Render(esc50_like, recipe), device=torch.device("cpu"))
    assert build_bank(frames=False, **kw).pairs.feats.frames is None
    with pytest.raises(ValueError, match="loop_single"):
        build_bank(frames=True, **kw)


# --------------------------------------------------------------------------- stage A


def test_stage_a_reads_spanning_singles_and_doubles(model, world):
    task = stages.StageATask(weights=losses.StageAWeights(alpha_same=0.5), **task_kwargs(model, world, "stage_a"))
    train = world.manifests.stage_a.query("split == 'train'")
    assert (task.n_train, task.n_val) == (8, 4)
    singles, doubles = task.blocks["train"].audio
    assert keys_of(world.bank.pairs, singles) == [f"span|{c}|{c2}" for c, c2 in zip(train.clip_i, train.clip_i2)]
    assert keys_of(world.bank.pairs, doubles) == [f"seq|{a}|{b}" for a, b in zip(train.clip_i, train.clip_j)]
    rows = torch.tensor([0, 2, 5])
    z_a, z_c = task.embed(rows, split="train")
    assert z_a.shape == z_c.shape == (6, 32)
    part = train.iloc[rows.numpy()]
    ref_a = encode(model, world.render, [f"span|{c}|{c2}" for c, c2 in zip(part.clip_i, part.clip_i2)]
                   + [f"seq|{a}|{b}" for a, b in zip(part.clip_i, part.clip_j)])
    ref_c = embed_text(model, list(part.caption_single) + list(part.caption_double))
    torch.testing.assert_close(z_a, ref_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(z_c, ref_c, rtol=1e-4, atol=1e-5)
    i, j = torch.tensor(part.i.to_numpy()), torch.tensor(part.j.to_numpy())
    ref = losses.stage_a_loss(ref_a, ref_c, model.logit_scale, i=i, j=j, n_classes=K,
                              weights=task.weights)
    torch.testing.assert_close(task.loss(rows, split="train"), ref, rtol=1e-4, atol=1e-5)
    assert torch.equal(task.log_weights(rows, split="train"),
                       losses.stage_a_log_weights(i, j, task.weights))


# --------------------------------------------------------------------------- stage B


@pytest.mark.parametrize("captions", ["paper", "paraphrase"])
@pytest.mark.parametrize("weights_by", ["meaning", "block"])
def test_stage_b_loss_matches_the_uncached_reference(model, world, captions, weights_by):
    w = losses.StageBWeights(alpha_st=0.5, alpha_ct=1.0, alpha_so=0.25, alpha_co=1.0, beta=0.5)
    task = stages.StageBTask(weights=w, weights_by=weights_by, captions=captions,
                             **task_kwargs(model, world, "stage_b"))
    train = world.manifests.stage_b.query("split == 'train'").reset_index(drop=True)
    mirrored = [k for k in range(len(train)) if (train.i[k], train.j[k]) in {(0, 1), (1, 0), (2, 0)}]
    rows = torch.tensor(mirrored)
    part = train.iloc[rows.numpy()]
    ci, cj = list(part.clip_i), list(part.clip_j)
    keys = ([f"seq|{a}|{b}" for a, b in zip(ci, cj)] + [f"seq|{b}|{a}" for a, b in zip(ci, cj)]
            + _mix_keys(part))
    audio_rows = torch.cat([block[rows] for block in task.blocks["train"].audio])
    assert keys_of(world.bank.pairs, audio_rows) == keys
    ref_a = encode(model, world.render, keys)
    f, r, o = ("caption_f", "caption_r", "caption_o") if captions == "paper" else ("para_f", "para_r", "para_o")
    ref_c = embed_text(model, list(part[f]) + list(part[r]) + list(part[o]))
    z_a, z_c = task.embed(rows, split="train")
    torch.testing.assert_close(z_a, ref_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(z_c, ref_c, rtol=1e-4, atol=1e-5)
    i, j = torch.tensor(part.i.to_numpy()), torch.tensor(part.j.to_numpy())
    ref = losses.stage_b_loss(ref_a, ref_c, model.logit_scale, i=i, j=j, n_classes=K, weights=w,
                              weights_by=weights_by)
    torch.testing.assert_close(task.loss(rows, split="train"), ref, rtol=1e-4, atol=1e-5)
    view = task.similarity(rows, split="train")
    assert view.sim.shape == view.log_weights.shape == (9, 9) and view.block_labels == ("f", "r", "o")
    assert view.captions == list(part[f]) + list(part[r]) + list(part[o])
    expected = losses.stage_b_log_weights(i, j, w, weights_by=weights_by).numpy()
    np.testing.assert_array_equal(view.log_weights, expected)
    assert set(view.as_dict()) == {"sim", "log_weights", "block_labels", "row_captions", "col_captions"}


def test_stage_b_reversed_audio_of_a_row_is_the_mirrored_rows_forward(model, world):
    task = stages.StageBTask(weights=losses.StageBWeights(), **task_kwargs(model, world, "stage_b"))
    train = task.frames["train"]
    f, r, o = task.blocks["train"].audio
    for k in range(len(train)):
        m = train.index[(train.i == train.j[k]) & (train.j == train.i[k])][0]
        assert r[k] == f[m] and o[k] == o[m]  # one clip, one feature row


def test_stage_b_rejects_bad_options(model, world):
    kw = task_kwargs(model, world, "stage_b")
    with pytest.raises(ValueError, match="captions"):
        stages.StageBTask(weights=losses.StageBWeights(), captions="heldout", **kw)
    with pytest.raises(ValueError, match="weights_by"):
        stages.StageBTask(weights=losses.StageBWeights(), weights_by="row", **kw)
    old = dict(kw, manifest=kw["manifest"].drop(columns=["para_f", "para_r", "para_o"]))
    with pytest.raises(ValueError, match="para_f"):
        stages.StageBTask(weights=losses.StageBWeights(), captions="paraphrase", **old)
    stages.StageBTask(weights=losses.StageBWeights(), captions="paper", **old)  # still fine


def test_mirror_share_picks_mirror_worded_captions_per_sample(model, world):
    """Issue 23: share 1 → every sequential caption mirror-worded (r = T(f)), share 0 → all
    direct; 0.5 → both within a batch, drawn anew per training step from the task's own
    generator (checkpointed), one fixed draw on validation rows; the overlay keeps ``captions``."""
    kw, w = task_kwargs(model, world, "stage_b"), losses.StageBWeights()
    train = world.manifests.stage_b.query("split == 'train'").reset_index(drop=True)
    rows = torch.arange(len(train))
    for share, (f, r) in ((1.0, ("mirror_f", "mirror_r")), (0.0, ("direct_f", "direct_r"))):
        task = stages.StageBTask(weights=w, captions="paraphrase", mirror_share=share, **kw)
        ref_c = embed_text(model, list(train[f]) + list(train[r]) + list(train.para_o))
        torch.testing.assert_close(task.embed(rows, split="train")[1], ref_c, rtol=1e-4, atol=1e-5)
    half = stages.StageBTask(weights=w, captions="paraphrase", mirror_share=0.5, seed=1, **kw)
    assert half.generators() == [half.generator]
    draws = torch.stack([half.mirrored(rows, split="train") for _ in range(20)])  # (20, N)
    assert 0.3 < draws.float().mean() < 0.7 and (draws != draws[0]).any()  # redrawn per step
    val = torch.arange(half.n_val)
    assert torch.equal(half.mirrored(val, split="val"), half.mirrored(val, split="val"))
    half.generator.manual_seed(5)
    a = half.text_rows(rows, split="train")
    half.generator.manual_seed(5)
    assert all(torch.equal(x, y) for x, y in zip(a, half.text_rows(rows, split="train")))
    with pytest.raises(ValueError, match="mirror_share"):
        stages.StageBTask(weights=w, mirror_share=1.5, **kw)
    old = dict(kw, manifest=kw["manifest"].drop(columns=["mirror_f", "mirror_r"]))
    with pytest.raises(ValueError, match="mirror_f"):
        stages.StageBTask(weights=w, mirror_share=0.5, **old)


# --------------------------------------------------------------------------- T-CLAP, replay


def test_tclap_task_matches_the_uncached_reference(model, world):
    task = stages.TclapTask(lam=0.5, captions="paraphrase", **task_kwargs(model, world, "stage_b"))
    train = task.frames["train"]
    rows = torch.tensor([0, 1, 4, 7])
    part = train.iloc[rows.numpy()]
    ci, cj = list(part.clip_i), list(part.clip_j)
    keys = [f"seq|{a}|{b}" for a, b in zip(ci, cj)] + _mix_keys(part)
    audio_rows = torch.cat([block[rows] for block in task.blocks["train"].audio])
    assert keys_of(world.bank.pairs, audio_rows) == keys
    ref_a = encode(model, world.render, keys)
    ref_c = embed_text(model, list(part.para_f) + list(part.para_o))
    z_a, z_c = task.embed(rows, split="train")
    torch.testing.assert_close(z_a, ref_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(z_c, ref_c, rtol=1e-4, atol=1e-5)
    swapped = embed_text(model, list(part.para_r))
    i, j = torch.tensor(part.i.to_numpy()), torch.tensor(part.j.to_numpy())
    ref = losses.tclap_loss(ref_a, ref_c, swapped, model.logit_scale, i=i, j=j, n_classes=K, lam=0.5)
    torch.testing.assert_close(task.loss(rows, split="train"), ref, rtol=1e-4, atol=1e-5)
    assert task.similarity(rows, split="train").sim.shape == (8, 8)


def test_replay_adds_to_training_batches_only(model, world):
    kw = task_kwargs(model, world, "stage_b")
    plain = stages.StageBTask(weights=losses.StageBWeights(), **kw)
    replay = stages.Replay.build(bank=world.bank, singles=world.manifests.singles, weight=0.5,
                                 batch_size=8, seed=0)
    with_replay = stages.StageBTask(weights=losses.StageBWeights(), replay=replay, **kw)
    rows = torch.arange(4)
    assert with_replay.generators() == [replay.generator] and plain.generators() == []
    assert with_replay.loss(rows, split="val") == plain.loss(rows, split="val")
    assert with_replay.loss(rows, split="train") > plain.loss(rows, split="train")


def test_task_gradients_reach_the_heads_only(model, world):
    task = stages.StageBTask(weights=losses.StageBWeights(), **task_kwargs(model, world, "stage_b"))
    model.zero_grad()
    task.loss(torch.arange(6), split="train").backward()
    heads = {id(p) for p in model.trainable_parameters()}
    assert all(p.grad is not None for p in model.trainable_parameters() if p is not model.logit_scale_log)
    assert all(p.grad is None for p in model.parameters() if id(p) not in heads)
    model.zero_grad()


def test_order_head_reads_frames_from_the_bank(model, world):
    """The order-aware head trains on frames kept as float16 in the bank (cast by ``take``)."""
    config = TinyConfig(sample_rate=SR, channels=(8, 16, 32, 64), audio_hidden=64, embed_dim=32,
                        audio_head="order")
    order = TinyClap(config=config).eval()
    order.load_state_dict(model.state_dict(), strict=False)  # same trunks: the cache applies
    assert order.cache_key() == model.cache_key() and order.needs_frames
    bank = build_bank(cache=world.cache, manifests=world.manifests, render=world.render,
                      frames=True, device=torch.device("cpu"))
    task = stages.StageBTask(weights=losses.StageBWeights(), backbone=order, bank=bank,
                             manifest=world.manifests.stage_b, n_classes=K)
    rows = torch.tensor([0, 3, 5])
    part = task.frames["train"].iloc[rows.numpy()]
    keys = [audio_key("seq", a, b) for a, b in zip(part.clip_i, part.clip_j)]
    wave = torch.from_numpy(np.stack([world.render(k) for k in keys]))  # (3, S)
    with torch.no_grad():
        ref = order.audio_head(order.audio_trunk(wave, frames=True))  # (3, d)
        z_a, _ = task.embed(rows, split="train")
    torch.testing.assert_close(z_a[:3], ref, rtol=1e-2, atol=1e-2)  # frames stored as float16
    loss = task.loss(rows, split="train")
    loss.backward()
    mixer = list(order.audio_head_module.mixer.parameters())
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer)
