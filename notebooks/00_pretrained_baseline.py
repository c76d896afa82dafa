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
# # 00 · The pretrained baseline
# Every later stage starts from this model and every comparison includes it (SPEC §2).
# - `backbone = "msclap-2022"` / `"msclap-2023"`: the published Microsoft CLAP weights play this
#   role; nothing is trained here, the notebook measures them.
# - `backbone = "tiny"` (the embedded default): the small CLAP has no public weights, so it is
#   **pretrained** here CLAP-style — symmetric InfoNCE on every clip no evaluation item uses,
#   with captions like "a recording of {x}" — and saved to `checkpoints/pretrained/` of the run.
#
# Then the frozen trunks encode every clip and caption the run needs, once, into the on-disk
# trunk cache, and the zero-shot accuracy per split is measured with the paper's prompt
# "The sound of a {x}". A backbone under twice chance on its own training clips has learned
# nothing usable: the run stops here (SPEC §6).

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
backbone = "tiny"             # "tiny" | "msclap-2022" | "msclap-2023"
msclap_weights = ""           # msclap: local weights ("": download)
tiny_width = 16               # tiny: channels of the first CNN block
optimizer_steps = 24          # tiny: pretraining optimizer steps
batch_size = 16               # tiny: clips per batch
lr = 0.002                    # tiny: pretraining learning rate

# %%
from IPython.display import display

from teminal.viz import plots
from teminal.run import session, steps

S = session.start("00_pretrained_baseline", globals(), tags={"teminal.model": "pretrained"})

# %%
model, history = steps.pretrain(S)
if history:
    S.show(plots.loss_curves(history, title="embedded backbone: CLAP-style pretraining"),
           "pretrain_loss.png")

# %% [markdown]
# ## Zero-shot classification per split
# Top-1 / top-5 (%) with the prompt "The sound of a {x}" over all classes (paper Table 4).
# `train` are the pretraining clips themselves: the SPEC §6 gate reads that row.

# %%
zero_shot = steps.zero_shot(S, model)
display(zero_shot.round(1))
steps.check_pretrained(S, zero_shot)

# %%
S.close()
