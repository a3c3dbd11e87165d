"""Pairs a complete affected set with its enforcement confirmation (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyroaring import BitMap

from shared.contracts.chunks import ChunkedSets
from shared.contracts.impact import AssessmentKey


@dataclass(frozen=True)
class Ready:
    """A complete affected set whose enforcement every cluster confirmed: notices are due."""

    key: AssessmentKey
    sets: Mapping[str, BitMap]  # model -> users (restricted, or restored for a lift)
    causation_id: str  # event_id of the DirectiveEnforced
    registry_offsets: Mapping[int, int]


@dataclass
class _Pending(ChunkedSets):
    """A key's set (its total announced by the assessment) and the confirmation, as far as they came."""

    registry_offsets: dict[int, int] = field(default_factory=dict)
    enforced_by: str | None = None


class Pairing:
    """Holds sets and confirmations until both halves of a key are known; either may come first.

    Every input for a complete key that is not yet dispatched yields Ready again, so a redelivered
    message after a crash mid-dispatch resumes it; once dispatched, a key yields nothing ever again.
    """

    def __init__(self) -> None:
        self._pending: dict[AssessmentKey, _Pending] = {}
        self._done: set[AssessmentKey] = set()

    def assessed(self, key: AssessmentKey, chunks: int, registry_offsets: Mapping[int, int]) -> Ready | None:
        """An ImpactAssessed announced how many chunks carry the set."""
        if key in self._done:
            return None
        pending = self._pending.setdefault(key, _Pending())
        try:
            pending.announce(chunks)
        except ValueError as exc:
            raise ValueError(f"{exc} (assessment of {_name(key)})") from None
        pending.registry_offsets = dict(registry_offsets)
        return self._ready(key)

    def chunk(self, key: AssessmentKey, index: int, chunks: int, model: str, users: BitMap) -> Ready | None:
        """One AffectedSetChunk arrived; the first copy of a chunk index wins."""
        if key in self._done:
            return None
        pending = self._pending.get(key, _Pending())
        try:
            pending.add(index, chunks, model, users)
        except ValueError as exc:
            raise ValueError(f"{exc} (assessment of {_name(key)})") from None
        self._pending[key] = pending
        return self._ready(key)

    def enforced(self, key: AssessmentKey, event_id: str) -> Ready | None:
        """A DirectiveEnforced confirmed the key on every cluster; the first confirmation is the cause."""
        if key in self._done:
            return None
        pending = self._pending.setdefault(key, _Pending())
        pending.enforced_by = pending.enforced_by or event_id
        return self._ready(key)

    def dispatched(self, key: AssessmentKey) -> None:
        """Every notice of the key is in the ledger: forget its set, ignore it from now on."""
        self._pending.pop(key, None)
        self._done.add(key)

    def is_done(self, key: AssessmentKey) -> bool:
        return key in self._done

    def ready(self) -> list[Ready]:
        """Every complete key not yet dispatched (used after a restart)."""
        return [r for r in (self._ready(k) for k in sorted(self._pending)) if r is not None]

    def _ready(self, key: AssessmentKey) -> Ready | None:
        pending = self._pending[key]
        if not pending.complete or pending.enforced_by is None:
            return None
        return Ready(key, pending.sets(), pending.enforced_by, pending.registry_offsets)


def _name(key: AssessmentKey) -> str:
    return f"{key.directive_id} revision {key.revision} {key.action}"
