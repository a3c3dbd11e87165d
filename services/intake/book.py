"""The directive book: what intake knows of every directive, and the rules for issuing and lifting.

Pure: no Kafka, no clock, no I/O. Fed by directive events (read from the topic or just published).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.contracts.directives import (
    DirectiveIssued,
    DirectiveLifted,
    DirectiveProposed,
    DirectiveRequest,
    ProposalApproved,
    ProposalRejected,
)

State = Literal["issued", "lifted"]
AnyDirectiveEvent = DirectiveIssued | DirectiveLifted | DirectiveProposed | ProposalApproved | ProposalRejected


class UnknownDirective(LookupError):
    """No directive with this id was ever issued."""

    def __init__(self, directive_id: str) -> None:
        super().__init__(f"directive {directive_id!r} is not known")
        self.directive_id = directive_id


class DirectiveAlreadyLifted(Exception):
    """The directive was lifted; a lifted directive is not reissued or lifted again under its id."""

    def __init__(self, directive_id: str, revision: int) -> None:
        super().__init__(
            f"directive {directive_id!r} was lifted at revision {revision}; issue a new directive id instead"
        )
        self.directive_id = directive_id
        self.revision = revision


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key already used for a different request."""

    def __init__(self, key: str, directive_id: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request (on directive "
            f"{directive_id!r}); send a new key with a new request"
        )
        self.key = key


@dataclass(frozen=True)
class DirectiveEntry:
    """The latest known revision of one directive."""

    directive_id: str
    revision: int
    state: State
    title: str
    authority: str
    issued: DirectiveIssued | None  # the latest issue event seen (None if only a lift was seen)
    lift_reason: str = ""


class DirectiveBook:
    """Latest revision and state of each directive, built from directive events in any order."""

    def __init__(self) -> None:
        self._entries: dict[str, DirectiveEntry] = {}
        self._keyed: dict[str, AnyDirectiveEvent] = {}

    def apply(self, event: AnyDirectiveEvent) -> None:
        """Record an event; replays and late older revisions change nothing (but a key they carry is kept).
        Proposals, approvals and rejections change no directive: only their keys are kept here."""
        if event.idempotency_key is not None:
            self._keyed.setdefault(event.idempotency_key, event)
        if isinstance(event, DirectiveIssued):
            self._apply_issued(event)
        elif isinstance(event, DirectiveLifted):
            self._apply_lifted(event)

    def _apply_issued(self, event: DirectiveIssued) -> None:
        current = self._entries.get(event.directive_id)
        if current is not None and (current.state == "lifted" or current.revision >= event.revision):
            return
        self._entries[event.directive_id] = DirectiveEntry(
            event.directive_id, event.revision, "issued", event.title, event.authority, event
        )

    def _apply_lifted(self, event: DirectiveLifted) -> None:
        current = self._entries.get(event.directive_id)
        if current is None:
            self._entries[event.directive_id] = DirectiveEntry(
                event.directive_id, event.revision, "lifted", "", "", None, event.reason
            )
            return
        revision = max(current.revision, event.revision)
        self._entries[event.directive_id] = DirectiveEntry(
            current.directive_id, revision, "lifted", current.title, current.authority, current.issued, event.reason
        )

    def answered(self, key: str | None, request_digest: str) -> AnyDirectiveEvent | None:
        """The event a request with this key was answered with before (None if the key is new or absent);
        IdempotencyKeyReused when the key came with a different request."""
        event = self._keyed.get(key) if key is not None else None
        if event is not None and event.request_digest != request_digest:
            raise IdempotencyKeyReused(key, event.directive_id)
        return event

    def current_issue_if_same(self, request: DirectiveRequest) -> DirectiveIssued | None:
        """The latest issue event when an issued directive already says exactly what the request says."""
        current = self._entries.get(request.directive_id)
        if current is None or current.state != "issued" or current.issued is None:
            return None
        issued = current.issued
        same = (issued.title, issued.authority, issued.scope) == (request.title, request.authority, request.scope)
        return issued if same else None

    def next_revision(self, directive_id: str) -> int:
        """Revision a new issue of this id gets: 1 when new, latest + 1 for an amendment."""
        current = self._entries.get(directive_id)
        if current is None:
            return 1
        if current.state == "lifted":
            raise DirectiveAlreadyLifted(directive_id, current.revision)
        return current.revision + 1

    def revision_now(self, directive_id: str) -> int:
        """The directive's latest revision (0 when it is new); DirectiveAlreadyLifted when it was lifted."""
        current = self._entries.get(directive_id)
        if current is None:
            return 0
        if current.state == "lifted":
            raise DirectiveAlreadyLifted(directive_id, current.revision)
        return current.revision

    def revision_to_lift(self, directive_id: str) -> int:
        """Revision a lift of this id names: the latest issued one."""
        current = self.get(directive_id)
        if current.state == "lifted":
            raise DirectiveAlreadyLifted(directive_id, current.revision)
        return current.revision

    def get(self, directive_id: str) -> DirectiveEntry:
        """The entry of one directive."""
        if directive_id not in self._entries:
            raise UnknownDirective(directive_id)
        return self._entries[directive_id]

    def entries(self) -> list[DirectiveEntry]:
        """Every directive, by id."""
        return [self._entries[k] for k in sorted(self._entries)]


class CatchUp:
    """Whether a reader has reached the end offsets a topic had when it started."""

    def __init__(self, end_offsets: dict[int, int]) -> None:
        self._remaining = {p: end for p, end in end_offsets.items() if end > 0}
        self._next: dict[int, int] = {}

    def saw(self, partition: int, offset: int) -> None:
        """A record at this offset was read."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def reached(self, partition: int, position: int) -> None:
        """A reader's position: everything before it was read (markers and aborted records count as read)."""
        self._next[partition] = max(self._next.get(partition, 0), position)

    @property
    def caught_up(self) -> bool:
        return all(self._next.get(p, 0) >= end for p, end in self._remaining.items())
