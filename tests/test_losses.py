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
    *(setting.weights for setting in losses.TABLE2_GRID),
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
MIRRORED_PAIRS = [(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (6, 4), (2, 3)]  # (i,j),(j,i), a repeat


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


def ref_meanings(pairs):
    """What each of the 3N captions says: ("seq", first, second) or ("while", i, j) in row order."""
    forward = [("seq", i, j) for i, j in pairs]
    reverse = [("seq", j, i) for i, j in pairs]
    overlay = [("while", i, j) for i, j in pairs]
    return forward + reverse + overlay


def ref_stage_b_weight_by_meaning(pairs, w):
    """SPEC §3 "Same pair by meaning", decided from what the anchor and the column say."""
    n = len(pairs)
    said = ref_meanings(pairs)

    def same_event(a, b):
        if a[0] != b[0]:
            return False
        return a[1:] == b[1:] if a[0] == "seq" else set(a[1:]) == set(b[1:])

    def weight(r, c):
        if r == c:
            return 1.0
        anchor, column = said[r], said[c]
        if same_event(anchor, column):
            return 0.0  # false negative
        if set(anchor[1:]) == set(column[1:]):  # same unordered class pair
            if anchor[0] == "seq":
                # the temporally inverted sequence, or the overlay of the same two classes
                return w.alpha_st if column[0] == "seq" else w.alpha_so
            # overlay anchor of row (i, j): "x_i before x_j" 1, "x_j before x_i" alpha_st
            return 1.0 if column[1:] == anchor[1:] else w.alpha_st
        row, col = "fro"[r // n], "fro"[c // n]  # other pairs: the table's "other pair" entries
        table = {("f", "f"): 1.0, ("f", "r"): w.alpha_ct, ("f", "o"): w.alpha_co,
                 ("r", "f"): w.alpha_ct, ("r", "r"): 1.0, ("r", "o"): w.alpha_co,
                 ("o", "f"): 1.0, ("o", "r"): w.alpha_ct, ("o", "o"): 1.0}
        return table[row, col]

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


def test_table2_grid_is_the_papers():
    grid = [(s.name, dataclasses.astuple(s.weights)) for s in losses.TABLE2_GRID]
    assert grid == [("none", (0, 0, 0, 0, 1)), ("same_pair", (1, 0, 1, 0, 1)),
                    ("other_pairs", (0, 1, 0, 1, 1)), ("all", (1, 1, 1, 1, 1))]


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


def ref_table(weight, size):
    return torch.tensor([[weight(r, c) for c in range(size)] for r in range(size)], dtype=F64)


@pytest.mark.parametrize("pairs", [DISTINCT_PAIRS, CLASHING_PAIRS, MIRRORED_PAIRS],
                         ids=["distinct", "clashing", "mirrored"])
@pytest.mark.parametrize("w", STAGE_B_SETTINGS)
def test_stage_b_log_weights_by_block_is_the_literal_table(w, pairs):
    expected = ref_table(ref_stage_b_weight(pairs, w), 3 * len(pairs))
    got = losses.stage_b_log_weights(*as_tensors(pairs), w, weights_by="block", dtype=F64)
    assert torch.equal(got.exp(), expected)
    assert torch.equal(torch.isinf(got), expected == 0)


@pytest.mark.parametrize("pairs", [DISTINCT_PAIRS, CLASHING_PAIRS, MIRRORED_PAIRS],
                         ids=["distinct", "clashing", "mirrored"])
@pytest.mark.parametrize("w", STAGE_B_SETTINGS)
def test_stage_b_log_weights_by_meaning(w, pairs):
    expected = ref_table(ref_stage_b_weight_by_meaning(pairs, w), 3 * len(pairs))
    got = losses.stage_b_log_weights(*as_tensors(pairs), w, dtype=F64)  # meaning: the default
    assert torch.equal(got.exp(), expected)


@pytest.mark.parametrize("w", STAGE_B_SETTINGS)
def test_meaning_equals_block_without_shared_unordered_pairs(w):
    i, j = as_tensors(DISTINCT_PAIRS)
    by_meaning = losses.stage_b_log_weights(i, j, w, weights_by="meaning", dtype=F64)
    assert torch.equal(by_meaning, losses.stage_b_log_weights(i, j, w, weights_by="block", dtype=F64))


def test_mirrored_row_by_meaning_cell_by_cell():
    """Rows (0, 1) and (1, 0): row 1's forward caption "x1 before x0" IS row 0's inversion."""
    w = StageBWeights(alpha_st=0.2, alpha_ct=0.3, alpha_so=0.4, alpha_co=0.5, beta=1)
    pairs = [(0, 1), (1, 0), (2, 3)]
    n = len(pairs)
    f, r, o = 0, n, 2 * n
    got = losses.stage_b_log_weights(*as_tensors(pairs), w, dtype=F64).exp()
    block = losses.stage_b_log_weights(*as_tensors(pairs), w, weights_by="block", dtype=F64).exp()
    # forward anchor of (0, 1) against row (1, 0): its f is the inversion, its r the same event
    assert got[f + 0, f + 1] == 0.2 and block[f + 0, f + 1] == 1.0
    assert got[f + 0, r + 1] == 0.0 and block[f + 0, r + 1] == 0.0
    assert got[f + 0, o + 1] == 0.4 and block[f + 0, o + 1] == 0.5
    # overlay anchor of (0, 1): "x0 before x1" (row 1's r) 1, "x1 before x0" (row 1's f) alpha_st
    assert got[o + 0, r + 1] == 1.0 and block[o + 0, r + 1] == 0.3
    assert got[o + 0, f + 1] == 0.2 and block[o + 0, f + 1] == 1.0
    assert got[o + 0, o + 1] == 0.0  # the same overlay: a false negative
    # other unordered pairs keep the table's "other pair" entries
    assert got[f + 0, r + 2] == 0.3 and got[f + 0, o + 2] == 0.5 and got[o + 0, r + 2] == 0.3


def test_stage_b_log_weights_reject_bad_arguments():
    i, j = as_tensors(DISTINCT_PAIRS)
    with pytest.raises(ValueError, match="weights_by"):
        losses.stage_b_log_weights(i, j, StageBWeights(), weights_by="row")
    with pytest.raises(ValueError, match="differ"):
        losses.stage_b_log_weights(torch.tensor([0, 2]), torch.tensor([1, 2]), StageBWeights())
    with pytest.raises(ValueError, match=r"\[N\]"):
        losses.stage_b_log_weights(torch.tensor([], dtype=torch.long),
                                   torch.tensor([], dtype=torch.long), StageBWeights())


@pytest.mark.parametrize("w", STAGE_A_SETTINGS)
def test_stage_a_log_weights_match_rules(w):
    pairs = CLASHING_PAIRS
    weight = ref_stage_a_weight(pairs, w)
    n = len(pairs)
    expected = torch.tensor([[weight(r, c) for c in range(2 * n)] for r in range(2 * n)], dtype=F64)
    got = losses.stage_a_log_weights(*as_tensors(pairs), w, dtype=F64)
    torch.testing.assert_close(got.exp(), expected, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------- stage B


def stage_b(z_a, z_c, s, pairs, w, weights_by="meaning"):
    i, j = as_tensors(pairs)
    return losses.stage_b_loss(z_a, z_c, s, i=i, j=j, n_classes=K, weights=w, weights_by=weights_by)


@pytest.mark.parametrize("pairs", [DISTINCT_PAIRS, CLASHING_PAIRS, MIRRORED_PAIRS],
                         ids=["distinct", "clashing", "mirrored"])
@pytest.mark.parametrize("w", STAGE_B_SETTINGS)
def test_stage_b_loss_matches_reference(w, pairs):
    n = len(pairs)
    z_a, z_c = embeddings(3 * n, seed=3)
    s = 9.0
    loss = stage_b(z_a, z_c, s, pairs, w)
    ref = ref_two_way(ref_logits(z_a, z_c, s), ref_stage_b_weight_by_meaning(pairs, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c))
    block = stage_b(z_a, z_c, s, pairs, w, weights_by="block")
    ref_block = ref_two_way(ref_logits(z_a, z_c, s), ref_stage_b_weight(pairs, w), w.beta)
    assert_same_value_and_grad(block, ref_block, (z_a, z_c))


def test_stage_b_all_ones_is_plain_info_nce_over_3n():
    n = len(DISTINCT_PAIRS)
    z_a, z_c = embeddings(3 * n, seed=4)
    loss = stage_b(z_a, z_c, 7.0, DISTINCT_PAIRS, StageBWeights())
    L = ref_logits(z_a, z_c, 7.0)
    target = torch.arange(3 * n)
    plain = F.cross_entropy(L, target) + F.cross_entropy(L.T, target)
    torch.testing.assert_close(loss, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss, 2 * losses.info_nce(z_a, z_c, 7.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w", [s for s in STAGE_B_SETTINGS if 0.0 in dataclasses.astuple(s)[:4]])
def test_zero_alpha_removes_exactly_those_columns(w):
    pairs = MIRRORED_PAIRS
    n = len(pairs)
    weight = ref_stage_b_weight_by_meaning(pairs, w)
    zero = torch.tensor([[weight(r, c) == 0 for c in range(3 * n)] for r in range(3 * n)])
    assert zero.any()
    g = torch.Generator().manual_seed(5)
    L = torch.randn(3 * n, 3 * n, generator=g, dtype=F64, requires_grad=True)
    positives = torch.arange(3 * n)
    log_w = losses.stage_b_log_weights(*as_tensors(pairs), w, dtype=F64)
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
    for weights_by in losses.WEIGHTS_BY:
        log_w = losses.stage_b_log_weights(*as_tensors(pairs), w, weights_by=weights_by)
        assert torch.isinf(log_w[mask]).all()  # false negatives: weight 0 in both readings
    loss = stage_b(z_a, z_c, 8.0, pairs, w, weights_by="block")
    ref = ref_two_way(ref_logits(z_a, z_c, 8.0), ref_stage_b_weight(pairs, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c))
    # The masked logits carry no gradient in either direction.
    L = ref_logits(z_a, z_c, 8.0).detach().requires_grad_()
    log_w = losses.stage_b_log_weights(*as_tensors(pairs), w, dtype=F64)
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
    loss = stage_b(z_a, z_c, s, DISTINCT_PAIRS, w)
    ref = ref_two_way(ref_logits(z_a, z_c, s), ref_stage_b_weight(DISTINCT_PAIRS, w), w.beta)
    assert_same_value_and_grad(loss, ref, (z_a, z_c, s))


def test_stage_b_loss_rejects_bad_shapes():
    z_a, z_c = embeddings(7)
    with pytest.raises(ValueError, match="3N"):
        stage_b(z_a, z_c, 1.0, [(0, 1), (2, 3)], StageBWeights())
    with pytest.raises(ValueError, match="class ids"):
        stage_b(z_a[:6], z_c[:6], 1.0, [(0, 1), (2, K)], StageBWeights())


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


def ref_tclap(z_a, z_c, z_swapped, s, pairs, lam):
    """SPEC §3 T-CLAP, literally: L_c over [A_f; A_o] x [C_f; C_o] (false negatives removed),
    L_t over {own caption, swapped caption} for each forward audio."""
    n = len(pairs)
    said = [("seq", i, j) for i, j in pairs] + [("while", frozenset((i, j))) for i, j in pairs]

    def weight(r, c):
        return 1.0 if r == c else float(said[r] != said[c])

    l_c = ref_two_way(ref_logits(z_a, z_c, s), weight, 1.0) / 2
    l_t = 0
    for k in range(n):
        own = ref_logits(z_a[k : k + 1], z_c[k : k + 1], s)[0, 0]
        swapped = ref_logits(z_a[k : k + 1], z_swapped[k : k + 1], s)[0, 0]
        l_t = l_t - torch.log(torch.exp(own) / (torch.exp(own) + torch.exp(swapped)))
    return l_c + lam * l_t / n


@pytest.mark.parametrize("pairs", [DISTINCT_PAIRS, MIRRORED_PAIRS], ids=["distinct", "mirrored"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_tclap_loss_matches_reference(pairs, lam):
    n = len(pairs)
    g = torch.Generator().manual_seed(12)
    z_a, z_c = embeddings(2 * n, seed=12)
    z_swapped = torch.randn(n, 6, generator=g, dtype=F64).requires_grad_()
    i, j = as_tensors(pairs)
    loss = losses.tclap_loss(z_a, z_c, z_swapped, 4.0, i=i, j=j, n_classes=K, lam=lam)
    ref = ref_tclap(z_a, z_c, z_swapped, 4.0, pairs, lam)
    assert_same_value_and_grad(loss, ref, (z_a, z_c, z_swapped))


def test_tclap_masks_the_mirrored_overlay_only():
    """Overlays of (0, 1) and (1, 0) are one event; their forward clips are two."""
    pairs = [(0, 1), (1, 0), (2, 3)]
    z_a, z_c = embeddings(6, seed=15)
    z_swapped = torch.randn(3, 6, dtype=F64)
    i, j = as_tensors(pairs)
    loss = losses.tclap_loss(z_a, z_c, z_swapped, 4.0, i=i, j=j, n_classes=K, lam=0.0)
    unmasked = losses.info_nce(z_a, z_c, 4.0)
    events = torch.tensor([0, 1, 2, 3, 3, 4])  # f(0,1), f(1,0), f(2,3), o{0,1}, o{0,1}, o{2,3}
    torch.testing.assert_close(loss, losses.info_nce(z_a, z_c, 4.0, events=events), rtol=0, atol=0)
    assert loss != unmasked


def test_tclap_loss_rejects_bad_inputs():
    z_a, z_c = embeddings(4, seed=16)
    i, j = as_tensors([(0, 1), (2, 3)])
    with pytest.raises(ValueError, match="lam"):
        losses.tclap_loss(z_a, z_c, z_c[:2], 4.0, i=i, j=j, n_classes=K, lam=-1.0)
    with pytest.raises(ValueError, match="z_c_swapped"):
        losses.tclap_loss(z_a, z_c, z_c[:3], 4.0, i=i, j=j, n_classes=K)
    with pytest.raises(ValueError, match="2N"):
        losses.tclap_loss(z_a[:3], z_c[:3], z_c[:2], 4.0, i=i, j=j, n_classes=K)


def test_tclap_temporal_loss_is_a_softmax_over_candidates():
    g = torch.Generator().manual_seed(17)
    z_a, c0, c1, c2 = (torch.randn(5, 6, generator=g, dtype=F64).requires_grad_() for _ in range(4))
    loss = losses.tclap_temporal_loss(z_a, [c0, c1, c2], 3.0)
    sims = torch.stack([(ref_logits(z_a, c, 3.0)).diagonal() for c in (c0, c1, c2)], dim=1)
    ref = -(sims[:, 0] - torch.logsumexp(sims, dim=1)).mean()
    assert_same_value_and_grad(loss, ref, (z_a, c0, c1, c2))


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_finite_under_bf16_autocast_on_cpu(input_dtype):
    pairs = CLASHING_PAIRS
    n = len(pairs)
    i, j = as_tensors(pairs)
    z_a, z_c = embeddings(3 * n, d=16, seed=13, dtype=input_dtype)
    w = StageBWeights(alpha_st=0.5, alpha_ct=1.0, alpha_so=0.0, alpha_co=1.0, beta=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = stage_b(z_a, z_c, 100.0, pairs, w)
        other = losses.info_nce(z_a, z_c, 100.0) + losses.stage_a_loss(
            z_a[: 2 * n], z_c[: 2 * n], 100.0, i=i, j=j, n_classes=K
        )
        other = other + losses.tclap_loss(z_a[: 2 * n], z_c[: 2 * n], z_c[2 * n :], 100.0,
                                          i=i, j=j, n_classes=K)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(other)
    grads = torch.autograd.grad(loss + other, (z_a, z_c))
    assert all(torch.isfinite(g).all() for g in grads)
    plain = stage_b(z_a, z_c, 100.0, pairs, w)
    assert loss == plain  # autocast is off inside: identical to the float32 computation


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_under_autocast():
    pairs = CLASHING_PAIRS
    n = len(pairs)
    i, j = as_tensors(pairs)
    z_a, z_c = embeddings(3 * n, d=16, seed=14, dtype=torch.float32)
    w = StageBWeights(alpha_st=0.5, alpha_ct=0.2, alpha_so=1.0, alpha_co=0.0, beta=0.5)
    cpu = stage_b(z_a, z_c, 30.0, pairs, w)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        gpu = losses.stage_b_loss(z_a.cuda(), z_c.cuda(), 30.0, i=i.cuda(), j=j.cuda(),
                                  n_classes=K, weights=w)
        gpu_a = losses.stage_a_loss(z_a[: 2 * n].cuda(), z_c[: 2 * n].cuda(), 30.0,
                                    i=i.cuda(), j=j.cuda(), n_classes=K)
    assert gpu.dtype == torch.float32 and torch.isfinite(gpu_a)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)
