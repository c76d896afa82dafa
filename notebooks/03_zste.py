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
# # 03 · ZSTE — zero-shot temporal evaluation
# The 11 subtasks of SPEC §4 (paper §4.2, B.4, Algorithms 2–3) plus 3A-o (order only) and 3A-c
# (order consistency) and 3W (balanced "while": a constant answer scores 50, so 3B bought with
# 3A shows), the order scores in both directions (3A-a; the Winoground trio 3A-text / 3A-audio /
# 3A-group) and 3C (three events: `a_x ⊕ a_y ⊕ a_z` of a held-out class triple against its six
# orders), each with its chance level and a 95 % interval from a bootstrap over
# classes (items that share a class move together, and with it their clips and pairs; identical
# items count once; `teminal.eval.intervals`).
# Three evaluation sets:
# - **held-out pairs** (`zste/…`): new recordings in class combinations never trained on;
# - **seen combinations** (`zste_seen/…`): new recordings in training class combinations;
# - **held-out phrasings** (`zste_heldout/…`): the order tasks asked with phrasings no training
#   caption uses.
#
# The **level/duration probe** is a logistic regression on level and length statistics of each
# composite only (duration, RMS, peak, crest factor, silent share), fitted on the training items
# and scored by its decision on single-vs-double (A-sd), 3B and 3W: above chance means the
# recipe gives the answer away. Each model is evaluated in its own MLflow
# run (tag `teminal.model`) under this notebook's run.
#
# With several training seeds (`-p seeds=N`) a trained model is evaluated once per seed, each in
# a child run `seed <n>` of its run; the tables here show the first seed, and `python -m
# teminal report` every seed (mean, interval over seeds and items, seed range).

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
models = ["pretrained", "B"]  # "pretrained", "A", "B"
n_boot = 200                  # bootstrap resamples
seen = True                   # also the seen-combinations set
heldout = True                # also the held-out phrasings
probe = True                  # also the level/duration probe

# %%
from IPython.display import display

from teminal.viz import plots, widgets
from teminal.run import session, steps

S = session.start("03_zste", globals())

# %%
results = steps.evaluate_models(S)
last = steps.last_model(results)  # the model the views below show
if S.params.probe:
    results["probe:level-duration"] = steps.probe(S)

# %% [markdown]
# What each statistic alone tells (AUC; 0.5 = nothing): `A-sd` double vs single, `while`
# overlay vs sequential, on the training items and each evaluation set; `· decision` marks the
# statistics the probe decides on. The envelope's (spread, range, onsets) are what two sounds
# at once are — a smoother envelope than the same two in sequence — not a recipe's cue.

# %%
if S.params.probe:
    display(steps.probe_auc_table(results["probe:level-duration"]))

# %% [markdown]
# ## Held-out class pairs and clips (Table 3 layout)
# `paper:` columns are the paper's figures, measured on msclap and ESC-50: compare
# directions, not values.

# %%
table = steps.zste_table(results)
steps.log_table(table, "zste_table")
display(plots.nowrap(table))

# %%
S.show(plots.zste_bars({k: r.tables["zste"] for k, r in results.items()}), "zste_bars.png")

# %% [markdown]
# ## Seen vs held-out combinations, and held-out phrasings
# A model that only memorised its training class pairs scores higher on the seen set; one
# that only memorised its training phrasings falls on the held-out phrasings.

# %%
display(plots.nowrap(steps.set_comparison(results)))

# %% [markdown]
# The order tasks one template at a time, held-out and training phrasings, each with its word
# order (direct: the first event named first; mirror: named second): a model that learned "the
# first class named is heard first" rather than the meaning of "before" / "after" gets the
# direct templates right and the mirror-worded ones ("{y} comes later than {x}") wrong.

# %%
display(steps.phrasing_comparison(results))

# %% [markdown]
# ## Which pairs fail
# Per task, the held-out items the last model gets wrong.

# %%
# NBVAL_IGNORE_OUTPUT
widgets.failure_view(last.items["zste"], class_names=S.data.classes)

# %% [markdown]
# ## Similarity of an evaluation pair
# For the last model: the three audios of a held-out pair against its three captions.

# %%
view = steps.pair_view(S, last)
S.show(plots.similarity_matrix(**view.figure_args(0)), "similarity_pair.png")

# %%
# NBVAL_IGNORE_OUTPUT
widgets.similarity_explorer(view.get, view.n_batches)

# %%
S.close()
