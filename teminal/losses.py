"""Contrastive losses of TeminAL and the T-CLAP baseline (SPEC §3).

Every loss here is a *weighted InfoNCE* (SPEC §3; the paper's TNCE, eq. 4–6, 11–15, 23–24).
For a logit matrix ``L`` (rows: anchors, columns: candidates), an anchor row ``r`` with
positive column ``p`` and weights ``w(r, c) >= 0`` with ``w(r, p) = 1``::

    TNCE(r) = -log( exp(L[r,p]) / Σ_c w(r,c) · exp(L[r,c]) )  =  CE(L[r] + log w(r), p)

so a weight enters as an additive ``log w`` on the logits (``log 0 = -inf`` removes the
column) and the loss is one ``F.cross_entropy`` call; nothing exponentiates a logit.

Conventions shared by every function:

* ``L = s · norm(z_a) · norm(z_c)^T`` where ``logit_scale`` is ``s`` itself, i.e. the
  *already exponentiated* temperature (CLAP's ``exp(logit_scale)``, SPEC §2).
* Losses are the **mean** over anchor rows (SPEC §3); the paper sums.
* Row ``k`` of the audio batch and row ``k`` of the text batch form a positive pair.
* **False negatives** (SPEC §3): a column whose event id equals that of the positive (other
  than the positive itself) gets weight 0. Event ids come from :func:`stage_b_events` /
  :func:`stage_a_events` (or any integer labelling with that meaning).
* Arithmetic is done in float32 (float64 inputs stay float64) with autocast switched off, so
  the losses can be called inside a bf16/fp16 autocast region on CPU or CUDA.
* The ``*_log_weights`` functions return exactly the weights their loss uses, false
  negatives included (weight 0).

Public API: :func:`weighted_info_nce`, :func:`logits`, :func:`false_negative_mask`,
:func:`stage_b_events`, :func:`stage_a_events`, :class:`StageBWeights`, :data:`TABLE2_GRID`,
:data:`WEIGHTS_BY`, :func:`stage_b_log_weights`, :func:`stage_b_loss`, :class:`StageAWeights`,
:func:`stage_a_log_weights`, :func:`stage_a_loss`, :func:`info_nce`,
:func:`tclap_temporal_loss`, :func:`tclap_loss`.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TABLE2_GRID",
    "WEIGHTS_BY",
    "StageAWeights",
    "StageBWeights",
    "Table2Setting",
    "false_negative_mask",
    "info_nce",
    "logits",
    "stage_a_events",
    "stage_a_log_weights",
    "stage_a_loss",
    "stage_b_events",
    "stage_b_log_weights",
    "stage_b_loss",
    "tclap_loss",
    "tclap_temporal_loss",
    "weighted_info_nce",
]


# --------------------------------------------------------------------------- precision


def _compute_dtype(*values: Tensor | float) -> torch.dtype:
    """float32, or wider when a floating input is wider (float64 stays float64)."""
    dtype = torch.float32
    for value in values:
        if isinstance(value, Tensor) and value.is_floating_point():
            dtype = torch.promote_types(dtype, value.dtype)
    return dtype


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Switch autocast off on ``device`` so matmuls and softmax run in the inputs' dtype."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _as_scale(logit_scale: Tensor | float, dtype: torch.dtype) -> Tensor | float:
    return logit_scale.to(dtype) if isinstance(logit_scale, Tensor) else float(logit_scale)


# --------------------------------------------------------------------------- core


def _check_weighted_inputs(logits: Tensor, positives: Tensor, log_weights: Tensor) -> None:
    """Shapes, and (one host sync) positives in range, log w = 0 at the positive, no NaN/+inf."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be [R, C], got shape {tuple(logits.shape)}")
    n_rows, n_cols = logits.shape
    if n_rows == 0 or n_cols == 0:
        raise ValueError(f"logits must be non-empty, got shape {tuple(logits.shape)}")
    if positives.shape != (n_rows,) or positives.dtype != torch.long:
        raise ValueError(
            f"positives must be a long tensor of shape [{n_rows}], "
            f"got {positives.dtype} {tuple(positives.shape)}"
        )
    if log_weights.shape != logits.shape:
        raise ValueError(
            f"log_weights must have the shape of logits {tuple(logits.shape)}, "
            f"got {tuple(log_weights.shape)}"
        )
    in_range = (positives >= 0) & (positives < n_cols)  # (R,)
    at_positive = log_weights.gather(1, positives.clamp(0, n_cols - 1)[:, None])  # (R, 1)
    bad_values = torch.isnan(log_weights) | (log_weights == math.inf)  # (R, C)
    if bool(in_range.all() & (at_positive == 0).all() & ~bad_values.any()):
        return
    if not bool(in_range.all()):
        raise ValueError(f"positives must lie in [0, {n_cols}), got {positives.tolist()}")
    if bool(bad_values.any()):
        raise ValueError("log_weights must not contain NaN or +inf (weights are finite, >= 0)")
    rows = torch.nonzero(at_positive[:, 0] != 0)[:, 0].tolist()
    raise ValueError(
        "log_weights must be 0 at each row's positive (w(r, p) = 1, SPEC §3); "
        f"rows {rows[:10]} have {at_positive[rows[:10], 0].tolist()}"
    )


