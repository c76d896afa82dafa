"""TeminAL stage A: single vs combined sounds, weights and loss (SPEC §3, Stage A).

A stage-A batch is ``[singles; doubles]`` of N class pairs; see :mod:`teminal.losses` for the
conventions shared by every loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .core import _both_directions, _check_blocks, _check_pairs, _validate_non_negative, logits


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
