"""Peak memory of a run on a real-shaped base set: does it grow with the number of pairs?

Writes an ESC-50-shaped folder of made-up clips with ESC-50's shape (50 classes × 40 clips of
5 s at 44.1 kHz, 2000 clips) and runs the pipeline on it with the embedded backbone and
``pairing: paper`` up to ``--until`` (default 00_pretrained_baseline: data, pretraining on every
clip no evaluation item uses, the trunk cache and feature bank of every composite — where
memory could grow with the pairs), once per class count in ``--classes`` (a class subset
of the same folder), under ``/usr/bin/time``. Peak RSS should grow with the batch size and the
feature bank (one pooled vector per composite), not with the rendered audio of every pair.

    .venv/bin/python benchmarks/memory.py --out benchmarks/out/memory.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_esc50_like  # noqa: E402
from profile_run import profile, run  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", default="10,50", help="class counts to run (a subset each)")
    p.add_argument("--until", default="00_pretrained_baseline", help="last notebook to run")
    p.add_argument("--folder", default="", help="reuse this generated folder")
    p.add_argument("--eval-batch-sizes", default="256", help="clips per trunk pass, one run each")
    p.add_argument("--out", default="", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="teminal-mem-")) / "esc50-like"
    if not (folder / "meta" / "esc50.csv").exists():
        print(f"writing a 50-class ESC-50-shaped folder at {folder} …", flush=True)
        make_esc50_like(folder, classes=50, clips_per_class=40, seconds=5.0, sample_rate=44100)
    results = []
    runs = [(int(k), int(b)) for k in args.classes.split(",") for b in args.eval_batch_sizes.split(",")]
    for k, batch in runs:
        overrides = ["dataset=folder", f"data_root={folder}", "pairing=paper", f"classes={k}",
                     "tiny_hop=441", "pretrain.optimizer_steps=8", "pretrain.batch_size=32",
                     "stage_a.optimizer_steps=1", "stage_b.optimizer_steps=1",
                     "stage_a.batch_size=16", "stage_b.batch_size=16", "device=cpu",
                     f"eval_batch_size={batch}"]
        run_dir, wall, rss = run("params/default.yaml", overrides, ["--until", args.until])
        table = profile(run_dir)
        pairs = json.loads((run_dir / "data.json").read_text())
        results.append({"classes": k, "eval_batch_size": batch, "ordered_pairs": k * (k - 1),
                        "wall_s": round(wall, 1),
                        "peak_rss_mib": round(rss), "run_dir": str(run_dir), "notebooks": table,
                        "base_clips": sum(1 for _ in open(folder / "meta" / "esc50.csv")) - 1,
                        "classes_in_run": len(pairs["classes"])})
        print(f"{k} classes ({k * (k - 1)} ordered pairs), eval_batch_size {batch}: peak RSS {rss:.0f} MiB, "
              f"{wall:.0f} s until {args.until}", flush=True)
    if args.out:  # appended to what an earlier call wrote
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        earlier = json.loads(out.read_text()) if out.exists() else []
        out.write_text(json.dumps(earlier + results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
