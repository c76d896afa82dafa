"""The notebook widgets in a real browser (issue 13): JupyterLab on a free local port, a notebook
run with "Run All Cells" in headless Debian Chromium driven by Playwright.

- the mixture player (``widgets.mixture_player``) shows three ``<audio>`` elements (forward,
  reversed, overlay) in its output area, and picking another row changes their sources and
  captions;
- the similarity explorer (``widgets.similarity_explorer``) redraws its matrix image and its
  anchor caption when the "anchor row" slider moves (keyboard on the slider handle).

Widgets are found by their DOM (``.widget-dropdown``, ``.widget-slider``, ``audio``, ``img``) and
their description text, notebooks by the widget call in their code cells, never by cell index.
Skips with the reason where Debian Chromium or Playwright is missing (``.ci/install_browser.sh``
installs both). Each notebook builds its tiny world and model standalone: minutes on 2 cores.
A failure saves a screenshot into the test's tmp_path and names it in the message.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from browser_helpers import chromium, jupyter_lab, run_all_cells, screenshot_on_failure, skip_reason

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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = skip_reason()
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
        batch = widget(explorer, ".widget-slider", "batch")
        batch_handle = batch.locator(".noUi-handle").first
        if float(batch_handle.get_attribute("aria-valuemax") or 0) >= 1:  # a second batch to show
            batch_handle.focus()
            batch_handle.press("ArrowRight")
            expect(batch.locator(".widget-readout")).to_have_text("1", timeout=WIDGET_TIMEOUT_MS)
            wait_for_change(lambda: image.get_attribute("src"), src, "the matrix image (batch)")
