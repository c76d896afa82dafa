"""The notebook widgets in a real browser (issue 13): JupyterLab on a free local port, a notebook
run with "Run All Cells" in headless Debian Chromium driven by Playwright.

- the mixture player (``widgets.mixture_player``) shows three ``<audio>`` elements (forward,
  reversed, overlay) in its output area, and picking another row changes their sources and
  captions;
- the similarity explorer (``widgets.similarity_explorer``) redraws its matrix image and its
  anchor caption when the "anchor row" slider moves (keyboard on the slider handle); its batch
  slider is hidden when there is one batch, never shown as 0–0;
- JupyterLab works on working copies (``make lab``): after running and saving a notebook there,
  the committed notebooks are byte for byte as before and no jupytext twin was written;
- an executed copy of a pipeline run, opened untrusted, shows its figures and the widgets'
  static pictures, never ``VBox(`` text; its HTML rendering (an MLflow artifact) does too.

Widgets are found by their DOM (``.widget-dropdown``, ``.widget-slider``, ``audio``, ``img``) and
their description text, notebooks by the widget call in their code cells, never by cell index.
Skips with the reason where Debian Chromium or Playwright is missing (``.ci/install_browser.sh``
installs both). Each notebook builds its tiny world and model standalone: minutes on 2 cores.
A failure saves a screenshot into the test's tmp_path and names it in the message.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from browser_helpers import (chromium, jupyter_lab, open_notebook, run_all_cells, save_current,
                             screenshot_on_failure, skip_reason)

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RUN_TIMEOUT_S = 600  # one notebook, standalone, on a shared 2-core machine
WIDGET_TIMEOUT_MS = 60_000


def notebook_with(call: str) -> str:
    """The first notebook (sorted by name) one of whose code cells contains ``call``."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        if any(c["cell_type"] == "code" and call in "".join(c["source"]) for c in cells):
            return path.name
    raise AssertionError(f"no notebook in {NOTEBOOKS} calls {call!r}")


COMMITTED = {p.name: p.read_bytes() for p in NOTEBOOKS.iterdir() if p.is_file()}


