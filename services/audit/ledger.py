"""The SQLite ledger: entries appended in hash-chained batches, read back in seq order.

Beside each entry it stores the entry's Merkle leaf hash (table `leaves`, written in the same transaction)
and keeps a Frontier in memory, so the tree head after an append costs O(log n), and proofs need no rehash.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from services.audit.chain import GENESIS, Entry, canonical, fresh, link
from services.audit.merkle import Frontier, leaf_hash
from services.audit.record import Envelope, Headers, Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers JSON NOT NULL,
    kafka_timestamp INTEGER,
    event_id TEXT,
    type TEXT,
    correlation_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (topic, partition, offset)
);
CREATE INDEX IF NOT EXISTS entries_correlation ON entries (correlation_id);
CREATE INDEX IF NOT EXISTS entries_key ON entries (key);
CREATE TABLE IF NOT EXISTS leaves (seq INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
"""
COLUMNS = (
    "seq, topic, partition, offset, key, value, headers, kafka_timestamp, event_id, type, "
    "correlation_id, prev_hash, hash"
)


class LedgerMissing(FileNotFoundError):
    """The ledger file does not exist."""


def headers_json(headers: Headers) -> str:
    """Headers as JSON: [[name, base64 value or null], ...] in received order."""
    if not headers:
        return "[]"
    return json.dumps([[n, None if v is None else base64.b64encode(v).decode()] for n, v in headers])


def headers_of(text: str) -> Headers:
    """Headers back from their JSON; an unreadable column still yields something to hash (and fail)."""
    try:
        return tuple((n, None if v is None else base64.b64decode(v, validate=True)) for n, v in json.loads(text))
    except (ValueError, TypeError, binascii.Error):
        return (("", str(text).encode()),)


def leaf_of(entry: Entry) -> bytes:
    """The entry's Merkle leaf hash: RFC 9162 leaf hash of its record's canonical encoding."""
    return leaf_hash(canonical(entry.record))


def _row(entry: Entry) -> tuple:
    r, e = entry.record, entry.envelope
    return (
        entry.seq,
        r.topic,
        r.partition,
        r.offset,
        r.key,
        r.value,
        headers_json(r.headers),
        r.kafka_timestamp,
        e.event_id,
        e.type,
        e.correlation_id,
        entry.prev_hash,
        entry.hash,
    )


def _blob(column: object) -> bytes | None:
    # A hand-edited row may hold TEXT where BLOB was written; hash what is there.
    return column.encode() if isinstance(column, str) else column


def _entry(row: Sequence) -> Entry:
    record = Record(row[1], row[2], row[3], _blob(row[4]), _blob(row[5]), headers_of(row[6]), row[7])
    return Entry(row[0], record, Envelope(row[8], row[9], row[10]), row[11], row[12])


class Ledger:
    """The audit's hash-chained ledger in one SQLite file (one writer)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        if read_only and not path.exists():
            raise LedgerMissing(f"no audit ledger at {path}")
        if read_only:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # durable before the Kafka offset is committed
            self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.frontier: Frontier | None = None if read_only else self._frontier()

    def _frontier(self) -> Frontier:
        """The tree of the stored leaves, after storing any an older ledger lacks (one pass at open)."""
        self._backfill_leaves()
        frontier = Frontier()
        for (leaf,) in self._db.execute("SELECT leaf FROM leaves ORDER BY seq"):
            frontier.append(leaf)
        return frontier

    def _backfill_leaves(self) -> None:
        (done,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM leaves").fetchone()
        rows = self._db.execute(f"SELECT {COLUMNS} FROM entries WHERE seq > ? ORDER BY seq", (done,))
        missing = [(e.seq, leaf_of(e)) for e in map(_entry, rows.fetchall())]
        if missing:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO leaves (seq, leaf) VALUES (?, ?)", missing)
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def head(self) -> tuple[int, str]:
        """(seq of the newest entry, its hash); (0, GENESIS) when empty."""
        row = self._db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def append(self, records: Sequence[Record]) -> list[Entry]:
        """Chain and store the records not yet recorded, in one committed transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the head read below is part of the write transaction
            try:
                seq, prev = self.head()
                entries = link(list(fresh(records, self._recorded(records))), prev, seq + 1)
                self._db.executemany(
                    f"INSERT INTO entries ({COLUMNS}) VALUES ({', '.join('?' * 13)})", [_row(e) for e in entries]
                )
                leaves = [leaf_of(e) for e in entries]
                self._db.executemany(
                    "INSERT INTO leaves (seq, leaf) VALUES (?, ?)", zip((e.seq for e in entries), leaves, strict=True)
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            for leaf in leaves:
                self.frontier.append(leaf)
        return entries

    def tree_head(self) -> tuple[int, bytes]:
        """(size, Merkle root) of the committed entries, from the frontier (a writer only)."""
        return self.frontier.size, self.frontier.root()

    def leaves(self) -> list[bytes]:
        """The stored leaf hashes in seq order (what proofs are built from; verify recomputes them)."""
        try:
            stored = [leaf for (leaf,) in self._db.execute("SELECT leaf FROM leaves ORDER BY seq")]
        except sqlite3.OperationalError:  # a ledger written before leaves were stored, opened read-only
            stored = []
        if len(stored) == self.head()[0]:
            return stored
        return [leaf_of(e) for e in self.entries()]

    def entry(self, seq: int) -> Entry | None:
        """The entry at seq, if any."""
        row = self._db.execute(f"SELECT {COLUMNS} FROM entries WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _entry(row)

    def _recorded(self, records: Sequence[Record]) -> set[tuple[str, int, int]]:
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for r in records:
            low, high = spans.get((r.topic, r.partition), (r.offset, r.offset))
            spans[(r.topic, r.partition)] = (min(low, r.offset), max(high, r.offset))
        seen: set[tuple[str, int, int]] = set()
        for (topic, partition), (low, high) in spans.items():
            rows = self._db.execute(
                "SELECT offset FROM entries WHERE topic = ? AND partition = ? AND offset BETWEEN ? AND ?",
                (topic, partition, low, high),
            )
            seen.update((topic, partition, o) for (o,) in rows)
        return seen

    def entries(self) -> Iterator[Entry]:
        """Every entry in seq order."""
        for row in self._db.execute(f"SELECT {COLUMNS} FROM entries ORDER BY seq"):
            yield _entry(row)

    def entries_of(self, directive_id: str) -> list[Entry]:
        """Entries whose correlation id or key is the directive id, in seq order."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM entries WHERE correlation_id = ? OR key = ? ORDER BY seq",
            (directive_id, directive_id.encode()),
        )
        return [_entry(row) for row in rows]
