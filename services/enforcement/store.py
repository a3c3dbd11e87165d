"""SQLite state of the enforcement service: clusters, rollouts, affected sets, pending parts, outbox.
A message's effect commits in one transaction before its Kafka offset (see the enforcement README).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

from services.enforcement.assembly import Assembly
from services.enforcement.coordinator import Coordinator
from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout
from services.enforcement.set_copies import CopyKey
from services.enforcement.state import KnownCluster
from shared.contracts.catalogue import COMMANDS, ENFORCEMENT, IMPACT, Topic
from shared.contracts.impact import AssessmentKey
from shared.contracts.set_copies import SetReference
from shared.runtime.set_store import COMPACT_ROWS, SetStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (cluster_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (key TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (key TEXT NOT NULL, part TEXT NOT NULL, body TEXT NOT NULL,
                                  PRIMARY KEY (key, part));
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS set_copies (key TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
                                       body TEXT NOT NULL, PRIMARY KEY (key, model, version));
"""
TOPICS = {COMMANDS.name: COMMANDS, ENFORCEMENT.name: ENFORCEMENT}
REGENERATED = {"RestrictCommand"}  # drafts rebuilt from sets and tracks after a restart (Deadlines.recover), not queued


class Queued(NamedTuple):
    """A message to publish: its outbox id (None when it is not kept there) and the JSON the outbox holds."""

    id: int | None
    topic: Topic
    message: Any
    body: str | None = None  # published as is, so a message is encoded once


def text_key(key: AssessmentKey) -> str:
    return json.dumps(list(key))


def key_of_text(text: str) -> AssessmentKey:
    return AssessmentKey(*json.loads(text))


def part_name(part: Any) -> str:
    if part.type == "AffectedSetChunk":
        return f"chunk:{part.chunk}"
    if part.type == "AffectedSetDelta":
        return f"delta:{part.model}:{part.seq}"
    return "assessment"


