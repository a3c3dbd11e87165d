"""Impact messages built from affected sets, with deterministic event ids so a re-publish is recognisable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pyroaring import BitMap

from services.impact.affected import AffectedSet
from services.impact.directives import Amendment, Delta
from shared.contracts.bitmaps import chunk_bitmap, encode_bitmap
from shared.contracts.directives import CausedBy, DirectiveScope
from shared.contracts.envelope import envelope
from shared.contracts.impact import Action, AffectedSetChunk, AffectedSetDelta, ImpactAssessed, Part

PRODUCER = "impact"


@dataclass(frozen=True)
class Cause:
    """What an output answers: the directive, its revision, the causing event and the time."""

    directive_id: str
    revision: int
    event_id: str | None
    now: datetime
    caused_by: CausedBy | None = None  # who caused the directive event, carried to every consumer

    def envelope(self, event_id: str) -> dict:
        return envelope(
            PRODUCER,
            event_id=event_id,
            occurred_at=self.now,
            correlation_id=self.directive_id,
            causation_id=self.event_id,
        )


def assessment(
    cause: Cause,
    action: Action,
    scope: DirectiveScope,
    affected: AffectedSet,
    registry_offsets: Mapping[int, int],
    ids_per_chunk: int | None = None,
    amendment: Amendment | None = None,
    losing: Mapping[str, int] | None = None,
) -> list[ImpactAssessed | AffectedSetChunk]:
    """ImpactAssessed followed by its chunks, numbered across models in model-name order.

    An amendment adds its "added" then "removed" chunks after the whole ones, numbered on from them.
    """
    whole = _pieces("whole", affected.by_model, ids_per_chunk)
    diff = (
        []
        if amendment is None
        else (_pieces("added", amendment.added, ids_per_chunk) + _pieces("removed", amendment.removed, ids_per_chunk))
    )
    prefix = f"impact:{cause.directive_id}:{cause.revision}:{action}"
    head = ImpactAssessed(
        **cause.envelope(f"{prefix}:assessed"),
        directive_id=cause.directive_id,
        revision=cause.revision,
        action=action,
        scope=scope,
        affected_by_model={m: len(u) for m, u in affected.by_model.items()},
        affected_users=affected.users,
        losing_by_model=None if losing is None else dict(losing),
        by_country=affected.by_country,
        by_account_type=affected.by_account_type,
        unknown_only=affected.unknown_only,
        model_digests=affected.model_digests,
        digest=affected.digest,
        registry_offsets=dict(registry_offsets),
        chunks=len(whole),
        diff_chunks=len(diff),
        caused_by=cause.caused_by,
        **_amendment_fields(amendment),
    )
    total = len(whole) + len(diff)
    return [
        head,
        *(
            AffectedSetChunk(
                **cause.envelope(f"{prefix}:chunk:{i}" if part == "whole" else f"{prefix}:{part}:chunk:{i}"),
                directive_id=cause.directive_id,
                revision=cause.revision,
                action=action,
                model=model,
                chunk=i,
                chunks=len(whole) if part == "whole" else total,
                users=encode_bitmap(piece),
                part=part,
            )
            for i, (part, model, piece) in enumerate(whole + diff)
        ),
    ]


def _pieces(part: Part, by_model: Mapping[str, BitMap], ids_per_chunk: int | None) -> list[tuple[Part, str, BitMap]]:
    return [(part, model, piece) for model in sorted(by_model) for piece in _chunks(by_model[model], ids_per_chunk)]


def _amendment_fields(amendment: Amendment | None) -> dict:
    if amendment is None:
        return {}
    return dict(
        amended_from=amendment.amended_from,
        added_by_model={m: len(u) for m, u in amendment.added.items()},
        removed_by_model={m: len(u) for m, u in amendment.removed.items()},
    )


def delta_message(
    delta: Delta, causation_id: str | None, now: datetime, caused_by: CausedBy | None = None
) -> AffectedSetDelta:
    """An AffectedSetDelta for one model of one directive revision."""
    cause = Cause(delta.directive_id, delta.revision, causation_id, now)
    return AffectedSetDelta(
        **cause.envelope(f"impact:{delta.directive_id}:{delta.revision}:delta:{delta.seq}"),
        directive_id=delta.directive_id,
        revision=delta.revision,
        seq=delta.seq,
        model=delta.model,
        added=encode_bitmap(delta.added),
        removed=encode_bitmap(delta.removed),
        model_digest=delta.model_digest,
        caused_by=caused_by,
    )


def _chunks(users: BitMap, ids_per_chunk: int | None) -> list[BitMap]:
    return chunk_bitmap(users) if ids_per_chunk is None else chunk_bitmap(users, ids_per_chunk)
