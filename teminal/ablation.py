"""The ablation grid: the paper's Table 2 α/β settings × {T-B, T-AB}, plus baselines.

``plan`` turns the notebook parameters into rows; ``run`` executes each row as a papermill run
of a stage notebook, a child MLflow run of the ablation run, reusing a FINISHED run whose
inputs are identical (same parameters, same manifests, same starting checkpoint bytes);
``table`` / ``values`` / ``summary`` read the rows' ZSTE results back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from . import tracking
from .pipeline import declared_parameters, execute_notebook, notebooks_dir

RUNNER_KEYS = ("run_dir", "parent_run_id", "mlflow_run_id", "tracking_uri")
PAPER_GRID = "0,0,0,0,1;1,0,1,0,1;0,1,0,1,1;1,1,1,1,1"
EXTRA_ROWS = ("tclap", "order-head")
STARTS = ("pretrained", "A")


def parse_setting(text: str, *, name: str = "grid") -> tuple[float, ...]:
    """``"1,0,1,0,1"`` → (α_st, α_ct, α_so, α_co, β); a clear error naming ``name``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not five comma-separated numbers α_st,α_ct,α_so,α_co,β") from None
    if len(values) != 5 or min(values) < 0:
        raise ValueError(f"{name}: {text!r} must be five numbers ≥ 0: α_st,α_ct,α_so,α_co,β")
    return values


def _label(values: tuple[float, ...]) -> str:
    return "(" + ",".join(f"{v:g}" for v in values) + ")"


def _stage_b(setting: tuple[float, ...], **extra: Any) -> dict[str, Any]:
    keys = ("alpha_st", "alpha_ct", "alpha_so", "alpha_co", "beta")
    return dict(zip(keys, setting), evaluate_zste=True, **extra)


@dataclass(frozen=True)
class Row:
    row: str
    notebook: str
    params: dict
    depends_on: str = ""  # checkpoint tag this row starts from ("" = pretrained)


def plan(P: Mapping[str, Any]) -> pd.DataFrame:
    """The rows to run, in dependency order (stage A rows first)."""
    grid = [parse_setting(s) for s in str(P["grid"]).split(";") if s.strip()]
    starts = [s.strip() for s in str(P["starts"]).split(",") if s.strip()]
    extras = [s.strip() for s in str(P["extra_rows"]).split(",") if s.strip()]
    for s in starts:
        if s not in STARTS:
            raise ValueError(f"starts: {s!r} is not one of {STARTS}")
    for e in extras:
        if e not in EXTRA_ROWS:
            raise ValueError(f"extra_rows: {e!r} is not one of {EXTRA_ROWS}")
    a_epochs = int(P["stage_a_epochs"])
    # T-AB rows start from a stage A checkpoint already in the run folder (the pipeline's own
    # 01_stage_a) or from one the ablation trains itself
    a_tag = str(P.get("stage_a_from") or "").strip() or "abl-A"
    rows: list[Row] = []
    if "A" in starts and a_tag == "abl-A":
        rows.append(Row("stage A", "01_stage_a", {"audio_head": "pooled", "epochs": a_epochs, "tag": "abl-A"}))
    if "order-head" in extras:
        rows.append(Row("stage A (order head)", "01_stage_a",
                        {"audio_head": "order", "epochs": a_epochs, "tag": "abl-A-order"}))
    rows.append(Row("pretrained", "03_zste", {"models": "pretrained", "audio_head": "pooled"}))
    for setting in grid:
        for start in starts:
            name = f"{'T-AB' if start == 'A' else 'T-B'} {_label(setting)}"
            tag = f"abl-{'T-AB' if start == 'A' else 'T-B'}-{'-'.join(f'{v:g}' for v in setting)}"
            rows.append(Row(name, "02_stage_b", _stage_b(
                setting, start_from=start, stage_a_tag=a_tag, audio_head="pooled", loss="teminal", tag=tag),
                depends_on=a_tag if start == "A" else ""))
    if "tclap" in extras:
        rows.append(Row("T-CLAP loss", "02_stage_b", _stage_b(
            (1, 1, 1, 1, 1), start_from="pretrained", audio_head="pooled", loss="tclap", tag="abl-tclap")))
    if "order-head" in extras:
        setting = parse_setting(str(P["order_setting"]), name="order_setting")
        rows.append(Row(f"T-AB+order-head {_label(setting)}", "02_stage_b", _stage_b(
            setting, start_from="A", stage_a_tag="abl-A-order", audio_head="order", loss="teminal",
            epochs=int(P["order_epochs"]), tag="abl-T-AB-order"), depends_on="abl-A-order"))
    return pd.DataFrame([r.__dict__ for r in rows])


