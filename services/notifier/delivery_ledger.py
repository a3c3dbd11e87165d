"""The delivery ledger (SQLite): every notice sent or failed, with its channel, recorded after the send.

Channels cannot take a send back, so the order is send, then record: a crash in between sends again with
the same idempotency key (Message-ID for email, webhook-id for webhooks), which the receiver drops.
Recording first would lose the notice on a crash."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.notifier.notices import NOTICE_ACTION, Notice
from shared.contracts.impact import AssessmentKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    notification_id TEXT PRIMARY KEY,
    directive_id TEXT NOT NULL, revision INTEGER NOT NULL, action TEXT NOT NULL,
    recipient INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
    announced INTEGER NOT NULL DEFAULT 0, channel TEXT
);
CREATE INDEX IF NOT EXISTS ledger_unannounced ON ledger (directive_id, revision, action) WHERE announced = 0;
"""
QUERY_CHUNK = 500  # stays under SQLite's bound-parameter limit


def open_database(path: Path) -> sqlite3.Connection:
    """The notifier's SQLite file, durable on commit (WAL, synchronous=FULL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@dataclass(frozen=True)
class Entry:
    """A ledger row whose outcome may still have to be announced on notifications.v1."""

    notification_id: str
    recipient: int
    status: str  # delivered | failed
    reason: str | None
    channel: str | None
    action: str = "restricted"  # restricted | restored


@dataclass(frozen=True)
class Recorded:
    """The outcome of one notice, to record."""

    notice: Notice
    status: str  # delivered | failed
    channel: str | None
    reason: str | None = None


class Ledger:
    """notification_id is the primary key: a notice in the ledger is never sent again."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
        if "channel" not in columns:  # a ledger written before channels were recorded
            conn.execute("ALTER TABLE ledger ADD COLUMN channel TEXT")

    def sent(self, ids: list[str]) -> set[str]:
        """Which of these notification ids are already in the ledger."""
        found: set[str] = set()
        for i in range(0, len(ids), QUERY_CHUNK):
            part = ids[i : i + QUERY_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(f"SELECT notification_id FROM ledger WHERE notification_id IN ({marks})", part)
            found.update(row[0] for row in rows)
        return found

    def record(self, outcomes: list[Recorded]) -> None:
        """The outcomes of sends that already happened, in one transaction."""
        rows = [(*_row(r.notice, r.status, r.reason), r.channel) for r in outcomes]
        with self._conn:
            self._conn.executemany(
                "INSERT INTO ledger (notification_id, directive_id, revision, action, recipient, status, reason, "
                "announced, channel) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                rows,
            )

    def unannounced(self, key: AssessmentKey) -> list[Entry]:
        """Rows of the key's directive revision (either action: an amendment or a delta sends both) committed
        whose Delivered/Failed message was not confirmed published (crash in between)."""
        rows = self._conn.execute(
            "SELECT notification_id, recipient, status, reason, channel, action FROM ledger "
            "WHERE directive_id = ? AND revision = ? AND announced = 0",
            (key.directive_id, key.revision),
        )
        return [Entry(*row) for row in rows]

    def mark_announced(self, ids: Iterable[str]) -> None:
        with self._conn:
            self._conn.executemany("UPDATE ledger SET announced = 1 WHERE notification_id = ?", [(i,) for i in ids])

    def count(self, key: AssessmentKey) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM ledger WHERE directive_id = ? AND revision = ? AND action = ?",
            (key.directive_id, key.revision, NOTICE_ACTION[key.action]),
        ).fetchone()
        return int(row[0])


def _row(notice: Notice, status: str, reason: str | None) -> tuple[object, ...]:
    return (
        notice.notification_id,
        notice.directive_id,
        notice.revision,
        notice.action,
        notice.recipient,
        status,
        reason,
    )
