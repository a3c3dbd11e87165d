"""What the agent holds, durable in SQLite and written before a command's offset is committed.

The held sets are shared.runtime.set_store's (a stored set per model plus a delta log); until folded, a
held revision's sets are its staged chunks (see the agent README). The file: restriction_schema.py; reading it
back: restriction_load.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.agent.command_effects import Outcome
from services.agent.restriction_load import load_restrictions
from services.agent.restriction_rows import backing_revision, put_chunk, put_held, put_pending, put_received
from services.agent.restriction_schema import HELD_SETS, open_database
from services.agent.restrictions import Restrictions, StagedRevision
from shared.runtime.set_store import COMPACT_ROWS, SetStore


class RestrictionStore:
    """The agent's SQLite store under <state_dir>/agent/<cluster>.sqlite3."""

    def __init__(self, path: Path, max_log_rows: int = COMPACT_ROWS) -> None:
        self._db = open_database(path)
        self._sets = SetStore(self._db, HELD_SETS, max_rows=max_log_rows)

    def close(self) -> None:
        self._db.close()

    def record(
        self,
        state: Restrictions,
        directive: str,
        outcome: Outcome,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        """Persist the directive's part of the state and the offset it reflects (if any), in one transaction.

        A transaction that only stages a chunk is not synced to disk on its own: a power loss may drop it
        (never a process crash), and then the revision misses that chunk, is reported failed after the
        chunk timeout and is sent again. Everything that changes what is held or is acknowledged is synced
        before the command's offset is committed. One fsync per revision instead of one per chunk.
        """
        staging_only = outcome.staged_chunk is not None and not outcome.held_changed and not outcome.acks
        with self._transaction(partition, offset, synced=not staging_only):
            if outcome.staged_chunk is not None and outcome.staged_chunk[0] == backing_revision(self._db, directive):
                self._write_held(state, directive)  # a held revision re-sent: its chunks must not mix
            if outcome.completed is not None:
                self._write_applied(state, directive, outcome.completed)
            elif outcome.held_changed and not (outcome.deltas and self._append_deltas(state, directive, outcome)):
                self._write_held(state, directive)
            self._write_staging(state, directive, outcome)
            put_pending(self._db, state, directive)
            put_received(self._db, state, directive, outcome)
            if directive in state.lifted:
                self._db.execute("INSERT OR REPLACE INTO lifted VALUES (?, ?)", (directive, state.lifted[directive]))

    @contextmanager
    def _transaction(self, partition: int | None, offset: int | None, synced: bool = True) -> Iterator[None]:
        """One SQLite transaction that also records the next commands offset it reflects, when given.

        synced=False commits without waiting for the disk (WAL, synchronous=NORMAL: consistent after a
        power loss, possibly without this transaction); the next synced commit makes it durable too.
        """
        if not synced:
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            if partition is not None and offset is not None:
                self._db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?)", (partition, offset + 1))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._sets.forget(stale=set())  # the agent reloads its state from disk after a failed write
            raise
        else:
            self._sets.committed()
        finally:
            if not synced:
                self._db.execute("PRAGMA synchronous=FULL")

    def _append_deltas(self, state: Restrictions, directive: str, outcome: Outcome) -> bool:
        """Record deltas applied to the held revision: the sequence they reach and a log row per delta of
        a model held here (the store compacts a model's log at its bound).

        False (nothing written) when the revision is not on disk yet: the caller writes the sets whole.
        """
        held = state.held[directive]
        if (
            self._db.execute(
                "UPDATE held SET seq = ? WHERE directive = ? AND revision = ?", (held.seq, directive, held.revision)
            ).rowcount
            == 0
        ):
            return False
        for delta in outcome.deltas:
            if delta.model in held.sets:  # another model's delta only advances the sequence
                self._sets.append(directive, delta.model, delta.seq, delta.added, delta.removed, held.sets[delta.model])
        return True

    def _write_applied(
        self, state: Restrictions, directive: str, completed: tuple[int, StagedRevision, tuple[int, ...]]
    ) -> None:
        """A revision whose chunks all came in is held: its staged rows become the held sets as they are.

        Only the last chunk and the held row are written; rewriting the sets (and deleting the chunks)
        would write a 10M-user revision twice on the way to its acknowledgement. fold() does it later.
        A revision that came whole with one command (by reference: one set per model) is written as the held
        sets at once: the same bytes as its chunks, and nothing left for fold() to write again.
        """
        revision, staged, arrived = completed
        if staged.whole:
            self._write_held(state, directive)
            return
        held = state.held[directive]
        backing = backing_revision(self._db, directive)
        self._sets.replace(directive, {})  # the new revision's chunks are its sets until folded
        if backing is not None:  # the chunks of what was held until now
            self._db.execute("DELETE FROM staged WHERE directive = ? AND revision = ?", (directive, backing))
        # Earlier chunks of this revision are on disk already, unless they were the held revision's own
        # (a held revision sent again in one chunk): then all of them are written.
        for chunk in staged.parts if backing == revision else arrived:
            put_chunk(self._db, directive, revision, chunk, staged)
        put_held(self._db, directive, held, staged_revision=revision)

    def fold(self, state: Restrictions) -> int:
        """Write as sets the held revisions still stored as their chunks, and drop those chunks; drop the sets
        of directives no longer held (synced). Run off the command path (the agent does it every second);
        returns how many held revisions were folded."""
        directives = [d for (d,) in self._db.execute("SELECT directive FROM held WHERE staged_revision IS NOT NULL")]
        t = HELD_SETS
        released = [
            d
            for (d,) in self._db.execute(
                f"SELECT directive FROM {t.sets} UNION SELECT directive FROM {t.deltas} "
                "EXCEPT SELECT directive FROM held"
            )
        ]
        if directives or released:
            with self._transaction(None, None):
                for directive in directives:
                    self._write_held(state, directive)
                for directive in released:
                    self._sets.replace(directive, {})
        return len(directives)

    def _write_held(self, state: Restrictions, directive: str) -> None:
        """The directive's held row and sets as memory holds them. Dropped (lifted or replaced by nothing):
        only its held row goes, which is what load() reads; its sets, megabytes to free, are left to fold()."""
        held = state.held.get(directive)
        if held is None:
            self._db.execute("DELETE FROM held WHERE directive = ?", (directive,))
            return
        backing = backing_revision(self._db, directive)
        if backing is not None:
            self._db.execute("DELETE FROM staged WHERE directive = ? AND revision = ?", (directive, backing))
        self._db.execute("DELETE FROM held WHERE directive = ?", (directive,))
        self._sets.replace(directive, held.sets)
        put_held(self._db, directive, held)

    def _write_staging(self, state: Restrictions, directive: str, outcome: Outcome) -> None:
        staged = state.staged_of(directive)
        kept = ",".join(str(int(rev)) for rev in [*staged, backing_revision(self._db, directive) or -1])
        self._db.execute(f"DELETE FROM staged WHERE directive = ? AND revision NOT IN ({kept})", (directive,))
        if outcome.staged_chunk is None:
            return
        revision, chunk = outcome.staged_chunk
        put_chunk(self._db, directive, revision, chunk, staged[revision])

    def record_synced(self, marker: str, partition: int | None = None, offset: int | None = None) -> None:
        """Persist that the control plane said this cluster was sent everything in force (marker event id)."""
        with self._transaction(partition, offset):
            self._db.execute("INSERT OR REPLACE INTO synced VALUES (1, ?)", (marker,))

    def synced(self) -> bool:
        """Whether a ClusterSynced for this cluster was ever recorded."""
        return self._db.execute("SELECT 1 FROM synced").fetchone() is not None

    def load(self) -> tuple[Restrictions, dict[int, int]]:
        """The state as last recorded and the next offset per commands partition it reflects."""
        return load_restrictions(self._db, self._sets)
