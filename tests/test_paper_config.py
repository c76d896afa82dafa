"""The paper configuration rehearsed on CPU, end to end (issue 14; SPEC §1–§4, §6).

``params/paper.yaml`` runs through every notebook of the pipeline (papermill, a temporary MLflow
store) with overrides only for size and device: msclap 2022 (Cnn14 + BERT-base, SPEC §2) built
offline with random weights and saved in the real ``{'model': state_dict}`` format, a local
tokenizer, and an ESC-50-shaped folder of ``K`` classes with 5 s / 44.1 kHz clips instead of
ESC-50 (``dataset: folder``, since ``dataset: esc50`` insists on the real set). Everything else
— ``pairing: paper`` (one clip per class, 70/30 by unordered pair), the paper's captions, T-AB,
lr 1e-4, the held-out phrasings, the probe, the ablation's extra rows (T-CLAP loss, order-aware
head, paraphrase captions) — is the paper configuration as written.

The weights are random, so the ZSTE figures sit near chance: the test checks that every run,
metric and checkpoint the paper configuration promises is there and that training moved the
heads, not what the figures are. Two details keep the figures from being ties everywhere (a
ZSTE where every candidate ties cannot show a mix-up of clips or captions): Cnn14's conv layers
are redrawn with He init (msclap's own init shrinks the activations ~2× per ReLU, so every clip
of a random Cnn14 embeds to the same direction), and the tiny BERT vocabulary gets word pieces
for single letters and digits, so no class name becomes ``[UNK]``.
The cost is Cnn14 on the 10 s composites (each once, into the trunk cache).
"""
from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from model_fixtures import BERT_WORDS
from torch import nn

from teminal import ablation, pipeline, tracking
from teminal.gates import MIN_EVAL_PAIRS, ZERO_SHOT_FACTOR
from teminal.models.msclap_2022 import MsClap2022
from teminal.run.config import apply_overrides, load_config
from teminal.run.params import PIPELINE
from teminal.training.checkpoints import load_checkpoint_head
from teminal.eval.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "params" / "paper.yaml"
K = 9  # classes: pairing "paper" at test_fraction 0.3 holds out 11 ≥ 10 unordered pairs (SPEC §6)
SIZE_AND_DEVICE = (  # (section, field) the rehearsal may change; everything else is paper.yaml
    ("", "device"), ("data", "dataset"), ("data", "data_root"), ("data", "download"),
    ("model", "msclap_weights"), ("model", "msclap_tokenizer"), ("model", "eval_batch_size"),
    ("stage_a", "optimizer_steps"), ("stage_a", "batch_size"), ("stage_b", "optimizer_steps"),
    ("stage_b", "batch_size"), ("zste", "n_boot"), ("ablations", "grid"),
    ("ablations", "starts"), ("ablations", "order_steps"))

pytestmark = pytest.mark.slow


def _overrides(esc50: Path, weights: Path, tokenizer: Path) -> list[str]:
    return ["device=cpu", "data.dataset=folder", f"data.data_root={esc50}", "data.download=false",
            f"model.msclap_weights={weights}", f"model.msclap_tokenizer={tokenizer}",
            "model.eval_batch_size=8", "stage_a.optimizer_steps=1", "stage_b.optimizer_steps=1",
            "stage_a.batch_size=16", "stage_b.batch_size=16", "zste.n_boot=20",
            "ablations.grid=[[1, 0, 1, 0, 1]]", "ablations.starts=[A]",
            "ablations.order_steps=1"]


