"""Turns a confirmed affected set into per-recipient notices and decides which are due (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Literal

from pyroaring import BitMap

from shared.contracts.bitmaps import union
from shared.contracts.impact import Action, AssessmentKey
from shared.contracts.notifications import NoticeAction

NOTICE_ACTION: dict[Action, NoticeAction] = {"restrict": "restricted", "lift": "restored"}
# Why a notice is sent, which the wording follows: a revision enforced or lifted, an amendment's difference,
# a registry change (delta) confirmed, an entitlement granted to a user already covered.
Occasion = Literal["assessment", "amendment", "delta", "entitled"]


@dataclass(frozen=True)
class Notice:
    """What one recipient is told about one directive revision and action."""

    notification_id: str
    recipient: int
    directive_id: str
    revision: int
    action: NoticeAction
    models: tuple[str, ...]
    occasion: Occasion = "assessment"
    members: tuple[tuple[int, tuple[str, ...]], ...] = ()  # an organisation digest: (member, models lost) each


@dataclass(frozen=True)
class Contact:
    """Where and in which language a user is told, and what the user is entitled to (from the registry)."""

    email: str
    locale: str
    entitlements: frozenset[str] | None = None  # None: not known, every covered model counts as lost
    organisation: str | None = None
    account_type: str = "consumer"
    org_admin: bool = False


def notification_id(key: AssessmentKey, user: int, action: NoticeAction | None = None, suffix: str = "") -> str:
    """Deterministic: the same recipient, revision and action (and occasion within the revision: a delta's
    sequence number, an entitlement's registry record) always give the same id."""
    return f"{key.directive_id}:{key.revision}:{action or NOTICE_ACTION[key.action]}:{user}{suffix}"


def notices_for(
    key: AssessmentKey,
    sets: Mapping[str, BitMap],
    action: NoticeAction | None = None,
    occasion: Occasion = "assessment",
    suffix: str = "",
) -> Iterator[Notice]:
    """One notice per user in the union of the model sets, naming the models whose set holds them."""
    models = sorted(sets)
    action = action or NOTICE_ACTION[key.action]
    for user in union(sets.values()):
        held = tuple(m for m in models if user in sets[m])
        nid = notification_id(key, user, action, suffix)
        yield Notice(nid, user, key.directive_id, key.revision, action, held, occasion)


def changed_notices(
    key: AssessmentKey,
    added: Mapping[str, BitMap],
    removed: Mapping[str, BitMap],
    occasion: Occasion,
    suffix: str = "",
) -> Iterator[Notice]:
    """Only who changed is told: restricted for what the directive now covers, restored for what it no longer
    covers (an amendment's difference, or a registry delta)."""
    yield from notices_for(key, added, "restricted", occasion, suffix)
    yield from notices_for(key, removed, "restored", occasion, suffix)


def batches(notices: Iterable[Notice], size: int) -> Iterator[list[Notice]]:
    """Consecutive groups of at most size notices."""
    it = iter(notices)
    while batch := list(islice(it, size)):
        yield batch


def due(batch: Iterable[Notice], already_sent: Collection[str]) -> list[Notice]:
    """The notices not in the ledger yet: a notice is never sent twice."""
    return [n for n in batch if n.notification_id not in already_sent]


def lost(notice: Notice, contact: Contact) -> Notice | None:
    """The notice naming only the models the recipient held (covered AND entitled); None when that is none."""
    if contact.entitlements is None or notice.members:  # a digest was narrowed member by member
        return notice
    models = tuple(m for m in notice.models if m in contact.entitlements)
    return replace(notice, models=models) if models else None


def confirmed_for(notice: Notice, contact: Contact | None, models: frozenset[str] | None) -> bool:
    """Whether every model the notice will name (narrowed to what its recipient holds) is confirmed (None: all
    are). A digest already names only its members' models."""
    if models is None:
        return True
    told = notice if contact is None or notice.members else lost(notice, contact)
    return told is None or set(told.models) <= models


@dataclass
class Addressed:
    """A batch split: notices with somewhere to go, failures with their reason, and how many lost nothing."""

    deliverable: list[tuple[Notice, Contact]]
    failed: list[tuple[Notice, str]]
    unaffected: int = 0


def addressed(batch: Iterable[Notice], contacts: Mapping[int, Contact]) -> Addressed:
    """Split notices into those to send (narrowed to what each recipient lost), failing ones, and the rest."""
    split = Addressed([], [])
    for notice in batch:
        contact = contacts.get(notice.recipient)
        if contact is None:
            split.failed.append((notice, "recipient has no record in the user registry"))
        elif not contact.email:
            split.failed.append((notice, "recipient has no email address"))
        elif (narrowed := lost(notice, contact)) is None:
            split.unaffected += 1  # covered, but entitled to none of the models: nothing to tell
        else:
            split.deliverable.append((narrowed, contact))
    return split
