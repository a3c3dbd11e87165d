"""On the real broker: notices go out once enforcement is confirmed, exactly once per recipient."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from devtools.waiting import eventually
from services.notifier.sink import OutboxSink
from tests.integration.notifier.conftest import (
    assessment,
    confirmation,
    produce,
    read_all,
    read_until,
    settings_for,
    started,
    user,
    user_base,
)


def _lines(state: Path, directive: str) -> list[dict]:
    return [r for r in OutboxSink(state / "notifier" / "outbox.jsonl").records() if r["directive_id"] == directive]


async def _notifications(bootstrap: str, directive: str, done) -> list[dict]:
    kept = await read_until(
        bootstrap,
        "notifications.v1",
        lambda item: item[1] is not None and item[1].get("directive_id") == directive,
        done,
    )
    return [value for _, value in kept]


async def test_confirmed_restriction_notifies_each_recipient_once_across_replays(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, base = f"EXP-{unique}", user_base(unique)
    await produce(bootstrap, [user(base + i, f"user{i}@example.com") for i in range(5)])
    notifier = await started(settings_for(bootstrap, tmp_path, f"notifier-{unique}-a"))
    try:
        # base+5 is affected but has no registry record: it fails instead of being sent.
        await produce(
            bootstrap,
            assessment(
                directive,
                1,
                "restrict",
                {"fable-5": [base, base + 1, base + 2, base + 3], "mythos-5": [base + 2, base + 3, base + 4, base + 5]},
            ),
        )
        assert _lines(tmp_path, directive) == []  # a set alone sends nothing
        confirmed = confirmation(directive, 1, "restrict")
        await produce(bootstrap, [confirmed])
        await eventually(lambda: len(_lines(tmp_path, directive)) >= 5)
        lines = _lines(tmp_path, directive)
        assert {line["recipient"]: line["models"] for line in lines} == {
            base: ["fable-5"],
            base + 1: ["fable-5"],
            base + 2: ["fable-5", "mythos-5"],
            base + 3: ["fable-5", "mythos-5"],
            base + 4: ["mythos-5"],
        }
        assert {line["email"] for line in lines} == {f"user{i}@example.com" for i in range(5)}
        assert {(line["action"], line["locale"]) for line in lines} == {("restricted", "fr")}
        assert lines[0]["notification_id"] == f"{directive}:1:restricted:{lines[0]['recipient']}"
        assert directive in lines[0]["body"] and "fable-5" in lines[0]["subject"]

        messages = await _notifications(bootstrap, directive, lambda kept: len(kept) >= 11)
        by_type = Counter(m["type"] for m in messages)
        assert by_type == {"NotificationRequested": 5, "NotificationDelivered": 5, "NotificationFailed": 1}
        assert {(m["producer"], m["correlation_id"], m["causation_id"]) for m in messages} == {
            ("notifier", directive, json.loads(confirmed[2])["event_id"])
        }
        failed = next(m for m in messages if m["type"] == "NotificationFailed")
        assert failed["recipient"] == base + 5 and "no record" in failed["reason"]

        # The same confirmation again, then revision 2 on the same partition as a marker that it was handled.
        await produce(bootstrap, [confirmed])
        await produce(bootstrap, assessment(directive, 2, "restrict", {"fable-5": [base]}))
        await produce(bootstrap, [confirmation(directive, 2, "restrict")])
        await eventually(lambda: any(line["revision"] == 2 for line in _lines(tmp_path, directive)))
    finally:
        await notifier.stop()

    await _replay_from_the_beginning(bootstrap, tmp_path, f"notifier-{unique}-b", directive, base, marker=3)
    # As if the process died after the ledger commit but before the pair was marked dispatched:
    # only the ledger stands between a full replay and duplicates now.
    with sqlite3.connect(tmp_path / "notifier" / "notifier.db") as db:
        db.execute("DELETE FROM dispatched")
    await _replay_from_the_beginning(bootstrap, tmp_path, f"notifier-{unique}-c", directive, base, marker=4)

    counts = Counter((line["revision"], line["recipient"]) for line in _lines(tmp_path, directive))
    assert set(counts.values()) == {1}
    assert sum(1 for (revision, _) in counts if revision == 1) == 5
    messages = [
        value
        for _, value in await read_all(bootstrap, "notifications.v1", lambda item: item[1]["directive_id"] == directive)
    ]
    for kind in ("NotificationRequested", "NotificationDelivered"):
        per_id = Counter(m["notification_id"] for m in messages if m["type"] == kind)
        assert len(per_id) == 8 and set(per_id.values()) == {1}, kind  # 5 + one per marker revision, once each


async def _replay_from_the_beginning(
    bootstrap: str, state: Path, group: str, directive: str, base: int, marker: int
) -> None:
    """Restart on the same state with a fresh group (reads everything again); a new revision marks the end."""
    notifier = await started(settings_for(bootstrap, state, group))
    try:
        await produce(bootstrap, assessment(directive, marker, "restrict", {"fable-5": [base + 1]}))
        await produce(bootstrap, [confirmation(directive, marker, "restrict")])
        await eventually(lambda: any(line["revision"] == marker for line in _lines(state, directive)))
    finally:
        await notifier.stop()


async def test_confirmation_before_the_set_sends_restored_notices(bootstrap: str, unique: str, tmp_path: Path) -> None:
    directive, base = f"LIFT-{unique}", user_base(unique)
    await produce(bootstrap, [user(base + i, f"r{i}@example.com") for i in range(2)])
    notifier = await started(settings_for(bootstrap, tmp_path, f"notifier-{unique}"))
    try:
        await produce(bootstrap, [confirmation(directive, 1, "lift")])
        await produce(bootstrap, assessment(directive, 1, "lift", {"fable-5": [base, base + 1], "mythos-5": [base]}))
        await eventually(lambda: len(_lines(tmp_path, directive)) >= 2)
        lines = _lines(tmp_path, directive)
        assert {(line["recipient"], tuple(line["models"]), line["action"]) for line in lines} == {
            (base, ("fable-5", "mythos-5"), "restored"),
            (base + 1, ("fable-5",), "restored"),
        }
        assert all("rétabli" in line["subject"] for line in lines)  # their locale is fr
    finally:
        await notifier.stop()
