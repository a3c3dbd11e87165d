"""The delivery ledger (SQLite): every notice sent or failed, recorded atomically with the sink write."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.notifier.notices import NOTICE_ACTION, Notice
from services.notifier.sink import Letter, NoticeSink
from shared.contracts.impact import AssessmentKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    notification_id TEXT PRIMARY KEY,
    directive_id TEXT NOT NULL, revision INTEGER NOT NULL, action TEXT NOT NULL,
    recipient INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
    announced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ledger_unannounced ON ledger (directive_id, revision, action) WHERE announced = 0;
CREATE TABLE IF NOT EXISTS sink_checkpoints (sink TEXT PRIMARY KEY, checkpoint TEXT NOT NULL);
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


class Ledger:
    """notification_id is the primary key: a notice in the ledger is never sent again."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)

    def sent(self, ids: list[str]) -> set[str]:
        """Which of these notification ids are already in the ledger."""
        found: set[str] = set()
        for i in range(0, len(ids), QUERY_CHUNK):
            part = ids[i : i + QUERY_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(f"SELECT notification_id FROM ledger WHERE notification_id IN ({marks})", part)
            found.update(row[0] for row in rows)
        return found

    def record(self, letters: list[Letter], failed: list[tuple[Notice, str]], sink: NoticeSink) -> None:
        """Ledger rows and the sink append as one step.

        Order: stage the rows in an open transaction (a conflict aborts before anything leaves),
        write and fsync the sink, then commit the rows together with the sink's new checkpoint. A
        crash before the commit leaves neither the rows nor the checkpoint, and at start-up the sink
        cuts back to the last committed checkpoint, so the notices are sent again exactly once; a
        crash after the commit leaves both. Committing first would lose notices on a crash; writing
        the sink outside the transaction would duplicate them.
        """
        rows = [_row(letter.notice, "delivered", None) for letter in letters]
        rows += [_row(notice, "failed", reason) for notice, reason in failed]
        try:
            with self._conn:
                self._conn.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, 0)", rows)
                if letters:
                    checkpoint = sink.write(letters)
                    self._conn.execute("INSERT OR REPLACE INTO sink_checkpoints VALUES (?, ?)", (sink.name, checkpoint))
        except BaseException:
            sink.recover(self.checkpoint(sink.name))
            raise

    def checkpoint(self, sink: str) -> str | None:
        row = self._conn.execute("SELECT checkpoint FROM sink_checkpoints WHERE sink = ?", (sink,)).fetchone()
        return None if row is None else row[0]

    def unannounced(self, key: AssessmentKey) -> list[Entry]:
        """Rows committed whose Delivered/Failed message was not confirmed published (crash in between)."""
        rows = self._conn.execute(
            "SELECT notification_id, recipient, status, reason FROM ledger "
            "WHERE directive_id = ? AND revision = ? AND action = ? AND announced = 0",
            (key.directive_id, key.revision, NOTICE_ACTION[key.action]),
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
