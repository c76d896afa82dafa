"""Interactive notebook views (ipywidgets 8): mixtures, similarity matrices, ZSTE failures.

Each function returns a widget and needs neither a display nor a kernel to be built, so it can
be unit-tested. Data enters through arguments and callables supplied by the caller (a closure
over the library); the widgets hold no training or evaluation logic.

Rendering without a kernel: figures go to ``widgets.Image`` as PNG bytes, audio (an
``IPython.display.Audio(data, rate=..., normalize=False)``) and tables go to ``widgets.Output``
by setting its ``outputs`` directly (not ``with output:``, which captures only inside a kernel).

Every view is a :class:`Pictured` ``VBox``: its display carries a static picture of its state
(``text/html``, ``teminal.snapshot``) beside the live widget, so an executed copy opened
untrusted, its HTML rendering and the MLflow UI show the same content as the live view.

Public API: :func:`mixture_player`, :func:`similarity_explorer`, :func:`failure_view`.
"""
from __future__ import annotations

import html
import io
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
from IPython.display import HTML, Audio
from matplotlib.figure import Figure

from teminal.viz import plots
from teminal import snapshot
from teminal.data.vocabulary import CLIP_COLUMNS, STAGE_B

__all__ = ["Pictured", "failure_view", "mixture_player", "similarity_explorer"]

PLAYER_COLUMNS = ("i", "j", *CLIP_COLUMNS, "label_i", "label_j", *(c.caption for c in STAGE_B),
                  "split")
"""The stage-B columns ``mixture_player`` reads (:mod:`teminal.data.vocabulary`)."""


class Pictured(widgets.VBox):
    """A ``VBox`` whose display bundle also holds its static picture as ``text/html``."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/html"] = snapshot.picture(self)
        return bundle


def _png(fig: Figure, *, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (no pyplot involved, nothing left open)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _show(out: widgets.Output, *objs: object) -> None:
    """Replace ``out``'s content by ``objs`` (objects with ``_repr_html_``, e.g. Audio, HTML)."""
    bundles = []
    for obj in objs:
        data = {"text/plain": repr(obj)}
        rich = getattr(obj, "_repr_html_", None)
        if rich is not None and (text := rich()) is not None:
            data["text/html"] = text
        bundles.append({"output_type": "display_data", "data": data, "metadata": {}})
    out.outputs = tuple(bundles)


