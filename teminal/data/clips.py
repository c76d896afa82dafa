"""Base clips in memory and composite clips built on the fly (SPEC §1).

An *audio key* names one clip to feed a model: ``"single|a.wav"``, ``"seq|a.wav|b.wav"``
(``a ⊕ b``, a first) or ``"mix|a.wav|b.wav"`` (``a ∧ b``, tiled to the length of ``a ⊕ b``).
``render`` turns a key into samples with ``teminal.audio.compose``; composite audio is never
written to disk (SPEC §1). The reversed sample of a pair, ``T(a_i ⊕ a_j) = a_j ⊕ a_i``, is simply
the key ``"seq|b.wav|a.wav"``.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from tqdm.auto import tqdm

from teminal.audio import RELATIONS, Recipe, compose, read_audio
from teminal.data.esc50 import BaseSet

SEP = "|"


def audio_key(relation: str, clip_i: str, clip_j: str | None = None) -> str:
    """The key of one clip: ``relation`` in ``teminal.audio.RELATIONS`` and base filenames."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if (relation == "single") != (clip_j is None):
        raise ValueError(f"relation {relation!r} takes {'one clip' if relation == 'single' else 'two clips'}"
                         f", got clip_i={clip_i!r}, clip_j={clip_j!r}")
    parts = [clip_i] if clip_j is None else [clip_i, clip_j]
    for p in parts:
        if not p or SEP in p:
            raise ValueError(f"clip filename must be non-empty and free of {SEP!r}: {p!r}")
    return SEP.join([relation, *parts])


def parse_key(key: str) -> tuple[str, str, str | None]:
    """Inverse of ``audio_key``: ``(relation, clip_i, clip_j or None)``."""
    parts = key.split(SEP) if isinstance(key, str) else []
    if not parts or parts[0] not in RELATIONS:
        raise ValueError(f"bad audio key {key!r}: expected 'single|a.wav', 'seq|a.wav|b.wav' "
                         f"or 'mix|a.wav|b.wav'")
    want = 2 if parts[0] == "single" else 3
    if len(parts) != want or not all(parts[1:]):
        raise ValueError(f"bad audio key {key!r}: relation {parts[0]!r} takes "
                         f"{want - 1} non-empty clip name(s)")
    return parts[0], parts[1], (parts[2] if want == 3 else None)


def temporal_inverse(key: str) -> str:
    """``T`` on an audio key (SPEC §1): ``seq|a|b`` → ``seq|b|a``, ``mix|a|b`` → ``mix|b|a``.

    It swaps the order of the events; it never reverses samples. A single clip has no order.
    """
    relation, clip_i, clip_j = parse_key(key)
    if clip_j is None:
        raise ValueError(f"T needs two events; {key!r} is a single clip")
    return audio_key(relation, clip_j, clip_i)


class ClipStore:
    """Base clips of ``base`` read lazily at ``sample_rate`` and kept in memory.

    ``store[filename]`` → mono float32 samples; ``store.preload(filenames)`` reads many with a
    progress bar. Unknown filenames raise ``KeyError`` naming the base set.
    """

    def __init__(self, base: BaseSet, *, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.base = base
        self.sample_rate = int(sample_rate)
        self._paths = dict(zip(base.clips["filename"], base.clips["path"]))
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, filename: str) -> np.ndarray:
        clip = self._cache.get(filename)
        if clip is None:
            if filename not in self._paths:
                raise KeyError(f"clip {filename!r} is not in base set {self.base.name} "
                               f"at {self.base.root}")
            clip = read_audio(self._paths[filename], sample_rate=self.sample_rate)
            clip.setflags(write=False)  # shared by every composite: never modified in place
            self._cache[filename] = clip
        return clip

    def __contains__(self, filename: object) -> bool:
        return filename in self._paths

    def __len__(self) -> int:
        return len(self._cache)

    def preload(self, filenames: Iterable[str]) -> None:
        """Read every clip of ``filenames`` not yet in memory."""
        todo = [f for f in dict.fromkeys(filenames) if f not in self._cache]
        for f in tqdm(todo, desc="clips", unit="clip", disable=not todo):
            self[f]


def render(key: str, store: ClipStore, recipe: Recipe) -> np.ndarray:
    """Samples of the clip named by ``key``, composed with ``recipe`` (SPEC §1)."""
    if recipe.sample_rate != store.sample_rate:
        raise ValueError(f"recipe.sample_rate={recipe.sample_rate} differs from the store's "
                         f"sample_rate={store.sample_rate}")
    relation, clip_i, clip_j = parse_key(key)
    b = None if clip_j is None else store[clip_j]
    return compose(store[clip_i], b, relation, recipe)
