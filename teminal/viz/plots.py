"""Figures for the notebooks and reports: losses, spectrograms, similarity matrices, ZSTE.

Every function returns a ``matplotlib.figure.Figure`` built with ``Figure(...)`` directly (not
``pyplot``): nothing is registered in pyplot's global figure list, nothing is shown, and the
figures work under any backend, Agg included. In Jupyter a returned figure displays once; in
scripts, ``fig.savefig(path)``. Tables and their cells are :mod:`teminal.eval.tables`'s
(:func:`nowrap` only changes how a table's cells wrap on screen).

Public API: :func:`loss_curves`, :func:`log_mel`, :func:`similarity_matrix`, :func:`zste_bars`,
:func:`ablation_heatmap`, :func:`nowrap`. Artists that tests (or callers) may want to find
carry a ``gid``: :data:`BOUNDARY_GID`, :data:`ZERO_WEIGHT_GID`, :data:`ANCHOR_GID`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from teminal.eval.tables import long_table

__all__ = [
    "ANCHOR_GID", "BOUNDARY_GID", "ZERO_WEIGHT_GID", "ablation_heatmap", "log_mel",
    "loss_curves", "mixture_figure", "nowrap", "png", "similarity_matrix", "zste_bars",
]

BOUNDARY_GID = "block-boundary"  # lines between blocks of a similarity matrix
ZERO_WEIGHT_GID = "zero-weight"  # hatched cells with w(r, c) = 0
ANCHOR_GID = "anchor-row"  # outline of a highlighted anchor row
_ZERO_RGBA = (0.55, 0.55, 0.55, 0.85)
DPI = 90  # the resolution a notebook shows figures at (``Session.show``, the widgets)
MAX_WIDTH_IN = 9.5  # widest figure: 855 px at DPI, inside JupyterLab's output area
MIN_FONT_PT = 9.0  # smallest text: 11 px at DPI


def png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes at the notebook's display resolution (no pyplot involved)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _numpy(x: object, name: str) -> np.ndarray:
    """float64 array from an array, list or (CPU/GPU, grad-carrying) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array, got {type(x).__name__}") from err


# --------------------------------------------------------------------------- training


def loss_curves(history: Sequence[Mapping] | pd.DataFrame, *, title: str = "loss",
                x: str | None = None, log_y: bool = False) -> Figure:
    """Train and validation loss against ``step`` (or ``epoch``).

    Args:
        history: rows with ``epoch, step, train_loss, val_loss`` (``val_loss`` NaN where not
            measured; rows without a value are skipped per curve).
        title: axes title.
        x: the x column; default ``step`` when present, else ``epoch``. On a step axis, faint
            vertical lines mark where a new epoch starts.
        log_y: logarithmic y axis.
    """
    df = history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    curves = [c for c in ("train_loss", "val_loss") if c in df.columns]
    if df.empty or not curves:
        raise ValueError("history: expected rows with train_loss and/or val_loss")
    x = x or ("step" if "step" in df.columns and df["step"].notna().any() else "epoch")
    if x not in df.columns:
        raise ValueError(f"history: no x column {x!r} (columns: {list(df.columns)})")
    ax = (fig := Figure(figsize=(7.0, 3.6), layout="constrained")).add_subplot()
    styles = {"train_loss": dict(label="train", lw=1.2, alpha=0.9),
              "val_loss": dict(label="val", lw=1.8, marker="o", ms=4)}
    for col in curves:
        part = df[[x, col]].dropna().sort_values(x)
        if not part.empty:
            ax.plot(part[x].to_numpy(), part[col].to_numpy(), **styles[col])
    if x == "step" and "epoch" in df.columns:
        starts = df.dropna(subset=["step", "epoch"]).groupby("epoch")["step"].min().sort_index()
        for s in starts.to_numpy()[1:]:
            ax.axvline(s, color="0.85", lw=0.8, zorder=0, gid="epoch-start")
    ax.set(xlabel=x, ylabel="loss", title=title, yscale="log" if log_y else "linear")
    ax.grid(alpha=0.3)
    if any(not line.get_label().startswith("_") for line in ax.lines):
        ax.legend()
    return fig


# --------------------------------------------------------------------------- audio