def assert_repo_notebooks_untouched(lab, name: str) -> None:
    """After a notebook ran and was saved in the lab: the committed notebooks unchanged, no
    twin beside the working copy, the kernelspec as committed."""
    now = {p.name: p.read_bytes() for p in NOTEBOOKS.iterdir() if p.is_file()}
    assert now == COMMITTED, "a committed notebook changed while the lab ran its working copy"
    assert not list(lab.root.glob("*.py")), "a jupytext twin was written beside the working copies"
    saved = json.loads((lab.root / name).read_text())
    assert saved["metadata"]["kernelspec"] == json.loads(COMMITTED[name])["metadata"]["kernelspec"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = skip_reason()
    if reason and os.environ.get("TEMINAL_REQUIRE_BROWSER"):  # make test installs it
        pytest.fail(f"the browser test cannot run: {reason} (make browser installs it)")
    if reason:
        pytest.skip(reason)
    with jupyter_lab(notebooks=NOTEBOOKS, work=tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium")) as context:
        yield context


@pytest.fixture()
def page(lab, browser):
    page = browser.new_page()
    yield page
    page.close()
    lab.shutdown_kernels()  # the next notebook runs alone


def widget(scope, css: str, description: str):
    """The first visible widget in ``scope`` (a page or a locator) matching ``css`` whose
    description label reads ``description``."""
    from playwright.sync_api import expect

    page = getattr(scope, "page", scope)
    label = page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
    found = scope.locator(css).filter(has=label).first
    expect(found, f"no {css} widget described {description!r}").to_be_visible(timeout=WIDGET_TIMEOUT_MS)
    return found


def enclosing_box(locator):
    """The nearest ``widgets.VBox`` around ``locator`` (the widget's whole view)."""
    return locator.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
                           "' widget-vbox ')][1]")


def wait_for_change(read, before, what: str, timeout_s: float = 60.0):
    """Poll ``read()`` until it differs from ``before``; its new value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = read()
        if now != before:
            return now
        time.sleep(0.25)
    raise AssertionError(f"{what} did not change within {timeout_s:.0f} s (still {str(before)[:200]}…)")


def settled(read, *, quiet_s: float = 2.0, timeout_s: float = 60.0):
    """``read()`` once it has stopped changing for ``quiet_s`` (a widget's parts update one
    message at a time)."""
    deadline = time.monotonic() + timeout_s
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"still changing after {timeout_s:.0f} s: {str(last)[:300]}")


def audio_sources(box) -> list[str]:
    return box.locator("audio").evaluate_all(
        "els => els.map(a => a.currentSrc || a.src || (a.querySelector('source') || {}).src || '')")


def html_texts(box) -> list[str]:
    return box.locator(".widget-html-content").all_inner_texts()


def test_mixture_player_plays_and_follows_the_row(lab, page, tmp_path):
    from playwright.sync_api import expect

    name = notebook_with("mixture_player(")
    with screenshot_on_failure(page, tmp_path / "mixture_player.png"):
        run_all_cells(page, lab, name, timeout_s=RUN_TIMEOUT_S)
        row = widget(page, ".widget-dropdown", "row")
        player = enclosing_box(row)
        expect(player.locator(".jp-OutputArea-output audio")).to_have_count(3, timeout=WIDGET_TIMEOUT_MS)
        sources, captions = audio_sources(player), html_texts(player)
        assert len(sources) == 3 and all(s.startswith("data:audio/wav") for s in sources), \
            [s[:40] for s in sources]
        assert len(set(sources)) == 3, "forward, reversed and overlay must be different audio"
        assert row.locator("select option").count() >= 2, "the player needs two rows to switch"
        row.locator("select").select_option(index=1)
        wait_for_change(lambda: audio_sources(player), sources, "the audio sources")
        new_sources = settled(lambda: audio_sources(player))
        assert len(new_sources) == 3 and all(s.startswith("data:audio/wav") for s in new_sources)
        assert new_sources != sources and len(set(new_sources)) == 3
        assert settled(lambda: html_texts(player)) != captions, "the captions did not follow the row"
        save_current(page)
    assert_repo_notebooks_untouched(lab, name)


def test_similarity_explorer_follows_the_anchor_slider(lab, page, tmp_path):
    from playwright.sync_api import expect

    name = notebook_with("similarity_explorer(")
    with screenshot_on_failure(page, tmp_path / "similarity_explorer.png"):
        run_all_cells(page, lab, name, timeout_s=RUN_TIMEOUT_S)
        anchor = widget(page, ".widget-slider", "anchor row")
        explorer = enclosing_box(anchor)
        image = explorer.locator("img").first
        expect(image).to_have_attribute("src", re.compile(r"^(blob:|data:image)"), timeout=WIDGET_TIMEOUT_MS)
        head = explorer.locator(".widget-html-content").filter(has_text="anchor row").first
        expect(head).to_be_visible(timeout=WIDGET_TIMEOUT_MS)
        src, text = image.get_attribute("src"), head.inner_text()
        handle = anchor.locator(".noUi-handle").first
        assert float(handle.get_attribute("aria-valuemax") or 0) >= 1, "one anchor row only: nothing to move"
        handle.focus()
        handle.press("ArrowRight")
        expect(anchor.locator(".widget-readout")).to_have_text("1", timeout=WIDGET_TIMEOUT_MS)
        src = wait_for_change(lambda: image.get_attribute("src"), src, "the matrix image")
        assert wait_for_change(head.inner_text, text, "the anchor caption") != text
        label = page.locator(".widget-label", has_text=re.compile(r"^\s*batch\s*$"))
        batch = explorer.locator(".widget-slider").filter(has=label).first
        if batch.is_visible():  # hidden when there is one batch: never a 0–0 slider
            batch_handle = batch.locator(".noUi-handle").first
            assert float(batch_handle.get_attribute("aria-valuemax") or 0) >= 1, "a 0–0 batch slider"
            batch_handle.focus()
            batch_handle.press("ArrowRight")
            expect(batch.locator(".widget-readout")).to_have_text("1", timeout=WIDGET_TIMEOUT_MS)
            wait_for_change(lambda: image.get_attribute("src"), src, "the matrix image (batch)")
        save_current(page)
    assert_repo_notebooks_untouched(lab, name)


@pytest.fixture(scope="module")
def executed_copy(lab):
    """00_data_synthesis (figures and the mixture player) run by the pipeline into a run folder
    under the lab's root: (the copy's path relative to the root, the run folder, its child run)."""
    from teminal import pipeline
    from teminal.run.params import RunConfig

    config = RunConfig(name="browser", notebooks=["00_data_synthesis"])
    run_dir = pipeline.run_pipeline(config, runs_root=lab.root / "runs")
    record = json.loads((run_dir / "pipeline.json").read_text())
    child = record["notebooks"]["00_data_synthesis"]["run_id"]
    return str((run_dir / "notebooks" / "00_data_synthesis.ipynb").relative_to(lab.root)), run_dir, child


def _shows_figures_and_pictures_not_widget_text(scope, what: str) -> None:
    from playwright.sync_api import expect

    note = scope.get_by_text("static picture of an interactive view")
    expect(note.first, f"{what}: no static picture of the widget").to_be_visible(timeout=WIDGET_TIMEOUT_MS)
    images = scope.locator("img[src^='data:image/png'], img[src^='blob:']")
    assert images.count() >= 4, f"{what}: {images.count()} images (the figure + 3 spectrograms)"
    text = scope.locator("body").inner_text()
    assert "VBox(" not in text and "HBox(" not in text, f"{what}: a widget shown as text"


def test_executed_copy_opened_untrusted_shows_figures_and_static_pictures(lab, page, executed_copy,
                                                                           tmp_path):
    path, run_dir, _ = executed_copy
    files = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.is_file())
    with screenshot_on_failure(page, tmp_path / "executed_copy.png"):
        open_notebook(page, lab, path)
        assert page.locator(".widget-dropdown").count() == 0, "a live widget in an untrusted copy"
        _shows_figures_and_pictures_not_widget_text(page, path)
        assert "0%|" not in page.locator("body").inner_text(), "a progress bar in its first state"
    after = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.is_file()
                   and ".ipynb_checkpoints" not in p.parts)
    assert after == files, "opening the copy wrote into the run folder"


def test_executed_copys_html_rendering_is_an_mlflow_artifact(executed_copy, browser, tmp_path):
    from mlflow import MlflowClient

    _, _, child = executed_copy
    client = MlflowClient()
    names = {a.path for a in client.list_artifacts(child, "notebook")}
    assert names == {"notebook/00_data_synthesis.ipynb", "notebook/00_data_synthesis.html"}
    html = Path(client.download_artifacts(child, "notebook/00_data_synthesis.html", str(tmp_path)))
    page = browser.new_page()
    try:
        with screenshot_on_failure(page, tmp_path / "executed_html.png"):
            page.goto(html.as_uri(), wait_until="load", timeout=60_000)
            _shows_figures_and_pictures_not_widget_text(page, html.name)
    finally:
        page.close()
