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
# # 00 · Data synthesis
# Builds (or loads) the base set and writes this run's temporal pair manifests — SPEC §1,
# paper Algorithm 1. The base set is **ESC-50**, **any ESC-50-shaped folder** (`dataset =
# "folder"`), or the **embedded sound world**, a seeded procedural generator written as an
# ESC-50-shaped folder, so one loader serves all three.
#
# With `pairing = "folds"` the evaluation items are held out on **both axes**: new recordings
# (the test fold) *and* unordered class pairs never trained on. A second evaluation set, the
# **seen combinations** (test-fold clips in training class pairs), is kept beside it. Composite
# audio (`a_i ⊕ a_j`, `a_j ⊕ a_i`, `a_i ∧ a_j`) is rendered on the fly from a manifest row,
# every part and every composite at the same loudness and every composite of a pair at the
# same duration, so neither tells "while" from "before".

# %% tags=["parameters"]
run_dir = ""                  # a pipeline run folder; empty: a new standalone run under runs/
config = ""                   # standalone only: params/<name>.yaml (empty: the smoke defaults)
dataset = "embedded"          # "embedded" | "esc50" | "folder"
data_root = ""                # folder: required; esc50: empty means data/ESC-50
classes = None                # a class subset: a count or names (None: all)
world_classes = 10            # embedded world: classes
world_clips_per_class = 10    # embedded world: clips per class
world_clip_seconds = 0.5      # embedded world: clip length (s)
pairing = "folds"             # "folds" | "paper"
test_fraction = 0.3           # class pairs held out for evaluation
train_repeats = 1             # folds: clip draws per training pair
level_rms = 0.1               # RMS of parts and composites (None: off)
renormalize = True            # composite back to level_rms

# %%
from IPython.display import display

from teminal.viz import plots, widgets
from teminal.run import session, steps

S = session.start("00_data_synthesis", globals())

# %% [markdown]
# ## Base set

# %%
data = steps.prepare_data(S)
print(f"{data.base.name}: {len(data.base.clips)} clips, {len(data.classes)} classes, "
      f"{data.base.clip_seconds:g} s at {data.base.sample_rate} Hz")
display(steps.base_summary(data.base))

# %% [markdown]
# ## Manifests
# One row per ordered class pair and clip draw; stage B makes three samples of each row
# (forward, reversed, overlay), stage A two (a single looped to the double's length, a double).
# Splits: `train` / `val` (training class pairs, training clips), `test` (held-out class pairs,
# test-fold clips) and `seen` (training class pairs, test-fold clips).

# %%
display(steps.log_manifests(S, data))

# %% [markdown]
# **What evaluation shares with training.** The held-out set (`test`) must share neither class
# pairs nor clips with training; the seen set shares class pairs by design, never clips.

# %%
display(steps.leak_check(data))

# %%
display(data.manifests.stage_b[["i", "j", "clip_i", "clip_j", "clip_i2", "clip_j2", "caption_f", "caption_r", "caption_o", "para_f", "split"]].head(6))

# %% [markdown]
# ## Listen
# A row's forward, reversed (`T`) and overlaid (`O`) mixtures with their log-mel spectrograms;
# the picture below stays in the executed copy, the player underneath needs a live kernel.

# %%
render = data.renderer(data.base.sample_rate)
example = data.manifests.stage_b.iloc[0]
S.show(plots.mixture_figure(example, render, data.base.sample_rate), "example_mixtures.png")

# %%
# NBVAL_IGNORE_OUTPUT
widgets.mixture_player(data.manifests.stage_b, render, data.base.sample_rate)

# %%
S.close()
