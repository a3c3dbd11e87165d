"""Small builders of agent commands for the unit tests."""

from __future__ import annotations

from datetime import datetime

from pyroaring import BitMap

from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.serving import DeltaCommand, LiftCommand, RestrictCommand

CLUSTER = "c-unit"


def restrict(directive: str, revision: int, model: str, users: list[int] | str, chunk: int = 0, chunks: int = 1,
             effective_from: datetime | None = None, expires_at: datetime | None = None,
             expected: str | None = None) -> RestrictCommand:
    """One chunk; unless given, the expected digest is that of this chunk alone (right for one-chunk revisions)."""
    encoded = users if isinstance(users, str) else encode_bitmap(BitMap(users))
    if expected is None:
        expected = "x" if isinstance(users, str) else scope_digest({model: set_digest(BitMap(users))})
    return RestrictCommand(producer="enforcement", cluster_id=CLUSTER, directive_id=directive, revision=revision,
                           model=model, chunk=chunk, chunks=chunks, users=encoded, expected_digest=expected,
                           effective_from=effective_from, expires_at=expires_at)


def lift(directive: str, revision: int) -> LiftCommand:
    return LiftCommand(producer="enforcement", cluster_id=CLUSTER, directive_id=directive, revision=revision)


def delta(directive: str, revision: int, seq: int, model: str, added: list[int] | str = (),
          removed: list[int] = ()) -> DeltaCommand:
    encoded = added if isinstance(added, str) else encode_bitmap(BitMap(added))
    return DeltaCommand(producer="enforcement", cluster_id=CLUSTER, directive_id=directive, revision=revision,
                        seq=seq, model=model, added=encoded, removed=encode_bitmap(BitMap(removed)))
