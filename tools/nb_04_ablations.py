from make_notebooks import PRETRAIN, BACKBONE, DATA, HEADER, RUNNER, TRAIN, ZSTE, code, md, params

NAME = "04_ablations"

GRID = '''\
grid = "1,1,1,1,1"                # settings α_st,α_ct,α_so,α_co,β separated by ; (paper Table 2)
starts = "A"                      # comma list of starts: "pretrained" (T-B) and/or "A" (T-AB)
extra_rows = ""                   # comma list of extra rows: "tclap", "order-head"
order_setting = "1,1,1,1,1"       # α/β of the order-aware head's T-AB row
stage_a_epochs = 2                # epochs of the stage A runs the grid starts from
stage_a_from = ""                 # tag of a stage A checkpoint in the run folder for T-AB rows (empty: train one)
order_epochs = 2                  # stage B epochs of the order-head row (it learns order late)
reuse = True                      # reuse finished child runs with identical inputs
'''


def cells():
    return [
        md("""
# 04 · Ablations — the paper's α/β grid, T-B vs T-AB, baselines, the order-aware head
Each row is a papermill run of the stage notebooks (`01_stage_a`, `02_stage_b` with
`evaluate_zste = True`) as a child MLflow run of this notebook's run. A row whose inputs
(data and manifests, starting checkpoint, every parameter) match a finished run is **reused**,
not retrained. The default grid is the paper's Table 2:
`{α_st, α_ct, α_so, α_co, β} ∈ {(0,0,0,0,1), (1,0,1,0,1), (0,1,0,1,1), (1,1,1,1,1)} × {T-B, T-AB}`.
"""),
        params(RUNNER, DATA, BACKBONE, PRETRAIN, TRAIN, ZSTE, GRID),
        code(HEADER + "from teminal import ablation, plots\n\n"
             "S = workflow.start(\"04_ablations\", globals())"),
        code("""
plan = ablation.plan(S.P)
display(plan[["row", "notebook", "depends_on"]])
"""),
        code("""
outcome = ablation.run(S, plan)
display(outcome[["row", "status", "run_id"]])
"""),
        md("## Table 2 layout\nRows = settings, columns = ZSTE subtasks (%, 95 % interval), chance in the last row."),
        code("""
table = ablation.table(S, outcome)
workflow.log_table(table, "ablation_table")
display(table)
"""),
        code("""
fig = plots.ablation_heatmap(ablation.values(outcome))
mlflow.log_figure(fig, "ablation_heatmap.png")
plt.show()
"""),
        code("""
summary = ablation.summary(outcome)
mlflow.log_text(summary, "ablation_summary.md")
print(summary)
"""),
        code("S.close()"),
    ]
