"""Base clips in memory and composite clips built on the fly (SPEC §1).

An *audio key* names one clip to feed a model:

- ``"single|a.wav"``: clip ``a`` (Task 1, pretraining, replay);
- ``"loop|a.wav"``: clip ``a`` looped to twice its length, the stage-A single (as long as a
  double, so duration does not tell one sound from two);
- ``"seq|a.wav|b.wav"``: ``a ⊕ b``, ``a`` first;
- ``"mix|a.wav|b.wav"``: ``a ∧ b`` tiled to the length of ``a ⊕ b``. The overlay is symmetric,
  so a mix key is CANONICAL: ``audio_key("mix", b, a) == audio_key("mix", a, b)`` with the clip
  names sorted, and the trunk cache computes each overlay once.

``render`` turns a key into samples with ``teminal.audio.compose``; composite audio is never
written to disk (SPEC §1). The reversed sample of a pair, ``T(a_i ⊕ a_j) = a_j ⊕ a_i``, is the
key ``"seq|b.wav|a.wav"``; ``T`` of a mix is the same mix.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
from teminal.progress import progress

from teminal.audio import ONE_CLIP, RELATIONS, Recipe, compose, read_audio
from teminal.data.esc50 import BaseSet

SEP = "|"
DEFAULT_MAX_BYTES = 512 * 2**20  # decoded clips kept in memory by a ClipStore


def audio_key(relation: str, clip_i: str, clip_j: str | None = None) -> str:
    """The key of one clip: ``relation`` in ``teminal.audio.RELATIONS`` and base filenames.

    ``single`` and ``loop`` take one clip, ``seq`` and ``mix`` two; a ``mix`` key lists its two
    clips sorted (canonical: the overlay does not depend on their order).
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    one = relation in ONE_CLIP
    if one != (clip_j is None):
        raise ValueError(f"relation {relation!r} takes {'one clip' if one else 'two clips'}"
                         f", got clip_i={clip_i!r}, clip_j={clip_j!r}")
    parts = [clip_i] if clip_j is None else [clip_i, clip_j]
    for p in parts:
        if not isinstance(p, str) or not p or SEP in p:
            raise ValueError(f"clip filename must be a non-empty string free of {SEP!r}: {p!r}")
    if relation == "mix":
        parts = sorted(parts)
    return SEP.join([relation, *parts])


def parse_key(key: str) -> tuple[str, str, str | None]:
    """Inverse of ``audio_key``: ``(relation, clip_i, clip_j or None)``.

    A mix key whose clips are not sorted is refused: it would be a second name (and a second
    cache entry) for one clip; build keys with ``audio_key``.
    """
    parts = key.split(SEP) if isinstance(key, str) else []
    if not parts or parts[0] not in RELATIONS:
        raise ValueError(f"bad audio key {key!r}: expected 'single|a.wav', 'loop|a.wav', "
                         f"'seq|a.wav|b.wav' or 'mix|a.wav|b.wav'")
    want = 2 if parts[0] in ONE_CLIP else 3
    if len(parts) != want or not all(parts[1:]):
        raise ValueError(f"bad audio key {key!r}: relation {parts[0]!r} takes "
                         f"{want - 1} non-empty clip name(s)")
    if parts[0] == "mix" and parts[1] > parts[2]:
        raise ValueError(f"bad audio key {key!r}: a mix key lists its clips sorted "
                         f"({audio_key('mix', parts[1], parts[2])!r}); build it with audio_key")
    return parts[0], parts[1], (parts[2] if want == 3 else None)


def temporal_inverse(key: str) -> str:
    """``T`` on an audio key (SPEC §1): ``seq|a|b`` → ``seq|b|a``; a mix key is its own inverse.

    It swaps the order of the events; it never reverses samples. A single clip has no order.
    """
    relation, clip_i, clip_j = parse_key(key)
    if clip_j is None:
        raise ValueError(f"T needs two events; {key!r} is a single clip")
    return audio_key(relation, clip_j, clip_i)


class ClipStore:
    """Base clips of ``base`` read lazily at ``sample_rate``, an LRU bounded by ``max_bytes``.

    ``store[filename]`` → mono float32 samples (read-only). Decoded clips stay in memory until
    their total size would pass ``max_bytes`` (default 512 MiB); the least recently used are
    then dropped and read from disk again on the next request, so memory does not grow with
    the number of pairs. ``len(store)`` / ``store.nbytes``: clips / bytes in memory now.
    ``store.preload(filenames)`` reads many with a progress bar (those beyond the bound are
    read and dropped). Unknown filenames raise ``KeyError`` naming the base set.
    """

    def __init__(self, base: BaseSet, *, sample_rate: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.base = base
        self.sample_rate = int(sample_rate)
        self.max_bytes = int(max_bytes)
        self._paths = dict(zip(base.clips["filename"], base.clips["path"]))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self.reads = 0  # files decoded so far (misses)

    def __getitem__(self, filename: str) -> np.ndarray:
        clip = self._cache.get(filename)
        if clip is not None:
            self._cache.move_to_end(filename)
            return clip
        if filename not in self._paths:
            raise KeyError(f"clip {filename!r} is not in base set {self.base.name} "
                           f"at {self.base.root}")
        clip = read_audio(self._paths[filename], sample_rate=self.sample_rate)
        clip.setflags(write=False)  # shared by every composite: never modified in place
        self.reads += 1
        self._keep(filename, clip)
        return clip

    def _keep(self, filename: str, clip: np.ndarray) -> None:
        """Add ``clip``, then drop the least recently used until within ``max_bytes``."""
        if clip.nbytes > self.max_bytes:
            return
        self._cache[filename] = clip
        self._nbytes += clip.nbytes
        while self._nbytes > self.max_bytes:
            _, old = self._cache.popitem(last=False)
            self._nbytes -= old.nbytes

    def __contains__(self, filename: object) -> bool:
        return filename in self._paths

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def nbytes(self) -> int:
        """Bytes of decoded clips held now (at most ``max_bytes``)."""
        return self._nbytes

    def preload(self, filenames: Iterable[str]) -> None:
        """Read every clip of ``filenames`` not yet in memory."""
        todo = [f for f in dict.fromkeys(filenames) if f not in self._cache]
        for f in progress(todo, desc="clips", unit="clip", disable=not todo):
            self[f]


def render(key: str, store: ClipStore, recipe: Recipe) -> np.ndarray:
    """Samples of the clip named by ``key``, composed with ``recipe`` (SPEC §1)."""
    if recipe.sample_rate != store.sample_rate:
        raise ValueError(f"recipe.sample_rate={recipe.sample_rate} differs from the store's "
                         f"sample_rate={store.sample_rate}")
    relation, clip_i, clip_j = parse_key(key)
    b = None if clip_j is None else store[clip_j]
    return compose(store[clip_i], b, relation, recipe)
