"""Selectors compiled to vectorised three-valued (Kleene) logic over the user columns: every node yields
(true, unknown) masks, and the directive's unknown_attribute rule decides the final answer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from services.impact.user_columns import ACCOUNT_CODE, COUNTRY_INDEX, NONE, Columns
from shared.contracts.directives import (
    AccountTypeIs,
    AllOf,
    AnyOf,
    DirectiveScope,
    Entitlement,
    Everyone,
    ForeignNational,
    Nationality,
    Not,
    Organisation,
    Residence,
    Selector,
)

Masks = tuple[np.ndarray, np.ndarray]  # (true, unknown)
T = TypeVar("T")


@dataclass(frozen=True)
class Membership:
    """Who a scope covers among some rows: affected, and affected only because of an unknown attribute."""

    affected: np.ndarray
    unknown_only: np.ndarray


BLOCK = 1 << 18  # rows evaluated at a time: every temporary of a block stays in the CPU cache
WORKERS = 2  # threads for a view of several blocks: numpy's loops and hashlib release the GIL


def blockwise(rows: int, work: Callable[[int], T], workers: int = WORKERS) -> list[T]:
    """work(start) for the start of every block of rows, in order; on `workers` threads when there are several
    blocks (1: in this thread, the serial evaluation the parallel one must equal)."""
    starts = range(0, rows, BLOCK)
    if workers <= 1 or len(starts) <= 1:
        return [work(start) for start in starts]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(work, starts))


def membership(columns: Columns, scope: DirectiveScope, workers: int = WORKERS) -> Membership:
    """Evaluate a directive's population over the rows, block by block: only present users can be affected."""
    affected, unknown_only = np.empty(len(columns), bool), np.empty(len(columns), bool)

    def block_of(start: int) -> None:
        affected[start : start + BLOCK], unknown_only[start : start + BLOCK] = member_block(columns, scope, start)

    blockwise(len(columns), block_of, workers)
    return Membership(affected=affected, unknown_only=unknown_only)


def member_block(columns: Columns, scope: DirectiveScope, start: int) -> tuple[np.ndarray, np.ndarray]:
    """One block of the membership, rows start..start+BLOCK-1: (affected, affected only because of an unknown
    attribute), fresh arrays of the block's length."""
    block = columns.rows(start, start + BLOCK)
    affected, unknown = evaluate(scope.selector, block)  # fresh: updated in place
    restricted = unknown & block.present if scope.unknown_attribute == "restrict" else np.zeros_like(unknown)
    affected &= block.present
    affected |= restricted
    return affected, restricted


def evaluate(selector: Selector, columns: Columns) -> Masks:
    """(true, unknown) masks of a selector over the rows: fresh arrays the caller may update in place."""
    return _LEAVES[type(selector)](selector, columns)


def _known(true: np.ndarray) -> Masks:
    return true, np.zeros_like(true)


def _everyone(_: Everyone, c: Columns) -> Masks:
    return _known(np.ones(len(c), bool))


def _holds_any(c: Columns, codes: list[str]) -> np.ndarray:
    wanted = [COUNTRY_INDEX[code] for code in codes]
    slots = c.nationalities.T  # slot-major: each slot a contiguous column
    held = _among(slots[0], wanted)
    for slot in slots[1:]:
        held |= _among(slot, wanted)
    return held


def _among(column: np.ndarray, codes: list[int]) -> np.ndarray:
    """Rows whose code is one of these: a few equality passes beat np.isin's setup on short lists."""
    if len(codes) > 8:
        return np.isin(column, np.array(codes, column.dtype))
    hit = np.zeros(len(column), bool)
    for code in codes:
        hit |= column == code
    return hit


def _foreign_national(s: ForeignNational, c: Columns) -> Masks:
    unknown = c.nationality_unknown
    return ~(unknown | _holds_any(c, [s.home_country])), unknown.copy()


def _nationality(s: Nationality, c: Columns) -> Masks:
    unknown = c.nationality_unknown
    return ~unknown & _holds_any(c, s.any_of), unknown.copy()


def _residence(s: Residence, c: Columns) -> Masks:
    return _among(c.residence, [COUNTRY_INDEX[code] for code in s.any_of]), c.residence == NONE


def _account_type(s: AccountTypeIs, c: Columns) -> Masks:
    return _known(_among(c.account_type, [ACCOUNT_CODE[a] for a in s.any_of]))


def _organisation(s: Organisation, c: Columns) -> Masks:
    wanted = [c.organisations[o] for o in s.any_of if o in c.organisations]
    return _known(_among(c.organisation, wanted))


def _entitlement(s: Entitlement, c: Columns) -> Masks:
    true = np.zeros(len(c), bool)
    for model in s.any_of:
        true |= c.entitled_to(model)
    return _known(true)


def _all_of(s: AllOf, c: Columns) -> Masks:
    """Kleene AND: true when every clause is, false when any clause is."""
    parts = iter(evaluate(clause, c) for clause in s.of)
    true, unknown = next(parts)
    false = ~(true | unknown)
    for t, u in parts:
        true &= t
        false |= ~(t | u)
    return true, ~(true | false)


def _any_of(s: AnyOf, c: Columns) -> Masks:
    """Kleene OR: true when any clause is, false when every clause is."""
    parts = iter(evaluate(clause, c) for clause in s.of)
    true, unknown = next(parts)
    false = ~(true | unknown)
    for t, u in parts:
        true |= t
        false &= ~(t | u)
    return true, ~(true | false)


def _not(s: Not, c: Columns) -> Masks:
    true, unknown = evaluate(s.of, c)
    return ~(true | unknown), unknown


_LEAVES: dict[type, Callable[..., Masks]] = {
    Everyone: _everyone,
    ForeignNational: _foreign_national,
    Nationality: _nationality,
    Residence: _residence,
    AccountTypeIs: _account_type,
    Organisation: _organisation,
    Entitlement: _entitlement,
    AllOf: _all_of,
    AnyOf: _any_of,
    Not: _not,
}
