"""On-disk cache of frozen-trunk outputs (SPEC §2: the trunk is eval-mode, a pure function of
its input, so its output may be computed once).

Layout (``<key>`` = ``backbone.cache_key()``: trunk weights, trunk preprocessing, tokenizer)::

    root/<key>/audio-<h>/     audio features; h = audio_entry_hash(recipe, base_fingerprint, dtype)
    root/<key>/text-<dtype>/  text-trunk features, shared by every recipe and base set

The audio key covers every ``Recipe`` field (``asdict``, whatever fields it has), the base
set's content fingerprint (the clips a key like ``seq|a.wav|b.wav`` names) and the storage
dtype; text features depend only on the backbone and the dtype, so captions are computed once
for all recipes and base sets. Changing any one of these never reuses a stale entry. Each
folder holds ``meta.json`` (what its key covers, human readable), an append-only set of shard
files (``<uuid>.pt``: per field, the keys, one flat tensor and the shapes, see ``pack``;
thousands of small tensors would make loading slow) and ``index.json`` (``{key: {"shard":
name, "fields": [...]}}``). Tensors are stored as ``dtype`` (float16 by default) and
returned as float32. Every file is written atomically and every shard carries a sha256 trailer
(``teminal.integrity``, SPEC §6): a shard that is missing, unreadable, without a checksum or
whose content does not match it (a flipped sign, NaN written over it) is a ``TeminalWarning``
naming the file, its entries are dropped and recomputed, never used. Writers of one folder take
turns under a file lock (``.lock``: new shard + index merge), so concurrent runs keep the index
consistent; shards no index entry references (a superseded or damaged one, or one a crashed
writer left) are deleted.

Memory: the entries of one ``audio`` call are held only during that call (the shards it
needs are read from disk, the result is returned, and they are dropped), so a caller that asks
in chunks (``features.build_bank``) holds at most one chunk; the same holds for text. Missing audio
is rendered one clip at a time and encoded in batches of ``batch_size`` clips of one length;
at most ``2 · batch_size`` rendered waveforms are held at once (never a list of all of them),
and each batch's features are written to a shard before the next batch is rendered.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .audio import Recipe
from .integrity import file_lock, load_torch, save_torch, verify_file, write_atomic
from .progress import progress as progress_bar
from .models.base import AudioFeatures, Backbone, TextFeatures
from .warn import warn


def fingerprint(tensors: Iterable[tuple[str, torch.Tensor]], *, extra: dict) -> str:
    """A short hash of named tensors (their bytes, dtypes, shapes) and a JSON-able ``extra``."""
    h = hashlib.sha1()  # an identity check, not a security one; fast on large weights
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    for name, t in tensors:
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy())
    return h.hexdigest()[:20]


def pack(items: dict[str, dict[str, torch.Tensor]]) -> dict:
    """``{key: {field: tensor}}`` → ``{"format": 2, "fields": {field: {"keys", "flat", "shapes"}}}``:
    each field's tensors flattened and concatenated (one tensor to unpickle, not thousands)."""
    fields: dict[str, dict] = {}
    for name in sorted({f for v in items.values() for f in v}):
        keys = [k for k, v in items.items() if name in v]
        parts = [items[k][name] for k in keys]
        if len({t.dtype for t in parts}) != 1 or len({t.dim() for t in parts}) != 1:
            raise ValueError(f"cache field {name!r} mixes dtypes or ranks across entries")
        fields[name] = {"keys": keys,
                        "flat": torch.cat([t.reshape(-1) for t in parts]),
                        "shapes": torch.tensor([list(t.shape) for t in parts], dtype=torch.int64)}
    return {"format": 2, "fields": fields}


