"""Affected sets: per model a roaring bitmap of user ids, with the breakdown an assessment reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap

from services.impact.population import ACCOUNT_TYPES, COUNTRIES, Columns, Population
from services.impact.selection import membership
from shared.contracts.bitmaps import bitmap_ids, scope_digest, set_digest, union
from shared.contracts.directives import DirectiveScope

UNKNOWN_COUNTRY = "??"


@dataclass(frozen=True)
class AffectedSet:
    """Users a scope covers, per model, and how they break down."""

    by_model: dict[str, BitMap]
    unknown_only: int = 0
    by_country: dict[str, int] = field(default_factory=dict)
    by_account_type: dict[str, int] = field(default_factory=dict)

    @property
    def users(self) -> int:
        return len(union(self.by_model.values()))

    @property
    def model_digests(self) -> dict[str, str]:
        return {model: set_digest(users) for model, users in self.by_model.items()}

    @property
    def digest(self) -> str:
        return scope_digest(self.model_digests)


def bitmap_of(mask: np.ndarray, ids: np.ndarray | None = None) -> BitMap:
    """The ids (row numbers, or the given ids) where the mask holds."""
    chosen = np.flatnonzero(mask) if ids is None else ids[mask]
    return BitMap(chosen.astype(np.uint32))


def assess(population: Population, scope: DirectiveScope) -> AffectedSet:
    """The affected set of a scope over the whole view: the same users for every model."""
    columns = population.columns()
    member = membership(columns, scope)
    users = bitmap_of(member.affected)
    return AffectedSet(
        by_model={model: BitMap(users) for model in scope.models},
        unknown_only=int(member.unknown_only.sum()),
        by_country=_by_country(columns, member.affected),
        by_account_type=_by_account_type(columns, member.affected),
    )


def _by_country(columns: Columns, affected: np.ndarray) -> dict[str, int]:
    counts = np.bincount(columns.residence[affected].astype(np.int64) + 1, minlength=len(COUNTRIES) + 1)
    labels = (UNKNOWN_COUNTRY, *COUNTRIES)
    return {labels[i]: int(n) for i, n in enumerate(counts) if n}


def _by_account_type(columns: Columns, affected: np.ndarray) -> dict[str, int]:
    counts = np.bincount(columns.account_type[affected], minlength=len(ACCOUNT_TYPES))
    return {ACCOUNT_TYPES[i]: int(n) for i, n in enumerate(counts) if n}


def breakdown(population: Population, by_model: dict[str, BitMap]) -> AffectedSet:
    """An AffectedSet for given per-model sets (a lift's restored sets), with the breakdown of their users."""
    users = bitmap_ids(union(by_model.values())).astype(np.int64)
    columns = population.columns(users)
    everyone = np.ones(len(users), bool)
    return AffectedSet(by_model=by_model, by_country=_by_country(columns, everyone),
                       by_account_type=_by_account_type(columns, everyone))
