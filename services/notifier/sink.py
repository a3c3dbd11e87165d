"""A rendered notice (Letter), the channel interface, and the development outbox channel (a local JSONL file)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.notifier.notices import Contact, Notice
from services.notifier.recipients import member_list
from services.notifier.retry import DELIVERED, Outcome


@dataclass(frozen=True)
class Letter:
    """A rendered notice, ready for a channel."""

    notice: Notice
    contact: Contact
    subject: str
    body: str
    html: str = ""
    language: str = "en"  # of the templates used (the contact's locale, its language, or the fallback)

    @property
    def attachment(self) -> tuple[str, str] | None:
        """(file name, CSV text) of an organisation digest's member list; None for a personal notice."""
        n = self.notice
        return (f"members-{n.directive_id}-r{n.revision}-{n.action}.csv", member_list(n)) if n.members else None

    def as_record(self) -> dict[str, object]:
        n = self.notice
        return {
            "notification_id": n.notification_id,
            "recipient": n.recipient,
            "email": self.contact.email,
            "locale": self.contact.locale,
            "directive_id": n.directive_id,
            "revision": n.revision,
            "action": n.action,
            "models": list(n.models),
            "subject": self.subject,
            "body": self.body,
            **({"members": [{"user_id": u, "models": list(m)} for u, m in n.members]} if n.members else {}),
        }


class Channel(Protocol):
    """Where notices leave the service: an outcome per letter, in order; never raises for one recipient.

    Channels are at-least-once: the ledger records the outcome after the send, so a crash in between sends
    again with the same idempotency key (Message-ID, webhook-id, notification_id) for the receiver to drop.
    """

    name: str

    async def deliver(self, letters: list[Letter]) -> list[Outcome]: ...

    async def close(self) -> None: ...


class OutboxSink:
    """Development channel: one JSON line per notice appended to a local file (readers dedupe on notification_id)."""

    name = "outbox"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def deliver(self, letters: list[Letter]) -> list[Outcome]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(letter.as_record(), ensure_ascii=False) + "\n" for letter in letters)
        with self.path.open("ab") as out:
            out.write(data.encode())
            out.flush()
            os.fsync(out.fileno())
        return [DELIVERED] * len(letters)

    async def close(self) -> None:
        """A file opened per batch: nothing to close."""

    def records(self) -> list[dict[str, object]]:
        """Every line of the outbox (for tests and inspection)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
