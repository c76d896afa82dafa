"""The validation every parameter section shares (SPEC §1–§5 parameters, ``run/params.py``).

A ``Section`` is a frozen pydantic model: unknown names and ill-typed values are errors naming
them, NaN and ±inf are refused, and a bool is never taken for a number (pydantic would read
``true`` as 1: ``-p steps=true`` is an error, not one step).
"""
from __future__ import annotations

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
