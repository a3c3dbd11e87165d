"""Pairs a complete affected set (and an amendment's difference) with its enforcement confirmation (pure: no I/O,
no clock)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from pyroaring import BitMap

from services.notifier.notices import Notice, Occasion, changed_notices, notices_for
from shared.contracts.bitmaps import union
from shared.contracts.chunks import ChunkedSets
from shared.contracts.impact import AssessmentKey, Part


@dataclass(frozen=True)
class Ready:
    """A complete affected set whose enforcement every cluster confirmed: notices are due."""

    key: AssessmentKey
    sets: Mapping[str, BitMap]  # model -> users (restricted, or restored for a lift)
    causation_id: str  # event_id of the DirectiveEnforced
    registry_offsets: Mapping[int, int]
    amended_from: int | None = None  # an amendment: notices come from added and removed, not from sets
    added: Mapping[str, BitMap] = field(default_factory=dict)  # model -> users newly covered by this revision
    removed: Mapping[str, BitMap] = field(default_factory=dict)  # model -> users this revision no longer covers
    occasion: Occasion = "assessment"  # "amendment" or "delta": notices from added and removed only
    suffix: str = ""  # ends notification ids of one occasion within the revision (a delta's sequence number)
    # The models confirmed so far, when not every model is: only notices naming nothing else are due yet.
    confirmed: frozenset[str] | None = None

    @property
    def partial(self) -> bool:
        return self.confirmed is not None

    def models(self) -> set[str]:
        """Every model a notice of this pair may name."""
        return {*self.sets, *self.added, *self.removed}

    def notices(self) -> Iterator[Notice]:
        """The notices due: to everyone in the sets; for an amendment or a delta, only to those who changed."""
        if self.occasion == "assessment":
            return notices_for(self.key, self.sets)
        return changed_notices(self.key, self.added, self.removed, self.occasion, self.suffix)


@dataclass
class _Pending(ChunkedSets):
    """A key's set (its total announced by the assessment), an amendment's difference and the confirmation,
    as far as they came."""

    registry_offsets: dict[int, int] = field(default_factory=dict)
    enforced_by: str | None = None
    confirmed: dict[str, str] = field(default_factory=dict)  # model -> event id of the report confirming it
    amended_from: int | None = None
    diff_chunks: int | None = None  # announced by the assessment (0: not an amendment, or nothing changed)
    diff: dict[int, tuple[Part, str, BitMap]] = field(default_factory=dict)  # index -> (part, model, users)

    @property
    def whole_and_diff(self) -> bool:
        return self.complete and self.diff_chunks is not None and len(self.diff) == self.diff_chunks

    def diff_sets(self, part: Part) -> dict[str, BitMap]:
        by_model: dict[str, list[BitMap]] = {}
        for kind, model, users in self.diff.values():
            if kind == part:
                by_model.setdefault(model, []).append(users)
        return {model: union(sets) for model, sets in sorted(by_model.items())}


class Pairing:
    """Holds sets and confirmations until both halves of a key are known; either may come first.

    Every input for a complete key that is not yet dispatched yields Ready again, so a redelivered
    message after a crash mid-dispatch resumes it; once dispatched, a key yields nothing ever again.
    """

    def __init__(self) -> None:
        self._pending: dict[AssessmentKey, _Pending] = {}
        self._done: set[AssessmentKey] = set()

    def assessed(
        self,
        key: AssessmentKey,
        chunks: int,
        registry_offsets: Mapping[int, int],
        diff_chunks: int = 0,
        amended_from: int | None = None,
    ) -> Ready | None:
        """An ImpactAssessed announced how many chunks carry the set (and, for an amendment, its difference)."""
        if key in self._done:
            return None
        pending = self._pending.setdefault(key, _Pending())
        beyond = [i for i in pending.diff if not chunks <= i < chunks + diff_chunks]
        try:
            if beyond:
                raise ValueError(f"diff_chunks: {diff_chunks} announced but chunk {min(beyond)} already arrived")
            pending.announce(chunks)
        except ValueError as exc:
            raise ValueError(f"{exc} (assessment of {_name(key)})") from None
        pending.registry_offsets = dict(registry_offsets)
        pending.diff_chunks, pending.amended_from = diff_chunks, amended_from
        return self._ready(key)

    def diff_chunk(
        self, key: AssessmentKey, index: int, chunks: int, part: Part, model: str, users: BitMap
    ) -> Ready | None:
        """One "added"/"removed" chunk of an amendment (numbered after the whole ones; `chunks` counts both)."""
        if key in self._done:
            return None
        pending = self._pending.get(key, _Pending())
        whole = pending.chunks
        if not 0 <= index < chunks or (whole is not None and index < whole):
            raise ValueError(f"chunk {index} out of range for an amendment's {part} part (assessment of {_name(key)})")
        if pending.diff_chunks is not None and whole is not None and whole + pending.diff_chunks != chunks:
            raise ValueError(
                f"chunks: chunk {index} says {chunks} chunks, the assessment announced "
                f"{whole} + {pending.diff_chunks} (assessment of {_name(key)})"
            )
        pending.diff.setdefault(index, (part, model, users))
        self._pending[key] = pending
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

    def confirmed(self, key: AssessmentKey, models: frozenset[str], event_id: str) -> Ready | None:
        """A progress report: every cluster serving these models applied the key (the first report is the cause);
        notices naming only confirmed models are due, the key is complete once every model of its sets is."""
        if key in self._done:
            return None
        pending = self._pending.setdefault(key, _Pending())
        fresh = models - pending.confirmed.keys()
        for model in fresh:
            pending.confirmed[model] = event_id
        return self._ready(key) if fresh else None

    def dispatched(self, key: AssessmentKey) -> None:
        """Every notice of the key is in the ledger: forget its set, ignore it from now on."""
        self._pending.pop(key, None)
        self._done.add(key)

    def older(self, key: AssessmentKey) -> list[AssessmentKey]:
        """Restrict revisions of the key's directive before it, not dispatched yet: superseded once it is."""
        return sorted(
            k for k in self._pending if k.directive_id == key.directive_id and k.action == "restrict" and k < key
        )

    def models(self, key: AssessmentKey) -> set[str]:
        """The models of the key's set and difference as far as they arrived."""
        pending = self._pending.get(key)
        if pending is None:
            return set()
        return {*(model for model, _ in pending.parts.values()), *(model for _, model, _ in pending.diff.values())}

    def is_done(self, key: AssessmentKey) -> bool:
        return key in self._done

    def ready(self) -> list[Ready]:
        """Every complete key not yet dispatched (used after a restart)."""
        return [r for r in (self._ready(k) for k in sorted(self._pending)) if r is not None]

    def _ready(self, key: AssessmentKey) -> Ready | None:
        pending = self._pending[key]
        if not pending.whole_and_diff or (pending.enforced_by is None and not pending.confirmed):
            return None
        ready = Ready(
            key,
            pending.sets(),
            pending.enforced_by or [*pending.confirmed.values()][-1],  # the verdict, else the latest report
            pending.registry_offsets,
            pending.amended_from,
            pending.diff_sets("added"),
            pending.diff_sets("removed"),
            "assessment" if pending.amended_from is None else "amendment",
        )
        if pending.enforced_by is not None or ready.models() <= pending.confirmed.keys():
            return ready
        return replace(ready, confirmed=frozenset(pending.confirmed))


def _name(key: AssessmentKey) -> str:
    return f"{key.directive_id} revision {key.revision} {key.action}"
