from make_notebooks import PRETRAIN, BACKBONE, DATA, HEADER, RUNNER, TRAIN, ZSTE, code, md, params

NAME = "02_stage_b"

STAGE_B = '''\
start_from = "pretrained"         # A: from stage A's checkpoint (T-AB), or pretrained (T-B)
stage_a_tag = ""                  # stage A checkpoint folder; empty: A (or A-order)
loss = "teminal"                  # teminal (TNCE, SPEC §3) or tclap (the L_c + λ L_t baseline)
alpha_st = 1.0                    # α_st: the same pair's reversed (and, for o, reversed) caption
alpha_ct = 1.0                    # α_ct: other pairs' reversed captions
alpha_so = 1.0                    # α_so: the same pair's overlay caption
alpha_co = 1.0                    # α_co: other pairs' overlay captions
beta = 1.0                        # β: weight of the text→audio direction
tclap_lambda = 0.5                # λ of the T-CLAP baseline
evaluate_zste = False             # run ZSTE on the test split at the end and log zste/*
tag = ""                          # checkpoint folder; empty: T-AB / T-B / T-CLAP (+ -order)
'''


def cells():
    return [
        md("""
# 02 · TeminAL B — before, after, while
Stage B (SPEC §3, paper eq. 3–7): a batch of N pairs gives 3N audios `[A_f; A_r; A_o]`
(forward `a_i ⊕ a_j`, reversed `a_j ⊕ a_i`, overlay `a_i ∧ a_j`) and 3N captions. The weight
table (α_st, α_ct, α_so, α_co) decides how hard the temporally inverted and overlaid captions
push back; `β` weighs the text→audio direction. Starting from stage A gives **T-AB**, from
the pretrained model **T-B**. `loss = "tclap"` trains the T-CLAP baseline on the same rows.
"""),
        params(RUNNER, DATA, BACKBONE, PRETRAIN, TRAIN, STAGE_B, ZSTE),
        code(HEADER + "from teminal import plots, widgets\n\n"
             "S = workflow.start(\"02_stage_b\", globals(), tags={\"teminal.stage\": \"B\"})"),
        code("""
data = S.data()
model = modeling.load_model(S, data, modeling.stage_b_start(S.P))
bank = modeling.feature_bank(S, model, data)
task = modeling.stage_b_task(S, model, bank, data)
print(f"stage B ({S.P['loss']}): {task.n_train} training rows × 3 samples, {task.n_val} validation rows")
"""),
        code("""
result = modeling.fit_stage(S, model, task, stage="B")
fig = plots.loss_curves(result.history, title=f"TeminAL B ({modeling.stage_tag(S.P, 'B')})")
mlflow.log_figure(fig, "loss_curves.png")
plt.close(fig)
pd.DataFrame(result.history).tail()
"""),
        md("## A batch's similarity matrix\n3N × 3N logits, blocks f / r / o; greyed cells have weight 0 (α = 0 or a false negative)."),
        code("""
# NBVAL_IGNORE_OUTPUT
view = modeling.batch_views(task, split="val" if task.n_val >= 2 else "train", batch_size=8)
widgets.similarity_explorer(view.get, view.n_batches)
"""),
        md("## ZSTE on the test split (when `evaluate_zste`)"),
        code("""
if S.P["evaluate_zste"]:
    mlflow.set_tag("teminal.model", evaluate.model_label(modeling.stage_tag(S.P, "B")))
    zste_result = evaluate.zste_for(S, model, data, bank=bank)
    display(zste_result.table)
"""),
        code("S.close()"),
    ]
