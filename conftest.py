"""Test-session set-up shared by tests/ and the nbval notebook runs.

Every test and every notebook kernel started by nbval or papermill writes to a temporary
MLflow store and work folder, never the user's ``mlruns/``, ``runs/``, ``data/`` or ``cache/``.
Kernels inherit these environment variables from the pytest process.
"""
import os
import tempfile


def pytest_configure(config):
    root = tempfile.mkdtemp(prefix="teminal-tests-")
    os.environ["TEMINAL_WORKDIR"] = root
    os.environ["TEMINAL_TRACKING_URI"] = f"sqlite:///{root}/mlruns/mlflow.db"
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
