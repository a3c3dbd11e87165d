"""Who actually loses (or regains) a model: covered by the scope AND entitled to it at evaluation time.

Enforcement stays on coverage (no window when an entitlement is granted later); these counts are what an
assessment reports beside it, and what notices are about."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pyroaring import BitMap

from services.impact.affected import id_bitmap
from services.impact.user_columns import Population
from shared.contracts.bitmaps import bitmap_ids


def losing_by_model(population: Population, by_model: Mapping[str, BitMap]) -> dict[str, int]:
    """Per model, how many of its covered users hold an entitlement to it in the view (counted, no set built:
    this runs on every assessment)."""
    return {model: int(_holding(population, model, users)[1].sum()) for model, users in by_model.items()}


def losing_sets(population: Population, by_model: Mapping[str, BitMap]) -> dict[str, BitMap]:
    """Per model, its covered users who hold an entitlement to it in the view."""
    found: dict[str, BitMap] = {}
    for model, users in by_model.items():
        ids, holds = _holding(population, model, users)
        found[model] = id_bitmap(ids[holds])
    return found


def _holding(population: Population, model: str, users: BitMap) -> tuple[np.ndarray, np.ndarray]:
    """The covered users inside the view (ascending ids) and, for each, whether it holds the model."""
    entitled = population.columns().entitled_to(model)
    ids = bitmap_ids(users)
    ids = ids[: np.searchsorted(ids, len(entitled))]
    return ids, entitled[ids]
