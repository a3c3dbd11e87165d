"""Rebuild the directive state from impact's own output topic (compliance.impact.v1) after a restart.

Why this topic and not the directives topic: the directive consumer commits its group offsets, so a
restarted instance never sees old directives again; but everything impact needs (scope, revision,
the affected sets as published, every delta since) is on compliance.impact.v1, in order per
directive. An assessment counts only once all its chunks are there, so a crash between the head and
the last chunk leaves the revision unassessed and the redelivered directive re-publishes it with
the same deterministic event ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyroaring import BitMap

from services.impact.directives import Directives
from shared.contracts.bitmaps import apply_delta, decode_bitmap
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, ImpactAssessed


@dataclass
class ImpactReplay:
    """Folds impact events, in topic order per directive, into Directives."""

    directives: Directives = field(default_factory=Directives)
    _pending: dict[str, tuple[ImpactAssessed, dict[int, AffectedSetChunk]]] = field(default_factory=dict)

    def fold(self, event: ImpactAssessed | AffectedSetChunk | AffectedSetDelta) -> None:
        if isinstance(event, ImpactAssessed):
            self._pending[event.directive_id] = (event, {})
            self._complete(event.directive_id)
        elif isinstance(event, AffectedSetChunk):
            self._chunk(event)
        else:
            self._delta(event)

    def _chunk(self, chunk: AffectedSetChunk) -> None:
        head, chunks = self._pending.get(chunk.directive_id, (None, None))
        if head is None or (head.revision, head.action) != (chunk.revision, chunk.action):
            return  # a chunk of an assessment already folded (a re-publish), or of one never seen whole
        chunks[chunk.chunk] = chunk  # diff chunks are numbered after the whole ones: no clash
        self._complete(chunk.directive_id)

    def _complete(self, directive_id: str) -> None:
        head, chunks = self._pending[directive_id]
        if len(chunks) < head.chunks + head.diff_chunks:
            return  # an amendment counts once its difference is out too, or a redelivery re-publishes it
        del self._pending[directive_id]
        if head.action == "lift":
            self.directives.assessed[directive_id] = max(head.revision, self.directives.assessed.get(directive_id, 0))
            self.directives.lift(directive_id)
            return
        sets = {model: BitMap() for model in head.scope.models}
        for chunk in chunks.values():
            if chunk.part == "whole":
                sets[chunk.model] |= decode_bitmap(chunk.users)
        self.directives.activate(directive_id, head.revision, head.scope, sets)

    def _delta(self, delta: AffectedSetDelta) -> None:
        active = self.directives.active.get(delta.directive_id)
        if active is None or active.revision != delta.revision or delta.seq <= active.delta_seq:
            return
        users = active.sets.setdefault(delta.model, BitMap())
        active.sets[delta.model] = apply_delta(users, decode_bitmap(delta.added), decode_bitmap(delta.removed))
        active.delta_seq = delta.seq
