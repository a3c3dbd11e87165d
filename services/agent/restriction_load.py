"""Reading the agent's SQLite file back into what it holds: held sets (from their chunks until folded), staged
chunks, early deltas, lift tombstones, received command ids and the commands offsets reflected."""

from __future__ import annotations

import sqlite3

from pyroaring import BitMap

from services.agent.restriction_schema import moment
from services.agent.restrictions import HeldRestriction, PendingDelta, Restrictions, StagedRevision, Window
from shared.runtime.set_store import SetStore


def load_restrictions(db: sqlite3.Connection, sets: SetStore) -> tuple[Restrictions, dict[int, int]]:
    """The state as last recorded and the next offset per commands partition it reflects."""
    backing = backings(db)
    state = Restrictions(held=_held(db, sets, backing), staging=_staging(db, backing), pending=_pending(db))
    state.lifted = dict(db.execute("SELECT directive, revision FROM lifted"))
    for directive, revision, command in db.execute("SELECT directive, revision, command FROM received"):
        state.received.setdefault((directive, revision), set()).add(command)
    offsets = dict(db.execute("SELECT partition, next_offset FROM offsets"))
    return state, offsets


def backings(db: sqlite3.Connection) -> dict[str, int]:
    """Directive -> the staged revision whose chunks are still its held sets on disk."""
    return dict(db.execute("SELECT directive, staged_revision FROM held WHERE staged_revision IS NOT NULL"))


def _held(db: sqlite3.Connection, sets: SetStore, backing: dict[str, int]) -> dict[str, HeldRestriction]:
    stored = sets.load(_chunk_bases(db, backing), new_models=False)
    held = {}
    for directive, revision, seq, start, end, on_stale in db.execute(
        "SELECT directive, revision, seq, effective_from, expires_at, on_stale FROM held"
    ):
        window = Window(moment(start), moment(end))
        held[directive] = HeldRestriction.of(revision, window, stored.get(directive, {}), seq, on_stale=on_stale)
    return held


def _chunk_bases(db: sqlite3.Connection, backing: dict[str, int]) -> dict[str, dict[str, BitMap]]:
    """The held sets still stored as their revision's chunks: per directive, the union per model."""
    bases: dict[str, dict[str, BitMap]] = {}
    for directive, revision, model, users in db.execute(
        "SELECT directive, revision, model, users FROM staged ORDER BY directive, revision, chunk"
    ):
        if backing.get(directive) == revision:
            models = bases.setdefault(directive, {})
            models[model] = models.get(model, BitMap()) | BitMap.deserialize(users)
    return bases


def _staging(db: sqlite3.Connection, backing: dict[str, int]) -> dict[tuple[str, int], StagedRevision]:
    staging: dict[tuple[str, int], StagedRevision] = {}
    for directive, revision, chunk, chunks, start, end, model, users, on_stale, cause in db.execute(
        "SELECT directive, revision, chunk, chunks, effective_from, expires_at, model, users, on_stale, "
        "cause FROM staged"
    ):
        if backing.get(directive) == revision:
            continue  # not staging: the held revision's sets
        # The wait for missing chunks starts again in this process (started_at unset).
        staged = staging.setdefault(
            (directive, revision),
            StagedRevision(chunks=chunks, window=Window(moment(start), moment(end)), on_stale=on_stale, cause=cause),
        )
        staged.parts[chunk] = (model, BitMap.deserialize(users))
    return staging


def _pending(db: sqlite3.Connection) -> dict[tuple[str, int], dict[int, PendingDelta]]:
    pending: dict[tuple[str, int], dict[int, PendingDelta]] = {}
    for directive, revision, seq, model, added, removed in db.execute("SELECT * FROM pending"):
        pending.setdefault((directive, revision), {})[seq] = PendingDelta(
            seq, model, BitMap.deserialize(added), BitMap.deserialize(removed)
        )
    return pending
