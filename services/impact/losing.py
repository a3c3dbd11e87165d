"""Who actually loses (or regains) a model: covered by the scope AND entitled to it at evaluation time.

Enforcement stays on coverage (no window when an entitlement is granted later); these counts are what an
assessment reports beside it, and what notices are about."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pyroaring import BitMap

from services.impact.user_columns import Population


def losing_by_model(population: Population, by_model: Mapping[str, BitMap]) -> dict[str, int]:
    """Per model, how many of its covered users hold an entitlement to it in the view."""
    return {model: len(users) for model, users in losing_sets(population, by_model).items()}


def losing_sets(population: Population, by_model: Mapping[str, BitMap]) -> dict[str, BitMap]:
    """Per model, its covered users who hold an entitlement to it in the view."""
    columns = population.columns()
    found: dict[str, BitMap] = {}
    for model, users in by_model.items():
        ids = np.asarray(users.to_array(), np.int64)
        entitled = columns.entitled_to(model)
        ids = ids[ids < len(entitled)]
        found[model] = BitMap(ids[entitled[ids]].astype(np.uint32))
    return found
