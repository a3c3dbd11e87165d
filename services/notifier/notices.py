"""Turns a confirmed affected set into per-recipient notices and decides which are due (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

from pyroaring import BitMap

from shared.contracts.bitmaps import union
from shared.contracts.impact import Action, AssessmentKey
from shared.contracts.notifications import NoticeAction

NOTICE_ACTION: dict[Action, NoticeAction] = {"restrict": "restricted", "lift": "restored"}


@dataclass(frozen=True)
class Notice:
    """What one recipient is told about one directive revision and action."""

    notification_id: str
    recipient: int
    directive_id: str
    revision: int
    action: NoticeAction
    models: tuple[str, ...]


@dataclass(frozen=True)
class Contact:
    """Where and in which language a user is told."""

    email: str
    locale: str


def notification_id(key: AssessmentKey, user: int) -> str:
    """Deterministic: the same recipient, revision and action always give the same id."""
    return f"{key.directive_id}:{key.revision}:{NOTICE_ACTION[key.action]}:{user}"


def notices_for(key: AssessmentKey, sets: Mapping[str, BitMap]) -> Iterator[Notice]:
    """One notice per user in the union of the model sets, naming the models whose set holds them."""
    models = sorted(sets)
    for user in union(sets.values()):
        held = tuple(m for m in models if user in sets[m])
        yield Notice(notification_id(key, user), user, key.directive_id, key.revision, NOTICE_ACTION[key.action], held)


def batches(notices: Iterable[Notice], size: int) -> Iterator[list[Notice]]:
    """Consecutive groups of at most size notices."""
    it = iter(notices)
    while batch := list(islice(it, size)):
        yield batch


def due(batch: Iterable[Notice], already_sent: Collection[str]) -> list[Notice]:
    """The notices not in the ledger yet: a notice is never sent twice."""
    return [n for n in batch if n.notification_id not in already_sent]


def addressed(
    batch: Iterable[Notice], contacts: Mapping[int, Contact]
) -> tuple[list[tuple[Notice, Contact]], list[tuple[Notice, str]]]:
    """Split notices into those with somewhere to go and those failing, with the reason."""
    deliverable: list[tuple[Notice, Contact]] = []
    failed: list[tuple[Notice, str]] = []
    for notice in batch:
        contact = contacts.get(notice.recipient)
        if contact is None:
            failed.append((notice, "recipient has no record in the user registry"))
        elif not contact.email:
            failed.append((notice, "recipient has no email address"))
        else:
            deliverable.append((notice, contact))
    return deliverable, failed
