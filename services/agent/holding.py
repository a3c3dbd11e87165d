"""What the agent holds in memory, never ahead of its store: the restrictions, the commands offsets they
reflect, and the access checker's index built from them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.agent.access import AccessChecker
from services.agent.command_effects import Outcome, expire_staging
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions


@dataclass
class Holding:
    """The restrictions and offsets as last made durable; the checker answers from them."""

    store: RestrictionStore
    checker: AccessChecker
    state: Restrictions = field(default_factory=Restrictions)
    offsets: dict[int, int] = field(default_factory=dict)  # commands partition -> next offset reflected
    # Held by every use of the store: a command's write runs on a worker thread (SQLite and its fsync release the
    # GIL), and nothing else may touch the store or change the state it writes meanwhile.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def load(self) -> None:
        """Read back what is durable and answer checks from it."""
        self.state, self.offsets = self.store.load()
        self.checker.replace(self.state.held)

    def reflects(self, partition: int, offset: int) -> bool:
        """Whether a command at this offset is already in the snapshot (redelivered, or replayed after lost
        group offsets)."""
        return offset < self.offsets.get(partition, 0)

    def show(self, outcome: Outcome) -> None:
        """Let checks see what a command changed, ahead of its write: deltas (already applied in place to the
        held sets the index shares) are folded into the check view; any other change rebuilds the index.
        Never an answer the agent could not give again after a crash: it answers no check after a restart
        until it has caught up with its commands, this one (its offset not committed yet) included."""
        if outcome.deltas:
            self.checker.apply_deltas(outcome.deltas)
        elif outcome.held_changed:
            self.checker.replace(self.state.held)

    def persist(self, directive: str, outcome: Outcome, partition: int | None, offset: int | None) -> None:
        """Write the directive's part of the state (and the offset it reflects); on a failed write fall back to
        what is durable and raise, so the command is retried rather than committed."""
        try:
            self.store.record(self.state, directive, outcome, partition, offset)
        except Exception:
            self.load()  # memory must never run ahead of the store for long: the command is redelivered
            raise
        self._advance(partition, offset)

    async def write(self, directive: str, outcome: Outcome, partition: int | None, offset: int | None) -> None:
        """persist() off the event loop: the loop (checks, heartbeats, other agents of a process) runs on while the
        revision is written and synced. The write finishes, holding the lock, even if the caller is cancelled."""
        await asyncio.shield(asyncio.ensure_future(self._write(directive, outcome, partition, offset)))

    async def _write(self, directive: str, outcome: Outcome, partition: int | None, offset: int | None) -> None:
        async with self.writing:
            try:
                await asyncio.to_thread(self.store.record, self.state, directive, outcome, partition, offset)
            except Exception:
                self.load()  # as persist(): on the loop, once the thread is done with the store
                raise
            self._advance(partition, offset)

    async def expire(self, now: datetime, timeout: timedelta) -> dict[str, Outcome]:
        """Discard the revisions whose missing chunks did not come in time, durably; each one's outcome."""
        async with self.writing:  # a command's write may be under way on its thread
            expired = expire_staging(self.state, now, timeout)
            for directive, outcome in expired.items():
                self.persist(directive, outcome, None, None)
        return expired

    async def fold(self) -> int:
        """The store's fold of revisions held as their chunks (on the loop: it reads sets a delta may change)."""
        async with self.writing:
            return self.store.fold(self.state)

    async def close(self) -> None:
        """Close the store once no write is under way."""
        async with self.writing:
            self.store.close()

    async def record_synced(self, marker: str, partition: int | None, offset: int | None) -> None:
        """The control plane's sync marker, durable before it counts."""
        async with self.writing:
            self.store.record_synced(marker, partition, offset)
            self._advance(partition, offset)

    def _advance(self, partition: int | None, offset: int | None) -> None:
        if partition is not None and offset is not None:
            self.offsets[partition] = offset + 1
