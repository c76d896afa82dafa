"""Write the pipeline notebooks (outputs stripped) from the cell lists below.

The notebooks are the product; this script only keeps their shared parameter blocks
identical. Edit here, run `python tools/make_notebooks.py`, and commit both.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"

RUNNER = '''\
run_dir = ""                      # pipeline run folder; empty: a new runs/standalone-<notebook>-<time>
parent_run_id = ""                # MLflow parent run (set by the pipeline)
mlflow_run_id = ""                # this notebook's MLflow run (set by the pipeline)
tracking_uri = ""                 # empty: sqlite:///<repo>/mlruns/mlflow.db
seed = 0                          # torch / numpy seed of this notebook
'''

DATA = '''\
dataset = "embedded"              # "embedded" (procedural sound world) | "esc50"
data_root = ""                    # empty: <workdir>/data/<dataset>
esc50_download = False            # download ESC-50 when data_root holds no copy (needs network)
allow_partial = False             # go on with a partial / damaged copy, dropping bad files
world_classes = 8                 # embedded world: number of sound classes
world_clips_per_class = 10        # embedded world: clips per class, spread over 5 folds
world_clip_seconds = 0.5          # embedded world: clip length in seconds
world_sample_rate = 16000         # embedded world: sample rate in Hz
world_seed = 0                    # embedded world: generator seed
pairing = "folds"                 # "folds": train folds 1-4, test fold 5 | "paper": 1 clip/class, 70/30
pair_seed = 0                     # seed of clip choice, phrasing (before/after) and splits
test_fraction = 0.3               # pairing paper: share of unordered pairs held out for test
val_fraction = 0.1                # share of training unordered pairs kept for validation loss
train_repeats = 1                 # pairing folds: clip draws per ordered training pair
eval_repeats = 1                  # pairing folds: clip draws per ordered test pair
caption_single = "single sound of {x}"           # stage A single (paper B.2)
caption_double = "combined sound of {x} and {y}" # stage A double (paper B.2)
caption_before = "{x} before {y}"                # stage B, x first
caption_after = "{y} after {x}"                  # stage B, x first (same audio as before)
caption_while = "{x} while {y}"                  # stage B overlay
caption_class = "the sound of {x}"               # single clips (pretraining, replay)
level_rms = 0.1                   # RMS of each part before combining; 0 turns it off
peak_limit = 0.99                 # peak limit after combining; 0 turns it off
'''

BACKBONE = '''\
backbone = "tiny"                 # "tiny" (embedded small CLAP) | "msclap-2022" | "msclap-2023"
msclap_weights = ""               # local CLAP_weights_<version>.pth; empty: msclap's hub download
msclap_tokenizer = ""             # local tokenizer folder; empty: from the hub
device = "auto"                   # "auto" | "cpu" | "cuda"
cache_root = ""                   # empty: <workdir>/cache (frozen-trunk features)
eval_batch_size = 512             # batch size of trunk and embedding passes
'''

PRETRAIN = '''\
pretrain_epochs = 3               # embedded backbone: CLAP-style pretraining epochs
pretrain_batch_size = 64          # embedded backbone: pretraining batch size
pretrain_lr = 0.001               # embedded backbone: pretraining learning rate
tiny_width = 16                   # embedded backbone: channels of the first CNN block (doubling per block)
tiny_hop = 160                    # embedded backbone: STFT hop in samples (log-mel frame rate)
'''

TRAIN = '''\
audio_head = "pooled"             # "pooled" (paper: fc1 + projection) | "order" (order-aware, frames)
epochs = 2                        # training epochs
batch_size = 32                   # pairs per batch (paper: 256)
lr = 0.0001                       # learning rate (paper: 1e-4)
optimizer = "adam"                # "adam" | "adamw"
weight_decay = 0.0                # decoupled for adamw, L2 for adam
grad_clip = 1.0                   # max gradient norm; 0 turns it off
schedule = "cosine"               # "constant" | "cosine"
warmup_steps = 0                  # linear warmup steps
replay_weight = 0.0               # λ_replay: InfoNCE on single clips (not in the paper; 0 turns it off)
'''

ZSTE = '''\
zste_seed = 0                     # seed of distractor prompts and bootstrap
n_boot = 200                      # bootstrap resamples of the 95 % intervals
'''

HEADER = '''\
import matplotlib
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from IPython.display import display

from teminal import evaluate, modeling, workflow
'''


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, *, tags: tuple[str, ...] = ()):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def params(*blocks: str):
    return code("".join(blocks), tags=("parameters",))


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    path = OUT / f"{name}.ipynb"
    nbformat.write(nb, path)
    print("wrote", path)


if __name__ == "__main__":
    import importlib.util
    import sys

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    for spec_file in sorted(here.glob("nb_*.py")):
        spec = importlib.util.spec_from_file_location(spec_file.stem, spec_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        write(module.NAME, module.cells())
