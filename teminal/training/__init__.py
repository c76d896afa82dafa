"""Training (SPEC §3), no notebook session: stage tasks (``stages``), embedded pretraining
(``pretrain``) and the runner they share — ``fit`` (the loop) over ``config`` (optimizer and
schedule settings), ``precision`` (bf16 autocast), ``checkpoints`` (best/last, exact resume)
and ``metrics`` (MLflow, one batch per epoch). Imports go downward only: models, losses, data,
features and cache; never ``teminal.run`` or evaluation."""
