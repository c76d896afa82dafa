"""Base clips in memory and composite clips built on the fly (SPEC §1).

An *audio key* names one clip to feed a model:

- ``"single|a.wav"``: clip ``a`` (Task 1, pretraining, replay);
- ``"span|a.wav|a2.wav"``: ``a ⊕ a2``, two clips of one class — the stage-A single, as long as a
  double, so duration does not tell one sound from two, and no exact repetition either;
- ``"seq|a.wav|b.wav"``: ``a ⊕ b``, ``a`` first;
- ``"mix|a.wav|a2.wav|b.wav|b2.wav"``: ``(a ⊕ a2) ∧ (b ⊕ b2)``, as long as ``a ⊕ b``. The
  overlay is symmetric, so a mix key is CANONICAL: its two halves ``(a, a2)``, ``(b, b2)`` are
  listed sorted, and the trunk cache computes each overlay once.

A repeated clip (``span|a|a``, ``mix|a|a|b|b``) is a loop: only where a split holds one clip
of a class (``pairing: paper``, SPEC §1). The keys of manifest rows: the composites of
:mod:`teminal.data.vocabulary`.

``render`` turns a key into samples with ``teminal.audio.compose``; composite audio is never
written to disk (SPEC §1). The reversed sample of a pair, ``T(a_i ⊕ a_j) = a_j ⊕ a_i``, is the
key ``"seq|b.wav|a.wav"``; ``T`` of a mix is the same mix.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np
from teminal.progress import progress

from teminal.audio import N_CLIPS, RELATIONS, Recipe, compose, read_audio
from teminal.data.base_set import BaseSet

SEP = "|"
DEFAULT_MAX_BYTES = 512 * 2**20  # decoded clips kept in memory by a ClipStore


def audio_key(relation: str, *clips: str) -> str:
    """The key of one clip: ``relation`` in ``teminal.audio.RELATIONS`` and base filenames,
    ``N_CLIPS[relation]`` of them (mix: ``a, a2, b, b2``; its halves are listed sorted)."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if len(clips) != N_CLIPS[relation]:
        raise ValueError(f"relation {relation!r} takes {N_CLIPS[relation]} clip(s), got {clips!r}")
    for p in clips:
        if not isinstance(p, str) or not p or SEP in p:
            raise ValueError(f"clip filename must be a non-empty string free of {SEP!r}: {p!r}")
    if relation == "mix":
        clips = tuple(x for half in sorted([clips[:2], clips[2:]]) for x in half)
    return SEP.join([relation, *clips])


def parse_key(key: str) -> tuple[str, tuple[str, ...]]:
    """Inverse of ``audio_key``: ``(relation, clips)``.

    A mix key whose halves are not sorted is refused: it would be a second name (and a second
    cache entry) for one clip; build keys with ``audio_key``.
    """
    parts = key.split(SEP) if isinstance(key, str) else []
    if not parts or parts[0] not in RELATIONS:
        raise ValueError(f"bad audio key {key!r}: expected 'single|a.wav', 'span|a.wav|a2.wav', "
                         f"'seq|a.wav|b.wav' or 'mix|a.wav|a2.wav|b.wav|b2.wav'")
    want = N_CLIPS[parts[0]]
    if len(parts) != want + 1 or not all(parts[1:]):
        raise ValueError(f"bad audio key {key!r}: relation {parts[0]!r} takes "
                         f"{want} non-empty clip name(s)")
    if parts[0] == "mix" and parts[1:3] > parts[3:5]:
        raise ValueError(f"bad audio key {key!r}: a mix key lists its halves sorted "
                         f"({audio_key('mix', *parts[1:])!r}); build it with audio_key")
    return parts[0], tuple(parts[1:])


def temporal_inverse(key: str) -> str:
    """``T`` on an audio key (SPEC §1): ``seq|a|b`` → ``seq|b|a``; a mix key is its own inverse.

    It swaps the order of the events; it never reverses samples. A single clip (or the
    stage-A ``span`` of one class) has no order.
    """
    relation, clips = parse_key(key)
    if relation in ("single", "span"):
        raise ValueError(f"T needs two events; {key!r} is one sound")
    return key if relation == "mix" else audio_key("seq", clips[1], clips[0])


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
    return compose_key(key, store.__getitem__, recipe)


def compose_key(key: str, read: Callable[[str], np.ndarray], recipe: Recipe) -> np.ndarray:
    """Samples of the clip named by ``key`` from base clips ``read(filename)`` (SPEC §1)."""
    relation, clips = parse_key(key)
    x = [read(c) for c in clips]
    if relation == "mix":  # clips a, a2, b, b2
        return compose(x[0], x[2], relation, recipe, a2=x[1], b2=x[3])
    return compose(x[0], x[1] if len(x) > 1 else None, relation, recipe)
