"""Reuse keys (``teminal.run.keys``): every field of every parameter section either changes the
key of a result it affects or is declared result-free / platform / selection — fields found by
iterating the pydantic models, so a new field is covered — and a result-free field really reuses
(``train.checkpoint_every_s``: a stage reused, not retrained, through the real step code)."""
from __future__ import annotations

import typing
from pathlib import Path

import mlflow
import pytest
import torch

from teminal import ablation, tracking
from teminal.eval.specs import RUN_ROWS
from teminal.run import keys
from teminal.run.layout import RunLayout
from teminal.run.params import SECTIONS, RunConfig
from teminal.run.session import Session

MANIFESTS = {"singles": "h-singles", "stage_a": "h-stage-a", "stage_b": "h-stage-b"}


def all_keys(config: RunConfig) -> dict[tuple, str]:
    """Every result a run of ``config`` computes → its key, as the steps build them."""
    inputs = keys.Inputs(manifests=MANIFESTS, base="content-fingerprint",
                         weights=keys.weights_digest(config.model))
    out = {("pretrained",): keys.pretrained(config, inputs), ("probe",): keys.probe(config, inputs)}
    first = config.training_seeds[0]
    stages = {"A": lambda s: keys.stage_a(config, config.stage_a, seed=s, inputs=inputs),
              "B": lambda s: keys.stage_b(config, config.stage_b, seed=s, inputs=inputs),
              "order-head": lambda s: keys.stage_b(config, ablation.order_head_params(config),
                                                   seed=s, inputs=inputs)}
    for seed in config.training_seeds:
        for name, key in stages.items():
            out[(name, seed)] = key(seed)
        for row in ablation.plan(config):
            if row.params is not None:
                out[(row.name, seed)] = keys.stage_b(config, row.params, seed=seed, inputs=inputs)
    for spec in config.evaluate.models:
        model = {"pretrained": out[("pretrained",)]}.get(spec) or (
            out[(spec, first)] if spec in RUN_ROWS else "")
        out[("external", spec)] = keys.external(config, spec=spec, model=model, inputs=inputs)
    models = [k for k in out if k[0] != "external" and k != ("probe",)]
    out |= {("evaluation", *k): keys.evaluation(config, model=out[k], inputs=inputs)
            for k in models}
    return out


def contexts(tmp: Path) -> dict[str, RunConfig]:
    """Configurations under which every field matters somewhere (msclap weights, the T-CLAP
    loss, the order-aware head, the retrieval and CompA-order sets)."""
    weights = tmp / "weights-1.pth"
    weights.write_bytes(b"one")
    return {
        "default": RunConfig(),
        "msclap": RunConfig.model_validate({"model": {"backbone": "msclap-2022",
                                                      "msclap_weights": str(weights)}}),
        "tclap": RunConfig.model_validate({"stage_b": {"loss": "tclap"}}),
        "from-pretrained": RunConfig.model_validate({"stage_b": {"start_from": "pretrained"}}),
        "order": RunConfig.model_validate({
            "stage_a": {"audio_head": "order"}, "stage_b": {"audio_head": "order"},
            "ablations": {"extra_rows": ["order-head", "order-head-binding"]},
            "evaluate": {"models": ["pretrained", "B", "order-head", "tiny"],
                         "captioned_root": "/clotho", "compa_csv": "compa.csv",
                         "compa_audio_dir": "compa"}}),
    }


