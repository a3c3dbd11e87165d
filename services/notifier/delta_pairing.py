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
    states: list[dict[str, str]] = field(default_factory=list)  # states[n - 1]: the model digests after delta n
    serving: dict[str, frozenset[str]] = field(default_factory=dict)  # cluster -> models (empty: every model)
    held: dict[str, dict[str, str]] = field(default_factory=dict)  # cluster -> digest it applied -> report id

    def extend(self) -> None:
        """Compute the states after each delta as far as the sequence has no gap (once each)."""
        while self.base is not None and (delta := self.deltas.get(len(self.after) + 1)) is not None:
            self.base[delta.model] = delta.model_digest
            self.states.append(dict(self.base))
            self.after.append(scope_digest(self.base))

    def held_by_servers(self, seq: int) -> str | None:
        """The report confirming delta `seq` on every cluster serving its model (each holding the state after it
        or a later one, as far as the digest of the models it serves says), else None."""
        model = self.deltas[seq].model
        servers = [c for c, models in self.serving.items() if not models or model in models]
        causes = []
        for cluster in servers:
            models, held = self.serving[cluster], self.held.get(cluster, {})
            cause = next(
                (
                    held[digest]
                    for state in reversed(self.states[seq - 1 :])
                    if (digest := scope_digest({m: d for m, d in state.items() if not models or m in models})) in held
                ),
                None,
            )
            if cause is None:
                return None
            causes.append(cause)
        return causes[-1] if causes else None


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

    def clusters(
        self, key: AssessmentKey, reports: Mapping[str, tuple[frozenset[str], str | None]], event_id: str
    ) -> list[tuple[int, Ready]]:
        """A progress report: per cluster of the revision, the models it serves and the digest it applied (None:
        not applied). A delta is confirmed once every cluster serving its model holds it, whatever the others do."""
        revision = self._revisions.setdefault(key, _Revision())
        revision.serving = {c: models for c, (models, _) in reports.items()}
        for cluster, (_, digest) in reports.items():
            if digest is not None:
                revision.held.setdefault(cluster, {}).setdefault(digest, event_id)
        return self._ready(key)

    def held(self, key: AssessmentKey, cluster: str, digest: str, event_id: str) -> None:
        """A cluster was seen applied at this digest (restored from the store)."""
        self._revisions.setdefault(key, _Revision()).held.setdefault(cluster, {}).setdefault(digest, event_id)

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

    def is_sent(self, key: AssessmentKey, seq: int) -> bool:
        revision = self._revisions.get(key)
        return revision is not None and seq in revision.sent

    def held_digests(self, key: AssessmentKey, cluster: str) -> set[str]:
        """The digests a cluster of the revision was seen applied at."""
        revision = self._revisions.get(key)
        return set(revision.held.get(cluster, {})) if revision is not None else set()

    def ready(self) -> list[tuple[int, Ready]]:
        """Every confirmed delta not told yet (used after a restart)."""
        return [item for key in sorted(self._revisions) for item in self._ready(key)]

    def _ready(self, key: AssessmentKey) -> list[tuple[int, Ready]]:
        revision = self._revisions[key]
        revision.extend()
        if len(revision.sent) == len(revision.after):
            return []
        upto = next((n for n in range(len(revision.after), 0, -1) if revision.after[n - 1] in revision.confirmed), 0)
        due = []
        for seq in range(1, len(revision.after) + 1):
            if seq in revision.sent:
                continue
            # a confirmed state confirms every delta before it; else every cluster serving the model holds it
            cause = revision.confirmed[revision.after[upto - 1]] if seq <= upto else revision.held_by_servers(seq)
            if cause is not None:
                due.append((seq, _ready(key, revision.deltas[seq], cause)))
        return due


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
