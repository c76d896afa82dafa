"""Weighted InfoNCE core, logits, false negatives and event ids (SPEC §3).

The conventions every loss follows (logit scale, mean over rows, float32 arithmetic with
autocast off, false negatives at weight 0) are stated in :mod:`teminal.losses`. Also here: the
argument checks the stage losses share (``_check_pairs``, ``_check_blocks``,
``_validate_non_negative``), private to the ``teminal.losses`` package.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import fields

import torch
import torch.nn.functional as F
from torch import Tensor


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


# --------------------------------------------------------------------------- checks


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


def _check_blocks(z_a: Tensor, z_c: Tensor, n: int, n_blocks: int) -> None:
    """z_a and z_c must be ``[n_blocks·N, d]`` for N = ``n``."""
    rows = n_blocks * n
    if z_a.shape[0] != rows or z_c.shape[0] != rows:
        raise ValueError(
            f"expected z_a, z_c [{n_blocks}N, d] with N = {n} pairs, got "
            f"{tuple(z_a.shape)} and {tuple(z_c.shape)}"
        )
