# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Evaluate any audio–language model on the same items
# Every model listed — rows of this run (`pretrained`, `A`, `B`, `order-head`) and any other
# CLAP through an adapter (`msclap-2022,…`, `laion-clap,checkpoint=…`, `my_pkg.mod:make_model`;
# README "Evaluate any audio–language model") — is scored on the same held-out pairs, seen
# combinations, held-out phrasings and three-event triples: every ZSTE task, the order scores
# in both directions (3A-a; the Winoground trio 3A-text / 3A-audio / 3A-group, read against
# CompA-order), 3C, zero-shot classification, and retrieval / CompA-order when their folders
# are given. Each model gets a nested MLflow run; the report card goes to this notebook's run.

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
models = ["pretrained", "B"]  # run rows or adapter specs
n_boot = 200                  # bootstrap resamples
triples = 20                  # 3C: held-out class triples (0: none)
captioned = "none"            # "none" | "clotho" | "audiocaps"
captioned_root = ""           # its local folder
compa_csv = ""                # CompA-order CSV ("": not scored)
compa_audio_dir = ""          # its CompA_order_files folder

# %%
from IPython.display import Markdown, display

from teminal.run import session
from teminal.run.steps import anymodel

S = session.start("05_evaluate_model", globals())

# %%
reports = anymodel.evaluate_all(S)

# %% [markdown]
# ## The report card
# Task by task, every model with its 95 % interval, the chance level and the paper's Table 3
# columns (its models and split: compare directions, not values).

# %%
card = anymodel.report_card(S, reports)
display(Markdown(card))

# %%
S.close()
