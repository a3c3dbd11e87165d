"""Who each active directive covers now, as far as its notices went out (pure): the latest confirmed restrict
revision's sets, with the confirmed deltas applied; a lift removes the directive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyroaring import BitMap

from shared.contracts.bitmaps import apply_delta_in_place, union


@dataclass
class _Covered:
    revision: int
    sets: dict[str, BitMap] = field(default_factory=dict)


class Coverage:
    """Per directive: the revision in force and, per model, the users it covers."""

    def __init__(self) -> None:
        self._directives: dict[str, _Covered] = {}

    def enforced(self, directive_id: str, revision: int, sets: Mapping[str, BitMap]) -> None:
        """A restrict revision was confirmed: its sets replace the directive's (an older revision changes nothing)."""
        current = self._directives.get(directive_id)
        if current is None or current.revision <= revision:
            self._directives[directive_id] = _Covered(revision, {m: BitMap(u) for m, u in sets.items()})

    def delta(self, directive_id: str, revision: int, model: str, added: BitMap, removed: BitMap) -> None:
        """A confirmed delta of the revision in force (removals first, as impact computes it)."""
        current = self._directives.get(directive_id)
        if current is not None and current.revision == revision:
            apply_delta_in_place(current.sets.setdefault(model, BitMap()), added, removed)

    def lifted(self, directive_id: str) -> None:
        self._directives.pop(directive_id, None)

    def sets_of(self, directive_id: str) -> tuple[int, dict[str, BitMap]] | None:
        current = self._directives.get(directive_id)
        return None if current is None else (current.revision, current.sets)

    def elsewhere(self, directive_id: str, model: str) -> BitMap:
        """Users other directives still cover for the model: access to it is not restored to them."""
        return union(c.sets.get(model, BitMap()) for d, c in self._directives.items() if d != directive_id)

    def covering(self, user: int, model: str) -> list[tuple[str, int]]:
        """(directive, revision) of every directive covering the user for the model."""
        return sorted((d, c.revision) for d, c in self._directives.items() if user in c.sets.get(model, ()))
