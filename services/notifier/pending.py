"""Durable halves of pairs (SQLite): sets and confirmations survive a restart until dispatched.

Offsets of the impact and enforcement topics are committed once a handler returns, so whatever the
Pairing holds must be on disk first, or a restart would forget a set whose chunks were committed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from pyroaring import BitMap

from services.notifier.delta_pairing import Delta, DeltaPairing
from services.notifier.pairing import Pairing
from shared.contracts.impact import AssessmentKey, Part

SCHEMA = """
CREATE TABLE IF NOT EXISTS assessments (
    directive_id TEXT, revision INTEGER, action TEXT, chunks INTEGER NOT NULL, registry_offsets TEXT NOT NULL,
    PRIMARY KEY (directive_id, revision, action));
CREATE TABLE IF NOT EXISTS chunks (
    directive_id TEXT, revision INTEGER, action TEXT, chunk INTEGER, chunks INTEGER NOT NULL,
    model TEXT NOT NULL, users BLOB NOT NULL,
    PRIMARY KEY (directive_id, revision, action, chunk));
CREATE TABLE IF NOT EXISTS confirmations (
    directive_id TEXT, revision INTEGER, action TEXT, event_id TEXT NOT NULL,
    PRIMARY KEY (directive_id, revision, action));
CREATE TABLE IF NOT EXISTS amendments (
    directive_id TEXT, revision INTEGER, action TEXT, amended_from INTEGER NOT NULL, diff_chunks INTEGER NOT NULL,
    PRIMARY KEY (directive_id, revision, action));
CREATE TABLE IF NOT EXISTS diff_chunks (
    directive_id TEXT, revision INTEGER, action TEXT, chunk INTEGER, chunks INTEGER NOT NULL,
    part TEXT NOT NULL, model TEXT NOT NULL, users BLOB NOT NULL,
    PRIMARY KEY (directive_id, revision, action, chunk));
CREATE TABLE IF NOT EXISTS model_confirmations (
    directive_id TEXT, revision INTEGER, action TEXT, model TEXT, event_id TEXT NOT NULL,
    PRIMARY KEY (directive_id, revision, action, model));
CREATE TABLE IF NOT EXISTS dispatched (
    directive_id TEXT, revision INTEGER, action TEXT,
    PRIMARY KEY (directive_id, revision, action));
"""


class PendingStore:
    """Keeps what the Pairing was told, first copy wins, and which keys are fully dispatched."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def assessed(
        self,
        key: AssessmentKey,
        chunks: int,
        registry_offsets: dict[int, int],
        diff_chunks: int = 0,
        amended_from: int | None = None,
    ) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO assessments VALUES (?, ?, ?, ?, ?)", (*key, chunks, json.dumps(registry_offsets))
            )
            if amended_from is not None:
                self._conn.execute(
                    "INSERT OR IGNORE INTO amendments VALUES (?, ?, ?, ?, ?)", (*key, amended_from, diff_chunks)
                )

    def diff_chunk(self, key: AssessmentKey, index: int, chunks: int, part: Part, model: str, users: BitMap) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO diff_chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, index, chunks, part, model, users.serialize()),
            )

    def chunk(self, key: AssessmentKey, index: int, chunks: int, model: str, users: BitMap) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, index, chunks, model, users.serialize()),
            )

    def enforced(self, key: AssessmentKey, event_id: str) -> None:
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO confirmations VALUES (?, ?, ?, ?)", (*key, event_id))

    def confirmed(self, key: AssessmentKey, models: frozenset[str], event_id: str) -> None:
        """Models every cluster serving them applied (a progress report)."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO model_confirmations VALUES (?, ?, ?, ?, ?)",
                [(*key, model, event_id) for model in sorted(models)],
            )

    def dispatched(self, key: AssessmentKey) -> None:
        """Mark the key done and drop its set: it is never needed again."""
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO dispatched VALUES (?, ?, ?)", key)
            self._conn.execute("DELETE FROM chunks WHERE directive_id = ? AND revision = ? AND action = ?", key)
            self._conn.execute("DELETE FROM diff_chunks WHERE directive_id = ? AND revision = ? AND action = ?", key)

    def restore(self) -> Pairing:
        """A Pairing holding everything recorded, in the order it may have arrived."""
        pairing = Pairing()
        for row in self._conn.execute("SELECT * FROM dispatched"):
            pairing.dispatched(AssessmentKey(*row))
        amended = {AssessmentKey(d, r, a): (f, n) for d, r, a, f, n in self._conn.execute("SELECT * FROM amendments")}
        for *key, chunks, offsets in self._conn.execute("SELECT * FROM assessments"):
            amended_from, diff_chunks = amended.get(AssessmentKey(*key), (None, 0))
            offsets = {int(p): o for p, o in json.loads(offsets).items()}
            pairing.assessed(AssessmentKey(*key), chunks, offsets, diff_chunks, amended_from)
        for *key, index, chunks, model, users in self._conn.execute("SELECT * FROM chunks"):
            pairing.chunk(AssessmentKey(*key), index, chunks, model, BitMap.deserialize(users))
        for *key, index, chunks, part, model, users in self._conn.execute("SELECT * FROM diff_chunks"):
            pairing.diff_chunk(AssessmentKey(*key), index, chunks, part, model, BitMap.deserialize(users))
        for *key, event_id in self._conn.execute("SELECT * FROM confirmations"):
            pairing.enforced(AssessmentKey(*key), event_id)
        for *key, model, event_id in self._conn.execute("SELECT * FROM model_confirmations ORDER BY rowid"):
            pairing.confirmed(AssessmentKey(*key), frozenset([model]), event_id)
        return pairing


DELTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS delta_bases (
    directive_id TEXT, revision INTEGER, model_digests TEXT NOT NULL, PRIMARY KEY (directive_id, revision));
CREATE TABLE IF NOT EXISTS deltas (
    directive_id TEXT, revision INTEGER, seq INTEGER, model TEXT NOT NULL, model_digest TEXT NOT NULL,
    added BLOB, removed BLOB, sent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (directive_id, revision, seq));
CREATE TABLE IF NOT EXISTS cluster_serving (
    directive_id TEXT, revision INTEGER, cluster TEXT, models TEXT NOT NULL,
    PRIMARY KEY (directive_id, revision, cluster));
CREATE TABLE IF NOT EXISTS cluster_held (
    directive_id TEXT, revision INTEGER, cluster TEXT, digest TEXT, event_id TEXT NOT NULL,
    PRIMARY KEY (directive_id, revision, cluster, digest));
CREATE TABLE IF NOT EXISTS confirmed_digests (
    directive_id TEXT, revision INTEGER, digest TEXT, event_id TEXT NOT NULL,
    PRIMARY KEY (directive_id, revision, digest));
"""


