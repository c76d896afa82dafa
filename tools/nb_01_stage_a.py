from make_notebooks import PRETRAIN, BACKBONE, DATA, HEADER, RUNNER, TRAIN, code, md, params

NAME = "01_stage_a"

STAGE_A = '''\
alpha_same = 1.0                  # α_same: weight of negatives sharing a class with the anchor
alpha_diff = 1.0                  # α_diff: weight of negatives sharing no class
beta_a = 1.0                      # β_A: weight of the text→audio direction
tag = ""                          # checkpoint folder under checkpoints/; empty: A (or A-order)
'''


def cells():
    return [
        md("""
# 01 · TeminAL A — tell one sound from two
Stage A (SPEC §3, paper eq. 8–9 and 22–26): N single clips `(a_i, "single sound of x_i")` and
N doubles `(a_i ⊕ a_j, "combined sound of x_i and x_j")` in one 2N × 2N contrastive matrix.
Negatives that share a class with the anchor are weighted by `α_same`, others by `α_diff`.
Only the heads train (SPEC §2); trunk features come from the on-disk cache.
"""),
        params(RUNNER, DATA, BACKBONE, PRETRAIN, TRAIN, STAGE_A),
        code(HEADER + "from teminal import plots, widgets\n\n"
             "S = workflow.start(\"01_stage_a\", globals(), tags={\"teminal.stage\": \"A\"})"),
        code("""
data = S.data()
model = modeling.load_model(S, data, "pretrained")
bank = modeling.feature_bank(S, model, data)
task = modeling.stage_a_task(S, model, bank, data)
print(f"stage A: {task.n_train} training rows, {task.n_val} validation rows")
"""),
        code("""
result = modeling.fit_stage(S, model, task, stage="A")
fig = plots.loss_curves(result.history, title="TeminAL A")
mlflow.log_figure(fig, "loss_curves.png")
plt.close(fig)
pd.DataFrame(result.history).tail()
"""),
        md("## A batch's similarity matrix\n2N × 2N logits, blocks single / double; greyed cells are weight-0 columns."),
        code("""
# NBVAL_IGNORE_OUTPUT
view = modeling.batch_views(task, split="val" if task.n_val >= 2 else "train", batch_size=16)
widgets.similarity_explorer(view.get, view.n_batches)
"""),
        code("S.close()"),
    ]
