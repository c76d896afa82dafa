from make_notebooks import DATA, HEADER, RUNNER, code, md, params

NAME = "00_data_synthesis"


def cells():
    return [
        md("""
# 00 · Data synthesis
Builds (or loads) the base set and writes this run's temporal pair manifests — SPEC §1,
paper Algorithm 1. The base set is either **ESC-50** or the **embedded sound world**, a seeded
procedural generator written as an ESC-50-shaped folder, so the same loader serves both.
Composite audio (`a_i ⊕ a_j`, `a_j ⊕ a_i`, `a_i ∧ a_j`) is rendered on the fly from a manifest
row and never written out as a dataset. Each manifest's content hash goes to MLflow.
"""),
        params(RUNNER, DATA),
        code(HEADER + "from teminal import plots, widgets\n\n"
             "S = workflow.start(\"00_data_synthesis\", globals())"),
        md("## Base set"),
        code("""
data = workflow.prepare_data(S.P, S.run_dir)
print(f"base set: {data.base.root}  ({len(data.base.clips)} clips, {len(data.base.classes)} classes, "
      f"{data.base.clip_seconds:g} s at {data.base.sample_rate} Hz)")
display(workflow.base_summary(data.base))
"""),
        md("## Manifests\nOne row per ordered pair (and clip draw); stage B makes three samples of each row: forward, reversed, overlay."),
        code("""
counts = workflow.log_manifests(data)
display(counts)
"""),
        code("""
display(data.manifests.stage_b.head(6))
display(data.manifests.stage_a.head(3))
"""),
        md("## Listen\nPick a pair: its forward, reversed (`T`) and overlaid (`O`) mixtures, with their log-mel spectrograms."),
        code("""
render = data.renderer(workflow.recipe(S.P, data.base.sample_rate))
example = data.manifests.stage_b.iloc[0]
fig = plots.mixture_figure(example, render, data.base.sample_rate)
mlflow.log_figure(fig, "example_mixtures.png")
plt.close(fig)
"""),
        code("""
# NBVAL_IGNORE_OUTPUT
widgets.mixture_player(data.manifests.stage_b, render, data.base.sample_rate)
"""),
        code("S.close()"),
    ]
