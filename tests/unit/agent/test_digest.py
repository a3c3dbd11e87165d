"""The agent's sliced set digest is the shared digest definition, whatever the ids' spread."""

from __future__ import annotations

import numpy as np
import pytest
from pyroaring import BitMap

from services.agent.restrictions import SLICE, set_digest
from shared.contracts import bitmaps


@pytest.mark.parametrize("ids", [
    [], [0], [2**32 - 1], [0, 2**32 - 1], [SLICE - 1, SLICE, 3 * SLICE + 5],
    np.random.default_rng(1).integers(0, 2**32, 10_000).tolist(),
    np.random.default_rng(2).choice(5 * SLICE, 200_000, replace=False).tolist(),
])
def test_the_sliced_digest_equals_the_shared_definition(ids: list[int]) -> None:
    users = BitMap(ids)
    assert set_digest(users) == bitmaps.set_digest(users)
