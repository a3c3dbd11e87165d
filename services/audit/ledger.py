"""The SQLite ledger: entries appended in hash-chained batches, read back in seq order.

In the same transaction as each batch it stores the entries' Merkle leaf hashes, the Merkle frontier (so a
restart reopens in O(log n)) and the lookup index that explain reads (see lookup.py and the README).
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
from services.audit.lookup import DIRECTIVE_RANGE, earliest, keys_of, user_key
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
CREATE TABLE IF NOT EXISTS frontier (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, nodes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS lookup (k TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (k, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (k TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
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
        self.path = path
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
        """The tree of the stored leaves: the stored frontier plus any leaf after it (none after a clean stop);
        a ledger written before frontiers and indexes were stored gets them in one pass, once."""
        self._backfill_leaves()
        frontier = Frontier()
        row = self._db.execute("SELECT size, nodes FROM frontier WHERE id = 1").fetchone()
        if row is not None:
            try:
                frontier = Frontier.restore(row[0], row[1])
            except ValueError:
                frontier = Frontier()
        for (leaf,) in self._db.execute("SELECT leaf FROM leaves WHERE seq > ? ORDER BY seq", (frontier.size,)):
            frontier.append(leaf)
        self._db.execute("BEGIN IMMEDIATE")
        self._index(list(self._unindexed()))
        self._store_frontier(frontier)
        self._db.execute("COMMIT")
        return frontier

    def _store_frontier(self, frontier: Frontier) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO frontier (id, size, nodes) VALUES (1, ?, ?)", (frontier.size, frontier.state())
        )

    def _fact(self, name: str) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM facts WHERE name = ?", (name,)).fetchone()
        except sqlite3.OperationalError:  # a ledger from before the index, opened read-only
            return None
        return None if row is None else row[0]

    def _unindexed(self) -> Iterator[Entry]:
        rows = self._db.execute(f"SELECT {COLUMNS} FROM entries WHERE seq > ? ORDER BY seq", (self._indexed(),))
        for row in rows.fetchall():
            yield _entry(row)

    def _indexed(self) -> int:
        return self._fact("indexed_seq") or 0

    def _index(self, entries: Sequence[Entry]) -> None:
        """Index entries (inside the caller's transaction): lookup keys, latest slots, the first event's time."""
        if not entries:
            return
        found, newest = [], {}
        for entry in entries:
            keys, slot = keys_of(entry.record)
            found.extend((k, entry.seq) for k in keys)
            if slot is not None:
                newest[slot] = entry.seq
        self._db.executemany("INSERT OR IGNORE INTO lookup (k, seq) VALUES (?, ?)", found)
        self._db.executemany("INSERT OR REPLACE INTO latest (k, seq) VALUES (?, ?)", newest.items())
        first = earliest(e.record for e in entries)
        known = self._fact("first_event_us")
        if first is not None and (known is None or first < known):
            self._db.execute("INSERT OR REPLACE INTO facts (name, value) VALUES ('first_event_us', ?)", (first,))
        self._db.execute("INSERT OR REPLACE INTO facts (name, value) VALUES ('indexed_seq', ?)", (entries[-1].seq,))

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
                frontier = Frontier.restore(self.frontier.size, self.frontier.state())
                for leaf in leaves:
                    frontier.append(leaf)
                self._store_frontier(frontier)
                self._index(entries)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.frontier = frontier
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

    def about_user(self, user: int) -> tuple[list[Entry], int | None]:
        """What one user's question needs, in seq order: the user's registry records and notices, every
        directive's events, the newest heartbeat of each cluster, and any entry not indexed yet; with the time
        of the first recorded event (microseconds), None when unknown."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM entries WHERE seq IN ("
            "SELECT seq FROM lookup WHERE k = ? "
            "UNION SELECT seq FROM lookup WHERE k >= ? AND k < ? "
            "UNION SELECT seq FROM latest "
            "UNION SELECT seq FROM entries WHERE seq > ?) ORDER BY seq",
            (user_key(user), *DIRECTIVE_RANGE, self._indexed()),
        )
        entries = [_entry(row) for row in rows]
        return entries, self._fact("first_event_us")

    def indexed(self) -> bool:
        """Whether this ledger has the lookup index (a ledger from an older audit gets it when the audit opens it)."""
        try:
            self._db.execute("SELECT 1 FROM lookup LIMIT 1")
        except sqlite3.OperationalError:
            return False
        return True

    def entries_of(self, directive_id: str) -> list[Entry]:
        """Entries whose correlation id or key is the directive id, in seq order."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM entries WHERE correlation_id = ? OR key = ? ORDER BY seq",
            (directive_id, directive_id.encode()),
        )
        return [_entry(row) for row in rows]
