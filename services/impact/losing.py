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
    columns = population.columns()
    counts: dict[str, int] = {}
    for model, users in by_model.items():
        ids = np.asarray(users.to_array(), np.int64)
        entitled = columns.entitled_to(model)
        ids = ids[ids < len(entitled)]
        counts[model] = int(entitled[ids].sum())
    return counts