def log_mel(wave: np.ndarray, sample_rate: int, *, ax: Axes | None = None, title: str = "",
            n_mels: int = 64, top_db: float = 80.0, colorbar: bool = True) -> Figure:
    """Log-mel spectrogram (torchaudio ``MelSpectrogram``, power in dB) of one clip.

    ``n_fft`` is the power of two nearest 46 ms (1024 at 16 kHz, 2048 at 44.1 kHz), hop
    ``n_fft / 4``. Drawn on ``ax`` when given (its figure is returned), else on a new figure.
    ``wave``: [T] samples, or [channels, T] (averaged).
    """
    import torch
    import torchaudio

    x = _numpy(wave, "wave")
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1 or x.size == 0 or sample_rate <= 0:
        raise ValueError(f"wave must be non-empty [T] and sample_rate > 0, got {x.shape}, {sample_rate}")
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=int(sample_rate), n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels,
        pad_mode="constant")(torch.from_numpy(x.astype(np.float32)))  # (n_mels, frames)
    db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=top_db)(mel).numpy()
    if ax is None:
        ax = Figure(figsize=(5, 2.6), layout="constrained").add_subplot()
    im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                   extent=(0.0, x.size / sample_rate, 0, n_mels))
    ax.set(xlabel="time (s)", ylabel="mel bin", title=title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="dB", pad=0.01)
    return ax.figure


# --------------------------------------------------------------------------- similarity


def mixture_figure(row: Mapping, render, sample_rate: int) -> Figure:
    """Log-mel spectrograms of a stage-B manifest row's forward, reversed and overlay clips."""
    from teminal.data.vocabulary import STAGE_B

    frame = pd.DataFrame([dict(row)])
    fig = Figure(figsize=(MAX_WIDTH_IN, 3), constrained_layout=True)
    for ax, c in zip(fig.subplots(1, len(STAGE_B)), STAGE_B):
        log_mel(render(c.keys(frame)[0]), sample_rate, ax=ax, title=f"{c.name}:\n{row[c.caption]}",
                colorbar=False)
    return fig


def _draw_blocks(ax: Axes, shape: tuple[int, int], labels: Sequence[str], *,
                 row_label: str, col_label: str) -> None:
    """Block boundaries (``gid=BOUNDARY_GID``) and block names at the block centres."""
    (rows, cols), nb = shape, len(labels)
    for b in range(1, nb):
        ax.axhline(b * rows / nb - 0.5, color="white", lw=1.6, gid=BOUNDARY_GID)
        ax.axvline(b * cols / nb - 0.5, color="white", lw=1.6, gid=BOUNDARY_GID)
    ax.set_xticks([(b + 0.5) * cols / nb - 0.5 for b in range(nb)], labels=list(labels))
    ax.set_yticks([(b + 0.5) * rows / nb - 0.5 for b in range(nb)], labels=list(labels))
    ax.set(xlabel=f"{col_label} (columns)", ylabel=f"{row_label} (anchor rows)")


def _annotate(ax: Axes, values: np.ndarray, *, fmt: str, skip: np.ndarray | None = None) -> None:
    """Write each cell's value (dark text on light cells)."""
    hi = np.nanmax(values) if np.isfinite(values).any() else 1.0
    for (r, c), v in np.ndenumerate(values):
        if skip is not None and skip[r, c]:
            continue
        ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=MIN_FONT_PT,
                color="black" if v > 0.6 * hi else "white")


