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
# # 02 · TeminAL B — before, after, while
# Stage B (SPEC §3, paper eq. 3–7): a batch of N pairs gives 3N audios `[A_f; A_r; A_o]`
# (forward `a_i ⊕ a_j`, reversed `a_j ⊕ a_i`, overlay `a_i ∧ a_j`) and 3N captions. The weight
# table (α_st, α_ct, α_so, α_co) decides how hard the temporally inverted and overlaid captions
# push back; `β` weighs the text→audio direction. "Same pair" follows meaning (`weights_by =
# "meaning"`: the mirrored pair's captions count as the anchor's own). Starting from stage A
# gives **T-AB**, from the pretrained model **T-B**; `loss = "tclap"` trains the T-CLAP baseline.
# `captions = "paraphrase"` trains on a family of phrasings (SPEC §1), "paper" on the paper's.

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
start_from = "A"              # "A" (T-AB) | "pretrained" (T-B)
loss = "teminal"              # "teminal" | "tclap"
alpha_st = 1.0                # α_st
alpha_ct = 1.0                # α_ct
alpha_so = 1.0                # α_so
alpha_co = 1.0                # α_co
beta = 1.0                    # β
weights_by = "meaning"        # "meaning" | "block"
captions = "paraphrase"       # "paraphrase" | "paper"
audio_head = "pooled"         # "pooled" | "order"
optimizer_steps = 6           # optimizer steps (epochs derived)
batch_size = 16               # pairs per batch (paper: 256)
lr = 0.001                    # learning rate (paper: 1e-4)
order_lr = None               # the order module's lr (None: lr)

# %%
from IPython.display import display

from teminal.viz import plots, widgets
from teminal.run import session, steps

S = session.start("02_stage_b", globals(), tags={"teminal.stage": "B"})

# %%
# one training per seed (-p seeds=N: a child run "seed <n>" each); the views show the first
runs = steps.for_seeds(S, lambda seed: steps.stage_b(S, seed=seed, own_run=True))
trained = runs.base
S.show(plots.loss_curves(trained.history, title=f"TeminAL B ({trained.tag})"), "loss_curves.png")
display(steps.history_table(trained))

# %% [markdown]
# ## A batch's similarity matrix
# 3N × 3N logits, blocks f / r / o; greyed cells have weight 0 (α = 0 or a false negative).

# %%
view = steps.batch_view(S, trained)
S.show(plots.similarity_matrix(**view.figure_args(0)), "similarity_batch.png")

# %%
# NBVAL_IGNORE_OUTPUT
widgets.similarity_explorer(view.get, view.n_batches)

# %%
S.close()
