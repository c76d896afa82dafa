from make_notebooks import BACKBONE, DATA, HEADER, PRETRAIN, RUNNER, code, md, params

NAME = "00_pretrained_baseline"


def cells():
    return [
        md("""
# 00 · The pretrained baseline
Every later stage starts from this model and every comparison includes it (SPEC §2).
- `backbone = "msclap-2022"` / `"msclap-2023"`: the published Microsoft CLAP weights play this
  role; nothing is trained here, the notebook only measures them.
- `backbone = "tiny"` (the embedded default): the small CLAP has no public weights, so it is
  **pretrained** here CLAP-style — symmetric InfoNCE on single clips of the training folds with
  captions like "the sound of {x}" — and saved to `checkpoints/pretrained/` of the run.

Either way the notebook logs its zero-shot accuracy on held-out clips.
"""),
        params(RUNNER, DATA, BACKBONE, PRETRAIN),
        code(HEADER + "from teminal import plots\n\n"
             "S = workflow.start(\"00_pretrained_baseline\", globals(), tags={\"teminal.model\": \"pretrained\"})"),
        code("""
data = S.data()
model, history = modeling.pretrained_baseline(S, data)
"""),
        code("""
if history:
    fig = plots.loss_curves(history, title="embedded backbone: CLAP-style pretraining")
    mlflow.log_figure(fig, "pretrain_loss.png")
    plt.close(fig)
"""),
        md("## Zero-shot classification on held-out clips\nPrompt `\"The sound of {x}\"` over all classes (paper Table 4, ZSTE Task 1)."),
        code("""
report = evaluate.zero_shot_report(S, model, data)
display(report)
"""),
        code("S.close()"),
    ]
