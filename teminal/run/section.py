"""The validation every parameter section shares (SPEC §1–§5 parameters, ``run/params.py``).

A ``Section`` is a frozen pydantic model: unknown names and ill-typed values are errors naming
them, NaN and ±inf are refused, and a bool is never taken for a number (pydantic would read
``true`` as 1: ``-p steps=true`` is an error, not one step).
"""
from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

NonNeg = Annotated[float, Field(ge=0)]
"""A weight: any finite value ≥ 0."""


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool (``bool``, ``bool | None``, …)."""
    if annotation is bool:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_takes_bool(a) for a in typing.get_args(annotation))
    return False


def no_bool_for_numbers(model: type[BaseModel], data: Any) -> Any:
    """Refuse ``true``/``false`` for a number field of ``model`` (a ``ValueError`` naming it)."""
    if isinstance(data, dict):
        for name, value in data.items():
            f = model.model_fields.get(name)
            if f is not None and isinstance(value, bool) and not _takes_bool(f.annotation):
                raise ValueError(f"{name}: expected a number, got {value!r}")
    return data


STRICT = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)
"""The pydantic settings of every section and of the whole run configuration."""


class Section(BaseModel):
    """A group of parameters: unknown names and ill-typed values are errors; NaN and ±inf
    are refused everywhere; a bool is never taken for a number."""

    model_config = STRICT

    @model_validator(mode="before")
    @classmethod
    def _strict_numbers(cls, data: Any) -> Any:
        return no_bool_for_numbers(cls, data)


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
"""A run name: a plain folder name (it becomes ``runs/<name>-<time>``), no path separators."""


def check_name(v: str) -> str:
    if not NAME.fullmatch(v) or ".." in v:
        raise ValueError("name must be a plain folder name (letters, digits, '.', '_', "
                         "'-'; no '/' or '..')")
    return v


def check_device(v: str) -> str:
    ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
    if not ok:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {v!r}")
    return v


def check_seeds(v: int | list[int]) -> int | list[int]:
    if isinstance(v, int) and v < 1:
        raise ValueError(f"seeds must be a count ≥ 1 or a list of seeds, got {v}")
    if isinstance(v, list) and (not v or len(set(v)) != len(v)):
        raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {v}")
    return v


def check_order(v: list[str], pipeline: tuple[str, ...]) -> list[str]:
    """``notebooks``: known, not empty, each once, in ``pipeline`` order."""
    unknown = [nb for nb in v if nb not in pipeline]
    if unknown:
        raise ValueError(f"unknown notebooks {unknown}; choose from {list(pipeline)}")
    if not v:
        raise ValueError("notebooks is empty")
    twice = sorted({nb for nb in v if v.count(nb) > 1})
    if twice:
        raise ValueError(f"notebooks {twice} listed more than once")
    ordered = [nb for nb in pipeline if nb in v]
    if ordered != list(v):
        raise ValueError(f"notebooks must keep the pipeline order {ordered}")
    return list(v)
