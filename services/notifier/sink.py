"""Where notices go. The sink is an interface: the local outbox now, SMTP or webhooks later."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.notifier.notices import Contact, Notice


@dataclass(frozen=True)
class Letter:
    """A rendered notice, ready for a channel."""

    notice: Notice
    contact: Contact
    subject: str
    body: str

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
        }


class NoticeSink(Protocol):
    """A delivery channel written inside the ledger's transaction (see Ledger.record).

    write() returns a checkpoint the ledger commits together with the notices' rows; recover() is
    given the last committed checkpoint at start-up and after a failed transaction, so the sink can
    drop whatever it wrote that the ledger did not commit. A sink that cannot take writes back
    (SMTP, webhooks) returns "" and passes notification_id as the provider's idempotency key.
    """

    name: str
    channel: str

    def write(self, letters: list[Letter]) -> str: ...

    def recover(self, checkpoint: str | None) -> None: ...


class OutboxSink:
    """Appends one JSON line per notice to a local file; the checkpoint is the committed file size."""

    name = "outbox"
    channel = "email"

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, letters: list[Letter]) -> str:
        data = "".join(json.dumps(letter.as_record(), ensure_ascii=False) + "\n" for letter in letters)
        with self.path.open("ab") as out:
            start = out.tell()
            try:
                out.write(data.encode())
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                out.truncate(start)
                raise
            return str(out.tell())

    def recover(self, checkpoint: str | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        # Without a checkpoint the ledger never committed an outbox write: nothing to cut.
        if checkpoint is None:
            return
        committed = int(checkpoint)
        if self.path.stat().st_size > committed:
            with self.path.open("r+b") as out:
                out.truncate(committed)
                os.fsync(out.fileno())

    def records(self) -> list[dict[str, object]]:
        """Every line of the outbox (for tests and inspection)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
