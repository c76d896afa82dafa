"""What the level/duration probe decides, per recipe, world and set of statistics (issue 19;
SPEC §1, §4; README "What the probe can and cannot be brought to chance on").

Worlds: the embedded default of a parameters file (``--params``, ``params/default.yaml``: its
world, pairing and recipe) and a varied ESC-50-shaped folder (``tests/conftest.py``'s
``write_varied_esc50``: events padded with digital silence, clicks over a noise floor,
modulated noise, decaying tones, random gains; ``--varied-classes`` classes). Recipes: the
parameters file's, and the same with the crest limiter (``--crest-limit``). Statistics: the
decision's default (``CUE_FEATURES``: level and length), the level statistics alone, the
envelope's alone, and all of them. For each, the probe's decision on the held-out pairs (A-sd,
3B, 3W, with 95 % intervals) and, once per world and recipe, each statistic's AUC.

Nothing is chosen with these figures (the probe is not tuned): they describe.

    .venv/bin/python -m teminal.determinism exec -- \
        .venv/bin/python benchmarks/probe_recipes.py --out probe_recipes.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from teminal import determinism  # noqa: E402

LEVEL = ("duration_s", "rms", "peak", "crest")


def statistic_sets() -> dict[str, tuple[str, ...]]:
    from teminal.eval.probe import CUE_FEATURES, FEATURES

    return {"decision (level and length)": CUE_FEATURES, "level": LEVEL,
            "envelope": tuple(f for f in FEATURES if f not in CUE_FEATURES), "all": FEATURES}


def worlds(params: Path, varied_classes: int, work: Path):
    """(name, base set, manifests, the parameters file's recipe at its rate) of each world."""
    from conftest import write_varied_esc50
    from teminal.data import base_set
    from teminal.data.pairs import PairingConfig, build_manifests
    from teminal.run.config import load_config
    from teminal.run.steps.data import RunData, load_base
    from teminal.run.configs import pairing, templates

    p = load_config(params).data
    if p.dataset != "embedded" or p.data_root:
        raise SystemExit(f"--params {params}: expected the embedded world (data.dataset: embedded)")
    p = p.model_copy(update={"data_root": str(work / "embedded")})
    base = load_base(p)
    recipe = RunData(base=base, manifests=None, manifest_dir=work, params=p).recipe  # its home
    yield (f"default ({len(base.classes)} classes)", base,
           build_manifests(base, pairing=pairing(p), templates=templates(p)),
           recipe(base.sample_rate))
    varied = base_set.load(write_varied_esc50(work / "varied", n_classes=varied_classes,
                                              clips_per_fold=2))
    yield (f"varied ({varied_classes} classes)", varied,
           build_manifests(varied, pairing=PairingConfig(pairing="folds")),
           recipe(varied.sample_rate))


def renderer(base, recipe):
    """audio key → samples under ``recipe``, each composite rendered once (the statistic sets
    of one recipe share them)."""
    from functools import lru_cache

    from teminal.data.clips import ClipStore, render

    store = ClipStore(base, sample_rate=recipe.sample_rate)
    return lru_cache(maxsize=None)(lambda k: render(k, store, recipe))


def measure(base, manifests, render, features, n_boot: int):
    from teminal.eval.evaluate import probe_sets

    sets, aucs = probe_sets(manifests, list(base.classes), render=render,
                            sample_rate=base.sample_rate, n_boot=n_boot, seed=0, features=features)
    return sets["zste"].table.set_index("task"), aucs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params" / "default.yaml")
    ap.add_argument("--varied-classes", type=int, default=24)
    ap.add_argument("--crest-limit", type=float, default=3.0)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--out", type=Path, help="write every row and AUC as JSON here")
    a = ap.parse_args()
    if determinism.requested():
        determinism.apply()
    rows, aucs_out = [], []
    print("| statistics the decision uses | recipe | world | A-sd (50) | 3B (33.3) | 3W (50) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for world, base, manifests, recipe in worlds(a.params, a.varied_classes, Path(tmp)):
            for limit in (recipe.crest_limit, a.crest_limit):
                render = renderer(base, dataclasses.replace(recipe, crest_limit=limit))
                label = "no crest limit" if limit is None else f"crest limit {limit:g}"
                for name, features in statistic_sets().items():
                    t, aucs = measure(base, manifests, render, features, a.n_boot)
                    cells = [f"{t.value[k]:.1f} [{t.ci_low[k]:.1f}, {t.ci_high[k]:.1f}]"
                             for k in ("A-sd", "3B", "3W")]
                    print(f"| {name} | {label} | {world} | " + " | ".join(cells) + " |", flush=True)
                    rows.append({"statistics": name, "features": list(features), "recipe": label,
                                 "world": world, **{k: [float(t.value[k]), float(t.ci_low[k]),
                                                       float(t.ci_high[k])] for k in t.index}})
                aucs_out += [{"world": world, "recipe": label, **r}
                             for r in aucs.drop(columns="decision").to_dict("records")]
    if a.out:
        a.out.write_text(json.dumps({"rows": rows, "aucs": aucs_out}, indent=1))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