def _array(x: object) -> np.ndarray:
    """float64 array from an array, list or tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _error_html(err: Exception) -> str:
    return f"<span style='color:#b00'>{html.escape(f'{type(err).__name__}: {err}')}</span>"


def _table_html(df: pd.DataFrame) -> HTML:
    return HTML(df.to_html(index=False, escape=True, float_format=lambda v: f"{v:.3g}"))


# --------------------------------------------------------------------------- mixtures


def _mixture_panel(title: str) -> widgets.VBox:
    """caption (HTML) + audio (Output) + log-mel (Image), one per mixture."""
    return widgets.VBox(
        [widgets.HTML(layout=widgets.Layout(width="auto")),  # the title is in its value
         widgets.Output(),
         widgets.Image(format="png", layout=widgets.Layout(width="100%"))],
        layout=widgets.Layout(width="33%"))


def _fill_panel(panel: widgets.VBox, *, key: str, caption: str, render: Callable[[str], np.ndarray],
                sample_rate: int, title: str) -> None:
    """Render ``key`` and show its caption, player and spectrogram; a failure shows its error."""
    head, out, image = panel.children
    head.value = f"<b>{html.escape(title)}</b><br><code>{html.escape(key)}</code><br>“{html.escape(caption)}”"
    try:
        wave = np.asarray(render(key), dtype=np.float32)  # (T,)
        _show(out, Audio(wave, rate=sample_rate, normalize=False))
        image.value = _png(plots.log_mel(wave, sample_rate, title=caption))
    except Exception as err:  # shown in the panel: a callback's exception is otherwise invisible
        out.outputs = ()
        image.value = b""
        head.value += "<br>" + _error_html(err)


def mixture_player(manifest: pd.DataFrame, render: Callable[[str], np.ndarray], sample_rate: int,
                   *, split: str | None = None, max_rows: int | None = 2000) -> widgets.VBox:
    """Pick a stage-B manifest row; hear and see its forward, reversed and overlay mixtures.

    Args:
        manifest: stage-B manifest (``teminal.data.pairs``; columns :data:`PLAYER_COLUMNS`).
        render: audio key → samples, e.g. ``lambda k: clips.render(k, store, recipe)``. Keys
            and captions of the three panels: the composites ``vocabulary.STAGE_B``
            (``seq|clip_i|clip_j`` forward, ``seq|clip_j|clip_i`` reversed,
            ``mix|clip_i|clip_i2|clip_j|clip_j2`` overlay; captions ``caption_f/r/o``) — SPEC §1.
        sample_rate: of the rendered samples.
        split: keep only rows of this split (e.g. ``"test"``).
        max_rows: at most this many rows in the dropdown (``None``: all).

    Returns:
        ``VBox``: a ``Dropdown`` (description ``"row"``, values = positions in the filtered
        manifest) and three panels, each caption ``HTML``, audio ``Output`` and log-mel ``Image``.
        A render error is written into its panel instead of being raised.
    """
    missing = [c for c in PLAYER_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest: missing stage-B columns {missing} (need {list(PLAYER_COLUMNS)})")
    rows = manifest if split is None else manifest[manifest["split"] == split]
    if max_rows is not None:
        rows = rows.iloc[:max_rows]
    if rows.empty:
        raise ValueError(f"manifest: no rows{'' if split is None else f' with split={split!r}'}")
    options = [(f"{idx}: {r.label_i} → {r.label_j} [{r.split}]", pos)
               for pos, (idx, r) in enumerate(rows.iterrows())]
    picker = widgets.Dropdown(options=options, value=0, description="row",
                              layout=widgets.Layout(width="60%"))
    titles = [f"{c.name} {c.notation}" for c in STAGE_B]  # "forward a_i ⊕ a_j"
    panels = [_mixture_panel(title) for title in titles]

    def show(pos: int) -> None:
        r = rows.iloc[pos]
        frame = pd.DataFrame([r])
        for panel, title, c in zip(panels, titles, STAGE_B):
            _fill_panel(panel, key=c.keys(frame)[0], caption=str(r[c.caption]),
                        render=render, sample_rate=sample_rate, title=title)

    picker.observe(lambda change: show(change["new"]), names="value")
    show(0)
    return Pictured([picker, widgets.HBox(panels)])


# --------------------------------------------------------------------------- similarity


_BATCH_KEYS = ("sim", "block_labels", "row_captions", "col_captions")


def _check_batch(data: Mapping, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(sim [R, C], log_weights [R, C] | None)`` of ``batches(k)``, validated."""
    missing = [key for key in _BATCH_KEYS if key not in data]
    if missing:
        raise ValueError(f"batches({k}): missing keys {missing} (need {list(_BATCH_KEYS)}, log_weights optional)")
    sim = _array(data["sim"])
    lw = None if data.get("log_weights") is None else _array(data["log_weights"])
    if sim.ndim != 2 or (lw is not None and lw.shape != sim.shape):
        raise ValueError(f"batches({k}): sim must be [R, C] and log_weights the same shape, got "
                         f"{sim.shape} and {None if lw is None else lw.shape}")
    if len(data["row_captions"]) != sim.shape[0] or len(data["col_captions"]) != sim.shape[1]:
        raise ValueError(f"batches({k}): need {sim.shape[0]} row_captions and {sim.shape[1]} "
                         f"col_captions, got {len(data['row_captions'])} and {len(data['col_captions'])}")
    return sim, lw