def child_params(P: Mapping[str, Any], notebook: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ablation's own values of what the child declares, then the row's overrides."""
    declared = declared_parameters(notebooks_dir() / f"{notebook}.ipynb")
    params = {k: v for k, v in P.items() if k in declared and k not in RUNNER_KEYS}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ValueError(f"{notebook} has no parameters {sorted(unknown)}")
    params.update(overrides)
    return params


def input_key(S, notebook: str, params: Mapping[str, Any], depends_on: str) -> str:
    """Hash of everything a row's result depends on: parameters, manifests, start checkpoint."""
    data = S.data()
    payload: dict[str, Any] = {"notebook": notebook, "params": dict(params),
                               "manifests": data.manifests.hashes}
    pretrained = S.run_dir / "checkpoints" / "pretrained" / "model.pt"
    if pretrained.exists():
        payload["pretrained"] = tracking.file_sha1(pretrained)
    if depends_on:
        ckpt = S.run_dir / "checkpoints" / depends_on / "best.pt"
        if not ckpt.exists():
            raise FileNotFoundError(f"row depends on {ckpt}, which the stage A row did not write")
        payload["start"] = tracking.file_sha1(ckpt)
    return tracking.config_hash(payload)


def check_starts(S, plan_df: pd.DataFrame) -> None:
    """Every checkpoint a row starts from is written by an earlier row or already in the run
    folder (``stage_a_from``); otherwise a clear error before anything runs."""
    written: set[str] = set()
    for r in plan_df.itertuples():
        if r.depends_on and r.depends_on not in written:
            ckpt = S.run_dir / "checkpoints" / r.depends_on / "best.pt"
            if not ckpt.exists():
                raise FileNotFoundError(
                    f"ablation row {r.row!r} starts from {ckpt}, which does not exist: run "
                    f"01_stage_a into this run folder first, or set stage_a_from = \"\" to let "
                    f"the ablation train its own stage A")
            meta = ckpt.parent / "meta.json"
            head = json.loads(meta.read_text()).get("audio_head") if meta.exists() else None
            if head is not None and head != r.params["audio_head"]:
                raise ValueError(f"ablation row {r.row!r} ({r.params['audio_head']} head) cannot start from "
                                 f"{ckpt}, a {head}-head checkpoint; check stage_a_from")
        if r.notebook == "01_stage_a":
            written.add(r.params["tag"])


def run(S, plan_df: pd.DataFrame) -> pd.DataFrame:
    """Execute (or reuse) every row; returns the plan with ``status`` and ``run_id``."""
    check_starts(S, plan_df)
    out = []
    for r in plan_df.itertuples():
        params = child_params(S.P, r.notebook, r.params)
        params["run_dir"] = str(S.run_dir)
        key = input_key(S, r.notebook, {k: v for k, v in params.items() if k != "run_dir"}, r.depends_on)
        # A stage A row is reused only when its checkpoint is in this run folder: later rows
        # start from that file (stage B rows need nothing but their logged ZSTE tables).
        found = None
        here = r.notebook != "01_stage_a" or (S.run_dir / "checkpoints" / params["tag"] / "best.pt").exists()
        if S.P["reuse"] and here:
            found = tracking.find_finished_run(tag="teminal.ablation_key", value=key)
        if found:
            status, run_id = "reused", found
        else:
            run_id = execute_notebook(
                notebook=notebooks_dir() / f"{r.notebook}.ipynb",
                output=S.run_dir / "notebooks" / "ablations" / f"{params.get('tag') or r.row.replace(' ', '_')}.ipynb",
                parameters=params, run_name=r.row, parent_run_id=S.run_id,
                tags={"teminal.ablation_key": key, "teminal.ablation_row": r.row},
                tracking_uri=S.P.get("tracking_uri", ""),
            )
            status = "ran"
        print(f"{status:>6}  {r.row}  (run {run_id})")
        out.append({**r._asdict(), "status": status, "run_id": run_id})
    return pd.DataFrame(out).drop(columns=["Index"])


def _zste_table(run_id: str) -> pd.DataFrame | None:
    """The ``zste/table.csv`` artifact of a row's run (or of its nested model run)."""
    import mlflow

    client = mlflow.MlflowClient()
    candidates = [run_id] + [r.info.run_id for r in client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'")]
    for rid in candidates:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="zste/table.csv")
        except Exception:
            continue
        return pd.read_csv(path)
    return None


def values(outcome: pd.DataFrame) -> pd.DataFrame:
    """Rows = settings, columns = ZSTE subtasks, values in %."""
    tables = {r.row: _zste_table(r.run_id) for r in outcome.itertuples() if r.notebook != "01_stage_a"}
    wide = {row: t.set_index("task")["value"] for row, t in tables.items() if t is not None}
    return pd.DataFrame(wide).T


def table(S, outcome: pd.DataFrame) -> pd.DataFrame:
    """Table 2 layout: ``value [ci_low, ci_high]`` per cell and a chance row."""
    cells, chance = {}, None
    for r in outcome.itertuples():
        if r.notebook == "01_stage_a":
            continue
        t = _zste_table(r.run_id)
        if t is None:
            continue
        t = t.set_index("task")
        cells[r.row] = {task: f"{v.value:.1f} [{v.ci_low:.1f}, {v.ci_high:.1f}]" for task, v in t.iterrows()}
        chance = {task: f"{v:.1f}" for task, v in t["chance"].items()}
    df = pd.DataFrame(cells).T
    if chance:
        df.loc["chance"] = pd.Series(chance)
    df.index.name = "setting"
    return df


def summary(outcome: pd.DataFrame) -> str:
    """A short generated account of what changed most against the pretrained baseline."""
    v = values(outcome)
    if "pretrained" not in v.index or len(v) < 2:
        return "Not enough rows for a comparison with the pretrained baseline."
    base = v.loc["pretrained"]
    delta = v.drop(index="pretrained") - base
    lines = ["Largest changes against the pretrained baseline (percentage points):"]
    for task in delta.columns:
        best = delta[task].idxmax()
        worst = delta[task].idxmin()
        lines.append(f"- {task}: best {best} {v.loc[best, task]:.1f} ({delta.loc[best, task]:+.1f}); "
                     f"worst {worst} {v.loc[worst, task]:.1f} ({delta.loc[worst, task]:+.1f}); "
                     f"baseline {base[task]:.1f}")
    overall = delta.mean(axis=1).sort_values(ascending=False)
    lines.append(f"Best row on average over subtasks: {overall.index[0]} ({overall.iloc[0]:+.1f} pp).")
    return "\n".join(lines)
