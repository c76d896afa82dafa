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
# # 04 · Ablations — the α/β grid, T-B vs T-AB, baselines, the order-aware head
# The paper's Table 2 grid `{α_st, α_ct, α_so, α_co, β} ∈ {(0,0,0,0,1), (1,0,1,0,1),
# (0,1,0,1,1), (1,1,1,1,1)} × {T-B, T-AB}` and extra rows: the T-CLAP loss (seed 002), the
# order-aware audio head, the other caption family, the level/duration probe. Each row trains
# and evaluates in-process in a child MLflow run of this notebook's run; a row whose inputs
# match a finished checkpoint or evaluation of the run folder (02_stage_b's T-AB, 03_zste's
# baseline) reuses it. With several training seeds (`-p seeds=N`) a trained row trains once per
# seed (a child run `seed <n>` of the row's run); the tables here show the first seed, `python
# -m teminal report` every seed and the paired differences between rows.

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
grid = [(1, 1, 1, 1, 1)]      # (α_st, α_ct, α_so, α_co, β) settings
starts = ["A"]                # "pretrained" (T-B) and/or "A" (T-AB)
extra_rows = []               # "tclap", "order-head", …
order_setting = (1, 1, 1, 1, 1)  # the order-head row's α/β
order_steps = 6               # the order-head row's optimizer steps
order_lr = None               # its order module's lr (None: lr)

# %%
from IPython.display import display

from teminal import ablation
from teminal.viz import plots
from teminal.run import session, steps

S = session.start("04_ablations", globals())

# %%
rows = ablation.plan(S.config)
display(ablation.plan_table(rows))

# %%
outcome = steps.ablation_rows(S, rows)

# %% [markdown]
# ## Table 2 layout
# Rows = settings, columns = ZSTE subtasks on the held-out pairs (%, 95 % interval), chance
# in the last row.

# %%
table = ablation.table(outcome)
steps.log_table(table, "ablation_table")
display(plots.nowrap(table))

# %%
S.show(plots.ablation_heatmap(ablation.values(outcome)), "ablation_heatmap.png")

# %% [markdown]
# ## Held-out phrasings
# The order tasks asked with phrasings no training caption uses.

# %%
display(plots.nowrap(ablation.table(outcome, set_name="zste_heldout")))

# %% [markdown]
# Every order task one template at a time, held-out and training phrasings, both word orders
# (direct: the first event named first; mirror: named second).

# %%
display(ablation.phrasings(outcome))

# %%
summary = ablation.summary(outcome)
steps.log_text(summary, "ablation_summary.md")
print(summary)

# %%
S.close()
