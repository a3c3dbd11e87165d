"""Active directives and their affected sets: assessment bookkeeping, lift set algebra, incremental deltas."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap

from services.impact.affected import bitmap_of
from services.impact.population import Population
from services.impact.selection import membership
from shared.contracts.bitmaps import union
from shared.contracts.directives import DirectiveScope


@dataclass
class ActiveDirective:
    """A directive in force: the revision assessed, its scope and its current affected set per model."""

    directive_id: str
    revision: int
    scope: DirectiveScope
    sets: dict[str, BitMap]
    delta_seq: int = 0


@dataclass(frozen=True)
class Delta:
    """A change of one active directive's set for one model."""

    directive_id: str
    revision: int
    seq: int
    model: str
    added: BitMap
    removed: BitMap
    after: BitMap


@dataclass
class Directives:
    """What impact knows about directives: latest assessed revision, and which are active."""

    assessed: dict[str, int] = field(default_factory=dict)
    active: dict[str, ActiveDirective] = field(default_factory=dict)

    def is_assessed(self, directive_id: str, revision: int) -> bool:
        """True when this revision (or a later one) was already assessed: a redelivery or a late old revision."""
        return revision <= self.assessed.get(directive_id, 0)

    def activate(self, directive_id: str, revision: int, scope: DirectiveScope, sets: dict[str, BitMap]) -> None:
        """Record an assessed revision; it replaces any earlier revision of the directive."""
        self.assessed[directive_id] = max(revision, self.assessed.get(directive_id, 0))
        self.active[directive_id] = ActiveDirective(directive_id, revision, scope, dict(sets))

    def restored(self, directive_id: str) -> dict[str, BitMap]:
        """Per model: the directive's users that no OTHER active directive covers for that model."""
        lifting = self.active[directive_id]
        others = [d for d in self.active.values() if d.directive_id != directive_id]
        return {
            model: users - union(d.sets[model] for d in others if model in d.sets)
            for model, users in lifting.sets.items()
        }

    def lift(self, directive_id: str) -> ActiveDirective | None:
        """Remove a directive from the active ones; None if it is not active."""
        return self.active.pop(directive_id, None)

    def deltas(self, population: Population, user_ids: np.ndarray) -> list[Delta]:
        """Re-evaluate these users against every active directive; apply and return the changes."""
        if not len(user_ids) or not self.active:
            return []
        ids = np.unique(np.asarray(user_ids, np.int64))
        columns = population.columns(ids)
        candidates = BitMap(ids.astype(np.uint32))
        changes = []
        for directive in self.active.values():
            now = bitmap_of(membership(columns, directive.scope).affected, ids)
            changes.extend(_changes(directive, candidates, now))
        return changes


def _changes(directive: ActiveDirective, candidates: BitMap, now: BitMap) -> list[Delta]:
    changes = []
    for model in sorted(directive.sets):
        before = directive.sets[model] & candidates
        added, removed = now - before, before - now
        if not added and not removed:
            continue
        directive.sets[model] = (directive.sets[model] - removed) | added
        directive.delta_seq += 1
        changes.append(Delta(directive.directive_id, directive.revision, directive.delta_seq, model,
                             added, removed, directive.sets[model]))
    return changes
