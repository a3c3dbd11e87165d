"""What the audit cannot store at all goes to dlq.audit.v1 through the shared middleware; it moves on."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from devtools.waiting import eventually
from services.audit.chain import Entry
from services.audit.ledger import Ledger
from services.audit.record import Record
from shared.contracts.catalogue import dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from tests.integration.audit.conftest import (
    audit_settings,
    produce,
    read_all,
    recorded,
    recorded_all,
    started,
)

DLQ = dead_letter_topic("audit").name


class BrokenLedger(Ledger):
    """A ledger whose disk fails on every batch that holds a given value (a fake store)."""

    def __init__(self, path: Path, poison: bytes) -> None:
        super().__init__(path)
        self.poison = poison
        self.failures = 0

    def append(self, records: Sequence[Record]) -> list[Entry]:
        if any(r.value and self.poison in r.value for r in records):
            self.failures += 1
            raise OSError("disk I/O error (simulated)")
        return super().append(records)


async def test_a_batch_the_store_cannot_take_is_dead_lettered_and_the_ledger_moves_on(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    poison = f"store-breaker-{unique}".encode()
    settings = audit_settings(bootstrap, tmp_path, f"countermand-audit-{unique}")
    ledger = BrokenLedger(settings.ledger_path, poison)
    [(_, partition, offset)] = await produce(bootstrap, [("compliance.directives.v1", unique.encode(), poison, [])])
    audit = await started(settings, ledger)
    try:

        async def buried() -> list[DeadLetter]:
            letters = [DeadLetter.model_validate_json(r.value) for r in await read_all(bootstrap, DLQ)]
            return [d for d in letters if d.value_b64 and base64.b64decode(d.value_b64) == poison]

        letters = await eventually(buried, "the record the store rejected on the dead-letter topic")
        assert letters[0].topic == "compliance.directives.v1" and (letters[0].partition, letters[0].offset) == (
            partition,
            offset,
        )
        assert "OSError" in letters[0].reason and letters[0].consumer == "audit"
        assert ledger.failures == 3  # retried, then dead-lettered: no endless loop

        after = await produce(bootstrap, [("compliance.directives.v1", unique.encode(), b"after the failure", [])])
        await eventually(lambda: recorded(settings.ledger_path, after), what="a good record after the failure")
        # The dead letter itself is audited too, so the trail still holds the rejected bytes.
        entries = await eventually(
            lambda: [
                e
                for e in recorded_all(settings.ledger_path)
                if e.record.topic == DLQ and base64.b64encode(poison) in (e.record.value or b"")
            ],
            what="the dead letter in the ledger",
        )
        assert entries[0].envelope.type == "DeadLetter"
    finally:
        await audit.stop()
