"""Active directives and their affected sets: assessment bookkeeping, lift set algebra, incremental deltas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap

from services.impact.affected import bitmap_of, id_bitmap, rows_bitmap
from services.impact.selection import membership
from services.impact.user_columns import Population, distinct_ids
from shared.contracts.bitmaps import CHUNK_IDS, SetDigest, apply_delta_in_place, chunk_bitmap, union
from shared.contracts.directives import DirectiveScope

DELTA_IDS = CHUNK_IDS  # ids (added + removed) per AffectedSetDelta at most: like a chunk, well under the message size


@dataclass
class ActiveDirective:
    """A directive in force: the revision assessed, its scope and its current affected set per model."""

    directive_id: str
    revision: int
    scope: DirectiveScope
    sets: dict[str, BitMap]
    delta_seq: int = 0
    digests: dict[str, SetDigest] = field(default_factory=dict, repr=False)  # per model; made on first need

    def digest(self, model: str) -> str:
        """The set digest of one model's set, kept per range (hashed whole once, on first need after a restart)."""
        if model not in self.digests:
            self.digests[model] = SetDigest.of(self.sets.get(model, BitMap()))
        return self.digests[model].hexdigest()

    def apply(self, model: str, added: BitMap, removed: BitMap) -> None:
        """A delta to one model's set, in place (the directive owns its sets: no copy of a 100M-user set per
        change); its kept digest re-hashes only the ranges the delta touched."""
        apply_delta_in_place(self.sets.setdefault(model, BitMap()), added, removed)
        if model in self.digests:
            self.digests[model].update(self.sets[model], added | removed)


@dataclass(frozen=True)
class Delta:
    """A change of one active directive's set for one model."""

    directive_id: str
    revision: int
    seq: int
    model: str
    added: BitMap
    removed: BitMap
    model_digest: str  # set digest of the model's set this delta leaves


@dataclass(frozen=True)
class Amendment:
    """What a new revision changes against the active one, per model: users added and removed."""

    amended_from: int
    added: dict[str, BitMap]
    removed: dict[str, BitMap]


@dataclass
class Directives:
    """What impact knows about directives: latest assessed revision, and which are active."""

    assessed: dict[str, int] = field(default_factory=dict)
    active: dict[str, ActiveDirective] = field(default_factory=dict)

    def is_assessed(self, directive_id: str, revision: int) -> bool:
        """True when this revision (or a later one) was already assessed: a redelivery or a late old revision."""
        return revision <= self.assessed.get(directive_id, 0)

    def activate(
        self,
        directive_id: str,
        revision: int,
        scope: DirectiveScope,
        sets: dict[str, BitMap],
        digests: Mapping[str, SetDigest] | None = None,
    ) -> None:
        """Record an assessed revision (with its sets' digests by range when known: deltas then re-hash only
        what they touch); it replaces any earlier revision of the directive, and owns copies of the sets."""
        self.assessed[directive_id] = max(revision, self.assessed.get(directive_id, 0))
        owned = {m: BitMap(users) for m, users in sets.items()}
        kept = {m: d.copy() for m, d in (digests or {}).items() if m in sets}
        self.active[directive_id] = ActiveDirective(directive_id, revision, scope, owned, digests=kept)

    def amendment(self, directive_id: str, sets: dict[str, BitMap]) -> Amendment | None:
        """The difference between the active revision's sets and these new ones; None if not active."""
        current = self.active.get(directive_id)
        if current is None:
            return None
        models = sorted(set(current.sets) | set(sets))
        before = {m: current.sets.get(m, BitMap()) for m in models}
        after = {m: sets.get(m, BitMap()) for m in models}
        return Amendment(
            current.revision, {m: after[m] - before[m] for m in models}, {m: before[m] - after[m] for m in models}
        )

    def restored(self, directive_id: str) -> dict[str, BitMap]:
        """Per model: the directive's users that no OTHER active directive covers for that model."""
        lifting = self.active[directive_id]
        others = [d for d in self.active.values() if d.directive_id != directive_id]
        return {
            model: users - union(d.sets[model] for d in others if model in d.sets)
            for model, users in lifting.sets.items()
        }

    def covered_by_model(self) -> dict[str, int]:
        """Per model, the users at least one active directive covers (each counted once)."""
        models = {model for d in self.active.values() for model in d.sets}
        return {m: len(union(d.sets[m] for d in self.active.values() if m in d.sets)) for m in sorted(models)}

    def lift(self, directive_id: str) -> ActiveDirective | None:
        """Remove a directive from the active ones; None if it is not active."""
        return self.active.pop(directive_id, None)

    def deltas(self, population: Population, user_ids: np.ndarray) -> list[Delta]:
        """Re-evaluate these users against every active directive; apply and return the changes."""
        if not len(user_ids) or not self.active:
            return []
        ids = distinct_ids(user_ids)
        columns = population.columns(ids)
        candidates = id_bitmap(ids)
        changes = []
        for directive in self.active.values():
            now = bitmap_of(membership(columns, directive.scope).affected, ids)
            changes.extend(_changes(directive, candidates, now))
        return changes

    def reevaluated(self, population: Population) -> list[Delta]:
        """Re-evaluate every user against every active directive (after a restart); apply and return the changes.

        Equal to deltas() over every row of the view and every held id beyond it, without listing those ids:
        the view's columns are evaluated in place, and an id beyond the view is an absent user, in no set now.
        """
        if not self.active:
            return []
        columns = population.columns()
        changes = []
        for directive in self.active.values():
            changes.extend(_changes(directive, None, rows_bitmap(membership(columns, directive.scope).affected)))
        return changes


def _changes(directive: ActiveDirective, candidates: BitMap | None, now: BitMap) -> list[Delta]:
    """The deltas that take each model's set to `now` over the candidates (None: every id), in order.

    A change larger than DELTA_IDS ids (a registry re-import while impact was down) is split into
    consecutive deltas of at most that many ids, each with the set it leaves, so that every message fits
    the topic's message size.
    """
    changes = []
    for model in sorted(directive.sets):
        before = directive.sets[model] if candidates is None else directive.sets[model] & candidates
        added, removed = now - before, before - now
        if not added and not removed:
            continue
        parts = (
            [(added, removed)]
            if len(added) + len(removed) <= DELTA_IDS
            else [(BitMap(), part) for part in chunk_bitmap(removed, DELTA_IDS) if part]
            + [(part, BitMap()) for part in chunk_bitmap(added, DELTA_IDS) if part]
        )
        for part_added, part_removed in parts:
            directive.apply(model, part_added, part_removed)
            directive.delta_seq += 1
            changes.append(
                Delta(
                    directive.directive_id,
                    directive.revision,
                    directive.delta_seq,
                    model,
                    part_added,
                    part_removed,
                    directive.digest(model),
                )
            )
    return changes
