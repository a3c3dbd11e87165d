"""Selectors compiled to vectorised three-valued (Kleene) logic over the user columns.

Every node yields (true, unknown) boolean masks; false is what is neither. A user whose attribute a
selector needs is unknown gets UNKNOWN for that leaf, and the directive's unknown_attribute rule
decides the final answer (restrict: fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from services.impact.population import ACCOUNT_CODE, COUNTRY_INDEX, NONE, Columns
from shared.contracts.directives import (
    AccountTypeIs, AllOf, AnyOf, DirectiveScope, Entitlement, Everyone, ForeignNational, Nationality, Not,
    Organisation, Residence, Selector,
)

Masks = tuple[np.ndarray, np.ndarray]  # (true, unknown)


@dataclass(frozen=True)
class Membership:
    """Who a scope covers among some rows: affected, and affected only because of an unknown attribute."""

    affected: np.ndarray
    unknown_only: np.ndarray


def membership(columns: Columns, scope: DirectiveScope) -> Membership:
    """Evaluate a directive's population over the rows: only present users can be affected."""
    true, unknown = evaluate(scope.selector, columns)
    restricted_unknown = unknown & columns.present if scope.unknown_attribute == "restrict" else np.zeros_like(unknown)
    return Membership(affected=(true & columns.present) | restricted_unknown, unknown_only=restricted_unknown)


def evaluate(selector: Selector, columns: Columns) -> Masks:
    """(true, unknown) masks of a selector over the rows."""
    return _LEAVES[type(selector)](selector, columns)


def _known(true: np.ndarray) -> Masks:
    return true, np.zeros_like(true)


def _everyone(_: Everyone, c: Columns) -> Masks:
    return _known(np.ones(len(c), bool))


def _holds_any(c: Columns, codes: list[str]) -> np.ndarray:
    wanted = np.array([COUNTRY_INDEX[code] for code in codes], np.int16)
    return np.isin(c.nationalities, wanted).any(axis=1)


def _foreign_national(s: ForeignNational, c: Columns) -> Masks:
    unknown = c.nationality_unknown
    return ~unknown & ~_holds_any(c, [s.home_country]), unknown.copy()


def _nationality(s: Nationality, c: Columns) -> Masks:
    unknown = c.nationality_unknown
    return ~unknown & _holds_any(c, s.any_of), unknown.copy()


def _residence(s: Residence, c: Columns) -> Masks:
    wanted = np.array([COUNTRY_INDEX[code] for code in s.any_of], np.int16)
    return np.isin(c.residence, wanted), c.residence == NONE


def _account_type(s: AccountTypeIs, c: Columns) -> Masks:
    return _known(np.isin(c.account_type, [ACCOUNT_CODE[a] for a in s.any_of]))


def _organisation(s: Organisation, c: Columns) -> Masks:
    wanted = [c.organisations[o] for o in s.any_of if o in c.organisations]
    return _known(np.isin(c.organisation, np.array(wanted, np.int32)))


def _entitlement(s: Entitlement, c: Columns) -> Masks:
    return _known(np.logical_or.reduce([c.entitled_to(m) for m in s.any_of]))


def _all_of(s: AllOf, c: Columns) -> Masks:
    parts = [evaluate(clause, c) for clause in s.of]
    true = np.logical_and.reduce([t for t, _ in parts])
    false = np.logical_or.reduce([~t & ~u for t, u in parts])
    return true, ~true & ~false


def _any_of(s: AnyOf, c: Columns) -> Masks:
    parts = [evaluate(clause, c) for clause in s.of]
    true = np.logical_or.reduce([t for t, _ in parts])
    false = np.logical_and.reduce([~t & ~u for t, u in parts])
    return true, ~true & ~false


def _not(s: Not, c: Columns) -> Masks:
    true, unknown = evaluate(s.of, c)
    return ~true & ~unknown, unknown


_LEAVES: dict[type, Callable[..., Masks]] = {
    Everyone: _everyone, ForeignNational: _foreign_national, Nationality: _nationality, Residence: _residence,
    AccountTypeIs: _account_type, Organisation: _organisation, Entitlement: _entitlement, AllOf: _all_of,
    AnyOf: _any_of, Not: _not,
}
