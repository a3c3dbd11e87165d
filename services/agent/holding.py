"""What the agent holds in memory, never ahead of its store: the restrictions, the commands offsets they
reflect, and the access checker's index built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.agent.access import AccessChecker
from services.agent.command_effects import Outcome
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions


@dataclass
class Holding:
    """The restrictions and offsets as last made durable; the checker answers from them."""

    store: RestrictionStore
    checker: AccessChecker
    state: Restrictions = field(default_factory=Restrictions)
    offsets: dict[int, int] = field(default_factory=dict)  # commands partition -> next offset reflected

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

    def record_synced(self, marker: str, partition: int | None, offset: int | None) -> None:
        """The control plane's sync marker, durable before it counts."""
        self.store.record_synced(marker, partition, offset)
        self._advance(partition, offset)

    def _advance(self, partition: int | None, offset: int | None) -> None:
        if partition is not None and offset is not None:
            self.offsets[partition] = offset + 1