def _options(annotation) -> tuple:
    """The options of a ``Literal`` (inside ``| None`` or ``list[…]`` too)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return tuple(o for a in typing.get_args(annotation) for o in _options(a))


def alternatives(value, annotation, tmp: Path) -> list:
    """Other values for a field (validation picks the first valid one)."""
    options = _options(annotation)
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, list):
        more = [value + [o] for o in options if o not in value]
        return ([value[:-1]] if len(value) > 1 else []) + more + [
            value + [a] for a in alternatives(value[0], None, tmp)] if value else more
    if isinstance(value, tuple):
        return [tuple(0.0 if v else 1.0 for v in value)]
    if options and value in options:
        return [o for o in options if o != value]
    if value is None:
        return [1, 0.5, ["x"], "x"]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 2, value / 2, value + 0.5]
    if value.endswith(".pth"):  # msclap weights: another file, other content
        other = tmp / "weights-2.pth"
        other.write_bytes(b"two")
        return [str(other)]
    return [value + "-x", "cuda"]


def changed(config: RunConfig, section: str, name: str, tmp: Path) -> RunConfig | None:
    """``config`` with field ``name`` of ``section`` (``keys.TOP``: top level) changed; None
    when no other value is valid here (``compa_csv`` alone, without ``compa_audio_dir``)."""
    dump = config.model_dump()
    part = dump if section == keys.TOP else dump[section]
    model = RunConfig if section == keys.TOP else SECTIONS[section]
    for value in alternatives(part[name], model.model_fields[name].annotation, tmp):
        if value == part[name]:
            continue
        try:
            return RunConfig.model_validate(
                dump | {name: value} if section == keys.TOP else dump | {section: part | {name: value}})
        except ValueError:
            continue
    return None


def every_field() -> list[tuple[str, str]]:
    top = [(keys.TOP, f) for f in RunConfig.model_fields if f not in SECTIONS]
    return top + [(s, f) for s, model in SECTIONS.items() for f in model.model_fields]


AFFECTS = {"data": {"pretrained", "A", "B", "probe"}, "model": {"pretrained", "A", "B"},
           "train": {"A", "B"}, "stage_a": {"A", "B"}, "stage_b": {"B"},
           "ablations": {"order-head"}, "evaluate": {"external"}, "pretrain": {"pretrained", "A", "B"},
           ("stage_a", "audio_head"): {"A"},  # stage B starts from stage A with its own head
           ("ablations", "binding_share"): set()}  # the binding row's alone (in ``plan``)
"""Results every keyed field of a section must re-key (in some context): a stage's key follows
the model it starts from, the data and the optimisation; ``zste`` re-keys evaluations or the
probe, top-level ``seed`` the embedded backbone (``every_field`` checks each field anyway)."""


def _diff(a: dict, b: dict) -> list:
    """Results both configurations compute whose keys differ."""
    return [k for k in a.keys() & b.keys() if a[k] != b[k]]


@pytest.mark.parametrize("section,name", every_field(), ids=lambda v: v)
def test_every_field_changes_a_key_or_is_declared_keyless(section, name, tmp_path):
    found = {}
    for label, config in contexts(tmp_path).items():
        other = changed(config, section, name, tmp_path)
        if other is None:
            continue
        found[label] = _diff(all_keys(config), all_keys(other))
        applies = keys.ONLY_WHEN.get(section, {}).get(name)
        if applies is not None and not applies(config.section(section)):
            # the configured stage B (ablation rows derive other stage-B parameters from it)
            scope = [k for k in found[label] if section != "stage_b" or "B" in k]
            assert not scope, f"{section}.{name} does not apply under {label}: {scope}"
    assert found, f"{section}.{name}: no valid other value in any context"
    if name in keys.unkeyed(section):
        assert not any(found.values()), f"{section}.{name} is declared keyless but changes {found}"
    else:
        assert any(found.values()), (f"{section}.{name} changes no key: put it in the keys of "
                                     "the results it affects, or declare it in teminal.run.keys")
        hit = [{k[0] for k in keys_} for keys_ in found.values()]
        must = AFFECTS.get((section, name), AFFECTS.get(section, set()))
        assert any(must <= h for h in hit), f"{section}.{name} re-keys only {hit}, not all of {must}"


def test_declarations_name_real_fields():
    for table in (keys.RESULT_FREE, keys.PLATFORM, keys.SELECTION, keys.ONLY_WHEN):
        for section, names in table.items():
            model = RunConfig if section == keys.TOP else SECTIONS[section]
            assert set(names) <= set(model.model_fields), (section, names)
    tables = (keys.RESULT_FREE, keys.PLATFORM, keys.SELECTION)
    for section, _ in every_field():
        declared = [n for t in tables for n in t.get(section, ())]
        assert len(declared) == len(set(declared)), f"{section}: declared twice {declared}"


def test_a_result_free_field_reuses_and_a_result_field_retrains(tmp_path, monkeypatch, capsys):
    """Through the real steps on the embedded world: stage A trained with
    ``checkpoint_every_s=300`` is reused under ``checkpoint_every_s=1e-9`` (last.pt every epoch);
    trained afresh in another folder under that value it has bit-identical heads; a changed
    ``stage_a.lr`` trains a new checkpoint beside it and says which input differs."""
    from teminal.run import steps

    monkeypatch.setenv("TEMINAL_WORKDIR", str(tmp_path))
    base = RunConfig.model_validate({"pretrain": {"optimizer_steps": 3},
                                     "stage_a": {"optimizer_steps": 6}})

    def session(root: Path, **train) -> Session:
        config = RunConfig.model_validate(base.model_dump() | {
            "train": base.train.model_dump() | train})
        return Session(notebook="01_stage_a", config=config, layout=RunLayout(root),
                       device=torch.device("cpu"), run_id="", standalone=True)

    tracking.setup(f"sqlite:///{tmp_path}/mlflow.db")
    with tracking.run(run_name="keys"):
        first = steps.stage_a(session(tmp_path / "run", checkpoint_every_s=300.0))
        S = session(tmp_path / "run", checkpoint_every_s=1e-9)
        again = steps.stage_a(S)
        capsys.readouterr()
        other = steps.stage_a(S, S.config.stage_a.model_copy(update={"lr": 0.002}))
        said = capsys.readouterr().out
        fresh = steps.stage_a(session(tmp_path / "fresh", checkpoint_every_s=1e-9))
        longer = session(tmp_path / "run")
        longer.config = RunConfig.model_validate(longer.config.model_dump() | {
            "pretrain": longer.config.pretrain.model_dump() | {"optimizer_steps": 6}})
        capsys.readouterr()
        steps.pretrain(longer)  # one pretrained backbone per run folder: kept, and said so
        kept = capsys.readouterr().out
    while mlflow.active_run() is not None:
        mlflow.end_run()
    assert not first.reused and again.reused and (again.tag, again.key) == (first.tag, first.key)
    assert not other.reused and other.tag != first.tag and other.key != first.key
    assert (f"A: training anew — checkpoints/{first.tag}/ holds this stage with other inputs: "
            "params.lr: 0.001 → 0.002\n") in said
    assert S.layout.read_meta(first.tag)["kind"] == keys.Kind.STAGE.value
    assert "pretrained with other inputs than this configuration's (pretrain.optimizer_steps: " \
           "3 → 6)" in kept
    assert not fresh.reused and fresh.key == first.key  # another run folder, the same inputs
    for a, b in zip(first.model.trainable_parameters(), fresh.model.trainable_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_kinds_are_read_from_records_and_legacy_records_once():
    """A stored ``kind`` is taken as is; a record written before kinds were stored (the probe's
    ``teminal.ref``, the baseline's label) is read by the one legacy function."""
    assert keys.record_kind("ablation-row", ref="probe") is keys.Kind.ABLATION_ROW
    assert keys.record_kind(None, ref="probe", label="x") is keys.Kind.PROBE
    assert keys.record_kind("", label="probe:level-duration") is keys.Kind.PROBE
    assert keys.record_kind(None, ref="pretrained") is keys.Kind.PRETRAINED
    assert keys.record_kind(None, ref="B", label="T-AB+order-head") is keys.Kind.STAGE
    with pytest.raises(ValueError):
        keys.record_kind("a-kind-no-one-wrote")


def test_a_key_says_which_input_differs():
    config = RunConfig()
    inputs = keys.Inputs(manifests=MANIFESTS, base="content-fingerprint")
    a = keys.stage_b(config, config.stage_b, seed=0, inputs=inputs)
    b = keys.stage_b(config, config.stage_b.model_copy(update={"beta": 0.5}), seed=0,
                     inputs=inputs)
    assert keys.differences(a.inputs, b.inputs) == ["params.beta: 1.0 → 0.5"]
    c = keys.stage_b(config.model_copy(update={"stage_a": config.stage_a.model_copy(
        update={"optimizer_steps": 9})}), config.stage_b, seed=0, inputs=inputs)
    assert [d.split(":")[0] for d in keys.differences(a.inputs, c.inputs)] == ["start"]
