"""Sanity gates (SPEC §6): a run that cannot mean anything stops with a message.

``SanityError`` is raised by the library wherever a result would be meaningless — a training
split smaller than one batch, an evaluation set with fewer than ``MIN_EVAL_PAIRS`` unordered
class pairs, a class subset under ``MIN_CLASSES`` classes, an embedded backbone that learned
nothing in pretraining. The message names the split or parameter, its size and the fix.
"""
from __future__ import annotations

MIN_CLASSES = 3  # a class subset under 3 classes gives no meaningful pair tasks
MIN_EVAL_PAIRS = 10  # unordered class pairs of a ZSTE evaluation set (intervals need clusters)
ZERO_SHOT_FACTOR = 2.0  # pretraining must reach this multiple of chance on its training singles


class SanityError(ValueError):
    """A configuration or a result that cannot mean anything (SPEC §6); the message says why."""
