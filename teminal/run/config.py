"""Reading, overriding and writing run configurations (``params/*.yaml``).

One path of validation for every source of a value — a YAML file, ``-p name=value`` on the
command line, a notebook's parameters cell: each builds a plain dict and ``RunConfig`` (pydantic)
validates it, so an unknown or ill-typed value is an ``ConfigError`` naming the file or flag and
the parameter.

YAML layout (every key optional; the defaults are the smoke configuration)::

    name: default
    seed: 0
    device: auto
    notebooks: [00_data_synthesis, ...]   # a subset, in pipeline order
    data: {dataset: embedded, world_classes: 30, ...}
    model: {...}; pretrain: {...}; train: {...}; stage_a: {...}; stage_b: {...}; zste: {...}; …
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import ValidationError

from .params import NOTEBOOKS, RENAMED, SECTIONS, TOP_LEVEL, RunConfig


class ConfigError(ValueError):
    """A configuration that does not validate; the message names the source and parameter."""


def describe(err: ValidationError, source: str) -> str:
    """One line per problem: ``source: stage_b.optimizer_steps: Input should be … (got 'x')``."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = _renamed(where) or f"unknown parameter{_suggest(e['loc'])}"
            got = ""
        lines.append(f"{source}: {where}: {msg}{got}")
    return "\n".join(lines)


def _renamed(name: str) -> str:
    """`` renamed: use 'pretrain.optimizer_steps' …`` for an old ``section.name`` (``params.RENAMED``),
    else ""."""
    if name not in RENAMED:
        return ""
    new, why = RENAMED[name]
    return f"renamed: use {new!r} ({why})"


def _renamed_bare(name: str) -> str:
    """The message for a bare old name (``epochs`` → stage_a.optimizer_steps, stage_b.optimizer_steps), or ""."""
    hits = [(new, why) for old, (new, why) in RENAMED.items() if old.split(".", 1)[1] == name]
    if not hits:
        return ""
    return f"renamed: use {', '.join(new for new, _ in hits)} ({hits[0][1]})"


def _suggest(loc: tuple) -> str:
    """`` — did you mean 'world_classes'?`` for a misspelt name."""
    name = str(loc[-1])
    if len(loc) == 1:
        known = list(TOP_LEVEL) + list(SECTIONS)
    elif str(loc[0]) in SECTIONS:
        known = list(SECTIONS[str(loc[0])].model_fields)
    else:
        return ""
    close = difflib.get_close_matches(name, known, n=1)
    return f" — did you mean {close[0]!r}?" if close else ""


def validate(raw: Mapping[str, Any], *, source: str) -> RunConfig:
    """``raw`` (nested dict) → ``RunConfig``, or ``ConfigError`` naming ``source``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of parameters, got {type(raw).__name__}")
    try:
        return RunConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise ConfigError(describe(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML would keep the
    last one silently: a second ``stage_a:`` block would replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"duplicated key {key!r} (line {key_node.start_mark.line + 1}): "
                                  "YAML would silently keep only the last one; merge the two")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_load(text: str, *, source: str) -> Any:
    """``yaml.safe_load`` that refuses duplicated keys; errors name ``source``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 — a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such parameter file: {path} (see params/*.yaml)")
    raw = yaml_load(path.read_text(), source=str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a ``params/*.yaml`` file (its ``name`` defaults to the file stem)."""
    raw = read_yaml(path)
    raw.setdefault("name", Path(path).stem)
    return validate(raw, source=str(path))


def to_yaml(config: RunConfig) -> str:
    """The whole configuration, every value explicit, as YAML (what a run folder records)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, width=100)


def parse_value(text: str) -> Any:
    """A ``-p`` value typed like YAML: ``3`` → 3, ``0.1`` → 0.1, ``true`` → True, ``[a, b]`` →
    a list, ``null`` → None; anything else stays a string (a duplicated key is an error)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 — a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"-p value {text!r}: {exc}") from None
    except yaml.YAMLError:
        return text


def resolve_name(name: str) -> list[tuple[str, str]]:
    """``section.field`` → [(section, field)]; a bare ``field`` → every section declaring it
    (``optimizer_steps`` sets it in pretrain, stage_a and stage_b); a top-level name →
    [("", name)]."""
    if "." in name:
        section, field = name.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"-p {name}: unknown section {section!r}; sections are {list(SECTIONS)}")
        if name in RENAMED:
            raise ConfigError(f"-p {name}: {_renamed(name)}")
        if field not in SECTIONS[section].model_fields:
            close = difflib.get_close_matches(field, list(SECTIONS[section].model_fields), n=1)
            hint = f" — did you mean {section}.{close[0]}?" if close else ""
            raise ConfigError(f"-p {name}: section {section} has no parameter {field!r}{hint}")
        return [(section, field)]
    if name in TOP_LEVEL:
        return [("", name)]
    found = [(s, name) for s, model in SECTIONS.items() if name in model.model_fields]
    if not found and _renamed_bare(name):
        raise ConfigError(f"-p {name}: {_renamed_bare(name)}")
    if not found:
        every = list(TOP_LEVEL) + [f for m in SECTIONS.values() for f in m.model_fields]
        close = difflib.get_close_matches(name, every, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"-p {name}: unknown parameter{hint}")
    return found


def apply_overrides(config: RunConfig, overrides: Iterable[str]) -> tuple[RunConfig, list[str]]:
    """Apply ``name=value`` strings; returns the new config and what each one set."""
    raw = config.model_dump(mode="json")
    notes = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"-p {item!r}: expected name=value (e.g. -p stage_a.optimizer_steps=30)")
        name, text = item.split("=", 1)
        value = parse_value(text)
        targets = resolve_name(name.strip())
        for section, field in targets:
            (raw if not section else raw[section])[field] = value
        notes.append(f"-p {item} → " + ", ".join(f"{s}.{f}" if s else f for s, f in targets))
    return validate(raw, source="-p overrides"), notes


def with_cell(config: RunConfig, notebook: str, values: Mapping[str, Any]) -> RunConfig:
    """``config`` with a notebook's parameters cell applied to its section."""
    spec = NOTEBOOKS[notebook]
    raw = config.model_dump(mode="json")
    where = {name: section for section, name in spec.cell}
    for key, value in values.items():
        if key not in where:
            raise ConfigError(f"{notebook}: {key!r} is not a parameter of this notebook's cell")
        raw[where[key]][key] = value
    return validate(raw, source=f"{notebook} parameters cell")


def cell_values(config: RunConfig, notebook: str) -> dict[str, Any]:
    """The values of a notebook's cell parameters in ``config`` (what the runner injects)."""
    raw = config.model_dump(mode="json")
    return {name: raw[section][name] for section, name in NOTEBOOKS[notebook].cell}
