"""Sanity gates (SPEC §6): a run that cannot mean anything stops with a message.

``SanityError`` is raised by the library wherever a result would be meaningless — a training
split smaller than one batch, an evaluation set with fewer than ``MIN_EVAL_PAIRS`` unordered
class pairs, a class subset under ``MIN_CLASSES`` classes, an embedded backbone that learned
nothing in pretraining. The message names the split or parameter, its size and the fix.
"""
from __future__ import annotations

import math

MIN_CLASSES = 3  # a class subset under 3 classes gives no meaningful pair tasks
MIN_EVAL_PAIRS = 10  # unordered class pairs of a ZSTE evaluation set (intervals need clusters)
ZERO_SHOT_FACTOR = 2.0  # pretraining must reach this multiple of chance on its training singles


class SanityError(ValueError):
    """A configuration or a result that cannot mean anything (SPEC §6); the message says why."""


class NonFiniteLoss(SanityError):
    """A training or validation loss became NaN or ±inf: the run stops at that step (SPEC §6)."""


def check_finite_loss(values: list[float], *, first_step: int, where: str, split: str,
                      settings: str) -> None:
    """``NonFiniteLoss`` at the first non-finite value of ``values`` (losses of consecutive
    optimizer steps from ``first_step``; one per epoch for ``split="val"``), naming the step,
    ``where`` (stage and epoch), the optimisation ``settings`` and the parameters to look at."""
    bad = next((k for k, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is None:
        return
    at = f"optimizer step {first_step + bad}" if split == "train" else f"step {first_step}"
    raise NonFiniteLoss(
        f"{where}: the {split} loss is {values[bad]} at {at} ({settings}); training stopped "
        "there and nothing of this epoch was saved. Likely cause: a learning rate too high for "
        "this stage (lower it: -p stage_a.lr / stage_b.lr / pretrain.lr / "
        "ablations.order_lr), no gradient clipping (-p train.grad_clip), bf16 overflow "
        "(-p train.bf16=false), or non-finite input data")
