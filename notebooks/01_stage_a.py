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
# # 01 · TeminAL A — tell one sound from two
# Stage A (SPEC §3, paper eq. 8–9 and 22–26): N singles `(a_i, "single sound of x_i")`, each
# looped to the length of a double, and N doubles `(a_i ⊕ a_j, "combined sound of x_i and
# x_j")` in one 2N × 2N contrastive matrix. Negatives that share a class with the anchor are
# weighted by `α_same`, the others by `α_diff`. Only the heads train (SPEC §2); trunk features
# come from the on-disk cache. A stage A with the same inputs already in the run folder is
# reused, not trained again.

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
optimizer_steps = 6           # optimizer steps (epochs derived)
batch_size = 16               # pairs per batch (paper: 256)
lr = 0.001                    # learning rate (paper: 1e-4)
alpha_same = 1.0              # α_same
alpha_diff = 1.0              # α_diff
beta_a = 1.0                  # β_A
audio_head = "pooled"         # "pooled" | "order"

# %%
from IPython.display import display

from teminal.viz import plots, widgets
from teminal.run import session, steps

S = session.start("01_stage_a", globals(), tags={"teminal.stage": "A"})

# %%
# one training per seed (-p seeds=N: a child run "seed <n>" each); the views show the first
runs = steps.for_seeds(S, lambda seed: steps.stage_a(S, seed=seed, own_run=True))
trained = runs.base
S.show(plots.loss_curves(trained.history, title=f"TeminAL A ({trained.tag})"), "loss_curves.png")
display(steps.history_table(trained))

# %% [markdown]
# ## A batch's similarity matrix
# 2N × 2N logits, blocks single / double; greyed cells have weight 0 (a false negative, or
# α = 0). The picture is the first batch; the explorer below browses batches and anchor rows.

# %%
view = steps.batch_view(S, trained)
S.show(plots.similarity_matrix(**view.figure_args(0)), "similarity_batch.png")

# %%
# NBVAL_IGNORE_OUTPUT
widgets.similarity_explorer(view.get, view.n_batches)

# %%
S.close()
