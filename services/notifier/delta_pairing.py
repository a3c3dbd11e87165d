"""Pairs registry deltas with the confirmation that every cluster holds them (pure: no I/O, no clock).

Enforcement confirms a state, not a delta: a progress event where every cluster is applied, or the verdict,
names the scope digest all of them hold. A delta is confirmed once a digest at or after it is: agents apply
a revision's deltas in sequence, so holding the state after delta n means holding every delta before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyroaring import BitMap

from services.notifier.pairing import Ready
from shared.contracts.bitmaps import scope_digest
from shared.contracts.impact import AssessmentKey


@dataclass(frozen=True)
class Delta:
    """One AffectedSetDelta as the notifier keeps it (the sets are dropped once its notices are sent)."""

    seq: int
    model: str
    model_digest: str
    added: BitMap = field(default_factory=BitMap)
    removed: BitMap = field(default_factory=BitMap)


@dataclass
class _Revision:
    base: dict[str, str] | None = None  # model digests of the assessment, then updated delta by delta
    deltas: dict[int, Delta] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)  # after[n - 1]: the scope digest once delta n is applied
    confirmed: dict[str, str] = field(default_factory=dict)  # digest every cluster held -> confirming event id
    sent: set[int] = field(default_factory=set)

    def extend(self) -> None:
        """Compute the states after each delta as far as the sequence has no gap (once each)."""
        while self.base is not None and (delta := self.deltas.get(len(self.after) + 1)) is not None:
            self.base[delta.model] = delta.model_digest
            self.after.append(scope_digest(self.base))


class DeltaPairing:
    """Per directive revision (restrict): its base digests, its deltas, the digests confirmed, the deltas told."""

    def __init__(self) -> None:
        self._revisions: dict[AssessmentKey, _Revision] = {}

    def assessed(self, key: AssessmentKey, model_digests: Mapping[str, str]) -> list[tuple[int, Ready]]:
        revision = self._revisions.setdefault(key, _Revision())
        revision.base = revision.base or dict(model_digests)
        return self._ready(key)

    def delta(self, key: AssessmentKey, delta: Delta) -> list[tuple[int, Ready]]:
        """A delta arrived (the first copy of a sequence number wins)."""
        self._revisions.setdefault(key, _Revision()).deltas.setdefault(delta.seq, delta)
        return self._ready(key)

    def confirmed(self, key: AssessmentKey, digest: str, event_id: str) -> list[tuple[int, Ready]]:
        """Every cluster of the revision holds the state with this scope digest."""
        self._revisions.setdefault(key, _Revision()).confirmed.setdefault(digest, event_id)
        return self._ready(key)

    def sent(self, key: AssessmentKey, seq: int) -> None:
        """Every notice of the delta is in the ledger: its sets are no longer needed."""
        revision = self._revisions.setdefault(key, _Revision())
        revision.sent.add(seq)
        if (delta := revision.deltas.get(seq)) is not None:
            revision.deltas[seq] = Delta(delta.seq, delta.model, delta.model_digest)

    def confirmed_digests(self, key: AssessmentKey) -> set[str]:
        """The states every cluster of the revision was seen holding."""
        revision = self._revisions.get(key)
        return set(revision.confirmed) if revision is not None else set()

    def ready(self) -> list[tuple[int, Ready]]:
        """Every confirmed delta not told yet (used after a restart)."""
        return [item for key in sorted(self._revisions) for item in self._ready(key)]

    def _ready(self, key: AssessmentKey) -> list[tuple[int, Ready]]:
        revision = self._revisions[key]
        revision.extend()
        if len(revision.sent) == len(revision.after):
            return []
        upto = next((n for n in range(len(revision.after), 0, -1) if revision.after[n - 1] in revision.confirmed), 0)
        if upto == 0:
            return []
        cause = revision.confirmed[revision.after[upto - 1]]  # a confirmed state confirms every delta before it
        due = [seq for seq in range(1, upto + 1) if seq not in revision.sent]
        return [(seq, _ready(key, revision.deltas[seq], cause)) for seq in due]


def _ready(key: AssessmentKey, delta: Delta, cause: str) -> Ready:
    return Ready(
        key,
        {},
        cause,
        {},
        added={delta.model: delta.added} if delta.added else {},
        removed={delta.model: delta.removed} if delta.removed else {},
        occasion="delta",
        suffix=f":delta-{delta.seq}",
    )