def weighted_info_nce(logits: Tensor, positives: Tensor, log_weights: Tensor) -> Tensor:
    """Weighted InfoNCE ``mean_r CE(L[r] + log w(r), p_r)`` (SPEC §3, paper TNCE eq. 4–6).

    Args:
        logits: [R, C] anchor rows against candidate columns.
        positives: [R] long, the positive column of each row.
        log_weights: [R, C] ``log w(r, c)``; ``-inf`` for weight 0 (column removed). Must be
            exactly 0 at every positive (``w(r, p) = 1``), never NaN or ``+inf``.

    Returns:
        Scalar, the mean over the R rows, in float32 (float64 for float64 logits).

    Raises:
        ValueError: on bad shapes, out-of-range positives, or a non-zero log weight at a
            positive (checked with one host sync).
    """
    _check_weighted_inputs(logits, positives, log_weights)
    dtype = _compute_dtype(logits)
    with _no_autocast(logits.device):
        weighted = logits.to(dtype) + log_weights.to(dtype)  # (R, C)
        return F.cross_entropy(weighted, positives)


def logits(z_a: Tensor, z_c: Tensor, logit_scale: Tensor | float) -> Tensor:
    """Scaled cosine similarities ``L = s · norm(z_a) norm(z_c)^T`` (SPEC §3).

    Args:
        z_a: [B, d] audio embeddings (any norm; normalised here).
        z_c: [B', d] text embeddings (B' = B for the square training matrices).
        logit_scale: ``s``, the *already exponentiated* scale (CLAP's ``exp(logit_scale)``,
            SPEC §2), a float or a 0-d tensor (may require grad).

    Returns:
        [B, B'] logits, audio rows and text columns, in float32 (or float64).
    """
    if z_a.ndim != 2 or z_c.ndim != 2 or z_a.shape[1] != z_c.shape[1]:
        raise ValueError(
            f"z_a and z_c must be [B, d] with the same d, "
            f"got {tuple(z_a.shape)} and {tuple(z_c.shape)}"
        )
    dtype = _compute_dtype(z_a, z_c, logit_scale)
    with _no_autocast(z_a.device):
        audio = F.normalize(z_a.to(dtype), dim=-1)  # (B, d)
        text = F.normalize(z_c.to(dtype), dim=-1)  # (B', d)
        return _as_scale(logit_scale, dtype) * (audio @ text.T)  # (B, B')


