"""``teminal`` (``.venv/bin/teminal``, or ``python -m teminal``): run, resume, rerun and report
pipelines.

::

    .venv/bin/teminal run params/default.yaml [-p name=value ...] [--notebooks a,b | --from X --until Y]
    .venv/bin/teminal resume runs/<run>
    .venv/bin/teminal rerun runs/<run> 04_ablations [-p name=value ...]
    .venv/bin/teminal report runs/<run> [--out results.md] [--check README.md]
    .venv/bin/teminal evaluate [runs/<run>] --model SPEC [--model SPEC ...] [-p name=value ...]

``-p`` values are typed like YAML (``-p stage_a.optimizer_steps=30``, ``-p classes=[dog, rain,
crow]``, ``-p level_rms=null``); a bare name sets every section that has it (``lr`` →
pretrain.lr, stage_a.lr and stage_b.lr), ``section.name`` one of them; an unknown name is an
error naming it, a renamed one an error naming its new name.
``rerun`` takes the same ``-p`` (validated the same way) on the run's recorded configuration.
The hints it prints name the commands by their path (``teminal.hints``): they work without
activating the virtual environment.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import hints, tracking
from .data.base_set import DatasetError
from .gates import SanityError
from .integrity import IntegrityError
from .pipeline import (Interrupted, PipelineError, evaluate, planned, rerun_notebook, resume,
                       run_pipeline)
from .run.config import ConfigError, apply_overrides, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teminal", description="run, resume, rerun and "
                                     "report teminal notebook pipelines")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the notebook pipeline on a params/*.yaml file")
    run_p.add_argument("params", help="e.g. params/default.yaml")
    run_p.add_argument("-p", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                       help="override one parameter (repeatable), e.g. -p stage_a.lr=3e-4")
    run_p.add_argument("--notebooks", default="", help="comma list of notebooks to run")
    run_p.add_argument("--from", dest="start", default="", help="first notebook to run")
    run_p.add_argument("--until", default="", help="last notebook to run")
    run_p.add_argument("--tracking-uri", default="", help="MLflow store (default: mlruns/mlflow.db)")
    res_p = sub.add_parser("resume", help="continue an interrupted or failed run in its folder")
    res_p.add_argument("run_dir")
    res_p.add_argument("--tracking-uri", default="", help="MLflow store (default: the run's)")
    re_p = sub.add_parser("rerun", help="execute one notebook of a run again, in its folder")
    re_p.add_argument("run_dir")
    re_p.add_argument("notebook", help="e.g. 04_ablations")
    re_p.add_argument("-p", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                      help="override one parameter of the run's configuration (repeatable)")
    re_p.add_argument("--tracking-uri", default="", help="MLflow store (default: the run's)")
    rep_p = sub.add_parser("report", help="the Results tables (markdown) of a run, from MLflow")
    rep_p.add_argument("run_dir")
    rep_p.add_argument("--out", default="", help="also write them to this file")
    rep_p.add_argument("--check", default="", metavar="README",
                       help="instead: exit 1 listing every figure of README's Results that the "
                            "run's records contradict")
    ev_p = sub.add_parser("evaluate", help="score any models on the same items (notebook 05)")
    ev_p.add_argument("run_dir", nargs="?", default="", help="a run folder (default: a new run)")
    ev_p.add_argument("--model", dest="models", action="append", default=[], metavar="SPEC",
                      help="a run row (pretrained, A, B, order-head) or an adapter spec, e.g. "
                           "laion-clap,checkpoint=x.pt,tokenizer=tok (repeatable)")
    ev_p.add_argument("--params", default="", help="new run: params/<name>.yaml (default: smoke)")
    ev_p.add_argument("-p", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    ev_p.add_argument("--tracking-uri", default="", help="MLflow store")
    return parser


def _check(readme: str, report_text: str, *, run: str) -> int:
    """``report --check``: 0 when README's Results agree with the report, else 1 (listed)."""
    from .report_check import check

    path = Path(readme)
    if not path.is_file():
        raise FileNotFoundError(f"--check {readme}: no such file")
    try:
        problems = check(path.read_text(), report_text, run=run)
    except ValueError as exc:
        print(f"teminal: error: {path}: {exc}", file=sys.stderr)
        return 1
    for p in problems:
        print(f"mismatch: {p}")
    print(f"teminal: {path}: {len(problems)} mismatch(es) with run {run}" if problems
          else f"teminal: {path}: every checked figure is what run {run} records")
    return 1 if problems else 0


def _evaluate(args) -> Path:
    base = None
    if args.params:
        base = load_config(args.params)
    elif args.run_dir:
        from .run.layout import RunLayout

        base = RunLayout(Path(args.run_dir).expanduser().resolve()).read_config()
    config = None
    if base is not None or args.overrides:
        from .run.params import RunConfig

        config, notes = apply_overrides(base or RunConfig(), args.overrides)
        for note in notes:
            print(f"teminal: {note}")
    return evaluate(models=args.models, run_dir=args.run_dir, config=config,
                    overrides=args.overrides, source=Path(args.params) if args.params else None,
                    tracking_uri=args.tracking_uri)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            config = load_config(args.params)
            config, notes = apply_overrides(config, args.overrides)
            for note in notes:
                print(f"teminal: {note}")
            chosen = planned(config, notebooks=args.notebooks, start=args.start, until=args.until)
            config = config.model_copy(update={"notebooks": chosen})
            run_dir = run_pipeline(config, source=Path(args.params), overrides=args.overrides,
                                   tracking_uri=args.tracking_uri)
            uri = args.tracking_uri or tracking.default_tracking_uri()
            print(f"teminal: done → {run_dir}\n  results: {hints.teminal()} report {run_dir}\n"
                  f"  MLflow:  {hints.mlflow_ui(uri)}   (or: make mlflow)")
        elif args.command == "resume":
            run_dir = resume(args.run_dir, tracking_uri=args.tracking_uri)
            print(f"teminal: done → {run_dir}")
        elif args.command == "evaluate":
            run_dir = _evaluate(args)
            print(f"teminal: done → {run_dir}\n  report card: the 05_evaluate_model run's "
                  f"report_card.md in MLflow")
        elif args.command == "rerun":
            rerun_notebook(args.run_dir, args.notebook, overrides=args.overrides,
                           tracking_uri=args.tracking_uri)
        else:
            from .report import report

            text = report(args.run_dir)
            if args.check:
                return _check(args.check, text, run=Path(args.run_dir).resolve().name)
            if args.out:
                Path(args.out).write_text(text)
            print(text)
    except (ConfigError, PipelineError, SanityError, DatasetError, IntegrityError,
            FileNotFoundError, FileExistsError) as exc:
        print(f"teminal: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"teminal: interrupted; continue with `{hints.teminal()} resume {exc}`",
              file=sys.stderr)
        return 130
    return 0
