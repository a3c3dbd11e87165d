"""Rows of the agent's SQLite file, one writer per table (the store composes them in its transactions)."""

from __future__ import annotations

import sqlite3

from services.agent.command_effects import Outcome
from services.agent.restriction_schema import blob, iso
from services.agent.restrictions import HeldRestriction, Restrictions, StagedRevision


def backing_revision(db: sqlite3.Connection, directive: str) -> int | None:
    """The staged revision whose chunks are the directive's held sets on disk, if they are."""
    row = db.execute("SELECT staged_revision FROM held WHERE directive = ?", (directive,)).fetchone()
    return row[0] if row else None


def put_held(db: sqlite3.Connection, directive: str, held: HeldRestriction, staged_revision: int | None = None) -> None:
    """The held row of a directive; `staged_revision`: its sets are still that revision's chunks (unfolded)."""
    db.execute(
        "INSERT OR REPLACE INTO held (directive, revision, seq, effective_from, expires_at, on_stale, "
        "staged_revision) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            directive,
            held.revision,
            held.seq,
            iso(held.window.effective_from),
            iso(held.window.expires_at),
            held.on_stale,
            staged_revision,
        ),
    )


def put_chunk(db: sqlite3.Connection, directive: str, revision: int, chunk: int, part: StagedRevision) -> None:
    model, users = part.parts[chunk]
    db.execute(
        "INSERT OR REPLACE INTO staged (directive, revision, chunk, chunks, effective_from, "
        "expires_at, model, users, on_stale, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            directive,
            revision,
            chunk,
            part.chunks,
            iso(part.window.effective_from),
            iso(part.window.expires_at),
            model,
            blob(users),
            part.on_stale,
            part.cause,
        ),
    )


def put_pending(db: sqlite3.Connection, state: Restrictions, directive: str) -> None:
    db.execute("DELETE FROM pending WHERE directive = ?", (directive,))
    rows = [
        (directive, rev, d.seq, d.model, blob(d.added), blob(d.removed))
        for rev, deltas in state.pending_of(directive).items()
        for d in deltas.values()
    ]
    db.executemany("INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?)", rows)


def put_received(db: sqlite3.Connection, state: Restrictions, directive: str, outcome: Outcome) -> None:
    """The restrict command ids seen for the directive's revisions still current (replays are refused)."""
    if outcome.received is not None:
        revision, command = outcome.received
        db.execute("INSERT OR IGNORE INTO received VALUES (?, ?, ?)", (directive, revision, command))
    kept = ",".join(str(int(rev)) for (d, rev) in state.received if d == directive) or "-1"
    db.execute(f"DELETE FROM received WHERE directive = ? AND revision NOT IN ({kept})", (directive,))