def false_negative_mask(events: Tensor, positives: Tensor) -> Tensor:
    """True where a column describes the same event as the row's positive (SPEC §3).

    The positive itself is not a false negative. Such columns are the same caption in
    meaning (e.g. the forward sample of ``(i, j)`` and the reversed sample of ``(j, i)``)
    and get weight 0.

    Args:
        events: [C] long event id of each column (audio and text row k share event k).
        positives: [R] long positive column of each row.

    Returns:
        [R, C] bool.
    """
    columns = torch.arange(events.shape[0], device=events.device)  # (C,)
    same_event = events[positives][:, None] == events[None, :]  # (R, C)
    is_positive = positives[:, None] == columns[None, :]  # (R, C)
    return same_event & ~is_positive


def _mask_false_negatives(log_weights: Tensor, events: Tensor) -> Tensor:
    """Set ``log w = -inf`` on the false negatives of the diagonal positives. [B, B] → [B, B]."""
    positives = torch.arange(log_weights.shape[0], device=log_weights.device)  # (B,)
    mask = false_negative_mask(events.to(log_weights.device), positives)  # (B, B)
    return log_weights.masked_fill(mask, -math.inf)


def _both_directions(sim: Tensor, log_weights: Tensor, *, beta: float) -> Tensor:
    """``L_a2t + β · L_t2a`` with diagonal positives; text rows use the same weight table.

    sim: [B, B] audio rows × text columns; log_weights: [B, B] (row block × column block).
    """
    positives = torch.arange(sim.shape[0], device=sim.device)  # (B,)
    audio_to_text = weighted_info_nce(sim, positives, log_weights)
    text_to_audio = weighted_info_nce(sim.T, positives, log_weights)  # (B, B) text rows
    return audio_to_text + beta * text_to_audio


# --------------------------------------------------------------------------- event ids


def _check_pairs(i: Tensor, j: Tensor, n_classes: int) -> None:
    if i.ndim != 1 or i.shape != j.shape:
        raise ValueError(f"i and j must be [N], got {tuple(i.shape)} and {tuple(j.shape)}")
    if i.is_floating_point() or j.is_floating_point():
        raise ValueError("i and j must be integer class ids")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if i.numel() and not bool(((i >= 0) & (i < n_classes) & (j >= 0) & (j < n_classes)).all()):
        raise ValueError(f"class ids must lie in [0, {n_classes})")


def _ordered_pair_id(i: Tensor, j: Tensor, n_classes: int) -> Tensor:
    """Id of the ordered pair ``(i, j)`` in ``[0, K²)``."""
    return i.long() * n_classes + j.long()


def _unordered_pair_id(i: Tensor, j: Tensor, n_classes: int) -> Tensor:
    """Id of the unordered pair ``{i, j}`` in ``[0, K²)``."""
    return _ordered_pair_id(torch.minimum(i, j), torch.maximum(i, j), n_classes)


def stage_b_events(i: Tensor, j: Tensor, *, n_classes: int) -> Tensor:
    """Event ids of a stage-B batch ``[f; r; o]`` for false-negative masking (SPEC §3).

    Args:
        i: [N] class heard first in the forward clip ``a_i ⊕ a_j`` (for the "after" phrasing
            ``"x_j after x_i"`` this is still ``i``: events follow the audio, not word order).
        j: [N] class heard second.
        n_classes: K, number of classes.

    Returns:
        [3N] long: forward ``(i, j)`` and reversed ``(j, i)`` as ordered pairs in ``[0, K²)``;
        overlay ``{i, j}`` unordered in the disjoint range ``[K², 2K²)``.
    """
    _check_pairs(i, j, n_classes)
    forward = _ordered_pair_id(i, j, n_classes)  # (N,) "x_i before x_j"
    reverse = _ordered_pair_id(j, i, n_classes)  # (N,) "x_j before x_i"
    overlay = n_classes**2 + _unordered_pair_id(i, j, n_classes)  # (N,) "x_i while x_j"
    return torch.cat([forward, reverse, overlay])  # (3N,)


