"""TeminAL stage B: α/β weights, the Table 2 grid, ``log w`` of a batch, the loss (SPEC §3).

A stage-B batch is ``[f; r; o]`` (forward, reversed, overlay) of N class pairs; see
:mod:`teminal.losses` for the conventions shared by every loss.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import torch
from torch import Tensor

from .core import _both_directions, _check_blocks, _check_pairs, _validate_non_negative, logits


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

    @classmethod
    def from_setting(cls, setting) -> "StageBWeights":
        """``(α_st, α_ct, α_so, α_co, β)`` (a configuration's ``Setting``) → weights."""
        if len(setting) != len(SETTING_FIELDS):
            raise ValueError(f"a setting is {SETTING_FIELDS}, got {tuple(setting)}")
        return cls(**dict(zip(SETTING_FIELDS, (float(v) for v in setting))))

    @property
    def setting(self) -> tuple[float, ...]:
        """``(α_st, α_ct, α_so, α_co, β)``: how configurations and table rows spell it."""
        return astuple(self)


SETTING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StageBWeights))
"""The order of a setting tuple ``(α_st, α_ct, α_so, α_co, β)`` (SPEC §3, §5 Table 2)."""


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
