"""The CompA-order reader and its Winoground scoring (SPEC §4), on a small folder generated in
the released layout (``Sreyan88/CompA``: benchmark CSV + CompA_order_files)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from my_models import TONES

from teminal.audio import write_audio
from teminal.eval.compa import COLUMNS, read_compa_order, score_compa_order
from teminal.eval.specs import load_model

RATE = 16000


def _tone(name: str, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * TONES[name] * t)).astype(np.float32)


@pytest.fixture
def compa_folder(tmp_path):
    """One item per unordered tone pair: both orders as wav files, CompA-style captions."""
    audio = tmp_path / "CompA_order_files"
    audio.mkdir()
    rows = []
    for n, (x, y) in enumerate(itertools.combinations(TONES, 2)):
        write_audio(audio / f"{n}_fwd.wav", np.concatenate([_tone(x), _tone(y)]), RATE)
        write_audio(audio / f"{n}_rev.wav", np.concatenate([_tone(y), _tone(x)]), RATE)
        rows.append({"pair_file": f"{n}_fwd.wav", "reversed_pair_file": f"{n}_rev.wav",
                     "pair_caption": f"a {x} before {y} tone",
                     "reversed_pair_caption": f"a {y} before {x} tone"})
    csv = tmp_path / "CompA_order.csv"
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(csv, index=False)
    return csv, audio


def test_reader_and_trio_on_a_generated_folder(compa_folder):
    csv, audio = compa_folder
    data = read_compa_order(csv, audio)
    assert len(data) == 6 and data.missing == []
    assert data.audio[0] == audio / "0_fwd.wav" and data.caption_rev[0] == "a mid before low tone"
    hears = load_model("my_models:make_tone_model,order=true")
    table, items = score_compa_order(hears, data, n_boot=100)
    assert list(table.task) == ["3A-text", "3A-audio", "3A-group"]
    np.testing.assert_allclose(table.value, 100.0)
    np.testing.assert_allclose(table.chance, [25, 25, 100 / 6])
    blind = load_model("my_models:make_tone_model,order=false")
    table, items = score_compa_order(blind, data, n_boot=100)
    np.testing.assert_allclose(table.value, [25.0, 25.0, 100 / 6])  # every comparison tied
    assert items.tied.all() and len(items) == 6


def test_reader_errors_name_the_file(compa_folder, tmp_path):
    csv, audio = compa_folder
    (audio / "2_rev.wav").unlink()
    with pytest.raises(FileNotFoundError, match="2_rev.wav"):
        read_compa_order(csv, audio)
    data = read_compa_order(csv, audio, allow_missing=True)
    assert len(data) == 5 and data.missing == ["2_rev.wav"]
    bad = tmp_path / "bad.csv"
    pd.read_csv(csv).drop(columns="reversed_pair_caption").to_csv(bad, index=False)
    with pytest.raises(ValueError, match="bad.csv.*reversed_pair_caption"):
        read_compa_order(bad, audio)
    with pytest.raises(FileNotFoundError, match="Sreyan88/CompA"):
        read_compa_order(tmp_path / "nope.csv", audio)
