"""Impact messages built from affected sets, with deterministic event ids so a re-publish is recognisable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pyroaring import BitMap

from services.impact.affected import AffectedSet
from services.impact.directives import Delta
from shared.contracts.bitmaps import chunk_bitmap, encode_bitmap, set_digest
from shared.contracts.directives import DirectiveScope
from shared.contracts.impact import Action, AffectedSetChunk, AffectedSetDelta, ImpactAssessed

PRODUCER = "impact"


@dataclass(frozen=True)
class Cause:
    """What an output answers: the directive, its revision, the causing event and the time."""

    directive_id: str
    revision: int
    event_id: str | None
    now: datetime

    def envelope(self, event_id: str) -> dict:
        return dict(event_id=event_id, occurred_at=self.now, producer=PRODUCER,
                    correlation_id=self.directive_id, causation_id=self.event_id)


def assessment(cause: Cause, action: Action, scope: DirectiveScope, affected: AffectedSet,
               registry_offsets: Mapping[int, int], ids_per_chunk: int | None = None
               ) -> list[ImpactAssessed | AffectedSetChunk]:
    """ImpactAssessed followed by its chunks, numbered across models in model-name order."""
    pieces = [(model, piece) for model in sorted(affected.by_model)
              for piece in _chunks(affected.by_model[model], ids_per_chunk)]
    prefix = f"impact:{cause.directive_id}:{cause.revision}:{action}"
    head = ImpactAssessed(
        **cause.envelope(f"{prefix}:assessed"), directive_id=cause.directive_id, revision=cause.revision,
        action=action, scope=scope, affected_by_model={m: len(u) for m, u in affected.by_model.items()},
        affected_users=affected.users, by_country=affected.by_country, by_account_type=affected.by_account_type,
        unknown_only=affected.unknown_only, model_digests=affected.model_digests, digest=affected.digest,
        registry_offsets=dict(registry_offsets), chunks=len(pieces),
    )
    return [head, *(
        AffectedSetChunk(**cause.envelope(f"{prefix}:chunk:{i}"), directive_id=cause.directive_id,
                         revision=cause.revision, action=action, model=model, chunk=i, chunks=len(pieces),
                         users=encode_bitmap(piece))
        for i, (model, piece) in enumerate(pieces)
    )]


def delta_message(delta: Delta, causation_id: str | None, now: datetime) -> AffectedSetDelta:
    """An AffectedSetDelta for one model of one directive revision."""
    cause = Cause(delta.directive_id, delta.revision, causation_id, now)
    return AffectedSetDelta(
        **cause.envelope(f"impact:{delta.directive_id}:{delta.revision}:delta:{delta.seq}"),
        directive_id=delta.directive_id, revision=delta.revision, seq=delta.seq, model=delta.model,
        added=encode_bitmap(delta.added), removed=encode_bitmap(delta.removed), model_digest=set_digest(delta.after),
    )


def _chunks(users: BitMap, ids_per_chunk: int | None) -> list[BitMap]:
    return chunk_bitmap(users) if ids_per_chunk is None else chunk_bitmap(users, ids_per_chunk)
