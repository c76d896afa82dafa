"""Helpers of tests/test_browser.py: a JupyterLab server on a free local port, headless Debian
Chromium driven by Playwright, and notebook runs through JupyterLab's own "Run All Cells".

Chromium is Debian's package (``/usr/bin/chromium``, installed by ``.ci/install_browser.sh``);
Playwright's own browser download cannot run here, so it is always launched with that
executable and a fresh user-data folder.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_HINT = "run `bash .ci/install_browser.sh .venv` (Debian chromium + playwright)"


def skip_reason() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"no Debian Chromium at {CHROMIUM}; {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"the playwright package is not installed in {sys.prefix}; {INSTALL_HINT}"
    lab = Path(sys.executable).with_name("jupyter-lab")
    if not lab.exists():
        return f"no {lab}: install the project's dependencies (jupyterlab) into this venv"
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab server: ``url(notebook)`` opens a notebook in the lab UI."""

    def __init__(self, *, port: int, token: str, root: Path, log: Path) -> None:
        self.port, self.token, self.root, self.log = port, token, root, log

    def api(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def url(self, notebook: str) -> str:
        """The lab UI with ``notebook`` open; ``reset`` starts from an empty workspace (no tabs
        of an earlier page restored)."""
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?reset&token={self.token}"

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def shutdown_kernels(self) -> None:
        """Stop every kernel of this server (through its REST API)."""
        import json

        for kernel in json.loads(self.api("/api/kernels")):
            with contextlib.suppress(urllib.error.URLError):
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")


@contextlib.contextmanager
def jupyter_lab(*, notebooks: Path, work: Path, timeout: float = 120.0) -> Iterator[Lab]:
    """Start ``jupyter lab`` (this venv's) on a free port with a random token, serving working
    copies of ``notebooks`` made under ``work`` as ``make lab`` makes them
    (``notebook_tools.lab_copies``); wait until it answers; stop it and its kernels after.

    The server inherits ``os.environ`` (so the test session's ``TEMINAL_WORKDIR`` and
    ``TEMINAL_TRACKING_URI`` reach the kernels), with ``MPLBACKEND=Agg`` and private Jupyter
    config, settings, workspace and runtime folders under ``work`` (no user state leaks in).
    """
    from teminal.notebook_tools import lab_copies

    root = work / "notebooks"
    lab_copies(notebooks, root)  # what `make lab` serves: unpaired working copies
    port, token, log = free_port(), secrets.token_hex(16), work / "jupyter-lab.log"
    env = dict(os.environ, MPLBACKEND="Agg")
    for var, name in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("JUPYTER_RUNTIME_DIR", "runtime")):
        env[var] = str(work / "jupyter" / name)
    cmd = [str(Path(sys.executable).with_name("jupyter-lab")), "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", "--ServerApp.allow_root=True",
           f"--IdentityProvider.token={token}",  # ServerApp.token's current name
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    lab = Lab(port=port, token=token, root=root, log=log)
    try:
        _wait_until_up(lab, proc, timeout)
        yield lab
    finally:
        with contextlib.suppress(Exception):
            lab.shutdown_kernels()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(lab: Lab, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            lab.api("/api/status")
            return
        time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer on port {lab.port} within {timeout:.0f} s:\n"
                       f"{lab.log_tail()}")


@contextlib.contextmanager
def chromium(work: Path) -> Iterator[object]:
    """A headless Debian Chromium (Playwright persistent context, fresh user-data folder)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(work / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


# JupyterLab's app (exposed by --LabApp.expose_app_in_browser) runs the notebook it shows. The
# command's promise settles when every cell has run (or the run stopped at an error); it is
# not awaited here so that Python keeps the timeout.
_RUN_ALL_JS = """async (name) => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  const panel = app.shell.currentWidget;
  if (!panel || !panel.context || panel.context.path !== name) {
    throw new Error(`the current widget is not the notebook ${name}`);
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  window.__runAll = 'running';
  app.commands.execute('notebook:run-all-cells').then(
    (ok) => { window.__runAll = ok === false ? 'stopped: a cell failed' : 'done'; },
    (err) => { window.__runAll = 'failed: ' + err; });
}"""

_CURRENT_IS_JS = """(name) => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  return !!(w && w.context && w.context.path === name && w.sessionContext
            && w.sessionContext.session && w.sessionContext.session.kernel);
}"""

# Done: "Run All Cells" settled, the kernel is idle and no code cell is queued or running.
_DONE_JS = """() => {
  if (window.__runAll === 'running') return false;
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  const prompts = [...panel.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.every(p => !p.textContent.includes('*'));
}"""


def run_all_cells(page, lab: Lab, notebook: str, *, timeout_s: float) -> None:
    """Open ``notebook`` in JupyterLab, run its command "Run All Cells" and wait (at most
    ``timeout_s``) until the run has settled and the kernel is idle."""
    page.goto(lab.url(notebook), wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function(_CURRENT_IS_JS, arg=notebook, timeout=120_000, polling=500)
    page.evaluate(_RUN_ALL_JS, notebook)
    page.wait_for_function(_DONE_JS, timeout=timeout_s * 1000, polling=500)
    state = page.evaluate("() => window.__runAll")
    if state != "done":
        raise AssertionError(f"Run All Cells of {notebook}: {state}")


def notebook_errors(page) -> str:
    """Text of the error / stderr outputs shown in the page (for failure messages)."""
    texts = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
                         ).all_inner_texts()
    return "\n".join(t.strip() for t in texts if t.strip())[-4000:]


@contextlib.contextmanager
def screenshot_on_failure(page, path: Path) -> Iterator[None]:
    """On any failure inside, save a full-page screenshot to ``path`` and name it (and the
    notebook's error outputs) in the raised AssertionError."""
    try:
        yield
    except Exception as err:
        shot = path
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception as shot_err:  # the page itself may be gone
            shot = f"(no screenshot: {shot_err})"
        errors = notebook_errors(page) if not isinstance(shot, str) else ""
        what = str(err) if isinstance(err, AssertionError) else f"{type(err).__name__}: {err}"
        raise AssertionError(f"{what}\nscreenshot: {shot}"
                             + (f"\nnotebook error outputs:\n{errors}" if errors else "")) from err


_SAVE_JS = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('docmanager:save');
  return app.shell.currentWidget.context.model.dirty;
}"""


def save_current(page) -> None:
    """Save the current notebook as a user would (File › Save); waits until it is not dirty."""
    dirty = page.evaluate(_SAVE_JS)
    if dirty:
        raise AssertionError("the notebook is still dirty after docmanager:save")


def open_notebook(page, lab: Lab, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab without running it (no kernel needed to show outputs)."""
    page.goto(lab.url(notebook), wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function("""(name) => {
      const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
      return !!(w && w.context && w.context.path === name && w.context.isReady);
    }""", arg=notebook, timeout=120_000, polling=500)
