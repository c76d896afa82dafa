"""What notebooks call, one step per function (each takes the notebook's ``Session``).

data        ``prepare_data``, ``load_data``, ``base_summary``, ``log_manifests``, ``leak_check``
models      ``pretrain``, ``pretrained_model``, ``fresh_model``, ``trunk_cache``,
            ``feature_bank``, ``check_pretrained``
stages      ``stage_a``, ``stage_b``, ``build_task``  (finished stages are reused by input key)
seeds       ``for_seeds``, ``seed_run``, ``PerSeed``  (one result per training seed)
ablation    ``ablation_rows``  (the rows of ``teminal.ablation.plan``, trained or reused)
evaluate    ``evaluate_models``, ``evaluate_ref``, ``evaluate_trained``, ``probe``,
            ``zero_shot``
show        what the notebooks show and log: ``zste_table``, ``set_comparison``,
            ``phrasing_comparison``, ``probe_auc_table``, the widgets' views
"""
from .ablation import ablation_rows
from .data import RunData, base_summary, leak_check, load_data, log_manifests, prepare_data
from .evaluate import (Evaluation, evaluate_model, evaluate_models, evaluate_ref,
                       evaluate_trained, probe, zero_shot)
from .models import (PRETRAINED, check_pretrained, feature_bank, fresh_model, inputs, pretrain,
                     pretrained_key, pretrained_model, trunk_cache)
from .seeds import PerSeed, for_seeds, seed_run
from .show import (batch_view, history_table, last_model, log_table, log_text, pair_view,
                   phrasing_comparison, probe_auc_table, set_comparison, zste_table)
from .stages import Trained, build_task, stage_a, stage_b

__all__ = [
    "ablation_rows",
    "RunData", "base_summary", "leak_check", "load_data", "log_manifests", "prepare_data",
    "Evaluation", "batch_view", "evaluate_model", "evaluate_models", "evaluate_ref",
    "evaluate_trained", "history_table", "last_model", "log_table", "log_text", "pair_view",
    "phrasing_comparison",
    "probe", "probe_auc_table", "set_comparison", "zero_shot", "zste_table",
    "PRETRAINED", "check_pretrained", "feature_bank", "fresh_model", "inputs", "pretrain",
    "pretrained_key", "pretrained_model", "trunk_cache", "Trained", "build_task",
    "stage_a", "stage_b", "PerSeed", "for_seeds", "seed_run",
]