class EnforcementStore:
    """The service's durable state under state_dir/enforcement."""

    def __init__(self, folder: Path, compact_rows: int = COMPACT_ROWS) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / "enforcement.sqlite3", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._sets = SetStore(self._db, max_rows=compact_rows)
        self._published: list[int] = []
        self._unfolded: set[str] = set()  # rollouts whose sets are still only their assessment's parts
        self._closed = False

    def close(self) -> None:
        """Delete what was published and close the database (idempotent)."""
        if self._closed:
            return
        self.outbox()
        self._db.close()
        self._closed = True

    def save(self, outcome: Outcome, core: Coordinator) -> list[Queued]:
        """Commit what changed and queue its messages; returns the outbox entries to publish."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            self._write_state(outcome, core)
            self._forget_published()
            queued = [(COMMANDS, m) for m in outcome.commands if m.type not in REGENERATED] + [
                (ENFORCEMENT, m) for m in outcome.events
            ]
            entries = [self._queue(topic, message) for topic, message in queued]
            db.execute("COMMIT")
            self._sets.committed()
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._sets.forget(stale={(text_key(d.key), d.model) for d in outcome.deltas})
            raise
        return entries

    def _queue(self, topic: Topic, message: Any) -> Queued:
        body = message.model_dump_json()
        cursor = self._db.execute("INSERT INTO outbox (topic, body) VALUES (?, ?)", (topic.name, body))
        return Queued(cursor.lastrowid, topic, message, body)

    def _write_state(self, outcome: Outcome, core: Coordinator) -> None:
        db = self._db
        self._sets.repair(lambda key, model: core.sets.get(key_of_text(key), {}).get(model))
        for cluster_id in outcome.clusters:
            db.execute("REPLACE INTO clusters VALUES (?, ?)", (cluster_id, core.clusters[cluster_id].model_dump_json()))
        for key in outcome.rollouts:
            db.execute("REPLACE INTO rollouts VALUES (?, ?)", (text_key(key), core.rollouts[key].model_dump_json()))
        for key in outcome.sets:
            if key in outcome.assembled and key in core.sets:  # started from its parts: they hold the sets
                self._unfolded.add(text_key(key))
                continue
            self._sets.replace(text_key(key), core.sets.get(key, {}))
            if text_key(key) in self._unfolded:  # retired before it was folded
                self._unfolded.discard(text_key(key))
                db.execute("DELETE FROM parts WHERE key = ?", (text_key(key),))
        for delta in outcome.deltas:
            if delta.key not in outcome.sets:  # else the rewritten set already holds it
                self._sets.append(
                    text_key(delta.key),
                    delta.model,
                    delta.seq,
                    delta.added,
                    delta.removed,
                    core.sets[delta.key][delta.model],
                )
        for part in outcome.parts:
            key = AssessmentKey.of(part)
            db.execute("REPLACE INTO parts VALUES (?, ?, ?)", (text_key(key), part_name(part), part.model_dump_json()))
        for key in outcome.assembled:
            if text_key(key) not in self._unfolded:
                db.execute("DELETE FROM parts WHERE key = ?", (text_key(key),))

    def fold(self, core: Coordinator) -> int:
        """Write the sets of rollouts started from their parts and drop the parts; returns how many."""
        if not self._unfolded:
            return 0
        keys = sorted(self._unfolded)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for key in keys:
                sets = core.sets.get(key_of_text(key))
                if sets is not None:
                    self._sets.replace(key, sets)
                self._db.execute("DELETE FROM parts WHERE key = ?", (key,))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._sets.forget(stale=set())
            raise
        self._sets.committed()
        self._unfolded.clear()
        return len(keys)

    def place(self, copy: CopyKey, ref: SetReference) -> None:
        """Where a set copy was published (the broker acknowledged it): re-sends and restarts reference it."""
        key, model, version = copy
        self._db.execute(
            "REPLACE INTO set_copies VALUES (?, ?, ?, ?)", (text_key(key), model, version, ref.model_dump_json())
        )

    def placed(self) -> dict[CopyKey, SetReference]:
        """Every set copy published, of the rollouts still known."""
        rows = self._db.execute("SELECT key, model, version, body FROM set_copies").fetchall()
        return {(key_of_text(k), m, v): SetReference.model_validate_json(body) for k, m, v, body in rows}

    def forget_copies(self, keys: set[AssessmentKey]) -> None:
        """Placements of rollouts retired (their sets are gone)."""
        self._db.executemany("DELETE FROM set_copies WHERE key = ?", [(text_key(k),) for k in keys])

    def published(self, ids: list[int]) -> None:
        """Outbox entries that reached Kafka: deleted with the next save, so without an fsync of their own.

        After a crash before that save they are published again; every consumer is idempotent on event_id.
        """
        self._published.extend(ids)

    def _forget_published(self) -> None:
        self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._published])
        self._published.clear()

    def outbox(self) -> list[Queued]:
        """Entries committed but not yet published (after a crash or a failed send)."""
        if self._published:
            self._db.execute("BEGIN IMMEDIATE")
            self._forget_published()
            self._db.execute("COMMIT")
        rows = self._db.execute("SELECT id, topic, body FROM outbox ORDER BY id").fetchall()
        return [Queued(i, TOPICS[t], TOPICS[t].adapter.validate_json(body), body) for i, t, body in rows]

    def load(self, core: Coordinator) -> Coordinator:
        """Rebuild the in-memory state from disk."""
        db = self._db
        for (body,) in db.execute("SELECT body FROM clusters"):
            cluster = KnownCluster.model_validate_json(body)
            core.clusters[cluster.cluster_id] = cluster
        for (body,) in db.execute("SELECT body FROM rollouts"):
            rollout = Rollout.model_validate_json(body)
            core.rollouts[rollout.key] = rollout
        assemblies: dict[AssessmentKey, Assembly] = {}
        for key, part, body in db.execute("SELECT key, part, body FROM parts ORDER BY key, part"):
            self._restore_part(assemblies.setdefault(key_of_text(key), Assembly()), part, body)
        started = {key: assembly for key, assembly in assemblies.items() if key in core.rollouts}
        self._unfolded = {text_key(key) for key in started}
        core.assemblies.update({k: a for k, a in assemblies.items() if k not in started})
        bases = {text_key(key): assembly.base_sets() for key, assembly in started.items()}
        for key, sets in self._sets.load(bases).items():
            core.sets[key_of_text(key)] = sets
        return core

    @staticmethod
    def _restore_part(assembly: Assembly, part: str, body: str) -> None:
        message = IMPACT.adapter.validate_json(body)
        if part == "assessment":
            assembly.add_assessment(message)
        elif part.startswith("chunk:"):
            assembly.add_chunk(message)
        else:
            assembly.deltas.append(message)