class DeltaStore:
    """Keeps what the DeltaPairing was told (first copy wins); a delta's sets are dropped once it is told."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(DELTA_SCHEMA)

    def assessed(self, key: AssessmentKey, model_digests: dict[str, str]) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO delta_bases VALUES (?, ?, ?)", (*key[:2], json.dumps(model_digests))
            )

    def delta(self, key: AssessmentKey, delta: Delta) -> None:
        row = (*key[:2], delta.seq, delta.model, delta.model_digest, delta.added.serialize(), delta.removed.serialize())
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO deltas VALUES (?, ?, ?, ?, ?, ?, ?, 0)", row)

    def confirmed(self, key: AssessmentKey, digest: str, event_id: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO confirmed_digests VALUES (?, ?, ?, ?)", (*key[:2], digest, event_id)
            )

    def clusters(
        self, key: AssessmentKey, reports: Mapping[str, tuple[frozenset[str], str | None]], event_id: str
    ) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM cluster_serving WHERE directive_id = ? AND revision = ?", key[:2])
            self._conn.executemany(
                "INSERT INTO cluster_serving VALUES (?, ?, ?, ?)",
                [(*key[:2], c, json.dumps(sorted(models))) for c, (models, _) in reports.items()],
            )
            self._conn.executemany(
                "INSERT OR IGNORE INTO cluster_held VALUES (?, ?, ?, ?, ?)",
                [(*key[:2], c, digest, event_id) for c, (_, digest) in reports.items() if digest is not None],
            )

    def sent(self, key: AssessmentKey, seq: int) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE deltas SET sent = 1, added = NULL, removed = NULL "
                "WHERE directive_id = ? AND revision = ? AND seq = ?",
                (*key[:2], seq),
            )

    def restore(self) -> DeltaPairing:
        pairing = DeltaPairing()
        for directive, revision, digests in self._conn.execute("SELECT * FROM delta_bases"):
            pairing.assessed(AssessmentKey(directive, revision, "restrict"), json.loads(digests))
        for directive, revision, seq, model, digest, added, removed, sent in self._conn.execute("SELECT * FROM deltas"):
            key = AssessmentKey(directive, revision, "restrict")
            sets = (BitMap(), BitMap()) if sent else (BitMap.deserialize(added), BitMap.deserialize(removed))
            pairing.delta(key, Delta(seq, model, digest, *sets))
            if sent:
                pairing.sent(key, seq)
        for directive, revision, digest, event_id in self._conn.execute("SELECT * FROM confirmed_digests"):
            pairing.confirmed(AssessmentKey(directive, revision, "restrict"), digest, event_id)
        reports: dict[AssessmentKey, dict[str, tuple[frozenset[str], str | None]]] = {}
        for directive, revision, cluster, models in self._conn.execute("SELECT * FROM cluster_serving"):
            reports.setdefault(AssessmentKey(directive, revision, "restrict"), {})[cluster] = (
                frozenset(json.loads(models)),
                None,
            )
        for key, report in reports.items():
            pairing.clusters(key, report, "")
        for directive, revision, cluster, digest, event_id in self._conn.execute(
            "SELECT * FROM cluster_held ORDER BY rowid"
        ):
            key = AssessmentKey(directive, revision, "restrict")
            pairing.held(key, cluster, digest, event_id)
        return pairing
