"""The set digest is defined once (shared.contracts.bitmaps); every faster way to compute it agrees."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pyroaring import BitMap

from services.impact.affected import rows_bitmap, rows_digest
from shared.contracts.bitmaps import DIGEST_SLICE, EMPTY_SCOPE_DIGEST, scope_digest, set_digest, sets_digest

SPREADS = [
    [],
    [0],
    [2**32 - 1],
    [0, 2**32 - 1],
    [DIGEST_SLICE - 1, DIGEST_SLICE, 3 * DIGEST_SLICE + 5],
    np.random.default_rng(1).integers(0, 2**32, 10_000).tolist(),
    np.random.default_rng(2).choice(5 * DIGEST_SLICE, 200_000, replace=False).tolist(),
]


def _one_shot(users: BitMap) -> str:
    """The definition read literally: every id at once, ascending, little-endian uint32."""
    return hashlib.sha256(np.array(sorted(users), dtype="<u4").tobytes()).hexdigest()


@pytest.mark.parametrize("ids", SPREADS)
def test_the_sliced_set_digest_equals_the_definition_whatever_the_ids_spread(ids: list[int]) -> None:
    users = BitMap(ids)
    assert set_digest(users) == _one_shot(users)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_impact_mask_digest_equals_the_set_digest_of_the_mask_rows(seed: int) -> None:
    mask = np.random.default_rng(seed).random(300_000) < 0.3
    assert rows_digest(mask) == set_digest(rows_bitmap(mask))


def test_sets_digest_is_the_scope_digest_of_each_models_set_digest() -> None:
    sets = {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([9])}
    assert sets_digest(sets) == scope_digest({m: set_digest(u) for m, u in sets.items()})


def test_holding_nothing_is_the_digest_of_the_empty_scope() -> None:
    assert EMPTY_SCOPE_DIGEST == sets_digest({}) == hashlib.sha256(b"").hexdigest()
