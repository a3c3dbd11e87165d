"""Dry runs: what a directive (or a lift) would do to the current user view, without publishing anything."""

from __future__ import annotations

from dataclasses import dataclass

from pyroaring import BitMap

from services.impact.affected import AffectedSet, assess, breakdown
from services.impact.directives import Directives
from services.impact.losing import losing_by_model, losing_sets
from services.impact.user_columns import Population
from shared.contracts.bitmaps import union
from shared.contracts.directives import DirectiveScope

SAMPLE = 20


@dataclass(frozen=True)
class Preview:
    """An affected set summarised for people: counts, breakdowns and a few user ids."""

    affected: AffectedSet
    sample: list[int]
    added_by_model: dict[str, int] | None = None
    removed_by_model: dict[str, int] | None = None
    amends_revision: int | None = None
    losing: AffectedSet | None = None
    losing_added_by_model: dict[str, int] | None = None
    losing_removed_by_model: dict[str, int] | None = None


class NotActive(Exception):
    """A lift preview of a directive impact does not hold as active."""


def preview_directive(
    population: Population, directives: Directives, directive_id: str, scope: DirectiveScope
) -> Preview:
    """What issuing (or amending, if the id is active) this scope would affect."""
    affected = assess(population, scope)
    losing = breakdown(population, losing_sets(population, affected.by_model))
    amendment = directives.amendment(directive_id, affected.by_model)
    if amendment is None:
        return Preview(affected, _sample(affected), losing=losing)
    return Preview(
        affected,
        _sample(affected),
        added_by_model={m: len(u) for m, u in amendment.added.items()},
        removed_by_model={m: len(u) for m, u in amendment.removed.items()},
        amends_revision=amendment.amended_from,
        losing=losing,
        losing_added_by_model=losing_by_model(population, amendment.added),
        losing_removed_by_model=losing_by_model(population, amendment.removed),
    )


def preview_lift(population: Population, directives: Directives, directive_id: str) -> Preview:
    """What lifting an active directive would restore, net of every other active directive."""
    if directive_id not in directives.active:
        raise NotActive(f"directive_id: {directive_id!r} is not an active directive")
    restored = breakdown(population, directives.restored(directive_id))
    return Preview(
        restored, _sample(restored), losing=breakdown(population, losing_sets(population, restored.by_model))
    )


def _sample(affected: AffectedSet) -> list[int]:
    users: BitMap = union(affected.by_model.values())
    return [int(i) for i in users[:SAMPLE]] if len(users) else []