def unpack(blob: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of ``pack`` (views into the flat tensors); a shard written before the packed
    format (``{key: {field: tensor}}``) is returned as it is."""
    if blob.get("format") != 2:
        return blob
    items: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    for name, f in blob["fields"].items():
        shapes = f["shapes"].tolist()
        sizes = [int(np.prod(s)) for s in shapes]  # np.prod([]) = 1 for scalars
        for key, part, shape in zip(f["keys"], torch.split(f["flat"], sizes), shapes):
            items[key][name] = part.view(shape)
    return dict(items)


class _ShardStore:
    """Append-only shards of ``{key: {field: tensor}}`` plus an index, under a file lock."""

    def __init__(self, path: Path, dtype: torch.dtype) -> None:
        self.path, self.dtype = path, dtype
        path.mkdir(parents=True, exist_ok=True)
        self.lock = path / ".lock"
        with file_lock(self.lock):
            self.index: dict[str, dict] = self._read_index()
            self._clean()
        self.mem: dict[str, dict[str, torch.Tensor]] = {}
        self.dropped: dict[str, str] = {}  # key → the damaged shard it pointed to

    def _read_index(self) -> dict[str, dict]:
        f = self.path / "index.json"
        if not f.exists():
            return {}
        try:
            return json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            return {}  # an unreadable index: everything is recomputed

    def _clean(self) -> None:
        """Delete shards (and stale temporary files) the index does not reference; call
        under the lock (a writer holds it from its shard's write to its index update)."""
        used = {entry["shard"] for entry in self.index.values()}
        for f in self.path.glob("*.pt"):
            if f.name not in used:
                f.unlink(missing_ok=True)
        for f in self.path.glob(".*.tmp"):
            f.unlink(missing_ok=True)

    def has(self, key: str, fields: tuple[str, ...]) -> bool:
        entry = self.index.get(key)
        return entry is not None and all(f in entry["fields"] for f in fields)

    def _read_shard(self, shard: str) -> dict:
        """A shard's entries, or {} (with a warning naming it) when it is missing, damaged
        or unverifiable."""
        path = self.path / shard
        try:
            if verify_file(path) is not True:
                raise ValueError("no checksum, or its content does not match it")
            return unpack(load_torch(path, weights_only=True, what="cache shard"))
        except Exception as exc:  # noqa: BLE001 — any damage: recompute
            warn(f"trunk cache shard {path} is damaged or unverifiable ({exc}); its entries "
                 "are recomputed")
            return {}

    def load(self, keys: Iterable[str]) -> None:
        """Bring the shards holding ``keys`` into memory; drop entries of broken shards."""
        shards = {self.index[k]["shard"] for k in keys
                  if k in self.index and k not in self.mem}
        if not shards:
            return
        by_shard = defaultdict(list)
        for key, entry in self.index.items():
            by_shard[entry["shard"]].append(key)
        for shard in sorted(shards):
            blob = self._read_shard(shard)
            for key in by_shard[shard]:
                if key in blob:
                    self.mem[key] = blob[key]
                else:
                    del self.index[key]
                    self.dropped[key] = shard

    def put(self, items: dict[str, dict[str, torch.Tensor]]) -> None:
        """Write one new shard and point the index at it (under the folder's lock)."""
        if not items:
            return
        for field in (f for v in items.values() for f in v.values()):
            if not torch.isfinite(field).all():
                raise ValueError(f"trunk output does not fit {self.dtype} (inf/nan); build the "
                                 "TrunkCache with dtype=torch.float32")
        shard = f"{uuid.uuid4().hex}.pt"
        with file_lock(self.lock):
            save_torch(pack(items), self.path / shard)
            current = self._read_index()  # what other writers added meanwhile
            for key, bad in self.dropped.items():  # unless another writer replaced it
                if current.get(key, {}).get("shard") == bad:
                    del current[key]
            self.dropped.clear()
            for key, fields in items.items():
                current[key] = {"shard": shard, "fields": sorted(fields)}
                self.mem[key] = fields
            self.index = current
            write_atomic(self.path / "index.json", lambda p: p.write_text(json.dumps(current)))
            self._clean()


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` → ``"float16"`` (folder names and meta.json)."""
    return str(dtype).removeprefix("torch.")


def audio_entry_hash(recipe: Recipe, base_fingerprint: str, dtype: torch.dtype) -> str:
    """The ``h`` of ``audio-<h>/``: every field of ``recipe``, the base set's content
    fingerprint and the storage dtype (SPEC §2)."""
    blob = json.dumps(_audio_covers(recipe, base_fingerprint, dtype), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _audio_covers(recipe: Recipe, base_fingerprint: str, dtype: torch.dtype) -> dict:
    return {"recipe": asdict(recipe), "base_fingerprint": base_fingerprint,
            "dtype": dtype_name(dtype)}


def _write_meta(folder: Path, info: dict) -> None:
    """``folder/meta.json`` once (an existing one is kept: never overwrite earlier results)."""
    meta = folder / "meta.json"
    if not meta.exists():
        write_atomic(meta, lambda p: p.write_text(json.dumps(info, indent=1, default=str)))


class TrunkCache:
    """Frozen-trunk features on disk: audio under ``root/<backbone.cache_key()>/audio-<h>/``,
    text under ``root/<backbone.cache_key()>/text-<dtype>/`` (SPEC §2; see the module docstring).

    ``audio(keys, render, frames=)`` and ``text(texts)`` return features in the order asked
    (duplicates allowed), computing only the missing ones on ``device`` in batches of
    ``batch_size``. ``base_fingerprint`` is the content fingerprint of the base set whose clips
    the audio keys name (``BaseSet.fingerprint``). The key is taken when the cache is built:
    build a new ``TrunkCache`` after changing the trunk weights (e.g. after
    ``TinyClap.pretraining``). Features are returned on ``device`` as float32.
    """

    def __init__(self, *, root: str | Path, backbone: Backbone, recipe: Recipe,
                 base_fingerprint: str, device: str | torch.device = "cpu", batch_size: int = 64,
                 dtype: torch.dtype = torch.float16, progress: bool = True) -> None:
        if recipe.sample_rate != backbone.sample_rate:
            raise ValueError(f"recipe.sample_rate={recipe.sample_rate} but the backbone expects "
                             f"{backbone.sample_rate} Hz audio; build the Recipe at its rate")
        if not isinstance(base_fingerprint, str) or not base_fingerprint:
            raise ValueError(f"base_fingerprint must be a non-empty string, got {base_fingerprint!r}; "
                             "pass the base set's content fingerprint (BaseSet.fingerprint)")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch dtype (e.g. torch.float16), got {dtype!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backbone, self.recipe, self.device = backbone, recipe, torch.device(device)
        self.base_fingerprint = base_fingerprint
        self.batch_size, self.dtype, self.progress = int(batch_size), dtype, progress
        self.key = backbone.cache_key()
        folder = Path(root) / self.key
        self.audio_dir = folder / f"audio-{audio_entry_hash(recipe, base_fingerprint, dtype)}"
        self.text_dir = folder / f"text-{dtype_name(dtype)}"
        self._audio = _ShardStore(self.audio_dir, dtype)
        self._text = _ShardStore(self.text_dir, dtype)
        backbone_info = {"backbone": type(backbone).__name__, "cache_key": self.key}
        _write_meta(self.audio_dir, {
            "kind": "audio", **backbone_info, **_audio_covers(recipe, base_fingerprint, dtype),
            "covers": "frozen audio-trunk features of clips rendered from the base set with this "
                      "fingerprint by this recipe, stored as this dtype (SPEC §2)"})
        _write_meta(self.text_dir, {
            "kind": "text", **backbone_info, "dtype": dtype_name(dtype),
            "covers": "frozen text-trunk features (tokenizer + text trunk of this backbone), "
                      "stored as this dtype; shared by every recipe and base set (SPEC §2)"})

    # ---- audio ------------------------------------------------------------------------
    def audio(self, keys: list[str], render: Callable[[str], np.ndarray], *,
              frames: bool) -> AudioFeatures:
        """Features of ``keys`` in order; ``render(key)`` gives the waveform of a missing key.

        With ``frames=True`` every key must have the same duration (frames are not padded).
        """
        keys = list(keys)
        fields = ("pooled", "frames") if frames else ("pooled",)
        self._audio.load(keys)
        missing = list(dict.fromkeys(k for k in keys if not self._audio.has(k, fields)))
        if missing:
            self._compute_audio(missing, render, frames)
        rows = [self._audio.mem[k] for k in keys]
        if not rows:
            raise ValueError("TrunkCache.audio needs at least one key")
        pooled = torch.stack([r["pooled"] for r in rows]).float()  # (B, C)
        fr = None
        if frames:
            lengths = {r["frames"].shape[0] for r in rows}
            if len(lengths) > 1:
                raise ValueError(f"frames of different lengths {sorted(lengths)} in one request: "
                                 "ask for clips of one duration at a time (frames are not padded)")
            fr = torch.stack([r["frames"] for r in rows]).float()  # (B, T, C)
        self._audio.mem.clear()  # the caller holds what it asked for; memory stays bounded
        return AudioFeatures(pooled=pooled, frames=fr).to(self.device)

    def _compute_audio(self, keys: list[str], render: Callable[[str], np.ndarray],
                       frames: bool) -> None:
        """Render ``keys`` one at a time and encode them in batches of one length; at most
        ``2 · batch_size`` waveforms wait at once (the fullest bucket is flushed first)."""
        buckets: dict[int, list[tuple[str, np.ndarray]]] = defaultdict(list)
        bar = progress_bar(total=len(keys), desc="trunk cache: audio", unit="clip",
                   disable=not self.progress)
        for key in keys:
            wave = np.asarray(render(key), dtype=np.float32)
            if wave.ndim != 1 or wave.size == 0:
                raise ValueError(f"render({key!r}) must return a non-empty 1-D array, "
                                 f"got shape {wave.shape}")
            buckets[wave.size].append((key, wave))
            if (len(buckets[wave.size]) == self.batch_size
                    or sum(map(len, buckets.values())) >= 2 * self.batch_size):
                self._run_audio(buckets.pop(max(buckets, key=lambda n: len(buckets[n]))), frames, bar)
        for bucket in buckets.values():
            self._run_audio(bucket, frames, bar)
        bar.close()

    def _run_audio(self, batch: list[tuple[str, np.ndarray]], frames: bool, bar) -> None:
        wave = torch.from_numpy(np.stack([w for _, w in batch])).to(self.device)  # (B, S)
        with torch.no_grad():
            feats = self.backbone.audio_trunk(wave, frames=frames)
        items = {}
        for i, (key, _) in enumerate(batch):
            item = {"pooled": feats.pooled[i].detach().to("cpu", self.dtype).clone()}
            if frames:
                item["frames"] = feats.frames[i].detach().to("cpu", self.dtype).clone()
            items[key] = item
        self._audio.put(items)
        bar.update(len(batch))

    # ---- text -------------------------------------------------------------------------
    def text(self, texts: list[str]) -> TextFeatures:
        """Text-trunk features of ``texts`` in order, padded (zeros, mask 0) to the longest."""
        texts = [str(t) for t in texts]
        if not texts:
            raise ValueError("TrunkCache.text needs at least one text")
        self._text.load(texts)
        missing = list(dict.fromkeys(t for t in texts if not self._text.has(t, ("hidden",))))
        bar = progress_bar(total=len(missing), desc="trunk cache: text", unit="text",
                   disable=not self.progress or not missing)
        for k in range(0, len(missing), self.batch_size):
            chunk = missing[k:k + self.batch_size]
            with torch.no_grad():
                feats = self.backbone.text_trunk(chunk)
            items = {}
            for i, t in enumerate(chunk):
                mask = feats.mask[i].bool()
                n = int(mask.sum())
                if not mask[:n].all():
                    raise ValueError("the text trunk must pad on the right (mask 1…1 0…0)")
                items[t] = {"hidden": feats.hidden[i, :n].detach().to("cpu", self.dtype).clone()}
            self._text.put(items)
            bar.update(len(chunk))
        bar.close()
        rows = [self._text.mem[t]["hidden"] for t in texts]
        length = max(r.shape[0] for r in rows)
        hidden = torch.zeros(len(rows), length, rows[0].shape[1])  # (B, L, H)
        mask = torch.zeros(len(rows), length, dtype=torch.long)  # (B, L)
        for i, r in enumerate(rows):
            hidden[i, : r.shape[0]] = r.float()
            mask[i, : r.shape[0]] = 1
        self._text.mem.clear()  # the caller holds what it asked for
        return TextFeatures(hidden=hidden, mask=mask).to(self.device)
