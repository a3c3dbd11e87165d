"""Poison messages on every topic the notifier consumes land on dlq.notifier.v1; it keeps going."""

from __future__ import annotations

import base64
from pathlib import Path

from devtools.waiting import eventually
from services.notifier.sink import OutboxSink
from tests.integration.notifier.conftest import (
    assessment,
    confirmation,
    produce,
    read_until,
    settings_for,
    started,
    user,
    user_base,
)


async def _dead_letters(bootstrap: str, key: str, count: int) -> list[dict]:
    wanted = base64.b64encode(key.encode()).decode()
    kept = await read_until(
        bootstrap, "dlq.notifier.v1", lambda item: item[1]["key_b64"] == wanted, lambda kept: len(kept) >= count
    )
    return [value for _, value in kept]


def _outbox(state: Path, directive: str) -> list[dict]:
    return [r for r in OutboxSink(state / "notifier" / "outbox.jsonl").records() if r["directive_id"] == directive]


async def test_bad_impact_messages_are_dead_lettered_and_later_sets_still_notify(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, base = f"PSN-I-{unique}", user_base(unique)
    await produce(bootstrap, [user(base, "p@example.com")])
    notifier = await started(settings_for(bootstrap, tmp_path, f"notifier-{unique}"))
    try:
        broken_bitmap = assessment(f"{directive}-x", 1, "restrict", {"fable-5": [1]})[1]
        bad_chunk = broken_bitmap[2].replace(b'"users":"', b'"users":"!!')
        await produce(
            bootstrap,
            [
                ("compliance.impact.v1", directive.encode(), b"{not json"),
                ("compliance.impact.v1", directive.encode(), bad_chunk),
            ],
        )
        await produce(bootstrap, assessment(directive, 1, "restrict", {"fable-5": [base]}))
        await produce(bootstrap, [confirmation(directive, 1, "restrict")])
        letters = await _dead_letters(bootstrap, directive, 2)
        assert [(d["topic"], d["consumer"]) for d in letters] == [("compliance.impact.v1", "notifier")] * 2
        assert "bitmap" in letters[1]["reason"]
        await eventually(lambda: len(_outbox(tmp_path, directive)) == 1)
    finally:
        await notifier.stop()


async def test_bad_enforcement_message_is_dead_lettered_and_later_confirmations_still_notify(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, base = f"PSN-E-{unique}", user_base(unique)
    await produce(bootstrap, [user(base, "q@example.com")])
    notifier = await started(settings_for(bootstrap, tmp_path, f"notifier-{unique}"))
    try:
        await produce(bootstrap, assessment(directive, 1, "restrict", {"fable-5": [base]}))
        await produce(
            bootstrap,
            [("compliance.enforcement.v1", directive.encode(), b'{"type": "DirectiveEnforced", "directive_id": 7}')],
        )
        await produce(bootstrap, [confirmation(directive, 1, "restrict")])
        letters = await _dead_letters(bootstrap, directive, 1)
        assert letters[0]["topic"] == "compliance.enforcement.v1" and "invalid message" in letters[0]["reason"]
        await eventually(lambda: len(_outbox(tmp_path, directive)) == 1)
    finally:
        await notifier.stop()


async def test_bad_registry_records_are_dead_lettered_one_by_one_and_the_view_keeps_loading(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    base = user_base(unique)
    bad_key = f"bad-{unique}"
    await produce(
        bootstrap,
        [
            ("identity.users.v1", bad_key.encode(), b'{"user_id": "nope"}'),
            ("identity.users.v1", bad_key.encode(), None),  # tombstone without a user id key
            user(base, "first@example.com"),
        ],
    )
    notifier = await started(settings_for(bootstrap, tmp_path, f"notifier-{unique}"))
    try:
        directory = notifier.registry.directory

        def first_contact() -> bool:
            found = directory.contacts.get(base)
            return found is not None and (found.email, found.locale) == ("first@example.com", "fr")

        await eventually(first_contact)
        letters = await _dead_letters(bootstrap, bad_key, 2)
        assert [d["topic"] for d in letters] == ["identity.users.v1"] * 2
        assert "invalid message" in letters[0]["reason"] and "key" in letters[1]["reason"]
        # While running: a bad record, then an upsert and a tombstone are still applied.
        await produce(
            bootstrap,
            [
                ("identity.users.v1", bad_key.encode(), b"garbage"),
                user(base + 1, "second@example.com"),
                ("identity.users.v1", str(base).encode(), None),
            ],
        )
        await eventually(lambda: base + 1 in directory.contacts and base not in directory.contacts)
        assert len(await _dead_letters(bootstrap, bad_key, 3)) == 3
    finally:
        await notifier.stop()