def _top_columns(data: Mapping, sim: np.ndarray, lw: np.ndarray | None, row: int, *, k: int) -> pd.DataFrame:
    """The ``k`` most similar columns of anchor ``row`` with block, weight and caption."""
    s = sim[row]  # (C,)
    weight = np.ones_like(s) if lw is None else np.exp(lw[row])  # (C,)
    block = s.size // len(data["block_labels"])
    cols = np.argsort(-s, kind="stable")[:k]
    return pd.DataFrame({
        "rank": np.arange(1, cols.size + 1), "column": cols,
        "block": [data["block_labels"][c // block] for c in cols],
        "similarity": s[cols], "weight": weight[cols],
        "positive": [bool(c == row) and sim.shape[0] == sim.shape[1] for c in cols],
        "caption": [str(data["col_captions"][c]) for c in cols],
    })


def similarity_explorer(batches: Callable[[int], Mapping], n_batches: int, *, top_k: int = 8,
                        title: str = "") -> widgets.VBox:
    """Browse the similarity matrices of training batches and one anchor row's top columns.

    Args:
        batches: ``k`` → dict with ``sim`` [R, C], ``log_weights`` [R, C] or None (``-inf`` =
            weight 0, SPEC §3), ``block_labels`` (e.g. ``["f", "r", "o"]``), ``row_captions`` [R]
            and ``col_captions`` [C]. Called once per batch shown (a closure over the library
            built by the notebook; the widget holds no model).
        n_batches: batch indices are ``0 … n_batches - 1``.
        top_k: columns listed for the anchor row.
        title: prefix of the figure title.

    Returns:
        ``VBox``: ``IntSlider`` ``"batch"`` (hidden with one batch) and ``IntSlider``
        ``"anchor row"`` (its maximum follows
        the batch's R), the matrix ``Image`` (anchor row outlined), an ``HTML`` with the anchor's
        caption and an ``Output`` table of its top columns (rank, column, block, similarity,
        weight, positive = the diagonal, caption).
        The first batch's errors raise; a later batch's error is written into the ``HTML``.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    batch = widgets.IntSlider(value=0, min=0, max=n_batches - 1, description="batch",
                              continuous_update=False,  # hidden when there is one batch
                              layout=widgets.Layout(display="none" if n_batches == 1 else None))
    anchor = widgets.IntSlider(value=0, min=0, max=0, description="anchor row", continuous_update=False)
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
    head = widgets.HTML()
    table = widgets.Output()
    state: dict = {"loading": False}

    def draw() -> None:
        data, sim, lw, row, k = state["data"], state["sim"], state["lw"], anchor.value, batch.value
        fig = plots.similarity_matrix(sim, block_labels=data["block_labels"], log_weights=lw,
                                      title=f"{title} batch {k}".strip(), highlight_row=row)
        image.value = _png(fig)
        head.value = (f"<b>anchor row {row}</b> "
                      f"({html.escape(str(data['block_labels'][row * len(data['block_labels']) // sim.shape[0]]))}): "
                      f"“{html.escape(str(data['row_captions'][row]))}”")
        _show(table, _table_html(_top_columns(data, sim, lw, row, k=top_k)))

    def load(k: int) -> None:
        data = batches(k)
        sim, lw = _check_batch(data, k)
        state.update(data=data, sim=sim, lw=lw, loading=True)
        try:
            anchor.max = sim.shape[0] - 1  # clamps the value; its observer waits for `loading`
        finally:
            state["loading"] = False
        draw()

    def on_batch(change: dict) -> None:
        try:
            load(change["new"])
        except Exception as err:  # shown: a callback's exception is otherwise invisible
            head.value = f"batch {change['new']}: " + _error_html(err)

    batch.observe(on_batch, names="value")
    anchor.observe(lambda change: None if state["loading"] else draw(), names="value")
    load(0)
    return Pictured([widgets.HBox([batch, anchor]), image, head, table])


# --------------------------------------------------------------------------- ZSTE failures


def _failures(items: pd.DataFrame, *, class_names: Sequence[str] | None) -> pd.DataFrame:
    """Items with score < 1, sorted by class pair (``i, j``; ``label`` for 1A)."""
    failing = items[items["score"] < 1 - 1e-9].copy()
    keys = [c for c in ("i", "j", "label", "audio", "row") if c in failing.columns]
    failing = failing.sort_values(keys, kind="stable") if keys else failing
    if class_names is not None:
        name = lambda c: str(class_names[int(c)])  # noqa: E731
        if {"i", "j"} <= set(failing.columns):
            failing.insert(0, "pair", [f"{name(i)} | {name(j)}" for i, j in zip(failing.i, failing.j)])
        elif "label" in failing.columns:
            failing.insert(0, "class", [name(c) for c in failing.label])
    return failing


def failure_view(items: Mapping[str, pd.DataFrame], *, class_names: Sequence[str] | None = None,
                 max_rows: int = 200) -> widgets.VBox:
    """The failing items (score < 1) of each ZSTE task, sorted by class pair (SPEC §4).

    Args:
        items: task → per-item DataFrame, e.g. ``ZsteResult.items`` (columns ``row, audio, i,
            j, score, tied, predicted, target``; ``label`` instead of ``i, j`` for 1A).
        class_names: optional [K] label texts, adding a readable ``pair`` (or ``class``) column.
        max_rows: rows shown per task.

    Returns:
        ``VBox``: ``Dropdown`` ``"task"`` (option text ``"<task> — <failing>/<items> failing"``,
        value the task), a summary ``HTML`` and an ``Output`` with the table.
    """
    if not items:
        raise ValueError("items: expected at least one ZSTE task's per-item table")
    for task, df in items.items():
        if "score" not in df.columns:
            raise ValueError(f"items[{task!r}]: missing column 'score'")
    counts = {t: int((df["score"] < 1 - 1e-9).sum()) for t, df in items.items()}
    picker = widgets.Dropdown(options=[(f"{t} — {counts[t]}/{len(df)} failing", t) for t, df in items.items()],
                              description="task")
    summary = widgets.HTML()
    out = widgets.Output()

    def show(task: str) -> None:
        failing = _failures(items[task], class_names=class_names)
        partial = " (partial credit counts as failing)" if (failing["score"] > 0).any() else ""
        summary.value = (f"<b>{html.escape(task)}</b>: {len(failing)} of {len(items[task])} items "
                         f"fail{partial}; showing {min(len(failing), max_rows)}")
        _show(out, _table_html(failing.head(max_rows)))

    picker.observe(lambda change: show(change["new"]), names="value")
    show(picker.value)
    return Pictured([picker, summary, out])
