"""The notifier's view of the user registry: user id -> contact, and how far it has read (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from services.notifier.notices import Contact


class UserDirectory:
    """Contacts by user id plus, per registry partition, the next offset the view reflects."""

    def __init__(self) -> None:
        self.contacts: dict[int, Contact] = {}
        self.positions: dict[int, int] = {}
        self.admins: dict[str, set[int]] = {}  # organisation -> its administrators

    def upsert(self, user_id: int, contact: Contact) -> None:
        self.remove(user_id)
        self.contacts[user_id] = contact
        if contact.org_admin and contact.organisation:
            self.admins.setdefault(contact.organisation, set()).add(user_id)

    def remove(self, user_id: int) -> None:
        before = self.contacts.pop(user_id, None)
        if before is not None and before.org_admin and before.organisation:
            self.admins.get(before.organisation, set()).discard(user_id)

    def advance(self, partition: int, next_offset: int) -> None:
        self.positions[partition] = max(next_offset, self.positions.get(partition, 0))

    def reached(self, offsets: Mapping[int, int]) -> bool:
        """Whether the view reflects at least these registry offsets (partition -> next offset)."""
        return all(self.positions.get(p, 0) >= o for p, o in offsets.items())
