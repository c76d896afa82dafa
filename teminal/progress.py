"""Progress bars for long work (tqdm: a widget in Jupyter, text in a terminal).

Every bar of the library goes through ``progress``, so one switch turns them all off:
``TEMINAL_PROGRESS=0`` (the tests and ``make notebooks`` set it, so a notebook's committed
outputs do not depend on what an earlier test left in the cache).
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def enabled() -> bool:
    return os.environ.get("TEMINAL_PROGRESS", "1") != "0"


def progress(iterable=None, *, disable: bool = False, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, disabled when ``disable`` or ``TEMINAL_PROGRESS=0``."""
    return tqdm(iterable, disable=disable or not enabled(), **kwargs)
