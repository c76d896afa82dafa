"""nbval is a regression test, not a second smoke run: a committed number changed by hand fails.

``make test`` runs nbval on every committed notebook against its stored outputs (with
``notebooks/sanitize.cfg``); this test edits one number in a copy of a notebook's outputs and
checks that nbval then fails on exactly that cell.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_a_changed_committed_number_fails_nbval(tmp_path):
    nb = nbformat.read(str(ROOT / "notebooks" / "00_data_synthesis.ipynb"), as_version=4)
    target = None
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/plain", "")
            if "stage_b" in text and "samples" in text:  # the manifest counts table
                for mime in ("text/plain", "text/html"):
                    out["data"][mime] = re.sub(r"\b168\b", "169", out["data"][mime], count=1)
                target = index
    assert target is not None, "the counts table is not among the committed outputs"
    path = tmp_path / "00_data_synthesis.ipynb"
    nbformat.write(nb, str(path))
    shutil.copy(ROOT / "notebooks" / "sanitize.cfg", tmp_path / "sanitize.cfg")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(tmp_path / "sanitize.cfg"), "-p", "no:cacheprovider",
         "-q", "--rootdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "1 failed" in proc.stdout and "Cell outputs differ" in proc.stdout
    assert "169" in proc.stdout and "168" in proc.stdout
