"""ESC-50 and any ESC-50-shaped folder: download, validation and loading (SPEC §1).

A base set is a folder with ``meta/esc50.csv`` (columns
``filename,fold,target,category,esc10,src_file,take``) and ``audio/<filename>``: K classes, any
integer fold labels, any integer targets with one category per target, clips of one length and
rate. The label text of a class is its ``category`` with ``_`` replaced by a space (SPEC §1).

- ``load(root)``: any such folder. Targets are re-indexed to ``0..K-1`` in sorted order of the
  original target, which is kept in the column ``source_target``.
- ``load_esc50(root)``: the real ESC-50 only (2000 clips, 50 classes, folds 1..5); an
  ESC-50-shaped folder that is not ESC-50 is refused with how to load it generically.

Both check the table and every audio file and either refuse a damaged copy with a summary of
what is wrong, or, with ``allow_partial=True``, warn with the same summary and drop the bad rows.

Where things live: ``BaseSet``, loading and validation in :mod:`teminal.data.base_set`; the
download (``download``, ``has_valid_copy`` and its steps) in :mod:`teminal.data.download`.
Both are re-exported here, the import path callers use.
"""
from __future__ import annotations

from .base_set import (COLUMNS, ESC50_CLASSES, ESC50_CLIPS, ESC50_FOLDS, ESC50_URL, PROBLEMS,
                       BaseSet, DatasetError, base_name, build_base, check_targets, file_sha1,
                       inspect_audio, load, load_esc50, problem_summary, read_table)
from .download import (check_archive, download, extract, fetch, has_valid_copy, manual_hint,
                       resolve_host)

__all__ = [
    "COLUMNS", "ESC50_CLASSES", "ESC50_CLIPS", "ESC50_FOLDS", "ESC50_URL", "PROBLEMS", "BaseSet",
    "DatasetError", "base_name", "build_base", "check_archive", "check_targets", "download",
    "extract", "fetch", "file_sha1", "has_valid_copy", "inspect_audio", "load", "load_esc50",
    "manual_hint", "problem_summary", "read_table", "resolve_host",
]
