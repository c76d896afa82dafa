"""Can the text side learn to read "before" and "after" both ways from its training words alone?
(issue 23; an upper bound on what stage B's text head can learn, with no audio in the way;
SPEC §1 phrasing families, §3 InfoNCE, §4 held-out phrasings)

Stage B ties every caption of one ordered pair ``(x, y)`` to the same audio ``a_x ⊕ a_y``. This
benchmark keeps only that tie: the tiny CLAP's text head (its trainable MiniLM layer(s) +
projection, from an ``order_head.py`` work folder's pretrained model) is trained with a symmetric
InfoNCE between two phrasings ``t1(x, y)``, ``t2(x, y)`` drawn from a *vocabulary* of sequence
templates, over batches that hold both ``(x, y)`` and ``(y, x)`` (the reversed pair is the hard
negative, as ``T`` is in stage B). Training pairs use classes 12…; the readings use classes
0–11.

Reading (``text_order_prior.reading``): for each template never trained on — the validation
family (``"{x} leads into {y}"``, ``"{y} trails {x}"``) and the held-out family — the cosine
between the embedding's change when the classes swap slots and the same change for
``"{x} before {y}"``: +1 = read as the same order (right, for every template here), −1 = reversed.
``agree`` = the share of class pairs on which that cosine is positive.

Vocabularies: ``binding`` = ``BINDING_FAMILY`` (4 direct + 4 mirror-worded, what stage B trains
on); ``wide`` = ``WIDE_BINDING_FAMILY`` (more relation words, and "before" / "after" in both word
orders). Choose by the validation family only; the held-out rows are printed after the choice.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_binding.py --work-dir /tmp/oh \\
        --vocabularies binding,wide --layers 1,2 --seeds 0,1,2 --out text_binding.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import order_head as oh  # noqa: E402
import text_order_prior as prior  # noqa: E402
from _common import write_json  # noqa: E402

from teminal.data.captions import (BINDING_FAMILY, HELDOUT_FAMILY,  # noqa: E402
                                   VALIDATION_FAMILY, WIDE_BINDING_FAMILY, word_order)
from teminal.integrity import load_torch  # noqa: E402
from teminal.losses import info_nce  # noqa: E402
from teminal.models.tiny import TinyClap, TinyConfig  # noqa: E402

VOCABULARIES = {"binding": BINDING_FAMILY.sequence, "wide": WIDE_BINDING_FAMILY.sequence}


def text_model(path: Path, *, layers: int) -> TinyClap:
    """The work folder's pretrained tiny CLAP with ``layers`` trainable MiniLM layers."""
    blob = load_torch(path, weights_only=True, what="model")
    cfg = replace(TinyConfig(**blob["config"]), text_trainable_layers=layers)
    model = TinyClap(config=cfg)
    model.load_state_dict(blob["state_dict"])
    return model