def similarity_matrix(sim: object, *, block_labels: Sequence[str], log_weights: object | None = None,
                      title: str = "", row_label: str = "audio", col_label: str = "text",
                      highlight_row: int | None = None, small: int = 24,
                      cmap: str = "viridis") -> Figure:
    """Heatmap of a block similarity/logit matrix with its loss weights (SPEC §3).

    Args:
        sim: [R, C] similarities or logits (array or tensor), e.g. 3N×3N for stage B with
            blocks ``["f", "r", "o"]`` or 2N×2N for stage A with ``["single", "double"]``.
        block_labels: names of the equal-sized blocks along both axes (R and C divisible by
            their number); boundaries are drawn as lines (``gid=BOUNDARY_GID``).
        log_weights: optional [R, C] ``log w`` (``-inf`` = weight 0), e.g. from
            ``teminal.losses.stage_b_log_weights``. Weight-0 cells are greyed on the similarity
            panel (and hatched, ``gid=ZERO_WEIGHT_GID``, when the matrix is small); a second
            panel shows ``w`` itself, its values written in the cells when small.
        title: figure title.
        row_label / col_label: what rows and columns hold (audio rows × text columns by default).
        highlight_row: outline this anchor row (``gid=ANCHOR_GID``).
        small: matrices with at most this many rows and columns get hatching; with at most
            half as many, the weights are also written in their cells.
        cmap: colormap of the similarities.

    The similarity panel is labelled ``"similarity"`` and the weight panel ``"weights"``
    (``Axes.get_label()``).
    """
    s = _numpy(sim, "sim")
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"sim must be a non-empty [R, C] matrix, got shape {s.shape}")
    nb = len(block_labels)
    if nb < 1 or s.shape[0] % nb or s.shape[1] % nb:
        raise ValueError(f"sim shape {s.shape} is not divisible into {nb} blocks {list(block_labels)}")
    lw = None if log_weights is None else _numpy(log_weights, "log_weights")
    if lw is not None and lw.shape != s.shape:
        raise ValueError(f"log_weights shape {lw.shape} differs from sim shape {s.shape}")
    is_small = max(s.shape) <= small
    legible = max(s.shape) <= small // 2  # cells wide enough for a 9 pt number
    fig = Figure(figsize=(MAX_WIDTH_IN if lw is not None else 6.2, 4.8), layout="constrained")
    axes = fig.subplots(1, 1 if lw is None else 2, squeeze=False)[0]
    ax = axes[0]
    ax.set_label("similarity")
    aspect = "equal" if s.shape[0] == s.shape[1] else "auto"
    im = ax.imshow(s, cmap=cmap, interpolation="nearest", aspect=aspect)
    fig.colorbar(im, ax=ax, shrink=0.85, label="similarity")
    if lw is not None:
        zero = np.isneginf(lw)  # (R, C) weight 0: column removed from the row's softmax
        overlay = np.zeros((*s.shape, 4))
        overlay[zero] = _ZERO_RGBA
        ax.imshow(overlay, interpolation="nearest", aspect=aspect)
        if is_small:
            for r, c in np.argwhere(zero):
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///",
                                       edgecolor="0.25", lw=0, gid=ZERO_WEIGHT_GID))
        zero_patch = Patch(facecolor=_ZERO_RGBA, hatch="///", edgecolor="0.25", label="weight 0 (excluded)")
        ax.legend(handles=[zero_patch], loc="upper right", bbox_to_anchor=(1.0, -0.12), frameon=False)
        w = np.exp(lw)  # (R, C), exp(-inf) = 0
        wax = axes[1]
        wax.set_label("weights")
        wim = wax.imshow(w, cmap="cividis", vmin=0.0, vmax=max(1.0, float(w.max())),
                         interpolation="nearest", aspect=aspect)
        fig.colorbar(wim, ax=wax, shrink=0.85, label="weight w(r, c)")
        _draw_blocks(wax, s.shape, block_labels, row_label=row_label, col_label=col_label)
        wax.set_title("loss weights (0 = excluded)")
        if legible:
            _annotate(wax, w, fmt=".2g")
    _draw_blocks(ax, s.shape, block_labels, row_label=row_label, col_label=col_label)
    if highlight_row is not None:
        if not 0 <= highlight_row < s.shape[0]:
            raise ValueError(f"highlight_row={highlight_row} outside [0, {s.shape[0]})")
        ax.add_patch(Rectangle((-0.5, highlight_row - 0.5), s.shape[1], 1, fill=False,
                               edgecolor="red", lw=1.5, gid=ANCHOR_GID))
    ax.set_title("similarity")
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- ZSTE


def _zste_axes(ax: Axes, long: pd.DataFrame, order: list[str], models: list[str]) -> None:
    """One row of the ZSTE bar chart: bars of ``order`` × ``models``, intervals, chance."""
    part = long[long["task"].isin(order)]
    sns.barplot(data=part, x="task", y="value", hue="model", order=order, hue_order=models,
                errorbar=None, width=0.8, ax=ax)
    lookup = part.set_index(["model", "task"])
    segments = []  # (chance, x0, x1)
    slot = 0.8 / len(models)  # seaborn's dodge: model k's bar at task + (k + ½)·slot − 0.4
    bars = [b for c in ax.containers if isinstance(c, BarContainer) for b in c]
    for bar in bars:
        centre = bar.get_x() + bar.get_width() / 2
        task = int(round(centre))
        model = models[int(round((centre - task + 0.4) / slot - 0.5))]
        if (model, order[task]) in lookup.index:
            row = lookup.loc[(model, order[task])]
            row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
            if np.isfinite(row.ci_low) and np.isfinite(row.ci_high):
                low, high = max(0.0, row.value - row.ci_low), max(0.0, row.ci_high - row.value)
                ax.errorbar(centre, row.value, yerr=[[low], [high]],  # a value outside its
                            fmt="none", ecolor="black", elinewidth=1, capsize=2)  # interval: clipped
            if np.isfinite(row.chance):
                segments.append((row.chance, bar.get_x(), bar.get_x() + bar.get_width()))
    if segments:
        y, x0, x1 = map(list, zip(*segments))
        ax.hlines(y, x0, x1, colors="black", linestyles="--", lw=1.3, label="chance")
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    top = np.nanmax(part[["value", "ci_high"]].to_numpy()) if part["value"].notna().any() else 100
    ax.set(xlabel="", ylabel="score (%)", ylim=(0, max(100.0, top * 1.05)))
    ax.grid(axis="y", alpha=0.3)


