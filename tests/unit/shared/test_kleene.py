"""Kleene's three-valued tables, as selectors use them (None: unknown)."""

from __future__ import annotations

import pytest

from shared.contracts.kleene import all_of, any_of, negate

T, F, U = True, False, None


@pytest.mark.parametrize(
    "truths, every, some",
    [([T, T], T, T), ([T, U], U, T), ([F, U], F, U), ([U, U], U, U), ([T, F], F, T), ([], T, F)],
)
def test_all_of_and_any_of_keep_unknown_until_decided(truths: list, every, some) -> None:
    assert (all_of(truths), any_of(truths)) == (every, some)


def test_not_of_unknown_stays_unknown() -> None:
    assert (negate(T), negate(F), negate(U)) == (F, T, U)
