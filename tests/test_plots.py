"""Headless tests of teminal.viz.plots: each function returns a Figure with the expected artists."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from teminal.viz import plots  # noqa: E402
from teminal.losses import StageAWeights, StageBWeights, stage_a_log_weights, stage_b_log_weights  # noqa: E402


def _axis(fig: Figure, label: str):
    return next(ax for ax in fig.axes if ax.get_label() == label)


def _gid_count(ax, gid: str) -> int:
    return sum(1 for a in [*ax.lines, *ax.patches] if a.get_gid() == gid)


def _zste(values: dict[str, float], *, ci: float = 5.0) -> pd.DataFrame:
    chance = {"1A": 2.0, "3A": 100 / 3, "3B": 100 / 3}
    return pd.DataFrame([dict(task=t, value=v, chance=chance[t], ci_low=v - ci, ci_high=v + ci, n=40)
                         for t, v in values.items()])


# --------------------------------------------------------------------------- loss / audio


def test_loss_curves_train_and_val_with_nan_val():
    history = [dict(epoch=s // 4, step=s, train_loss=2.0 - 0.1 * s,
                    val_loss=(1.9 - 0.1 * s) if s % 4 == 3 else np.nan) for s in range(12)]
    fig = plots.loss_curves(history, title="stage B")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]
    train, val = [line for line in ax.lines if line.get_label() in ("train", "val")]
    assert len(train.get_xdata()) == 12 and len(val.get_xdata()) == 3
    assert ax.get_title() == "stage B" and ax.get_xlabel() == "step"
    assert _gid_count(ax, "epoch-start") == 2


def test_loss_curves_dataframe_without_val_and_epoch_axis():
    df = pd.DataFrame(dict(epoch=[0, 1, 2], train_loss=[1.0, 0.8, 0.7], val_loss=[np.nan] * 3))
    ax = plots.loss_curves(df, title="t").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train"]
    assert ax.get_xlabel() == "epoch"
    with pytest.raises(ValueError, match="train_loss"):
        plots.loss_curves([dict(epoch=0)], title="x")


def test_log_mel_own_figure_and_given_axis():
    sr = 16000
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    fig = plots.log_mel(wave, sr, title="tone")
    image = fig.axes[0].images[0]
    assert image.get_array().shape[0] == 64
    assert fig.axes[0].get_title() == "tone" and fig.axes[0].get_xlabel() == "time (s)"
    assert fig.axes[0].get_xlim() == pytest.approx((0.0, 1.0))
    host = Figure()
    ax = host.add_subplot()
    assert plots.log_mel(wave, sr, ax=ax, colorbar=False) is host
    assert len(ax.images) == 1 and len(host.axes) == 1
    with pytest.raises(ValueError, match="non-empty"):
        plots.log_mel(np.zeros(0), sr)


# --------------------------------------------------------------------------- similarity


def test_similarity_matrix_stage_b_blocks_and_zero_weights():
    n = 4
    log_w = stage_b_log_weights(torch.arange(n), torch.arange(n) + n,
                                StageBWeights(alpha_st=0, alpha_ct=1, alpha_so=1, alpha_co=0.5),
                                weights_by="block")
    sim = torch.randn(3 * n, 3 * n, requires_grad=True)  # a tensor with grad is accepted
    fig = plots.similarity_matrix(sim, block_labels=["f", "r", "o"], log_weights=log_w,
                                  title="batch 0", highlight_row=5)
    ax, wax = _axis(fig, "similarity"), _axis(fig, "weights")
    assert _gid_count(ax, plots.BOUNDARY_GID) == 4  # 2 horizontal + 2 vertical
    assert [t.get_text() for t in ax.get_xticklabels()] == ["f", "r", "o"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["f", "r", "o"]
    n_zero = int(torch.isneginf(log_w).sum())
    assert n_zero == 3 * n  # α_st = 0: same-pair f↔r and o→r cells
    assert _gid_count(ax, plots.ZERO_WEIGHT_GID) == n_zero
    assert _gid_count(ax, plots.ANCHOR_GID) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["weight 0 (excluded)"]
    assert len(wax.texts) == (3 * n) ** 2  # small batch: every weight written
    assert {t.get_text() for t in wax.texts} == {"0", "0.5", "1"}
    assert fig.get_suptitle() == "batch 0"


def test_similarity_matrix_stage_a_without_weights_and_large():
    i, j = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    log_w = stage_a_log_weights(i, j, StageAWeights(alpha_same=0.0))
    fig = plots.similarity_matrix(np.random.rand(6, 6), block_labels=["single", "double"],
                                  log_weights=log_w.numpy())
    assert _gid_count(_axis(fig, "similarity"), plots.BOUNDARY_GID) == 2
    plain = plots.similarity_matrix(np.random.rand(60, 60), block_labels=["f", "r", "o"])
    assert [ax.get_label() for ax in plain.axes].count("weights") == 0
    assert _gid_count(_axis(plain, "similarity"), plots.BOUNDARY_GID) == 4
    big_w = np.zeros((60, 60))
    big_w[0, 1] = -np.inf
    big = plots.similarity_matrix(np.random.rand(60, 60), block_labels=["f", "r", "o"], log_weights=big_w)
    assert _gid_count(_axis(big, "similarity"), plots.ZERO_WEIGHT_GID) == 0  # large: greyed only
    assert len(_axis(big, "weights").texts) == 0


def test_similarity_matrix_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        plots.similarity_matrix(np.zeros((5, 5)), block_labels=["f", "r", "o"])
    with pytest.raises(ValueError, match="log_weights shape"):
        plots.similarity_matrix(np.zeros((6, 6)), block_labels=["f", "r", "o"], log_weights=np.zeros((3, 3)))


# --------------------------------------------------------------------------- ZSTE


def test_zste_bars_counts_bars_errorbars_and_chance():
    tables = {"clap": _zste({"1A": 80, "3A": 33, "3B": 30}),
              "teminal": _zste({"1A": 75, "3A": 55, "3B": 57})}
    fig = plots.zste_bars(tables)
    ax = fig.axes[0]
    assert sum(len(c) for c in ax.containers[:2]) == 6
    assert [b.get_height() for b in ax.containers[0]] == [80, 33, 30]
    assert [b.get_height() for b in ax.containers[1]] == [75, 55, 57]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1A", "3A", "3B"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clap", "teminal", "chance"]
    chance = [c for c in ax.collections if c.get_label() == "chance"]
    assert len(chance) == 1 and len(chance[0].get_segments()) == 6
    assert len(ax.containers) == 2 + 6  # 2 bar containers + one errorbar container per bar
    (x, low), (_, high) = ax.containers[2].lines[2][0].get_segments()[0]
    first = ax.containers[0][0]
    assert x == pytest.approx(first.get_x() + first.get_width() / 2) and (low, high) == (75, 85)


def test_zste_bars_task_subset_and_nan_interval():
    t = _zste({"1A": 80, "3A": 33, "3B": 30})
    t.loc[1, ["ci_low", "ci_high"]] = np.nan
    ax = plots.zste_bars({"m": t}, tasks=["3A", "1A"]).axes[0]
    assert [x.get_text() for x in ax.get_xticklabels()] == ["3A", "1A"]
    assert len(ax.containers[0]) == 2 and len(ax.containers) == 1 + 1  # 3A has no interval


def test_zste_bars_value_outside_its_interval():
    """A percentile bootstrap with few resamples can leave the value outside its interval."""
    t = _zste({"1A": 80, "3A": 33, "3B": 30})
    t.loc[0, ["ci_low", "ci_high"]] = [82.0, 90.0]
    ax = plots.zste_bars({"m": t}).axes[0]
    (_, low), (_, high) = ax.containers[1].lines[2][0].get_segments()[0]
    assert (low, high) == (80, 90)


def test_ablation_heatmap_wide_and_tidy():
    wide = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=["1A", "3A", "3B"],
                        index=["none", "same_pair", "other_pairs", "all"])
    ax = plots.ablation_heatmap(wide, title="Table 2").axes[0]
    assert len(ax.texts) == 12 and ax.get_title() == "Table 2"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(wide.index)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(wide.columns)
    tidy = wide.rename_axis("setting").reset_index().melt(id_vars="setting", var_name="task")
    ax2 = plots.ablation_heatmap(tidy).axes[0]
    assert [t.get_text() for t in ax2.get_yticklabels()] == list(wide.index)
    assert ax2.texts[1].get_text() == "1.0"


# --------------------------------------------------------------------------- legibility


DISPLAY_PX = 900  # JupyterLab's output area at a 1400 px window: wider figures are shrunk
MIN_TEXT_PX = 11


def _png_size(fig: Figure) -> tuple[int, int]:
    data = plots.png(fig)  # what Session.show displays
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _texts(fig: Figure):
    """Every visible, non-empty text of the figure (ticks, labels, legend, titles, cells)."""
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def _assert_legible(fig: Figure, what: str) -> None:
    width, height = _png_size(fig)
    assert 450 <= width <= DISPLAY_PX, f"{what}: {width} px wide (display {DISPLAY_PX} px)"
    assert height <= 1.6 * DISPLAY_PX, f"{what}: {height} px high"
    small = {t.get_text() for t in _texts(fig) if t.get_fontsize() * plots.DPI / 72 < MIN_TEXT_PX}
    assert not small, f"{what}: text under {MIN_TEXT_PX} px: {sorted(small)[:8]}"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for ax in fig.axes:  # neighbouring tick labels must not overlap
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        for a, b in zip(boxes, boxes[1:]):
            assert a.x1 <= b.x0 + 1, f"{what}: x tick labels overlap ({a} / {b})"


@pytest.mark.parametrize("n_tasks,n_models", [(3, 1), (13, 3), (20, 4)])
def test_zste_bars_are_legible_at_display_width(n_tasks, n_models):
    tasks = [f"{k // 4 + 1}{'ABCD'[k % 4]}-x" for k in range(n_tasks)]
    table = pd.DataFrame({"task": tasks, "value": 50.0, "chance": 33.3, "ci_low": 40.0,
                          "ci_high": 60.0})
    fig = plots.zste_bars({f"model {m}": table for m in range(n_models)})
    _assert_legible(fig, f"zste_bars {n_tasks} tasks × {n_models} models")
    shown = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    assert shown == tasks  # every task once, in order, over the rows


@pytest.mark.parametrize("n_rows,n_tasks", [(4, 3), (9, 13), (12, 20)])
def test_ablation_heatmap_is_legible_at_display_width(n_rows, n_tasks):
    wide = pd.DataFrame(np.linspace(0, 100, n_rows * n_tasks).reshape(n_rows, n_tasks),
                        columns=[f"{k}A-o" for k in range(n_tasks)],
                        index=[f"T-AB+order-head ({k},1,1,1,1)" for k in range(n_rows)])
    _assert_legible(plots.ablation_heatmap(wide), f"heatmap {n_rows}×{n_tasks}")


def test_loss_curves_are_legible_at_display_width():
    history = [dict(epoch=e, step=3 * e, train_loss=1 / e, val_loss=1.1 / e) for e in range(1, 9)]
    _assert_legible(plots.loss_curves(history, title="TeminAL B (T-AB)"), "loss_curves")


@pytest.mark.parametrize("n", [4, 8])
def test_similarity_matrix_is_legible_at_display_width(n):
    log_w = stage_b_log_weights(torch.arange(n), torch.arange(n) + n, StageBWeights(alpha_st=0),
                                weights_by="block")
    fig = plots.similarity_matrix(torch.randn(3 * n, 3 * n), block_labels=["f", "r", "o"],
                                  log_weights=log_w, title="T-AB batch 0", highlight_row=1)
    _assert_legible(fig, f"similarity {3 * n}×{3 * n}")
    assert bool(_axis(fig, "weights").texts) == (3 * n <= 12)  # numbers only where they fit
