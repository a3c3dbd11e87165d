"""Every wire model and field documents itself: the AsyncAPI and JSON Schemas are read by people."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from shared.contracts.catalogue import ALL_TOPICS


def _models(tp: object, seen: set[type]) -> set[type]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp in seen:
            return seen
        seen.add(tp)
        for field in tp.model_fields.values():
            _models(field.annotation, seen)
        return seen
    for arg in typing.get_args(tp):
        _models(arg, seen)
    return seen


ALL_MODELS = sorted({m for t in ALL_TOPICS for m in _models(t.message, set())}, key=lambda m: m.__name__)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_model_and_every_field_have_description_and_example(model: type[BaseModel]) -> None:
    assert (model.__doc__ or "").strip(), f"{model.__name__} has no docstring"
    undocumented = [
        name
        for name, field in model.model_fields.items()
        if name not in {"type", "kind"} and (not field.description or (field.examples is None and not _nested(field)))
    ]
    assert not undocumented, f"{model.__name__}: fields without description/example: {undocumented}"


def _nested(field: typing.Any) -> bool:
    """A field whose type is itself a documented model is exemplified by that model."""
    return bool(_models(field.annotation, set()))
