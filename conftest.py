"""Test-session set-up shared by tests/ and the nbval notebook runs.

Every test and every notebook kernel started by nbval or papermill writes to a temporary
MLflow store and work folder, never the user's ``mlruns/``, ``runs/``, ``data/`` or ``cache/``.
Kernels inherit these environment variables from the pytest process; ``make notebooks``
executes the committed notebooks under the very same environment
(``teminal.notebook_tools.test_environment``), so nbval compares like with like. That
environment includes the deterministic CPU mode (``teminal.determinism``), forced over the
caller's values: the stored numbers are the same on every x86-64 CPU, so a caller's
``ATEN_CPU_CAPABILITY`` or ``OMP_NUM_THREADS`` must not leak into the kernels.
"""
import os
import shutil
import tempfile

ROOT_KEY = "teminal_test_root"


def pytest_configure(config):
    from teminal.determinism import environment
    from teminal.notebook_tools import test_environment

    root = tempfile.mkdtemp(prefix="teminal-tests-")
    setattr(config, ROOT_KEY, root)
    forced = {"TEMINAL_WORKDIR", "TEMINAL_TRACKING_URI", *environment()}
    for key, value in test_environment(root).items():
        if key in forced:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)


def pytest_unconfigure(config):
    """The session's work folder (trunk caches, runs) goes with the session: on a small disk, a
    few suites' caches would otherwise fill it."""
    root = getattr(config, ROOT_KEY, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
