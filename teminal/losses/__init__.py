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
:func:`stage_b_events`, :func:`stage_a_events`, :class:`StageBWeights`, :data:`SETTING_FIELDS`,
:data:`TABLE2_GRID`, :data:`WEIGHTS_BY`, :func:`stage_b_log_weights`, :func:`stage_b_loss`,
:class:`StageAWeights`, :func:`stage_a_log_weights`, :func:`stage_a_loss`, :func:`info_nce`,
:func:`tclap_temporal_loss`, :func:`tclap_loss`.

Where things live: :mod:`.core` (weighted InfoNCE, logits, false negatives, event ids),
:mod:`.stage_a` (stage-A weights and loss), :mod:`.stage_b` (stage-B weights, the Table 2
grid, loss), :mod:`.tclap` (plain InfoNCE and the T-CLAP baseline). Import from
``teminal.losses``; the submodules are an implementation detail.
"""
from __future__ import annotations

from .core import false_negative_mask, logits, stage_a_events, stage_b_events, weighted_info_nce
from .stage_a import StageAWeights, stage_a_log_weights, stage_a_loss
from .stage_b import (SETTING_FIELDS, TABLE2_GRID, WEIGHTS_BY, StageBWeights, Table2Setting,
                      stage_b_log_weights, stage_b_loss)
from .tclap import info_nce, tclap_loss, tclap_temporal_loss

__all__ = [
    "SETTING_FIELDS",
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
