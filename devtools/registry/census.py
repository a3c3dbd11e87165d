"""Breakdown of a population by nationality, residence and account type (for `registry stats`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devtools.registry.demography import ACCOUNT_TYPES, COUNTRIES, EMPLOYEE, US
from devtools.registry.population import Population


@dataclass(frozen=True)
class Census:
    """Counts of users; nationalities count a dual national once under each country."""

    users: int
    account_types: dict[str, int]
    nationalities: dict[str, int]
    residences: dict[str, int]
    dual: int
    dual_with_us: int
    unknown_nationality: int
    unknown_residence: int
    living_abroad: int
    foreign_nationals_in_us: int
    employees_not_us: int


def census(pop: Population) -> Census:
    """Count the population's attributes, column-wise."""
    dual = pop.nat2 >= 0
    us_national = (pop.nat1 == US) | (pop.nat2 == US)
    known_abroad = (pop.residence >= 0) & ~pop.nat_unknown & (pop.residence != pop.nat1) & (pop.residence != pop.nat2)
    return Census(
        users=len(pop),
        account_types=_named(np.bincount(pop.account_type, minlength=len(ACCOUNT_TYPES)), ACCOUNT_TYPES),
        nationalities=_by_country(np.concatenate([pop.nat1, pop.nat2])),
        residences=_by_country(pop.residence),
        dual=int(dual.sum()),
        dual_with_us=int((dual & us_national).sum()),
        unknown_nationality=int(pop.nat_unknown.sum()),
        unknown_residence=int((pop.residence < 0).sum()),
        living_abroad=int(known_abroad.sum()),
        foreign_nationals_in_us=int(((pop.residence == US) & ~pop.nat_unknown & ~us_national).sum()),
        employees_not_us=int(((pop.account_type == EMPLOYEE) & ~pop.nat_unknown & ~us_national).sum()),
    )


def _by_country(column: np.ndarray) -> dict[str, int]:
    counts = np.bincount(column[column >= 0], minlength=len(COUNTRIES))
    ranked = sorted(_named(counts, COUNTRIES).items(), key=lambda item: (-item[1], item[0]))
    return {code: count for code, count in ranked if count}


def _named(counts: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    return {name: int(count) for name, count in zip(names, counts.tolist(), strict=True)}
