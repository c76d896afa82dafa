"""Tests of teminal.losses against per-row references written from SPEC §3 / the paper.

The references loop over anchors and compute
``-log(exp(L[r,p]) / Σ_c w(r,c) exp(L[r,c]))`` literally (paper eq. 4–6, 23–24), with the
weights decided by explicit Python logic, never by the library's weight builders.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from teminal import losses
from teminal.losses import StageAWeights, StageBWeights

K = 7  # classes
F64 = torch.float64

STAGE_B_SETTINGS = [
    *losses.table2_settings().values(),
    StageBWeights(alpha_st=0.3, alpha_ct=0.7, alpha_so=0.5, alpha_co=2.0, beta=0.25),
    StageBWeights(alpha_st=2.5, alpha_ct=0.0, alpha_so=0.0, alpha_co=0.4, beta=1.5),
    StageBWeights(alpha_st=1.0, alpha_ct=1.0, alpha_so=1.0, alpha_co=1.0, beta=0.0),
]
STAGE_A_SETTINGS = [
    StageAWeights(),
    StageAWeights(alpha_same=0.0, alpha_diff=1.0, beta=1.0),
    StageAWeights(alpha_same=0.35, alpha_diff=1.8, beta=0.6),
    StageAWeights(alpha_same=2.0, alpha_diff=0.0, beta=0.0),
]
DISTINCT_PAIRS = [(0, 1), (2, 3), (4, 5), (1, 6), (3, 0)]  # no (i,j)/(j,i), no repeated {i,j}
CLASHING_PAIRS = [(0, 1), (1, 0), (2, 3), (0, 1), (4, 2), (3, 2)]  # reversals and repeats


# --------------------------------------------------------------------------- references


def ref_logits(z_a, z_c, s):
    a = z_a / z_a.norm(dim=1, keepdim=True)
    c = z_c / z_c.norm(dim=1, keepdim=True)
    return s * a @ c.T


def ref_tnce(L, r, p, weight):
    """-log(exp(L[r,p]) / Σ_c w(r,c) exp(L[r,c])), literally."""
    numerator = torch.exp(L[r, p])
    denominator = sum(weight(r, c) * torch.exp(L[r, c]) for c in range(L.shape[1]))
    return -torch.log(numerator / denominator)


def ref_two_way(L, weight, beta):
    rows = range(L.shape[0])
    a2t = sum(ref_tnce(L, r, r, weight) for r in rows) / L.shape[0]
    t2a = sum(ref_tnce(L.T, r, r, weight) for r in rows) / L.shape[0]
    return a2t + beta * t2a


def ref_stage_b_events(pairs):
    forward = [("sequence", i, j) for i, j in pairs]
    reverse = [("sequence", j, i) for i, j in pairs]
    overlay = [("overlay", frozenset((i, j))) for i, j in pairs]
    return forward + reverse + overlay


def ref_stage_b_weight(pairs, w, *, mask=True):
    n = len(pairs)
    events = ref_stage_b_events(pairs)

    def weight(r, c):
        if r == c:
            return 1.0
        if mask and events[r] == events[c]:
            return 0.0  # false negative
        row, col = "fro"[r // n], "fro"[c // n]
        same_pair = r % n == c % n
        if row == col:
            return 1.0
        if row in "fr" and col in "fr":
            return w.alpha_st if same_pair else w.alpha_ct
        if row in "fr" and col == "o":
            return w.alpha_so if same_pair else w.alpha_co
        if row == "o" and col == "f":
            return 1.0
        if row == "o" and col == "r":
            return w.alpha_st if same_pair else w.alpha_ct
        raise AssertionError((row, col))

    return weight


def ref_stage_a_weight(pairs, w, *, mask=True):
    n = len(pairs)
    events = [("single", i) for i, _ in pairs] + [("double", frozenset(p)) for p in pairs]

    def weight(r, c):
        if r == c:
            return 1.0
        if mask and events[r] == events[c]:
            return 0.0
        r_single, c_single = r < n, c < n
        if r_single == c_single:
            return 1.0
        single, double = (r, c - n) if r_single else (c, r - n)
        single_class = pairs[single][0]
        return w.alpha_same if single_class in pairs[double] else w.alpha_diff

    return weight


def as_tensors(pairs):
    i = torch.tensor([p[0] for p in pairs])
    j = torch.tensor([p[1] for p in pairs])
    return i, j


def embeddings(rows, d=6, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(rows, d, generator=g, dtype=dtype).requires_grad_()
    z_c = torch.randn(rows, d, generator=g, dtype=dtype).requires_grad_()
    return z_a, z_c


def assert_same_value_and_grad(loss, ref, inputs):
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    grads = torch.autograd.grad(loss, inputs, retain_graph=True)
    ref_grads = torch.autograd.grad(ref, inputs)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- core pieces


def test_weighted_info_nce_matches_reference():
    g = torch.Generator().manual_seed(1)
    L = torch.randn(4, 6, generator=g, dtype=F64, requires_grad=True)
    positives = torch.tensor([0, 3, 5, 1])
    w = torch.rand(4, 6, generator=g, dtype=F64) * 2
    w[1, 0] = 0.0
    w[torch.arange(4), positives] = 1.0
    loss = losses.weighted_info_nce(L, positives, w.log())
    ref = sum(ref_tnce(L, r, int(positives[r]), lambda a, b: float(w[a, b])) for r in range(4)) / 4
    assert_same_value_and_grad(loss, ref, (L,))


@pytest.mark.parametrize("bad", [math.log(0.5), -math.inf, 0.1])
def test_weighted_info_nce_rejects_weight_at_positive(bad):
    log_w = torch.zeros(3, 3)
    log_w[2, 2] = bad
    with pytest.raises(ValueError, match="positive"):
        losses.weighted_info_nce(torch.randn(3, 3), torch.arange(3), log_w)


def test_weighted_info_nce_rejects_bad_inputs():
    L, pos = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        losses.weighted_info_nce(L, pos, torch.tensor([[0.0, math.nan, 0, 0]] * 3))
    with pytest.raises(ValueError, match="shape"):
        losses.weighted_info_nce(L, pos, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        losses.weighted_info_nce(L, torch.tensor([0, 1, 4]), torch.zeros(3, 4))


def test_logits_is_scaled_cosine():
    z_a, z_c = embeddings(5, seed=2)
    s = torch.tensor(13.0, dtype=F64, requires_grad=True)
    L = losses.logits(z_a, z_c, s)
    assert L.shape == (5, 5)
    assert_same_value_and_grad(L.sum(), ref_logits(z_a, z_c, s).sum(), (z_a, z_c, s))


def test_false_negative_mask():
    events = torch.tensor([5, 7, 5, 9, 7])
    mask = losses.false_negative_mask(events, torch.tensor([0, 1, 3]))
    expected = torch.tensor(
        [[False, False, True, False, False], [False, False, False, False, True], [False] * 5]
    )
    assert torch.equal(mask, expected)


# --------------------------------------------------------------------------- event ids


def test_stage_b_events_follow_spec():
    pairs = [(a, b) for a in range(K) for b in range(K) if a != b]
    i, j = as_tensors(pairs)
    events = losses.stage_b_events(i, j, n_classes=K)
    n = len(pairs)
    assert events.shape == (3 * n,) and events.dtype == torch.long
    forward, reverse, overlay = events[:n], events[n : 2 * n], events[2 * n :]
    assert len(set(forward.tolist())) == n  # ordered pairs are distinct events
    assert set(forward.tolist()) == set(reverse.tolist())  # r of (i,j) = f of (j,i)
    index = {p: k for k, p in enumerate(pairs)}
    for k, (a, b) in enumerate(pairs):
        assert reverse[k] == forward[index[(b, a)]]
        assert overlay[k] == overlay[index[(b, a)]]
    assert len(set(overlay.tolist())) == n // 2
    assert not set(overlay.tolist()) & set(forward.tolist())


def test_stage_a_events_follow_spec():
    pairs = [(a, b) for a in range(K) for b in range(K) if a != b]
    i, j = as_tensors(pairs)
    events = losses.stage_a_events(i, j, n_classes=K)
    n = len(pairs)
    singles, doubles = events[:n], events[n:]
    assert torch.equal(singles, i)
    assert len(set(doubles.tolist())) == n // 2
    assert not set(doubles.tolist()) & set(range(K))


def test_events_reject_out_of_range_classes():
    with pytest.raises(ValueError, match="class ids"):
        losses.stage_b_events(torch.tensor([0, K]), torch.tensor([1, 2]), n_classes=K)
    with pytest.raises(ValueError, match="class ids"):
        losses.stage_a_events(torch.tensor([-1]), torch.tensor([1]), n_classes=K)


# --------------------------------------------------------------------------- weights


def test_table2_settings():
    grid = {
        name: dataclasses.astuple(w) for name, w in losses.table2_settings().items()
    }
    assert sorted(grid.values()) == sorted(
        [(0, 0, 0, 0, 1), (1, 0, 1, 0, 1), (0, 1, 0, 1, 1), (1, 1, 1, 1, 1)]
    )


@pytest.mark.parametrize(
    "cls, field, value",
    [
        (StageBWeights, "alpha_st", -0.1),
        (StageBWeights, "alpha_co", math.inf),
        (StageBWeights, "beta", math.nan),
        (StageAWeights, "alpha_diff", -1),
        (StageAWeights, "beta", "one"),
    ],
)
def test_bad_weights_raise(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


def test_weights_are_frozen_and_keyword_only():
    w = StageBWeights(alpha_st=0, alpha_ct=0, alpha_so=0, alpha_co=0, beta=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.beta = 2.0
    with pytest.raises(TypeError):
        StageBWeights(1, 1, 1, 1, 1)
    assert isinstance(w.alpha_st, float)


@pytest.mark.parametrize("w", STAGE_B_SETTINGS)
def test_stage_b_log_weights_match_table(w):
    pairs = DISTINCT_PAIRS
    weight = ref_stage_b_weight(pairs, w, mask=False)
    n = len(pairs)
    expected = torch.tensor([[weight(r, c) for c in range(3 * n)] for r in range(3 * n)], dtype=F64)
    got = losses.stage_b_log_weights(n, w, dtype=F64)
    assert torch.equal(got.exp(), expected)
    assert torch.equal(torch.isinf(got), expected == 0)


@pytest.mark.parametrize("w", STAGE_A_SETTINGS)
def test_stage_a_log_weights_match_rules(w):
    pairs = CLASHING_PAIRS
    weight = ref_stage_a_weight(pairs, w, mask=False)
    n = len(pairs)
    expected = torch.tensor([[weight(r, c) for c in range(2 * n)] for r in range(2 * n)], dtype=F64)
    got = losses.stage_a_log_weights(*as_tensors(pairs), w, dtype=F64)
    torch.testing.assert_close(got.exp(), expected, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------- stage B


@pytest.mark.parametrize("pairs", [DISTINCT_PAIRS, CLASHING_PAIRS], ids=["distinct", "clashing"])
@pytest.mark.parametrize("w", STAGE_B_SETTINGS)
def test_stage_b_loss_matches_reference(w, pairs):
    n = len(pairs)
    z_a, z_c = embeddings(3 * n, seed=3)
    s = 9.0
    events = losses.stage_b_events(*as_tensors(pairs), n_classes=K)
    loss = losses.stage_b_loss(z_a, z_c, s, events=events, weights=w)
    ref = ref_two_way(ref_logits(z_a, z_c, s), ref_stage_b_weight(pairs, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c))


def test_stage_b_all_ones_is_plain_info_nce_over_3n():
    n = len(DISTINCT_PAIRS)
    z_a, z_c = embeddings(3 * n, seed=4)
    events = losses.stage_b_events(*as_tensors(DISTINCT_PAIRS), n_classes=K)
    loss = losses.stage_b_loss(z_a, z_c, 7.0, events=events, weights=StageBWeights())
    L = ref_logits(z_a, z_c, 7.0)
    target = torch.arange(3 * n)
    plain = F.cross_entropy(L, target) + F.cross_entropy(L.T, target)
    torch.testing.assert_close(loss, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss, 2 * losses.info_nce(z_a, z_c, 7.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w", [s for s in STAGE_B_SETTINGS if 0.0 in dataclasses.astuple(s)[:4]])
def test_zero_alpha_removes_exactly_those_columns(w):
    pairs = DISTINCT_PAIRS
    n = len(pairs)
    weight = ref_stage_b_weight(pairs, w, mask=False)
    zero = torch.tensor([[weight(r, c) == 0 for c in range(3 * n)] for r in range(3 * n)])
    assert zero.any()
    g = torch.Generator().manual_seed(5)
    L = torch.randn(3 * n, 3 * n, generator=g, dtype=F64, requires_grad=True)
    positives = torch.arange(3 * n)
    log_w = losses.stage_b_log_weights(n, w, dtype=F64)
    loss = losses.weighted_info_nce(L, positives, log_w)
    (grad,) = torch.autograd.grad(loss, L)
    assert torch.all(grad[zero] == 0)
    assert torch.all(grad[~zero] != 0)
    moved = L.detach() + 50 * torch.randn(3 * n, 3 * n, generator=g, dtype=F64) * zero
    assert losses.weighted_info_nce(moved, positives, log_w) == loss


def test_reversed_pair_in_batch_is_masked():
    pairs = [(0, 1), (1, 0), (2, 3)]  # forward of pair 0 == reversed of pair 1
    n = len(pairs)
    events = losses.stage_b_events(*as_tensors(pairs), n_classes=K)
    mask = losses.false_negative_mask(events, torch.arange(3 * n))
    f, r, o = 0, n, 2 * n
    expected = torch.zeros(3 * n, 3 * n, dtype=torch.bool)
    for a, b in [(f + 0, r + 1), (f + 1, r + 0), (o + 0, o + 1)]:
        expected[a, b] = expected[b, a] = True
    assert torch.equal(mask, expected)

    z_a, z_c = embeddings(3 * n, seed=6)
    w = StageBWeights(alpha_st=0.5, alpha_ct=1.0, alpha_so=1.0, alpha_co=1.0, beta=1.0)
    loss = losses.stage_b_loss(z_a, z_c, 8.0, events=events, weights=w)
    ref = ref_two_way(ref_logits(z_a, z_c, 8.0), ref_stage_b_weight(pairs, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c))
    # The masked logits carry no gradient in either direction.
    L = ref_logits(z_a, z_c, 8.0).detach().requires_grad_()
    log_w = losses.stage_b_log_weights(n, w, dtype=F64).masked_fill(mask, -math.inf)
    pos = torch.arange(3 * n)
    (grad,) = torch.autograd.grad(
        losses.weighted_info_nce(L, pos, log_w) + losses.weighted_info_nce(L.T, pos, log_w), L
    )
    assert torch.all(grad[mask] == 0)


def test_stage_b_loss_accepts_tensor_scale_with_grad():
    n = len(DISTINCT_PAIRS)
    z_a, z_c = embeddings(3 * n, seed=7)
    s = torch.tensor(11.0, dtype=F64, requires_grad=True)
    w = STAGE_B_SETTINGS[4]
    events = losses.stage_b_events(*as_tensors(DISTINCT_PAIRS), n_classes=K)
    loss = losses.stage_b_loss(z_a, z_c, s, events=events, weights=w)
    ref = ref_two_way(ref_logits(z_a, z_c, s), ref_stage_b_weight(DISTINCT_PAIRS, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c, s))


def test_stage_b_loss_rejects_bad_shapes():
    z_a, z_c = embeddings(7)
    with pytest.raises(ValueError, match="3N"):
        losses.stage_b_loss(z_a, z_c, 1.0, events=torch.zeros(7, dtype=torch.long),
                            weights=StageBWeights())


# --------------------------------------------------------------------------- stage A


@pytest.mark.parametrize("pairs", [DISTINCT_PAIRS, CLASHING_PAIRS], ids=["distinct", "clashing"])
@pytest.mark.parametrize("w", STAGE_A_SETTINGS)
def test_stage_a_loss_matches_reference(w, pairs):
    n = len(pairs)
    z_a, z_c = embeddings(2 * n, seed=8)
    i, j = as_tensors(pairs)
    loss = losses.stage_a_loss(z_a, z_c, 10.0, i=i, j=j, n_classes=K, weights=w)
    ref = ref_two_way(ref_logits(z_a, z_c, 10.0), ref_stage_a_weight(pairs, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c))


def test_stage_a_default_without_duplicates_is_plain_info_nce():
    pairs = [(0, 1), (2, 3), (4, 5)]
    z_a, z_c = embeddings(6, seed=9)
    i, j = as_tensors(pairs)
    loss = losses.stage_a_loss(z_a, z_c, 6.0, i=i, j=j, n_classes=K)
    torch.testing.assert_close(loss, 2 * losses.info_nce(z_a, z_c, 6.0), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- InfoNCE, T-CLAP


def test_info_nce_is_textbook():
    z_a, z_c = embeddings(8, seed=10)
    loss = losses.info_nce(z_a, z_c, 12.0)
    L = ref_logits(z_a, z_c, 12.0)
    target = torch.arange(8)
    ref = (F.cross_entropy(L, target) + F.cross_entropy(L.T, target)) / 2
    assert_same_value_and_grad(loss, ref, (z_a, z_c))


def test_info_nce_masks_events():
    z_a, z_c = embeddings(6, seed=11)
    events = [3, 1, 3, 2, 1, 3]
    loss = losses.info_nce(z_a, z_c, 5.0, events=torch.tensor(events))

    def weight(r, c):
        return 1.0 if r == c else float(events[r] != events[c])

    ref = ref_two_way(ref_logits(z_a, z_c, 5.0), weight, 1.0) / 2
    assert_same_value_and_grad(loss, ref, (z_a, z_c))


@pytest.mark.parametrize("overlay", [False, True])
def test_tclap_loss(overlay):
    g = torch.Generator().manual_seed(12)
    z_a, z_f, z_r, z_o = (
        torch.randn(5, 6, generator=g, dtype=F64).requires_grad_() for _ in range(4)
    )
    z_o_arg = z_o if overlay else None
    l_c = losses.info_nce(z_a, z_f, 4.0)
    torch.testing.assert_close(
        losses.tclap_loss(z_a, z_f, z_r, 4.0, z_c_o=z_o_arg, lam=0.0), l_c, rtol=0, atol=0
    )
    loss = losses.tclap_loss(z_a, z_f, z_r, 4.0, z_c_o=z_o_arg, lam=0.5)
    candidates = [z_f, z_r] + ([z_o] if overlay else [])
    l_t = 0
    for k in range(5):
        sims = torch.stack(
            [ref_logits(z_a[k : k + 1], c[k : k + 1], 4.0)[0, 0] for c in candidates]
        )
        l_t = l_t - torch.log(torch.exp(sims[0]) / torch.exp(sims).sum())
    ref = l_c + 0.5 * l_t / 5
    assert_same_value_and_grad(loss, ref, (z_a, z_f, z_r, z_o) if overlay else (z_a, z_f, z_r))
    with pytest.raises(ValueError, match="lam"):
        losses.tclap_loss(z_a, z_f, z_r, 4.0, lam=-1.0)


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_finite_under_bf16_autocast_on_cpu(input_dtype):
    pairs = CLASHING_PAIRS
    n = len(pairs)
    i, j = as_tensors(pairs)
    z_a, z_c = embeddings(3 * n, d=16, seed=13, dtype=input_dtype)
    events = losses.stage_b_events(i, j, n_classes=K)
    w = StageBWeights(alpha_st=0.5, alpha_ct=1.0, alpha_so=0.0, alpha_co=1.0, beta=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = losses.stage_b_loss(z_a, z_c, 100.0, events=events, weights=w)
        other = losses.info_nce(z_a, z_c, 100.0) + losses.stage_a_loss(
            z_a[: 2 * n], z_c[: 2 * n], 100.0, i=i, j=j, n_classes=K
        )
        other = other + losses.tclap_loss(z_a[:n], z_c[:n], z_c[n : 2 * n], 100.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(other)
    grads = torch.autograd.grad(loss + other, (z_a, z_c))
    assert all(torch.isfinite(g).all() for g in grads)
    plain = losses.stage_b_loss(z_a, z_c, 100.0, events=events, weights=w)
    assert loss == plain  # autocast is off inside: identical to the float32 computation


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_under_autocast():
    pairs = CLASHING_PAIRS
    n = len(pairs)
    i, j = as_tensors(pairs)
    z_a, z_c = embeddings(3 * n, d=16, seed=14, dtype=torch.float32)
    events = losses.stage_b_events(i, j, n_classes=K)
    w = StageBWeights(alpha_st=0.5, alpha_ct=0.2, alpha_so=1.0, alpha_co=0.0, beta=0.5)
    cpu = losses.stage_b_loss(z_a, z_c, 30.0, events=events, weights=w)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        gpu = losses.stage_b_loss(z_a.cuda(), z_c.cuda(), 30.0, events=events.cuda(), weights=w)
        gpu_a = losses.stage_a_loss(z_a[: 2 * n].cuda(), z_c[: 2 * n].cuda(), 30.0,
                                    i=i.cuda(), j=j.cuda(), n_classes=K)
    assert gpu.dtype == torch.float32 and torch.isfinite(gpu_a)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)
