"""On real Kafka and a real SMTP server: amendments, registry deltas and later entitlements tell exactly the
users whose access changed, once each, and only after every cluster confirmed the change."""

from __future__ import annotations

from pathlib import Path

from devtools.mailbox import Mailbox
from devtools.waiting import eventually
from tests.integration.notifier.conftest import (
    as_record,
    assessment,
    enforced,
    produce,
    settings_for,
    started,
    user,
    user_base,
)


def _told(box: Mailbox, directive: str) -> dict[str, str]:
    """Idempotency key -> recipient address, of every notice of the directive the receiver kept."""
    return {m.notice: m.to for m in box.unique().values() if m.notice.startswith(f"{directive}:")}


async def test_an_amendment_tells_only_who_lost_or_regained_access_once_confirmed(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b = f"AMEND-{unique}", user_base(unique)
    await produce(bootstrap, [user(b + i, f"user{i}@example.com") for i in range(4)])
    with Mailbox() as box:
        settings = settings_for(bootstrap, tmp_path, f"notifier-{unique}").model_copy(update=box.settings())
        notifier = await started(settings)
        try:
            await produce(bootstrap, assessment(directive, 1, "restrict", {"fable-5": [b, b + 1, b + 2]}))
            await produce(
                bootstrap, [as_record("compliance.enforcement.v1", directive, enforced(directive, 1, "restrict"))]
            )
            await eventually(lambda: len(_told(box, directive)) >= 3, what="revision 1 notices")
            # Revision 2 covers b+1, b+2 (unchanged), b+3 (new); b is no longer covered.
            amended = assessment(
                directive,
                2,
                "restrict",
                {"fable-5": [b + 1, b + 2, b + 3]},
                amended_from=1,
                added={"fable-5": [b + 3]},
                removed={"fable-5": [b]},
            )
            await produce(bootstrap, amended)
            confirmation = as_record("compliance.enforcement.v1", directive, enforced(directive, 2, "restrict"))
            assert set(_told(box, directive)) == {f"{directive}:1:restricted:{b + i}" for i in range(3)}
            await produce(bootstrap, [confirmation])
            await eventually(lambda: len(_told(box, directive)) >= 5, what="amendment notices")
        finally:
            await notifier.stop()
        # A replay of everything by a fresh consumer group on the same ledger sends nothing again.
        again = await started(settings.model_copy(update={"group_id": f"notifier-{unique}-replay"}))
        try:
            await eventually(lambda: again.handlers.pairing.is_done((directive, 2, "restrict")), what="replayed")
        finally:
            await again.stop()
        told = _told(box, directive)
    assert told == {
        **{f"{directive}:1:restricted:{b + i}": f"user{i}@example.com" for i in range(3)},
        f"{directive}:2:restricted:{b + 3}": "user3@example.com",  # newly covered by the amendment
        f"{directive}:2:restored:{b}": "user0@example.com",  # no longer covered
    }
    assert box.count() == len(told)  # not even a duplicate for the receiver to drop
    restored = next(m for m in box.unique().values() if m.notice == f"{directive}:2:restored:{b}")
    assert restored.language == "fr" and "fable-5" in restored.subject
