"""Who is told (pure): consumers and employees one by one; an organisation's enterprise members summed up in
one notice to each of its administrators (counts per model, the member list attached)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

from services.notifier.notices import Contact, Notice, lost

MEMBER = "enterprise_member"


def organisation_of(contact: Contact | None, admins: Mapping[str, set[int]]) -> str | None:
    """The organisation whose administrators are told instead of this user, if any."""
    if contact is None or contact.account_type != MEMBER or not contact.organisation:
        return None
    return contact.organisation if admins.get(contact.organisation) else None


def routed(
    notices: Iterable[Notice], contacts: Mapping[int, Contact], admins: Mapping[str, set[int]]
) -> Iterator[Notice]:
    """Every notice of one occasion, members of an organisation with an administrator folded into digests
    (yielded last: one per organisation, action and administrator)."""
    folded: dict[tuple[str, str], list[Notice]] = {}
    for notice in notices:
        contact = contacts.get(notice.recipient)
        org = organisation_of(contact, admins)
        if org is None:
            yield notice
        elif contact is not None and (narrowed := lost(notice, contact)) is not None:
            folded.setdefault((org, notice.action), []).append(narrowed)
    for (org, _), members in sorted(folded.items()):
        for admin in sorted(admins[org]):
            yield digest(org, admin, members)


def digest(org: str, admin: int, members: list[Notice]) -> Notice:
    """One notice to an administrator naming every model any member loses (or regains), with who and what."""
    first = members[0]
    models = tuple(sorted({m for n in members for m in n.models}))
    head, _, tail = first.notification_id.rpartition(f":{first.action}:{first.recipient}")
    return replace(
        first,
        notification_id=f"{head}:{first.action}:{admin}:org-{org}{tail}",
        recipient=admin,
        models=models,
        members=tuple(sorted((n.recipient, n.models) for n in members)),
    )


def counts(notice: Notice) -> dict[str, int]:
    """Members per model in a digest."""
    return {m: sum(m in models for _, models in notice.members) for m in notice.models}


def member_list(notice: Notice) -> str:
    """The digest's attachment: one CSV line per member."""
    lines = ["user_id,models"] + [f"{user},{' '.join(models)}" for user, models in notice.members]
    return "\n".join(lines) + "\n"
