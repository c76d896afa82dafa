"""``python -m teminal``: run, resume, rerun and report pipelines.

::

    python -m teminal run params/default.yaml [-p name=value ...] [--notebooks a,b | --from X --until Y]
    python -m teminal resume runs/<run>
    python -m teminal rerun runs/<run> 04_ablations
    python -m teminal report runs/<run> [--out results.md]
    python -m teminal evaluate [runs/<run>] --model SPEC [--model SPEC ...] [-p name=value ...]

``-p`` values are typed like YAML (``-p epochs=3``, ``-p classes=[dog, rain, crow]``,
``-p level_rms=null``); a bare name sets every section that has it (``epochs`` → stage_a.epochs
and stage_b.epochs), ``section.name`` one of them; an unknown name is an error naming it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import tracking
from .gates import SanityError
from .pipeline import (Interrupted, PipelineError, evaluate, planned, rerun_notebook, resume,
                       run_pipeline)
from .run.config import ConfigError, apply_overrides, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m teminal", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the notebook pipeline on a params/*.yaml file")
    run_p.add_argument("params", help="e.g. params/default.yaml")
    run_p.add_argument("-p", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                       help="override one parameter (repeatable), e.g. -p epochs=3")
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
    re_p.add_argument("--tracking-uri", default="", help="MLflow store (default: the run's)")
    rep_p = sub.add_parser("report", help="the Results tables (markdown) of a run, from MLflow")
    rep_p.add_argument("run_dir")
    rep_p.add_argument("--out", default="", help="also write them to this file")
    ev_p = sub.add_parser("evaluate", help="score any models on the same items (notebook 05)")
    ev_p.add_argument("run_dir", nargs="?", default="", help="a run folder (default: a new run)")
    ev_p.add_argument("--model", dest="models", action="append", default=[], metavar="SPEC",
                      help="a run row (pretrained, A, B, order-head) or an adapter spec, e.g. "
                           "laion-clap,checkpoint=x.pt,tokenizer=tok (repeatable)")
    ev_p.add_argument("--params", default="", help="new run: params/<name>.yaml (default: smoke)")
    ev_p.add_argument("-p", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    ev_p.add_argument("--tracking-uri", default="", help="MLflow store")
    return parser


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
            print(f"teminal: done → {run_dir}\n  results: python -m teminal report {run_dir}\n"
                  f"  MLflow:  mlflow ui --backend-store-uri {uri}")
        elif args.command == "resume":
            run_dir = resume(args.run_dir, tracking_uri=args.tracking_uri)
            print(f"teminal: done → {run_dir}")
        elif args.command == "evaluate":
            run_dir = _evaluate(args)
            print(f"teminal: done → {run_dir}\n  report card: the 05_evaluate_model run's "
                  f"report_card.md in MLflow")
        elif args.command == "rerun":
            rerun_notebook(args.run_dir, args.notebook, tracking_uri=args.tracking_uri)
        else:
            from .report import report

            text = report(args.run_dir)
            if args.out:
                Path(args.out).write_text(text)
            print(text)
    except (ConfigError, PipelineError, SanityError, FileNotFoundError, FileExistsError) as exc:
        print(f"teminal: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"teminal: interrupted; continue with `python -m teminal resume {exc}`",
              file=sys.stderr)
        return 130
    return 0
