from make_notebooks import PRETRAIN, BACKBONE, DATA, HEADER, RUNNER, ZSTE, code, md, params

NAME = "03_zste"

MODELS = '''\
models = "pretrained"             # comma list: "pretrained", checkpoint tags of this run, or .pt paths
audio_head = "pooled"             # audio head of the evaluated checkpoints ("pooled" | "order")
'''


def cells():
    return [
        md("""
# 03 · ZSTE — zero-shot temporal evaluation
The 11 subtasks of SPEC §4 (paper §4.2, B.4, Algorithms 2–3) plus 3A-o (order only) and
3A-c (order consistency), each with its chance level and a 95 % interval, on held-out clips and
pairs. Every model is evaluated in its own MLflow run (tag `teminal.model`), nested under this
notebook's run. The paper's figures are shown beside ours for orientation only: they were
measured on another model (msclap) and other data (ESC-50).
"""),
        params(RUNNER, DATA, BACKBONE, PRETRAIN, ZSTE, MODELS),
        code(HEADER + "from teminal import plots, widgets, zste\n\n"
             "S = workflow.start(\"03_zste\", globals())"),
        code("""
data = S.data()
results = {}
for name in workflow.split_list(S.P["models"]):
    results[name] = evaluate.evaluate_model(S, data, name)
    print(f"{name}: " + ", ".join(f"{t} {v:.1f}" for t, v in zip(results[name].table.task, results[name].table.value)))
"""),
        md("## Table 3 layout\nOur models with 95 % intervals and chance levels; `paper:` columns are the paper's figures (msclap on ESC-50)."),
        code("""
table = plots.zste_table({k: r.table for k, r in results.items()}, paper=zste.PAPER_TABLE3)
workflow.log_table(table, "zste_table")
display(table)
"""),
        code("""
fig = plots.zste_bars({k: r.table for k, r in results.items()})
mlflow.log_figure(fig, "zste_bars.png")
plt.show()
"""),
        md("## Which pairs fail\nPer task, the evaluation items a model gets wrong."),
        code("""
# NBVAL_IGNORE_OUTPUT
widgets.failure_view(results[list(results)[-1]].items)
"""),
        md("## Similarity matrix of an evaluation pair\nFor the last model: the three audios of a test pair against its three captions."),
        code("""
# NBVAL_IGNORE_OUTPUT
view = evaluate.eval_pair_views(S, data, list(results)[-1])
widgets.similarity_explorer(view.get, view.n_batches)
"""),
        code("S.close()"),
    ]
