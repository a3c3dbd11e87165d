"""The agent's SQLite file: its tables, the columns added since the first release, and how values are stored."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from pyroaring import BitMap

from shared.runtime.set_store import SetTables

SCHEMA = """
CREATE TABLE IF NOT EXISTS held (directive TEXT PRIMARY KEY, revision INTEGER NOT NULL, seq INTEGER NOT NULL,
                                 effective_from TEXT, expires_at TEXT);
CREATE TABLE IF NOT EXISTS staged (directive TEXT NOT NULL, revision INTEGER NOT NULL, chunk INTEGER NOT NULL,
                                   chunks INTEGER NOT NULL, effective_from TEXT, expires_at TEXT,
                                   model TEXT NOT NULL, users BLOB NOT NULL,
                                   PRIMARY KEY (directive, revision, chunk));
CREATE TABLE IF NOT EXISTS pending (directive TEXT NOT NULL, revision INTEGER NOT NULL, seq INTEGER NOT NULL,
                                    model TEXT NOT NULL, added BLOB NOT NULL, removed BLOB NOT NULL,
                                    PRIMARY KEY (directive, revision, seq));
CREATE TABLE IF NOT EXISTS lifted (directive TEXT PRIMARY KEY, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS synced (one INTEGER PRIMARY KEY CHECK (one = 1), marker TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS received (directive TEXT NOT NULL, revision INTEGER NOT NULL, command TEXT NOT NULL,
                                     PRIMARY KEY (directive, revision, command));
"""
# Columns added after the first release: snapshots written before them are upgraded in place on open.
ADDED_COLUMNS = {
    "held": {
        "on_stale": "TEXT NOT NULL DEFAULT 'keep'",
        # Set when the held sets are still the chunks of this staged revision (see RestrictionStore.fold).
        "staged_revision": "INTEGER",
    },
    "staged": {"on_stale": "TEXT NOT NULL DEFAULT 'keep'", "cause": "TEXT NOT NULL DEFAULT ''"},
}
HELD_SETS = SetTables(sets="held_sets", deltas="held_deltas", key="directive", users="users")


# A held set is megabytes (10M users: 1.8 MB per model): in 64 KiB pages SQLite writes and frees a sixteenth of the
# overflow pages it needs in 4 KiB ones (half the CPU of writing a revision, a quarter of its wall time). The size
# applies to a file created with it; an existing file keeps its own. WAL checkpoints at 16 MiB.
PAGE_SIZE = 64 * 1024
WAL_CHECKPOINT_PAGES = 256


def open_database(path: Path) -> sqlite3.Connection:
    """The agent's database, created or upgraded; autocommit (the store opens its own transactions), WAL, fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The store is used from one thread at a time (Holding.writing), not always the one that opened it.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL mode and the first table: only a new file takes it
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
    return db


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def blob(users: BitMap) -> bytes:
    return bytes(users.serialize())
