"""Headless tests of teminal.viz.widgets: widgets build without a kernel and react to value changes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from teminal.viz import widgets as tw  # noqa: E402
from teminal.losses import StageBWeights, stage_b_log_weights  # noqa: E402

SR = 8000


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _find(root, kind, description=None):
    found = [w for w in _walk(root) if isinstance(w, kind)
             and (description is None or getattr(w, "description", None) == description)]
    assert found, f"no {kind.__name__} {description!r}"
    return found


def _html(out: widgets.Output) -> str:
    return "".join(o["data"].get("text/html", "") for o in out.outputs)


def _manifest() -> pd.DataFrame:
    return pd.DataFrame({
        "i": [0, 1], "j": [1, 2], "clip_i": ["a.wav", "b.wav"], "clip_j": ["b.wav", "c.wav"],
        "clip_i2": ["a2.wav", "b2.wav"], "clip_j2": ["b2.wav", "c2.wav"],
        "label_i": ["dog", "rain"], "label_j": ["rain", "bell"],
        "caption_f": ["dog before rain", "rain before bell"],
        "caption_r": ["rain before dog", "bell before rain"],
        "caption_o": ["dog while rain", "rain while bell"], "split": ["test", "test"],
    })


class SineRender:
    """The caller's render function: a quiet sine per key, recording the keys asked for."""

    def __init__(self):
        self.keys: list[str] = []

    def __call__(self, key: str) -> np.ndarray:
        self.keys.append(key)
        freq = 200 + 10 * len(key)
        return 0.3 * np.sin(2 * np.pi * freq * np.arange(SR // 2) / SR).astype(np.float32)


# --------------------------------------------------------------------------- mixture player


def test_mixture_player_renders_three_clips_and_follows_the_dropdown():
    render = SineRender()
    box = tw.mixture_player(_manifest(), render, SR)
    assert render.keys == ["seq|a.wav|b.wav", "seq|b.wav|a.wav", "mix|a.wav|a2.wav|b.wav|b2.wav"]
    outputs, images = _find(box, widgets.Output), _find(box, widgets.Image)
    heads = _find(box, widgets.HTML)
    assert len(outputs) == len(images) == len(heads) == 3
    assert not any(h.description for h in heads)  # the title once, in the value, not truncated
    assert all(h.value.count("<b>") == 1 for h in heads)
    assert all("<audio" in _html(o) for o in outputs)
    assert all(bytes(img.value).startswith(b"\x89PNG") for img in images)
    assert [c in h.value for c, h in zip(["dog before rain", "rain before dog", "dog while rain"], heads)] == [True] * 3

    picker = _find(box, widgets.Dropdown, "row")[0]
    first_png = images[0].value
    picker.value = 1
    assert render.keys[3:] == ["seq|b.wav|c.wav", "seq|c.wav|b.wav", "mix|b.wav|b2.wav|c.wav|c2.wav"]
    assert "bell before rain" in heads[1].value and images[0].value != first_png
    assert all(len(o.outputs) == 1 for o in outputs)


def test_mixture_player_checks_columns_filters_split_and_shows_render_errors():
    with pytest.raises(ValueError, match="caption_o"):
        tw.mixture_player(_manifest().drop(columns="caption_o"), SineRender(), SR)
    with pytest.raises(ValueError, match="split='train'"):
        tw.mixture_player(_manifest(), SineRender(), SR, split="train")

    def broken(key):
        raise FileNotFoundError(f"no clip for {key}")

    box = tw.mixture_player(_manifest(), broken, SR)
    heads = _find(box, widgets.HTML)
    assert len(heads) == 3 and all("FileNotFoundError" in h.value for h in heads)
    assert all(not o.outputs for o in _find(box, widgets.Output))


# --------------------------------------------------------------------------- similarity explorer


def _batches(calls: list[int]):
    labels = ["f", "r", "o"]

    def fetch(k: int) -> dict:
        calls.append(k)
        n = 2 + k  # batch size differs per batch: the anchor slider must follow it
        gen = torch.Generator().manual_seed(k)
        sim = torch.rand(3 * n, 3 * n, generator=gen)
        sim[2, 5] = 5.0  # row 2's best column
        log_w = stage_b_log_weights(torch.arange(n), torch.arange(n) + n,
                                    StageBWeights(alpha_st=0.0), weights_by="block")
        return dict(sim=sim, log_weights=log_w,
                    block_labels=labels,
                    row_captions=[f"audio {k}.{r}" for r in range(3 * n)],
                    col_captions=[f"text {k}.{c}" for c in range(3 * n)])

    return fetch


def test_similarity_explorer_fetches_batches_and_lists_top_columns():
    calls: list[int] = []
    box = tw.similarity_explorer(_batches(calls), 3, top_k=4)
    assert calls == [0]
    batch = _find(box, widgets.IntSlider, "batch")[0]
    anchor = _find(box, widgets.IntSlider, "anchor row")[0]
    image = _find(box, widgets.Image)[0]
    table = _find(box, widgets.Output)[0]
    assert anchor.max == 5 and bytes(image.value).startswith(b"\x89PNG")
    assert "text 0.0" in _html(table)

    first = image.value
    batch.value = 2
    assert calls == [0, 2] and anchor.max == 11 and image.value != first
    anchor.value = 2
    assert calls == [0, 2]  # moving the anchor does not refetch
    html = _html(table)
    assert html.count("</tr>") == 1 + 4 and "text 2.5" in html
    assert html.index("text 2.5") < html.index("text 2.", html.index("text 2.5") + 1)
    assert "audio 2.2" in [w for w in _find(box, widgets.HTML)][0].value

    anchor.value = 11
    batch.value = 0  # smaller batch: the anchor is clamped, then the table redrawn for it
    assert anchor.value == 5 and calls == [0, 2, 0]
    assert "text 0." in _html(table)


def test_similarity_explorer_validates_the_batch_dict():
    with pytest.raises(ValueError, match="col_captions"):
        tw.similarity_explorer(lambda k: dict(sim=np.zeros((3, 3)), block_labels=["a"], row_captions=["x"] * 3), 1)
    with pytest.raises(ValueError, match="row_captions"):
        tw.similarity_explorer(lambda k: dict(sim=np.zeros((3, 3)), block_labels=["a"], log_weights=None,
                                              row_captions=["x"], col_captions=["y"] * 3), 1)
    def flaky(k: int) -> dict:
        if k == 1:
            raise RuntimeError("checkpoint missing")
        return _batches([])(k)

    box = tw.similarity_explorer(flaky, 2)
    _find(box, widgets.IntSlider, "batch")[0].value = 1
    assert "checkpoint missing" in _find(box, widgets.HTML)[0].value
    with pytest.raises(ValueError, match="n_batches"):
        tw.similarity_explorer(lambda k: {}, 0)


# --------------------------------------------------------------------------- failure view


def _items() -> dict[str, pd.DataFrame]:
    one_a = pd.DataFrame(dict(row=[0, 1, 2], audio="single", label=[2, 0, 1], score=[0.0, 1.0, 0.0],
                              tied=False, predicted=["p-a", "p-b", "p-c"], target=["t-a", "t-b", "t-c"]))
    three_a = pd.DataFrame(dict(row=[0, 1, 2, 3], audio="seq", i=[2, 0, 1, 0], j=[0, 2, 0, 1],
                                score=[0.0, 1.0, 0.5, 0.0], tied=False,
                                predicted=["q-20", "q-02", "q-10", "q-01"], target="t"))
    return {"1A": one_a, "3A": three_a}


def test_failure_view_lists_failing_items_sorted_by_pair():
    box = tw.failure_view(_items(), class_names=["dog", "rain", "bell"])
    picker = _find(box, widgets.Dropdown, "task")[0]
    out = _find(box, widgets.Output)[0]
    assert [label for label, _ in picker.options] == ["1A — 2/3 failing", "3A — 3/4 failing"]
    html = _html(out)
    assert "p-b" not in html and html.index("p-c") < html.index("p-a")  # label 1 before label 2
    assert "rain" in html and "bell" in html

    picker.value = "3A"
    html = _html(out)
    assert "q-02" not in html
    assert html.index("q-01") < html.index("q-10") < html.index("q-20")
    assert "dog | rain" in html
    assert "3 of 4" in _find(box, widgets.HTML)[0].value
    pic = _picture(box)  # the failure view's static picture: the chosen task and its table
    assert "task</b>: 3A — 3/4 failing" in pic and "dog | rain" in pic and "<table" in pic


def test_failure_view_without_names_and_errors():
    box = tw.failure_view(_items(), max_rows=1)
    assert _html(_find(box, widgets.Output)[0]).count("</tr>") == 1 + 1
    with pytest.raises(ValueError, match="score"):
        tw.failure_view({"1A": pd.DataFrame({"x": [1]})})
    with pytest.raises(ValueError, match="at least one"):
        tw.failure_view({})


# --------------------------------------------------------------------------- static pictures


def _picture(box) -> str:
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # still the live widget
    return bundle["text/html"]


def test_each_view_carries_a_static_picture_of_its_state():
    box = tw.mixture_player(_manifest(), SineRender(), SR)
    pic = _picture(box)
    assert pic.count("<img src='data:image/png;base64,") == 3 and pic.count("<audio") == 3
    assert "dog before rain" in pic and "VBox(" not in pic
    _find(box, widgets.Dropdown, "row")[0].value = 1
    assert "bell before rain" in _picture(box)  # the picture follows the state

    explorer = tw.similarity_explorer(_batches([]), 3)
    pic = _picture(explorer)
    assert pic.count("<img") == 1 and "anchor row" in pic and "<table" in pic
    assert "batch</b>: 0 (of 0–2)" in pic


def test_one_batch_hides_the_batch_slider():
    explorer = tw.similarity_explorer(_batches([]), 1)
    batch = _find(explorer, widgets.IntSlider, "batch")[0]
    assert batch.layout.display == "none"
    assert "batch</b>" not in _picture(explorer) and "anchor row</b>" in _picture(explorer)
    assert _find(tw.similarity_explorer(_batches([]), 2), widgets.IntSlider, "batch")[0].layout.display is None
