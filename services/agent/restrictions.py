"""The pure core: what an agent holds per directive and how commands change it (no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from pyroaring import BitMap

from shared.contracts.bitmaps import EMPTY_SCOPE_DIGEST, SetDigest, apply_delta_in_place, scope_digest
from shared.contracts.chunks import ChunkedSets
from shared.contracts.directives import OnStale


@dataclass(frozen=True)
class Window:
    """When a directive is in force: from effective_from (inclusive) until expires_at (exclusive)."""

    effective_from: datetime | None = None
    expires_at: datetime | None = None

    def contains(self, now: datetime) -> bool:
        starts_ok = self.effective_from is None or self.effective_from <= now
        return starts_ok and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class HeldRestriction:
    """One directive revision applied in full: per-model denied users, its window and last delta seq.

    Its sets change in place by deltas (`with_deltas`): the access index and the check view share them.
    """

    revision: int
    window: Window
    sets: dict[str, BitMap]
    seq: int = 0
    digest: str = ""
    set_digests: dict[str, SetDigest] = field(default_factory=dict, compare=False)
    on_stale: OnStale = "keep"

    @classmethod
    def of(
        cls,
        revision: int,
        window: Window,
        sets: dict[str, BitMap],
        seq: int = 0,
        on_stale: OnStale = "keep",
        digests: Mapping[str, SetDigest] | None = None,
    ) -> HeldRestriction:
        """Build it with its digest, kept per range so later deltas re-hash only the ranges they touch: a model's
        given in `digests` (combined from its set copy's range digests, checked when read) or hashed from its set."""
        known = digests or {}
        per_model = {model: known.get(model) or SetDigest.of(users) for model, users in sets.items()}
        return cls(revision, window, sets, seq, _scope(per_model), per_model, on_stale)

    def with_deltas(self, deltas: Iterable[PendingDelta], seq: int) -> HeldRestriction:
        """Apply deltas in order to the held sets IN PLACE (a user both added and removed stays denied); a
        model the revision did not send this cluster is not served here, its deltas only advance `seq`.
        Costs what the deltas touch, not the size of the sets."""
        for delta in deltas:
            users = self.sets.get(delta.model)
            if users is not None:
                apply_delta_in_place(users, delta.added, delta.removed)
                self.set_digests[delta.model].update(users, delta.added | delta.removed)
        return replace(self, seq=seq, digest=_scope(self.set_digests))


def _scope(per_model: dict[str, SetDigest]) -> str:
    return scope_digest({model: digest.hexdigest() for model, digest in per_model.items()})


@dataclass
class StagedRevision(ChunkedSets):
    """Chunks of one directive revision received so far (its total from the first); applied once all arrived."""

    window: Window = field(default_factory=Window)
    on_stale: OnStale = "keep"
    started_at: datetime | None = field(default=None, compare=False)  # when this agent began waiting for it
    cause: str = ""  # event id of the first chunk received, the cause of a timeout failure
    whole: bool = False  # came whole with one command (by reference): written as the held sets at once


@dataclass(frozen=True)
class PendingDelta:
    """A delta that arrived ahead of its predecessors, waiting for its turn."""

    seq: int
    model: str
    added: BitMap
    removed: BitMap


@dataclass
class Restrictions:
    """Everything an agent holds: applied directives, staged chunks, early deltas and lift tombstones."""

    held: dict[str, HeldRestriction] = field(default_factory=dict)
    staging: dict[tuple[str, int], StagedRevision] = field(default_factory=dict)
    pending: dict[tuple[str, int], dict[int, PendingDelta]] = field(default_factory=dict)
    lifted: dict[str, int] = field(default_factory=dict)
    # Ids of the restrict commands received per (directive, revision) not yet superseded: enforcement sends
    # every restriction under a fresh id (its attempt counter), so an id seen again is a replay.
    received: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def receive(self, directive_id: str, revision: int, command_id: str) -> bool:
        """Note a restrict command's id; False when it was received already (a replay)."""
        ids = self.received.setdefault((directive_id, revision), set())
        if command_id in ids:
            return False
        ids.add(command_id)
        return True

    def forget_received(self, directive_id: str, below: int) -> None:
        """Drop the ids of revisions older than `below`: those revisions are refused as older anyway."""
        for key in [k for k in self.received if k[0] == directive_id and k[1] < below]:
            del self.received[key]

    def digest(self, directive_id: str) -> str:
        """What the agent holds for a directive, as a scope digest (empty scope if nothing)."""
        held = self.held.get(directive_id)
        return held.digest if held else EMPTY_SCOPE_DIGEST

    def staged_of(self, directive_id: str) -> dict[int, StagedRevision]:
        return {rev: staged for (d, rev), staged in self.staging.items() if d == directive_id}

    def pending_of(self, directive_id: str) -> dict[int, dict[int, PendingDelta]]:
        return {rev: deltas for (d, rev), deltas in self.pending.items() if d == directive_id}

    def describe(self) -> dict[str, object]:
        """A JSON-ready view: per directive its revision, seq, window, digest and user counts per model."""
        return {
            "directives": {
                directive: {
                    "revision": held.revision,
                    "seq": held.seq,
                    "digest": held.digest,
                    "effective_from": held.window.effective_from.isoformat() if held.window.effective_from else None,
                    "expires_at": held.window.expires_at.isoformat() if held.window.expires_at else None,
                    "users": {model: len(users) for model, users in sorted(held.sets.items())},
                    "on_stale": held.on_stale,
                }
                for directive, held in sorted(self.held.items())
            },
            "staging": [
                {"directive": d, "revision": rev, "chunks": s.chunks, "received": len(s.parts), "missing": s.missing}
                for (d, rev), s in sorted(self.staging.items())
            ],
            "lifted": dict(sorted(self.lifted.items())),
        }