def stage_a_events(i: Tensor, j: Tensor, *, n_classes: int) -> Tensor:
    """Event ids of a stage-A batch ``[singles; doubles]`` (SPEC §3, Stage A).

    Args:
        i: [N] class of single k (``"single sound of x_i"``) and first class of double k.
        j: [N] second class of double k (``"combined sound of x_i and x_j"``).
        n_classes: K.

    Returns:
        [2N] long: singles ``i`` in ``[0, K)``; doubles the unordered ``{i, j}`` in the disjoint
        range ``[K, K + K²)``.
    """
    _check_pairs(i, j, n_classes)
    singles = i.long()  # (N,)
    doubles = n_classes + _unordered_pair_id(i, j, n_classes)  # (N,)
    return torch.cat([singles, doubles])  # (2N,)


# --------------------------------------------------------------------------- weights


def _validate_non_negative(settings: object) -> None:
    """Coerce every field to float; ValueError naming the field unless finite and >= 0."""
    for field in fields(settings):
        value = getattr(settings, field.name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(
                f"{type(settings).__name__}.{field.name} must be a finite number >= 0, "
                f"got {value!r}"
            )
        object.__setattr__(settings, field.name, number)


@dataclass(frozen=True, kw_only=True)
class StageBWeights:
    """Coefficients of the stage-B loss (SPEC §3 table, paper eq. 4–7, §3.5).

    ``alpha_st`` / ``alpha_ct``: reversed-type negatives from the same / other pairs;
    ``alpha_so`` / ``alpha_co``: overlay negatives from the same / other pairs (for sequence
    anchors); ``beta``: weight of ``L_t2a`` in ``L_B = L_a2t + β L_t2a``. The paper uses
    0 or 1; any finite value >= 0 is valid. Defaults are the paper's headline setting
    (all 1, Table 2/3 "T-AB").
    """

    alpha_st: float = 1.0
    alpha_ct: float = 1.0
    alpha_so: float = 1.0
    alpha_co: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        _validate_non_negative(self)


@dataclass(frozen=True, kw_only=True)
class Table2Setting:
    """One named row of the paper's Table 2 grid (SPEC §5)."""

    name: str
    weights: StageBWeights


def _table2(name: str, st: float, ct: float, so: float, co: float, beta: float) -> Table2Setting:
    weights = StageBWeights(alpha_st=st, alpha_ct=ct, alpha_so=so, alpha_co=co, beta=beta)
    return Table2Setting(name=name, weights=weights)


TABLE2_GRID: tuple[Table2Setting, ...] = (
    _table2("none", 0, 0, 0, 0, 1),
    _table2("same_pair", 1, 0, 1, 0, 1),
    _table2("other_pairs", 0, 1, 0, 1, 1),
    _table2("all", 1, 1, 1, 1, 1),
)
"""The paper's Table 2 grid ``(α_st, α_ct, α_so, α_co, β)`` (SPEC §5), in the paper's order."""

WEIGHTS_BY = ("meaning", "block")
"""How stage B decides "same pair" (SPEC §3): by unordered class pair, or by batch row."""


def _check_stage_b_pairs(i: Tensor, j: Tensor) -> None:
    if i.ndim != 1 or i.shape != j.shape or i.numel() == 0:
        raise ValueError(f"i and j must be non-empty [N], got {tuple(i.shape)}, {tuple(j.shape)}")
    if i.is_floating_point() or j.is_floating_point():
        raise ValueError("i and j must be integer class ids")
    if bool((i == j).any()):
        raise ValueError("stage B pairs two different classes: i and j must differ in every row")


def _block_tables(weights: StageBWeights, device: torch.device) -> tuple[Tensor, Tensor]:
    """The SPEC §3 table as two [3, 3] float64 tables (anchor block × column block, f/r/o):
    entries for columns of the same pair, and for columns of other pairs."""
    st, ct, so, co = weights.alpha_st, weights.alpha_ct, weights.alpha_so, weights.alpha_co
    same = torch.tensor([[1, st, so], [st, 1, so], [1, st, 1]], dtype=torch.float64)  # (3, 3)
    other = torch.tensor([[1, ct, co], [ct, 1, co], [1, ct, 1]], dtype=torch.float64)  # (3, 3)
    return same.to(device), other.to(device)


def _by_meaning(same_order: Tensor, overlay: Tensor, weights: StageBWeights) -> Tensor:
    """[3N, 3N] weights between anchors and columns of the SAME unordered class pair.

    Sequence anchor: the inverted sequence ``α_st``, the overlay ``α_so`` (the same sequence
    is a false negative, masked by the caller). Overlay anchor of row (i, j): ``"x_i before x_j"``
    1, ``"x_j before x_i"`` ``α_st`` (eq. 5–6; an overlay column is a false negative).
    """
    st = torch.full_like(same_order, weights.alpha_st, dtype=torch.float64)  # (3N, 3N)
    one = torch.ones_like(st)  # (3N, 3N)
    to_sequence = torch.where(same_order, one, st)  # (3N, 3N) column is a sequence
    seq_anchor = torch.where(overlay[None, :], one * weights.alpha_so, to_sequence)
    overlay_anchor = torch.where(overlay[None, :], one, to_sequence)
    return torch.where(overlay[:, None], overlay_anchor, seq_anchor)


def stage_b_log_weights(
    i: Tensor,
    j: Tensor,
    weights: StageBWeights,
    *,
    weights_by: str = "meaning",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``log w`` of a stage-B batch ``[f; r; o]`` (SPEC §3 table, paper eq. 4–6).

    Rows are anchors, columns candidates; ``x / y`` = same pair / other pair::

        anchor \\ column   f            r            o
        f                 1            α_st / α_ct  α_so / α_co
        r                 α_st / α_ct  1            α_so / α_co
        o                 1            α_st / α_ct  1

    ``weights_by="meaning"`` (SPEC §3 "Same pair by meaning"): "same pair" is the same
    *unordered class pair*, and within it the weight follows what a column says: for a
    sequence anchor, the temporally inverted sequence gets ``α_st`` and the overlay ``α_so``
    (so with rows (i, j) and (j, i) in one batch, row (j, i)'s forward caption is the anchor's
    inversion, ``α_st``); for an overlay anchor of row (i, j), ``"x_i before x_j"`` gets 1 and
    ``"x_j before x_i"`` ``α_st``. Columns of other pairs use the table's ``α_ct / α_co``
    entries by block. ``weights_by="block"``: the paper's literal table, "same pair" = same
    batch row. In both, false negatives (same event as the positive, SPEC §3) get weight 0 and
    the diagonal (the positives) 1. Text rows against audio columns use the same table.

    Args:
        i: [N] class heard first in the forward clip ``a_i ⊕ a_j``.
        j: [N] class heard second (``j != i``).
        weights: the coefficients (β is not used here).
        weights_by: ``"meaning"`` (default) or ``"block"``.
        dtype: dtype of the result.

    Returns:
        [3N, 3N] ``log w`` on ``i``'s device with ``log 0 = -inf``; 0 on the diagonal.
    """
    if weights_by not in WEIGHTS_BY:
        raise ValueError(f"weights_by must be one of {WEIGHTS_BY}, got {weights_by!r}")
    _check_stage_b_pairs(i, j)
    n, device = i.shape[0], i.device
    block = torch.arange(3, device=device).repeat_interleave(n)  # (3N,) 0 f, 1 r, 2 o
    first, second = torch.cat([i, j, i]), torch.cat([j, i, j])  # (3N,) events, o in row order
    same_order = (first[:, None] == first[None, :]) & (second[:, None] == second[None, :])
    swapped = (first[:, None] == second[None, :]) & (second[:, None] == first[None, :])
    same_pair = same_order | swapped  # (3N, 3N) same unordered class pair
    overlay = block == 2  # (3N,)
    both_seq = ~overlay[:, None] & ~overlay[None, :]  # (3N, 3N)
    both_overlay = overlay[:, None] & overlay[None, :]  # (3N, 3N)
    same_event = (both_seq & same_order) | (both_overlay & same_pair)  # (3N, 3N)
    same_table, other_table = _block_tables(weights, device)
    by_block = other_table[block[:, None], block[None, :]]  # (3N, 3N)
    if weights_by == "meaning":
        table = torch.where(same_pair, _by_meaning(same_order, overlay, weights), by_block)
    else:
        row = torch.arange(3 * n, device=device) % n  # (3N,)
        same_row = row[:, None] == row[None, :]  # (3N, 3N)
        table = torch.where(same_row, same_table[block[:, None], block[None, :]], by_block)
    table = table.masked_fill(same_event, 0.0)  # false negatives (and the diagonal, reset next)
    table = table.fill_diagonal_(1.0)  # (3N, 3N) positives
    return table.log().to(dtype)


def _check_blocks(z_a: Tensor, z_c: Tensor, n: int, n_blocks: int) -> None:
    """z_a and z_c must be ``[n_blocks·N, d]`` for N = ``n``."""
    rows = n_blocks * n
    if z_a.shape[0] != rows or z_c.shape[0] != rows:
        raise ValueError(
            f"expected z_a, z_c [{n_blocks}N, d] with N = {n} pairs, got "
            f"{tuple(z_a.shape)} and {tuple(z_c.shape)}"
        )


def stage_b_loss(
    z_a: Tensor,
    z_c: Tensor,
    logit_scale: Tensor | float,
    *,
    i: Tensor,
    j: Tensor,
    n_classes: int,
    weights: StageBWeights,
    weights_by: str = "meaning",
) -> Tensor:
    """TeminAL B loss ``L_B = L_a2t + β · L_t2a`` (SPEC §3, paper eq. 3–7).

    Both directions use :func:`stage_b_log_weights` (false negatives removed). Each direction
    is the mean over its 3N rows.

    Args:
        z_a: [3N, d] audio ``[A_f; A_r; A_o]``, row k of each block from pair k.
        z_c: [3N, d] texts ``[C_f; C_r; C_o]``.
        logit_scale: ``s``, already exponentiated (see :func:`logits`).
        i: [N] class heard first in the forward clip of pair k.
        j: [N] class heard second.
        n_classes: K (class ids must lie in ``[0, K)``).
        weights: the α/β coefficients.
        weights_by: ``"meaning"`` (default, SPEC §3) or ``"block"`` (the paper's literal table).

    Returns:
        Scalar loss.
    """
    _check_pairs(i, j, n_classes)
    _check_stage_b_pairs(i, j)
    _check_blocks(z_a, z_c, i.shape[0], n_blocks=3)
    sim = logits(z_a, z_c, logit_scale)  # (3N, 3N)
    log_w = stage_b_log_weights(i.to(sim.device), j.to(sim.device), weights,
                                weights_by=weights_by, dtype=sim.dtype)  # (3N, 3N)
    return _both_directions(sim, log_w, beta=weights.beta)


@dataclass(frozen=True, kw_only=True)
class StageAWeights:
    """Coefficients of the stage-A loss (SPEC §3, paper eq. 8–9, 22–26; all 1 in B.3).

    ``alpha_same``: single↔double negatives sharing the single's class; ``alpha_diff``: the
    others; ``beta``: weight of ``L_t2a`` in ``L_A = L_a2t + β_A L_t2a``.
    """

    alpha_same: float = 1.0
    alpha_diff: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        _validate_non_negative(self)


def stage_a_log_weights(
    i: Tensor, j: Tensor, weights: StageAWeights, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``log w`` for a stage-A batch ``[singles; doubles]`` (SPEC §3, eq. 23–24).

    Single anchor: single columns 1; double columns ``α_same`` if the double contains the
    anchor's class, else ``α_diff``. Double anchor: double columns 1; single columns
    ``α_same`` if that single's class is in the double, else ``α_diff``. False negatives (two
    singles of one class, two doubles of one unordered pair) get weight 0.

    Args:
        i: [N] class of single k and first class of double k.
        j: [N] second class of double k.
        weights: the coefficients (β is not used here).
        dtype: dtype of the result.

    Returns:
        [2N, 2N] ``log w`` on ``i``'s device, ``log 0 = -inf``; 0 on the diagonal.
    """
    if i.ndim != 1 or i.shape != j.shape or i.numel() == 0:
        raise ValueError(f"i and j must be non-empty [N], got {tuple(i.shape)}, {tuple(j.shape)}")
    f64 = torch.float64
    # (N, N): contains[k, m] is True when single k's class is in double m
    contains = (i[:, None] == i[None, :]) | (i[:, None] == j[None, :])  # (N, N)
    alpha_same = torch.tensor(weights.alpha_same, dtype=f64, device=i.device)
    alpha_diff = torch.tensor(weights.alpha_diff, dtype=f64, device=i.device)
    single_double = torch.where(contains, alpha_same, alpha_diff)  # (N, N) single rows
    same_class = (i[:, None] == i[None, :]).to(f64)  # (N, N) 1 → false negative
    same_pair = ((i[:, None] == i[None, :]) & (j[:, None] == j[None, :])) | (
        (i[:, None] == j[None, :]) & (j[:, None] == i[None, :])
    )  # (N, N) doubles k and m of one unordered pair
    singles = 1 - same_class  # (N, N)
    doubles = 1 - same_pair.to(f64)  # (N, N)
    table = torch.cat(
        [torch.cat([singles, single_double], dim=1), torch.cat([single_double.T, doubles], dim=1)]
    )  # (2N, 2N)
    return table.fill_diagonal_(1.0).log().to(dtype)


def stage_a_loss(
    z_a: Tensor,
    z_c: Tensor,
    logit_scale: Tensor | float,
    *,
    i: Tensor,
    j: Tensor,
    n_classes: int,
    weights: StageAWeights = StageAWeights(),
) -> Tensor:
    """TeminAL A loss ``L_A = L_a2t + β_A · L_t2a`` (SPEC §3, paper eq. 8–9, 22–26).

    Weights from :func:`stage_a_log_weights` in both directions (false negatives removed).
    Mean over the 2N rows.

    Args:
        z_a: [2N, d] audio ``[loop(a_i) ; a_i ⊕ a_j]`` (singles looped to a double's length).
        z_c: [2N, d] texts ``["single sound of x_i" ; "combined sound of x_i and x_j"]``.
        logit_scale: ``s``, already exponentiated.
        i: [N] class of single k and first class of double k.
        j: [N] second class of double k.
        n_classes: K.
        weights: the coefficients (default all 1, paper B.3).

    Returns:
        Scalar loss.
    """
    _check_pairs(i, j, n_classes)
    if i.numel() == 0:
        raise ValueError("stage A needs at least one pair")
    _check_blocks(z_a, z_c, i.shape[0], n_blocks=2)
    sim = logits(z_a, z_c, logit_scale)  # (2N, 2N)
    log_w = stage_a_log_weights(i.to(sim.device), j.to(sim.device), weights, dtype=sim.dtype)
    return _both_directions(sim, log_w, beta=weights.beta)


# --------------------------------------------------------------------------- plain / T-CLAP


def info_nce(
    z_a: Tensor, z_c: Tensor, logit_scale: Tensor | float, *, events: Tensor | None = None
) -> Tensor:
    """Symmetric InfoNCE ``(L_a2t + L_t2a) / 2`` (CLAP pretraining; replay, SPEC §3).

    Args:
        z_a: [B, d] audio embeddings.
        z_c: [B, d] text embeddings, row k the caption of audio k.
        logit_scale: ``s``, already exponentiated.
        events: optional [B] event ids; columns with the positive's event get weight 0
            (e.g. two clips of one class in a replay batch).

    Returns:
        Scalar loss.
    """
    sim = logits(z_a, z_c, logit_scale)  # (B, B)
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"z_a and z_c must have the same batch size, got {tuple(sim.shape)}")
    log_w = torch.zeros_like(sim)  # (B, B)
    if events is not None:
        if events.shape != (sim.shape[0],):
            raise ValueError(f"events must be [{sim.shape[0]}], got {tuple(events.shape)}")
        log_w = _mask_false_negatives(log_w, events)
    return 0.5 * _both_directions(sim, log_w, beta=1.0)


def tclap_temporal_loss(
    z_a: Tensor, candidates: Sequence[Tensor], logit_scale: Tensor | float
) -> Tensor:
    """T-CLAP's ``L_t`` (seed 002, SPEC §3): per audio, CE over its own candidate captions.

    Args:
        z_a: [N, d] audio embeddings.
        candidates: K >= 2 tensors [N, d]; ``candidates[0][k]`` is audio k's caption (the
            positive), the others its temporal negatives (e.g. the swapped order).
        logit_scale: ``s``, already exponentiated.

    Returns:
        Scalar, mean over the N audios.
    """
    if len(candidates) < 2 or any(c.shape != z_a.shape for c in candidates):
        raise ValueError("candidates must be >= 2 tensors shaped like z_a [N, d]")
    dtype = _compute_dtype(z_a, *candidates, logit_scale)
    with _no_autocast(z_a.device):
        audio = F.normalize(z_a.to(dtype), dim=-1)  # (N, d)
        texts = F.normalize(torch.stack(list(candidates), dim=1).to(dtype), dim=-1)  # (N, K, d)
        sim = _as_scale(logit_scale, dtype) * torch.einsum("nd,nkd->nk", audio, texts)  # (N, K)
    positives = torch.zeros(sim.shape[0], dtype=torch.long, device=sim.device)  # (N,)
    return weighted_info_nce(sim, positives, torch.zeros_like(sim))


def tclap_loss(
    z_a: Tensor,
    z_c: Tensor,
    z_c_swapped: Tensor,
    logit_scale: Tensor | float,
    *,
    i: Tensor,
    j: Tensor,
    n_classes: int,
    lam: float = 0.5,
) -> Tensor:
    """T-CLAP baseline ``L = L_c + λ L_t`` (seed 002, a reading of its abstract; SPEC §3).

    ``L_c``: :func:`info_nce` over ``[A_f; A_o] × [C_f; C_o]`` — forward pairs *and* overlay
    samples with their "while" captions as positives (T-CLAP's mixed-up strategy); columns of
    the positive's event are false negatives (e.g. the overlays of (i, j) and (j, i)).
    ``L_t``: for each forward audio, cross-entropy over {its caption, its temporally swapped
    caption} (:func:`tclap_temporal_loss`, two candidates).

    Args:
        z_a: [2N, d] audio ``[A_f; A_o]``: forward ``a_i ⊕ a_j``, overlay ``a_i ∧ a_j``.
        z_c: [2N, d] texts ``[C_f; C_o]``: ``"x_i before x_j"``, ``"x_i while x_j"``.
        z_c_swapped: [N, d] the swapped captions ``T(C_f)`` = ``"x_j before x_i"``.
        logit_scale: ``s``, already exponentiated.
        i: [N] class heard first in the forward clip of pair k.
        j: [N] class heard second.
        n_classes: K.
        lam: λ >= 0 (0.5 in T-CLAP).

    Returns:
        Scalar loss.
    """
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    _check_pairs(i, j, n_classes)
    _check_stage_b_pairs(i, j)
    n = i.shape[0]
    _check_blocks(z_a, z_c, n, n_blocks=2)
    if z_c_swapped.shape != (n, z_c.shape[1]):
        raise ValueError(f"z_c_swapped must be [N, d] = [{n}, {z_c.shape[1]}], "
                         f"got {tuple(z_c_swapped.shape)}")
    events = stage_b_events(i, j, n_classes=n_classes)  # (3N,) [f; r; o]
    events = torch.cat([events[:n], events[2 * n:]]).to(z_a.device)  # (2N,) [f; o]
    contrastive = info_nce(z_a, z_c, logit_scale, events=events)
    temporal = tclap_temporal_loss(z_a[:n], [z_c[:n], z_c_swapped], logit_scale)
    return contrastive + lam * temporal
