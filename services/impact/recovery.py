"""Rebuild the directive state from impact's own output topic (compliance.impact.v1) after a restart.

Why that topic, and why an assessment counts only once all its chunks are there: see the impact README.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from pyroaring import BitMap

from services.impact.directives import Directives
from shared.contracts.bitmaps import decode_bitmap
from shared.contracts.catalogue import IMPACT
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, ImpactAssessed
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings

log = structlog.get_logger(service="impact")


async def recover_directives(kafka: KafkaSettings, instance: str) -> Directives:
    """The directives as impact last published them, read from the impact topic's beginning to its end."""
    replay = ImpactReplay()
    async for record in records_to_end(kafka, IMPACT, f"impact-recovery-{instance}"):
        _fold(replay, record)
    log.info("directives recovered from the impact topic", active=sorted(replay.directives.active))
    return replay.directives


def _fold(replay: ImpactReplay, record: Any) -> None:
    try:
        replay.fold(IMPACT.adapter.validate_json(record.value))
    except ValueError as exc:
        log.warning("unreadable impact record skipped in recovery", offset=record.offset, error=str(exc))


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
        active.apply(delta.model, decode_bitmap(delta.added), decode_bitmap(delta.removed))
        active.delta_seq = delta.seq