def train_text(model: TinyClap, templates: tuple[str, ...], pairs: list[tuple[str, str]], *,
               steps: int, batch: int, lr: float, seed: int) -> list[float]:
    """Symmetric InfoNCE (SPEC §3) between two phrasings of each ordered pair (module
    docstring)."""
    gen = torch.Generator().manual_seed(seed)
    # the audio head's parameters get no gradient here, and AdamW skips them
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=lr, weight_decay=1e-4)
    unordered = sorted({tuple(sorted(p)) for p in pairs})
    scale, losses = model.logit_scale.detach(), []
    model.train()
    for _ in range(steps):
        pick = torch.randperm(len(unordered), generator=gen)[:batch // 2].tolist()
        rows = [unordered[k] for k in pick] + [unordered[k][::-1] for k in pick]  # both orders
        t = torch.randint(len(templates), (2, len(rows)), generator=gen)
        texts = [[templates[t[s, n]].format(x=x, y=y) for n, (x, y) in enumerate(rows)]
                 for s in range(2)]
        z1, z2 = (model.text_head(model.text_trunk(ts)) for ts in texts)  # (B, d) each
        loss = info_nce(z1, z2, scale)  # the library's symmetric InfoNCE (SPEC §3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    model.eval()
    return losses


@torch.no_grad()
def readings(model: TinyClap, pairs: list[tuple[str, str]]) -> list[dict]:
    """``text_order_prior.pair_readings`` of every validation and held-out template."""
    def embed(texts):
        return model.text_head(model.text_trunk(texts))  # (N, d)

    rows = []
    for family, templates in (("validation", VALIDATION_FAMILY.sequence),
                              ("held-out", HELDOUT_FAMILY.sequence)):
        for t in templates:
            cos = prior.pair_readings(embed, t, pairs)  # (P,)
            rows.append({"family": family, "word_order": word_order(t), "template": t,
                         "reading": round(float(cos.mean()), 3),
                         "agree": round(float((cos > 0).float().mean()), 3)})
    return rows


def summary(results: list[dict]) -> list[dict]:
    """Per (vocabulary, layers): each template's reading, mean over seeds (lowest seed), and the
    choice score — the mean over seeds of the *worse* validation reading (the held-out family
    reaches no choice)."""
    out = []
    setting = lambda r: (r["vocabulary"], r["layers"])  # noqa: E731
    for (vocab, layers), runs in itertools.groupby(results, setting):
        runs = list(runs)
        row = {"vocabulary": vocab, "layers": layers, "seeds": len(runs)}
        for k, tmpl in enumerate(r["template"] for r in runs[0]["rows"]):
            vals = [run["rows"][k]["reading"] for run in runs]
            row[tmpl] = (round(sum(vals) / len(vals), 2), min(vals))
        worse = [min(x["reading"] for x in run["rows"] if x["family"] == "validation")
                 for run in runs]
        row["choice"] = round(sum(worse) / len(worse), 2)
        out.append(row)
    return out


def print_summary(rows: list[dict]) -> None:
    templates = [k for k in rows[0] if "{" in k]
    print("| vocabulary | trainable layers | seeds | " + " | ".join(f"`{t}`" for t in templates)
          + " | choice (worse validation) |")
    print("|---|---|---|" + "---|" * (len(templates) + 1))
    for r in rows:
        cells = [f"{r[t][0]:+.2f} ({r[t][1]:+.2f})" for t in templates]
        print(f"| {r['vocabulary']} | {r['layers']} | {r['seeds']} | " + " | ".join(cells)
              + f" | {r['choice']:+.2f} |")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", required=True, help="an order_head.py / binding.py work folder")
    p.add_argument("--vocabularies", default="binding,wide")
    p.add_argument("--layers", default="1", help="comma list: trainable MiniLM layers")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default="")
    p.add_argument("--table", default="",
                   help="print the summary of an earlier --out file, run nothing")
    args, rest = p.parse_known_args(argv)
    if args.table:
        rows = summary(json.loads(Path(args.table).read_text())["results"])
        print_summary(rows)
        return {"summary": rows}
    base = oh.parse_args(["--work-dir", args.work_dir, *rest])
    torch.set_num_threads(base.threads)
    s = oh.setup(base, Path(args.work_dir).resolve(), torch.device("cpu"), 1)
    classes = list(s.base.classes)
    read_pairs = list(itertools.permutations(classes[:12], 2))
    train_pairs = list(itertools.permutations(classes[12:], 2))
    results = [{"vocabulary": "pretrained", "layers": 0, "seed": None,
                "rows": readings(text_model(s.model_path, layers=1).eval(), read_pairs)}]
    for vocab, layers, seed in itertools.product(args.vocabularies.split(","),
                                                 [int(v) for v in args.layers.split(",")],
                                                 [int(v) for v in args.seeds.split(",")]):
        torch.manual_seed(seed)
        model = text_model(s.model_path, layers=layers)
        tic = time.perf_counter()
        losses = train_text(model, VOCABULARIES[vocab], train_pairs, steps=args.steps,
                            batch=args.batch_size, lr=args.lr, seed=seed)
        rows = readings(model, read_pairs)
        results.append({"vocabulary": vocab, "layers": layers, "seed": seed, "rows": rows,
                        "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
                        "train_s": round(time.perf_counter() - tic, 1)})
        print(vocab, layers, seed, " ".join(
            f"{r['template']!r} {r['reading']:+.2f} ({r['agree']:.2f})" for r in rows), flush=True)
    rows = summary(results)
    print_summary(rows)
    if args.out:
        write_json(args.out, {"read_pairs": len(read_pairs), "train_pairs": len(train_pairs),
                              "steps": args.steps, "results": results, "summary": rows})
    return {"results": results, "summary": rows}


if __name__ == "__main__":
    main()