def zste_bars(tables: Mapping[str, object], *, title: str = "ZSTE",
              tasks: Sequence[str] | None = None) -> Figure:
    """Bar chart of every ZSTE subtask (SPEC §4): x = task, hue = model, percent.

    Args:
        tables: model name → ZSTE table (``task, value, chance, ci_low, ci_high``, percent) or
            a ``ZsteResult``.
        title: figure title.
        tasks: tasks to show, in order; default every task, in first-seen order.

    Each bar carries its 95 % interval (``ci_low``–``ci_high``; none where NaN) and a dashed
    black segment at its task's chance level (legend entry ``"chance"``). The figure keeps the
    notebook's display width (``MAX_WIDTH_IN``): the tasks wrap onto as many rows (axes) as
    needed, the legend sits above the first.
    """
    long = long_table(tables)
    order = list(tasks) if tasks is not None else list(dict.fromkeys(long["task"]))
    long = long[long["task"].isin(order)]
    models = [m for m in map(str, tables) if (long["model"] == m).any()]
    if long.empty:
        raise ValueError(f"tables: no rows for tasks {order}")
    per_row = max(3, int((MAX_WIDTH_IN - 1.5) / (0.28 * len(models) + 0.3)))
    rows = [order[k:k + per_row] for k in range(0, len(order), per_row)]
    fig = Figure(figsize=(MAX_WIDTH_IN, 2.5 * len(rows) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, chunk in zip(axes, rows):
        _zste_axes(ax, long, chunk, models)
        ax.set_xlim(-0.5, per_row - 0.5)  # the same bar width on every row
    colours = [Patch(facecolor=c) for c in sns.color_palette(n_colors=len(models))]  # barplot's
    axes[0].legend([*colours, Line2D([], [], color="black", ls="--", lw=1.3)],
                   [*models, "chance"], loc="lower left", bbox_to_anchor=(0.0, 1.02),
                   ncols=min(len(models) + 1, 4), frameon=False)
    axes[-1].set_xlabel("ZSTE task")
    fig.suptitle(title)
    return fig


def nowrap(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` for display: spaces inside string cells become no-break spaces, so a cell
    such as ``54.1 [40.2, 61.0]`` stays on one line in a notebook, its HTML rendering and the
    MLflow UI (a wide table scrolls instead). Log the original, not this."""
    keep = "\u00a0"
    return table.map(lambda v: v.replace(" ", keep) if isinstance(v, str) else v)


def ablation_heatmap(table: pd.DataFrame, *, title: str = "ablation", fmt: str | None = None,
                     cmap: str = "viridis", value: str = "value",
                     label: str = "score (%)") -> Figure:
    """Annotated heatmap of settings × ZSTE subtasks (e.g. the Table 2 grid, SPEC §5).

    ``table`` is wide (index = setting, columns = tasks, numeric cells) or tidy with columns
    ``setting, task`` and ``value`` (pivoted, settings and tasks in first-seen order).
    ``label`` names the colour bar; ``fmt`` the cells' number format (default ``.1f``, or
    ``.0f`` when many tasks make the cells narrow: the figure keeps ``MAX_WIDTH_IN``).
    """
    if {"setting", "task", value} <= set(table.columns):
        wide = table.pivot_table(index="setting", columns="task", values=value, sort=False)
    else:
        wide = table
    wide = wide.apply(pd.to_numeric, errors="coerce")
    if wide.empty or wide.isna().all().all():
        raise ValueError("table: expected numeric cells (rows = settings, columns = ZSTE tasks)")
    cell_w = min(0.75, (MAX_WIDTH_IN - 3.5) / wide.shape[1])  # inches: the display width bounds it
    size = (min(MAX_WIDTH_IN, max(5.0, cell_w * wide.shape[1] + 3.5)), max(2.5, 0.4 * wide.shape[0] + 1.5))
    ax = Figure(figsize=size, layout="constrained").add_subplot()
    fmt = fmt or (".1f" if cell_w >= 0.45 else ".0f")  # "100.0" needs ~0.45 in at 9 pt
    sns.heatmap(wide, annot=True, fmt=fmt, cmap=cmap, ax=ax, linewidths=0.5,
                annot_kws={"fontsize": MIN_FONT_PT}, cbar_kws={"label": label})
    ax.set(xlabel="ZSTE task", ylabel="setting", title=title)
    ax.tick_params(axis="y", rotation=0)
    return ax.figure