def make_spelling_bert_tokenizer(folder: Path) -> Path:
    """The tiny BERT vocabulary of ``model_fixtures`` plus letters, digits and their ``##``
    pieces: any lower-case caption tokenizes without ``[UNK]`` (ids < 120, inside bert-base's
    vocabulary), so two different captions never share their token ids."""
    from transformers import BertTokenizer

    chars = list(string.ascii_lowercase + string.digits)
    words = list(dict.fromkeys([*BERT_WORDS, *chars, *(f"##{c}" for c in chars), *",.'-"]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def random_msclap_2022(tokenizer: Path, *, seed: int = 0) -> MsClap2022:
    """msclap 2022 with random weights whose Cnn14 activations keep their scale, so clips embed
    apart (``MsClapBase.he_init_audio_convs``)."""
    return MsClap2022(random_init=True, tokenizer=tokenizer, seed=seed) \
        .he_init_audio_convs(seed=seed)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_esc50_like):
    """The ESC-50-shaped folder, the tokenizer folder and random msclap 2022 weights in
    msclap's release format (what ``model.msclap_weights`` points at for the real run)."""
    root = tmp_path_factory.mktemp("paper_inputs")
    esc50 = make_esc50_like(root / "esc50", n_classes=K, clips_per_fold=1, sample_rate=44100,
                            seconds=5.0)
    tokenizer = make_spelling_bert_tokenizer(root / "bert_tokenizer")
    weights = root / "CLAP_weights_2022.pth"
    try:
        random_msclap_2022(tokenizer).save(weights)
        yield esc50, weights, tokenizer
    finally:
        weights.unlink(missing_ok=True)  # 785 MB


def test_inputs_are_not_degenerate(inputs):
    """The rehearsal's random model tells clips and captions apart (module docstring)."""
    esc50, weights, tokenizer = inputs
    model = MsClap2022(weights=weights, tokenizer=tokenizer)
    ids = model.tokenize(["the sound of church bell", "the sound of class 7",
                          "clock tick before sea waves", "sea waves before clock tick"])
    from transformers import BertTokenizer

    unk = BertTokenizer.from_pretrained(str(tokenizer)).unk_token_id
    assert unk not in ids["input_ids"]  # no [UNK]
    assert len({tuple(row.tolist()) for row in ids["input_ids"]}) == 4
    wave = torch.stack([torch.sin(torch.arange(44100) * 2 * math.pi * f / 44100)
                        for f in (220.0, 880.0, 3520.0)]) * 0.3  # (3, S) 1 s tones
    with torch.no_grad():
        z = nn.functional.normalize(model.encode_audio(wave), dim=-1)  # (3, d)
    cos = z @ z.T  # (3, 3)
    assert (cos[~torch.eye(3, dtype=torch.bool)] < 0.999).all()  # msclap init: > 0.99997


@pytest.fixture(scope="module")
def paper_run(inputs, tmp_path_factory):
    """The whole pipeline on the paper configuration; (run folder, config, MLflow client)."""
    root = tmp_path_factory.mktemp("paper_run")
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    overrides = _overrides(*inputs)
    config, _ = apply_overrides(load_config(PAPER), overrides)
    try:
        run_dir = pipeline.run_pipeline(config, source=PAPER, overrides=overrides,
                                        tracking_uri=uri, runs_root=root / "runs")
        yield run_dir, config, MlflowClient(tracking_uri=uri)
    finally:  # a failed run too: its ~2 GB would fill a small disk for every later test
        tracking.setup()  # back to the session's store
        for checkpoint in root.rglob("*.pt"):  # ~270 MB per stage, twice (run folder, artifacts);
            checkpoint.unlink()  # the executed notebooks, records and MLflow database stay


def _children(client: MlflowClient, parent: str) -> list:
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client.search_runs([exp.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def _notebook_runs(run_dir: Path, client: MlflowClient) -> dict:
    record = json.loads((run_dir / "pipeline.json").read_text())
    return {r.data.tags["teminal.notebook"]: r for r in _children(client, record["parent_run_id"])}


def _assert_percent(metrics: dict, name: str, where: str) -> None:
    assert name in metrics, f"{where}: no metric {name}"
    value = metrics[name]
    assert math.isfinite(value) and 0 <= value <= 100, f"{where}: {name} = {value}"


def test_rehearsal_changes_only_size_and_device(inputs):
    paper = load_config(PAPER).model_dump(mode="json")
    rehearsal = apply_overrides(load_config(PAPER), _overrides(*inputs))[0].model_dump(mode="json")
    changed = {(section, field) for section, values in paper.items() if isinstance(values, dict)
               for field in values if values[field] != rehearsal[section][field]}
    changed |= {("", k) for k, v in paper.items() if not isinstance(v, dict) and v != rehearsal[k]}
    assert changed <= set(SIZE_AND_DEVICE)
    assert rehearsal["model"]["backbone"] == "msclap-2022"
    assert rehearsal["data"]["pairing"] == "paper" and rehearsal["stage_b"]["captions"] == "paper"
    assert "order-head" in rehearsal["ablations"]["extra_rows"]


def test_pipeline_finishes_with_a_run_per_notebook(paper_run):
    run_dir, config, client = paper_run
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert record["status"] == "FINISHED" and record["stopped_at"] is None
    assert {nb: r["status"] for nb, r in record["notebooks"].items()} == {
        nb: "FINISHED" for nb in PIPELINE}
    assert client.get_run(record["parent_run_id"]).info.status == "FINISHED"
    children = _children(client, record["parent_run_id"])
    assert sorted(r.data.tags["teminal.notebook"] for r in children) == sorted(PIPELINE)
    assert all(r.info.status == "FINISHED" for r in children)
    runs = _notebook_runs(run_dir, client)
    data = runs["00_data_synthesis"].data.metrics
    held_out = pd.read_csv(run_dir / "manifests" / "stage_b.csv").query("split == 'test'")
    unordered = {(min(i, j), max(i, j)) for i, j in zip(held_out["i"], held_out["j"])}
    assert len(unordered) >= MIN_EVAL_PAIRS
    assert data["data/stage_b/test"] == len(held_out) == 2 * len(unordered)
    baseline = runs["00_pretrained_baseline"].data  # SPEC §6: msclap under 2× chance warns
    below = baseline.metrics["zero_shot/train/top1"] < ZERO_SHOT_FACTOR * 100 / K
    assert ("teminal.warning" in baseline.tags) == below


def test_zste_logs_every_task_for_pretrained_and_t_ab_and_the_probe(paper_run):
    run_dir, config, client = paper_run
    zste_run = _notebook_runs(run_dir, client)["03_zste"]
    nested = {r.data.tags.get("teminal.model"): r for r in _children(client, zste_run.info.run_id)}
    assert {"pretrained", "T-AB", "probe:level-duration"} <= set(nested)
    for label in ("pretrained", "T-AB"):
        metrics = nested[label].data.metrics
        for task in TASKS:
            _assert_percent(metrics, f"zste/{task}", label)
        _assert_percent(metrics, "zste_heldout/3A-o", label)
    probe = nested["probe:level-duration"].data.metrics
    for task in ("A-sd", "3B", "3W"):
        _assert_percent(probe, f"zste/{task}", "probe")


def test_ablation_rows_include_the_order_head(paper_run):
    run_dir, config, client = paper_run
    abl_run = _notebook_runs(run_dir, client)["04_ablations"]
    rows = {r.data.tags["teminal.ablation_row"]: r for r in _children(client, abl_run.info.run_id)
            if "teminal.ablation_row" in r.data.tags}
    assert set(rows) == {row.name for row in ablation.plan(config)}
    assert all(r.info.status == "FINISHED" for r in rows.values())
    order = sorted(name for name in rows if name.startswith("T-AB+order-head"))
    # the order-aware row, and the same row on the other caption family (paper.yaml asks both)
    assert order == ["T-AB+order-head (1,1,1,1,1)", "T-AB+order-head (1,1,1,1,1) paraphrase captions"]
    for name in order:
        _assert_percent(rows[name].data.metrics, "zste/3A-c", name)
        assert rows[name].data.tags["teminal.model"] == name
    names = [a.path for a in client.list_artifacts(abl_run.info.run_id)]
    assert "ablation_table.json" in names and "ablation_heatmap.png" in names


def test_checkpoints_of_a_t_ab_and_the_order_head(paper_run):
    run_dir, config, client = paper_run
    folders = [p for p in (run_dir / "checkpoints").iterdir() if (p / "meta.json").exists()]
    metas = {json.loads((p / "meta.json").read_text())["label"]: p for p in folders}
    assert {"A", "T-AB"} <= set(metas)
    assert metas["A"].name == "A" and metas["T-AB"].name == "T-AB"
    order = [label for label in metas if label.startswith("T-AB+order-head")]
    assert len(order) == 2 and "A+order-head" in metas  # the order rows start from their own A
    for label in ("A", "T-AB", *order, "A+order-head"):
        meta = json.loads((metas[label] / "meta.json").read_text())
        assert meta["finished"] and (metas[label] / "best.pt").exists(), label
        assert meta["audio_head"] == ("order" if "order-head" in label else "pooled"), label


def test_training_moved_the_msclap_heads(paper_run, inputs):
    """Each checkpoint holds the SPEC §2 head (+ the order module) and differs from the saved
    weights where gradients reach z; the order module left its zero init."""
    run_dir, config, client = paper_run
    published = torch.load(inputs[1], map_location="cpu", weights_only=True, mmap=True)["model"]
    heads = MsClap2022.TEXT_HEAD + MsClap2022.AUDIO_HEAD
    expected = {f"clap.{k}" for k in published if k.startswith(heads)}
    metas = {json.loads((p / "meta.json").read_text())["label"]: p
             for p in (run_dir / "checkpoints").iterdir() if (p / "meta.json").exists()}
    for label, folder in metas.items():
        head = load_checkpoint_head(folder / "best.pt")
        clap = {k for k in head if k.startswith("clap.")}
        assert clap == expected, label
        for name in ("clap.audio_encoder.base.fc1.weight",
                     "clap.caption_encoder.base.encoder.layer.11.output.dense.weight",
                     "clap.caption_encoder.projection.linear1.weight"):
            assert not torch.equal(head[name], published[name.removeprefix("clap.")]), (label, name)
        mixer = {k for k in head if k.startswith("audio_head_module.mixer.")}
        assert bool(mixer) == ("order-head" in label), label
        if mixer:
            assert head["audio_head_module.mixer.up.weight"].abs().max() > 0, label
