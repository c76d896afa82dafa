"""Plain symmetric InfoNCE (CLAP pretraining, replay) and the T-CLAP baseline loss (SPEC §3).

See :mod:`teminal.losses` for the conventions shared by every loss.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .core import (_as_scale, _both_directions, _check_blocks, _check_pairs, _compute_dtype,
                   _mask_false_negatives, _no_autocast, logits, stage_b_events, weighted_info_nce)
from .stage_b import _check_stage_b_pairs


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
