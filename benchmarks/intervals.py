"""Coverage of the ZSTE intervals on a simulation with a known truth, and their widths on a
run's items (SPEC §4 "Intervals"; :mod:`teminal.eval.intervals_sim`).

    .venv/bin/python benchmarks/intervals.py [--sims 1000] [--out f.json]
        [--items runs/<run>/evaluations/*.items.parquet]

Prints, per simulated design, how often the former interval (percentile bootstrap over
unordered pairs, seeds pooled) and the current one (class-crossed bootstrap, Wilson with an
effective size; with seeds, ``seed_interval``) cover the true mean, and their mean widths;
with ``--items``, both intervals of every set and task of those files and the median ratio
of their widths.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from teminal.eval.intervals_sim import (SimWorld, class_bootstrap, coverage,  # noqa: E402
                                   pair_percentile, width_table)

WORLDS = {  # name → design (logit-scale random effects as SimWorld's defaults unless given)
    "12 classes, 3 clips, half the pairs": SimWorld(),
    "12 classes, paper pairing (1 clip)": SimWorld(clips=1),
    "ci world: 10 classes, 2 clips, 30 % pairs": SimWorld(n_classes=10, clips=2,
                                                         pair_fraction=0.3, mu=1.0),
    "default world: 30 classes, 4 clips, 30 %": SimWorld(n_classes=30, clips=4,
                                                        pair_fraction=0.3, mu=1.0),
    "weak effects (0.2 each)": SimWorld(sd_class=0.2, sd_clip=0.2, sd_pair=0.2),
    "rare success (mu = -3)": SimWorld(mu=-3.0),
    "5 seeds, seed effect 1.2, seed x item 0.5": SimWorld(n_classes=10, clips=2, seeds=5,
                                                          sd_seed=1.2, sd_seed_item=0.5),
    "default world, 5 seeds, seed effect 0.3": SimWorld(n_classes=30, clips=4, pair_fraction=0.3,
                                                        mu=1.0, seeds=5, sd_seed=0.3,
                                                        sd_seed_item=0.3),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sims", type=int, default=1000, help="simulated evaluations per design")
    p.add_argument("--n-boot", type=int, default=400, help="bootstrap draws per interval")
    p.add_argument("--items", nargs="*", default=[], help="items parquet files of a run")
    p.add_argument("--out", default="", help="write every figure to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out: dict = {"coverage": [], "widths": []}
    for name, world in WORLDS.items():
        t0 = time.perf_counter()
        old = coverage(world, pair_percentile, n_sims=args.sims, n_boot=args.n_boot, seed=0)
        new = coverage(world, class_bootstrap, n_sims=args.sims, n_boot=args.n_boot, seed=0)
        row = dict(design=name, truth=new.truth, old_coverage=old.covered, new_coverage=new.covered,
                   old_width=old.width, new_width=new.width, seconds=time.perf_counter() - t0)
        out["coverage"].append(row)
        print(f"{name:44s} truth {new.truth:.3f}  old {old.covered:6.1%} (width {old.width:.3f})"
              f"  new {new.covered:6.1%} (width {new.width:.3f})  {row['seconds']:.1f} s",
              flush=True)
    for path in args.items:
        tab = width_table(pd.read_parquet(path), n_boot=1000, seed=0)
        tab.insert(0, "file", Path(path).name)
        out["widths"] += tab.to_dict(orient="records")
        print(f"\n{path}\n" + tab.round(1).to_string(index=False))
        print(f"median new / old width: {(tab.new_width / tab.old_width).median():.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
