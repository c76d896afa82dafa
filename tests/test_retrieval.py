"""Retrieval metrics on hand-checked cases, zero-shot accuracy, and the local dataset readers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from teminal.eval.retrieval import (
    ZERO_SHOT_PROMPT,
    read_audiocaps,
    read_clotho,
    retrieval_metrics,
    zero_shot_accuracy,
    zero_shot_prompts,
    zero_shot_topk_accuracy,
)


def test_retrieval_tiny_hand_case():
    audio = np.eye(3)  # cos(text, audio n) = text[n] for unit texts
    text = np.array([[0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 0.6, 0.8], [0.0, 0.8, 0.6]])
    m = retrieval_metrics(audio, text, np.array([0, 0, 1, 2]))
    # t2a: rank of the owner audio per text: 1, 2, 2, 2
    assert m["t2a/R@1"] == pytest.approx(1 / 4)
    assert m["t2a/R@5"] == m["t2a/R@10"] == pytest.approx(1.0)
    assert m["t2a/mAP@10"] == pytest.approx((1 + 1 / 2 + 1 / 2 + 1 / 2) / 4)
    # a2t: audio 0 ranks its captions t0, t1 at 1, 2 -> AP (1/1 + 2/2) / 2 = 1.
    # audio 1: t3 .8, then t0 and t2 tie at .6 -> tie ranked against the query: t2 at 3 -> 1/3.
    # audio 2: t1 and t2 tie at .8 (both irrelevant), t3 at 3 -> 1/3.
    assert m["a2t/R@1"] == pytest.approx(1 / 3)
    assert m["a2t/R@5"] == pytest.approx(1.0)
    assert m["a2t/mAP@10"] == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)


def test_retrieval_rank_beyond_5_and_many_captions():
    # t2a: one text, 12 audios, owner ranked 7th.
    sims = np.linspace(1.0, 0.1, 12)
    audio, text = np.eye(12), sims[None, :]
    owner = np.array([6])
    m = retrieval_metrics(audio, text, owner)
    assert (m["t2a/R@1"], m["t2a/R@5"], m["t2a/R@10"]) == (0.0, 0.0, 1.0)
    assert m["t2a/mAP@10"] == pytest.approx(1 / 7)
    # a2t: 2 audios (e0, e1) and 20 unit texts at decreasing angle to e0.
    c = 1.0 - 0.04 * np.arange(20)
    text = np.stack([c, np.sqrt(1 - c**2)], axis=1)
    rel0 = [0, 2, 3, 11, 19]
    owner = np.array([0 if k in rel0 else 1 for k in range(20)])
    m = retrieval_metrics(np.eye(2), text, owner)
    ap0 = (1 / 1 + 2 / 3 + 3 / 4) / 5  # captions of audio 0 at ranks 1, 3, 4 (12, 20 beyond 10)
    # audio 1 sees texts in order 19, 18, ..., 0: relevant at ranks 2-8 and 10; 15 captions -> /10
    ap1 = sum(h / r for h, r in enumerate([2, 3, 4, 5, 6, 7, 8, 10], start=1)) / 10
    assert m["a2t/mAP@10"] == pytest.approx((ap0 + ap1) / 2)
    assert m["a2t/R@1"] == pytest.approx(0.5) and m["a2t/R@5"] == pytest.approx(1.0)


def test_audio_without_caption_is_candidate_not_query():
    audio = np.eye(3)
    text = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]])  # audio 2 has no caption but wins t1
    m = retrieval_metrics(audio, text, np.array([0, 1]))
    assert m["t2a/R@1"] == pytest.approx(0.5)
    assert m["a2t/R@1"] == pytest.approx(1.0)  # queries: audios 0 and 1, each ranks its own first


def test_retrieval_validation():
    with pytest.raises(ValueError, match="text_to_audio"):
        retrieval_metrics(np.eye(3), np.eye(3), np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="text"):
        retrieval_metrics(np.eye(3), np.ones((2, 4)), np.array([0, 1]))


def test_zero_shot_accuracy_and_topk():
    classes = np.eye(4)
    audio = np.array([[1.0, 0.1, 0, 0], [0, 1.0, 0, 0], [0, 0.9, 0.5, 0], [0, 0.2, 0, 1.0]])
    labels = np.array([0, 1, 2, 0])
    assert zero_shot_accuracy(audio, labels, classes) == pytest.approx(0.5)
    assert zero_shot_topk_accuracy(audio, labels, classes, k=2) == pytest.approx(0.75)
    tie = np.array([[1.0, 1.0, 0, 0]])  # expected accuracy under a random tie break
    assert zero_shot_accuracy(tie, np.array([1]), classes) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="labels"):
        zero_shot_accuracy(audio, np.array([0, 1, 2, 4]), classes)
    with pytest.raises(ValueError, match="k"):
        zero_shot_topk_accuracy(audio, labels, classes, k=5)


def test_zero_shot_prompt_is_the_papers():
    assert ZERO_SHOT_PROMPT == "The sound of a {x}"  # paper Table 4; ZSTE 1A has no "a"
    assert zero_shot_prompts(["dog", "crackling fire"]) == ["The sound of a dog",
                                                            "The sound of a crackling fire"]
    assert zero_shot_prompts(["dog"], "A {x} is heard") == ["A dog is heard"]
    with pytest.raises(ValueError, match="prompt"):
        zero_shot_prompts(["dog"], "The sound of {y}")


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, dtype=np.float32), 16000)


def test_read_clotho(tmp_path):
    caps = {f"caption_{n}": [f"a{n}", f"b{n}"] for n in range(1, 6)}
    caps["caption_3"] = ["a3", " "]  # an empty caption is dropped
    pd.DataFrame({"file_name": ["x 1.wav", "y.wav"], **caps}).to_csv(
        tmp_path / "clotho_captions_evaluation.csv", index=False)
    _wav(tmp_path / "evaluation" / "x 1.wav")
    _wav(tmp_path / "evaluation" / "y.wav")
    ds = read_clotho(tmp_path)
    assert ds.audio_ids == ["x 1.wav", "y.wav"] and all(p.is_file() for p in ds.audio_paths)
    assert ds.captions[:5] == ["a1", "a2", "a3", "a4", "a5"] and len(ds.captions) == 9
    assert ds.text_to_audio.tolist() == [0] * 5 + [1] * 4
    (tmp_path / "evaluation" / "y.wav").unlink()
    with pytest.raises(FileNotFoundError, match="y.wav"):
        read_clotho(tmp_path)
    kept = read_clotho(tmp_path, allow_missing=True)
    assert kept.missing == ["y.wav"] and kept.text_to_audio.tolist() == [0] * 5
    with pytest.raises(FileNotFoundError, match="clotho_captions_development.csv"):
        read_clotho(tmp_path, split="development")
    pd.DataFrame({"file_name": ["x 1.wav"], "caption_1": ["a"]}).to_csv(
        tmp_path / "clotho_captions_evaluation.csv", index=False)
    with pytest.raises(ValueError, match="caption_5"):
        read_clotho(tmp_path)


def test_read_audiocaps(tmp_path):
    df = pd.DataFrame({
        "audiocap_id": [11, 12, 13, 14, 15],
        "youtube_id": ["abc", "abc", "def", "ghi", "jkl"],
        "start_time": [30, 30, 0, 10, 5],
        "caption": ["dog barks", "a dog barking", "rain falls", "a siren", "birds"],
    })
    (tmp_path / "dataset").mkdir()
    df.to_csv(tmp_path / "dataset" / "test.csv", index=False)
    _wav(tmp_path / "test" / "abc.wav")  # by youtube_id
    _wav(tmp_path / "test" / "13.wav")  # by audiocap_id
    _wav(tmp_path / "test" / "Yghi.flac")  # AudioSet-style youtube_id
    with pytest.raises(FileNotFoundError, match="jkl"):
        read_audiocaps(tmp_path)
    ds = read_audiocaps(tmp_path, allow_missing=True)
    assert [p.name for p in ds.audio_paths] == ["abc.wav", "13.wav", "Yghi.flac"]
    assert ds.audio_ids == ["abc", "def", "ghi"] and ds.missing == ["jkl"]
    assert ds.captions == ["dog barks", "a dog barking", "rain falls", "a siren"]
    assert ds.text_to_audio.tolist() == [0, 0, 1, 2]
    with pytest.raises(FileNotFoundError, match="val.csv"):
        read_audiocaps(tmp_path, split="val")


def test_a_run_scores_a_partial_audiocaps_folder_only_when_told(tmp_path):
    """05's captioned set (``evaluate.captioned*``): absent audio is an error naming the clip,
    or with ``captioned_allow_missing`` a warning, the set scored without it."""
    from types import SimpleNamespace

    from teminal.run.params import RunConfig
    from teminal.run.steps.anymodel import options
    from teminal.warn import TeminalWarning

    pd.DataFrame({"audiocap_id": [1, 2], "youtube_id": ["abc", "def"], "start_time": [0, 0],
                  "caption": ["dog barks", "rain falls"]}).to_csv(tmp_path / "test.csv", index=False)
    _wav(tmp_path / "test" / "abc.wav")
    config = RunConfig().model_copy(update={"evaluate": RunConfig().evaluate.model_copy(
        update={"captioned": "audiocaps", "captioned_root": str(tmp_path)})})
    with pytest.raises(FileNotFoundError, match="def"):
        options(SimpleNamespace(config=config))
    allow = config.model_copy(update={"evaluate": config.evaluate.model_copy(
        update={"captioned_allow_missing": True})})
    with pytest.warns(TeminalWarning, match="1 clips .* without them"):
        opts = options(SimpleNamespace(config=allow))
    assert opts.captioned.captions == ["dog barks"] and opts.captioned.missing == ["def"]
